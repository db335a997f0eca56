/*
 * jsonl.c — JSON Lines import and export with jansson; see jsonl.h.
 */
#include "proxima/jsonl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "jsonutil.h"
#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

const char *px_json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

/* "{"prompt": string, "completion": string}" for messages. */
static void px_expected_shape(char *buf, size_t n, const char *const *names, int n_fields) {
  size_t len = (size_t)snprintf(buf, n, "{");
  for (int f = 0; f < n_fields && len < n; f++)
    len += (size_t)snprintf(buf + len, n - len, "%s\"%s\": string", f ? ", " : "", names[f]);
  if (len < n) snprintf(buf + len, n - len, "}");
}

/* Parses one line into the record's field texts; returns how many fields it had (n_req or
 * n_pos) or -1 with err set. The texts point into *obj, which the caller releases. */
static int px_parse_record(const char *line, size_t len, const char *path, long lineno,
                           const char *const *names, int n_req, int n_pos, json_t **obj,
                           const char **texts, size_t *lens, px_error *err) {
  char shape[256];
  px_expected_shape(shape, sizeof shape, names, n_req);
  json_error_t jerr;
  json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  *obj = root;
  if (!root) {
    px_error_set(err, PX_EINPUT, "%s:%ld: invalid JSON at column %d: %s", path, lineno, jerr.column,
                 jerr.text);
    return -1;
  }
  if (!json_is_object(root)) {
    px_error_set(err, PX_EINPUT, "%s:%ld: expected a JSON object %s, found %s", path, lineno, shape,
                 px_json_kind(root));
    return -1;
  }
  int have = 0;
  for (int f = 0; f < n_pos; f++) {
    json_t *v = json_object_get(root, names[f]);
    if (!v) {
      if (f < n_req) {
        px_error_set(err, PX_EINPUT, "%s:%ld: field \"%s\" is missing (expected %s)", path, lineno,
                     names[f], shape);
        return -1;
      }
      break;
    }
    if (!json_is_string(v)) {
      px_error_set(err, PX_EINPUT, "%s:%ld: field \"%s\" is %s, expected a string", path, lineno,
                   names[f], px_json_kind(v));
      return -1;
    }
    texts[f] = json_string_value(v);
    lens[f] = json_string_length(v);
    have = f + 1;
  }
  return have;
}

static int px_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
  return 1;
}

/* Where a read is: the byte range whose lines it takes (lines that start in [begin, end)), the
 * line number of the first of them less one, and the records' field count as first seen (-1:
 * none yet) with that record's line. */
typedef struct px_jsonl_range {
  int64_t begin, end;
  long line0;
  int fields_seen;
  long first_line;
} px_jsonl_range;

/* Moves f to the first line that starts at or after r->begin. 0, or -1 on a read error. */
static int px_seek_line(FILE *f, int64_t begin) {
  if (begin == 0) return 0;
  if (fseeko(f, (off_t)(begin - 1), SEEK_SET) != 0) return -1;
  int c = fgetc(f);
  while (c != EOF && c != '\n') c = fgetc(f); /* that line started before begin */
  return ferror(f) ? -1 : 0;
}

