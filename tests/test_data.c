/*
 * test_data.c — io/jsonl.c and io/dataset.c: JSONL import of every kind round-trips byte for
 * byte through HDF5 (UTF-8, JSON escapes, an embedded NUL, a 10 MB line), reading a part of the
 * records gives that part and no other, malformed JSONL is refused with FILE:LINE and leaves no
 * file behind, and damaged or hand-made HDF5 files are refused with PX_EINPUT and a message that
 * says what is wrong (Fletcher-32 included), a directory in a data set's place among them; a
 * property list that cannot be closed fails a write (no file) and a read (PX_ERUN), through
 * test_h5fail.h.
 *
 * References: the expected texts are C literals with their lengths (sizeof - 1), written apart
 * from the JSON lines that encode them, so an escape decoded wrongly shows as a byte mismatch.
 */
#define _GNU_SOURCE /* RTLD_NEXT, for test_h5fail.h */
#include <dirent.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/jsonl.h"
#include "proxima/tokenizer.h"
#include "test_h5fail.h"
#include "test_util.h"

static px_error err;

/* The byte tokenizer, which makes every data set here. */
static px_tokenizer tok;

/* "scratch-data-PID/name" in buf (the scratch directory is made on first use). */
static const char *px_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", px_test_dir("data"), name);
  return buf;
}

static int px_write_str(const char *path, const char *text) {
  return px_test_write(path, text, strlen(text));
}

/* A whole file as bytes (NULL if it cannot be read); *len its length. */
static char *px_slurp(const char *path, size_t *len) {
  char *data = NULL;
  px_error e;
  if (px_fs_read_file(path, (size_t)1 << 30, &data, len, &e) != PX_OK) return NULL;
  return data;
}

/* Whether field f of local record i decodes to exactly the len bytes of want. */
static int px_row_equals(const px_dataset *ds, int f, int64_t i, const char *want, size_t len) {
  int64_t n;
  const int32_t *toks = px_dataset_row(ds, f, i, &n);
  if (n != (int64_t)len) return 0;
  for (int64_t t = 0; t < n; t++)
    if (!px_tokenizer_is_text(&tok, toks[t]) || toks[t] > 255) return 0;
  px_text buf = {0};
  size_t got = px_tokenizer_decode(&tok, &buf, toks, (size_t)n);
  int same = got == len && buf.n == len && (len == 0 || memcmp(buf.p, want, len) == 0);
  px_text_free(&buf);
  return same;
}

