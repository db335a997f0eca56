/*
 * bpe.h — GPT-2's byte-level byte-pair encoding (BPE): the tables of a vocabulary and the
 * encoder and decoder over them. tokenizer.h wraps it as one kind of px_tokenizer.
 *
 * The files are GPT-2's: vocab.json (a JSON object from token string to id; OpenAI's
 * encoder.json is the same content) and merges.txt (OpenAI's vocab.bpe: an optional
 * "#version" line, then one merge "a b" per line, ranked in file order; blank lines and a
 * final "\r" on each line are ignored). Token strings spell bytes through GPT-2's byte ↔
 * unicode table (bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
 * bytes for U+0100 onwards); every one of the 256 bytes must have a token of its own.
 *
 * Encoding: text is cut into pieces by GPT-2's pre-tokenizer pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (PCRE2, UTF + UCP, compiled once, JIT where available); bytes no match covers (invalid UTF-8)
 * form pieces of their own, so any byte string encodes and decodes back exactly. Each piece's
 * bytes are merged by rank, lowest first (the leftmost of equal pairs), until no pair of parts
 * is a merge; the parts are tokens. Special tokens such as "<|endoftext|>" inside the text are
 * encoded as ordinary text: text never injects a special token.
 *
 * Against npm's gpt-3-encoder (tests/test_bpe_reference.c): the same ids, except where the two
 * regex engines disagree on a character class (U+0085, U+180E and U+FEFF as white space; letters
 * and digits newer than PCRE2's Unicode tables).
 */
#ifndef PROXIMA_BPE_H
#define PROXIMA_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"
#include "proxima/text.h"

typedef struct px_bpe px_bpe;

/* Builds the tables from the text of vocab.json (vocab_len bytes) and merges.txt. The ids
 * must be exactly 0 .. n-1; every merge's two parts and their concatenation must be tokens,
 * and no merge may repeat. Compiles the pre-tokenizer (*out owns it).
 * vocab_name and merges_name name the sources in messages (e.g. "DIR/vocab.json"). PX_EINPUT
 * with what is wrong and where (a line of merges.txt, a key of vocab.json). Not collective. */
px_status px_bpe_build(px_bpe **out, const char *vocab, size_t vocab_len, const char *vocab_name,
                       const char *merges, size_t merges_len, const char *merges_name,
                       px_error *err);
void px_bpe_free(px_bpe *b);

/* n: the ids of the vocabulary are 0 .. n-1. */
int32_t px_bpe_vocab_size(const px_bpe *b);

/* The id of a token string as vocab.json spells it (e.g. "<|endoftext|>"), or -1. */
int32_t px_bpe_token_id(const px_bpe *b, const char *token);

/* The bytes token id stands for (*len of them), or NULL when id is not in the vocabulary. */
const char *px_bpe_token_bytes(const px_bpe *b, int32_t id, size_t *len);

/* The SHA-256, as 64 lowercase hex digits and a NUL, of the vocabulary and the merges in a
 * canonical form, so the same tokenizer has the same hash whatever the files' layout or names:
 * "gpt2-bpe\nvocab N\n", each id's token string (as vocab.json spells it) and "\n" in id order,
 * "merges M\n", then each merge "a b\n" in rank order (UTF-8; token strings hold no space or
 * newline). Computed once by px_bpe_build. */
void px_bpe_hash(const px_bpe *b, char hex[65]);

/* Appends the tokens of n bytes of text (any bytes: NULs and invalid UTF-8 included) to
 * (*tokens)[*len ...], growing *tokens (*cap entries, px_realloc) as needed. Returns the number
 * appended. Not thread-safe: a cache of pieces already encoded, and the regex's match data,
 * live in b; give each thread its own px_bpe. */
size_t px_bpe_encode(px_bpe *b, const char *text, size_t n, int32_t **tokens, size_t *len,
                     size_t *cap);

/* Appends to out the token string that spells n bytes, as vocab.json and merges.txt write
 * tokens: each byte as its character of GPT-2's byte <-> unicode table, in UTF-8. Not
 * collective. */
void px_bpe_spell(px_text *out, const char *bytes, size_t n);

#endif
