/*
 * dataset.c — ragged tokenized data sets in HDF5; the layout is in dataset.h.
 */
#include "proxima/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

#define PX_DATASET_FORMAT "proxima-dataset"
#define PX_DATASET_VERSION 2

static const char *const px_kind_names[] = {"text", "sft", "prefs", "prompts"};
static const char *const px_fields_text[] = {"text"};
static const char *const px_fields_sft[] = {"prompt", "completion"};
static const char *const px_fields_prefs[] = {"prompt", "chosen", "rejected"};
static const char *const px_fields_prompts[] = {"prompt", "reference"};

const char *px_data_kind_name(px_data_kind kind) { return px_kind_names[kind]; }

int px_data_kind_parse(const char *name) {
  for (int k = 0; k < 4; k++)
    if (strcmp(name, px_kind_names[k]) == 0) return k;
  return -1;
}

const char *const *px_data_fields(px_data_kind kind, int *n_required, int *n_possible) {
  switch (kind) {
  case PX_DATA_TEXT: *n_required = *n_possible = 1; return px_fields_text;
  case PX_DATA_SFT: *n_required = *n_possible = 2; return px_fields_sft;
  case PX_DATA_PREFS: *n_required = *n_possible = 3; return px_fields_prefs;
  default: *n_required = 1, *n_possible = 2; return px_fields_prompts;
  }
}

const int32_t *px_dataset_row(const px_dataset *ds, int f, int64_t i, int64_t *len) {
  const px_ragged *r = &ds->field[f];
  *len = r->offsets[i + 1] - r->offsets[i];
  return r->tokens + r->offsets[i];
}

void px_dataset_init(px_dataset *ds, px_data_kind kind, int n_fields, px_tokenizer *tok) {
  memset(ds, 0, sizeof *ds);
  ds->kind = kind;
  ds->n_fields = n_fields;
  ds->tok = tok;
  snprintf(ds->tokenizer, sizeof ds->tokenizer, "%s", px_tok_kind_name(tok->kind));
  memcpy(ds->tokenizer_hash, tok->hash, sizeof ds->tokenizer_hash);
  ds->tokenizer_n_vocab = tok->n_vocab;
  for (int f = 0; f < n_fields; f++) ds->field[f].offsets = px_calloc(1, sizeof(int64_t));
}

void px_dataset_append(px_dataset *ds, const char *const *texts, const size_t *lens) {
  if (ds->n + 2 > ds->cap_rows) {
    ds->cap_rows = 2 * ds->cap_rows + 64;
    for (int f = 0; f < ds->n_fields; f++)
      ds->field[f].offsets =
          px_realloc(ds->field[f].offsets, (size_t)ds->cap_rows * sizeof(int64_t));
  }
  for (int f = 0; f < ds->n_fields; f++) {
    px_ragged *r = &ds->field[f];
    /* tokens is never NULL once a record is in (even an empty one): rows point into it */
    if (!r->tokens) {
      ds->cap_tokens[f] = 1024;
      r->tokens = px_malloc((size_t)ds->cap_tokens[f] * sizeof(int32_t));
    }
    size_t len = (size_t)r->offsets[ds->n], cap = (size_t)ds->cap_tokens[f];
    px_tokenizer_encode(ds->tok, texts[f], lens[f], &r->tokens, &len, &cap);
    ds->cap_tokens[f] = (int64_t)cap;
    r->offsets[ds->n + 1] = (int64_t)len;
  }
  ds->n++;
  ds->n_total = ds->n;
}