/* Whether two data sets hold the same kind, fields and token rows. */
static int px_same_records(const px_dataset *a, const px_dataset *b) {
  if (a->kind != b->kind || a->n != b->n || a->n_fields != b->n_fields) return 0;
  for (int f = 0; f < a->n_fields; f++)
    for (int64_t i = 0; i < a->n; i++) {
      int64_t la, lb;
      const int32_t *ta = px_dataset_row(a, f, i, &la), *tb = px_dataset_row(b, f, i, &lb);
      if (la != lb || (la > 0 && memcmp(ta, tb, (size_t)la * sizeof *ta) != 0)) return 0;
    }
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Round trips: one table per kind, each record a JSON line and the bytes it must decode to.
 * --------------------------------------------------------------------------------------------- */

typedef struct px_bytes {
  const char *s;
  size_t n;
} px_bytes;
#define B(lit)                                                                                     \
  { lit, sizeof(lit) - 1 }

typedef struct px_case {
  const char *json;
  px_bytes want[3];
} px_case;

/* é = C3 A9; U+1F600 😀 = F0 9F 98 80 (JSON surrogate pair \ud83d\ude00);
 * 中文 = E4 B8 AD E6 96 87. */
static const px_case text_cases[] = {
    {"{\"text\": \"hello world\"}", {B("hello world")}},
    {"{\"text\": \"\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 caf\xC3\xA9 na\xC3\xAFve\"}",
     {B("\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 caf\xC3\xA9 na\xC3\xAFve")}},
    {"{\"text\": \"line1\\nline2 \\\"q\\\" back\\\\slash \\u00e9 \\ud83d\\ude00 tab\\t/\\/\"}",
     {B("line1\nline2 \"q\" back\\slash \xC3\xA9 \xF0\x9F\x98\x80 tab\t//")}},
    {"{\"text\": \"a\\u0000b\\u0000\"}", {B("a\0b\0")}},
    {"{\"id\": 7, \"text\": \"extra fields are ignored\", \"meta\": {\"x\": [1]}}",
     {B("extra fields are ignored")}},
    {"{\"text\": \"\"}", {B("")}},
};

static const px_case sft_cases[] = {
    {"{\"prompt\": \"37+45=\", \"completion\": \"82\"}", {B("37+45="), B("82")}},
    {"{\"completion\": \"\\u00e9t\\u00e9\", \"prompt\": \"\xE4\xB8\xAD\\n\"}",
     {B("\xE4\xB8\xAD\n"), B("\xC3\xA9t\xC3\xA9")}},
    {"{\"prompt\": \"nul\\u0000inside\", \"completion\": \"\\ud83d\\ude00\\\\\"}",
     {B("nul\0inside"), B("\xF0\x9F\x98\x80\\")}},
};

static const px_case prefs_cases[] = {
    {"{\"prompt\": \"p1\", \"chosen\": \"good\", \"rejected\": \"bad\"}",
     {B("p1"), B("good"), B("bad")}},
    {"{\"prompt\": \"caf\xC3\xA9?\", \"chosen\": \"\\\"yes\\\"\", \"rejected\": \"\\u0000\"}",
     {B("caf\xC3\xA9?"), B("\"yes\""), B("\0")}},
};

static const px_case prompts_ref_cases[] = {
    {"{\"prompt\": \"10+10=\", \"reference\": \"20\"}", {B("10+10="), B("20")}},
    {"{\"prompt\": \"\xF0\x9F\x98\x80+1=\", \"reference\": \"\\n\"}",
     {B("\xF0\x9F\x98\x80+1="), B("\n")}},
};

static const px_case prompts_noref_cases[] = {
    {"{\"prompt\": \"just a prompt\"}", {B("just a prompt")}},
    {"{\"prompt\": \"\\u4e2d\\u6587\"}", {B("\xE4\xB8\xAD\xE6\x96\x87")}},
    {"{\"prompt\": \"z\", \"other\": null}", {B("z")}},
};

/* Writes the cases as NAME.jsonl (with a blank line and a CRLF ending thrown in), imports it to
 * NAME.h5, reads it back whole and checks every field's bytes; also checks that px_jsonl_read
 * gives the same records and that px_jsonl_write / px_jsonl_read round-trips them. */
static void px_round_trip(const char *name, px_data_kind kind, const px_case *cases, int n,
                          int n_fields) {
  char in[512], out[512], again[512], fname[128];
  snprintf(fname, sizeof fname, "%s.jsonl", name);
  px_path(in, sizeof in, fname);
  snprintf(fname, sizeof fname, "%s.h5", name);
  px_path(out, sizeof out, fname);
  snprintf(fname, sizeof fname, "%s-again.jsonl", name);
  px_path(again, sizeof again, fname);

  FILE *f = fopen(in, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < n; i++) fprintf(f, "%s%s", cases[i].json, i == 0 ? "\r\n\n  \n" : "\n");
  fclose(f);

  CU_ASSERT_EQUAL_FATAL(px_jsonl_import(in, kind, &tok, out, &err), PX_OK);
  px_dataset ds, js, back;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(out, PX_IO_ALONE, 0, 1, (int)kind, &tok, &ds, &err), PX_OK);
  CU_ASSERT_EQUAL(ds.kind, kind);
  CU_ASSERT_EQUAL(ds.n_total, n);
  CU_ASSERT_EQUAL(ds.first, 0);
  CU_ASSERT_EQUAL(ds.n, n);
  CU_ASSERT_EQUAL_FATAL(ds.n_fields, n_fields);
  for (int i = 0; i < n; i++)
    for (int fi = 0; fi < n_fields; fi++)
      if (!px_row_equals(&ds, fi, i, cases[i].want[fi].s, cases[i].want[fi].n)) {
        CU_FAIL("decoded field differs from the input");
        fprintf(stderr, "\n  %s: record %d field %d differs\n", name, i, fi);
      }

  /* The JSONL reader gives the same records as the HDF5 file. */
  CU_ASSERT_EQUAL_FATAL(px_jsonl_read(in, kind, &tok, &js, &err), PX_OK);
  CU_ASSERT(px_same_records(&ds, &js));
  /* Written back out as JSONL (escaping NUL, quotes, newlines) and read again: the same. */
  CU_ASSERT_EQUAL_FATAL(px_jsonl_write(again, &ds, &tok, &err), PX_OK);
  CU_ASSERT_EQUAL_FATAL(px_jsonl_read(again, kind, &tok, &back, &err), PX_OK);
  CU_ASSERT(px_same_records(&ds, &back));
  px_dataset_free(&ds);
  px_dataset_free(&js);
  px_dataset_free(&back);
}

static void test_round_trip_text(void) {
  px_round_trip("text", PX_DATA_TEXT, text_cases, (int)(sizeof text_cases / sizeof *text_cases), 1);
}
static void test_round_trip_sft(void) {
  px_round_trip("sft", PX_DATA_SFT, sft_cases, (int)(sizeof sft_cases / sizeof *sft_cases), 2);
}
static void test_round_trip_prefs(void) {
  px_round_trip("prefs", PX_DATA_PREFS, prefs_cases,
                (int)(sizeof prefs_cases / sizeof *prefs_cases), 3);
}
static void test_round_trip_prompts(void) {
  px_round_trip("prompts-ref", PX_DATA_PROMPTS, prompts_ref_cases,
                (int)(sizeof prompts_ref_cases / sizeof *prompts_ref_cases), 2);
  px_round_trip("prompts-noref", PX_DATA_PROMPTS, prompts_noref_cases,
                (int)(sizeof prompts_noref_cases / sizeof *prompts_noref_cases), 1);
}

