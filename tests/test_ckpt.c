/*
 * test_ckpt.c — `proxima ckpt verify` and `proxima ckpt info` as a user runs them, on a
 * checkpoint this test writes with px_ckpt_write (a policy with its Adam moments, a reward
 * model, three state variables) and on damaged copies of it: one byte flipped inside the data
 * of /policy/wte (found with H5Dget_chunk_info), an empty file, a text file, the file cut in
 * half, /state removed, another format attribute, a tensor of the wrong shape. Each damaged
 * file: exit 1, a message naming the file and the problem, px_ckpt_check PX_EINPUT, no crash.
 * And closes that fail (test_h5fail.h): a write whose file or property list cannot be closed
 * fails and publishes nothing; a read whose file cannot be closed fails with PX_ERUN.
 */
#define _GNU_SOURCE /* RTLD_NEXT, for test_h5fail.h */
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxima/checkpoint.h"
#include "proxima/gpt.h"
#include "proxima/tokenizer.h"
#include "test_h5fail.h"
#include "test_proc.h"

#define CKPT "ck/ckpt-00000007.h5"

/* The datasets of the checkpoint: policy 16 + its moments 2 x 16, reward 18, state 3. */
enum { N_DATASETS = 16 + 32 + 18 + 3 };

/* The models' tokenizer, stored in every checkpoint (the byte one: /tokenizer holds no dataset). */
static px_tokenizer bytes;

static void test_write(void) {
  px_gpt_config pc = {PX_TOK_BYTE_IDS, 32, 2, 2, 16, PX_GPT_HEAD_LM};
  px_gpt_config rc = {PX_TOK_BYTE_IDS, 32, 2, 2, 16, PX_GPT_HEAD_SCALAR};
  px_gpt policy, reward;
  px_gpt_build(&policy, &pc, 1, 1, 1);
  px_gpt_build(&reward, &rc, 1, 1, 0);
  px_gpt_init(&policy, 3);
  px_gpt_init(&reward, 4);
  for (size_t i = 0; i < policy.n_params; i++)
    policy.m[i] = 1e-3f * (float)(i % 7), policy.v[i] = 1e-6f * (float)(i % 5);
  px_ckpt_model models[2] = {{"policy", &policy, 1, 5, 0, 0},
                             {"reward", &reward, 0, 0, 2.5, -0.25}};
  int64_t cursor = 12345, seed = 42;
  double beta = 0.125;
  px_ckpt_var state[3] = {{"cursor", &cursor, NULL}, {"beta", NULL, &beta}, {"seed", &seed, NULL}};
  const char *ini = "[run]\nseed = 42\n\n[ppo]\nbeta = 0.125\n";
  px_error err;
  CU_ASSERT_EQUAL(px_ckpt_write("ck", &(px_ckpt){7, 3, ini, models, 2, state, 3, &bytes}, 0, &err),
                  PX_OK);
  px_gpt_free(&policy);
  px_gpt_free(&reward);
  CU_ASSERT_EQUAL_FATAL(access(CKPT, R_OK), 0);
}

/* The file offset and size of the first chunk of dataset name, from HDF5's chunk index. */
static int chunk_of(const char *path, const char *name, haddr_t *addr, hsize_t *size) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f < 0 ? H5I_INVALID_HID : H5Dopen2(f, name, H5P_DEFAULT);
  hid_t space = d < 0 ? H5I_INVALID_HID : H5Dget_space(d);
  hsize_t offset[3];
  unsigned mask = 0;
  herr_t rc = space < 0 ? -1 : H5Dget_chunk_info(d, space, 0, offset, &mask, addr, size);
  if (space >= 0) H5Sclose(space);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  return rc < 0 || *addr == HADDR_UNDEF || *size == 0 ? -1 : 0;
}

