/*
 * fuzz_jsonl.c — JSON Lines import (jsonl.h). The first byte picks the kind (bits 0-1) and
 * whether to go on to the HDF5 import (bit 2); the rest is the file. A bad file must be
 * PX_EINPUT with a message; a good one must give a well-formed data set that survives
 * px_jsonl_write and reading back, and `data import` then px_dataset_read, unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/jsonl.h"
#include "proxima/tokenizer.h"

/* The byte tokenizer: every byte string is text, so what JSON holds round-trips exactly. */
static px_tokenizer tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  px_fuzz_init(argc, argv);
  px_tokenizer_byte(&tok);
  return 0;
}

/* Every record well formed: offsets start at 0 and never decrease, every token a byte. */
static void px_check_wellformed(const px_dataset *ds) {
  PX_FUZZ_CHECK(ds->n > 0 && ds->n_fields >= 1 && ds->n_fields <= PX_DATA_MAX_FIELDS);
  for (int f = 0; f < ds->n_fields; f++) {
    const px_ragged *r = &ds->field[f];
    PX_FUZZ_CHECK(r->offsets[0] == 0);
    for (int64_t i = 0; i < ds->n; i++) PX_FUZZ_CHECK(r->offsets[i + 1] >= r->offsets[i]);
    for (int64_t t = 0; t < r->offsets[ds->n]; t++)
      PX_FUZZ_CHECK(r->tokens[t] >= 0 && r->tokens[t] <= 255);
  }
}

static void px_check_same(const px_dataset *a, const px_dataset *b) {
  PX_FUZZ_CHECK(a->kind == b->kind && a->n == b->n && a->n_fields == b->n_fields);
  for (int f = 0; f < a->n_fields; f++) {
    const px_ragged *ra = &a->field[f], *rb = &b->field[f];
    PX_FUZZ_CHECK(memcmp(ra->offsets, rb->offsets, (size_t)(a->n + 1) * sizeof(int64_t)) == 0);
    PX_FUZZ_CHECK(ra->offsets[a->n] == 0 ||
                  memcmp(ra->tokens, rb->tokens, (size_t)ra->offsets[a->n] * sizeof(int32_t)) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  px_data_kind kind = (px_data_kind)(data[0] & 3);
  int import = data[0] & 4;
  char in[600], out[600], h5[600];
  px_fuzz_path(in, sizeof in, "in.jsonl");
  px_fuzz_path(out, sizeof out, "out.jsonl");
  px_fuzz_path(h5, sizeof h5, "out.h5");
  px_fuzz_write(in, data + 1, size - 1);

  px_dataset ds;
  px_error err = {""};
  px_status st = px_jsonl_read(in, kind, &tok, &ds, &err);
  PX_FUZZ_CHECK(st == PX_OK || (st == PX_EINPUT && err.msg[0]));
  if (st == PX_OK) {
    px_check_wellformed(&ds);
    st = px_jsonl_write(out, &ds, &tok, &err);
    PX_FUZZ_CHECK(st == PX_OK); /* what jansson parsed is valid UTF-8, so JSON can hold it */
    px_dataset back;
    st = px_jsonl_read(out, kind, &tok, &back, &err);
    PX_FUZZ_CHECK(st == PX_OK);
    px_check_same(&ds, &back);
    px_dataset_free(&back);
    remove(out);
    if (import) {
      st = px_jsonl_import(in, kind, &tok, h5, &err);
      PX_FUZZ_CHECK(st == PX_OK);
      px_dataset stored;
      st = px_dataset_read(h5, PX_IO_ALONE, 0, 1, (int)kind, &tok, &stored, &err);
      if (st != PX_OK) fprintf(stderr, "fuzz: reading the import back: %s\n", err.msg);
      PX_FUZZ_CHECK(st == PX_OK);
      px_check_same(&ds, &stored);
      px_dataset_free(&stored);
      remove(h5);
    }
    px_dataset_free(&ds);
  }
  remove(in);
  return 0;
}