/* Every record empty: zero tokens in all, which still makes a valid file. */
static void test_round_trip_all_empty(void) {
  static const px_case cases[] = {{"{\"text\": \"\"}", {B("")}}, {"{\"text\": \"\"}", {B("")}}};
  px_round_trip("empty-texts", PX_DATA_TEXT, cases, 2, 1);
}

/* A text record of 10 MB on one line (UTF-8 and escapes in it): imported, and read back whole. */
static void test_ten_megabyte_line(void) {
  const size_t n = (size_t)10 << 20;
  char *want = malloc(n);
  char *json = malloc(2 * n + 64);
  CU_ASSERT_FATAL(want && json);
  /* A repeating 16-byte unit: ASCII, é (2 bytes, raw), a newline (escaped in JSON). */
  static const char unit[16] = "abcdefgh\xC3\xA9xyz12\n";
  for (size_t i = 0; i < n; i++) want[i] = unit[i % 16];
  size_t j = (size_t)sprintf(json, "{\"text\": \"");
  for (size_t i = 0; i < n; i++) {
    if (want[i] == '\n')
      json[j++] = '\\', json[j++] = 'n';
    else
      json[j++] = want[i];
  }
  j += (size_t)sprintf(json + j, "\"}\n");
  char in[512], out[512];
  CU_ASSERT_EQUAL_FATAL(px_test_write(px_path(in, sizeof in, "big.jsonl"), json, j), 0);
  free(json);
  CU_ASSERT_EQUAL_FATAL(
      px_jsonl_import(in, PX_DATA_TEXT, &tok, px_path(out, sizeof out, "big.h5"), &err), PX_OK);
  px_dataset ds;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(out, PX_IO_ALONE, 0, 1, PX_DATA_TEXT, &tok, &ds, &err),
                        PX_OK);
  CU_ASSERT_EQUAL(ds.n, 1);
  CU_ASSERT(px_row_equals(&ds, 0, 0, want, n));
  px_dataset_free(&ds);
  free(want);
  remove(in); /* 50 MB between them: not worth keeping in the scratch directory */
  remove(out);
}

/* 7 records in 3 parts: shares of 3, 2, 2 starting at 0, 3, 5, whose rows are the whole's rows;
 * 10 parts of 7 records: the last three parts are empty and still read. */