/* Flips every bit of the byte at offset of path. */
static int flip_byte(const char *path, long long offset) {
  int fd = open(path, O_RDWR);
  unsigned char b;
  int ok = fd >= 0 && pread(fd, &b, 1, (off_t)offset) == 1;
  b ^= 0xFF;
  ok = ok && pwrite(fd, &b, 1, (off_t)offset) == 1;
  if (fd >= 0) ok = close(fd) == 0 && ok;
  return ok ? 0 : -1;
}

/* A copy of the checkpoint opened for writing (the caller closes it). */
static hid_t open_copy(const char *path) {
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(CKPT, path, -1), 0);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  return f;
}

/* The file is refused: px_ckpt_check says PX_EINPUT with a message holding the file's name and
 * check_problem; `ckpt verify` (and with info_too `ckpt info`) exits 1, no crash, with a message
 * holding the file's name and problem. */
static void expect_refused(const char *path, const char *check_problem, const char *problem,
                           int info_too) {
  px_error err = {""};
  CU_ASSERT_EQUAL(px_ckpt_check(path, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, path));
  CU_ASSERT(px_test_contains(err.msg, check_problem));

  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify %s", path), 1);
  CU_ASSERT(px_test_contains(px_proc_err, path));
  CU_ASSERT(px_test_contains(px_proc_err, problem));
  CU_ASSERT(strstr(px_proc_out, ": ok (") == NULL);
  CU_ASSERT(strstr(px_proc_err, "Sanitizer") == NULL);
  int st = px_proc_run(NULL, "ckpt info %s", path);
  CU_ASSERT(info_too ? st == 1 : st == 0 || st == 1);
  if (st != 0) CU_ASSERT(px_test_contains(px_proc_err, path));
  CU_ASSERT(strstr(px_proc_err, "Sanitizer") == NULL);
}

/* ---------------------------------------------------------------------------------------------
 * An intact checkpoint
 * ------------------------------------------------------------------------------------------- */

static void test_intact(void) {
  px_error err = {""};
  CU_ASSERT_EQUAL(px_ckpt_check(CKPT, &err), PX_OK);

  char want[256];
  snprintf(want, sizeof want, CKPT ": ok (%d datasets, %lld bytes)\n", N_DATASETS,
           px_test_file_size(CKPT));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify " CKPT), 0);
  CU_ASSERT_STRING_EQUAL(px_proc_out, want);
  /* a run's checkpoints directory, through its LATEST */
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify ck"), 0);
  CU_ASSERT_STRING_EQUAL(px_proc_out, want);
  const char *two = getenv("PX_LAUNCH_2");
  if (two && two[0]) { /* rank 0 reads, once; the other agrees */
    CU_ASSERT_EQUAL(px_proc_run(two, "ckpt verify ck"), 0);
    CU_ASSERT_STRING_EQUAL(px_proc_out, want);
  }

  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt info ck"), 0);
  const char *o = px_proc_out;
  CU_ASSERT(px_test_contains(o, CKPT "\n"));
  CU_ASSERT(px_test_contains(o, "proxima-checkpoint, version 1"));
  CU_ASSERT(px_test_contains(o, "step       7\n"));
  CU_ASSERT(px_test_contains(o, "iteration  3\n"));
  char datasets[64];
  snprintf(datasets, sizeof datasets, "datasets   %d (", N_DATASETS);
  CU_ASSERT(px_test_contains(o, datasets));
  CU_ASSERT(
      px_test_contains(o, "policy     lm head: vocab 259, T 32, 2 layers, 2 heads, width 16"));
  CU_ASSERT(px_test_contains(o, "Adam moments m and v (step 5)"));
  CU_ASSERT(px_test_contains(o, "reward     scalar head: vocab 259"));
  CU_ASSERT(px_test_contains(o, "gain 2.5, bias -0.25"));
  CU_ASSERT(px_test_contains(o, "no Adam moments"));
  CU_ASSERT(px_test_contains(o, "state      3 variables"));
  CU_ASSERT(px_test_contains(o, "cursor               12345\n"));
  CU_ASSERT(px_test_contains(o, "beta                 0.125\n"));
  CU_ASSERT(px_test_contains(o, "seed                 42\n"));
  CU_ASSERT(px_test_contains(o, "config     5 lines, 2 settings"));
  /* parameters: the policy's and the reward model's, from their tensor tables */
  px_gpt_config pc = {PX_TOK_BYTE_IDS, 32, 2, 2, 16, PX_GPT_HEAD_LM};
  px_gpt m;
  px_gpt_build(&m, &pc, 1, 1, 0);
  char params[64];
  snprintf(params, sizeof params, "16 tensors, %zu,%03zu parameters", m.n_params / 1000,
           m.n_params % 1000);
  CU_ASSERT(m.n_params >= 1000 && m.n_params < 1000000);
  CU_ASSERT(px_test_contains(o, params));
  px_gpt_free(&m);

  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify --help"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "Usage: proxima ckpt verify FILE|DIR"));
  CU_ASSERT(px_test_contains(px_proc_out, "checksum"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt info --help"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "Usage: proxima ckpt info FILE|DIR"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "needs 1 arguments"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt verify nowhere.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "nowhere.h5: no such checkpoint file or directory"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt info nowhere"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "nowhere: no such checkpoint file or directory"));
}