/* The lines of path that start in the range, parsed and encoded into out (px_dataset_init'ed). */
static px_status px_read_lines(const char *path, px_data_kind kind, px_jsonl_range *r,
                               px_dataset *out, px_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return px_error_set(err, PX_EINPUT, "cannot open %s: %s", path, strerror(errno));
  int n_req, n_pos;
  const char *const *names = px_data_fields(kind, &n_req, &n_pos);
  char *line = NULL;
  size_t cap = 0;
  long lineno = r->line0;
  px_status st = PX_OK;
  ssize_t got;
  errno = 0;
  if (px_seek_line(f, r->begin) != 0)
    st = px_error_set(err, PX_EINPUT, "%s: cannot read: %s", path, strerror(errno));
  while (st == PX_OK && (int64_t)ftello(f) < r->end && (got = getline(&line, &cap, f)) >= 0) {
    lineno++;
    char *text = line;
    size_t len = (size_t)got;
    if (lineno == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) text += 3, len -= 3;
    if (len > PX_JSONL_MAX_LINE) {
      st = px_error_set(err, PX_EINPUT, "%s:%ld: line of %zu bytes is longer than the %zu accepted",
                        path, lineno, len, PX_JSONL_MAX_LINE);
      break;
    }
    if (px_blank(text, len)) continue;
    json_t *obj = NULL;
    const char *texts[PX_DATA_MAX_FIELDS];
    size_t lens[PX_DATA_MAX_FIELDS];
    int have =
        px_parse_record(text, len, path, lineno, names, n_req, n_pos, &obj, texts, lens, err);
    if (have >= 0 && r->fields_seen >= 0 && have != r->fields_seen) {
      px_error_set(err, PX_EINPUT,
                   "%s:%ld: field \"%s\" is %s here but %s on line %ld (every "
                   "record has it or none)",
                   path, lineno, names[n_req], have > r->fields_seen ? "present" : "missing",
                   have > r->fields_seen ? "missing" : "present", r->first_line);
      have = -1;
    }
    if (have >= 0 && r->fields_seen < 0) r->fields_seen = have, r->first_line = lineno;
    if (have >= 0) {
      out->n_fields = have;
      px_dataset_append(out, texts, lens);
    }
    json_decref(obj);
    if (have < 0) st = PX_EINPUT;
  }
  if (st == PX_OK && ferror(f))
    st = px_error_set(err, PX_EINPUT, "%s: read error after line %ld: %s", path, lineno,
                      strerror(errno));
  free(line);
  (void)fclose(f); /* read only: nothing to lose */
  return st;
}

px_status px_jsonl_read(const char *path, px_data_kind kind, px_tokenizer *tok, px_dataset *out,
                        px_error *err) {
  int n_req, n_pos;
  px_data_fields(kind, &n_req, &n_pos);
  px_dataset_init(out, kind, n_pos, tok);
  px_jsonl_range all = {0, INT64_MAX, 0, -1, 0};
  px_status st = px_read_lines(path, kind, &all, out, err);
  if (st == PX_OK && out->n == 0)
    st = px_error_set(err, PX_EINPUT, "%s: no records (the file is empty or has blank lines only)",
                      path);
  if (st != PX_OK) px_dataset_free(out);
  return st;
}

px_status px_jsonl_write(const char *path, const px_dataset *ds, const px_tokenizer *tok,
                         px_error *err) {
  char tmp[4200];
  px_fs_temp_name(tmp, sizeof tmp, path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(errno));
  int n_req, n_pos;
  const char *const *names = px_data_fields(ds->kind, &n_req, &n_pos);
  px_status st = PX_OK;
  px_text text = {0};
  for (int64_t i = 0; i < ds->n && st == PX_OK; i++) {
    json_t *obj = json_object();
    PX_REQUIRE(obj, "json_object failed (out of memory)");
    for (int fi = 0; fi < ds->n_fields; fi++) {
      int64_t len;
      const int32_t *toks = px_dataset_row(ds, fi, i, &len);
      text.n = 0;
      px_tokenizer_decode(tok, &text, toks, (size_t)len);
      json_t *s = json_stringn(text.p, text.n);
      if (!s) {
        st = px_error_set(err, PX_EINPUT,
                          "record %lld: field \"%s\" is not valid UTF-8, which "
                          "JSON cannot hold",
                          (long long)ds->first + i, names[fi]);
        break;
      }
      PX_REQUIRE(json_object_set_new(obj, names[fi], s) == 0, "json_object_set failed");
    }
    if (st != PX_OK) {
      json_decref(obj);
      break;
    }
    char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    PX_REQUIRE(line, "json_dumps failed (out of memory)");
    if (fputs(line, f) < 0 || fputc('\n', f) < 0)
      st = px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(errno));
    free(line);
  }
  px_text_free(&text);
  if (fclose(f) != 0 && st == PX_OK)
    st = px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(errno));
  if (st != PX_OK) {
    remove(tmp);
    return st;
  }
  return px_fs_publish(tmp, path, err);
}

