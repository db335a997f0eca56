/*
 * bench_ckpt.c — checkpoint write throughput (px_ckpt_write) against what the file system gives a
 * plain writer of the same bytes, in the same run.
 *
 * The checkpoint is a PPO-sized one of issue 3's benchmark model (6 layers, 6 heads, width 384,
 * vocab 512, T 256): the policy with its Adam moments and a value model (scalar head) with its
 * moments, about 260 MB. A timed write is one whole px_ckpt_write: create and reserve the space,
 * rank 0's writes of every chunk with its checksum (the other ranks wait), close, fsync, rename,
 * fsync of the directory, LATEST. Each trial writes into a fresh subdirectory, removed outside
 * the timing (so no pruning is timed).
 *
 * The baseline writes as many bytes as the checkpoint file has, with POSIX calls: every rank
 * pwrite()s its contiguous share into one new file in 64 MiB pieces, then fsync()s it — the
 * best a writer of that many bytes over that many ranks can expect of this disk. The two
 * alternate (checkpoint, plain, checkpoint, ...) so that a burst of load from elsewhere hits
 * both alike; each figure is the best of --trials (default 3). Times are rank 0's, between
 * barriers.
 *
 * Then the same comparison for a rollout buffer (px_rollout_write: every rank's rows gathered to
 * rank 0, which writes the file; io/rollout.c), of 4096 responses with 256 prompt and 768
 * response positions, about 95 MB: far more than a GPT-2 PPO iteration's few MB, to show the
 * single writer's speed where it would matter. Its baseline is the same plain parallel write:
 * every rank its share of as many bytes, then fsync.
 *
 * Output: a report, and for benchmarks/run "result ckpt_write_np<ranks>_gb_per_s X" and
 * "baseline ckpt_write_np<ranks>_gb_per_s Y" lines (decimal GB/s: 1e9 bytes), and the same for
 * rollout_write_np<ranks>_gb_per_s. Run under mpiexec for more ranks.
 *
 * Usage: [mpiexec -n R] bench_ckpt [--dir DIR] [--trials N]
 * DIR defaults to a new directory under $TMPDIR (or /tmp); everything written there is removed,
 * and a directory it made, too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/error.h"
#include "proxima/fsutil.h"
#include "proxima/gpt.h"
#include "proxima/log.h"
#include "proxima/rl.h"
#include "proxima/rollout.h"
#include "proxima/tokenizer.h"

enum { PIECE = 64 << 20 }; /* bytes per pwrite of the baseline */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die_errno(const char *what, const char *path) {
  fprintf(stderr, "bench_ckpt: %s %s: %s\n", what, path, strerror(errno));
  px_comm_abort(2);
}

static long long file_size(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) die_errno("cannot stat", path);
  return (long long)sb.st_size;
}

/* Builds a trainable model of the benchmark size with every parameter and moment filled
 * (distinct values, as a real run's). */
static void build_model(px_gpt *m, px_gpt_head head, uint64_t seed) {
  px_gpt_config c = {512, 256, 6, 6, 384, head};
  px_gpt_build(m, &c, 1, 1, 1);
  px_gpt_init(m, seed);
  for (size_t i = 0; i < m->n_params; i++) {
    m->m[i] = 1e-4f * (float)((i * 2654435761u) % 1000) - 0.05f;
    m->v[i] = 1e-8f * (float)((i * 40503u) % 1000);
  }
}

/* One checkpoint write into dir/trial-k; returns the seconds it took (rank 0's, between
 * barriers) and the file's path in path. */
static double time_checkpoint(const char *dir, int k, const px_ckpt *ck, char *path, size_t n) {
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/trial-%d", dir, k);
  snprintf(path, n, "%s/ckpt-%08lld.h5", sub, (long long)ck->step);
  px_error err;
  px_comm_barrier();
  double t0 = now();
  if (px_ckpt_write(sub, ck, 0, &err) != PX_OK) {
    fprintf(stderr, "bench_ckpt: %s\n", err.msg);
    px_comm_abort(2);
  }
  px_comm_barrier();
  return now() - t0;
}

