/*
 * ckpt_tokenizer.c — the tokenizer a checkpoint stores whole, so that a checkpoint alone is
 * enough to generate, evaluate and export on any machine:
 *
 *   /tokenizer  attributes kind ("byte" | "gpt2"), sha256 (px_tokenizer's hash), n_vocab,
 *               pad_id, bos_id, eos_id; for gpt2 also the datasets vocab and merges (uint8,
 *               the text of vocab.json and merges.txt as read, Fletcher-32 like every dataset)
 */
#include "ckpt_tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "h5util.h"

/* The largest stored vocabulary file read back. */
#define PX_CKPT_TOK_MAX ((hsize_t)256 << 20)

herr_t px_ckpt_write_tokenizer(hid_t file, hid_t gcpl, const px_tokenizer *t,
                               px_h5_chunk_writer *w) {
  hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, gcpl, H5P_DEFAULT);
  if (g < 0) return -1;
  herr_t rc = 0;
  rc |= px_h5_attr_write_str(g, "kind", px_tok_kind_name(t->kind));
  rc |= px_h5_attr_write_str(g, "sha256", t->hash);
  rc |= px_h5_attr_write_i64(g, "n_vocab", t->n_vocab);
  rc |= px_h5_attr_write_i64(g, "pad_id", t->pad);
  rc |= px_h5_attr_write_i64(g, "bos_id", t->bos);
  rc |= px_h5_attr_write_i64(g, "eos_id", t->eos);
  rc = rc < 0 ? -1 : 0;
  if (t->kind == PX_TOK_GPT2) {
    hsize_t nv[1] = {t->vocab_len}, nm[1] = {t->merges_len};
    if (rc >= 0)
      rc = px_h5_write_checksummed(g, "vocab", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, nv, 1 << 20,
                                   t->vocab, 0, w);
    if (rc >= 0)
      rc = px_h5_write_checksummed(g, "merges", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 1, nm, 1 << 20,
                                   t->merges, 0, w);
  }
  if (H5Gclose(g) < 0 && rc >= 0) rc = -1;
  return rc;
}

/* A uint8 dataset of g as text into *text (NUL-ended, *n bytes); the caller frees it. */
static px_status px_read_bytes(hid_t g, const char *name, char **text, size_t *n, const char *where,
                               px_error *err) {
  hid_t d;
  hsize_t len;
  *text = NULL;
  PX_TRY(px_h5_open_int_1d(g, name, &d, &len, where, err));
  px_status st = PX_OK;
  if (len == 0 || len > PX_CKPT_TOK_MAX)
    st = px_error_set(err, PX_EINPUT, "%s: %s holds %llu bytes, expected 1 to %llu", where, name,
                      (unsigned long long)len, (unsigned long long)PX_CKPT_TOK_MAX);
  if (st == PX_OK) {
    *text = px_malloc((size_t)len + 1);
    if (px_h5_read_rows(d, H5T_NATIVE_UCHAR, 0, len, *text) < 0)
      st = px_h5_fail(err, PX_EINPUT, "%s: cannot read %s (damaged?)", where, name);
    else
      (*text)[len] = '\0', *n = (size_t)len;
  }
  if (H5Dclose(d) < 0 && st == PX_OK) st = px_h5_fail(err, PX_ERUN, "%s: closing %s", where, name);
  if (st != PX_OK) free(*text), *text = NULL;
  return st;
}

/* The stored tokenizer's files into t, then its attributes checked against what they build. */
static px_status px_read_group(hid_t g, const char *where, px_tokenizer *t, px_error *err) {
  char kind[32], hash[80];
  int64_t ids[4];
  static const char *const names[4] = {"n_vocab", "pad_id", "bos_id", "eos_id"};
  PX_TRY(px_h5_attr_read_str(g, "kind", kind, sizeof kind, where, err));
  PX_TRY(px_h5_attr_read_str(g, "sha256", hash, sizeof hash, where, err));
  for (int i = 0; i < 4; i++) PX_TRY(px_h5_attr_read_i64(g, names[i], &ids[i], where, err));
  int k = px_tok_kind_parse(kind);
  if (k < 0)
    return px_error_set(err, PX_EINPUT, "%s: kind is '%s', expected byte or gpt2", where, kind);
  if (k == PX_TOK_BYTE) {
    px_tokenizer_byte(t);
  } else {
    char *vocab = NULL, *merges = NULL, vname[4400], mname[4400];
    size_t nv = 0, nm = 0;
    snprintf(vname, sizeof vname, "%s/vocab", where);
    snprintf(mname, sizeof mname, "%s/merges", where);
    px_status st = px_read_bytes(g, "vocab", &vocab, &nv, where, err);
    if (st == PX_OK) st = px_read_bytes(g, "merges", &merges, &nm, where, err);
    if (st == PX_OK) st = px_tokenizer_gpt2(t, vocab, nv, vname, merges, nm, mname, err);
    free(vocab);
    free(merges);
    PX_TRY(st);
  }
  const int64_t have[4] = {t->n_vocab, t->pad, t->bos, t->eos};
  px_status st = PX_OK;
  if (strcmp(hash, t->hash) != 0)
    st = px_error_set(err, PX_EINPUT, "%s: sha256 is %s but the stored files hash to %s", where,
                      hash, t->hash);
  for (int i = 0; i < 4 && st == PX_OK; i++)
    if (ids[i] != have[i])
      st = px_error_set(err, PX_EINPUT, "%s: %s is %lld but the stored tokenizer has %lld", where,
                        names[i], (long long)ids[i], (long long)have[i]);
  if (st != PX_OK) px_tokenizer_free(t);
  return st;
}

px_status px_ckpt_read_tokenizer_in(hid_t file, const char *path, px_tokenizer *t, px_error *err) {
  memset(t, 0, sizeof *t);
  if (H5Lexists(file, "tokenizer", H5P_DEFAULT) <= 0) {
    px_tokenizer_byte(t);
    return PX_OK;
  }
  char where[4300];
  snprintf(where, sizeof where, "%s: /tokenizer", path);
  hid_t g = H5Gopen2(file, "tokenizer", H5P_DEFAULT);
  if (g < 0) return px_error_set(err, PX_EINPUT, "%s is not a group", where);
  px_status st = px_read_group(g, where, t, err);
  if (H5Gclose(g) < 0 && st == PX_OK) {
    px_tokenizer_free(t);
    st = px_h5_fail(err, PX_ERUN, "%s: closing the group failed", where);
  }
  return st;
}