px_status px_jsonl_import(const char *in, px_data_kind kind, px_tokenizer *tok, const char *out,
                          px_error *err) {
  px_dataset ds;
  PX_TRY(px_jsonl_read(in, kind, tok, &ds, err));
  px_status st = px_dataset_write(out, &ds, err);
  px_dataset_free(&ds);
  return st;
}

/* This rank's lines: a contiguous byte range of the file (a line belongs to the rank where it
 * starts), and the lines before it counted by every rank for its line numbers. Collective. */
static px_status px_rank_range(const char *path, px_jsonl_range *r, px_error *err) {
  const int rank = px_comm_rank(), size = px_comm_size();
  memset(r, 0, sizeof *r);
  r->fields_seen = -1;
  struct stat sb;
  px_status st = stat(path, &sb) == 0
                     ? PX_OK
                     : px_error_set(err, PX_EINPUT, "cannot open %s: %s", path, strerror(errno));
  PX_TRY(px_comm_agree(st, err));
  int64_t lo, hi;
  px_comm_share((int64_t)sb.st_size, rank, size, &lo, &hi);
  r->begin = lo, r->end = hi;
  /* Lines that start in this range: count them, then each rank's first line number is the sum
   * of the ranks' before it. */
  int64_t *lines = px_calloc((size_t)size, sizeof *lines);
  FILE *f = fopen(path, "rb");
  if (!f || px_seek_line(f, lo) != 0) {
    st = px_error_set(err, PX_EINPUT, "cannot read %s: %s", path, strerror(errno));
  } else {
    for (int c; (int64_t)ftello(f) < hi && (c = fgetc(f)) != EOF;) {
      lines[rank]++; /* a line starts here; go past its end */
      while (c != '\n' && (c = fgetc(f)) != EOF) {
      }
    }
    if (ferror(f)) st = px_error_set(err, PX_EINPUT, "cannot read %s: %s", path, strerror(errno));
  }
  if (f) (void)fclose(f); /* read only */
  st = px_comm_agree(st, err);
  px_comm_allreduce_sum_i64(lines, (size_t)size);
  for (int k = 0; k < rank; k++) r->line0 += (long)lines[k];
  free(lines);
  return st;
}

/* Every rank's records of its range to rank 0, in rank order, into all (rank 0's, initialised
 * like mine). Collective. */
static void px_gather_records(const px_dataset *mine, px_dataset *all) {
  int64_t n = mine->n;
  int64_t total = n;
  px_comm_allreduce_sum_i64(&total, 1);
  const int root = px_comm_rank() == 0;
  for (int f = 0; f < mine->n_fields; f++) {
    const px_ragged *r = &mine->field[f];
    int64_t *lens = px_malloc((size_t)(n + 1) * sizeof *lens);
    for (int64_t i = 0; i < n; i++) lens[i] = r->offsets[i + 1] - r->offsets[i];
    int64_t tokens = r->offsets[n], all_tokens = tokens;
    px_comm_allreduce_sum_i64(&all_tokens, 1);
    int64_t *all_lens = root ? px_malloc((size_t)(total + 1) * sizeof *all_lens) : NULL;
    px_ragged *out = &all->field[f];
    if (root) {
      free(out->tokens);
      out->tokens = px_malloc((size_t)(all_tokens > 0 ? all_tokens : 1) * sizeof *out->tokens);
      out->offsets = px_realloc(out->offsets, (size_t)(total + 1) * sizeof *out->offsets);
    }
    px_comm_gather_rows(all_lens, lens, n, sizeof *lens);
    px_comm_gather_rows(root ? out->tokens : NULL, r->tokens, tokens, sizeof *r->tokens);
    if (root) {
      out->offsets[0] = 0;
      for (int64_t i = 0; i < total; i++) out->offsets[i + 1] = out->offsets[i] + all_lens[i];
      all->cap_tokens[f] = all_tokens;
    }
    free(lens);
    free(all_lens);
  }
  if (root) all->n = all->n_total = all->cap_rows = total, all->n_fields = mine->n_fields;
}

