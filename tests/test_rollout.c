/*
 * test_rollout.c — the rollout buffer file (io/rollout.c), run as a real 2-rank MPI launch and
 * as one plain process. Synthetic rollouts, a pure function of Philox and the global row index
 * (variable response lengths, some rows without EOS, junk at masked-out inputs), go through the
 * rl.h math as the PPO loop does it (KL, shaped rewards, GAE, whitening with allreduced global
 * moments) and are written by all ranks into one file. Checked here: every dataset reads back bit
 * for bit, per rank and whole; one process writing the same global rows gives the same datasets;
 * bad rows, ranks that disagree and a failed publish leave no file; damaged or foreign files are
 * PX_EINPUT. With PX_ROLLOUT_KEEP=DIR the files for tests/rollout_check.py (the independent
 * recomputation in numpy) are left in DIR: a k1 file, a k3 file, and one with a tampered reward
 * that the checker must reject.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/rl.h"
#include "proxima/rng.h"
#include "proxima/rollout.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

#define N_ROWS 13 /* odd: the ranks' shares differ */
#define P_POS 6
#define R_POS 9
#define SEED 20240611u

/* The settings of one synthetic batch. */
typedef struct cfg {
  px_rl_kl_kind kl;
  float clamp, beta, gamma, lambda, penalty;
  int shift_mean;
} cfg;

static const cfg cfg_k1 = {PX_RL_KL_K1, 0.4f, 0.05f, 1.0f, 1.0f, -1.5f, 1};
static const cfg cfg_k3 = {PX_RL_KL_K3, 0.05f, 0.2f, 0.95f, 0.9f, -2.0f, 0};

static px_rng_ctr ctr(int64_t row, uint32_t field, int64_t t) {
  return (px_rng_ctr){{(uint32_t)row, field, (uint32_t)t, 7u}};
}

/* A directory every rank sees: rank 0's scratch name. */
static const char *shared_dir(void) {
  static char dir[512];
  if (!dir[0]) {
    if (px_comm_rank() == 0) snprintf(dir, sizeof dir, "%s", px_test_dir("rollout"));
    px_comm_bcast(dir, sizeof dir, 0);
    mkdir(dir, 0777);
    px_comm_barrier();
  }
  return dir;
}

static void alloc_rows(px_rollout *r, int64_t first, int64_t n) {
  memset(r, 0, sizeof *r);
  r->first = first, r->n = n, r->n_global = N_ROWS, r->P = P_POS, r->R = R_POS;
  size_t m = (size_t)(n > 0 ? n : 1), nr = m * R_POS;
  r->tokens = px_calloc(m * (P_POS + R_POS), sizeof(int32_t));
  r->prompt_len = px_calloc(m, sizeof(int32_t));
  r->response_len = px_calloc(m, sizeof(int32_t));
  r->logprobs = px_calloc(nr, sizeof(float));
  r->ref_logprobs = px_calloc(nr, sizeof(float));
  r->values = px_calloc(nr, sizeof(float));
  r->rewards = px_calloc(nr, sizeof(float));
  r->advantages = px_calloc(nr, sizeof(float));
  r->returns = px_calloc(nr, sizeof(float));
  r->mask = px_calloc(nr, sizeof(uint8_t));
  r->score = px_calloc(m, sizeof(float));
}

/* Rows [first, first + n) of the synthetic batch through KL, shaped rewards and GAE; advantages
 * hold the raw GAE values (whiten() finishes them). */
