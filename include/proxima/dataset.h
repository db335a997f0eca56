/*
 * dataset.h — tokenized data sets on disk (HDF5, written by `proxima data import|synth`).
 *
 * A data set is a list of records of one kind; each record has the kind's text fields:
 *   text     text
 *   sft      prompt, completion
 *   prefs    prompt, chosen, rejected
 *   prompts  prompt [, reference]      (reference: the gold answer, when the task has one)
 * A field is stored ragged, as the tokens of every record end to end plus where each record
 * starts: group /FIELD with datasets tokens (int32 [total]) and offsets (int64 [N+1],
 * offsets[0] = 0). Tokens are the text tokens of the tokenizer that made the set (tokenizer.h),
 * each in [0, tokenizer_n_vocab); BOS and EOS are added when sequences are built.
 * Root attributes: format "proxima-dataset", format_version 2, kind, n_records, and which
 * tokenizer made it: tokenizer ("byte" | "gpt2"), tokenizer_sha256 (its hash) and
 * tokenizer_n_vocab. Version 1 files (tokenizer "bytes", no hash) read as the byte tokenizer's.
 *
 * Reading is split over ranks: each reads only its contiguous share of the records (hyperslabs,
 * through HDF5's MPI-IO driver). Everything read is checked, since files may be damaged or
 * hand-made: a bad file is PX_EINPUT with a message naming the file and what is wrong.
 */
#ifndef PROXIMA_DATASET_H
#define PROXIMA_DATASET_H

#include <stdint.h>

#include "proxima/error.h"
#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

typedef enum px_data_kind {
  PX_DATA_TEXT,
  PX_DATA_SFT,
  PX_DATA_PREFS,
  PX_DATA_PROMPTS
} px_data_kind;

#define PX_DATA_MAX_FIELDS 3

/* One field of n records: record i is tokens[offsets[i] .. offsets[i+1]), offsets[0] = 0. */
typedef struct px_ragged {
  int64_t *offsets; /* n + 1 */
  int32_t *tokens;  /* offsets[n] */
} px_ragged;

typedef struct px_dataset {
  px_data_kind kind;
  int64_t n_total; /* records in the file */
  int64_t first;   /* global index of the first record held here */
  int64_t n;       /* records held here */
  int n_fields;    /* fields present (a prompts set without references has 1) */
  px_ragged field[PX_DATA_MAX_FIELDS];
  int64_t cap_rows, cap_tokens[PX_DATA_MAX_FIELDS]; /* room allocated, for px_dataset_append */
  char tokenizer[16];        /* the kind of tokenizer that made it ("byte", "gpt2") */
  char tokenizer_hash[65];   /* its hash */
  int32_t tokenizer_n_vocab; /* tokens are below this */
  px_tokenizer *tok;         /* px_dataset_append's encoder (not owned); NULL when read */
} px_dataset;

/* The name of a kind ("text", ...) and the reverse; parse returns -1 for an unknown name. */
const char *px_data_kind_name(px_data_kind kind);
int px_data_kind_parse(const char *name);

/* The field names of a kind, in order, and how many are required / possible. */
const char *const *px_data_fields(px_data_kind kind, int *n_required, int *n_possible);

/* Record i (local index) of field f: *len tokens at the returned pointer. */
const int32_t *px_dataset_row(const px_dataset *ds, int f, int64_t i, int64_t *len);

/* An empty data set of a kind whose records tok encodes (tok must outlive the filling), to be
 * filled with px_dataset_append. */
void px_dataset_init(px_dataset *ds, px_data_kind kind, int n_fields, px_tokenizer *tok);

/* Appends a record: texts[f] of lens[f] bytes for each field, encoded by the set's tokenizer. */
void px_dataset_append(px_dataset *ds, const char *const *texts, const size_t *lens);

/* Writes ds (all records, held by this process) to path: a temporary file, then fsync and
 * rename, so a file already at path stays whole until the new one is complete. Not collective:
 * call it on one rank. */
px_status px_dataset_write(const char *path, const px_dataset *ds, px_error *err);

/* Reads part `part` of `parts` contiguous parts of the records of path (the split of
 * px_comm_share). who: PX_IO_ALONE, this process alone; PX_IO_EVERY_RANK, collective, every
 * rank with its own part (over MPI-IO). want_kind >= 0 requires that kind; tok (NULL: any)
 * requires that tokenizer (px_dataset_check_tokenizer). On failure out is left empty. */
px_status px_dataset_read(const char *path, px_io_who who, int part, int parts, int want_kind,
                          const px_tokenizer *tok, px_dataset *out, px_error *err);

void px_dataset_free(px_dataset *ds);

/* PX_EINPUT unless ds (read from path) was made by the tokenizer tok: a data set made by
 * another tokenizer would feed a model ids that mean other text. Not collective. */
px_status px_dataset_check_tokenizer(const px_dataset *ds, const char *path,
                                     const px_tokenizer *tok, px_error *err);

/* "HDF5 1.10.8 (parallel)", in buf of n bytes, for --version. */
const char *px_io_library(char *buf, size_t n);

/* Whether a response of L tokens (EOS last when eos) spells record rec's reference, field 1:
 * the gold exact match of the built-in task. 0 when ds has no references or eos is 0. Not
 * collective. */
int px_dataset_is_reference(const px_dataset *ds, int64_t rec, const int32_t *response, int L,
                            int eos);

#endif