/* The ranks' records must all have the same fields: the first rank whose first record differs
 * from the first record of all says so, naming both lines. *fields: the agreed count, on every
 * rank. Collective. */
static px_status px_agree_fields(const char *path, px_data_kind kind, const px_jsonl_range *r,
                                 int *fields, px_error *err) {
  const int rank = px_comm_rank(), size = px_comm_size();
  /* per rank: the first record's field count + 1 (0: no records), and its line */
  int64_t *seen = px_calloc(2 * (size_t)size, sizeof *seen), *line = seen + size;
  seen[rank] = r->fields_seen + 1, line[rank] = r->first_line;
  px_comm_allreduce_sum_i64(seen, 2 * (size_t)size);
  int k0 = 0;
  while (k0 < size && seen[k0] == 0) k0++;
  px_status st = PX_OK;
  *fields = k0 < size ? (int)seen[k0] - 1 : 0;
  if (k0 == size) {
    st = px_error_set(err, PX_EINPUT, "%s: no records (the file is empty or has blank lines only)",
                      path);
  } else if (seen[rank] != 0 && r->fields_seen != *fields) {
    int n_req, n_pos;
    const char *const *names = px_data_fields(kind, &n_req, &n_pos);
    const int more = r->fields_seen > *fields;
    st = px_error_set(err, PX_EINPUT,
                      "%s:%ld: field \"%s\" is %s here but %s on line %lld (every record has it "
                      "or none)",
                      path, r->first_line, names[n_req], more ? "present" : "missing",
                      more ? "missing" : "present", (long long)line[k0]);
  }
  free(seen);
  return px_comm_agree(st, err);
}

px_status px_jsonl_import_parallel(const char *in, px_data_kind kind, px_tokenizer *tok,
                                   const char *out, px_error *err) {
  px_jsonl_range r;
  PX_TRY(px_rank_range(in, &r, err));
  int n_req, n_pos, fields = 0;
  px_data_fields(kind, &n_req, &n_pos);
  px_dataset mine, all;
  px_dataset_init(&mine, kind, n_pos, tok);
  px_dataset_init(&all, kind, n_pos, tok);
  px_status st = px_comm_agree(px_read_lines(in, kind, &r, &mine, err), err);
  if (st == PX_OK) st = px_agree_fields(in, kind, &r, &fields, err);
  if (st == PX_OK) {
    mine.n_fields = fields; /* a rank without records has the others' */
    px_gather_records(&mine, &all);
    st = px_comm_agree(px_comm_rank() == 0 ? px_dataset_write(out, &all, err) : PX_OK, err);
  }
  px_dataset_free(&mine);
  px_dataset_free(&all);
  return st;
}

int px_jsonl_write_record(FILE *f, const char *phase, int64_t step, int n, const char *const *names,
                          const double *values) {
  json_t *obj = json_object();
  PX_REQUIRE(obj, "json_object failed (out of memory)");
  json_object_set_new(obj, "phase", json_string(phase));
  json_object_set_new(obj, "step", json_integer((json_int_t)step));
  for (int i = 0; i < n; i++)
    json_object_set_new(obj, names[i], isfinite(values[i]) ? json_real(values[i]) : json_null());
  char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  json_decref(obj);
  PX_REQUIRE(line, "json_dumps failed (out of memory)");
  int ok = fprintf(f, "%s\n", line) >= 0 && fflush(f) == 0;
  free(line);
  return ok ? 0 : -1;
}