static void build_rows(px_rollout *r, int64_t first, int64_t n, const cfg *c) {
  alloc_rows(r, first, n);
  const int64_t P = P_POS, R = R_POS;
  int64_t *lens = px_calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
  uint8_t *has_eos = px_calloc((size_t)(n > 0 ? n : 1), 1);
  float *raw_score = px_calloc((size_t)(n > 0 ? n : 1), sizeof(float));
  float *kl = px_calloc((size_t)(n > 0 ? n : 1) * R, sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t g = first + i;
    int32_t *tok = r->tokens + i * (P + R);
    int64_t pl = 1 + (int64_t)px_rng_below(SEED, ctr(g, 0, 0), P); /* BOS + 0..P-1 bytes */
    tok[0] = PX_TOK_BYTE_BOS;
    for (int64_t t = 1; t < P; t++)
      tok[t] = t < pl ? (int32_t)px_rng_below(SEED, ctr(g, 1, t), 256) : PX_TOK_BYTE_PAD;
    /* Every fourth row reaches the length limit without EOS; row 2 has EOS at the limit. */
    has_eos[i] = g % 4 != 1;
    int64_t rl = !has_eos[i] ? R : g == 2 ? R : 1 + (int64_t)px_rng_below(SEED, ctr(g, 2, 0), R);
    for (int64_t t = 0; t < R; t++)
      tok[P + t] = t >= rl                     ? PX_TOK_BYTE_PAD
                   : t == rl - 1 && has_eos[i] ? PX_TOK_BYTE_EOS
                                               : (int32_t)px_rng_below(SEED, ctr(g, 3, t), 256);
    r->prompt_len[i] = (int32_t)pl, r->response_len[i] = (int32_t)rl, lens[i] = rl;
    for (int64_t t = 0; t < R; t++) {
      size_t k = (size_t)(i * R + t);
      /* junk past the end: nothing may read it */
      float lp = -3.0f * (float)px_rng_uniform(SEED, ctr(g, 4, t));
      r->logprobs[k] = t < rl ? lp : 7.5f;
      r->ref_logprobs[k] = t < rl ? lp + 0.3f * (float)px_rng_normal(SEED, ctr(g, 5, t)) : -7.5f;
      r->values[k] = t < rl ? (float)px_rng_normal(SEED, ctr(g, 6, t)) : 99.0f;
    }
    raw_score[i] = (float)px_rng_normal(SEED, ctr(g, 7, 0));
    r->score[i] = has_eos[i] ? raw_score[i] : c->penalty; /* what enters the reward */
  }
  size_t nr = (size_t)n * R;
  px_rl_mask_from_lengths(r->mask, lens, (size_t)n, (size_t)R);
  px_rl_kl(kl, r->logprobs, r->ref_logprobs, r->mask, nr, c->kl, c->clamp);
  px_rl_shape_rewards(r->rewards, kl, raw_score, has_eos, c->penalty, r->mask, (size_t)n, (size_t)R,
                      c->beta);
  px_rl_gae(r->advantages, r->returns, r->rewards, r->values, r->mask, (size_t)n, (size_t)R,
            c->gamma, c->lambda);
  free(lens), free(has_eos), free(raw_score), free(kl);
}

/* The global masked mean and std of the raw advantages (allreduced when `global`). */
static void stats(const px_rollout *r, int global, double *mean, double *std) {
  double m[3];
  px_rl_moments(m, r->advantages, r->mask, (size_t)(r->n * r->R));
  if (global) px_comm_allreduce_sum_f64(m, 3);
  px_rl_moments_mean_std(m, 1e-8, mean, std);
}

static px_rollout_attrs attrs_for(const cfg *c, double mean, double std) {
  return (px_rollout_attrs){.iteration = 7,
                            .beta = c->beta,
                            .gamma = c->gamma,
                            .lambda = c->lambda,
                            .kl_kind = c->kl,
                            .whiten_shift_mean = c->shift_mean,
                            .kl_clamp = c->clamp,
                            .no_eos_penalty = c->penalty,
                            .whiten_mean = mean,
                            .whiten_std = std,
                            .whiten_eps = 1e-8,
                            .pad_id = PX_TOK_BYTE_PAD,
                            .bos_id = PX_TOK_BYTE_BOS,
                            .eos_id = PX_TOK_BYTE_EOS,
                            .group_size = 1,
                            .grpo_scale_std = 1,
                            .group_eps = 1e-6};
}

/* This rank's share of a batch, whitened with global statistics, and the attributes. */
static void build_share(px_rollout *r, px_rollout_attrs *a, const cfg *c) {
  int64_t lo, hi;
  px_comm_share(N_ROWS, px_comm_rank(), px_comm_size(), &lo, &hi);
  build_rows(r, lo, hi - lo, c);
  double mean, std;
  stats(r, 1, &mean, &std);
  px_rl_whiten(r->advantages, r->advantages, r->mask, (size_t)(r->n * R_POS), mean, std,
               c->shift_mean);
  *a = attrs_for(c, mean, std);
}

