/*
 * fuzz_bpe.c — GPT-2's byte-level BPE (bpe.h, through tokenizer.h) on any input. The first byte
 * picks what the rest is:
 *   even: the text to encode with a small fixed vocabulary (the 256 bytes, a few dozen merges
 *         of English and of multi-byte characters, <|endoftext|>), and
 *   odd:  a vocab.json and a merges.txt (split where the next two bytes say) to build a
 *         tokenizer from, then the text "Hello, world\xC3\xA9\xFF" and the files themselves to
 *         encode with it when they build.
 * Checks the documented contracts: a bad pair of files is PX_EINPUT with a message, never a
 * crash; every id encode gives is a text token of the vocabulary; decode(encode(s)) is s, byte
 * for byte, whatever s is (invalid UTF-8, NULs, "<|endoftext|>" spelt out); encoding twice (the
 * piece cache warm) gives the same ids.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/bpe.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

static px_tokenizer small;

/* The spelling of the bytes of s (as vocab.json and merges.txt write tokens), JSON-escaped
 * where the spelling holds a quote or a backslash, appended to t. */
static void px_spell(px_text *t, const char *s, size_t n, int json) {
  px_text sp = {0};
  px_bpe_spell(&sp, s, n);
  for (size_t i = 0; i < sp.n; i++) {
    if (json && (sp.p[i] == '"' || sp.p[i] == '\\')) px_text_put(t, "\\", 1);
    px_text_put(t, sp.p + i, 1);
  }
  px_text_free(&sp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* merges "a b" in rank order; each result a token */
  static const char *const merges[][2] = {
      {" ", "t"},       {"h", "e"},       {" t", "he"},         {"i", "n"},   {" ", "a"},
      {"e", "r"},       {"o", "n"},       {" ", "w"},           {"r", "e"},   {" ", "s"},
      {"in", "g"},      {"e", "d"},       {"l", "l"},           {"o", "r"},   {" w", "or"},
      {" wor", "l"},    {" worl", "d"},   {"H", "e"},           {"He", "ll"}, {"Hell", "o"},
      {"\xC3", "\xA9"}, {"\xE6", "\x9D"}, {"\xE6\x9D", "\xB1"}, {"1", "2"},   {"12", "3"},
      {" ", " "},       {"  ", "  "},     {"'", "s"},           {"\n", "\n"}};
  const int n_merges = (int)(sizeof merges / sizeof merges[0]);
  px_text v = {0}, m = {0};
  px_text_str(&v, "{");
  char num[32];
  for (int b = 0; b < 256; b++) {
    const char one = (char)b;
    px_text_str(&v, b ? ", \"" : "\"");
    px_spell(&v, &one, 1, 1);
    snprintf(num, sizeof num, "\": %d", b);
    px_text_str(&v, num);
  }
  px_text_str(&m, "#version: 0.2\n");
  for (int i = 0; i < n_merges; i++) {
    char both[16];
    snprintf(both, sizeof both, "%s%s", merges[i][0], merges[i][1]);
    px_text_str(&v, ", \"");
    px_spell(&v, both, strlen(both), 1);
    snprintf(num, sizeof num, "\": %d", 256 + i);
    px_text_str(&v, num);
    px_spell(&m, merges[i][0], strlen(merges[i][0]), 0);
    px_text_str(&m, " ");
    px_spell(&m, merges[i][1], strlen(merges[i][1]), 0);
    px_text_str(&m, "\n");
  }
  snprintf(num, sizeof num, ", \"<|endoftext|>\": %d}", 256 + n_merges);
  px_text_str(&v, num);
  px_error err;
  if (px_tokenizer_gpt2(&small, v.p, v.n, "vocab.json", m.p, m.n, "merges.txt", &err) != PX_OK) {
    fprintf(stderr, "fuzz_bpe: the fixed vocabulary does not build: %s\n", err.msg);
    abort();
  }
  px_text_free(&v);
  px_text_free(&m);
  return 0;
}

/* Encodes n bytes of s with t twice and checks the contracts. */
static void px_check_round_trip(px_tokenizer *t, const char *s, size_t n) {
  int32_t *ids = NULL, *again = NULL;
  size_t len = 0, cap = 0, len2 = 0, cap2 = 0;
  size_t got = px_tokenizer_encode(t, s, n, &ids, &len, &cap);
  PX_FUZZ_CHECK(got == len && (n == 0 || len >= 1) && len <= n);
  for (size_t i = 0; i < len; i++) PX_FUZZ_CHECK(px_tokenizer_is_text(t, ids[i]));
  px_text back = {0};
  px_tokenizer_decode(t, &back, ids, len);
  PX_FUZZ_CHECK(back.n == n && (n == 0 || memcmp(back.p, s, n) == 0));
  px_tokenizer_encode(t, s, n, &again, &len2, &cap2);
  PX_FUZZ_CHECK(len2 == len && (len == 0 || memcmp(again, ids, len * sizeof *ids) == 0));
  px_text_free(&back);
  free(ids);
  free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const int files = data[0] & 1;
  data++, size--;
  if (!files) {
    char *s = malloc(size ? size : 1); /* exact size: ASan sees a read past the end */
    if (size) memcpy(s, data, size);
    px_check_round_trip(&small, s, size);
    free(s);
    return 0;
  }
  if (size < 2) return 0;
  size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 1);
  data += 2, size -= 2;
  char *vocab = malloc(split + 1), *merges = malloc(size - split + 1);
  memcpy(vocab, data, split);
  memcpy(merges, data + split, size - split);
  vocab[split] = merges[size - split] = '\0';
  px_tokenizer t;
  px_error err;
  err.msg[0] = '\0';
  px_status st =
      px_tokenizer_gpt2(&t, vocab, split, "vocab.json", merges, size - split, "merges.txt", &err);
  PX_FUZZ_CHECK(st == PX_OK || (st == PX_EINPUT && err.msg[0]));
  if (getenv("PX_FUZZ_VERBOSE"))
    fprintf(stderr, "fuzz_bpe: files %s\n", st == PX_OK ? "build" : err.msg);
  if (st == PX_OK) {
    PX_FUZZ_CHECK(t.n_vocab >= 256 && t.eos < t.n_vocab && t.pad == t.n_vocab);
    const char text[] = "Hello, world\xC3\xA9\xFF<|endoftext|>";
    px_check_round_trip(&t, text, sizeof text - 1);
    px_check_round_trip(&t, vocab, split);
    px_check_round_trip(&t, merges, size - split);
    px_tokenizer_free(&t);
  }
  free(vocab);
  free(merges);
  return 0;
}
