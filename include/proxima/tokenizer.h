/*
 * tokenizer.h — the byte tokenizer (DESIGN.md section 3): tokens 0–255 are the bytes of the
 * text, so any UTF-8 (indeed any byte string) round-trips with no vocabulary file, and three
 * special tokens follow them. PAD is never EOS: masks are built from lengths, and a sequence's
 * end is the EOS token the model produced or was given.
 */
#ifndef PROXIMA_TOKENIZER_H
#define PROXIMA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

enum {
  PX_TOK_PAD = 256,  /* fills batch slots after a sequence's end; never trained on */
  PX_TOK_BOS = 257,  /* starts every sequence */
  PX_TOK_EOS = 258,  /* ends a completion */
  PX_TOK_COUNT = 259 /* the smallest vocabulary that holds every token */
};

/* Writes the n bytes of text as tokens into out (room for n). Returns n. */
size_t px_tok_encode(int32_t *out, const char *text, size_t n);

/* Whether every token is a byte (0–255): what a stored text field must hold. */
int px_tok_all_bytes(const int32_t *tokens, size_t n);

/* Decodes tokens into out (room for n + 1 bytes) as the bytes they stand for; the special
 * tokens are dropped. Returns the number of bytes written (a NUL follows them). */
size_t px_tok_decode(char *out, const int32_t *tokens, size_t n);

/* Decodes for display: bytes as they are, specials as <|pad|>, <|bos|>, <|eos|>, tokens outside
 * the vocabulary as <|NNN|>. out has room for cap bytes; the text is cut (and NUL-ended) if it
 * does not fit. Returns the length written. */
size_t px_tok_render(char *out, size_t cap, const int32_t *tokens, size_t n);

#endif