/* Whether rows [0, b->n) of b equal rows [off, off + b->n) of a, bit for bit, field by field. */
static int same_rows(const px_rollout *a, int64_t off, const px_rollout *b) {
  int ok = a->P == b->P && a->R == b->R && a->n_global == b->n_global;
  size_t n = (size_t)b->n, R = (size_t)a->R, W = (size_t)(a->P + a->R), o = (size_t)off;
#define SAME(field, cols)                                                                          \
  do {                                                                                             \
    int eq = memcmp(a->field + o * (cols), b->field, n * (cols) * sizeof *a->field) == 0;          \
    if (!eq) fprintf(stderr, "\n  dataset %s differs\n", #field);                                  \
    ok &= eq;                                                                                      \
  } while (0)
  SAME(tokens, W);
  SAME(prompt_len, 1);
  SAME(response_len, 1);
  SAME(logprobs, R);
  SAME(ref_logprobs, R);
  SAME(values, R);
  SAME(rewards, R);
  SAME(advantages, R);
  SAME(returns, R);
  SAME(mask, R);
  SAME(score, 1);
#undef SAME
  return ok;
}

static int same_attrs(const px_rollout_attrs *a, const px_rollout_attrs *b) {
  return a->iteration == b->iteration && a->beta == b->beta && a->gamma == b->gamma &&
         a->lambda == b->lambda && a->kl_kind == b->kl_kind &&
         a->whiten_shift_mean == b->whiten_shift_mean && a->kl_clamp == b->kl_clamp &&
         a->no_eos_penalty == b->no_eos_penalty && a->whiten_mean == b->whiten_mean &&
         a->whiten_std == b->whiten_std && a->whiten_eps == b->whiten_eps &&
         a->pad_id == b->pad_id && a->bos_id == b->bos_id && a->eos_id == b->eos_id &&
         a->estimator == b->estimator && a->group_size == b->group_size &&
         a->grpo_scale_std == b->grpo_scale_std && a->group_eps == b->group_eps &&
         a->kl_in_loss == b->kl_in_loss;
}

/* ------------------------------------------------------------------------------------------- */

static void test_synthetic_batch_is_varied(void) {
  /* The data must exercise what the file and the checker are about. */
  px_rollout r;
  build_rows(&r, 0, N_ROWS, &cfg_k1);
  int no_eos = 0, short_rows = 0, full_eos = 0, clamped = 0;
  for (int64_t i = 0; i < N_ROWS; i++) {
    int32_t last = r.tokens[i * (P_POS + R_POS) + P_POS + r.response_len[i] - 1];
    no_eos += last != PX_TOK_BYTE_EOS;
    short_rows += r.response_len[i] < R_POS;
    full_eos += r.response_len[i] == R_POS && last == PX_TOK_BYTE_EOS;
    for (int64_t t = 0; t < r.response_len[i]; t++)
      clamped += fabsf(r.logprobs[i * R_POS + t] - r.ref_logprobs[i * R_POS + t]) > cfg_k1.clamp;
  }
  CU_ASSERT(no_eos >= 3);
  CU_ASSERT(short_rows >= 4);
  CU_ASSERT(full_eos >= 1);
  CU_ASSERT(clamped >= 2);
  px_rollout_free(&r);
}

static void test_all_ranks_write_one_file(void) {
  const char *dir = shared_dir();
  char path[700];
  snprintf(path, sizeof path, "%s/rollouts-00000007.h5", dir);
  px_rollout r;
  px_rollout_attrs a;
  build_share(&r, &a, &cfg_k1);
  px_error err = {""};
  CU_ASSERT_EQUAL_FATAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_OK);
  /* Every rank returns after the rename; only the final file is there. */
  CU_ASSERT(px_fs_exists(path));
  CU_ASSERT_EQUAL(px_count_entries(dir), 1);

  /* This rank's share, read with all ranks. */
  px_rollout back;
  px_rollout_attrs ba;
  CU_ASSERT_EQUAL_FATAL(
      px_rollout_read(path, PX_IO_EVERY_RANK, px_comm_rank(), px_comm_size(), &back, &ba, &err),
      PX_OK);
  CU_ASSERT_EQUAL(back.first, r.first);
  CU_ASSERT_EQUAL(back.n, r.n);
  CU_ASSERT(same_rows(&r, 0, &back));
  CU_ASSERT(same_attrs(&a, &ba));
  /* the tokenizer's specials, as written */
  CU_ASSERT_EQUAL(ba.pad_id, PX_TOK_BYTE_PAD);
  CU_ASSERT_EQUAL(ba.bos_id, PX_TOK_BYTE_BOS);
  CU_ASSERT_EQUAL(ba.eos_id, PX_TOK_BYTE_EOS);
  px_rollout_free(&back);

  /* All rows, read by one process; this rank's rows are where they belong. */
  CU_ASSERT_EQUAL_FATAL(px_rollout_read(path, PX_IO_ALONE, 0, 1, &back, &ba, &err), PX_OK);
  CU_ASSERT_EQUAL(back.n, N_ROWS);
  CU_ASSERT_EQUAL(back.first, 0);
  CU_ASSERT(same_rows(&back, r.first, &r));
  px_rollout_free(&back);
  px_rollout_free(&r);
  px_comm_barrier();
}