static void test_read_parts(void) {
  char in[512], out[512];
  FILE *f = fopen(px_path(in, sizeof in, "seven.jsonl"), "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < 7; i++)
    fprintf(f, "{\"prompt\": \"prompt %d %.*s\", \"completion\": \"c%d\"}\n", i, i * 3,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
  fclose(f);
  CU_ASSERT_EQUAL_FATAL(
      px_jsonl_import(in, PX_DATA_SFT, &tok, px_path(out, sizeof out, "seven.h5"), &err), PX_OK);
  px_dataset whole;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(out, PX_IO_ALONE, 0, 1, PX_DATA_SFT, &tok, &whole, &err),
                        PX_OK);
  CU_ASSERT_EQUAL_FATAL(whole.n, 7);

  static const int64_t first3[3] = {0, 3, 5}, n3[3] = {3, 2, 2};
  for (int parts = 3; parts <= 10; parts += 7) {
    int64_t covered = 0;
    for (int k = 0; k < parts; k++) {
      px_dataset p;
      CU_ASSERT_EQUAL_FATAL(
          px_dataset_read(out, PX_IO_ALONE, k, parts, PX_DATA_SFT, &tok, &p, &err), PX_OK);
      if (parts == 3) {
        CU_ASSERT_EQUAL(p.first, first3[k]);
        CU_ASSERT_EQUAL(p.n, n3[k]);
      } else {
        CU_ASSERT_EQUAL(p.n, k < 7 ? 1 : 0);
      }
      CU_ASSERT_EQUAL(p.first, covered); /* contiguous, in order */
      CU_ASSERT_EQUAL(p.n_total, 7);
      CU_ASSERT_EQUAL(p.n_fields, 2);
      for (int fi = 0; fi < 2; fi++) {
        CU_ASSERT_EQUAL(p.field[fi].offsets[0], 0);
        for (int64_t i = 0; i < p.n; i++) {
          int64_t lw;
          const int32_t *tw = px_dataset_row(&whole, fi, p.first + i, &lw);
          px_text text = {0};
          px_tokenizer_decode(&tok, &text, tw, (size_t)lw);
          CU_ASSERT(px_row_equals(&p, fi, i, text.p ? text.p : "", text.n));
          px_text_free(&text);
        }
      }
      covered += p.n;
      px_dataset_free(&p);
    }
    CU_ASSERT_EQUAL(covered, 7);
  }
  /* Spot-check the whole against the input: record 4 is "prompt 4 " + 12 x's, "c4". */
  CU_ASSERT(px_row_equals(&whole, 0, 4, "prompt 4 xxxxxxxxxxxx", 21));
  CU_ASSERT(px_row_equals(&whole, 1, 4, "c4", 2));
  px_dataset_free(&whole);
}

/* ---------------------------------------------------------------------------------------------
 * Malformed JSONL: PX_EINPUT naming FILE:LINE; no output, and a file already there unchanged.
 * --------------------------------------------------------------------------------------------- */

/* Imports `content` (len bytes, or the file is absent when content is NULL) as kind, twice: to a
 * path where nothing is (must stay so) and over a good file (must stay byte-identical), each in
 * its own directory (which must hold nothing new afterwards, no temporary file either). The
 * message must contain the input's path followed by `where` (":3", or "" for no line) and
 * `what`. */
static void px_refused(const char *name, px_data_kind kind, const char *content, size_t len,
                       const char *where, const char *what) {
  char dir[512], in[600], fresh[600], kept[600];
  snprintf(dir, sizeof dir, "%s/bad-%s", px_test_dir("data"), name);
  CU_ASSERT_EQUAL_FATAL(px_fs_mkdirs(dir, &err), PX_OK);
  snprintf(in, sizeof in, "%s/in.jsonl", dir);
  snprintf(fresh, sizeof fresh, "%s/fresh.h5", dir);
  snprintf(kept, sizeof kept, "%s/kept.h5", dir);
  if (content) CU_ASSERT_EQUAL_FATAL(px_test_write(in, content, len), 0);
  static const char good[] = "a good file that must survive\n";
  CU_ASSERT_EQUAL_FATAL(px_write_str(kept, good), 0);
  int entries = px_count_entries(dir);

  char want[700];
  snprintf(want, sizeof want, "%s%s", in, where);
  for (int pass = 0; pass < 2; pass++) {
    err.msg[0] = '\0';
    px_status st = px_jsonl_import(in, kind, &tok, pass == 0 ? fresh : kept, &err);
    CU_ASSERT_EQUAL(st, PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, want));
    CU_ASSERT(px_test_contains(err.msg, what));
  }
  CU_ASSERT_FALSE(px_fs_exists(fresh));
  size_t klen = 0;
  char *k = px_slurp(kept, &klen);
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  CU_ASSERT(klen == sizeof good - 1 && memcmp(k, good, klen) == 0);
  free(k);
  CU_ASSERT_EQUAL(px_count_entries(dir), entries);
}

#define REFUSED(name, kind, lit, where, what)                                                      \
  px_refused(name, kind, lit, sizeof(lit) - 1, where, what)

static void test_bad_json(void) {
  REFUSED("json", PX_DATA_TEXT, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n",
          ":3:", "invalid JSON");
  /* Blank lines count: the bad line is the 4th of the file. */
  REFUSED("json-blank", PX_DATA_TEXT, "\n{\"text\": \"a\"}\n\n{\"text\": \"b\",}\n",
          ":4:", "invalid JSON");
  /* Not UTF-8 (a lone 0xFF byte), duplicate keys, trailing garbage. */
  REFUSED("utf8", PX_DATA_TEXT, "{\"text\": \"a\"}\n{\"text\": \"\xFF\"}\n", ":2:", "invalid JSON");
  REFUSED("dup", PX_DATA_TEXT, "{\"text\": \"a\", \"text\": \"b\"}\n", ":1:", "invalid JSON");
  REFUSED("trailing", PX_DATA_TEXT, "{\"text\": \"a\"} x\n", ":1:", "invalid JSON");
}

static void test_missing_field(void) {
  REFUSED("missing", PX_DATA_SFT,
          "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n",
          ":2:", "field \"completion\" is missing");
  REFUSED("missing-prefs", PX_DATA_PREFS, "{\"prompt\": \"a\", \"chosen\": \"b\"}\n",
          ":1:", "field \"rejected\" is missing");
}

static void test_wrong_type(void) {
  REFUSED("type-num", PX_DATA_TEXT, "{\"text\": \"a\"}\n{\"text\": 5}\n",
          ":2:", "field \"text\" is an integer, expected a string");
  REFUSED("type-real", PX_DATA_SFT, "{\"prompt\": \"a\", \"completion\": 1.5}\n",
          ":1:", "field \"completion\" is a number, expected a string");
  REFUSED("type-null", PX_DATA_PROMPTS, "{\"prompt\": null}\n",
          ":1:", "field \"prompt\" is null, expected a string");
  REFUSED("type-ref", PX_DATA_PROMPTS, "{\"prompt\": \"a\", \"reference\": 3}\n",
          ":1:", "field \"reference\" is an integer");
}

static void test_not_an_object(void) {
  REFUSED("array", PX_DATA_TEXT, "{\"text\": \"a\"}\n[\"a\", \"b\"]\n",
          ":2:", "expected a JSON object {\"text\": string}, found an array");
  /* jansson parses only an object or array at the top level: a bare string is bad JSON. */
  REFUSED("string", PX_DATA_TEXT, "{\"text\": \"a\"}\n\"text\"\n", ":2:", "'[' or '{' expected");
}