/* ---------------------------------------------------------------------------------------------
 * Damaged files
 * ------------------------------------------------------------------------------------------- */

static void test_flipped_byte(void) {
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(CKPT, "flipped.h5", -1), 0);
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  CU_ASSERT_EQUAL_FATAL(chunk_of("flipped.h5", "/policy/wte", &addr, &size), 0);
  CU_ASSERT_FATAL(size > 8 && (long long)(addr + size) <= px_test_file_size("flipped.h5"));
  /* in the middle of the chunk's floats (its last 4 bytes are the checksum itself) */
  CU_ASSERT_EQUAL_FATAL(flip_byte("flipped.h5", (long long)(addr + size / 2)), 0);
  expect_refused("flipped.h5", "/policy/wte", "/policy/wte", 0);
  px_error err;
  CU_ASSERT_EQUAL(px_ckpt_check("flipped.h5", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "flipped.h5: dataset /policy/wte is damaged"));
  /* the metadata is intact, so info still summarises it */
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt info flipped.h5"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "step       7\n"));
}

static void test_not_hdf5(void) {
  CU_ASSERT_EQUAL_FATAL(px_test_write("empty.h5", "", 0), 0);
  expect_refused("empty.h5", "not an HDF5 file", "not an HDF5 file", 1);
  const char *text = "step = 7\nthis is not a checkpoint\n";
  CU_ASSERT_EQUAL_FATAL(px_test_write("notes.txt", text, strlen(text)), 0);
  expect_refused("notes.txt", "not an HDF5 file", "not an HDF5 file", 1);
}

static void test_truncated(void) {
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(CKPT, "half.h5", px_test_file_size(CKPT) / 2), 0);
  CU_ASSERT_EQUAL(px_test_file_size("half.h5"), px_test_file_size(CKPT) / 2);
  /* px_ckpt_check (resume) and the commands alike say what is wrong with it */
  char problem[128];
  snprintf(problem, sizeof problem, "half.h5: the file is truncated: %lld bytes of the %lld",
           px_test_file_size(CKPT) / 2, px_test_file_size(CKPT));
  expect_refused("half.h5", problem, problem, 1);
}

static void test_no_state(void) {
  hid_t f = open_copy("nostate.h5");
  CU_ASSERT(H5Ldelete(f, "state", H5P_DEFAULT) >= 0);
  CU_ASSERT(H5Fclose(f) >= 0);
  expect_refused("nostate.h5", "group '/state' is missing", "group '/state' is missing", 0);
  CU_ASSERT_EQUAL(px_proc_run(NULL, "ckpt info nostate.h5"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "state      MISSING"));
}

