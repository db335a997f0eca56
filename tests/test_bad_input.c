/*
 * test_bad_input.c — every kind of bad input a user can hand proxima, one table row each:
 * config files and settings, the command line, JSONL to import, HDF5 data sets, checkpoints and
 * sizes too large to allocate. DESIGN.md section 8: a user's mistake gets exit status 1 and a
 * message saying what is wrong and where (file and line, record, dataset path); nothing a user
 * gives may crash the program (no sanitizer report, no signal, no exit 2) or leave a partial
 * output file behind.
 *
 * Each row: a description, an optional setup (writes the files the case needs: text files
 * directly, HDF5 files with the HDF5 C API, damaged copies of a real data set or checkpoint),
 * the proxima command line, the expected exit status, substrings that stderr must contain, an
 * output that must not be left (a file, or a run directory without checkpoints or temporaries),
 * and rows that show a product bug carry expect_bug: they are skipped with a printed
 * "KNOWN BUG: ..." line until the product is fixed (then drop the flag).
 *
 * The inputs every row shares (data, an sft run, a smaller sft run of another shape, a reward
 * model) are made first, with the small model of the other CLI suites. Every command runs under
 * `timeout`, so a hang (ranks that disagree) fails the row instead of the suite.
 */
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_proc.h"
#include "test_util.h"

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16"
#define QUIET "run.log_level=warn"
#define CK "bi-sft/checkpoints/ckpt-00000005.h5" /* the sft run's checkpoint */
#define SFT "sft --steps 1 sft.batch_size=16 " SMALL " " QUIET " "
#define RM "rm --data bi-data/prefs.h5 rm.epochs=0.05 rm.norm_samples=0 " QUIET " "
#define PPO                                                                                        \
  "ppo --prompts bi-data/prompts.h5 --eval-prompts bi-data/eval.h5 --iterations 1 "                \
  "ppo.batch_size=8 ppo.minibatch=8 ppo.micro_batch=4 sample.batch=8 "                             \
  "sample.max_new_tokens=6 " QUIET " "
#define TIMEOUT "timeout -k 5 120"

typedef struct bad_case {
  const char *what;       /* what the case gives proxima */
  const char *file;       /* with text: a file the case writes first (NULL: none) */
  const char *text;       /* its contents */
  int (*setup)(void);     /* or a function that makes the case's files; 0 on success */
  const char *args;       /* the proxima command line */
  int status;             /* the exit status expected */
  const char *err[4];     /* substrings stderr must contain (what, where, what was expected) */
  const char *no_output;  /* a file that must not exist afterwards, or a run directory that
                             must hold no checkpoint and no temporary file (NULL: none) */
  const char *expect_bug; /* a known product bug: the row is skipped with this line */
} bad_case;

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

static int write_text(const char *path, const char *text) {
  return px_test_write(path, text, strlen(text));
}

/* A copy of from, opened read-write (H5I_INVALID_HID on failure). */
static hid_t h5_copy(const char *from, const char *to) {
  if (px_test_copy_file(from, to, -1) != 0) return H5I_INVALID_HID;
  return H5Fopen(to, H5F_ACC_RDWR, H5P_DEFAULT);
}

/* Replaces (or adds) dataset name with an ndim dataset of type, filled from data (zeros when
 * NULL); chunked with Fletcher-32 as proxima writes its own. */
static int h5_put(hid_t f, const char *name, hid_t file_type, hid_t mem_type, int ndim,
                  const hsize_t *dims, const void *data) {
  if (H5Lexists(f, name, H5P_DEFAULT) > 0 && H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
  hsize_t n = 1, chunk[4];
  for (int i = 0; i < ndim; i++) n *= dims[i], chunk[i] = dims[i] > 0 ? dims[i] : 1;
  hid_t space = H5Screate_simple(ndim, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  int rc = H5Pset_chunk(dcpl, ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ? -1 : 0;
  hid_t d = H5Dcreate2(f, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  void *zeros = data ? NULL : calloc(n ? n : 1, 16);
  if (d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data ? data : zeros) < 0)
    rc = -1;
  free(zeros);
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  return rc;
}

/* Reads a whole 1-D dataset into a new buffer of *n elements of mem_type (size bytes each). */
static void *h5_get_1d(hid_t f, const char *name, hid_t mem_type, size_t size, hsize_t *n) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t space = H5Dget_space(d);
  H5Sget_simple_extent_dims(space, n, NULL);
  H5Sclose(space);
  void *buf = malloc((size_t)(*n ? *n : 1) * size);
  if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) free(buf), buf = NULL;
  H5Dclose(d);
  return buf;
}

/* Writes a whole 1-D dataset in place (same shape). */
static int h5_set_1d(hid_t f, const char *name, hid_t mem_type, const void *buf) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  int rc = d >= 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
  if (d >= 0) H5Dclose(d);
  return rc;
}

/* Rewrites a root or group attribute: a string, or an int64. */
static int h5_attr_str(hid_t loc, const char *name, const char *value) {
  if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0) return -1;
  hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
  H5Tset_size(type, strlen(value) + 1);
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, type, value) >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  return rc;
}

static int h5_attr_i64(hid_t loc, const char *name, int64_t value) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  int rc = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0 ? 0 : -1;
  if (a >= 0) H5Aclose(a);
  return rc;
}

static int h5_done(hid_t f, int rc) { return H5Fclose(f) < 0 || rc != 0 ? -1 : 0; }

/* ---------------------------------------------------------------------------------------------
 * Setups: HDF5 data sets (damaged copies of the synthetic sft set)
 * ------------------------------------------------------------------------------------------- */

#define DS "bi-data/sft.h5"

static int ds_truncated(void) {
  return px_test_copy_file(DS, "bi-half.h5", px_test_file_size(DS) / 2);
}

static int ds_no_group(void) {
  hid_t f = h5_copy(DS, "bi-nogroup.h5");
  return f < 0 ? -1 : h5_done(f, H5Ldelete(f, "/completion", H5P_DEFAULT) < 0);
}

static int ds_no_dataset(void) {
  hid_t f = h5_copy(DS, "bi-nooffsets.h5");
  return f < 0 ? -1 : h5_done(f, H5Ldelete(f, "/prompt/offsets", H5P_DEFAULT) < 0);
}