static void test_reference_some_lines(void) {
  REFUSED("ref-later", PX_DATA_PROMPTS,
          "{\"prompt\": \"a\", \"reference\": \"1\"}\n{\"prompt\": \"b\", \"reference\": \"2\"}\n"
          "{\"prompt\": \"c\"}\n",
          ":3:", "field \"reference\" is missing here but present on line 1");
  REFUSED("ref-first", PX_DATA_PROMPTS,
          "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\", \"reference\": \"2\"}\n",
          ":3:", "field \"reference\" is present here but missing on line 1");
}

static void test_empty_input(void) {
  px_refused("empty", PX_DATA_TEXT, "", 0, ": ", "no records");
  REFUSED("blank", PX_DATA_SFT, "\n  \n\t\r\n\n", ": ", "no records");
  px_refused("nonexistent", PX_DATA_TEXT, NULL, 0, ": No such file", "cannot open");
}

/* ---------------------------------------------------------------------------------------------
 * Damaged and hand-made HDF5 files.
 * --------------------------------------------------------------------------------------------- */

static void px_attr_str(hid_t loc, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
  CU_ASSERT_FATAL(type >= 0 && space >= 0 && H5Tset_size(type, strlen(value) + 1) >= 0);
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT_FATAL(a >= 0 && H5Awrite(a, type, value) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
}

static void px_attr_i64(hid_t loc, const char *name, int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT_FATAL(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
  H5Aclose(a);
  H5Sclose(space);
}

static void px_dset_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                       const void *data, hsize_t n) {
  hid_t space = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT_FATAL(d >= 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(d);
  H5Sclose(space);
}

/* What px_craft records as the tokenizer: format_version 2 with its kind, hash and n_vocab (the
 * byte tokenizer's unless a test changes them), or format_version 1 with tokenizer "bytes". */
static int craft_version = 2;
static const char *craft_tokenizer = "byte", *craft_hash = NULL;

/* A hand-made data set file (plain contiguous datasets, no checksums): root attributes format
 * and kind (skipped when NULL), format_version and the tokenizer's (above), n_records; one group
 * `group` (none when NULL) holding offsets and tokens as given. */
static void px_craft(const char *path, const char *format, const char *kind, int64_t n_records,
                     const char *group, const int64_t *offsets, hsize_t n_off,
                     const int32_t *tokens, hsize_t n_tok) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT_FATAL(file >= 0);
  if (format) px_attr_str(file, "format", format);
  px_attr_i64(file, "format_version", craft_version);
  if (craft_version == 1) {
    px_attr_str(file, "tokenizer", "bytes");
  } else {
    px_attr_str(file, "tokenizer", craft_tokenizer);
    px_attr_str(file, "tokenizer_sha256", craft_hash ? craft_hash : tok.hash);
    px_attr_i64(file, "tokenizer_n_vocab", tok.n_vocab);
  }
  if (kind) px_attr_str(file, "kind", kind);
  px_attr_i64(file, "n_records", n_records);
  if (group) {
    hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(g >= 0);
    px_dset_1d(g, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, offsets, n_off);
    px_dset_1d(g, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, tokens, n_tok);
    H5Gclose(g);
  }
  CU_ASSERT_FATAL(H5Fclose(file) >= 0);
}

/* Reads path expecting PX_EINPUT with a message holding the path and `what`; out left empty. */
static void px_read_refused(const char *path, int want_kind, const char *what) {
  px_dataset ds;
  err.msg[0] = '\0';
  CU_ASSERT_EQUAL(px_dataset_read(path, PX_IO_ALONE, 0, 1, want_kind, &tok, &ds, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, path));
  CU_ASSERT(px_test_contains(err.msg, what));
  CU_ASSERT_EQUAL(ds.n, 0);
  CU_ASSERT_EQUAL(ds.n_fields, 0);
  CU_ASSERT_PTR_NULL(ds.field[0].tokens);
  CU_ASSERT_PTR_NULL(ds.field[0].offsets);
}

/* "abc" "de" "" "f" as a text data set. */
static const int64_t good_off[5] = {0, 3, 5, 5, 6};
static const int32_t good_tok[6] = {'a', 'b', 'c', 'd', 'e', 'f'};

static void test_crafted_file_reads(void) {
  /* The control: the hand-made layout is read as the format says, so the refusals below are
   * about the one thing each changes. */
  char p[512];
  px_craft(px_path(p, sizeof p, "craft-ok.h5"), "proxima-dataset", "text", 4, "text", good_off, 5,
           good_tok, 6);
  px_dataset ds;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(p, PX_IO_ALONE, 0, 1, PX_DATA_TEXT, &tok, &ds, &err),
                        PX_OK);
  CU_ASSERT_EQUAL(ds.n, 4);
  CU_ASSERT(px_row_equals(&ds, 0, 0, "abc", 3));
  CU_ASSERT(px_row_equals(&ds, 0, 1, "de", 2));
  CU_ASSERT(px_row_equals(&ds, 0, 2, "", 0));
  CU_ASSERT(px_row_equals(&ds, 0, 3, "f", 1));
  px_dataset_free(&ds);
  /* Part 1 of 2 (records 2, 3), any tokenizer: offsets rebased to 0. */
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(p, PX_IO_ALONE, 1, 2, -1, NULL, &ds, &err), PX_OK);
  CU_ASSERT_EQUAL(ds.first, 2);
  CU_ASSERT_EQUAL(ds.n, 2);
  CU_ASSERT(px_row_equals(&ds, 0, 0, "", 0));
  CU_ASSERT(px_row_equals(&ds, 0, 1, "f", 1));
  CU_ASSERT_STRING_EQUAL(ds.tokenizer, "byte");
  CU_ASSERT_STRING_EQUAL(ds.tokenizer_hash, tok.hash);
  CU_ASSERT_EQUAL(ds.tokenizer_n_vocab, 256);
  px_dataset_free(&ds);
  /* format_version 1 (tokenizer "bytes", no hash) reads as the byte tokenizer's. */
  craft_version = 1;
  px_craft(px_path(p, sizeof p, "craft-v1.h5"), "proxima-dataset", "text", 4, "text", good_off, 5,
           good_tok, 6);
  craft_version = 2;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(p, PX_IO_ALONE, 0, 1, PX_DATA_TEXT, &tok, &ds, &err),
                        PX_OK);
  CU_ASSERT(px_row_equals(&ds, 0, 0, "abc", 3));
  CU_ASSERT_STRING_EQUAL(ds.tokenizer, "byte");
  CU_ASSERT_STRING_EQUAL(ds.tokenizer_hash, tok.hash);
  px_dataset_free(&ds);
}

