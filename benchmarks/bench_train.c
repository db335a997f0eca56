/*
 * bench_train.c — training and generation throughput of the GPT model (issue 3, acceptance 5;
 * issue 9). Generation (batched KV-cache sampling, px_generate) has its own section below.
 *
 * A training step is what `proxima sft` does per microbatch: px_gpt_forward, the masked
 * cross-entropy, px_gpt_zero_grad, px_gpt_backward and one AdamW step (px_gpt_update). Each
 * model runs a few warm-up steps, then timed steps; the figure is the median step time (this
 * machine is shared: the minimum and maximum are printed to show the noise).
 *
 * Effective FLOP count of a step, the convention of PaLM (Chowdhery et al. 2022, appendix B):
 *   FLOPs = tokens * (6 N + 12 L T C),   tokens = B T,
 * 6 N for the forward (2 N) and backward (4 N) products with the N weights a token meets —
 * every parameter but the position table wpe, which is a lookup; wte counts once, as the tied
 * head's matrix — and 12 L T C for the attention's two T x T products per layer (forward and
 * backward, full square as PaLM counts it, though a causal kernel needs only half).
 *
 * Output: a human-readable report, and for benchmarks/run one "result <figure> <value>" line per
 * figure, among them where the median step or run went (the model's profile, px_gpt_profile:
 * <name>_{matmul,attention,optimizer,rest}_ms, per step or per generated token). Threads: OpenMP's
 * and BLIS's from the environment (OMP_NUM_THREADS, BLIS_NUM_THREADS); one process, no MPI (but
 * --allreduce).
 *
 * Usage: bench_train [--warmup N] [--iters N] [--gen-iters N] [--only NAME] [--allreduce]
 * NAME is a model (gpt6x384, gpt4x128, gpt2_124m) or a generation case (gen_gpt6x384_b1,
 * gen_gpt6x384_b64, gen_gpt2_124m_b1, gen_gpt2_124m_b64). A generation run is a whole
 * px_generate call, seconds at batch 64: --gen-iters of them (default 3) after min(--warmup, 1)
 * warm-up runs (one touches the KV cache's pages; more add nothing).
 * --allreduce (under mpiexec -n 2) measures instead the models' gradient allreduce with and
 * without the overlap of the backward pass (issue 9, T4; see its section below).
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "proxima/blas.h"
#include "proxima/comm.h"
#include "proxima/error.h"
#include "proxima/generate.h"
#include "proxima/gpt.h"
#include "proxima/optim.h"
#include "proxima/sampler.h"
#include "proxima/tokenizer.h"
#include "proxima/trainer.h"

typedef struct bench_model {
  const char *name; /* the figure's prefix */
  int L, NH, C, V, T, B;
  int live; /* ids the softmax spans (px_gpt_set_live_vocab): V, or GPT-2's 50257 of 50304 */
  int gpt2; /* 1: GPT-2's tokenizer ids (BOS = EOS = 50256) in generation; 0: the byte one */
} bench_model;

/* gpt2_124m is GPT-2 small (issue 23). Proxima's GPT-2 models pad the embedding to 50304 rows
 * (a multiple of 64, as `proxima model import` does) and span the softmax over GPT-2's 50257
 * ids; torch_train.py's has 50257 rows, as Hugging Face's. So Proxima's head computes 47 more
 * logit columns per token (0.06% of the head's products) and its effective FLOPs count them.
 * Batch 4 of T 256: about 3.4 GB for parameters, gradients, Adam moments and activations. */