/* Removes what time_checkpoint wrote (rank 0, untimed). */
static void remove_checkpoint(const char *dir, int k, const char *path) {
  if (px_comm_rank() == 0) {
    char latest[4300], sub[4200];
    snprintf(sub, sizeof sub, "%s/trial-%d", dir, k);
    snprintf(latest, sizeof latest, "%s/LATEST", sub);
    if (remove(path) != 0) die_errno("cannot remove", path);
    if (remove(latest) != 0) die_errno("cannot remove", latest);
    if (remove(sub) != 0) die_errno("cannot remove", sub);
  }
  px_comm_barrier();
}

/* The baseline: bytes in all, each rank its contiguous share from buf, into a new file path,
 * then fsync. Returns rank 0's seconds between barriers; the file is removed (untimed). */
static double time_plain(const char *path, long long bytes, const char *buf) {
  int64_t lo, hi;
  px_comm_share(bytes, px_comm_rank(), px_comm_size(), &lo, &hi);
  if (px_comm_rank() == 0) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || close(fd) != 0) die_errno("cannot create", path);
  }
  px_comm_barrier();
  double t0 = now();
  int fd = open(path, O_WRONLY);
  if (fd < 0) die_errno("cannot open", path);
  for (int64_t at = lo; at < hi;) {
    size_t want = hi - at > PIECE ? (size_t)PIECE : (size_t)(hi - at);
    ssize_t put = pwrite(fd, buf + (at - lo), want, (off_t)at);
    if (put <= 0) die_errno("cannot write", path);
    at += put;
  }
  if (fsync(fd) != 0 || close(fd) != 0) die_errno("cannot fsync", path);
  px_comm_barrier();
  double dt = now() - t0;
  if (px_comm_rank() == 0 && remove(path) != 0) die_errno("cannot remove", path);
  px_comm_barrier();
  return dt;
}

/* This rank's rows of the benchmark's rollout batch: N rows, P prompt and R response positions,
 * every value distinct enough that no chunk is all zeros; lengths vary, masks follow them. */
enum { ROLL_N = 4096, ROLL_P = 256, ROLL_R = 768 };
static void build_rollout(px_rollout *r) {
  int64_t lo, hi;
  px_comm_share(ROLL_N, px_comm_rank(), px_comm_size(), &lo, &hi);
  size_t n = (size_t)(hi - lo), m = n > 0 ? n : 1, nr = m * ROLL_R;
  *r = (px_rollout){.n = (int64_t)n, .first = lo, .n_global = ROLL_N, .P = ROLL_P, .R = ROLL_R};
  r->tokens = px_malloc(m * (ROLL_P + ROLL_R) * sizeof(int32_t));
  r->prompt_len = px_malloc(m * sizeof(int32_t));
  r->response_len = px_malloc(m * sizeof(int32_t));
  float **fs[] = {&r->logprobs, &r->ref_logprobs, &r->values,
                  &r->rewards,  &r->advantages,   &r->returns};
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
    *fs[k] = px_malloc(nr * sizeof(float));
    for (size_t j = 0; j < nr; j++) (*fs[k])[j] = 1e-3f * (float)((j * 2654435761u + k) % 4099);
  }
  r->mask = px_malloc(nr);
  r->score = px_malloc(m * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    int64_t g = lo + (int64_t)i;
    r->prompt_len[i] = 1 + (int32_t)(g % ROLL_P);
    r->response_len[i] = 1 + (int32_t)((g * 7) % ROLL_R);
    r->score[i] = 0.01f * (float)(g % 200) - 1.0f;
    for (int t = 0; t < ROLL_P + ROLL_R; t++)
      r->tokens[i * (ROLL_P + ROLL_R) + t] = (int32_t)((g * 31 + t) % 50257);
    for (int t = 0; t < ROLL_R; t++) r->mask[i * ROLL_R + t] = t < r->response_len[i];
  }
}

static void free_rollout(px_rollout *r) {
  void *fs[] = {r->tokens,  r->prompt_len, r->response_len, r->logprobs, r->ref_logprobs, r->values,
                r->rewards, r->advantages, r->returns,      r->mask,     r->score};
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) free(fs[k]);
}

/* One px_rollout_write into path; returns rank 0's seconds between barriers. The file stays (the
 * caller measures and removes it). */