void px_dataset_free(px_dataset *ds) {
  for (int f = 0; f < PX_DATA_MAX_FIELDS; f++) {
    free(ds->field[f].offsets);
    free(ds->field[f].tokens);
  }
  memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------------------------------- */

/* The root attributes and a group per field (its offsets and tokens) into file. <0 on failure. */
static herr_t px_write_records(hid_t file, const px_dataset *ds) {
  int n_req, n_pos;
  const char *const *names = px_data_fields(ds->kind, &n_req, &n_pos);
  herr_t rc = 0;
  rc |= px_h5_attr_write_str(file, "format", PX_DATASET_FORMAT);
  rc |= px_h5_attr_write_i64(file, "format_version", PX_DATASET_VERSION);
  rc |= px_h5_attr_write_str(file, "kind", px_data_kind_name(ds->kind));
  rc |= px_h5_attr_write_i64(file, "n_records", ds->n);
  rc |= px_h5_attr_write_str(file, "tokenizer", ds->tokenizer);
  rc |= px_h5_attr_write_str(file, "tokenizer_sha256", ds->tokenizer_hash);
  rc |= px_h5_attr_write_i64(file, "tokenizer_n_vocab", ds->tokenizer_n_vocab);
  hid_t gcpl = px_h5_gcpl();
  for (int f = 0; f < ds->n_fields && rc >= 0; f++) {
    hid_t g = H5Gcreate2(file, names[f], H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (g < 0) {
      rc = -1;
      break;
    }
    const px_ragged *r = &ds->field[f];
    rc |= px_h5_write_1d(g, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, r->offsets,
                         (hsize_t)ds->n + 1);
    rc |= px_h5_write_1d(g, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, r->tokens,
                         (hsize_t)r->offsets[ds->n]);
    if (H5Gclose(g) < 0) rc = -1;
  }
  if (gcpl >= 0 && H5Pclose(gcpl) < 0) rc = -1;
  return rc < 0 ? -1 : 0;
}

px_status px_dataset_write(const char *path, const px_dataset *ds, px_error *err) {
  px_h5_quiet();
  char tmp[4200];
  px_fs_temp_name(tmp, sizeof tmp, path);
  PX_TRY(px_fs_check_parent(path, err));
  hid_t file = px_h5_create(tmp, 0);
  px_status st = PX_OK;
  if (file < 0)
    st = px_h5_fail(err, PX_ERUN, "cannot write %s: cannot create the file", path);
  else if (px_write_records(file, ds) < 0)
    st = px_h5_fail(err, PX_ERUN, "cannot write %s: writing the datasets failed", path);
  if (file >= 0 && H5Fclose(file) < 0 && st == PX_OK)
    st = px_h5_fail(err, PX_ERUN, "cannot write %s: closing the file failed", path);
  if (st != PX_OK) {
    remove(tmp);
    return st;
  }
  return px_fs_publish(tmp, path, err);
}

/* ------------------------------------------------------------------------------------------- */

/* Reads this rank's records [lo, hi) of one field group, with independent transfers: a rank
 * that finds bad data may stop early, since only H5Fopen and H5Fclose are collective and every
 * path of px_dataset_read reaches the latter. */
static px_status px_read_field(hid_t file, const char *path, const char *name, int64_t n_total,
                               int64_t lo, int64_t hi, int32_t n_vocab, px_ragged *out,
                               px_error *err) {
  char where[4200];
  snprintf(where, sizeof where, "%s: field '%s'", path, name);
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    return px_error_set(err, PX_EINPUT, "%s: group '/%s' is missing (the kind needs it)", path,
                        name);
  hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
  if (g < 0) return px_error_set(err, PX_EINPUT, "%s: '/%s' is not a group", path, name);
  hid_t doff = H5I_INVALID_HID, dtok = H5I_INVALID_HID;
  hsize_t n_off = 0, n_tok = 0;
  px_status st = px_h5_open_int_1d(g, "offsets", &doff, &n_off, where, err);
  if (st == PX_OK) st = px_h5_open_int_1d(g, "tokens", &dtok, &n_tok, where, err);
  /* n_off - 1, not n_total + 1: a crafted n_records may be INT64_MAX. */
  if (st == PX_OK && (n_total < 0 || n_off == 0 || n_off - 1 != (hsize_t)n_total))
    st = px_error_set(err, PX_EINPUT, "%s: offsets has %llu entries, expected n_records + 1 = %llu",
                      where, (unsigned long long)n_off, (unsigned long long)n_total + 1);
  /* A crafted shape must not make us allocate more than the file holds: a real offsets or
   * tokens dataset stores at least one byte per element. */
  for (int k = 0; k < 2 && st == PX_OK; k++) {
    hid_t d = k ? dtok : doff;
    hsize_t declared = k ? n_tok : n_off;
    if ((double)H5Dget_storage_size(d) < (double)declared)
      st = px_error_set(err, PX_EINPUT,
                        "%s: %s declares %llu elements but the file stores %llu bytes of them "
                        "(damaged or incomplete)",
                        where, k ? "tokens" : "offsets", (unsigned long long)declared,
                        (unsigned long long)H5Dget_storage_size(d));
  }
  if (st != PX_OK) goto done;

  int64_t n = hi - lo;
  out->offsets = px_malloc((size_t)(n + 1) * sizeof(int64_t));
  if (px_h5_read_rows(doff, H5T_NATIVE_INT64, (hsize_t)lo, (hsize_t)n + 1, out->offsets) < 0) {
    st = px_error_set(err, PX_EINPUT, "%s: cannot read offsets (damaged file? checksum error?)",
                      where);
    goto done;
  }
  /* Offsets must start at 0, never decrease, and end at the number of tokens. */
  int64_t bad_row = -1;
  if (lo == 0 && out->offsets[0] != 0) bad_row = 0;
  for (int64_t i = 0; i < n && bad_row < 0; i++)
    if (out->offsets[i + 1] < out->offsets[i]) bad_row = lo + i;
  if (out->offsets[0] < 0 || out->offsets[n] > (int64_t)n_tok ||
      (hi == n_total && out->offsets[n] != (int64_t)n_tok))
    if (bad_row < 0) bad_row = hi;
  if (bad_row >= 0) {
    st = px_error_set(err, PX_EINPUT,
                      "%s: offsets are invalid at record %lld (they must start at 0, never "
                      "decrease and end at the %llu tokens)",
                      where, (long long)bad_row, (unsigned long long)n_tok);
    goto done;
  }
  int64_t base = out->offsets[0], count = out->offsets[n] - base;
  out->tokens = px_malloc((size_t)(count > 0 ? count : 1) * sizeof(int32_t));
  if (px_h5_read_rows(dtok, H5T_NATIVE_INT32, (hsize_t)base, (hsize_t)count, out->tokens) < 0) {
    st = px_error_set(err, PX_EINPUT, "%s: cannot read tokens (damaged file? checksum error?)",
                      where);
    goto done;
  }
  for (int64_t i = 0; i <= n; i++) out->offsets[i] -= base;
  for (int64_t t = 0; t < count; t++)
    if (out->tokens[t] < 0 || out->tokens[t] >= n_vocab) {
      st = px_error_set(err, PX_EINPUT,
                        "%s: token %lld of the field is %d, outside the tokenizer's vocabulary "
                        "(0-%d)",
                        where, (long long)base + t, (int)out->tokens[t], (int)n_vocab - 1);
      break;
    }
done:
  if (dtok >= 0) H5Dclose(dtok);
  if (doff >= 0) H5Dclose(doff);
  H5Gclose(g);
  return st;
}

/* Which tokenizer made the file: version 2's attributes; version 1 recorded "bytes" only. */
static px_status px_read_tokenizer_attrs(hid_t file, const char *path, int64_t version,
                                         px_dataset *out, px_error *err) {
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  PX_TRY(px_h5_attr_read_str(file, "tokenizer", out->tokenizer, sizeof out->tokenizer, path, err));
  int kind = px_tok_kind_parse(out->tokenizer);
  if (kind < 0)
    return px_error_set(err, PX_EINPUT, "%s: tokenizer is '%s', expected byte or gpt2", path,
                        out->tokenizer);
  snprintf(out->tokenizer, sizeof out->tokenizer, "%s", px_tok_kind_name((px_tok_kind)kind));
  if (version == 1) {
    memcpy(out->tokenizer_hash, bytes.hash, sizeof out->tokenizer_hash);
    out->tokenizer_n_vocab = bytes.n_vocab;
    return PX_OK;
  }
  int64_t n_vocab = 0;
  PX_TRY(px_h5_attr_read_str(file, "tokenizer_sha256", out->tokenizer_hash,
                             sizeof out->tokenizer_hash, path, err));
  PX_TRY(px_h5_attr_read_i64(file, "tokenizer_n_vocab", &n_vocab, path, err));
  if (n_vocab < 1 || n_vocab > (1 << 24))
    return px_error_set(err, PX_EINPUT, "%s: tokenizer_n_vocab is %lld, expected 1 to %d", path,
                        (long long)n_vocab, 1 << 24);
  out->tokenizer_n_vocab = (int32_t)n_vocab;
  return PX_OK;
}

px_status px_dataset_check_tokenizer(const px_dataset *ds, const char *path,
                                     const px_tokenizer *tok, px_error *err) {
  PX_TRY(px_tokenizer_check_data(tok, path, ds->tokenizer, ds->tokenizer_hash, err));
  if (ds->tokenizer_n_vocab != tok->n_vocab)
    return px_error_set(err, PX_EINPUT,
                        "%s: tokenizer_n_vocab is %d but its tokenizer (%s) has %d tokens (a "
                        "damaged or hand-made file)",
                        path, (int)ds->tokenizer_n_vocab, ds->tokenizer, (int)tok->n_vocab);
  return PX_OK;
}

/* Every token of the records held is text of tok (not a special it spells, such as GPT-2's
 * <|endoftext|>, which import never writes). */
static px_status px_check_text_tokens(const px_dataset *ds, const char *path,
                                      const px_tokenizer *tok, px_error *err) {
  int n_req, n_pos;
  const char *const *names = px_data_fields(ds->kind, &n_req, &n_pos);
  for (int f = 0; f < ds->n_fields; f++)
    for (int64_t i = 0; i < ds->n; i++) {
      int64_t len;
      const int32_t *row = px_dataset_row(ds, f, i, &len);
      for (int64_t t = 0; t < len; t++)
        if (!px_tokenizer_is_text(tok, row[t]))
          return px_error_set(err, PX_EINPUT,
                              "%s: record %lld, field '%s', token %lld is %d: a special token of "
                              "the %s tokenizer, which text never holds",
                              path, (long long)ds->first + i, names[f], (long long)t, (int)row[t],
                              px_tok_kind_name(tok->kind));
    }
  return PX_OK;
}

px_status px_dataset_read(const char *path, px_io_who who, int part, int parts, int want_kind,
                          const px_tokenizer *tok, px_dataset *out, px_error *err) {
  memset(out, 0, sizeof *out);
  const MPI_Comm comm = who == PX_IO_EVERY_RANK ? px_comm_mpi() : MPI_COMM_SELF;
  /* Over MPI-IO (collective); from here every path reaches H5Fclose, which is collective too. */
  hid_t file;
  PX_TRY(px_h5_open_read(path, comm, &file, err));
  char format[64] = "", kind_name[64] = "";
  int64_t version = 0, n_total = 0;
  px_status st = px_h5_attr_read_str(file, "format", format, sizeof format, path, err);
  if (st == PX_OK && strcmp(format, PX_DATASET_FORMAT) != 0)
    st = px_error_set(err, PX_EINPUT,
                      "%s: format is '%s', expected '%s' (is this a data set "
                      "made by proxima data import?)",
                      path, format, PX_DATASET_FORMAT);
  if (st == PX_OK) st = px_h5_attr_read_i64(file, "format_version", &version, path, err);
  if (st == PX_OK && version != 1 && version != PX_DATASET_VERSION)
    st = px_error_set(err, PX_EINPUT,
                      "%s: format_version %lld, this proxima reads versions 1 and %d", path,
                      (long long)version, PX_DATASET_VERSION);
  if (st == PX_OK) st = px_read_tokenizer_attrs(file, path, version, out, err);
  if (st == PX_OK && tok) st = px_dataset_check_tokenizer(out, path, tok, err);
  if (st == PX_OK) st = px_h5_attr_read_str(file, "kind", kind_name, sizeof kind_name, path, err);
  int kind = st == PX_OK ? px_data_kind_parse(kind_name) : -1;
  if (st == PX_OK && kind < 0)
    st =
        px_error_set(err, PX_EINPUT, "%s: unknown kind '%s' (expected text, sft, prefs or prompts)",
                     path, kind_name);
  if (st == PX_OK && want_kind >= 0 && kind != want_kind)
    st = px_error_set(err, PX_EINPUT, "%s: holds %s records, this command needs %s records", path,
                      kind_name, px_data_kind_name((px_data_kind)want_kind));
  if (st == PX_OK) st = px_h5_attr_read_i64(file, "n_records", &n_total, path, err);
  if (st == PX_OK && n_total < 0)
    st = px_error_set(err, PX_EINPUT, "%s: n_records is negative", path);
  if (st == PX_OK) {
    int n_req, n_pos;
    const char *const *names = px_data_fields((px_data_kind)kind, &n_req, &n_pos);
    int64_t lo, hi;
    px_comm_share(n_total, part, parts, &lo, &hi);
    out->kind = (px_data_kind)kind;
    out->n_total = n_total;
    out->first = lo;
    out->n = hi - lo;
    for (int f = 0; f < n_pos && st == PX_OK; f++) {
      if (f >= n_req && H5Lexists(file, names[f], H5P_DEFAULT) <= 0) break;
      st = px_read_field(file, path, names[f], n_total, lo, hi, out->tokenizer_n_vocab,
                         &out->field[f], err);
      out->n_fields = f + 1;
    }
  }
  if (H5Fclose(file) < 0 && st == PX_OK)
    st = px_error_set(err, PX_ERUN, "%s: closing the file failed", path);
  if (st == PX_OK && tok) st = px_check_text_tokens(out, path, tok, err);
  if (st != PX_OK) px_dataset_free(out);
  return st;
}

const char *px_io_library(char *buf, size_t n) {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  snprintf(buf, n, "HDF5 %u.%u.%u (%s)", major, minor, release,
#ifdef H5_HAVE_PARALLEL
           "parallel"
#else
           "serial"
#endif
  );
  return buf;
}

int px_dataset_is_reference(const px_dataset *ds, int64_t rec, const int32_t *response, int L,
                            int eos) {
  if (ds->n_fields < 2 || !eos) return 0;
  int64_t nref;
  const int32_t *ref = px_dataset_row(ds, 1, rec, &nref);
  return nref == L - 1 && (nref == 0 || memcmp(ref, response, (size_t)nref * sizeof *ref) == 0);
}
