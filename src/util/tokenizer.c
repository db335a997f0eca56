/*
 * tokenizer.c — the tokenizer object over its kinds (byte here, gpt2 through bpe.c): ids,
 * loading, the checks that tie a tokenizer to data sets and models, encoding and decoding.
 */
#include "proxima/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/fsutil.h"

/* The SHA-256 of "proxima byte tokenizer: bytes 0-255, PAD 256, BOS 257, EOS 258", the byte
 * tokenizer's definition (test_tokenizer checks it against OpenSSL). */
#define PX_TOK_BYTE_HASH "1043e4e03571c955fa8d630c4c0d2373811d69242d09f34ae064bb6195b80ddf"
#define PX_TOK_BYTE_DEFINITION "proxima byte tokenizer: bytes 0-255, PAD 256, BOS 257, EOS 258"

/* The largest vocabulary file read (GPT-2's vocab.json is about 1 MB, merges.txt 0.5 MB). */
#define PX_TOK_MAX_FILE ((size_t)256 << 20)

static const char *const px_tok_kind_names[] = {"byte", "gpt2"};

const char *px_tok_kind_name(px_tok_kind kind) { return px_tok_kind_names[kind]; }

int px_tok_kind_parse(const char *name) {
  if (strcmp(name, "byte") == 0 || strcmp(name, "bytes") == 0) return PX_TOK_BYTE;
  if (strcmp(name, "gpt2") == 0) return PX_TOK_GPT2;
  return -1;
}

void px_tokenizer_byte(px_tokenizer *t) {
  memset(t, 0, sizeof *t);
  t->kind = PX_TOK_BYTE;
  t->n_vocab = 256;
  t->pad = PX_TOK_BYTE_PAD;
  t->bos = PX_TOK_BYTE_BOS;
  t->eos = PX_TOK_BYTE_EOS;
  t->n_ids = PX_TOK_BYTE_IDS;
  memcpy(t->hash, PX_TOK_BYTE_HASH, sizeof t->hash);
}

const char *px_tokenizer_byte_definition(void) { return PX_TOK_BYTE_DEFINITION; }

