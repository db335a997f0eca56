/*
 * fuzz_tokenizer.c — token decoding (tokenizer.h) on any token ids: the input is the ids
 * (4 bytes each, any int32, specials and ids outside the vocabulary included) after a first
 * byte that sets the display buffer's size. Checks the documented contracts: decode writes at
 * most n bytes plus a NUL and drops exactly the non-byte tokens; render never writes past cap
 * and NUL-ends; encode then decode is the identity on bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t cap = data[0]; /* 0..255: small displays, cut pieces, and cap 0 */
  data++, size--;
  size_t n = size / 4;
  /* exact-size heap copies, so ASan sees any byte read or written past the end */
  int32_t *tokens = malloc(n ? n * sizeof *tokens : 1);
  if (n) memcpy(tokens, data, n * sizeof *tokens);

  char *text = malloc(n + 1);
  size_t len = px_tok_decode(text, tokens, n);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += tokens[i] >= 0 && tokens[i] <= 255;
  PX_FUZZ_CHECK(len == bytes && text[len] == '\0');
  PX_FUZZ_CHECK(px_tok_all_bytes(tokens, n) == (bytes == n));

  char *shown = malloc(cap ? cap : 1);
  size_t slen = px_tok_render(shown, cap, tokens, n);
  PX_FUZZ_CHECK(cap == 0 ? slen == 0 : slen < cap && shown[slen] == '\0');

  /* bytes -> tokens -> bytes */
  int32_t *again = malloc(size ? size * sizeof *again : 1);
  PX_FUZZ_CHECK(px_tok_encode(again, (const char *)data, size) == size);
  PX_FUZZ_CHECK(px_tok_all_bytes(again, size));
  char *round = malloc(size + 1);
  PX_FUZZ_CHECK(px_tok_decode(round, again, size) == size && memcmp(round, data, size) == 0);

  free(round);
  free(again);
  free(shown);
  free(text);
  free(tokens);
  return 0;
}
