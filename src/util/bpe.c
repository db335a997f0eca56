/*
 * bpe.c — GPT-2's byte-level BPE (bpe.h): reading and checking vocab.json and merges.txt, the
 * byte <-> unicode table, the pre-tokenizer (PCRE2), the merges by rank, the cache of pieces
 * and the canonical SHA-256 of the tables.
 *
 * Merging follows tiktoken's _byte_pair_merge (src/lib.rs): a piece starts as one part per
 * byte, each part remembers the rank of merging it with its right neighbour, and the pair of
 * lowest rank (the leftmost of equals) is merged until none is a merge. For GPT-2's files,
 * whose every merge ranks after the merges that made its two parts, this is the original
 * encoder.py's "merge every occurrence of the best bigram, left to right" step by step. Long
 * pieces (a run of thousands of letters or spaces) would make the scan quadratic, so they go
 * through a heap of candidate pairs instead: the same order of merges, O(m log m).
 */
#include "proxima/bpe.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* GPT-2's pre-tokenizer (encoder.py), as bpe.h spells it. */
static const char px_bpe_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum {
  PX_BPE_NCP = 0x144,      /* code points of the byte table: U+0000 .. U+0143 */
  PX_BPE_LONG_PIECE = 256, /* parts from which a piece is merged through the heap */
  PX_BPE_CACHE_PIECE = 64, /* longest piece the cache keeps, in bytes */
  PX_BPE_CACHE_SLOTS = 1 << 16,
  PX_BPE_CACHE_MAX = 1 << 15, /* entries at which the cache is cleared (half its slots) */
};
#define PX_BPE_NO_RANK UINT32_MAX

/* (left id, right id) -> the merge's rank and the id of its result; merged < 0: empty slot. */
typedef struct px_bpe_pair {
  uint64_t key;
  uint32_t rank;
  int32_t merged;
} px_bpe_pair;

/* A piece already encoded: its bytes and its tokens, in the cache's two arenas. */
typedef struct px_bpe_cached {
  uint64_t hash;
  uint32_t key_off, key_len, tok_off, tok_n; /* key_len 0: empty slot */
} px_bpe_cached;

/* One part of a piece being merged: its token and the merge with its right neighbour. */
typedef struct px_bpe_part {
  int32_t id, merged;
  uint32_t rank;
  int32_t prev, next; /* the heap path's linked list */
  uint32_t stamp;     /* the heap path: changes whenever this part's pair does */
} px_bpe_part;

typedef struct px_bpe_cand {
  uint32_t rank, pos, stamp;
} px_bpe_cand;

struct px_bpe {
  int32_t n;               /* tokens: ids 0 .. n-1 */
  char *bytes;             /* every token's bytes, back to back */
  uint32_t *off;           /* token id's bytes: bytes[off[id] .. off[id+1]) */
  int32_t *by_bytes;       /* open addressing over token bytes -> id; -1 empty */
  uint64_t *by_bytes_hash; /* the hash of each id's bytes, to skip most compares */
  size_t by_bytes_mask;
  int32_t byte_token[256]; /* the token of each single byte */
  px_bpe_pair *pairs;      /* open addressing over (left, right) */
  size_t pairs_mask;
  int32_t *merge_left, *merge_right; /* by rank, for the hash */
  uint32_t n_merges;
  char hash_hex[65];
  /* The pre-tokenizer. */
  pcre2_code *re;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit_stack;
  int jit; /* pcre2_jit_compile succeeded */
  /* Scratch of the merge, reused from piece to piece. */
  px_bpe_part *parts;
  px_bpe_cand *heap;
  size_t parts_cap, heap_cap;
  /* The cache of pieces. */
  px_bpe_cached *cache;
  uint32_t cache_used;
  char *cache_keys;
  size_t cache_keys_n, cache_keys_cap;
  int32_t *cache_toks;
  size_t cache_toks_n, cache_toks_cap;
};

/* ---------------------------------------------------------------------------------------------
 * GPT-2's byte <-> unicode table (encoder.py's bytes_to_unicode): the printable bytes of
 * Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the other 68, in
 * byte order, for U+0100 onwards. So a token string never holds a space or a control character.
 * --------------------------------------------------------------------------------------------- */
