/*
 * fuzz_tokenizer.c — the byte tokenizer's decoding and display (tokenizer.h) on any token ids:
 * the input is the ids (4 bytes each, any int32, specials and ids outside the vocabulary
 * included) after a first byte that sets how many bytes the output buffers already hold (the
 * calls append). Checks the documented contracts: decode appends exactly the bytes of the text
 * tokens (0-255) and drops the rest; render appends every token, text as its byte, PAD, BOS and
 * EOS by name and any other id as <|NNN|>; both keep the buffer NUL-ended and leave what it held;
 * encode then decode is the identity on bytes, and every encoded token is text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

static px_tokenizer tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  px_tokenizer_byte(&tok);
  return 0;
}

/* A buffer already holding n bytes 'p'. */
static void px_prefilled(px_text *t, size_t n) {
  memset(t, 0, sizeof *t);
  for (size_t i = 0; i < n; i++) px_text_put(t, "p", 1);
}

static int px_kept_prefix(const px_text *t, size_t n) {
  if (t->n < n || !t->p || t->p[t->n] != '\0') return 0;
  for (size_t i = 0; i < n; i++)
    if (t->p[i] != 'p') return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t pre = data[0] % 64; /* what the buffers hold before the calls (0: empty, p NULL) */
  data++, size--;
  size_t n = size / 4;
  /* exact-size heap copies, so ASan sees any byte read or written past the end */
  int32_t *tokens = malloc(n ? n * sizeof *tokens : 1);
  if (n) memcpy(tokens, data, n * sizeof *tokens);

  /* decode: the text tokens' bytes, in order, after what was there */
  px_text text;
  px_prefilled(&text, pre);
  size_t len = px_tokenizer_decode(&tok, &text, tokens, n);
  PX_FUZZ_CHECK(px_kept_prefix(&text, pre) && text.n == pre + len);
  size_t at = pre;
  for (size_t i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] > 255) continue;
    PX_FUZZ_CHECK(px_tokenizer_is_text(&tok, tokens[i]));
    PX_FUZZ_CHECK(at < text.n && (unsigned char)text.p[at] == (unsigned char)tokens[i]);
    at++;
  }
  PX_FUZZ_CHECK(at == text.n);

  /* render: every token shown, the specials and other ids by name */
  px_text shown;
  px_prefilled(&shown, pre);
  px_tokenizer_render(&tok, &shown, tokens, n);
  PX_FUZZ_CHECK(px_kept_prefix(&shown, pre));
  at = pre;
  for (size_t i = 0; i < n; i++) {
    const int32_t id = tokens[i];
    char name[32];
    if (id >= 0 && id <= 255) {
      PX_FUZZ_CHECK(at < shown.n && (unsigned char)shown.p[at] == (unsigned char)id);
      at++;
      continue;
    }
    if (id == PX_TOK_BYTE_PAD)
      snprintf(name, sizeof name, "<|pad|>");
    else if (id == PX_TOK_BYTE_BOS)
      snprintf(name, sizeof name, "<|bos|>");
    else if (id == PX_TOK_BYTE_EOS)
      snprintf(name, sizeof name, "<|eos|>");
    else
      snprintf(name, sizeof name, "<|%d|>", (int)id);
    size_t nl = strlen(name);
    PX_FUZZ_CHECK(at + nl <= shown.n && memcmp(shown.p + at, name, nl) == 0);
    at += nl;
  }
  PX_FUZZ_CHECK(at == shown.n);

  /* bytes -> tokens -> bytes */
  int32_t *again = NULL;
  size_t again_n = 0, again_cap = 0;
  PX_FUZZ_CHECK(px_tokenizer_encode(&tok, (const char *)data, size, &again, &again_n, &again_cap) ==
                size);
  PX_FUZZ_CHECK(again_n == size && again_cap >= size);
  for (size_t i = 0; i < size; i++) PX_FUZZ_CHECK(px_tokenizer_is_text(&tok, again[i]));
  px_text round = {0};
  PX_FUZZ_CHECK(px_tokenizer_decode(&tok, &round, again, size) == size);
  PX_FUZZ_CHECK(round.n == size && (size == 0 || memcmp(round.p, data, size) == 0));

  px_text_free(&round);
  free(again);
  px_text_free(&shown);
  px_text_free(&text);
  free(tokens);
  return 0;
}
