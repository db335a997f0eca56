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

#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

static const char *px_json_type_name(const json_t *v) {
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
                 px_json_type_name(root));
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
                   names[f], px_json_type_name(v));
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

px_status px_jsonl_read(const char *path, px_data_kind kind, px_tokenizer *tok, px_dataset *out,
                        px_error *err) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return px_error_set(err, PX_EINPUT, "cannot open %s: %s", path, strerror(errno));
  int n_req, n_pos;
  const char *const *names = px_data_fields(kind, &n_req, &n_pos);
  px_dataset_init(out, kind, n_pos, tok);
  int fields_seen = -1; /* how many fields the records have (all the same) */
  long first_line = 0;
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  px_status st = PX_OK;
  ssize_t got;
  errno = 0;
  while ((got = getline(&line, &cap, f)) >= 0) {
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
    if (have >= 0 && fields_seen >= 0 && have != fields_seen) {
      px_error_set(err, PX_EINPUT,
                   "%s:%ld: field \"%s\" is %s here but %s on line %ld (every "
                   "record has it or none)",
                   path, lineno, names[n_req], have > fields_seen ? "present" : "missing",
                   have > fields_seen ? "missing" : "present", first_line);
      have = -1;
    }
    if (have >= 0 && fields_seen < 0) fields_seen = have, first_line = lineno;
    if (have >= 0) {
      out->n_fields = have;
      px_dataset_append(out, texts, lens);
    }
    json_decref(obj);
    if (have < 0) {
      st = PX_EINPUT;
      break;
    }
  }
  if (st == PX_OK && ferror(f))
    st = px_error_set(err, PX_EINPUT, "%s: read error after line %ld: %s", path, lineno,
                      strerror(errno));
  free(line);
  (void)fclose(f); /* read only: nothing to lose */
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
