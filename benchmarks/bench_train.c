/*
 * bench_train.c — training throughput of the GPT model (issue 3, acceptance 5; issue 9).
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
 * figure. Threads: OpenMP's and BLIS's from the environment (OMP_NUM_THREADS,
 * BLIS_NUM_THREADS); one process, no MPI.
 *
 * Usage: bench_train [--warmup N] [--iters N] [--only NAME]
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxima/blas.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/optim.h"

typedef struct bench_model {
  const char *name; /* the figure's prefix */
  int L, NH, C, V, T, B;
} bench_model;

static const bench_model MODELS[] = {
    {"gpt6x384", 6, 6, 384, 512, 256, 4}, /* issue 3's benchmark model */
    {"gpt4x128", 4, 4, 128, 512, 256, 4}, /* a small one, where the overheads show */
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The effective FLOPs of one training step (see the top of the file). */
static double step_flops(const px_gpt *m, int B, int T) {
  const px_gpt_config *c = &m->config;
  double N = (double)m->n_params - (double)c->max_seq_len * c->n_embd; /* all but wpe */
  return (double)B * T * (6.0 * N + 12.0 * c->n_layer * (double)T * c->n_embd);
}

/* ---------------------------------------------------------------------------------------------
 * Training step
 * ------------------------------------------------------------------------------------------- */

static void bench_train(const bench_model *bm, int warmup, int iters) {
  px_gpt_config cfg = {bm->V, bm->T, bm->L, bm->NH, bm->C, PX_GPT_HEAD_LM};
  const int B = bm->B, T = bm->T;
  px_gpt model;
  px_gpt_build(&model, &cfg, B, T, 1);
  px_gpt_init(&model, 42);

  /* Full-length sequences of a fixed pattern; the targets are the next tokens. */
  const size_t BT = (size_t)B * T;
  int32_t *tokens = px_malloc(BT * sizeof(int32_t)), *targets = px_malloc(BT * sizeof(int32_t));
  int32_t *lengths = px_malloc((size_t)B * sizeof(int32_t));
  float *dlogprobs = px_malloc(BT * sizeof(float));
  for (int b = 0; b < B; b++) {
    lengths[b] = T;
    for (int t = 0; t < T; t++) tokens[b * T + t] = (int32_t)((b * 977 + t * 131 + 7) % bm->V);
    for (int t = 0; t < T; t++)
      targets[b * T + t] = t + 1 < T ? tokens[b * T + t + 1] : (int32_t)(b % bm->V);
  }
  const px_adamw_config adamw = {0.9f, 0.95f, 1e-8f, 0.1f};

  double *times = px_malloc((size_t)iters * sizeof(double));
  float loss = 0.0f;
  for (int it = 0; it < warmup + iters; it++) {
    double t0 = now();
    px_gpt_forward(&model, tokens, lengths, B, T);
    loss = px_gpt_crossentropy(&model, dlogprobs, targets, NULL);
    px_gpt_zero_grad(&model);
    px_gpt_backward(&model, dlogprobs);
    px_gpt_update(&model, &adamw, 1e-4f, it + 1);
    double dt = now() - t0;
    if (it >= warmup) times[it - warmup] = dt;
  }
  qsort(times, (size_t)iters, sizeof(double), cmp_double);
  const double median =
      iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
  const double flops = step_flops(&model, B, T);
  const double tok_s = (double)BT / median, gflop_s = flops / median * 1e-9;

  printf("train %s: L=%d NH=%d C=%d V=%d T=%d B=%d, %.2fM parameters, %.1f GFLOP per step\n",
         bm->name, bm->L, bm->NH, bm->C, bm->V, T, B, (double)model.n_params * 1e-6, flops * 1e-9);
  printf("  step (fwd + xent + bwd + AdamW): median %.2f ms (min %.2f, max %.2f over %d steps "
         "after %d warm-up), loss %.4f\n",
         median * 1e3, times[0] * 1e3, times[iters - 1] * 1e3, iters, warmup, (double)loss);
  printf("  %.0f tokens/s, %.1f GFLOP/s effective\n", tok_s, gflop_s);
  printf("result train_%s_tokens_per_s %.1f\n", bm->name, tok_s);
  printf("result train_%s_gflop_per_s %.2f\n", bm->name, gflop_s);
  fflush(stdout);

  free(times);
  free(tokens);
  free(targets);
  free(lengths);
  free(dlogprobs);
  px_gpt_free(&model);
}

/* ---------------------------------------------------------------------------------------------
 * Generation
 *
 * To come (issue 3, acceptance 5; issue 9): batched KV-cache generation of the gpt6x384 model,
 * tokens/s at batch 1 and batch 64, printed as "result gen_<model>_b<B>_tokens_per_s <value>"
 * so that benchmarks/run picks it up beside PyTorch's KV-cache loop.
 * ------------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int warmup = 3, iters = 10;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else {
      fprintf(stderr, "usage: bench_train [--warmup N] [--iters N] [--only gpt6x384|gpt4x128]\n");
      return 1;
    }
  }
  if (warmup < 0 || iters < 1) {
    fprintf(stderr, "bench_train: --warmup must be >= 0 and --iters >= 1\n");
    return 1;
  }
  px_blas_init();
  const char *blis_threads = getenv("BLIS_NUM_THREADS");
  printf("bench_train: %s; OpenMP threads %d, BLIS_NUM_THREADS %s\n", px_blas_describe(),
         omp_get_max_threads(), blis_threads ? blis_threads : "(unset)");
  printf("result blis_arch_id %d\n", px_blas_arch_id());
  printf("result threads %d\n", omp_get_max_threads());
  for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
    if (!only || !strcmp(only, MODELS[i].name)) bench_train(&MODELS[i], warmup, iters);
  return 0;
}