static void px_bpe_byte_table(uint16_t byte_cp[256], int16_t cp_byte[PX_BPE_NCP]) {
  int next = 0x100;
  for (int c = 0; c < PX_BPE_NCP; c++) cp_byte[c] = -1;
  for (int b = 0; b < 256; b++) {
    const int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    byte_cp[b] = (uint16_t)(printable ? b : next++);
    cp_byte[byte_cp[b]] = (int16_t)b;
  }
}

/* The bytes a token string spells (s, n bytes of UTF-8) into out (room for n bytes); returns
 * their count, or -1 when s is not UTF-8 or has a character outside the table. The character
 * that failed goes to *bad_cp (-1 when the UTF-8 itself is bad). */
static long px_bpe_unspell(const int16_t cp_byte[PX_BPE_NCP], const char *s, size_t n, char *out,
                           long *bad_cp) {
  const unsigned char *u = (const unsigned char *)s;
  long k = 0;
  for (size_t i = 0; i < n;) {
    long cp;
    if (u[i] < 0x80) {
      cp = u[i++];
    } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n && (u[i + 1] & 0xC0) == 0x80) {
      cp = ((long)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
      i += 2;
    } else if ((u[i] & 0xF0) == 0xE0 && i + 2 < n) {
      cp = ((long)(u[i] & 0x0F) << 12) | ((long)(u[i + 1] & 0x3F) << 6) | (u[i + 2] & 0x3F);
      i += 3; /* a character this long is never in the table: only its value is reported */
    } else if ((u[i] & 0xF8) == 0xF0 && i + 3 < n) {
      cp = ((long)(u[i] & 0x07) << 18) | ((long)(u[i + 1] & 0x3F) << 12) |
           ((long)(u[i + 2] & 0x3F) << 6) | (u[i + 3] & 0x3F);
      i += 4;
    } else {
      *bad_cp = -1;
      return -1;
    }
    if (cp >= PX_BPE_NCP || cp_byte[cp] < 0) {
      *bad_cp = cp;
      return -1;
    }
    out[k++] = (char)cp_byte[cp];
  }
  return k;
}

/* Appends the UTF-8 of code point cp (< 0x800: the table's are) to out; returns the bytes. */
static int px_bpe_utf8(unsigned cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  out[0] = (char)(0xC0 | (cp >> 6));
  out[1] = (char)(0x80 | (cp & 0x3F));
  return 2;
}

void px_bpe_spell(px_text *out, const char *bytes, size_t n) {
  uint16_t byte_cp[256];
  int16_t cp_byte[PX_BPE_NCP];
  px_bpe_byte_table(byte_cp, cp_byte);
  px_text_put(out, "", 0);
  for (size_t i = 0; i < n; i++) {
    char s[2];
    px_text_put(out, s, (size_t)px_bpe_utf8(byte_cp[(unsigned char)bytes[i]], s));
  }
}

/* ---------------------------------------------------------------------------------------------
 * Hash tables
 * --------------------------------------------------------------------------------------------- */
static uint64_t px_bpe_hash_bytes(const char *p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    p += 8, n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
  return h ^ (h >> 29);
}

static size_t px_bpe_pow2_above(size_t n) {
  size_t c = 16;
  while (c < 2 * n) c *= 2;
  return c;
}

/* The id of the token of these bytes, or -1. */
static int32_t px_bpe_find_bytes(const px_bpe *b, const char *p, size_t n) {
  const uint64_t h = px_bpe_hash_bytes(p, n);
  for (size_t i = h & b->by_bytes_mask;; i = (i + 1) & b->by_bytes_mask) {
    const int32_t id = b->by_bytes[i];
    if (id < 0) return -1;
    if (b->by_bytes_hash[id] == h && b->off[id + 1] - b->off[id] == n &&
        memcmp(b->bytes + b->off[id], p, n) == 0)
      return id;
  }
}

static size_t px_bpe_pair_slot(const px_bpe *b, uint64_t key) {
  return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 24) & b->pairs_mask;
}