/* /prompt/tokens as float32: the right length, the wrong class. */
static int ds_float_tokens(void) {
  hid_t f = h5_copy(DS, "bi-float.h5");
  if (f < 0) return -1;
  hsize_t n;
  int32_t *tok = h5_get_1d(f, "/prompt/tokens", H5T_NATIVE_INT32, 4, &n);
  float *fl = malloc((size_t)n * sizeof *fl);
  for (hsize_t i = 0; tok && i < n; i++) fl[i] = (float)tok[i];
  int rc = tok ? h5_put(f, "/prompt/tokens", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &n, fl) : -1;
  free(tok), free(fl);
  return h5_done(f, rc);
}

/* /prompt/tokens as a 2-D [n, 1] dataset. */
static int ds_2d_tokens(void) {
  hid_t f = h5_copy(DS, "bi-2d.h5");
  if (f < 0) return -1;
  hsize_t n;
  int32_t *tok = h5_get_1d(f, "/prompt/tokens", H5T_NATIVE_INT32, 4, &n);
  hsize_t dims[2] = {n, 1};
  int rc = tok ? h5_put(f, "/prompt/tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, dims, tok) : -1;
  free(tok);
  return h5_done(f, rc);
}

/* /prompt a dataset where a group belongs. */
static int ds_not_group(void) {
  hid_t f = h5_copy(DS, "bi-notgroup.h5");
  if (f < 0) return -1;
  hsize_t n = 4;
  int rc = H5Ldelete(f, "/prompt", H5P_DEFAULT) < 0 ? -1 : 0;
  if (rc == 0) rc = h5_put(f, "/prompt", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, NULL);
  return h5_done(f, rc);
}

/* Edits /prompt/offsets or /prompt/tokens in place: which 0 offsets, 1 tokens. */
static int ds_edit(const char *to, int which, int64_t at, int64_t value) {
  hid_t f = h5_copy(DS, to);
  if (f < 0) return -1;
  hsize_t n;
  const char *name = which ? "/prompt/tokens" : "/prompt/offsets";
  hid_t mt = which ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
  void *buf = h5_get_1d(f, name, mt, which ? 4 : 8, &n);
  if (!buf) return h5_done(f, -1);
  if (at < 0) at += (int64_t)n;
  if (which)
    ((int32_t *)buf)[at] = (int32_t)value;
  else
    ((int64_t *)buf)[at] = value < 0 ? ((int64_t *)buf)[at] + value : value;
  int rc = h5_set_1d(f, name, mt, buf);
  free(buf);
  return h5_done(f, rc);
}

/* offsets[100] far below offsets[99]: they decrease. */
static int ds_offsets_decrease(void) { return ds_edit("bi-decrease.h5", 0, 100, 1); }
/* the last offset past the tokens there are */
static int ds_offsets_past_end(void) { return ds_edit("bi-pastend.h5", 0, -1, 1 << 30); }
/* offsets[0] negative */
static int ds_offsets_negative(void) { return ds_edit("bi-negative.h5", 0, 0, -5); }
/* a token id that is no byte */
static int ds_token_300(void) { return ds_edit("bi-tok300.h5", 1, 7, 300); }
static int ds_token_negative(void) { return ds_edit("bi-tokneg.h5", 1, 9, -2); }

static int ds_n_records(void) {
  hid_t f = h5_copy(DS, "bi-nrec.h5");
  return f < 0 ? -1 : h5_done(f, h5_attr_i64(f, "n_records", 2500));
}

static int ds_unknown_kind(void) {
  hid_t f = h5_copy(DS, "bi-kind.h5");
  return f < 0 ? -1 : h5_done(f, h5_attr_str(f, "kind", "poems"));
}

static int ds_other_format(void) {
  hid_t f = h5_copy(DS, "bi-format.h5");
  return f < 0 ? -1 : h5_done(f, h5_attr_str(f, "format", "something-else"));
}

/* A plain HDF5 file, made with the C API, with no attributes at all. */
static int ds_plain_hdf5(void) {
  hid_t f = H5Fcreate("bi-plain.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  hsize_t n = 8;
  return h5_done(f, h5_put(f, "/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &n, NULL));
}

/* One record whose offsets claim 2^40 tokens, in a tokens dataset that declares 2^40 elements
 * and stores none: must be refused, not allocated (4 TiB). */
static int ds_hollow_huge(void) {
  hid_t f = h5_copy(DS, "bi-hollow.h5");
  if (f < 0) return -1;
  int rc = h5_attr_i64(f, "n_records", 1);
  int64_t off[2] = {0, (int64_t)1 << 40};
  hsize_t two = 2;
  for (int i = 0; i < 2 && rc == 0; i++) {
    char name[64];
    snprintf(name, sizeof name, "/%s/offsets", i ? "completion" : "prompt");
    rc = h5_put(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &two, off);
    snprintf(name, sizeof name, "/%s/tokens", i ? "completion" : "prompt");
    if (rc == 0 && H5Ldelete(f, name, H5P_DEFAULT) < 0) rc = -1;
    hsize_t dims[1] = {(hsize_t)1 << 40}, chunk[1] = {1 << 16};
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    hid_t d = H5Dcreate2(f, name, H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) rc = -1;
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl), H5Sclose(space);
  }
  return h5_done(f, rc);
}

/* ---------------------------------------------------------------------------------------------
 * Setups: checkpoints (damaged copies of the sft run's checkpoint)
 * ------------------------------------------------------------------------------------------- */

static int ck_no_policy(void) {
  hid_t f = h5_copy(CK, "bi-nopolicy.h5");
  return f < 0 ? -1 : h5_done(f, H5Ldelete(f, "/policy", H5P_DEFAULT) < 0);
}

static int ck_wrong_shape(void) {
  hid_t f = h5_copy(CK, "bi-shape.h5");
  hsize_t dims[2] = {259, 65}; /* width 64 in the group's attributes */
  return f < 0 ? -1
               : h5_done(f,
                         h5_put(f, "/policy/wte", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, NULL));
}

static int ck_wrong_dtype(void) {
  hid_t f = h5_copy(CK, "bi-dtype.h5");
  hsize_t dims[1] = {64};
  return f < 0 ? -1
               : h5_done(
                     f, h5_put(f, "/policy/lnf_w", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, NULL));
}

/* One byte flipped in the middle of /policy/wte's first chunk (the checksum catches it). */
static int ck_flipped(void) {
  if (px_test_copy_file(CK, "bi-flipped.h5", -1) != 0) return -1;
  hid_t f = H5Fopen("bi-flipped.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f < 0 ? H5I_INVALID_HID : H5Dopen2(f, "/policy/wte", H5P_DEFAULT);
  hid_t space = d < 0 ? H5I_INVALID_HID : H5Dget_space(d);
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0, off[3];
  unsigned mask = 0;
  int ok = space >= 0 && H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size) >= 0;
  if (space >= 0) H5Sclose(space);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  if (!ok || addr == HADDR_UNDEF || size < 8) return -1;
  int fd = open("bi-flipped.h5", O_RDWR);
  unsigned char b;
  off_t at = (off_t)(addr + size / 2);
  ok = fd >= 0 && pread(fd, &b, 1, at) == 1;
  b ^= 0xFF;
  ok = ok && pwrite(fd, &b, 1, at) == 1;
  if (fd >= 0) ok = close(fd) == 0 && ok;
  return ok ? 0 : -1;
}

static int ck_truncated(void) {
  return px_test_copy_file(CK, "bi-ckhalf.h5", px_test_file_size(CK) / 2);
}

/* Attributes of a model far larger than the file (1024 layers of width 65536). */
static int ck_huge_model(void) {
  hid_t f = h5_copy(CK, "bi-hugeck.h5");
  if (f < 0) return -1;
  hid_t g = H5Gopen2(f, "policy", H5P_DEFAULT);
  int rc = g < 0 || h5_attr_i64(g, "n_layer", 1024) || h5_attr_i64(g, "n_embd", 65536) ? -1 : 0;
  if (g >= 0) H5Gclose(g);
  return h5_done(f, rc);
}

/* A run directory whose LATEST names a checkpoint that is not there. */
static int ck_dangling_latest(void) {
  mkdir("bi-dangling", 0777);
  mkdir("bi-dangling/checkpoints", 0777);
  return write_text("bi-dangling/checkpoints/LATEST", "ckpt-00000099.h5\n");
}

/* ---------------------------------------------------------------------------------------------
 * Setups: other files
 * ------------------------------------------------------------------------------------------- */

static int make_dir(void) {
  return mkdir("bi-dir.ini", 0777) == 0 || access("bi-dir.ini", F_OK) == 0 ? 0 : -1;
}

/* An INI file over the 1 MiB a config may have. */
static int big_ini(void) {
  FILE *f = fopen("bi-big.ini", "w");
  if (!f) return -1;
  for (int i = 0; i < 200000; i++) fputs("; a comment\n", f);
  return fclose(f) == 0 ? 0 : -1;
}

/* An INI line of 5000 characters. */
static int long_line_ini(void) {
  static char text[6000];
  int n = snprintf(text, sizeof text, "[run]\nseed = ");
  memset(text + n, '1', 5000);
  strcpy(text + n + 5000, "\n");
  return write_text("bi-long.ini", text);
}

/* A prompts data set (via data import) whose prompt is 40 bytes long, beyond max_seq_len 16. */
static int long_prompts(void) {
  static char line[256];
  snprintf(line, sizeof line, "{\"prompt\":\"%s\"}\n", "1234567890123456789012345678901234567890");
  if (write_text("bi-long.jsonl", line) != 0) return -1;
  return px_proc_run("", "data import --kind prompts bi-long.jsonl bi-long.h5 " QUIET) == 0 ? 0
                                                                                            : -1;
}

/* A text data set (via data import), the wrong kind for ppo's prompts. */
static int text_set(void) {
  if (write_text("bi-text.jsonl", "{\"text\":\"hello world\"}\n{\"text\":\"more\"}\n") != 0)
    return -1;
  return px_proc_run("", "data import --kind text bi-text.jsonl bi-text.h5 " QUIET) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------------- */

/* Rows leave their trailing fields (no_output, expect_bug) out when they have none. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const bad_case cases[] = {
    /* --- configuration ------------------------------------------------------------------- */
    {"INI: unknown key, nearest key suggested",
     "bi-a.ini",
     "[run]\nseed = 2\n[synth]\nflip_rat = 0.2\n",
     NULL,
     "config -c bi-a.ini",
     1,
     {"bi-a.ini:4:", "unknown key 'synth.flip_rat'", "did you mean 'synth.flip_rate'?"}},
    {"INI: a value of the wrong type",
     "bi-b.ini",
     "[run]\nseed = abc\n",
     NULL,
     "config -c bi-b.ini",
     1,
     {"bi-b.ini:2:", "run.seed = 'abc' is not an integer", "expected an integer"}},
    {"INI: a value out of range",
     "bi-c.ini",
     "[synth]\nflip_rate = 7\n",
     NULL,
     "config -c bi-c.ini",
     1,
     {"bi-c.ini:2:", "synth.flip_rate = '7' is out of range", "0..0.5"}},
    {"INI: a choice that is not allowed",
     "bi-i.ini",
     "[ppo]\nkl_estimator = k5\n",
     NULL,
     "config -c bi-i.ini",
     1,
     {"bi-i.ini:2:", "ppo.kl_estimator = 'k5' is not allowed", "k1|k3"}},
    {"INI: an empty value",
     "bi-k.ini",
     "[run]\nseed =\n",
     NULL,
     "config -c bi-k.ini",
     1,
     {"bi-k.ini:2:", "run.seed", "expected an integer"}},
    {"INI: a line without '='",
     "bi-d.ini",
     "[run]\nseed 2\n",
     NULL,
     "config -c bi-d.ini",
     1,
     {"bi-d.ini:2:", "cannot parse this line", "key = value"}},
    {"INI: a section header without ']'",
     "bi-h.ini",
     "[run\nseed = 2\n",
     NULL,
     "config -c bi-h.ini",
     1,
     {"bi-h.ini:1:", "cannot parse this line", "[section]"}},
    {"INI: an unknown section",
     "bi-e.ini",
     "[runn]\nseed = 2\n",
     NULL,
     "config -c bi-e.ini",
     1,
     {"bi-e.ini:2:", "unknown key 'runn.seed'", "did you mean 'run.seed'?"}},
    {"INI: a key set twice is accepted, the later value wins",
     "bi-f.ini",
     "[run]\nseed = 2\nseed = 3\n",
     NULL,
     "config --ini -c bi-f.ini",
     0,
     {NULL}},
    {"INI: an over-long line",
     NULL,
     NULL,
     long_line_ini,
     "config -c bi-long.ini",
     1,
     {"bi-long.ini:2:", "line is longer than"}},
    {"INI: a file over 1 MiB",
     NULL,
     NULL,
     big_ini,
     "config -c bi-big.ini",
     1,
     {"bi-big.ini", "larger than"}},
    {"-c: no such file",
     NULL,
     NULL,
     NULL,
     "config -c bi-nowhere.ini",
     1,
     {"cannot open bi-nowhere.ini", "No such file"}},
    {"-c: a directory", NULL, NULL, make_dir, "config -c bi-dir.ini", 1, {"bi-dir.ini"}},
    {"-c without a file name", NULL, NULL, NULL, "sft -c", 1, {"-c needs a file name"}},
    {"data synth: an empty --out",
     NULL,
     NULL,
     NULL,
     "data synth --out '' " QUIET,
     1,
     {"synth.out is empty", "--out DIR"}},
    {"sft: an empty run.dir (nothing is made at the file system's root)",
     NULL,
     NULL,
     NULL,
     SFT "--data bi-data/sft.h5 --run ''",
     1,
     {"run.dir is empty", "--run DIR"}},
    {"INI: an empty synth.out, to data synth",
     "bi-out.ini",
     "[synth]\nout =\n",
     NULL,
     "data synth -c bi-out.ini " QUIET,
     1,
     {"synth.out is empty"}},
    {"command line: unknown key, nearest key suggested",
     NULL,
     NULL,
     NULL,
     "config synth.n_sf=3",
     1,
     {"command line: unknown key 'synth.n_sf'", "did you mean 'synth.n_sft'?"}},
    {"command line: a number that overflows",
     NULL,
     NULL,
     NULL,
     "config run.seed=99999999999999999999999",
     1,
     {"command line: run.seed", "is not an integer"}},
    {"command line: a real that is not finite",
     NULL,
     NULL,
     NULL,
     "config sft.lr=1e999",
     1,
     {"command line: sft.lr = '1e999' is not a finite number"}},

    /* --- the command line ---------------------------------------------------------------- */
    {"unknown command",
     NULL,
     NULL,
     NULL,
     "spt",
     1,
     {"unknown command 'spt'", "did you mean 'sft'?"}},
    {"a command group without its subcommand",
     NULL,
     NULL,
     NULL,
     "ckpt",
     1,
     {"'ckpt' needs a subcommand", "'ckpt info'", "'ckpt verify'"}},
    {"unknown option, nearest option suggested",
     NULL,
     NULL,
     NULL,
     "sft --dat bi-data/sft.h5",
     1,
     {"unknown option '--dat' for 'sft'", "did you mean '--data'?"}},
    {"unknown short option", NULL, NULL, NULL, "sft -x", 1, {"unknown option '-x'", "sft --help"}},
    {"an option without its value",
     NULL,
     NULL,
     NULL,
     "sft --data",
     1,
     {"--data needs a value", "FILE"}},
    {"a switch given a value", NULL, NULL, NULL, "config --ini=yes", 1, {"--ini takes no value"}},
    {"a stray argument",
     NULL,
     NULL,
     NULL,
     "config stray",
     1,
     {"unexpected argument 'stray'", "section.key=value"}},
    {"--resume: no such checkpoint",
     NULL,
     NULL,
     NULL,
     SFT "--data bi-data/sft.h5 --run bi-run-resume1 --resume bi-nowhere.h5",
     1,
     {"bi-nowhere.h5: no such checkpoint file or directory"},
     "bi-run-resume1"},
    {"--resume: a data set, not a checkpoint",
     NULL,
     NULL,
     NULL,
     SFT "--data bi-data/sft.h5 --run bi-run-resume2 --resume bi-data/sft.h5",
     1,
     {"bi-data/sft.h5", "not a proxima checkpoint"},
     "bi-run-resume2"},
    {"--resume: an sft checkpoint given to rm",
     NULL,
     NULL,
     NULL,
     RM "--init bi-sft --run bi-run-resume3 --resume " CK,
     1,
     {CK, "/state/normalized is missing"},
     "bi-run-resume3"},
    {"--resume: an sft checkpoint given to ppo",
     NULL,
     NULL,
     NULL,
     PPO "--policy bi-sft --reward bi-rm --run bi-run-resume4 --resume " CK,
     1,
     {CK, "group '/reference' is missing"},
     "bi-run-resume4"},
    {"eval --examples out of range",
     NULL,
     NULL,
     NULL,
     "eval --policy bi-sft --prompts bi-data/eval.h5 --examples -3 --out bi-eval.json",
     1,
     {"--examples -3", "from 0 to 1000"},
     "bi-eval.json"},
    {"eval without what to evaluate",
     NULL,
     NULL,
     NULL,
     "eval --reward bi-rm",
     1,
     {"eval needs --policy CKPT", "--pairs FILE"}},

    /* --- JSONL import -------------------------------------------------------------------- */
    {"JSONL: invalid JSON",
     "bi-j1.jsonl",
     "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\", completion:\"b\"}\n",
     NULL,
     "data import --kind sft bi-j1.jsonl bi-j1.h5",
     1,
     {"bi-j1.jsonl:2:", "invalid JSON", "column"},
     "bi-j1.h5"},
    {"JSONL: an array, not an object",
     "bi-j2.jsonl",
     "{\"prompt\":\"a\",\"completion\":\"b\"}\n[1,2]\n",
     NULL,
     "data import --kind sft bi-j2.jsonl bi-j2.h5",
     1,
     {"bi-j2.jsonl:2:", "expected a JSON object", "found an array"},
     "bi-j2.h5"},
    {"JSONL: a bare string, not an object",
     "bi-j7.jsonl",
     "\"str\"\n",
     NULL,
     "data import --kind sft bi-j7.jsonl bi-j7.h5",
     1,
     {"bi-j7.jsonl:1:"},
     "bi-j7.h5"},
    {"JSONL: a missing field",
     "bi-j3.jsonl",
     "{\"prompt\":\"a\",\"completion\":\"b\"}\n{\"prompt\":\"a\"}\n",
     NULL,
     "data import --kind sft bi-j3.jsonl bi-j3.h5",
     1,
     {"bi-j3.jsonl:2:", "field \"completion\" is missing", "\"prompt\": string"},
     "bi-j3.h5"},
    {"JSONL: a field that is a number",
     "bi-j4.jsonl",
     "{\"prompt\":\"2+2=\",\"completion\":\"4\"}\n{\"prompt\":\"3+3=\",\"completion\":6}\n",
     NULL,
     "data import --kind sft bi-j4.jsonl bi-j4.h5",
     1,
     {"bi-j4.jsonl:2:", "field \"completion\" is an integer, expected a string"},
     "bi-j4.h5"},
    {"JSONL: a field that is null",
     "bi-j5.jsonl",
     "{\"prompt\":\"a\",\"completion\":null}\n",
     NULL,
     "data import --kind sft bi-j5.jsonl bi-j5.h5",
     1,
     {"bi-j5.jsonl:1:", "field \"completion\" is null, expected a string"},
     "bi-j5.h5"},
    {"JSONL: invalid UTF-8",
     "bi-j6.jsonl",
     "{\"prompt\":\"\xff\xfe\",\"completion\":\"b\"}\n",
     NULL,
     "data import --kind sft bi-j6.jsonl bi-j6.h5",
     1,
     {"bi-j6.jsonl:1:", "invalid JSON"},
     "bi-j6.h5"},
    {"JSONL: an empty file",
     "bi-j8.jsonl",
     "",
     NULL,
     "data import --kind sft bi-j8.jsonl bi-j8.h5",
     1,
     {"bi-j8.jsonl", "no records"},
     "bi-j8.h5"},
    {"JSONL: blank lines only",
     "bi-j9.jsonl",
     "\n\n  \n",
     NULL,
     "data import --kind sft bi-j9.jsonl bi-j9.h5",
     1,
     {"bi-j9.jsonl", "no records"},
     "bi-j9.h5"},
    {"JSONL: records of another kind",
     "bi-j10.jsonl",
     "{\"text\":\"hello\"}\n",
     NULL,
     "data import --kind prefs bi-j10.jsonl bi-j10.h5",
     1,
     {"bi-j10.jsonl:1:", "field \"prompt\" is missing", "\"chosen\": string"},
     "bi-j10.h5"},
    {"JSONL: no such input file",
     NULL,
     NULL,
     NULL,
     "data import --kind sft bi-nowhere.jsonl bi-j11.h5",
     1,
     {"cannot open bi-nowhere.jsonl", "No such file"},
     "bi-j11.h5"},
    {"data import: no --kind",
     NULL,
     NULL,
     NULL,
     "data import bi-j1.jsonl bi-j12.h5",
     1,
     {"needs --kind"},
     "bi-j12.h5"},
    {"data import: an unknown --kind",
     NULL,
     NULL,
     NULL,
     "data import --kind poems bi-j1.jsonl bi-j12.h5",
     1,
     {"--kind poems is not a kind", "text, sft, prefs or prompts"},
     "bi-j12.h5"},
    {"data import: an output directory that does not exist",
     "bi-j13.jsonl",
     "{\"prompt\":\"a\",\"completion\":\"b\"}\n",
     NULL,
     "data import --kind sft bi-j13.jsonl bi-nodir/out.h5",
     1,
     {"bi-nodir/out.h5"},
     "bi-nodir/out.h5"},

    /* --- HDF5 data sets ------------------------------------------------------------------ */
    {"data set: a text file",
     "bi-notes.h5",
     "step = 7\nthis is not HDF5\n",
     NULL,
     SFT "--data bi-notes.h5 --run bi-run-ds1",
     1,
     {"bi-notes.h5: not an HDF5 file"},
     "bi-run-ds1"},
    {"data set: an empty file",
     "bi-empty.h5",
     "",
     NULL,
     SFT "--data bi-empty.h5 --run bi-run-ds2",
     1,
     {"bi-empty.h5: not an HDF5 file"},
     "bi-run-ds2"},
    {"data set: no such file",
     NULL,
     NULL,
     NULL,
     SFT "--data bi-none.h5 --run bi-run-ds0",
     1,
     {"bi-none.h5: no such file"},
     "bi-run-ds0"},
    {"data set: cut in half",
     NULL,
     NULL,
     ds_truncated,
     SFT "--data bi-half.h5 --run bi-run-ds3",
     1,
     {"bi-half.h5", "truncated"},
     "bi-run-ds3"},
    {"data set: a plain HDF5 file without proxima's attributes",
     NULL,
     NULL,
     ds_plain_hdf5,
     SFT "--data bi-plain.h5 --run bi-run-ds4",
     1,
     {"bi-plain.h5", "format"},
     "bi-run-ds4"},
    {"data set: another format",
     NULL,
     NULL,
     ds_other_format,
     SFT "--data bi-format.h5 --run bi-run-ds5",
     1,
     {"bi-format.h5: format is 'something-else'", "proxima-dataset"},
     "bi-run-ds5"},
    {"data set: an unknown kind",
     NULL,
     NULL,
     ds_unknown_kind,
     SFT "--data bi-kind.h5 --run bi-run-ds6",
     1,
     {"bi-kind.h5: unknown kind 'poems'"},
     "bi-run-ds6"},
    {"data set: prompts given to rm (needs prefs)",
     NULL,
     NULL,
     NULL,
     "rm --init bi-sft --data bi-data/prompts.h5 --run bi-run-ds7 rm.norm_samples=0 " QUIET,
     1,
     {"bi-data/prompts.h5: holds prompts records, this command needs prefs records"},
     "bi-run-ds7"},
    {"data set: text given to ppo as prompts",
     NULL,
     NULL,
     text_set,
     PPO "--policy bi-sft --reward bi-rm --prompts bi-text.h5 --run bi-run-ds8",
     1,
     {"bi-text.h5 holds text records", "ppo needs prompts"},
     "bi-run-ds8"},
    {"data set: sft records given to eval --pairs",
     NULL,
     NULL,
     NULL,
     "eval --reward bi-rm --pairs bi-data/sft.h5",
     1,
     {"bi-data/sft.h5: holds sft records", "needs prefs records"}},
    {"data set: group /completion missing",
     NULL,
     NULL,
     ds_no_group,
     SFT "--data bi-nogroup.h5 --run bi-run-ds9",
     1,
     {"bi-nogroup.h5", "group '/completion' is missing"},
     "bi-run-ds9"},
    {"data set: /prompt a dataset, not a group",
     NULL,
     NULL,
     ds_not_group,
     SFT "--data bi-notgroup.h5 --run bi-run-ds10",
     1,
     {"bi-notgroup.h5", "'/prompt' is not a group"},
     "bi-run-ds10"},
    {"data set: /prompt/offsets missing",
     NULL,
     NULL,
     ds_no_dataset,
     SFT "--data bi-nooffsets.h5 --run bi-run-ds11",
     1,
     {"bi-nooffsets.h5: field 'prompt'", "dataset 'offsets' is missing"},
     "bi-run-ds11"},
    {"data set: tokens of type float",
     NULL,
     NULL,
     ds_float_tokens,
     SFT "--data bi-float.h5 --run bi-run-ds12",
     1,
     {"bi-float.h5: field 'prompt'", "dataset 'tokens' is not of integer type"},
     "bi-run-ds12"},
    {"data set: tokens two-dimensional",
     NULL,
     NULL,
     ds_2d_tokens,
     SFT "--data bi-2d.h5 --run bi-run-ds13",
     1,
     {"bi-2d.h5: field 'prompt'", "dataset 'tokens' is not one-dimensional"},
     "bi-run-ds13"},
    {"data set: n_records that the offsets do not have",
     NULL,
     NULL,
     ds_n_records,
     SFT "--data bi-nrec.h5 --run bi-run-ds14",
     1,
     {"bi-nrec.h5: field 'prompt'", "offsets has 2001 entries, expected n_records + 1 = 2501"},
     "bi-run-ds14"},
    {"data set: offsets that decrease",
     NULL,
     NULL,
     ds_offsets_decrease,
     SFT "--data bi-decrease.h5 --run bi-run-ds15",
     1,
     {"bi-decrease.h5: field 'prompt'", "offsets are invalid at record 99", "never decrease"},
     "bi-run-ds15"},
    {"data set: the last offset past the tokens",
     NULL,
     NULL,
     ds_offsets_past_end,
     SFT "--data bi-pastend.h5 --run bi-run-ds16",
     1,
     {"bi-pastend.h5: field 'prompt'", "offsets are invalid at record"},
     "bi-run-ds16"},
    {"data set: a negative first offset",
     NULL,
     NULL,
     ds_offsets_negative,
     SFT "--data bi-negative.h5 --run bi-run-ds17",
     1,
     {"bi-negative.h5: field 'prompt'", "offsets are invalid at record 0", "start at 0"},
     "bi-run-ds17"},
    {"data set: a token id of 300",
     NULL,
     NULL,
     ds_token_300,
     SFT "--data bi-tok300.h5 --run bi-run-ds18",
     1,
     {"bi-tok300.h5: field 'prompt'",
      "token 7 of the field is 300, outside the tokenizer's vocabulary (0-255)"},
     "bi-run-ds18"},
    {"data set: a negative token id",
     NULL,
     NULL,
     ds_token_negative,
     SFT "--data bi-tokneg.h5 --run bi-run-ds19",
     1,
     {"bi-tokneg.h5: field 'prompt'",
      "token 9 of the field is -2, outside the tokenizer's vocabulary"},
     "bi-run-ds19"},
    {"data set: offsets claiming 2^40 tokens of a dataset that stores none",
     NULL,
     NULL,
     ds_hollow_huge,
     SFT "--data bi-hollow.h5 --run bi-run-ds20",
     1,
     {"bi-hollow.h5"},
     "bi-run-ds20"},

    /* --- checkpoints --------------------------------------------------------------------- */
    {"checkpoint: a data set given to rm --init",
     NULL,
     NULL,
     NULL,
     RM "--init bi-data/sft.h5 --run bi-run-ck1",
     1,
     {"bi-data/sft.h5: format is 'proxima-dataset', not a proxima checkpoint"},
     "bi-run-ck1"},
    {"checkpoint: a text file given to generate",
     "bi-notes.txt",
     "step = 7\nnot a checkpoint\n",
     NULL,
     "generate --ckpt bi-notes.txt --prompt 1+2=",
     1,
     {"bi-notes.txt: not an HDF5 file"}},
    {"checkpoint: an empty file given to rm --init",
     "bi-empty-ck.h5",
     "",
     NULL,
     RM "--init bi-empty-ck.h5 --run bi-run-ck2",
     1,
     {"bi-empty-ck.h5: not an HDF5 file"},
     "bi-run-ck2"},
    {"checkpoint: a run directory without checkpoints",
     NULL,
     NULL,
     NULL,
     "generate --ckpt bi-data --prompt 1+2=",
     1,
     {"bi-data: no checkpoint yet", "LATEST"}},
    {"checkpoint: LATEST naming a missing file",
     NULL,
     NULL,
     ck_dangling_latest,
     "generate --ckpt bi-dangling --prompt 1+2=",
     1,
     {"bi-dangling/checkpoints/ckpt-00000099.h5: no such file"}},
    {"checkpoint: an sft checkpoint given to ppo as the reward model",
     NULL,
     NULL,
     NULL,
     PPO "--policy bi-sft --reward bi-sft --run bi-run-ck3",
     1,
     {CK ": group '/reward' is missing"},
     "bi-run-ck3"},
    {"checkpoint: group /policy missing",
     NULL,
     NULL,
     ck_no_policy,
     RM "--init bi-nopolicy.h5 --run bi-run-ck4",
     1,
     {"bi-nopolicy.h5", "'/policy' is missing"},
     "bi-run-ck4"},
    {"checkpoint: a tensor of the wrong shape",
     NULL,
     NULL,
     ck_wrong_shape,
     RM "--init bi-shape.h5 --run bi-run-ck5",
     1,
     {"bi-shape.h5", "/policy: dataset 'wte' has shape [259,65], expected [259,64]"},
     "bi-run-ck5"},
    {"checkpoint: a tensor of integer type",
     NULL,
     NULL,
     ck_wrong_dtype,
     "generate --ckpt bi-dtype.h5 --prompt 1+2=",
     1,
     {"bi-dtype.h5", "lnf_w"}},
    {"checkpoint: another model size given to sft --resume",
     NULL,
     NULL,
     NULL,
     "sft --data bi-data/sft.h5 --run bi-run-ck6 --steps 6 sft.batch_size=16 model.n_layer=2 "
     "model.n_embd=32 model.n_head=2 model.max_seq_len=16 --resume " CK " " QUIET,
     1,
     {CK ": /policy is a model of", "width 64", "expected", "width 32"},
     "bi-run-ck6"},
    {"checkpoint: a policy and a reward model of other lengths given to ppo",
     NULL,
     NULL,
     NULL,
     PPO "--policy bi-sft32 --reward bi-rm --run bi-run-ck7",
     1,
     {"the policy (T 32", "the reward model (T 16", "must read the same sequences"},
     "bi-run-ck7"},
    {"checkpoint: one byte flipped, given to --resume PATH",
     NULL,
     NULL,
     ck_flipped,
     SFT "--data bi-data/sft.h5 --run bi-run-ck8 --steps 6 --resume bi-flipped.h5",
     1,
     {"bi-flipped.h5", "/policy/wte"},
     "bi-run-ck8"},
    {"checkpoint: cut in half, given to generate",
     NULL,
     NULL,
     ck_truncated,
     "generate --ckpt bi-ckhalf.h5 --prompt 1+2=",
     1,
     {"bi-ckhalf.h5", "truncated"}},
    {"checkpoint: cut in half, given to rm --init",
     NULL,
     NULL,
     NULL,
     RM "--init bi-ckhalf.h5 --run bi-run-ck9",
     1,
     {"bi-ckhalf.h5", "truncated"},
     "bi-run-ck9"},
    {"checkpoint: attributes of a model far larger than the file",
     NULL,
     NULL,
     ck_huge_model,
     RM "--init bi-hugeck.h5 --run bi-run-ck10",
     1,
     {"bi-hugeck.h5", "more than the file's"},
     "bi-run-ck10"},

    /* --- huge values --------------------------------------------------------------------- */
    {"huge: a model of 1024 layers of width 65536",
     NULL,
     NULL,
     NULL,
     "sft --data bi-data/sft.h5 --run bi-run-huge1 --steps 1 model.n_embd=65536 "
     "model.n_layer=1024 model.n_head=2 " QUIET,
     1,
     {"model"},
     "bi-run-huge1"},
    {"huge: a micro-batch of 10^9 sequences",
     NULL,
     NULL,
     NULL,
     "sft --data bi-data/sft.h5 --run bi-run-huge2 --steps 1 sft.batch_size=1000000000 "
     "sft.micro_batch=1000000000 " SMALL " " QUIET,
     1,
     {"micro_batch"},
     "bi-run-huge2"},
    {"huge: a max_seq_len beyond the limit",
     NULL,
     NULL,
     NULL,
     SFT "--data bi-data/sft.h5 --run bi-run-huge3 model.max_seq_len=100000000",
     1,
     {"model.max_seq_len = '100000000' is out of range", "2..65536"},
     "bi-run-huge3"},
    {"huge: --max-new-tokens 2*10^9",
     NULL,
     NULL,
     NULL,
     "generate --ckpt bi-sft --prompt 1+2= --max-new-tokens 2000000000",
     1,
     {"sample.max_new_tokens = '2000000000' is out of range"}},
    {"huge: n_head that does not divide n_embd",
     NULL,
     NULL,
     NULL,
     "sft --data bi-data/sft.h5 --run bi-run-huge4 --steps 1 model.n_layer=2 model.n_embd=60 "
     "model.n_head=7 " QUIET,
     1,
     {"n_head is 7", "divisor of n_embd (60)"},
     "bi-run-huge4"},
    {"huge: a prompt longer than max_seq_len, to generate",
     NULL,
     NULL,
     NULL,
     "generate --ckpt bi-sft --prompt 1234567890123456789012345678901234567890",
     1,
     {"prompt 0 is 41 tokens long", "max_seq_len 16"}},
    {"huge: prompts longer than max_seq_len, to ppo",
     NULL,
     NULL,
     long_prompts,
     PPO "--policy bi-sft --reward bi-rm --prompts bi-long.h5 --run bi-run-huge5",
     1,
     {"bi-long.h5: prompt 0 has 40 tokens", "max_seq_len 16"},
     "bi-run-huge5"},
};
#pragma GCC diagnostic pop
static const int n_cases = (int)(sizeof cases / sizeof cases[0]);

/* ---------------------------------------------------------------------------------------------
 * Running the table
 * ------------------------------------------------------------------------------------------- */

/* Whether path is absent, or a directory holding no checkpoint, data set or temporary file. */
static int nothing_left(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) return 1;
  if (!S_ISDIR(sb.st_mode)) return 0;
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "test -z \"$(find '%s' \\( -name '*.h5' -o -name '*.tmp*' -o -name LATEST \\) "
           "-print)\"",
           path);
  return system(cmd) == 0;
}

/* Files named like the writers' temporaries (".NAME.tmp.PID") in the working directory. */
static int temp_files_left(void) {
  return system("test -z \"$(find . -maxdepth 1 -name '*.tmp.*' -print)\"") != 0;
}

static int n_known_bugs;

static void run_case(int i) {
  const bad_case *c = &cases[i];
  if (c->expect_bug) {
    printf("\n  KNOWN BUG (case %d, %s): proxima %s\n    %s\n", i + 1, c->what, c->args,
           c->expect_bug);
    n_known_bugs++;
    return;
  }
  int ok = 1;
  if (c->file) ok = write_text(c->file, c->text) == 0;
  if (ok && c->setup) ok = c->setup() == 0;
  if (!ok) fprintf(stderr, "\n  case %d (%s): setup failed\n", i + 1, c->what);
  CU_ASSERT(ok);
  if (!ok) return;
  int st = px_proc_run(TIMEOUT, "%s", c->args);
  int good = st == c->status;
  if (!good)
    fprintf(stderr, "\n  case %d (%s): exit status %d, expected %d\n  proxima %s\n  %s\n", i + 1,
            c->what, st, c->status, c->args, px_proc_err);
  CU_ASSERT(good);
  /* A user's mistake is never a crash, an internal failure or a signal. */
  CU_ASSERT(st != 2 && st < 124);
  CU_ASSERT(strstr(px_proc_err, "Sanitizer") == NULL);
  CU_ASSERT(strstr(px_proc_err, "runtime error") == NULL);
  CU_ASSERT(strstr(px_proc_err, "core dumped") == NULL);
  CU_ASSERT(strstr(px_proc_err, "MPI_ABORT") == NULL);
  if (c->status != 0) {
    CU_ASSERT(px_test_contains(px_proc_err, "proxima: error: "));
    /* rank 0 alone prints it, once */
    const char *first = strstr(px_proc_err, "proxima: error: ");
    CU_ASSERT(first == NULL || strstr(first + 1, "proxima: error: ") == NULL);
  }
  for (int k = 0; k < 4 && c->err[k]; k++) {
    int has = px_test_contains(px_proc_err, c->err[k]);
    if (!has) fprintf(stderr, "  (case %d: %s)\n", i + 1, c->what);
    CU_ASSERT(has);
  }
  if (c->no_output) {
    int clean = nothing_left(c->no_output);
    if (!clean) fprintf(stderr, "\n  case %d (%s): %s was left\n", i + 1, c->what, c->no_output);
    CU_ASSERT(clean);
  }
  CU_ASSERT_EQUAL(temp_files_left(), 0);
}

static void test_table(void) {
  CU_ASSERT(n_cases >= 35);
  for (int i = 0; i < n_cases; i++) run_case(i);
  printf("\n  %d cases, %d skipped as known bugs\n", n_cases, n_known_bugs);
}

/* The duplicate-key row passes with exit 0: the later value must be the one in force. */
static void test_duplicate_key_later_wins(void) {
  CU_ASSERT_EQUAL(write_text("bi-f.ini", "[run]\nseed = 2\nseed = 3\n"), 0);
  CU_ASSERT_EQUAL(px_proc_run(TIMEOUT, "config --ini -c bi-f.ini"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "\nseed = 3\n"));
}

/* Two ranks meet the same bad inputs: the same status and one message, no hang (a rank that
 * found the problem alone must not leave the other waiting). */
static void test_two_ranks(void) {
  const char *two = getenv("PX_LAUNCH_2");
  if (!two || !two[0]) return;
  static const char *rows[] = {"data set: a token id of 300", "data set: offsets that decrease",
                               "checkpoint: one byte flipped, given to --resume PATH",
                               "JSONL: a field that is a number",
                               "INI: unknown key, nearest key suggested"};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (int i = 0; i < n_cases; i++) {
      if (strcmp(cases[i].what, rows[r]) != 0 || cases[i].expect_bug) continue;
      char launch[1024];
      snprintf(launch, sizeof launch, TIMEOUT " %s", two);
      char args[2048];
      /* its own run directory and output, so the 1-rank row's checks stay meaningful */
      snprintf(args, sizeof args, "%s", cases[i].args);
      int st = px_proc_run(launch, "%s", args);
      if (st != cases[i].status)
        fprintf(stderr, "\n  2 ranks, case %d (%s): exit %d\n  %s\n", i + 1, cases[i].what, st,
                px_proc_err);
      CU_ASSERT_EQUAL(st, cases[i].status);
      CU_ASSERT(strstr(px_proc_err, "Sanitizer") == NULL);
      for (int k = 0; k < 4 && cases[i].err[k]; k++)
        CU_ASSERT(px_test_contains(px_proc_err, cases[i].err[k]));
      const char *first = strstr(px_proc_err, "proxima: error: ");
      CU_ASSERT(first && strstr(first + 1, "proxima: error: ") == NULL);
    }
}

/* The inputs the rows share: data, an sft run (T 16, width 64), an sft run of another shape
 * (T 32, width 32), a reward model from the first. */
static void test_make_inputs(void) {
  CU_ASSERT_EQUAL_FATAL(system("rm -rf bi-* .*.tmp.*"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(TIMEOUT, "data synth --out bi-data synth.n_sft=2000 "
                                             "synth.n_prefs=1000 synth.n_prompts=200 "
                                             "synth.n_eval=16 " QUIET),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(TIMEOUT, "sft --data bi-data/sft.h5 --run bi-sft --steps 5 "
                                             "sft.batch_size=16 " SMALL " " QUIET),
                        0);
  CU_ASSERT_EQUAL_FATAL(access(CK, R_OK), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(TIMEOUT, "sft --data bi-data/sft.h5 --run bi-sft32 --steps 2 "
                                             "sft.batch_size=16 model.n_layer=2 model.n_embd=32 "
                                             "model.n_head=2 model.max_seq_len=32 " QUIET),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(TIMEOUT, RM "--init bi-sft --run bi-rm"), 0);
}

static int suite_init(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (chdir(px_test_dir("bad_input")) != 0) return 1;
  px_proc_forget_singleton_job();
  return 0;
}

static int suite_clean(void) { return chdir("..") == 0 ? 0 : 1; }

void px_test_register(void) {
  static CU_TestInfo tests[] = {{"make the shared inputs", test_make_inputs},
                                {"the bad-input table", test_table},
                                {"a key set twice: the later wins", test_duplicate_key_later_wins},
                                {"some rows under 2 ranks", test_two_ranks},
                                CU_TEST_INFO_NULL};
  CU_pSuite s = CU_add_suite("bad input", suite_init, suite_clean);
  for (int i = 0; s && tests[i].pName; i++) CU_add_test(s, tests[i].pName, tests[i].pTestFunc);
}