static double time_rollout(const char *path, const px_rollout *r) {
  px_rollout_attrs a = {.iteration = 1,
                        .beta = 0.05,
                        .gamma = 1,
                        .lambda = 1,
                        .kl_kind = PX_RL_KL_K1,
                        .whiten_shift_mean = 1,
                        .kl_clamp = 10,
                        .no_eos_penalty = -1,
                        .whiten_mean = 0.1,
                        .whiten_std = 1.3,
                        .whiten_eps = 1e-8,
                        /* GPT-2's specials: the tokens are ids of its 50257-token vocabulary */
                        .pad_id = 50257,
                        .bos_id = 50256,
                        .eos_id = 50256,
                        .group_size = 1,
                        .grpo_scale_std = 1,
                        .group_eps = 1e-6};
  px_error err;
  px_comm_barrier();
  double t0 = now();
  if (px_rollout_write(path, PX_IO_EVERY_RANK, r, &a, &err) != PX_OK) {
    fprintf(stderr, "bench_ckpt: %s\n", err.msg);
    px_comm_abort(2);
  }
  px_comm_barrier();
  return now() - t0;
}

/* A figure's best and its trials, as the report prints them. */
static void print_trials(const char *what, const double *t, int trials) {
  double best = t[0];
  for (int k = 1; k < trials; k++) best = t[k] < best ? t[k] : best;
  printf("  %s: best %.3f s of %d:", what, best, trials);
  for (int k = 0; k < trials; k++) printf(" %.3f", t[k]);
  printf("\n");
}

