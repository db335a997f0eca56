/*
 * fuzz_dataset.c — the HDF5 data set loader (px_dataset_read, dataset.h), structure-aware: the
 * input is a recipe for the file (fuzz_h5.h says why), written with the HDF5 API and then read
 * by the loader over MPI-IO on one process, as one part of several. Whatever the file, the
 * loader must return PX_OK with a well-formed share of the records, or PX_EINPUT with a
 * message; never crash, leak or allocate more than the file holds.
 *
 * The recipe: the root attributes (each as intended, missing, mistyped, an array), the records
 * (lengths and bytes), for every field name any kind uses a group (or nothing, or a dataset in
 * its place) with offsets and tokens datasets (fuzz_h5.h: types, shapes, layouts, declared
 * sizes, a bad checksum), one offset and one token overwritten with an edge value, the part
 * read and the kind wanted; then the tokenizer's attributes (kind, hash, n_vocab) and whether
 * the byte tokenizer is required or any is accepted. Those come last, so that a recipe that
 * ends before them (the older seeds) gets the byte tokenizer's attributes as intended and
 * requires it: an input that has run out draws zeros.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5.h"
#include "proxima/dataset.h"
#include "proxima/tokenizer.h"

/* The byte tokenizer, what the intended files record. */
static px_tokenizer bytes;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  px_fuzz_init(argc, argv);
  px_tokenizer_byte(&bytes);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return 0;
}

static const char *const px_names[] = {"text",   "prompt",   "completion",
                                       "chosen", "rejected", "reference"};

/* A kind name that a reader must cut to fit its 64 bytes. */
#define PX_LONG_KIND                                                                               \
  "a kind name longer than the sixty-four bytes a reader keeps for it, to see it cut"

/* The file: returns 0 when HDF5 could write it. */
static int px_make_file(const char *path, px_fuzz_in *in) {
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_obj_track_times(fcpl, 0);
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (file < 0) return -1;
  static const char *const kinds[] = {"text", "sft", "prefs", "prompts", "", "TEXT", PX_LONG_KIND};
  int64_t n = px_fuzz_pick(in, 6); /* records */
  const char *format = px_fuzz_pick(in, 8) ? "proxima-dataset" : "proxima-checkpoint";
  px_fz_attr(file, "format", PX_FZ_STR, format, 1, 1.0, in);
  px_fz_attr(file, "format_version", PX_FZ_INT, "2", px_fuzz_int(in, 2), 2.0, in);
  px_fz_attr(file, "kind", PX_FZ_STR, kinds[px_fuzz_pick(in, 7)], 0, 0.0, in);
  px_fz_attr(file, "n_records", PX_FZ_INT, "n", px_fuzz_int(in, n), (double)n, in);

  for (int f = 0; f < 6; f++) {
    int how = px_fuzz_pick(in, 8);
    if (how == 0) continue; /* no such field */
    if (how == 1) {         /* a dataset where the group should be */
      int64_t one = 1;
      px_fz_dataset(file, px_names[f], H5T_NATIVE_INT64, &one, 1, in);
      continue;
    }
    hid_t g = H5Gcreate2(file, px_names[f], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) continue;
    int64_t offsets[7] = {0};
    int32_t tokens[6 * 8];
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
      int len = px_fuzz_pick(in, 9);
      for (int k = 0; k < len; k++) tokens[total + k] = px_fuzz_u8(in);
      total += len;
      offsets[i + 1] = total;
    }
    if (px_fuzz_pick(in, 4) == 0) {
      int at = px_fuzz_pick(in, (int)n + 1);
      offsets[at] = px_fuzz_int(in, total);
    }
    if (total > 0 && px_fuzz_pick(in, 4) == 0) {
      int at = px_fuzz_pick(in, (int)total);
      tokens[at] = (int32_t)px_fuzz_int(in, 256);
    }
    int64_t tok64[6 * 8];
    for (int64_t t = 0; t < total; t++) tok64[t] = tokens[t];
    if (how != 2) px_fz_dataset(g, "offsets", H5T_NATIVE_INT64, offsets, (hsize_t)n + 1, in);
    if (how != 3) px_fz_dataset(g, "tokens", H5T_NATIVE_INT64, tok64, (hsize_t)total, in);
    H5Gclose(g);
  }

  /* The tokenizer: version 2 records kind, hash and n_vocab; version 1 "bytes" alone. Choice 0
   * of each is the byte tokenizer's (and intended, px_fz_attr's 0). */
  static const char *const toks[] = {"byte", "bytes", "gpt2", "", "BYTE", PX_LONG_KIND};
  static const int64_t n_vocabs[] = {
      256, 0, -1, 1, 255, 257, 50257, (int64_t)1 << 24, ((int64_t)1 << 24) + 1, INT64_MAX};
  const char *other_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  const char *hashes[] = {bytes.hash, other_hash, "", PX_LONG_KIND PX_LONG_KIND};
  px_fz_attr(file, "tokenizer", PX_FZ_STR, toks[px_fuzz_pick(in, 6)], 0, 0.0, in);
  px_fz_attr(file, "tokenizer_sha256", PX_FZ_STR, hashes[px_fuzz_pick(in, 4)], 0, 0.0, in);
  const int64_t n_vocab = n_vocabs[px_fuzz_pick(in, 10)];
  px_fz_attr(file, "tokenizer_n_vocab", PX_FZ_INT, "", n_vocab, (double)n_vocab, in);
  return H5Fclose(file) < 0 ? -1 : 0;
}