static void test_other_format(void) {
  hid_t f = open_copy("other.h5");
  CU_ASSERT(H5Adelete(f, "format") >= 0);
  hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR);
  const char *value = "proxima-rollouts";
  H5Tset_size(type, strlen(value) + 1);
  hid_t a = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT(a >= 0 && H5Awrite(a, type, value) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  CU_ASSERT(H5Fclose(f) >= 0);
  const char *problem = "other.h5: format is 'proxima-rollouts', not a proxima checkpoint";
  expect_refused("other.h5", problem, problem, 1);
}

static void test_wrong_shape(void) {
  hid_t f = open_copy("shape.h5");
  CU_ASSERT(H5Ldelete(f, "/policy/wte", H5P_DEFAULT) >= 0);
  hsize_t dims[2] = {PX_TOK_BYTE_IDS, 17}; /* width 16 in the group's attributes */
  hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  CU_ASSERT(H5Pset_chunk(dcpl, 2, dims) >= 0 && H5Pset_fletcher32(dcpl) >= 0);
  hid_t d = H5Dcreate2(f, "/policy/wte", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  float *zeros = calloc(PX_TOK_BYTE_IDS * 17, sizeof(float));
  CU_ASSERT(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0);
  free(zeros);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  CU_ASSERT(H5Fclose(f) >= 0);
  char problem[128];
  snprintf(problem, sizeof problem, "/policy: dataset 'wte' has shape [%d,17], expected [%d,16]",
           PX_TOK_BYTE_IDS, PX_TOK_BYTE_IDS);
  expect_refused("shape.h5", problem, problem, 0);
}

/* Attributes that pass the model's own limits but describe a model far larger than the file:
 * refused before anything of that size is allocated. */
static void test_huge_model(void) {
  hid_t f = open_copy("huge.h5");
  hid_t g = H5Gopen2(f, "policy", H5P_DEFAULT);
  int64_t layers = 1024, width = 65536;
  hid_t a1 = H5Aopen(g, "n_layer", H5P_DEFAULT), a2 = H5Aopen(g, "n_embd", H5P_DEFAULT);
  CU_ASSERT(H5Awrite(a1, H5T_NATIVE_INT64, &layers) >= 0);
  CU_ASSERT(H5Awrite(a2, H5T_NATIVE_INT64, &width) >= 0);
  H5Aclose(a1), H5Aclose(a2), H5Gclose(g);
  CU_ASSERT(H5Fclose(f) >= 0);
  expect_refused("huge.h5", "more than the file's", "more than the file's", 0);
}

/* A dataset that declares 2^40 elements and stores none: refused, not allocated. */
static void test_hollow_dataset(void) {
  hid_t f = open_copy("hollow.h5");
  hsize_t dims[1] = {(hsize_t)1 << 40}, chunk[1] = {1 << 16};
  hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  CU_ASSERT(H5Pset_chunk(dcpl, 1, chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0);
  hid_t d = H5Dcreate2(f, "/state/huge", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  CU_ASSERT(d >= 0);
  H5Dclose(d), H5Pclose(dcpl), H5Sclose(space);
  CU_ASSERT(H5Fclose(f) >= 0);
  expect_refused("hollow.h5", "dataset /state/huge is incomplete", "is incomplete", 0);
}

/* ---------------------------------------------------------------------------------------------
 * Closes that fail
 * ------------------------------------------------------------------------------------------- */

/* A one-layer policy's checkpoint of this step into dir. */
static px_status write_small(const char *dir, int64_t step, px_error *err) {
  px_gpt_config c = {PX_TOK_BYTE_IDS, 8, 1, 1, 8, PX_GPT_HEAD_LM};
  px_gpt policy;
  px_gpt_build(&policy, &c, 1, 1, 0);
  px_gpt_init(&policy, 5);
  px_ckpt_model models[1] = {{"policy", &policy, 0, 0, 0, 0}};
  int64_t cursor = 1;
  px_ckpt_var state[1] = {{"cursor", &cursor, NULL}};
  px_status st = px_ckpt_write(dir, &(px_ckpt){step, 0, "", models, 1, state, 1, &bytes}, 0, err);
  px_gpt_free(&policy);
  return st;
}

/* The file, or a property list, closed with a failure after everything was written: the write
 * fails (the data may not be down), publishes nothing and keeps LATEST and the older
 * checkpoint; the next write goes through. Reads whose file cannot be closed fail too. */
static void test_close_failures(void) {
  px_error err = {""};
  CU_ASSERT_EQUAL_FATAL(write_small("ck-close", 1, &err), PX_OK);
  for (int which = 0; which < 2; which++) {
    px_h5fail_arm(which ? PX_H5FAIL_PCLOSE : PX_H5FAIL_FCLOSE, 1);
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(write_small("ck-close", 2, &err), PX_ERUN);
    CU_ASSERT(px_test_contains(err.msg, "ck-close/ckpt-00000002.h5"));
    CU_ASSERT(px_test_contains(err.msg, "LATEST and the older checkpoints are kept"));
    CU_ASSERT_EQUAL(px_count_entries("ck-close"), 2); /* ckpt-00000001.h5 and LATEST */
    char path[256];
    CU_ASSERT_EQUAL(px_ckpt_latest("ck-close", path, sizeof path, &err), PX_OK);
    CU_ASSERT_STRING_EQUAL(path, "ck-close/ckpt-00000001.h5");
  }
  CU_ASSERT_EQUAL(write_small("ck-close", 2, &err), PX_OK);

  int64_t step = 0, iteration = 0;
  px_h5fail_arm(PX_H5FAIL_FCLOSE, 1);
  err.msg[0] = '\0';
  CU_ASSERT_EQUAL(px_ckpt_read_step(CKPT, &step, &iteration, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, CKPT ": closing failed: injected"));
  /* px_ckpt_check's 7 closes: 3 for each model (its configuration twice, its tensors), then the
   * walk's own file, last */
  for (int nth = 1; nth <= 7; nth++) {
    px_h5fail_arm(PX_H5FAIL_FCLOSE, nth);
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(px_ckpt_check(CKPT, &err), PX_ERUN);
    CU_ASSERT(px_test_contains(err.msg, CKPT ": closing failed"));
  }
  px_h5fail_arm(PX_H5FAIL_FCLOSE, 0);
  CU_ASSERT_EQUAL(px_ckpt_check(CKPT, &err), PX_OK);
  CU_ASSERT_EQUAL(px_ckpt_read_step(CKPT, &step, &iteration, &err), PX_OK);
  CU_ASSERT_EQUAL(step, 7);
}

/* ---------------------------------------------------------------------------------------------
 * Setup and registration
 * ------------------------------------------------------------------------------------------- */

static int suite_init(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (chdir(px_test_dir("ckpt")) != 0) return 1;
  px_proc_forget_singleton_job();
  return 0;
}

static int suite_clean(void) { return chdir("..") == 0 ? 0 : 1; }

void px_test_register(void) {
  px_tokenizer_byte(&bytes);
  static CU_TestInfo tests[] = {{"write a checkpoint", test_write},
                                {"verify and info of an intact checkpoint", test_intact},
                                {"one byte flipped in /policy/wte", test_flipped_byte},
                                {"empty and text files", test_not_hdf5},
                                {"file cut in half", test_truncated},
                                {"no /state", test_no_state},
                                {"another format", test_other_format},
                                {"tensor of the wrong shape", test_wrong_shape},
                                {"a model larger than the file", test_huge_model},
                                {"a dataset with no data", test_hollow_dataset},
                                {"closes that fail", test_close_failures},
                                CU_TEST_INFO_NULL};
  CU_pSuite s = CU_add_suite("ckpt info and verify", suite_init, suite_clean);
  for (int i = 0; s && tests[i].pName; i++) CU_add_test(s, tests[i].pName, tests[i].pTestFunc);
}