int main(int argc, char **argv) {
  px_comm_init(&argc, &argv);
  px_log_init(PX_LOG_WARN);
  const int root = px_comm_rank() == 0, ranks = px_comm_size();
  const char *dir_arg = NULL;
  int trials = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir_arg = argv[++i];
    else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
      trials = atoi(argv[++i]);
    else {
      if (root) fprintf(stderr, "usage: [mpiexec -n R] bench_ckpt [--dir DIR] [--trials N]\n");
      px_comm_finalize();
      return 1;
    }
  }
  if (trials < 1 || trials > 100) {
    if (root) fprintf(stderr, "bench_ckpt: --trials must be 1 to 100\n");
    px_comm_finalize();
    return 1;
  }

  /* The directory: the user's (made if missing), or a new one under $TMPDIR, named to all. */
  char dir[4096] = "";
  int made = 0;
  if (root) {
    if (dir_arg) {
      px_error err;
      if (px_fs_mkdirs(dir_arg, &err) != PX_OK) {
        fprintf(stderr, "bench_ckpt: %s\n", err.msg);
        px_comm_abort(1);
      }
      snprintf(dir, sizeof dir, "%s", dir_arg);
    } else {
      const char *tmp = getenv("TMPDIR");
      snprintf(dir, sizeof dir, "%s/bench_ckpt.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
      if (!mkdtemp(dir)) die_errno("cannot make a directory like", dir);
      made = 1;
    }
  }
  px_comm_bcast(dir, sizeof dir, 0);

  px_gpt policy, value;
  build_model(&policy, PX_GPT_HEAD_LM, 1);
  build_model(&value, PX_GPT_HEAD_SCALAR, 2);
  px_ckpt_model models[2] = {{"policy", &policy, 1, 100, 0, 0}, {"value", &value, 1, 100, 0, 0}};
  int64_t cursor = 4096;
  double beta = 0.05;
  px_ckpt_var state[2] = {{"cursor", &cursor, NULL}, {"beta", NULL, &beta}};
  const char *ini = "[run]\nseed = 1\n";
  px_tokenizer byte_tok;
  px_tokenizer_byte(&byte_tok);
  const px_ckpt ck = {100, 10, ini, models, 2, state, 2, &byte_tok};
  const double payload = 3.0 * 4.0 * (double)(policy.n_params + value.n_params);

  double best_ck = 1e30, best_plain = 1e30, t_ck[100], t_plain[100];
  long long bytes = 0;
  char *buf = NULL;
  char path[4400], plain[4200];
  snprintf(plain, sizeof plain, "%s/plain.bin", dir);
  for (int k = 0; k < trials; k++) {
    t_ck[k] = time_checkpoint(dir, k, &ck, path, sizeof path);
    if (k == 0) { /* the baseline writes as many bytes as the checkpoint has */
      if (root) bytes = file_size(path);
      px_comm_bcast(&bytes, sizeof bytes, 0);
      int64_t lo, hi;
      px_comm_share(bytes, px_comm_rank(), ranks, &lo, &hi);
      buf = px_malloc((size_t)(hi - lo) + 1);
      for (int64_t i = lo; i < hi; i++) buf[i - lo] = (char)((i * 131) ^ (i >> 9)); /* touched */
    }
    remove_checkpoint(dir, k, path);
    t_plain[k] = time_plain(plain, bytes, buf);
    if (t_ck[k] < best_ck) best_ck = t_ck[k];
    if (t_plain[k] < best_plain) best_plain = t_plain[k];
  }

  if (root) {
    const double gb_ck = (double)bytes / best_ck * 1e-9,
                 gb_plain = (double)bytes / best_plain * 1e-9;
    printf("bench_ckpt: %d rank%s, %s; gpt6x384 policy and value model with Adam moments: "
           "%.2fM + %.2fM parameters, %lld bytes per checkpoint (%.1f%% over the %.0f bytes of "
           "floats)\n",
           ranks, ranks > 1 ? "s" : "", dir, (double)policy.n_params * 1e-6,
           (double)value.n_params * 1e-6, bytes, 100.0 * ((double)bytes / payload - 1.0), payload);
    printf("  px_ckpt_write (fsync included): best %.3f s of %d:", best_ck, trials);
    for (int k = 0; k < trials; k++) printf(" %.3f", t_ck[k]);
    printf("\n  plain pwrite + fsync, same bytes: best %.3f s of %d:", best_plain, trials);
    for (int k = 0; k < trials; k++) printf(" %.3f", t_plain[k]);
    printf("\n  checkpoint %.3f GB/s, plain %.3f GB/s, ratio %.2f (target >= 0.8)\n", gb_ck,
           gb_plain, gb_ck / gb_plain);
    printf("result ckpt_write_np%d_gb_per_s %.3f\n", ranks, gb_ck);
    printf("baseline ckpt_write_np%d_gb_per_s %.3f\n", ranks, gb_plain);
    fflush(stdout);
  }
  free(buf);

  /* The rollout buffer: px_rollout_write and the plain write of as many bytes, alternating. */
  px_rollout roll;
  build_rollout(&roll);
  double t_roll[100], t_rplain[100], best_roll = 1e30, best_rplain = 1e30;
  char rpath[4300];
  snprintf(rpath, sizeof rpath, "%s/rollouts-00000001.h5", dir);
  bytes = 0;
  for (int k = 0; k < trials; k++) {
    t_roll[k] = time_rollout(rpath, &roll);
    if (k == 0) {
      if (root) bytes = file_size(rpath);
      px_comm_bcast(&bytes, sizeof bytes, 0);
      int64_t lo, hi;
      px_comm_share(bytes, px_comm_rank(), ranks, &lo, &hi);
      buf = px_malloc((size_t)(hi - lo) + 1);
      for (int64_t i = lo; i < hi; i++) buf[i - lo] = (char)((i * 131) ^ (i >> 9));
    }
    if (root && remove(rpath) != 0) die_errno("cannot remove", rpath);
    t_rplain[k] = time_plain(plain, bytes, buf);
    best_roll = t_roll[k] < best_roll ? t_roll[k] : best_roll;
    best_rplain = t_rplain[k] < best_rplain ? t_rplain[k] : best_rplain;
  }
  if (root) {
    const double gb_roll = (double)bytes / best_roll * 1e-9,
                 gb_plain = (double)bytes / best_rplain * 1e-9;
    printf("rollout buffer: %d rows x (%d + %d) positions, %lld bytes; rank 0 writes every rank's "
           "rows\n",
           ROLL_N, ROLL_P, ROLL_R, bytes);
    print_trials("px_rollout_write (gather, fsync included)", t_roll, trials);
    print_trials("plain pwrite + fsync, same bytes, every rank its share", t_rplain, trials);
    printf("  rollout buffer %.3f GB/s, plain %.3f GB/s, ratio %.2f\n", gb_roll, gb_plain,
           gb_roll / gb_plain);
    printf("result rollout_write_np%d_gb_per_s %.3f\n", ranks, gb_roll);
    printf("baseline rollout_write_np%d_gb_per_s %.3f\n", ranks, gb_plain);
    fflush(stdout);
    if (made && remove(dir) != 0) die_errno("cannot remove", dir);
  }
  free(buf);
  free_rollout(&roll);
  px_gpt_free(&policy);
  px_gpt_free(&value);
  px_comm_finalize();
  return 0;
}
