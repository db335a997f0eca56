/*
 * tokenizer.h — what turns text into token ids and back, one object for every kind
 * (DESIGN.md section 3). A tokenizer belongs to a model: a checkpoint stores it whole, a data
 * set records which one made it (kind and hash), and a data set made by another is refused.
 *
 * Kinds:
 *   byte  tokens 0–255 are the bytes of the text, so any byte string round-trips with no
 *         vocabulary file; PAD 256, BOS 257, EOS 258 follow them (259 ids).
 *   gpt2  GPT-2's byte-level BPE (bpe.h) from vocab.json + merges.txt (or the same content as
 *         encoder.json + vocab.bpe): ids 0 .. n-1 of the vocabulary, "<|endoftext|>" both BOS
 *         and EOS as in GPT-2, and PAD the first id after the vocabulary (GPT-2 has none).
 *
 * Ids: the vocabulary's own tokens are 0 .. n_vocab-1 (byte: the 256 bytes); the specials are
 * pad, bos and eos; n_ids is one more than the largest id of all, the smallest model vocab_size
 * that holds them. A model may be wider (llm.c pads 50257 to 50304 for speed): the ids from
 * n_ids up, and PAD and BOS (unless it is EOS), are never sampled, trained on or exported.
 * PAD is never EOS: masks are built from lengths, and a sequence ends at the EOS the model
 * produced or was given.
 *
 * Not collective; a gpt2 tokenizer's encoder keeps a cache, so one tokenizer object is used by
 * one thread at a time.
 */
#ifndef PROXIMA_TOKENIZER_H
#define PROXIMA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "proxima/bpe.h"
#include "proxima/error.h"
#include "proxima/text.h"

typedef enum px_tok_kind { PX_TOK_BYTE = 0, PX_TOK_GPT2 = 1 } px_tok_kind;

/* The byte tokenizer's ids. */
enum { PX_TOK_BYTE_PAD = 256, PX_TOK_BYTE_BOS = 257, PX_TOK_BYTE_EOS = 258, PX_TOK_BYTE_IDS = 259 };

typedef struct px_tokenizer {
  px_tok_kind kind;
  int32_t n_vocab; /* the vocabulary's own tokens: ids 0 .. n_vocab-1 */
  int32_t pad, bos, eos;
  int32_t n_ids;        /* max(n_vocab, pad + 1, bos + 1, eos + 1) */
  char hash[65];        /* SHA-256 (hex) of what defines it: px_bpe_hash, or of "byte" */
  px_bpe *bpe;          /* gpt2: the tables; NULL for byte */
  char *vocab, *merges; /* gpt2: the files' text as read (stored in checkpoints), NUL-ended */
  size_t vocab_len, merges_len;
} px_tokenizer;

/* The name of a kind ("byte", "gpt2"), and the reverse (-1 for an unknown name; "bytes", what
 * format_version 1 data sets recorded, is byte). */
const char *px_tok_kind_name(px_tok_kind kind);
int px_tok_kind_parse(const char *name);

/* The byte tokenizer. Never fails; px_tokenizer_free is a no-op on it. */
void px_tokenizer_byte(px_tokenizer *t);

/* The text whose SHA-256 is the byte tokenizer's hash. */
const char *px_tokenizer_byte_definition(void);

/* A gpt2 tokenizer from the text of its two files (copied); vocab_name and merges_name name
 * them in messages. PX_EINPUT when they are not a valid vocabulary, or have no "<|endoftext|>". */
px_status px_tokenizer_gpt2(px_tokenizer *t, const char *vocab, size_t vocab_len,
                            const char *vocab_name, const char *merges, size_t merges_len,
                            const char *merges_name, px_error *err);

/* A gpt2 tokenizer from a directory holding vocab.json + merges.txt (a Hugging Face GPT-2
 * directory) or encoder.json + vocab.bpe (OpenAI's names). PX_EINPUT naming the directory and
 * what is missing or wrong. */
px_status px_tokenizer_load_dir(px_tokenizer *t, const char *dir, px_error *err);

/* The tokenizer a model configuration names: kind "byte", or "gpt2" with its files in dir. */
px_status px_tokenizer_load(px_tokenizer *t, const char *kind, const char *dir, px_error *err);

void px_tokenizer_free(px_tokenizer *t);

/* Whether two tokenizers are the same (kind and hash). */
int px_tokenizer_same(const px_tokenizer *a, const px_tokenizer *b);

/* PX_EINPUT unless a data set made by (kind, hash) was made by t: "DATA was tokenized with
 * gpt2 (sha256 1234abcd…) but the model's tokenizer is byte; ...". what names the data set. */
px_status px_tokenizer_check_data(const px_tokenizer *t, const char *what, const char *kind,
                                  const char *hash, px_error *err);

/* PX_EINPUT unless a model of vocab_size ids holds every id of t (vocab_size >= n_ids). */
px_status px_tokenizer_check_vocab(const px_tokenizer *t, int64_t vocab_size, const char *what,
                                   px_error *err);

/* The model vocab_size that fits t: n_ids, rounded up to a multiple of 64 for a gpt2
 * vocabulary (50257 + PAD -> 50304, as llm.c pads), exactly n_ids for byte (259). */
int64_t px_tokenizer_vocab_size(const px_tokenizer *t);

/* The ids a model's softmax spans, 0 .. n-1: every id a sequence holds as a target (text and
 * EOS): max(n_vocab, eos + 1), 259 for byte (PAD and BOS inside), 50257 for gpt2 (PAD outside).
 * px_gpt_set_live_vocab takes it. */
int32_t px_tokenizer_softmax_span(const px_tokenizer *t);

/* Whether id stands for text (a vocabulary token that is not a special): what data sets hold. */
int px_tokenizer_is_text(const px_tokenizer *t, int32_t id);

/* Whether id may be sampled: a text token or EOS. */
int px_tokenizer_sampleable(const px_tokenizer *t, int32_t id);

/* Appends the tokens of n bytes of text to (*tokens)[*len ...], growing *tokens (*cap entries)
 * as needed. Returns the number appended. Specials in the text are encoded as text. */
size_t px_tokenizer_encode(px_tokenizer *t, const char *text, size_t n, int32_t **tokens,
                           size_t *len, size_t *cap);

/* Appends the bytes tokens stand for to out; specials, and ids outside the vocabulary, are
 * dropped. Returns the number of bytes appended. */
size_t px_tokenizer_decode(const px_tokenizer *t, px_text *out, const int32_t *tokens, size_t n);

/* Appends a display form: text tokens as their bytes, the specials as <|pad|>, <|bos|>,
 * <|eos|> (<|endoftext|> for gpt2), other ids as <|NNN|>. The bytes may not be valid UTF-8
 * (a token may hold part of a character): pass the result through px_text_printable or
 * px_text_json to show it. */
void px_tokenizer_render(const px_tokenizer *t, px_text *out, const int32_t *tokens, size_t n);

#endif
