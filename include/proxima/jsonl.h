/*
 * jsonl.h — JSON Lines in and out (parsed and written with jansson).
 *
 * One JSON object per line, with the string fields of the kind (dataset.h):
 *   text {"text"}   sft {"prompt","completion"}   prefs {"prompt","chosen","rejected"}
 *   prompts {"prompt"} or {"prompt","reference"} (every line or none)
 * Other fields are ignored. Blank lines are skipped. Any malformed line — bad JSON, not an
 * object, a missing or non-string field — is PX_EINPUT naming the file and the line.
 */
#ifndef PROXIMA_JSONL_H
#define PROXIMA_JSONL_H

#include <stdint.h>
#include <stdio.h>

#include "proxima/dataset.h"
#include "proxima/error.h"

/* The longest line accepted; a longer one is refused with its line number. */
#define PX_JSONL_MAX_LINE ((size_t)256 << 20)

/* Reads every record of a JSONL file of the given kind into out, encoded by tok. Not
 * collective. */
px_status px_jsonl_read(const char *path, px_data_kind kind, px_tokenizer *tok, px_dataset *out,
                        px_error *err);

/* Writes every record of ds, decoded by tok (the set's tokenizer), as JSONL to path,
 * atomically. Not collective. */
px_status px_jsonl_write(const char *path, const px_dataset *ds, const px_tokenizer *tok,
                         px_error *err);

/* Appends one metrics record to f, a line {"phase": phase, "step": step, names[i]: values[i], ...}
 * in that order, reals with 10 significant digits and a non-finite value as null, and flushes it.
 * Returns 0, or -1 when the line could not be written. Not collective. */
int px_jsonl_write_record(FILE *f, const char *phase, int64_t step, int n, const char *const *names,
                          const double *values);

/* `proxima data import`: JSONL in, encoded by tok, HDF5 data set out (atomically: on failure
 * nothing is left at out and a file already there is untouched). Not collective: call it on one
 * rank. */
px_status px_jsonl_import(const char *in, px_data_kind kind, px_tokenizer *tok, const char *out,
                          px_error *err);

/* px_jsonl_import over every rank of the run: each parses and encodes the lines that start in
 * its contiguous share of the file's bytes (its line numbers counted from the lines before it),
 * rank 0 gathers the records in order and writes the one file, the same bytes as
 * px_jsonl_import's. A bad line anywhere is PX_EINPUT on every rank (the first such line's
 * message), and nothing is written. Collective. */
px_status px_jsonl_import_parallel(const char *in, px_data_kind kind, px_tokenizer *tok,
                                   const char *out, px_error *err);

#endif