static void test_one_process_writes_the_same_datasets(void) {
  const char *dir = shared_dir();
  char path[700], one[700];
  snprintf(path, sizeof path, "%s/rollouts-00000007.h5", dir);
  snprintf(one, sizeof one, "%s/one-process.h5", dir);
  /* The global statistics of the distributed batch, as the 2-rank writer used them. */
  px_rollout share;
  px_rollout_attrs a;
  build_share(&share, &a, &cfg_k1);
  px_rollout_free(&share);
  if (px_comm_rank() == 0) {
    px_rollout all;
    build_rows(&all, 0, N_ROWS, &cfg_k1);
    double mean, std;
    stats(&all, 0, &mean, &std); /* summed in another order: equal up to rounding */
    CU_ASSERT_DOUBLE_EQUAL(mean, a.whiten_mean, 1e-12 * (1 + fabs(mean)));
    CU_ASSERT_DOUBLE_EQUAL(std, a.whiten_std, 1e-12 * std);
    px_rl_whiten(all.advantages, all.advantages, all.mask, (size_t)N_ROWS * R_POS, a.whiten_mean,
                 a.whiten_std, cfg_k1.shift_mean);
    px_error err = {""};
    CU_ASSERT_EQUAL_FATAL(px_rollout_write(one, PX_IO_ALONE, &all, &a, &err), PX_OK);
    px_rollout f1, f2;
    px_rollout_attrs a1, a2;
    CU_ASSERT_EQUAL_FATAL(px_rollout_read(path, PX_IO_ALONE, 0, 1, &f1, &a1, &err), PX_OK);
    CU_ASSERT_EQUAL_FATAL(px_rollout_read(one, PX_IO_ALONE, 0, 1, &f2, &a2, &err), PX_OK);
    CU_ASSERT_EQUAL(f2.n, N_ROWS);
    CU_ASSERT(same_rows(&f1, 0, &f2));
    CU_ASSERT(same_rows(&all, 0, &f2));
    CU_ASSERT(same_attrs(&a1, &a2));
    px_rollout_free(&f1), px_rollout_free(&f2);
    /* Other specials (GPT-2's: BOS = EOS, PAD after the vocabulary) are written and read back
     * as they are. */
    px_rollout_attrs g = a, gb;
    g.pad_id = 50257, g.bos_id = 50256, g.eos_id = 50256;
    snprintf(one, sizeof one, "%s/other-ids.h5", dir);
    CU_ASSERT_EQUAL_FATAL(px_rollout_write(one, PX_IO_ALONE, &all, &g, &err), PX_OK);
    CU_ASSERT_EQUAL_FATAL(px_rollout_read(one, PX_IO_ALONE, 0, 1, &f2, &gb, &err), PX_OK);
    CU_ASSERT(same_attrs(&g, &gb));
    CU_ASSERT(gb.pad_id == 50257 && gb.bos_id == 50256 && gb.eos_id == 50256);
    px_rollout_free(&f2);
    /* A critic-free run's estimator attributes are read back; groups must divide the rows. */
    g = a, g.estimator = 2, g.group_size = N_ROWS, g.grpo_scale_std = 0, g.group_eps = 1e-4;
    g.kl_in_loss = 1;
    CU_ASSERT_EQUAL_FATAL(px_rollout_write(one, PX_IO_ALONE, &all, &g, &err), PX_OK);
    CU_ASSERT_EQUAL_FATAL(px_rollout_read(one, PX_IO_ALONE, 0, 1, &f2, &gb, &err), PX_OK);
    CU_ASSERT(same_attrs(&g, &gb));
    px_rollout_free(&f2);
    g.group_size = 2; /* 13 rows */
    CU_ASSERT_EQUAL(px_rollout_write(one, PX_IO_ALONE, &all, &g, &err), PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, "whole groups"));
    px_rollout_free(&all);
    remove(one);
    /* A single process must hold every row. */
    px_rollout part;
    build_rows(&part, 1, N_ROWS - 1, &cfg_k1);
    snprintf(one, sizeof one, "%s/partial.h5", dir);
    CU_ASSERT_EQUAL(px_rollout_write(one, PX_IO_ALONE, &part, &a, &err), PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, "single process"));
    CU_ASSERT(!px_fs_exists(one));
    px_rollout_free(&part);
  }
  px_comm_barrier();
}