static uint64_t px_bpe_pair_key(int32_t left, int32_t right) {
  return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

/* The pair's slot: the merge, or an empty slot (merged -1) where it would go. */
static px_bpe_pair *px_bpe_find_pair(const px_bpe *b, int32_t left, int32_t right) {
  const uint64_t key = px_bpe_pair_key(left, right);
  for (size_t i = px_bpe_pair_slot(b, key);; i = (i + 1) & b->pairs_mask) {
    px_bpe_pair *p = &b->pairs[i];
    if (p->merged < 0 || p->key == key) return p;
  }
}

/* ---------------------------------------------------------------------------------------------
 * Reading vocab.json
 * --------------------------------------------------------------------------------------------- */
/* Fills b->n, bytes, off and the bytes -> id table from the JSON object of vocab. */
static px_status px_bpe_read_vocab(px_bpe *b, const int16_t cp_byte[PX_BPE_NCP], const char *vocab,
                                   size_t vocab_len, const char *name, px_error *err) {
  json_error_t jerr;
  json_t *root = json_loadb(vocab, vocab_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return px_error_set(err, PX_EINPUT, "%s:%d:%d: not a valid vocabulary: %s", name, jerr.line,
                        jerr.column, jerr.text);
  px_status st = PX_OK;
  const size_t n = json_is_object(root) ? json_object_size(root) : 0;
  if (n == 0 || n > INT32_MAX / 2) {
    st = px_error_set(err, PX_EINPUT,
                      "%s: expected a JSON object from token string to id, with at least one "
                      "token (GPT-2's vocab.json or encoder.json)",
                      name);
    json_decref(root);
    return st;
  }
  /* Each id's key, to place the bytes in id order and to name both keys of a repeated id. */
  const char **key_of = px_calloc(n, sizeof *key_of);
  size_t total = 0;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    const json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
    if (id < 0 || (size_t)id >= n) {
      st = px_error_set(err, PX_EINPUT,
                        "%s: key \"%s\": expected an integer id from 0 to %zu (the ids must be "
                        "0 .. n-1 for n = %zu tokens)",
                        name, key, n - 1, n);
      goto done;
    }
    if (key_of[id]) {
      st = px_error_set(err, PX_EINPUT,
                        "%s: keys \"%s\" and \"%s\" have the same id %lld (each id must be used "
                        "once, 0 .. %zu)",
                        name, key_of[id], key, (long long)id, n - 1);
      goto done;
    }
    key_of[id] = key;
    total += strlen(key);
  }
  /* n distinct ids in 0 .. n-1: dense. */
  b->n = (int32_t)n;
  b->bytes = px_malloc(total + 1);
  b->off = px_malloc((n + 1) * sizeof *b->off);
  b->by_bytes_hash = px_malloc(n * sizeof *b->by_bytes_hash);
  const size_t slots = px_bpe_pow2_above(n);
  b->by_bytes = px_malloc(slots * sizeof *b->by_bytes);
  b->by_bytes_mask = slots - 1;
  memset(b->by_bytes, 0xFF, slots * sizeof *b->by_bytes);
  uint32_t at = 0;
  for (size_t id = 0; id < n; id++) {
    long bad = 0;
    const long k = px_bpe_unspell(cp_byte, key_of[id], strlen(key_of[id]), b->bytes + at, &bad);
    if (k <= 0) {
      st = k == 0 ? px_error_set(err, PX_EINPUT, "%s: id %zu has an empty token string", name, id)
                  : px_error_set(err, PX_EINPUT,
                                 "%s: key \"%s\": U+%04lX is not a character of GPT-2's byte "
                                 "table (bytes_to_unicode), so the token spells no bytes",
                                 name, key_of[id], (unsigned long)bad);
      goto done;
    }
    b->off[id] = at;
    at += (uint32_t)k;
    b->by_bytes_hash[id] = px_bpe_hash_bytes(b->bytes + b->off[id], (size_t)k);
    size_t i = b->by_bytes_hash[id] & b->by_bytes_mask;
    while (b->by_bytes[i] >= 0) i = (i + 1) & b->by_bytes_mask;
    b->by_bytes[i] = (int32_t)id; /* the table is a bijection: distinct keys, distinct bytes */
  }
  b->off[n] = at;
done:
  free(key_of);
  json_decref(root);
  return st;
}

/* Every byte needs a token of its own, or some text could not be encoded. */
static px_status px_bpe_byte_tokens(px_bpe *b, const uint16_t byte_cp[256], const char *name,
                                    px_error *err) {
  for (int c = 0; c < 256; c++) {
    const char byte = (char)c;
    b->byte_token[c] = px_bpe_find_bytes(b, &byte, 1);
    if (b->byte_token[c] < 0) {
      char spelled[3] = {0};
      px_bpe_utf8(byte_cp[c], spelled);
      return px_error_set(err, PX_EINPUT,
                          "%s: no token for byte 0x%02X (\"%s\"): a byte-level vocabulary needs "
                          "one token for each of the 256 bytes",
                          name, c, spelled);
    }
  }
  return PX_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Reading merges.txt
 * --------------------------------------------------------------------------------------------- */
/* One merge line (without its newline): "a b". Adds it as rank b->n_merges. */
static px_status px_bpe_add_merge(px_bpe *b, const int16_t cp_byte[PX_BPE_NCP], const char *line,
                                  size_t len, const char *name, size_t line_no,
                                  const uint32_t *line_of_rank, const char *vocab_name,
                                  px_error *err) {
  const char *sp = memchr(line, ' ', len);
  const int shown = len > 200 ? 200 : (int)len;
  if (!sp || sp == line || sp + 1 == line + len || memchr(sp + 1, ' ', len - (sp + 1 - line)))
    return px_error_set(err, PX_EINPUT,
                        "%s:%zu: expected a merge: two tokens separated by one space, found "
                        "\"%.*s\"",
                        name, line_no, shown, line);
  const size_t la = (size_t)(sp - line), lb = len - la - 1;
  char *buf = px_malloc(len);
  int32_t ids[2] = {-1, -1};
  const char *part[2] = {line, sp + 1};
  const size_t plen[2] = {la, lb};
  long k[2] = {0, 0};
  for (int j = 0; j < 2; j++) {
    long bad = 0;
    k[j] = px_bpe_unspell(cp_byte, part[j], plen[j], buf + (j ? k[0] : 0), &bad);
    if (k[j] > 0) ids[j] = px_bpe_find_bytes(b, buf + (j ? k[0] : 0), (size_t)k[j]);
    if (ids[j] < 0) {
      free(buf);
      return px_error_set(err, PX_EINPUT, "%s:%zu: \"%.*s\" is not a token of %s", name, line_no,
                          (int)plen[j], part[j], vocab_name);
    }
  }
  const int32_t merged = px_bpe_find_bytes(b, buf, (size_t)(k[0] + k[1]));
  free(buf);
  if (merged < 0)
    return px_error_set(err, PX_EINPUT,
                        "%s:%zu: the merge of \"%.*s\" and \"%.*s\", \"%.*s%.*s\", is not a "
                        "token of %s",
                        name, line_no, (int)la, line, (int)lb, sp + 1, (int)la, line, (int)lb,
                        sp + 1, vocab_name);
  px_bpe_pair *p = px_bpe_find_pair(b, ids[0], ids[1]);
  if (p->merged >= 0)
    return px_error_set(err, PX_EINPUT, "%s:%zu: the merge \"%.*s\" repeats line %u", name, line_no,
                        shown, line, line_of_rank[p->rank]);
  *p = (px_bpe_pair){px_bpe_pair_key(ids[0], ids[1]), b->n_merges, merged};
  b->merge_left[b->n_merges] = ids[0];
  b->merge_right[b->n_merges] = ids[1];
  b->n_merges++;
  return PX_OK;
}

static px_status px_bpe_read_merges(px_bpe *b, const int16_t cp_byte[PX_BPE_NCP], const char *text,
                                    size_t len, const char *name, const char *vocab_name,
                                    px_error *err) {
  size_t lines = 1;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  if (lines > UINT32_MAX / 2)
    return px_error_set(err, PX_EINPUT, "%s: too many lines (%zu)", name, lines);
  const size_t slots = px_bpe_pow2_above(lines);
  b->pairs = px_malloc(slots * sizeof *b->pairs);
  for (size_t i = 0; i < slots; i++) b->pairs[i].merged = -1;
  b->pairs_mask = slots - 1;
  b->merge_left = px_malloc(lines * sizeof *b->merge_left);
  b->merge_right = px_malloc(lines * sizeof *b->merge_right);
  uint32_t *line_of_rank = px_malloc(lines * sizeof *line_of_rank);
  px_status st = PX_OK;
  size_t line_no = 0;
  for (size_t at = 0; at < len && st == PX_OK;) {
    const char *nl = memchr(text + at, '\n', len - at);
    const size_t end = nl ? (size_t)(nl - text) : len;
    size_t n = end - at;
    line_no++;
    if (n > 0 && text[at + n - 1] == '\r') n--; /* a file written on Windows */
    const int header = line_no == 1 && n >= 8 && memcmp(text + at, "#version", 8) == 0;
    if (n > 0 && !header) {
      line_of_rank[b->n_merges] = (uint32_t)line_no;
      st = px_bpe_add_merge(b, cp_byte, text + at, n, name, line_no, line_of_rank, vocab_name, err);
    }
    at = end + 1;
  }
  free(line_of_rank);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * The canonical hash: SHA-256 of "gpt2-bpe\nvocab N\n", each token string (as vocab.json spells
 * it) and "\n" in id order, "merges M\n", then each merge "a b\n" in rank order. Token strings
 * hold neither spaces nor newlines (the byte table has none), so the form is unambiguous.
 * --------------------------------------------------------------------------------------------- */
static void px_bpe_put(EVP_MD_CTX *ctx, const void *p, size_t n) {
  PX_REQUIRE(EVP_DigestUpdate(ctx, p, n) == 1, "EVP_DigestUpdate failed");
}

static void px_bpe_put_token(EVP_MD_CTX *ctx, const px_bpe *b, const uint16_t byte_cp[256],
                             int32_t id, char end) {
  char s[512];
  size_t k = 0;
  for (uint32_t i = b->off[id]; i < b->off[id + 1]; i++) {
    if (k + 2 > sizeof s) px_bpe_put(ctx, s, k), k = 0;
    k += (size_t)px_bpe_utf8(byte_cp[(unsigned char)b->bytes[i]], s + k);
  }
  s[k++] = end; /* sizeof s leaves room: k + 2 <= sizeof s before each character */
  px_bpe_put(ctx, s, k);
}

static void px_bpe_compute_hash(px_bpe *b, const uint16_t byte_cp[256]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  PX_REQUIRE(ctx, "EVP_MD_CTX_new failed");
  PX_REQUIRE(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1, "EVP_DigestInit_ex(SHA-256) failed");
  char head[64];
  int k = snprintf(head, sizeof head, "gpt2-bpe\nvocab %d\n", (int)b->n);
  px_bpe_put(ctx, head, (size_t)k);
  for (int32_t id = 0; id < b->n; id++) px_bpe_put_token(ctx, b, byte_cp, id, '\n');
  k = snprintf(head, sizeof head, "merges %u\n", b->n_merges);
  px_bpe_put(ctx, head, (size_t)k);
  for (uint32_t r = 0; r < b->n_merges; r++) {
    px_bpe_put_token(ctx, b, byte_cp, b->merge_left[r], ' ');
    px_bpe_put_token(ctx, b, byte_cp, b->merge_right[r], '\n');
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  PX_REQUIRE(EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 32,
             "EVP_DigestFinal_ex(SHA-256) failed");
  EVP_MD_CTX_free(ctx);
  for (size_t i = 0; i < 32; i++) snprintf(b->hash_hex + 2 * i, 3, "%02x", md[i]);
}

/* ---------------------------------------------------------------------------------------------
 * Building and freeing
 * --------------------------------------------------------------------------------------------- */
static void px_bpe_compile(px_bpe *b) {
  int code = 0;
  PCRE2_SIZE where = 0;
  b->re = pcre2_compile((PCRE2_SPTR)px_bpe_pattern, PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &where, NULL);
  if (!b->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    px_die(__FILE__, __LINE__, "pcre2_compile of GPT-2's pattern failed at %zu: %s", (size_t)where,
           (const char *)msg);
  }
  /* The JIT is several times faster; where it is missing (a PCRE2 built without it, an
   * architecture it does not know, memory that may not be executable) the interpreter gives the
   * same matches. */
  b->jit = pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE) == 0;
  b->md = pcre2_match_data_create_from_pattern(b->re, NULL);
  b->mctx = pcre2_match_context_create(NULL);
  PX_REQUIRE(b->md && b->mctx, "pcre2 match data or context: out of memory");
  if (b->jit) {
    /* The default 32 KiB JIT stack is enough for every piece we measured, but a pathological
     * text should not be the one that runs out. */
    b->jit_stack = pcre2_jit_stack_create((size_t)32 << 10, (size_t)8 << 20, NULL);
    PX_REQUIRE(b->jit_stack, "pcre2_jit_stack_create: out of memory");
    pcre2_jit_stack_assign(b->mctx, NULL, b->jit_stack);
  }
}

px_status px_bpe_build(px_bpe **out, const char *vocab, size_t vocab_len, const char *vocab_name,
                       const char *merges, size_t merges_len, const char *merges_name,
                       px_error *err) {
  *out = NULL;
  uint16_t byte_cp[256];
  int16_t cp_byte[PX_BPE_NCP];
  px_bpe_byte_table(byte_cp, cp_byte);
  px_bpe *b = px_calloc(1, sizeof *b);
  px_status st = px_bpe_read_vocab(b, cp_byte, vocab, vocab_len, vocab_name, err);
  if (st == PX_OK) st = px_bpe_byte_tokens(b, byte_cp, vocab_name, err);
  if (st == PX_OK)
    st = px_bpe_read_merges(b, cp_byte, merges, merges_len, merges_name, vocab_name, err);
  if (st != PX_OK) {
    px_bpe_free(b);
    return st;
  }
  px_bpe_compute_hash(b, byte_cp);
  px_bpe_compile(b);
  b->cache = px_calloc(PX_BPE_CACHE_SLOTS, sizeof *b->cache);
  *out = b;
  return PX_OK;
}

void px_bpe_free(px_bpe *b) {
  if (!b) return;
  free(b->bytes), free(b->off), free(b->by_bytes), free(b->by_bytes_hash);
  free(b->pairs), free(b->merge_left), free(b->merge_right);
  pcre2_match_data_free(b->md);
  pcre2_match_context_free(b->mctx);
  pcre2_jit_stack_free(b->jit_stack);
  pcre2_code_free(b->re);
  free(b->parts), free(b->heap);
  free(b->cache), free(b->cache_keys), free(b->cache_toks);
  free(b);
}

int32_t px_bpe_vocab_size(const px_bpe *b) { return b->n; }

int32_t px_bpe_token_id(const px_bpe *b, const char *token) {
  uint16_t byte_cp[256];
  int16_t cp_byte[PX_BPE_NCP];
  px_bpe_byte_table(byte_cp, cp_byte);
  const size_t n = strlen(token);
  char *buf = px_malloc(n);
  long bad = 0;
  const long k = px_bpe_unspell(cp_byte, token, n, buf, &bad);
  const int32_t id = k > 0 ? px_bpe_find_bytes(b, buf, (size_t)k) : -1;
  free(buf);
  return id;
}

const char *px_bpe_token_bytes(const px_bpe *b, int32_t id, size_t *len) {
  if (id < 0 || id >= b->n) return NULL;
  *len = b->off[id + 1] - b->off[id];
  return b->bytes + b->off[id];
}

void px_bpe_hash(const px_bpe *b, char hex[65]) { memcpy(hex, b->hash_hex, 65); }

/* ---------------------------------------------------------------------------------------------
 * Merging one piece
 * --------------------------------------------------------------------------------------------- */
static void px_bpe_rank_pair(const px_bpe *b, px_bpe_part *left, int32_t right_id) {
  const px_bpe_pair *p = px_bpe_find_pair(b, left->id, right_id);
  left->rank = p->merged >= 0 ? p->rank : PX_BPE_NO_RANK;
  left->merged = p->merged;
}

/* tiktoken's scan: parts[0 .. m) in order, each with the rank of its pair with the next. */
static size_t px_bpe_merge_scan(const px_bpe *b, px_bpe_part *parts, size_t m) {
  for (size_t i = 0; i + 1 < m; i++) px_bpe_rank_pair(b, &parts[i], parts[i + 1].id);
  parts[m - 1].rank = PX_BPE_NO_RANK;
  while (m > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < m; i++)
      if (parts[i].rank < parts[best].rank) best = i;
    if (parts[best].rank == PX_BPE_NO_RANK) break;
    parts[best].id = parts[best].merged;
    memmove(&parts[best + 1], &parts[best + 2], (m - best - 2) * sizeof *parts);
    m--;
    if (best > 0) px_bpe_rank_pair(b, &parts[best - 1], parts[best].id);
    if (best + 1 < m)
      px_bpe_rank_pair(b, &parts[best], parts[best + 1].id);
    else
      parts[best].rank = PX_BPE_NO_RANK;
  }
  return m;
}

/* A min-heap of candidate pairs by (rank, position): the same choice as the scan's. */
static int px_bpe_cand_less(px_bpe_cand a, px_bpe_cand c) {
  return a.rank < c.rank || (a.rank == c.rank && a.pos < c.pos);
}

static void px_bpe_heap_push(px_bpe_cand *h, size_t *n, px_bpe_cand c) {
  size_t i = (*n)++;
  while (i > 0 && px_bpe_cand_less(c, h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = c;
}

static px_bpe_cand px_bpe_heap_pop(px_bpe_cand *h, size_t *n) {
  const px_bpe_cand top = h[0], last = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && px_bpe_cand_less(h[c + 1], h[c])) c++;
    if (!px_bpe_cand_less(h[c], last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n > 0) h[i] = last;
  return top;
}

/* Re-ranks part i's pair with its next part and offers it to the heap. */
static void px_bpe_offer(px_bpe *b, px_bpe_part *parts, int32_t i, size_t *hn) {
  px_bpe_part *p = &parts[i];
  p->stamp++;
  if (p->next < 0) {
    p->rank = PX_BPE_NO_RANK;
    return;
  }
  px_bpe_rank_pair(b, p, parts[p->next].id);
  if (p->rank != PX_BPE_NO_RANK)
    px_bpe_heap_push(b->heap, hn, (px_bpe_cand){p->rank, (uint32_t)i, p->stamp});
}

/* Long pieces: parts as a linked list, candidates in a heap, stale ones skipped by stamp.
 * Compacts the surviving parts to parts[0 .. return value). */
static size_t px_bpe_merge_heap(px_bpe *b, px_bpe_part *parts, size_t m) {
  if (b->heap_cap < 3 * m) { /* m first offers, then at most two per merge */
    b->heap_cap = 3 * m;
    b->heap = px_realloc(b->heap, b->heap_cap * sizeof *b->heap);
  }
  size_t hn = 0;
  for (size_t i = 0; i < m; i++) {
    parts[i].prev = (int32_t)i - 1;
    parts[i].next = i + 1 < m ? (int32_t)i + 1 : -1;
    parts[i].stamp = 0;
  }
  for (size_t i = 0; i < m; i++) px_bpe_offer(b, parts, (int32_t)i, &hn);
  while (hn > 0) {
    const px_bpe_cand c = px_bpe_heap_pop(b->heap, &hn);
    px_bpe_part *p = &parts[c.pos];
    if (p->stamp != c.stamp) continue; /* its pair changed since */
    const int32_t gone = p->next;
    p->id = p->merged;
    p->next = parts[gone].next;
    if (p->next >= 0) parts[p->next].prev = (int32_t)c.pos;
    parts[gone].stamp++, parts[gone].id = -1; /* its own candidate is stale now */
    if (p->prev >= 0) px_bpe_offer(b, parts, p->prev, &hn);
    px_bpe_offer(b, parts, (int32_t)c.pos, &hn);
  }
  size_t k = 0;
  for (int32_t i = 0; i >= 0; i = parts[i].next) parts[k++].id = parts[i].id;
  return k;
}

/* Appends the tokens of one piece (n >= 1 bytes) to out[*len ..]. */
static void px_bpe_push(int32_t **tokens, size_t *len, size_t *cap, const int32_t *ids, size_t n) {
  if (*len + n > *cap) {
    *cap = (*len + n) * 2 > 64 ? (*len + n) * 2 : 64;
    *tokens = px_realloc(*tokens, *cap * sizeof **tokens);
  }
  memcpy(*tokens + *len, ids, n * sizeof *ids);
  *len += n;
}

static size_t px_bpe_merge(px_bpe *b, const char *p, size_t n) {
  if (b->parts_cap < n) {
    b->parts_cap = 2 * n;
    b->parts = px_realloc(b->parts, b->parts_cap * sizeof *b->parts);
  }
  for (size_t i = 0; i < n; i++) b->parts[i].id = b->byte_token[(unsigned char)p[i]];
  return n < PX_BPE_LONG_PIECE ? px_bpe_merge_scan(b, b->parts, n)
                               : px_bpe_merge_heap(b, b->parts, n);
}

/* ---------------------------------------------------------------------------------------------
 * The cache of pieces: most words repeat. Cleared whole when full; that is rare and cheap.
 * --------------------------------------------------------------------------------------------- */
static void px_bpe_cache_clear(px_bpe *b) {
  memset(b->cache, 0, PX_BPE_CACHE_SLOTS * sizeof *b->cache);
  b->cache_used = 0, b->cache_keys_n = 0, b->cache_toks_n = 0;
}

static void px_bpe_cache_put(px_bpe *b, px_bpe_cached *slot, uint64_t h, const char *p, size_t n,
                             const px_bpe_part *parts, size_t m) {
  if (b->cache_keys_n + n > b->cache_keys_cap) {
    b->cache_keys_cap = 2 * (b->cache_keys_n + n) + 4096;
    b->cache_keys = px_realloc(b->cache_keys, b->cache_keys_cap);
  }
  if (b->cache_toks_n + m > b->cache_toks_cap) {
    b->cache_toks_cap = 2 * (b->cache_toks_n + m) + 1024;
    b->cache_toks = px_realloc(b->cache_toks, b->cache_toks_cap * sizeof *b->cache_toks);
  }
  memcpy(b->cache_keys + b->cache_keys_n, p, n);
  for (size_t i = 0; i < m; i++) b->cache_toks[b->cache_toks_n + i] = parts[i].id;
  *slot = (px_bpe_cached){h, (uint32_t)b->cache_keys_n, (uint32_t)n, (uint32_t)b->cache_toks_n,
                          (uint32_t)m};
  b->cache_keys_n += n, b->cache_toks_n += m;
  b->cache_used++;
}

static void px_bpe_piece(px_bpe *b, const char *p, size_t n, int32_t **tokens, size_t *len,
                         size_t *cap) {
  if (n == 1) {
    px_bpe_push(tokens, len, cap, &b->byte_token[(unsigned char)p[0]], 1);
    return;
  }
  px_bpe_cached *slot = NULL;
  uint64_t h = 0;
  if (n <= PX_BPE_CACHE_PIECE) {
    h = px_bpe_hash_bytes(p, n);
    for (size_t i = h & (PX_BPE_CACHE_SLOTS - 1);; i = (i + 1) & (PX_BPE_CACHE_SLOTS - 1)) {
      slot = &b->cache[i];
      if (slot->key_len == 0) break;
      if (slot->hash == h && slot->key_len == n &&
          memcmp(b->cache_keys + slot->key_off, p, n) == 0) {
        px_bpe_push(tokens, len, cap, b->cache_toks + slot->tok_off, slot->tok_n);
        return;
      }
    }
  }
  const size_t m = px_bpe_merge(b, p, n);
  if (slot) {
    if (b->cache_used >= PX_BPE_CACHE_MAX) {
      px_bpe_cache_clear(b);
      size_t i = h & (PX_BPE_CACHE_SLOTS - 1);
      slot = &b->cache[i];
    }
    px_bpe_cache_put(b, slot, h, p, n, b->parts, m);
  }
  if (*len + m > *cap) {
    *cap = (*len + m) * 2 > 64 ? (*len + m) * 2 : 64;
    *tokens = px_realloc(*tokens, *cap * sizeof **tokens);
  }
  for (size_t i = 0; i < m; i++) (*tokens)[*len + i] = b->parts[i].id;
  *len += m;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding: the pre-tokenizer's pieces, and the bytes between them
 * --------------------------------------------------------------------------------------------- */
/* The next match at or after pos: 1 with [*s, *e), 0 when there is none. */
static int px_bpe_next_match(px_bpe *b, const char *text, size_t n, size_t pos, size_t *s,
                             size_t *e) {
  int rc = b->jit ? pcre2_jit_match(b->re, (PCRE2_SPTR)text, n, pos, 0, b->md, b->mctx)
                  : pcre2_match(b->re, (PCRE2_SPTR)text, n, pos, 0, b->md, b->mctx);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && b->jit) /* the JIT stack ran out: interpret */
    rc = pcre2_match(b->re, (PCRE2_SPTR)text, n, pos, PCRE2_NO_JIT, b->md, b->mctx);
  if (rc == PCRE2_ERROR_NOMATCH) return 0;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    px_die(__FILE__, __LINE__, "pcre2_match at byte %zu of %zu failed: %s", pos, n,
           (const char *)msg);
  }
  const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(b->md);
  *s = ov[0], *e = ov[1];
  return 1;
}

size_t px_bpe_encode(px_bpe *b, const char *text, size_t n, int32_t **tokens, size_t *len,
                     size_t *cap) {
  const size_t start = *len;
  size_t pos = 0;
  while (pos < n) {
    size_t s = n, e = n;
    if (!px_bpe_next_match(b, text, n, pos, &s, &e)) s = e = n;
    /* Bytes no match covers are not UTF-8: they are a piece of their own, so every byte string
     * encodes, and decodes back to itself. */
    if (s > pos) px_bpe_piece(b, text + pos, s - pos, tokens, len, cap);
    if (e > s) px_bpe_piece(b, text + s, e - s, tokens, len, cap);
    PX_REQUIRE(e > s || s == n, "GPT-2's pattern matched nothing at byte %zu", s);
    pos = e;
  }
  return *len - start;
}