/* A data set another tokenizer made is refused when the byte tokenizer is asked for, and read
 * when any is. */
static void test_other_tokenizer(void) {
  char p[512];
  craft_tokenizer = "gpt2";
  craft_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  px_craft(px_path(p, sizeof p, "craft-gpt2.h5"), "proxima-dataset", "text", 4, "text", good_off, 5,
           good_tok, 6);
  craft_tokenizer = "byte";
  craft_hash = NULL;
  px_read_refused(p, PX_DATA_TEXT, "was tokenized with gpt2");
  px_dataset ds;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(p, PX_IO_ALONE, 0, 1, PX_DATA_TEXT, NULL, &ds, &err),
                        PX_OK);
  CU_ASSERT_STRING_EQUAL(ds.tokenizer, "gpt2");
  CU_ASSERT_EQUAL(ds.n, 4);
  px_dataset_free(&ds);
}

static void test_not_hdf5(void) {
  char p[512];
  CU_ASSERT_EQUAL_FATAL(px_write_str(px_path(p, sizeof p, "plain.h5"), "{\"text\": \"hi\"}\n"), 0);
  px_read_refused(p, -1, "not an HDF5 file");
  CU_ASSERT_EQUAL_FATAL(px_write_str(px_path(p, sizeof p, "empty.h5"), ""), 0);
  px_read_refused(p, -1, "not an HDF5 file");
  px_read_refused(px_path(p, sizeof p, "no-such-file.h5"), -1, "no such file");
}

static void test_bad_attributes(void) {
  char p[512];
  px_craft(px_path(p, sizeof p, "format.h5"), "some-other-format", "text", 4, "text", good_off, 5,
           good_tok, 6);
  px_read_refused(p, -1, "format is 'some-other-format', expected 'proxima-dataset'");
  px_craft(px_path(p, sizeof p, "noformat.h5"), NULL, "text", 4, "text", good_off, 5, good_tok, 6);
  px_read_refused(p, -1, "attribute 'format' is missing");
  px_craft(px_path(p, sizeof p, "kind.h5"), "proxima-dataset", "images", 4, "text", good_off, 5,
           good_tok, 6);
  px_read_refused(p, -1, "unknown kind 'images'");
  /* n_records disagrees with the offsets (5 entries = 4 records + 1). */
  px_craft(px_path(p, sizeof p, "count.h5"), "proxima-dataset", "text", 3, "text", good_off, 5,
           good_tok, 6);
  px_read_refused(p, -1, "offsets has 5 entries, expected n_records + 1 = 4");
}

static void test_wrong_kind(void) {
  char in[512], out[512];
  CU_ASSERT_EQUAL_FATAL(px_write_str(px_path(in, sizeof in, "kind.jsonl"),
                                     "{\"prompt\": \"a\", \"completion\": \"b\"}\n"),
                        0);
  CU_ASSERT_EQUAL_FATAL(
      px_jsonl_import(in, PX_DATA_SFT, &tok, px_path(out, sizeof out, "kind-sft.h5"), &err), PX_OK);
  px_read_refused(out, PX_DATA_PREFS, "holds sft records, this command needs prefs records");
  px_dataset ds;
  CU_ASSERT_EQUAL(px_dataset_read(out, PX_IO_ALONE, 0, 1, PX_DATA_SFT, &tok, &ds, &err), PX_OK);
  px_dataset_free(&ds);
}

