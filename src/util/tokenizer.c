/*
 * tokenizer.c — bytes in, bytes out; see tokenizer.h.
 */
#include "proxima/tokenizer.h"

#include <stdio.h>
#include <string.h>

size_t px_tok_encode(int32_t *out, const char *text, size_t n) {
  const unsigned char *b = (const unsigned char *)text;
  for (size_t i = 0; i < n; i++) out[i] = (int32_t)b[i];
  return n;
}

int px_tok_all_bytes(const int32_t *tokens, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] > 255) return 0;
  return 1;
}

size_t px_tok_decode(char *out, const int32_t *tokens, size_t n) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    if (tokens[i] >= 0 && tokens[i] <= 255) out[len++] = (char)(unsigned char)tokens[i];
  out[len] = '\0';
  return len;
}

size_t px_tok_render(char *out, size_t cap, const int32_t *tokens, size_t n) {
  if (cap == 0) return 0;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    char piece[16];
    size_t plen;
    int32_t t = tokens[i];
    if (t >= 0 && t <= 255) {
      piece[0] = (char)(unsigned char)t;
      plen = 1;
    } else {
      const char *name = t == PX_TOK_PAD   ? "pad"
                         : t == PX_TOK_BOS ? "bos"
                         : t == PX_TOK_EOS ? "eos"
                                           : NULL;
      plen = name ? (size_t)snprintf(piece, sizeof piece, "<|%s|>", name)
                  : (size_t)snprintf(piece, sizeof piece, "<|%d|>", (int)t);
    }
    if (len + plen >= cap) break;
    memcpy(out + len, piece, plen);
    len += plen;
  }
  out[len] = '\0';
  return len;
}