static const bench_model MODELS[] = {
    {"gpt6x384", 6, 6, 384, 512, 256, 4, 512, 0},        /* issue 3's benchmark model */
    {"gpt4x128", 4, 4, 128, 512, 256, 4, 512, 0},        /* a small one, where the overheads show */
    {"gpt2_124m", 12, 12, 768, 50304, 256, 4, 50257, 1}, /* GPT-2 124M's shapes */
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The process's peak resident set in MB (1e6 bytes): VmHWM of /proc/self/status, or getrusage's
 * ru_maxrss where there is no /proc. Process-wide: benchmarks/run runs one model per process. */
static double peak_rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  if (kb < 0) {
    struct rusage ru;
    kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
  }
  return (double)kb * 1024.0 * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts the n run times and returns their median; *mid_time and *mid_prof get the time and
 * profile of the median run itself (the lower middle for even n), whose profile is printed. */
static double median_run(double *times, const px_gpt_profile *profs, int n, double *mid_time,
                         px_gpt_profile *mid_prof) {
  int *order = px_malloc((size_t)n * sizeof(int));
  for (int i = 0; i < n; i++) order[i] = i;
  for (int i = 1; i < n; i++) /* insertion sort: n is a handful of runs */
    for (int j = i; j > 0 && times[order[j]] < times[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  *mid_time = times[order[(n - 1) / 2]];
  *mid_prof = profs[order[(n - 1) / 2]];
  free(order);
  qsort(times, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

/* Prints where the median run (what: "step" or "generation run") spent its wall seconds
 * (px_gpt_profile, gpt.h), per unit of it (per: 1 for a step, the tokens for a generation run),
 * and its result lines <prefix>_<part>_ms. rest_what says what the remainder holds. */
static void print_profile(const char *prefix, const char *what, const char *unit, double per,
                          const px_gpt_profile *prof, double wall, const char *rest_what) {
  static const char *const names[PX_GPT_PARTS] = {"matmul", "attention", "optimizer"};
  static const char *const words[PX_GPT_PARTS] = {"matmul", "attention", "AdamW"};
  double rest = wall;
  printf("  where the median %s's time went, per %s:", what, unit);
  for (int i = 0; i < PX_GPT_PARTS; i++) {
    rest -= prof->seconds[i];
    if (prof->calls[i])
      printf(" %s %.3f ms (%.0f%%),", words[i], prof->seconds[i] / per * 1e3,
             100.0 * prof->seconds[i] / wall);
  }
  printf(" the rest %.3f ms (%.0f%%: %s)\n", rest / per * 1e3, 100.0 * rest / wall, rest_what);
  for (int i = 0; i < PX_GPT_PARTS; i++)
    if (prof->calls[i])
      printf("result %s_%s_ms %.4f\n", prefix, names[i], prof->seconds[i] / per * 1e3);
  printf("result %s_rest_ms %.4f\n", prefix, rest / per * 1e3);
}

/* The effective FLOPs of one training step (see the top of the file). */
static double step_flops(const px_gpt *m, int B, int T) {
  const px_gpt_config *c = &m->config;
  double N = (double)m->n_params - (double)c->max_seq_len * c->n_embd; /* all but wpe */
  return (double)B * T * (6.0 * N + 12.0 * c->n_layer * (double)T * c->n_embd);
}

/* The FLOPs of a step's weight products alone (PX_GPT_MATMUL): per token 2 (forward) + 4
 * (backward) per weight of qkv, attproj, fc, fcproj and the tied head; biases left out. */
static double matmul_flops(const px_gpt *m, int B, int T) {
  const px_gpt_config *c = &m->config;
  const double C = c->n_embd, per_layer = 12.0 * C * C;
  return 6.0 * B * T * (c->n_layer * per_layer + (double)c->vocab_size * C);
}

/* ---------------------------------------------------------------------------------------------
 * Training step
 * ------------------------------------------------------------------------------------------- */

/* A trainable build of model bm and its batch: B full-length sequences of a fixed pattern,
 * numbered from row `first` (so that ranks hold different rows); the targets are the next
 * tokens. */
typedef struct bench_batch {
  px_gpt_config cfg;
  px_gpt model;
  int32_t *tokens, *targets, *lengths;
  float *dlogprobs;
} bench_batch;

static void bench_batch_build(bench_batch *x, const bench_model *bm, int first) {
  const int B = bm->B, T = bm->T;
  const size_t BT = (size_t)B * T;
  x->cfg = (px_gpt_config){bm->V, bm->T, bm->L, bm->NH, bm->C, PX_GPT_HEAD_LM};
  px_gpt_build(&x->model, &x->cfg, B, T, 1);
  px_gpt_init(&x->model, 42);
  px_gpt_set_live_vocab(&x->model, bm->live);
  x->tokens = px_malloc(BT * sizeof(int32_t));
  x->targets = px_malloc(BT * sizeof(int32_t));
  x->lengths = px_malloc((size_t)B * sizeof(int32_t));
  x->dlogprobs = px_malloc(BT * sizeof(float));
  for (int b = 0; b < B; b++) {
    x->lengths[b] = T;
    for (int t = 0; t < T; t++)
      x->tokens[b * T + t] = (int32_t)(((b + first) * 977 + t * 131 + 7) % bm->live);
    for (int t = 0; t < T; t++)
      x->targets[b * T + t] = t + 1 < T ? x->tokens[b * T + t + 1] : (int32_t)(b % bm->live);
  }
}

static void bench_batch_free(bench_batch *x) {
  free(x->tokens);
  free(x->targets);
  free(x->lengths);
  free(x->dlogprobs);
  px_gpt_free(&x->model);
}

static void bench_train(const bench_model *bm, int warmup, int iters) {
  const int B = bm->B, T = bm->T;
  const size_t BT = (size_t)B * T;
  bench_batch bb;
  bench_batch_build(&bb, bm, 0);
  const px_gpt_config cfg = bb.cfg;
  px_gpt *model = &bb.model;
  const int32_t *tokens = bb.tokens, *targets = bb.targets, *lengths = bb.lengths;
  float *dlogprobs = bb.dlogprobs;
  const px_adamw_config adamw = {0.9f, 0.95f, 1e-8f, 0.1f};

  double *times = px_malloc((size_t)iters * sizeof(double));
  px_gpt_profile *profs = px_malloc((size_t)iters * sizeof(px_gpt_profile));
  float loss = 0.0f;
  for (int it = 0; it < warmup + iters; it++) {
    px_gpt_profile prof = {{0}, {0}};
    model->profile = &prof;
    double t0 = now();
    px_gpt_forward(model, tokens, lengths, B, T);
    loss = px_gpt_crossentropy(model, dlogprobs, targets, NULL);
    px_gpt_zero_grad(model);
    px_gpt_backward(model, dlogprobs);
    px_gpt_update(model, &adamw, 1e-4f, it + 1);
    double dt = now() - t0;
    model->profile = NULL;
    if (it >= warmup) times[it - warmup] = dt, profs[it - warmup] = prof;
  }
  double mid_time;
  px_gpt_profile mid_prof;
  const double median = median_run(times, profs, iters, &mid_time, &mid_prof);
  free(profs);
  const double flops = step_flops(model, B, T);
  const double tok_s = (double)BT / median, gflop_s = flops / median * 1e-9;

  printf("train %s: L=%d NH=%d C=%d V=%d T=%d B=%d, %.2fM parameters, %.1f GFLOP per step\n",
         bm->name, bm->L, bm->NH, bm->C, bm->V, T, B, (double)model->n_params * 1e-6, flops * 1e-9);
  printf("  step (fwd + xent + bwd + AdamW): median %.2f ms (min %.2f, max %.2f over %d steps "
         "after %d warm-up), loss %.4f\n",
         median * 1e3, times[0] * 1e3, times[iters - 1] * 1e3, iters, warmup, (double)loss);
  printf("  %.0f tokens/s, %.1f GFLOP/s effective\n", tok_s, gflop_s);
  printf("result train_%s_tokens_per_s %.1f\n", bm->name, tok_s);
  printf("result train_%s_gflop_per_s %.2f\n", bm->name, gflop_s);
  printf("result train_%s_params %zu\n", bm->name, model->n_params);
  printf("result train_%s_tokens_per_step %zu\n", bm->name, BT);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "train_%s", bm->name);
  print_profile(prefix, "step", "step", 1.0, &mid_prof, mid_time,
                "LayerNorm, GELU, residuals, embeddings, loss, zeroing");
  const double mm_flops = matmul_flops(model, B, T);
  printf("  the weight products: %.1f GFLOP per step at %.1f GFLOP/s\n", mm_flops * 1e-9,
         mm_flops / mid_prof.seconds[PX_GPT_MATMUL] * 1e-9);
  printf("result train_%s_matmul_gflop_per_s %.2f\n", bm->name,
         mm_flops / mid_prof.seconds[PX_GPT_MATMUL] * 1e-9);

  /* Memory: px_gpt_bytes's estimate in parts (parameters, gradients and the two Adam moments
   * are n_params floats each; the rest is the activation arena and the backward's scratch)
   * plus this loop's own [B,T] arrays, against the measured peak of the process. */
  const double f = sizeof(float), P = (double)model->n_params;
  const double est = px_gpt_bytes(&cfg, B, T, 1) + (double)BT * 3 * 4 + (double)B * 4;
  const double peak = peak_rss_mb();
  printf("  memory estimate: parameters %.1f MB, gradients %.1f MB, Adam moments %.1f MB, "
         "activations and scratch %.1f MB, batch arrays %.1f MB: %.1f MB; peak RSS (VmHWM) "
         "%.1f MB\n",
         f * P * 1e-6, f * P * 1e-6, 2 * f * P * 1e-6,
         (px_gpt_bytes(&cfg, B, T, 1) - 4 * f * P) * 1e-6, ((double)BT * 12 + B * 4) * 1e-6,
         est * 1e-6, peak);
  printf("result train_%s_mem_estimate_mb %.2f\n", bm->name, est * 1e-6);
  printf("result train_%s_peak_rss_mb %.2f\n", bm->name, peak);
  fflush(stdout);

  free(times);
  bench_batch_free(&bb);
}

/* ---------------------------------------------------------------------------------------------
 * The gradient allreduce, overlapped or not (issue 9, T4): under mpiexec -n 2
 *
 * Each rank runs gpt6x384's training step on its own batch through the trainer as `proxima sft`
 * does with one micro-batch per step: px_trainer_begin, forward, cross-entropy,
 * px_trainer_backward, px_trainer_step (allreduce, clip, AdamW). The steps alternate between
 * run.overlap_allreduce off (one blocking allreduce after the backward) and on (each layer's
 * gradient summed with non-blocking requests as the backward finishes it, px_trainer_step
 * waiting for the rest), so that load from elsewhere hits both alike; a barrier starts every
 * step on both ranks together.
 *
 * On a shared machine the ranks finish their backward at different times, and a rank's wait
 * for the other is load imbalance, not communication. So the figures count the reduction from
 * the moment the LAST rank finished its backward (both ranks' times on the node's monotonic
 * clock) to the end of this rank's allreduce (off) or final wait (on): blocking and exposed.
 * The time inside the calls, waiting included, is printed too, and so is the time spent
 * starting and progressing requests during the backward (on; Open MPI moves the data inside
 * those calls, on the computing thread). Each figure is the median over steps of the mean over
 * ranks. Exposed fraction = exposed / blocking.
 * ------------------------------------------------------------------------------------------- */

static double median_of(double *x, int n) {
  qsort(x, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void bench_allreduce(const bench_model *bm, int warmup, int iters) {
  const int B = bm->B, T = bm->T, size = px_comm_size(), rank = px_comm_rank();
  bench_batch bb;
  bench_batch_build(&bb, bm, rank * B); /* each rank its own rows */
  px_gpt *model = &bb.model;
  const int32_t *tokens = bb.tokens, *targets = bb.targets, *lengths = bb.lengths;
  float *dlogprobs = bb.dlogprobs;
  px_trainer tr = {.model = model,
                   .adamw = {0.9f, 0.95f, 1e-8f, 0.1f},
                   .schedule = {1e-4, 1e-4, 0, 1 << 30, PX_LR_CONSTANT},
                   .grad_clip = 1.0,
                   .phase = "bench",
                   .lr_key = "bench.lr"};
  /* [mode][step], mode 0 off, 1 on: means over the ranks */
  double *step_s[2], *tail_s[2], *net_s[2], *busy_s = px_malloc((size_t)iters * sizeof(double));
  for (int o = 0; o < 2; o++) {
    step_s[o] = px_malloc((size_t)iters * sizeof(double));
    tail_s[o] = px_malloc((size_t)iters * sizeof(double));
    net_s[o] = px_malloc((size_t)iters * sizeof(double));
  }
  double *ends = px_malloc((size_t)2 * size * sizeof(double));
  for (int it = 0; it < 2 * (warmup + iters); it++) {
    const int on = it % 2, k = it / 2 - warmup;
    tr.overlap = on;
    px_comm_barrier();
    double c0 = px_comm_seconds(), t0 = now(), lr;
    px_trainer_begin(&tr, (int64_t)size * B);
    px_gpt_forward(model, tokens, lengths, B, T);
    float loss = px_gpt_crossentropy(model, dlogprobs, targets, NULL);
    px_trainer_backward(&tr, dlogprobs, 1);
    double t_bwd = now(), c1 = px_comm_seconds();
    px_trainer_step(&tr, it, loss, &lr); /* first the allreduce or the wait, then local work */
    double t_end = now(), tail = px_comm_seconds() - c1;
    /* Every rank's end of backward and end of reduction (CLOCK_MONOTONIC: one node's clock),
     * summed into place, outside the timed part. */
    for (int r = 0; r < 2 * size; r++) ends[r] = 0;
    ends[2 * rank] = t_bwd, ends[2 * rank + 1] = t_bwd + tail;
    px_comm_allreduce_sum_f64(ends, (size_t)2 * size);
    double last_bwd = 0, net = 0;
    for (int r = 0; r < size; r++) last_bwd = ends[2 * r] > last_bwd ? ends[2 * r] : last_bwd;
    for (int r = 0; r < size; r++)
      net += ends[2 * r + 1] > last_bwd ? ends[2 * r + 1] - last_bwd : 0;
    double x[3] = {t_end - t0, tail, c1 - c0};
    px_comm_allreduce_sum_f64(x, 3);
    if (k < 0) continue;
    step_s[on][k] = x[0] / size;
    tail_s[on][k] = x[1] / size;
    net_s[on][k] = net / size;
    if (on) busy_s[k] = x[2] / size;
  }
  double step_off = median_of(step_s[0], iters), step_on = median_of(step_s[1], iters);
  double blocking = median_of(net_s[0], iters), exposed = median_of(net_s[1], iters);
  double blocking_raw = median_of(tail_s[0], iters), exposed_raw = median_of(tail_s[1], iters);
  double busy = median_of(busy_s, iters);
  if (rank == 0) {
    printf("allreduce %s: %d ranks, %.1f MB of gradient per step, one micro-batch of B=%d T=%d "
           "per rank, %d steps each way after %d warm-up, alternating\n",
           bm->name, size, 4e-6 * (double)model->n_params, B, T, iters, warmup);
    printf("  overlap off: step %.2f ms; blocking allreduce %.2f ms after the last rank's "
           "backward (%.2f ms in the call, waiting for the other rank included)\n",
           step_off * 1e3, blocking * 1e3, blocking_raw * 1e3);
    printf("  overlap on:  step %.2f ms; exposed %.2f ms after the last rank's backward (%.2f ms "
           "in the final wait); %.2f ms starting and progressing requests during the backward\n",
           step_on * 1e3, exposed * 1e3, exposed_raw * 1e3, busy * 1e3);
    printf("  exposed fraction %.3f (exposed / blocking allreduce, both after the last "
           "backward; %.3f in the calls); step time on / off %.3f\n",
           blocking > 0 ? exposed / blocking : 0.0,
           blocking_raw > 0 ? exposed_raw / blocking_raw : 0.0, step_on / step_off);
    printf("result allreduce_np%d_%s_blocking_s %.6f\n", size, bm->name, blocking);
    printf("result allreduce_np%d_%s_exposed_s %.6f\n", size, bm->name, exposed);
    printf("result allreduce_np%d_%s_blocking_call_s %.6f\n", size, bm->name, blocking_raw);
    printf("result allreduce_np%d_%s_wait_call_s %.6f\n", size, bm->name, exposed_raw);
    printf("result allreduce_np%d_%s_progress_s %.6f\n", size, bm->name, busy);
    printf("result allreduce_np%d_%s_step_off_s %.6f\n", size, bm->name, step_off);
    printf("result allreduce_np%d_%s_step_on_s %.6f\n", size, bm->name, step_on);
    fflush(stdout);
  }
  for (int o = 0; o < 2; o++) free(step_s[o]), free(tail_s[o]), free(net_s[o]);
  free(busy_s);
  free(ends);
  bench_batch_free(&bb);
}

/* ---------------------------------------------------------------------------------------------
 * Generation
 *
 * Batched KV-cache generation as a rollout does it: px_generate over B prompts at once (one
 * prefill, then every step one px_gpt_kv_extend of M = B rows, the sampler at temperature 1 and
 * the log-prob of each drawn token). Each prompt is BOS + 15 tokens (bytes; GPT-2 ids for
 * gpt2_124m); each response is exactly GEN_NEW tokens: the model is made unable to draw EOS
 * (bench_no_eos), so no sequence stops early and every step has all B rows. The tokens are
 * still counted from what px_generate returned, and a short response is an error. A timed run
 * is one whole px_generate call, prefill included; the figure is the median over runs
 * (iteration = run, so each run draws other tokens).
 *
 * Effective FLOPs of one run: response token j (j = 0 .. G-1) of a sequence with a prompt of P
 * tokens is drawn from the logits of position P + j - 1, whose forward attends over P + j
 * cached positions: 2 N for the weights (N as for training, all but wpe), and per layer
 * 2 (P + j) C for q.K^T and 2 (P + j) C for att.V. Summed,
 *   FLOPs = B [ G 2 N + 4 L C (G P + G (G - 1) / 2) ],
 * which leaves out the other P - 1 prompt positions of the prefill (their share of the work is
 * under 12% at P = 16, G = 128), and the sampler.
 * ------------------------------------------------------------------------------------------- */

enum { GEN_PROMPT = 16, GEN_NEW = 128 };

typedef struct bench_gen {
  const char *name; /* the figure's prefix, also what --only selects */
  const bench_model *model;
  int B; /* sequences generated together */
} bench_gen;

static const bench_gen GENS[] = {
    {"gen_gpt6x384_b1", &MODELS[0], 1},
    {"gen_gpt6x384_b64", &MODELS[0], 64},
    {"gen_gpt2_124m_b1", &MODELS[2], 1},
    {"gen_gpt2_124m_b64", &MODELS[2], 64},
};

/* Pins the logit of EOS (token id eos) at about -1e4 at every position, so that exp() of it is
 * exactly 0 and the sampler never draws it: the last channel of the final LayerNorm outputs the
 * constant 1 (weight 0, bias 1), and that channel of the tied head wte is -1e4 for EOS and 0 for
 * every other token. The other tokens' logits and (tied) embeddings lose one of C terms; the
 * work is unchanged. */
static void bench_no_eos(px_gpt *m, int eos) {
  const int C = m->config.n_embd, V = m->config.vocab_size, d = C - 1;
  m->p.lnf_w[d] = 0.0f;
  m->p.lnf_b[d] = 1.0f;
  for (int v = 0; v < V; v++) m->p.wte[(size_t)v * C + d] = v == eos ? -1e4f : 0.0f;
}

/* The effective FLOPs of one generation run (see above). */
static double gen_flops(const px_gpt *m, int B, int P, int G) {
  const px_gpt_config *c = &m->config;
  double N = (double)m->n_params - (double)c->max_seq_len * c->n_embd; /* all but wpe */
  double ctx = (double)G * P + 0.5 * (double)G * (G - 1);              /* sum of P + j over j < G */
  return (double)B * (2.0 * N * G + 4.0 * c->n_layer * (double)c->n_embd * ctx);
}

static void bench_generate(const bench_gen *bg, int warmup, int iters) {
  const bench_model *bm = bg->model;
  px_gpt_config cfg = {bm->V, bm->T, bm->L, bm->NH, bm->C, PX_GPT_HEAD_LM};
  const int B = bg->B, P = GEN_PROMPT, G = GEN_NEW;
  px_gpt model;
  px_gpt_build(&model, &cfg, 1, 1, 0); /* the KV cache has its own scratch */
  px_gpt_init(&model, 42);
  px_gpt_set_live_vocab(&model, bm->live);

  /* The sampler's tokenizer: the byte one, or GPT-2's ids by hand (as test_generate's
   * test_top_k_top_p_at_gpt2_size: the sampler needs the ids, not the BPE tables). */
  px_tokenizer tok;
  if (bm->gpt2)
    tok = (px_tokenizer){.kind = PX_TOK_GPT2,
                         .n_vocab = 50257,
                         .pad = 50257,
                         .bos = 50256,
                         .eos = 50256,
                         .n_ids = 50258};
  else
    px_tokenizer_byte(&tok);
  bench_no_eos(&model, tok.eos);
  /* The prompts: BOS, then 15 ids below BOS (bytes, or GPT-2 tokens other than EOS). */
  const int n_plain = bm->gpt2 ? 50256 : 256;
  int32_t *tokens = px_malloc((size_t)B * P * sizeof(int32_t));
  int64_t *offsets = px_malloc((size_t)(B + 1) * sizeof(int64_t));
  offsets[0] = 0;
  for (int b = 0; b < B; b++) {
    offsets[b + 1] = offsets[b] + P;
    tokens[b * P] = tok.bos;
    for (int t = 1; t < P; t++) tokens[b * P + t] = (int32_t)((b * 977 + t * 131 + 7) % n_plain);
  }
  const px_sampler_config sampling = {1.0f, 0, 1.0f, 0}; /* temperature 1, no top-k, top-p */
  px_generator gen;
  px_generator_build(&gen, &model, &tok, &sampling, 1234, B, G, 0);

  double *times = px_malloc((size_t)iters * sizeof(double));
  px_gpt_profile *profs = px_malloc((size_t)iters * sizeof(px_gpt_profile));
  double logprob = 0.0;
  for (int it = 0; it < warmup + iters; it++) {
    px_generation out;
    px_error err;
    const int64_t before = gen.tokens_out;
    px_gpt_profile prof = {{0}, {0}};
    model.profile = &prof;
    double t0 = now();
    if (px_generate(&gen, tokens, offsets, B, (uint64_t)it, 0, &out, &err) != PX_OK) {
      fprintf(stderr, "bench_train: %s: %s\n", bg->name, err.msg);
      exit(1);
    }
    double dt = now() - t0;
    model.profile = NULL;
    if (it >= warmup) profs[it - warmup] = prof;
    if (gen.tokens_out - before != (int64_t)B * G) {
      fprintf(stderr, "bench_train: %s: %lld tokens generated, not %d\n", bg->name,
              (long long)(gen.tokens_out - before), B * G);
      exit(1);
    }
    logprob = 0.0;
    for (int64_t i = 0; i < (int64_t)B * G; i++) logprob += out.logprobs[i];
    px_generation_free(&out);
    if (it >= warmup) times[it - warmup] = dt;
  }
  double mid_time;
  px_gpt_profile mid_prof;
  const double median = median_run(times, profs, iters, &mid_time, &mid_prof);
  free(profs);
  const double flops = gen_flops(&model, B, P, G);
  const double tok_s = (double)B * G / median, gflop_s = flops / median * 1e-9;

  printf("generate %s: L=%d NH=%d C=%d V=%d, batch %d, prompt %d, %d new tokens each (EOS "
         "pinned off), temperature 1, %.2f GFLOP per run\n",
         bg->name, bm->L, bm->NH, bm->C, bm->V, B, P, G, flops * 1e-9);
  printf("  px_generate (prefill + %d steps): median %.2f ms (min %.2f, max %.2f over %d runs "
         "after %d warm-up), %.3f ms per step, mean log-prob %.3f\n",
         G, median * 1e3, times[0] * 1e3, times[iters - 1] * 1e3, iters, warmup, median * 1e3 / G,
         logprob / ((double)B * G));
  printf("  %.0f tokens/s, %.1f GFLOP/s effective\n", tok_s, gflop_s);
  printf("result %s_tokens_per_s %.1f\n", bg->name, tok_s);
  printf("result %s_gflop_per_s %.2f\n", bg->name, gflop_s);
  print_profile(bg->name, "generation run", "generated token", (double)B * G, &mid_prof, mid_time,
                "sampler, LayerNorm, GELU, residuals, embeddings, the cache's copies");
  fflush(stdout);

  free(times);
  free(tokens);
  free(offsets);
  px_generator_free(&gen);
  px_gpt_free(&model);
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int warmup = 3, iters = 10, gen_iters = 3, allreduce = 0;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--allreduce"))
      allreduce = 1;
    else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--gen-iters") && i + 1 < argc)
      gen_iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf(
          stderr,
          "usage: bench_train [--warmup N] [--iters N] [--gen-iters N] [--only gpt6x384|gpt4x128|"
          "gpt2_124m|gen_gpt6x384_b1|gen_gpt6x384_b64|gen_gpt2_124m_b1|gen_gpt2_124m_b64] "
          "[--allreduce]\n");
      return 1;
    }
  }
  if (warmup < 0 || iters < 1 || gen_iters < 1) {
    fprintf(stderr, "bench_train: --warmup must be >= 0, --iters and --gen-iters >= 1\n");
    return 1;
  }
  px_blas_init();
  if (allreduce) { /* under mpiexec: the models' gradient allreduce, overlapped or not */
    px_comm_init(&argc, &argv);
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
      if (!only || !strcmp(only, MODELS[i].name)) bench_allreduce(&MODELS[i], warmup, iters);
    px_comm_finalize();
    return 0;
  }
  const char *blis_threads = getenv("BLIS_NUM_THREADS");
  printf("bench_train: %s; OpenMP threads %d, BLIS_NUM_THREADS %s\n", px_blas_describe(),
         omp_get_max_threads(), blis_threads ? blis_threads : "(unset)");
  printf("result blis_arch_id %d\n", px_blas_arch_id());
  printf("result threads %d\n", omp_get_max_threads());
  for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
    if (!only || !strcmp(only, MODELS[i].name)) bench_train(&MODELS[i], warmup, iters);
  for (size_t i = 0; i < sizeof GENS / sizeof GENS[0]; i++)
    if (!only || !strcmp(only, GENS[i].name))
      bench_generate(&GENS[i], warmup < 1 ? warmup : 1, gen_iters);
  return 0;
}