/* Copies src to dst, keeping only the first keep bytes (all when keep < 0); flips byte at
 * `flip` when flip >= 0. Returns the size of src, or -1. */
static long copy_file(const char *src, const char *dst, long keep, long flip) {
  FILE *f = fopen(src, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)size);
  size_t got = fread(buf, 1, (size_t)size, f);
  fclose(f);
  if ((long)got != size) size = -1;
  if (size > 0 && flip >= 0 && flip < size) buf[flip] ^= 0x5a;
  if (size > 0 && px_test_write(dst, buf, keep >= 0 ? (size_t)keep : (size_t)size) != 0) size = -1;
  free(buf);
  return size;
}

/* Where the n bytes of needle first occur in the file, or -1. */
static long find_bytes(const char *path, const void *needle, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long size = ftell(f), at = -1;
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)size);
  if (fread(buf, 1, (size_t)size, f) == (size_t)size)
    for (long i = 0; i + (long)n <= size && at < 0; i++)
      if (memcmp(buf + i, needle, n) == 0) at = i;
  free(buf);
  fclose(f);
  return at;
}

static void expect_einput(const char *path, const char *words) {
  px_rollout r;
  px_error err = {""};
  CU_ASSERT_EQUAL(px_rollout_read(path, PX_IO_ALONE, 0, 1, &r, NULL, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, path));
  CU_ASSERT(px_test_contains(err.msg, words));
  CU_ASSERT_PTR_NULL(r.tokens);
}

/* A copy of good at bad whose n_rows says `rows` and whose datasets have that many rows, chunked,
 * with no chunk written: a file of a few KB that declares gigabytes. */
static void craft_huge(const char *good, const char *bad, hsize_t rows) {
  CU_ASSERT_FATAL(copy_file(good, bad, -1, -1) > 0);
  hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  int64_t n = (int64_t)rows;
  hid_t a = H5Aopen(f, "n_rows", H5P_DEFAULT);
  CU_ASSERT_FATAL(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &n) >= 0 && H5Aclose(a) >= 0);
  const char *names[] = {"tokens",       "prompt_len", "response_len", "logprobs",
                         "ref_logprobs", "values",     "rewards",      "advantages",
                         "returns",      "mask",       "score"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    hid_t d = H5Dopen2(f, names[k], H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    hsize_t dims[2], chunk[2] = {1024, 1};
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    CU_ASSERT_FATAL(nd >= 1 && H5Dclose(d) >= 0 && H5Sclose(space) >= 0);
    CU_ASSERT_FATAL(H5Ldelete(f, names[k], H5P_DEFAULT) >= 0);
    dims[0] = rows, chunk[1] = nd == 2 ? dims[1] : 1;
    hid_t sp = H5Screate_simple(nd, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    CU_ASSERT_FATAL(sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, nd, chunk) >= 0);
    d = H5Dcreate2(f, names[k], type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp), H5Tclose(type);
  }
  CU_ASSERT_FATAL(H5Fclose(f) >= 0);
}