static char *px_copy_text(const char *s, size_t n) {
  char *p = px_malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

px_status px_tokenizer_gpt2(px_tokenizer *t, const char *vocab, size_t vocab_len,
                            const char *vocab_name, const char *merges, size_t merges_len,
                            const char *merges_name, px_error *err) {
  memset(t, 0, sizeof *t);
  px_bpe *bpe = NULL;
  PX_TRY(px_bpe_build(&bpe, vocab, vocab_len, vocab_name, merges, merges_len, merges_name, err));
  int32_t eot = px_bpe_token_id(bpe, "<|endoftext|>");
  if (eot < 0) {
    px_bpe_free(bpe);
    return px_error_set(err, PX_EINPUT,
                        "%s: no \"<|endoftext|>\" token: a gpt2 vocabulary needs it as the end "
                        "of text",
                        vocab_name);
  }
  t->kind = PX_TOK_GPT2;
  t->bpe = bpe;
  t->n_vocab = px_bpe_vocab_size(bpe);
  t->bos = t->eos = eot;
  t->pad = t->n_vocab; /* GPT-2 has no PAD: the first id after the vocabulary */
  t->n_ids = t->n_vocab + 1;
  px_bpe_hash(bpe, t->hash);
  t->vocab = px_copy_text(vocab, vocab_len);
  t->vocab_len = vocab_len;
  t->merges = px_copy_text(merges, merges_len);
  t->merges_len = merges_len;
  return PX_OK;
}

/* Reads DIR/a and DIR/b when both are there: 1; neither: 0 (nothing read); one: PX_EINPUT. */
static px_status px_read_pair(const char *dir, const char *a, const char *b, char **ta, size_t *na,
                              char **tb, size_t *nb, char *pa, char *pb, size_t n, int *found,
                              px_error *err) {
  (void)snprintf(pa, n, "%s/%s", dir, a);
  (void)snprintf(pb, n, "%s/%s", dir, b);
  int ha = px_fs_exists(pa), hb = px_fs_exists(pb);
  *found = ha && hb;
  if (!ha && !hb) return PX_OK;
  if (!*found)
    return px_error_set(err, PX_EINPUT, "%s: has %s but not %s: a gpt2 tokenizer needs both", dir,
                        ha ? a : b, ha ? b : a);
  PX_TRY(px_fs_read_file(pa, PX_TOK_MAX_FILE, ta, na, err));
  px_status st = px_fs_read_file(pb, PX_TOK_MAX_FILE, tb, nb, err);
  if (st != PX_OK) free(*ta), *ta = NULL;
  return st;
}

px_status px_tokenizer_load_dir(px_tokenizer *t, const char *dir, px_error *err) {
  memset(t, 0, sizeof *t);
  if (!dir || !dir[0])
    return px_error_set(err, PX_EINPUT,
                        "no tokenizer directory: a gpt2 tokenizer reads vocab.json and "
                        "merges.txt (or encoder.json and vocab.bpe) from one");
  char pv[4200], pm[4200];
  char *vocab = NULL, *merges = NULL;
  size_t nv = 0, nm = 0;
  int found = 0;
  PX_TRY(px_read_pair(dir, "vocab.json", "merges.txt", &vocab, &nv, &merges, &nm, pv, pm, sizeof pv,
                      &found, err));
  if (!found)
    PX_TRY(px_read_pair(dir, "encoder.json", "vocab.bpe", &vocab, &nv, &merges, &nm, pv, pm,
                        sizeof pv, &found, err));
  if (!found)
    return px_error_set(err, PX_EINPUT,
                        "%s: no tokenizer files: expected vocab.json and merges.txt (a Hugging "
                        "Face GPT-2 directory) or encoder.json and vocab.bpe",
                        dir);
  px_status st = px_tokenizer_gpt2(t, vocab, nv, pv, merges, nm, pm, err);
  free(vocab);
  free(merges);
  return st;
}

px_status px_tokenizer_load(px_tokenizer *t, const char *kind, const char *dir, px_error *err) {
  int k = px_tok_kind_parse(kind);
  if (k < 0)
    return px_error_set(err, PX_EINPUT, "unknown tokenizer \"%s\": expected byte or gpt2", kind);
  if (k == PX_TOK_BYTE) {
    px_tokenizer_byte(t);
    return PX_OK;
  }
  return px_tokenizer_load_dir(t, dir, err);
}

void px_tokenizer_free(px_tokenizer *t) {
  if (t->bpe) px_bpe_free(t->bpe);
  free(t->vocab);
  free(t->merges);
  memset(t, 0, sizeof *t);
}

int px_tokenizer_same(const px_tokenizer *a, const px_tokenizer *b) {
  return a->kind == b->kind && strcmp(a->hash, b->hash) == 0;
}

px_status px_tokenizer_check_data(const px_tokenizer *t, const char *what, const char *kind,
                                  const char *hash, px_error *err) {
  int k = px_tok_kind_parse(kind);
  /* Data sets of format_version 1 recorded "bytes" and no hash: the byte tokenizer. */
  int same = k == (int)t->kind && (k == PX_TOK_BYTE || strcmp(hash, t->hash) == 0);
  if (same) return PX_OK;
  return px_error_set(err, PX_EINPUT,
                      "%s was tokenized with %s (sha256 %.12s) but the model's tokenizer is %s "
                      "(sha256 %.12s): import the data again with `proxima data import "
                      "--tokenizer` and the model's checkpoint or tokenizer directory",
                      what, kind, hash[0] ? hash : "-", px_tok_kind_name(t->kind), t->hash);
}

px_status px_tokenizer_check_vocab(const px_tokenizer *t, int64_t vocab_size, const char *what,
                                   px_error *err) {
  if (vocab_size >= t->n_ids) return PX_OK;
  return px_error_set(err, PX_EINPUT,
                      "%s has vocab_size %lld but its %s tokenizer has %d ids (PAD included): "
                      "expected model.vocab_size >= %d (0 picks %lld)",
                      what, (long long)vocab_size, px_tok_kind_name(t->kind), (int)t->n_ids,
                      (int)t->n_ids, (long long)px_tokenizer_vocab_size(t));
}

int64_t px_tokenizer_vocab_size(const px_tokenizer *t) {
  if (t->kind == PX_TOK_BYTE) return t->n_ids;
  return ((int64_t)t->n_ids + 63) / 64 * 64;
}

int32_t px_tokenizer_softmax_span(const px_tokenizer *t) {
  return t->n_vocab > t->eos + 1 ? t->n_vocab : t->eos + 1;
}

int px_tokenizer_is_text(const px_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_vocab && id != t->pad && id != t->bos && id != t->eos;
}

int px_tokenizer_sampleable(const px_tokenizer *t, int32_t id) {
  return id == t->eos || px_tokenizer_is_text(t, id);
}

size_t px_tokenizer_encode(px_tokenizer *t, const char *text, size_t n, int32_t **tokens,
                           size_t *len, size_t *cap) {
  if (t->kind == PX_TOK_GPT2) return px_bpe_encode(t->bpe, text, n, tokens, len, cap);
  if (*len + n > *cap) {
    *cap = *len + n > 2 * *cap ? *len + n : 2 * *cap;
    *tokens = px_realloc(*tokens, (*cap ? *cap : 1) * sizeof **tokens);
  }
  const unsigned char *b = (const unsigned char *)text;
  for (size_t i = 0; i < n; i++) (*tokens)[*len + i] = (int32_t)b[i];
  *len += n;
  return n;
}

/* The bytes of a text token (*n of them), or NULL for any other id. */
static const char *px_token_bytes(const px_tokenizer *t, int32_t id, char *one, size_t *n) {
  if (!px_tokenizer_is_text(t, id)) return NULL;
  if (t->kind == PX_TOK_GPT2) return px_bpe_token_bytes(t->bpe, id, n);
  one[0] = (char)(unsigned char)id;
  *n = 1;
  return one;
}

size_t px_tokenizer_decode(const px_tokenizer *t, px_text *out, const int32_t *tokens, size_t n) {
  size_t before = out->n;
  px_text_put(out, "", 0);
  for (size_t i = 0; i < n; i++) {
    char one[1];
    size_t len;
    const char *bytes = px_token_bytes(t, tokens[i], one, &len);
    if (bytes) px_text_put(out, bytes, len);
  }
  return out->n - before;
}

void px_tokenizer_render(const px_tokenizer *t, px_text *out, const int32_t *tokens, size_t n) {
  px_text_put(out, "", 0);
  for (size_t i = 0; i < n; i++) {
    char one[1], name[32];
    size_t len;
    int32_t id = tokens[i];
    const char *bytes = px_token_bytes(t, id, one, &len);
    if (bytes) {
      px_text_put(out, bytes, len);
      continue;
    }
    if (t->kind == PX_TOK_GPT2 && id == t->eos)
      (void)snprintf(name, sizeof name, "<|endoftext|>");
    else if (id == t->pad)
      (void)snprintf(name, sizeof name, "<|pad|>");
    else if (id == t->bos)
      (void)snprintf(name, sizeof name, "<|bos|>");
    else if (id == t->eos)
      (void)snprintf(name, sizeof name, "<|eos|>");
    else
      (void)snprintf(name, sizeof name, "<|%d|>", (int)id);
    px_text_str(out, name);
  }
}