/* What PX_OK promises: this part's records, each a valid slice of tokens of the recorded
 * tokenizer's vocabulary; the byte tokenizer's when it was required. */
static void px_check_share(const px_dataset *ds, int part, int parts, const px_tokenizer *want) {
  PX_FUZZ_CHECK(ds->n_total >= 0 && ds->first >= 0 && ds->n >= 0);
  PX_FUZZ_CHECK(ds->tokenizer_n_vocab >= 1 && px_tok_kind_parse(ds->tokenizer) >= 0);
  if (want) PX_FUZZ_CHECK(strcmp(ds->tokenizer, px_tok_kind_name(want->kind)) == 0);
  PX_FUZZ_CHECK(ds->first + ds->n <= ds->n_total);
  PX_FUZZ_CHECK(ds->n_fields >= 1 && ds->n_fields <= PX_DATA_MAX_FIELDS);
  (void)part, (void)parts;
  for (int f = 0; f < ds->n_fields; f++) {
    const px_ragged *r = &ds->field[f];
    PX_FUZZ_CHECK(r->offsets && r->offsets[0] == 0);
    for (int64_t i = 0; i < ds->n; i++) {
      int64_t len;
      const int32_t *row = px_dataset_row(ds, f, i, &len);
      PX_FUZZ_CHECK(len >= 0);
      for (int64_t t = 0; t < len; t++)
        PX_FUZZ_CHECK(row[t] >= 0 && row[t] < ds->tokenizer_n_vocab);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  px_fuzz_in in = {data, size, 0};
  int parts = 1 + px_fuzz_pick(&in, 4), part = px_fuzz_pick(&in, parts);
  int want_kind = px_fuzz_pick(&in, 5) - 1;
  char path[600];
  px_fuzz_path(path, sizeof path, "data.h5");
  if (px_make_file(path, &in) == 0) {
    const px_tokenizer *want = px_fuzz_pick(&in, 2) ? NULL : &bytes;
    px_dataset ds;
    px_error err = {""};
    px_status st = px_dataset_read(path, PX_IO_ALONE, part, parts, want_kind, want, &ds, &err);
    px_fuzz_say("read", (int)st, st == PX_OK ? "" : err.msg);
    if (st == PX_OK)
      px_check_share(&ds, part, parts, want);
    else
      PX_FUZZ_CHECK(st == PX_EINPUT && err.msg[0]);
    px_dataset_free(&ds);
  }
  remove(path);
  return 0;
}