static void test_bad_offsets_and_tokens(void) {
  char p[512];
  static const int64_t down[5] = {0, 3, 2, 5, 6};
  px_craft(px_path(p, sizeof p, "decrease.h5"), "proxima-dataset", "text", 4, "text", down, 5,
           good_tok, 6);
  px_read_refused(p, -1, "offsets are invalid at record 1");
  static const int64_t start[5] = {1, 3, 5, 5, 6};
  px_craft(px_path(p, sizeof p, "start.h5"), "proxima-dataset", "text", 4, "text", start, 5,
           good_tok, 6);
  px_read_refused(p, -1, "offsets are invalid at record 0");
  static const int64_t past[5] = {0, 3, 5, 5, 60};
  px_craft(px_path(p, sizeof p, "past.h5"), "proxima-dataset", "text", 4, "text", past, 5, good_tok,
           6);
  px_read_refused(p, -1, "offsets are invalid at record 4");
  static const int32_t t300[6] = {'a', 'b', 300, 'd', 'e', 'f'};
  px_craft(px_path(p, sizeof p, "t300.h5"), "proxima-dataset", "text", 4, "text", good_off, 5, t300,
           6);
  px_read_refused(p, -1, "token 2 of the field is 300, outside the tokenizer's vocabulary (0-255)");
  static const int32_t tneg[6] = {'a', 'b', 'c', 'd', 'e', -1};
  px_craft(px_path(p, sizeof p, "tneg.h5"), "proxima-dataset", "text", 4, "text", good_off, 5, tneg,
           6);
  px_read_refused(p, -1, "token 5 of the field is -1");
}

static void test_missing_group(void) {
  char p[512];
  px_craft(px_path(p, sizeof p, "nogroup.h5"), "proxima-dataset", "text", 4, NULL, NULL, 0, NULL,
           0);
  px_read_refused(p, -1, "group '/text' is missing");
  /* An sft file with its prompt group but no completion group. */
  px_craft(px_path(p, sizeof p, "halfsft.h5"), "proxima-dataset", "sft", 4, "prompt", good_off, 5,
           good_tok, 6);
  px_read_refused(p, PX_DATA_SFT, "group '/completion' is missing");
}

/* A directory where the data set should be (a file replaced by one): said so, not "not an HDF5
 * file". */
static void test_directory(void) {
  char p[512];
  CU_ASSERT_EQUAL_FATAL(px_fs_mkdirs(px_path(p, sizeof p, "dir.h5"), &err), PX_OK);
  px_read_refused(p, -1, "is a directory");
}

/* The property lists of px_dataset_write and px_dataset_read that cannot be closed: the write
 * fails and leaves no file (nor a temporary one), the read fails with PX_ERUN and hands back
 * nothing; the next write and read go through. */
static void test_property_list_close_checked(void) {
  char dir[512], p[600];
  snprintf(dir, sizeof dir, "%s/plist", px_test_dir("data"));
  CU_ASSERT_EQUAL_FATAL(px_fs_mkdirs(dir, &err), PX_OK);
  snprintf(p, sizeof p, "%s/t.h5", dir);
  px_dataset ds;
  px_dataset_init(&ds, PX_DATA_TEXT, 1, &tok);
  const char *text = "abc";
  size_t len = 3;
  px_dataset_append(&ds, &text, &len);
  px_h5fail_arm(PX_H5FAIL_PCLOSE, 1);
  err.msg[0] = '\0';
  CU_ASSERT_EQUAL(px_dataset_write(p, &ds, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, p));
  CU_ASSERT_EQUAL(px_count_entries(dir), 0);
  CU_ASSERT_EQUAL_FATAL(px_dataset_write(p, &ds, &err), PX_OK);
  px_dataset_free(&ds);

  px_h5fail_arm(PX_H5FAIL_PCLOSE, 1);
  err.msg[0] = '\0';
  CU_ASSERT_EQUAL(px_dataset_read(p, PX_IO_ALONE, 0, 1, -1, &tok, &ds, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, p));
  CU_ASSERT(px_test_contains(err.msg, "cannot release the file-access property list"));
  CU_ASSERT_EQUAL(ds.n, 0);
  CU_ASSERT_PTR_NULL(ds.field[0].tokens);
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(p, PX_IO_ALONE, 0, 1, -1, &tok, &ds, &err), PX_OK);
  CU_ASSERT(px_row_equals(&ds, 0, 0, "abc", 3));
  px_dataset_free(&ds);
}