static void test_bad_files_are_input_errors(void) {
  const char *dir = shared_dir();
  if (px_comm_rank() == 0) {
    char good[700], bad[700];
    snprintf(good, sizeof good, "%s/rollouts-00000007.h5", dir);
    /* A flipped byte inside the advantages fails Fletcher-32. */
    px_rollout r;
    px_error err = {""};
    CU_ASSERT_EQUAL_FATAL(px_rollout_read(good, PX_IO_ALONE, 0, 1, &r, NULL, &err), PX_OK);
    long at = find_bytes(good, r.advantages + R_POS, 4 * sizeof(float)); /* row 1, t 0..3 */
    px_rollout_free(&r);
    CU_ASSERT_FATAL(at > 0);
    snprintf(bad, sizeof bad, "%s/corrupt.h5", dir);
    CU_ASSERT_FATAL(copy_file(good, bad, -1, at + 5) > 0);
    expect_einput(bad, "dataset 'advantages'");
    /* Cut short. */
    long size = copy_file(good, bad, 0, -1);
    CU_ASSERT_FATAL(copy_file(good, bad, size / 2, -1) > 0);
    expect_einput(bad, "");
    /* Another kind of HDF5 file, a text file, nothing at all. */
    px_tokenizer bytes;
    px_tokenizer_byte(&bytes);
    px_dataset ds;
    px_dataset_init(&ds, PX_DATA_TEXT, 1, &bytes);
    const char *text[1] = {"hi"};
    size_t len[1] = {2};
    px_dataset_append(&ds, text, len);
    snprintf(bad, sizeof bad, "%s/data.h5", dir);
    CU_ASSERT_EQUAL_FATAL(px_dataset_write(bad, &ds, &err), PX_OK);
    px_dataset_free(&ds);
    expect_einput(bad, "format is 'proxima-dataset', expected 'proxima-rollouts'");
    snprintf(bad, sizeof bad, "%s/notes.h5", dir);
    CU_ASSERT_EQUAL_FATAL(px_test_write(bad, "not hdf5\n", 9), 0);
    expect_einput(bad, "not an HDF5 file");
    snprintf(bad, sizeof bad, "%s/missing.h5", dir);
    expect_einput(bad, "no such file");
    /* 2^30 rows declared, none stored: refused before anything is allocated for them. */
    snprintf(bad, sizeof bad, "%s/huge.h5", dir);
    craft_huge(good, bad, (hsize_t)1 << 30);
    expect_einput(bad, "damaged or incomplete file");
  }
  px_comm_barrier();
}

/* A read on 2 ranks where one rank's file is missing: the other, whose file is fine, does not
 * wait for it (each opens alone), and both return the missing file's PX_EINPUT. */
static void test_ranks_agree_on_a_read(void) {
  const char *dir = shared_dir();
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir,
           px_comm_rank() == 0 ? "rollouts-00000007.h5" : "missing.h5");
  px_rollout r;
  px_error err = {""};
  px_status want = px_comm_size() > 1 ? PX_EINPUT : PX_OK;
  CU_ASSERT_EQUAL(px_rollout_read(path, PX_IO_EVERY_RANK, 0, 1, &r, NULL, &err), want);
  if (want != PX_OK) CU_ASSERT(px_test_contains(err.msg, "missing.h5: no such file"));
  CU_ASSERT_EQUAL(r.tokens == NULL, want != PX_OK);
  px_rollout_free(&r);
}

static void test_failed_writes_leave_nothing(void) {
  const char *dir = shared_dir();
  char sub[600], path[700];
  snprintf(sub, sizeof sub, "%s/failures", dir);
  if (px_comm_rank() == 0) mkdir(sub, 0777);
  px_comm_barrier();
  snprintf(path, sizeof path, "%s/rollouts-00000001.h5", sub);
  int rank = px_comm_rank(), size = px_comm_size();
  px_rollout r;
  px_rollout_attrs a;
  build_share(&r, &a, &cfg_k1);
  px_error err = {""};

  /* The last rank's mask disagrees with its lengths: every rank hears of it. */
  if (rank == size - 1 && r.n > 0) r.mask[R_POS - 1] ^= 1;
  CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "mask at position"));
  if (rank == size - 1 && r.n > 0) r.mask[R_POS - 1] ^= 1;

  /* Rows that do not tile the batch. */
  int64_t first = r.first;
  r.first = 0, r.n_global = r.n;
  if (size == 1) r.n_global = N_ROWS + 1;
  CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, size > 1 ? "disagree" : "cover the batch"));
  r.first = first, r.n_global = N_ROWS;

  /* Rows that overlap (rank 0 all 13, rank 1 its share again) and still reach the end. */
  if (size > 1) {
    px_rollout wide;
    if (rank == 0) build_rows(&wide, 0, N_ROWS, &cfg_k1);
    CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, rank == 0 ? &wide : &r, &a, &err),
                    PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, "must follow the previous rank's"));
    if (rank == 0) px_rollout_free(&wide);
  }

  /* A first row and a count whose sum overflows (no undefined arithmetic: UBSan's build). */
  first = r.first;
  r.first = INT64_MAX - 2;
  CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "do not lie within"));
  r.first = first;

  /* Ranks that disagree on an attribute. */
  a.beta += rank;
  if (size > 1) {
    CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, "attributes differ from rank 0's"));
  }
  a.beta -= rank;
  CU_ASSERT_EQUAL(px_count_entries(sub), 0);
  px_comm_barrier(); /* every rank has looked before rank 0 adds to sub */

  /* The final name is taken by a directory: the rename fails, the temporary file goes. */
  if (rank == 0) mkdir(path, 0777);
  px_comm_barrier();
  CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, path));
  CU_ASSERT_EQUAL(px_count_entries(sub), 1);
  px_comm_barrier();
  if (rank == 0) rmdir(path);
  /* No such directory: nothing to leave. */
  snprintf(path, sizeof path, "%s/no/such/dir/r.h5", sub);
  CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, "No such file or directory"));
  CU_ASSERT(px_test_contains(err.msg, path));
  px_rollout_free(&r);
  px_comm_barrier();
}

/* The files tests/rollout_check.py recomputes (CTest test rollout_check): a k1 batch, a k3 batch
 * with gamma, lambda < 1 and unshifted whitening, and the k3 batch with one reward nudged. */
static void test_files_for_the_checker(void) {
  const char *keep = getenv("PX_ROLLOUT_KEEP");
  if (!keep || !keep[0]) return;
  if (px_comm_rank() == 0) mkdir(keep, 0777);
  px_comm_barrier();
  const cfg *cfgs[3] = {&cfg_k1, &cfg_k3, &cfg_k3};
  const char *names[3] = {"rollouts-k1.h5", "rollouts-k3.h5", "rollouts-tampered.h5"};
  for (int k = 0; k < 3; k++) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", keep, names[k]);
    px_rollout r;
    px_rollout_attrs a;
    build_share(&r, &a, cfgs[k]);
    if (k == 2 && r.first <= 3 && 3 < r.first + r.n)
      r.rewards[(3 - r.first) * R_POS] += 1e-3f; /* row 3, first token */
    px_error err = {""};
    CU_ASSERT_EQUAL(px_rollout_write(path, PX_IO_EVERY_RANK, &r, &a, &err), PX_OK);
    px_rollout_free(&r);
  }
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"synthetic batch is varied", test_synthetic_batch_is_varied},
      {"all ranks write one file", test_all_ranks_write_one_file},
      {"one process writes the same datasets", test_one_process_writes_the_same_datasets},
      {"bad files are input errors", test_bad_files_are_input_errors},
      {"failed writes leave nothing", test_failed_writes_leave_nothing},
      {"ranks agree on a read", test_ranks_agree_on_a_read},
      {"files for the checker", test_files_for_the_checker},
      CU_TEST_INFO_NULL};
  px_test_suite("rollout", tests);
}