/* Flips one byte inside the stored tokens of a real file: Fletcher-32 must catch it. */
static void test_checksum_catches_flipped_byte(void) {
  enum { N = 4000 };
  char *text = malloc(N + 1);
  for (int i = 0; i < N; i++) text[i] = "QZ"[i % 2];
  text[N] = '\0';
  char in[512], out[512];
  char *json = malloc(N + 32);
  int jl = sprintf(json, "{\"text\": \"%s\"}\n", text);
  CU_ASSERT_EQUAL_FATAL(px_test_write(px_path(in, sizeof in, "flip.jsonl"), json, (size_t)jl), 0);
  free(json);
  CU_ASSERT_EQUAL_FATAL(
      px_jsonl_import(in, PX_DATA_TEXT, &tok, px_path(out, sizeof out, "flip.h5"), &err), PX_OK);
  px_dataset ds;
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(out, PX_IO_ALONE, 0, 1, PX_DATA_TEXT, &tok, &ds, &err),
                        PX_OK);
  CU_ASSERT(px_row_equals(&ds, 0, 0, text, N));
  px_dataset_free(&ds);

  /* Find "QZQZQZQZ" as int32 little-endian tokens and change one Q into an R in the middle. */
  size_t len = 0;
  unsigned char *bytes = (unsigned char *)px_slurp(out, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
  unsigned char pat[32] = {0};
  for (int i = 0; i < 8; i++) pat[4 * i] = (unsigned char)"QZ"[i % 2];
  size_t at = len;
  for (size_t i = 0; i + sizeof pat <= len && at == len; i++)
    if (memcmp(bytes + i, pat, sizeof pat) == 0) at = i;
  CU_ASSERT_FATAL(at < len);
  size_t flip = at + 4 * 1000; /* token 1000 or so of the run, still inside the tokens */
  CU_ASSERT_FATAL(flip + 4 <= len && bytes[flip] == 'Q');
  bytes[flip] = 'R';
  CU_ASSERT_EQUAL_FATAL(px_test_write(out, (const char *)bytes, len), 0);
  free(bytes);
  px_read_refused(out, PX_DATA_TEXT, "cannot read tokens (damaged file? checksum error?)");

  /* The control: with checksum verification turned off, HDF5 returns the damaged token, so the
   * flip landed in the tokens and only Fletcher-32 stood between it and the caller. */
  hid_t file = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dset = file < 0 ? H5I_INVALID_HID : H5Dopen2(file, "text/tokens", H5P_DEFAULT);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  CU_ASSERT_FATAL(dset >= 0 && dxpl >= 0 && H5Pset_edc_check(dxpl, H5Z_DISABLE_EDC) >= 0);
  int32_t *raw = malloc(N * sizeof *raw);
  CU_ASSERT_FATAL(H5Dread(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, dxpl, raw) >= 0);
  int64_t changed = 0, where = -1;
  for (int i = 0; i < N; i++)
    if (raw[i] != (int32_t)(unsigned char)text[i]) changed++, where = i;
  CU_ASSERT_EQUAL(changed, 1);
  CU_ASSERT_EQUAL(raw[where >= 0 ? where : 0], 'R');
  free(raw);
  H5Pclose(dxpl);
  H5Dclose(dset);
  H5Fclose(file);
  free(text);
}

void px_test_register(void) {
  px_tokenizer_byte(&tok);
  static const CU_TestInfo round_trip[] = {
      {"text: UTF-8, escapes, NUL, extra fields", test_round_trip_text},
      {"sft", test_round_trip_sft},
      {"prefs", test_round_trip_prefs},
      {"prompts with and without reference", test_round_trip_prompts},
      {"every record empty", test_round_trip_all_empty},
      {"a 10 MB line", test_ten_megabyte_line},
      {"parts k of n", test_read_parts},
      CU_TEST_INFO_NULL,
  };
  static const CU_TestInfo bad_jsonl[] = {
      {"bad JSON", test_bad_json},
      {"missing field", test_missing_field},
      {"field of the wrong type", test_wrong_type},
      {"record not an object", test_not_an_object},
      {"reference on some lines only", test_reference_some_lines},
      {"empty, blank, nonexistent input", test_empty_input},
      CU_TEST_INFO_NULL,
  };
  static const CU_TestInfo bad_h5[] = {
      {"hand-made control file reads", test_crafted_file_reads},
      {"not HDF5, empty, missing", test_not_hdf5},
      {"bad root attributes", test_bad_attributes},
      {"made by another tokenizer", test_other_tokenizer},
      {"wrong kind", test_wrong_kind},
      {"bad offsets and tokens", test_bad_offsets_and_tokens},
      {"missing group", test_missing_group},
      {"Fletcher-32 catches a flipped byte", test_checksum_catches_flipped_byte},
      {"a directory in a data set's place", test_directory},
      {"property lists that cannot be closed", test_property_list_close_checked},
      CU_TEST_INFO_NULL,
  };
  px_test_suite("data import round trip", round_trip);
  px_test_suite("malformed JSONL", bad_jsonl);
  px_test_suite("damaged HDF5", bad_h5);
}
