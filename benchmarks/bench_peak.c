/*
 * bench_peak.c — this machine's FP32 peak, measured in the same run as the other benchmarks
 * (issue 9), and BLIS SGEMM on the shapes the benchmark model multiplies, as a fraction of it.
 *
 * The FMA probe: every OpenMP thread runs ACC independent chains of vector fused multiply-adds
 * (acc = acc * x + y, with x just under 1 and y tiny, so the values stay finite and the chains
 * cannot be folded away). ACC chains hide the FMA latency (4 cycles on recent x86, 2 pipes: 8
 * in flight are needed, ACC = 16 is ample). Each FMA is 2 FLOPs per lane. The widest vector
 * unit the CPU has at run time is used: AVX-512 (16 lanes), else AVX2 + FMA (8), else plain C
 * (what the compiler makes of it). The figure is the best of --trials timed rounds of all the
 * threads at once, each round about --seconds long (the machine is shared: the best round is
 * the one least disturbed).
 *
 * SGEMM: the products of one training forward of gpt6x384 at B = 4, T = 256 (M = B T = 1024
 * rows), each y = x W^T with W [out, in] row-major, through px_blas_sgemm (Proxima's own BLIS
 * wrapper, so the same kernel selection applies) with the transposed operand as strides, as
 * src/model/gpt.c calls it: qkv 384 -> 1152, attproj 384 -> 384, fc 384 -> 1536,
 * fcproj 1536 -> 384, and the tied vocabulary head 384 -> 512; and, for each, the backward's
 * two products as px_matmul_backward calls them: dx = dy W and dW += dy^T x. Each is timed as
 * the best of --trials rounds of enough calls for about --seconds / 4; 2 M N K FLOPs per call.
 *
 * One row (batch-1 generation, issue 9's target 3b): the same forward products at M = 1, all
 * of one decoded token (6 layers of qkv, attproj, fc, fcproj, then the head), three ways: the
 * decode product as the KV cache calls it (px_matmul_decode_forward), BLIS's GEMM
 * (px_blas_sgemm, what the KV cache called before), and BLIS's BLAS interface as PyTorch's Linear
 * calls it (px_blas_row_via_blas: BLIS's matrix-vector path); milliseconds per token for each,
 * best of --trials rounds.
 *
 * Output: a report, and "result <figure> <value>" lines for benchmarks/run:
 *   fma_peak_gflop_per_s, sgemm_<shape>[_dinp|_dweight]_gflop_per_s,
 *   sgemm_model_mix_gflop_per_s (the five forward products in the proportions one forward has
 *   them: total FLOPs / total best times) and sgemm_step_mix_gflop_per_s (all fifteen, as one
 *   training step has them); row_products_{decode,gemm,blas}_ms_per_token.
 * Threads: OMP_NUM_THREADS for the probe, BLIS_NUM_THREADS for the GEMMs (benchmarks/run sets
 * both to the same count).
 *
 * Usage: bench_peak [--seconds S] [--trials N]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PEAK_X86 1
#else
#define PEAK_X86 0
#endif

#include "proxima/blas.h"
#include "proxima/error.h"
#include "proxima/kernels.h"

enum { ACC = 16, INNER = 256 }; /* chains per thread; FMAs per chain between loop checks */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---------------------------------------------------------------------------------------------
 * FMA chains, one function per vector width; each returns the FLOPs it did in `reps` rounds
 * and writes a checksum to *sink so that nothing is dead code.
 * ------------------------------------------------------------------------------------------- */

#if PEAK_X86
__attribute__((target("avx512f"))) static double fma_avx512(long reps, float *sink) {
  __m512 acc[ACC];
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long r = 0; r < reps; r++)
    for (int k = 0; k < INNER; k++)
      for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  __m512 s = acc[0];
  for (int i = 1; i < ACC; i++) s = _mm512_add_ps(s, acc[i]);
  *sink = _mm512_reduce_add_ps(s);
  return 2.0 * 16 * ACC * INNER * (double)reps;
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long reps, float *sink) {
  __m256 acc[ACC];
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < ACC; i++) acc[i] = _mm256_set1_ps((float)i);
  for (long r = 0; r < reps; r++)
    for (int k = 0; k < INNER; k++)
      for (int i = 0; i < ACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  __m256 s = acc[0];
  for (int i = 1; i < ACC; i++) s = _mm256_add_ps(s, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  *sink = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
  return 2.0 * 8 * ACC * INNER * (double)reps;
}
#endif

/* Plain C: what the compiler's default target makes of it (scalar or SSE). */
static double fma_plain(long reps, float *sink) {
  float acc[ACC];
  const float x = 0.999999f, y = 1e-7f;
  for (int i = 0; i < ACC; i++) acc[i] = (float)i;
  for (long r = 0; r < reps; r++)
    for (int k = 0; k < INNER; k++)
      for (int i = 0; i < ACC; i++) acc[i] = acc[i] * x + y;
  float s = 0;
  for (int i = 0; i < ACC; i++) s += acc[i];
  *sink = s;
  return 2.0 * ACC * INNER * (double)reps;
}

typedef double (*fma_fn)(long, float *);

static fma_fn fma_pick(const char **name) {
#if PEAK_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    *name = "AVX-512 (16 lanes)";
    return fma_avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *name = "AVX2 + FMA (8 lanes)";
    return fma_avx2;
  }
#endif
  *name = "plain C (compiler default target)";
  return fma_plain;
}

/* All threads at once, `reps` rounds each; the FLOP/s of the slowest thread's span times the
 * thread count (the wall time of the whole parallel region). */
static double fma_round(fma_fn fn, long reps, float *sink) {
  double flops = 0;
  double t0 = now();
#pragma omp parallel reduction(+ : flops)
  {
    float s;
    flops += fn(reps, &s);
    if (s == 12345.678f) *sink = s; /* practically never: keeps the result live */
  }
  return flops / (now() - t0);
}

static double bench_fma(double seconds, int trials) {
  const char *name;
  fma_fn fn = fma_pick(&name);
  float sink = 0;
  /* Calibrate: grow the rounds until one takes about a tenth of the target. */
  long reps = 64;
  for (;;) {
    double t0 = now();
    fma_round(fn, reps, &sink);
    double dt = now() - t0;
    if (dt > 0.1 * seconds || reps > (1L << 40)) {
      reps = (long)((double)reps * seconds / (dt > 1e-6 ? dt : 1e-6)) + 1;
      break;
    }
    reps *= 4;
  }
  double best = 0;
  printf("fma probe: %s, %d chains per thread, %d threads:", name, ACC, omp_get_max_threads());
  for (int t = 0; t < trials; t++) {
    double f = fma_round(fn, reps, &sink);
    printf(" %.1f", f * 1e-9);
    if (f > best) best = f;
  }
  printf(" GFLOP/s; best %.1f\n", best * 1e-9);
  printf("result fma_peak_gflop_per_s %.2f\n", best * 1e-9);
  fflush(stdout);
  return best;
}

/* ---------------------------------------------------------------------------------------------
 * SGEMM on the model's shapes
 * ------------------------------------------------------------------------------------------- */

typedef struct gemm_shape {
  const char *name;
  int n, k; /* out, in: y [M, n] = x [M, k] W^T, W [n, k] */
} gemm_shape;

enum { MODEL_M = 4 * 256, MODEL_C = 384, MODEL_V = 512, MODEL_L = 6 };

static const gemm_shape SHAPES[] = {
    {"qkv", 3 * MODEL_C, MODEL_C},    {"attproj", MODEL_C, MODEL_C},
    {"fc", 4 * MODEL_C, MODEL_C},     {"fcproj", MODEL_C, 4 * MODEL_C},
    {"vocab_head", MODEL_V, MODEL_C},
};

static void fill(float *a, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) a[i] = (float)((i * 2654435761u + seed) % 1000) * 1e-3f - 0.5f;
}

/* The three products of a linear layer as src/model/kernels.c calls them (px_matmul_forward
 * and px_matmul_backward): the forward y = x W^T, the input gradient dx = dy W and the weight
 * gradient dW += dy^T x (beta 1: gradients accumulate). */
enum { PRODUCT_FORWARD, PRODUCT_DINP, PRODUCT_DWEIGHT, PRODUCTS };
/* The forward at one row: the decode product, px_blas_sgemm, BLAS sgemm_. */
enum { ROW_DECODE = PRODUCTS, ROW_GEMM, ROW_BLAS, ROW_END };
static const char *const PRODUCT_NAMES[PRODUCTS] = {"", "_dinp", "_dweight"};
static const char *const PRODUCT_WORDS[PRODUCTS] = {"y = x W^T", "dx = dy W", "dW += dy^T x"};

typedef struct gemm_operands {
  int M, n, k;
  float *x, *w, *y, *dy, *dx, *dw;
} gemm_operands;

static void product(const gemm_operands *o, int which) {
  const int M = o->M, n = o->n, k = o->k;
  /* W^T as strides: element (p, j) of the k x n operand is w[j*k + p] (rsb 1, csb k). */
  if (which == PRODUCT_FORWARD)
    px_blas_sgemm(M, n, k, 1.0f, o->x, k, 1, o->w, 1, k, 0.0f, o->y, n, 1);
  else if (which == ROW_DECODE)
    px_matmul_decode_forward(o->y, o->x, o->w, NULL, 1, k, n);
  else if (which == ROW_GEMM)
    px_blas_sgemm(1, n, k, 1.0f, o->x, k, 1, o->w, 1, k, 0.0f, o->y, n, 1);
  else if (which == ROW_BLAS)
    px_blas_row_via_blas(n, k, o->w, o->x, o->dy);
  else if (which == PRODUCT_DINP)
    px_blas_sgemm(M, k, n, 1.0f, o->dy, n, 1, o->w, k, 1, 0.0f, o->dx, k, 1);
  else
    px_blas_sgemm(n, k, M, 1.0f, o->dy, 1, n, o->x, k, 1, 1.0f, o->dw, k, 1);
}

/* Best seconds per call of one product over trials rounds of about seconds / 4 each. */
static double time_product(const gemm_operands *o, int which, double seconds, int trials,
                           int *calls_out) {
  product(o, which); /* warm-up: packing buffers, threads */
  double t0 = now();
  product(o, which);
  double one = now() - t0;
  int calls = (int)(0.25 * seconds / (one > 1e-6 ? one : 1e-6));
  if (calls < 3) calls = 3;
  double best = 1e30;
  for (int t = 0; t < trials; t++) {
    t0 = now();
    for (int c = 0; c < calls; c++) product(o, which);
    double dt = (now() - t0) / calls;
    if (dt < best) best = dt;
  }
  *calls_out = calls;
  return best;
}

static void bench_sgemm(double seconds, int trials, double peak) {
  const int M = MODEL_M;
  double mix_flops[PRODUCTS] = {0}, mix_time[PRODUCTS] = {0};
  for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
    const int n = SHAPES[s].n, k = SHAPES[s].k;
    gemm_operands o = {M,
                       n,
                       k,
                       px_malloc((size_t)M * k * sizeof(float)),
                       px_malloc((size_t)n * k * sizeof(float)),
                       px_malloc((size_t)M * n * sizeof(float)),
                       px_malloc((size_t)M * n * sizeof(float)),
                       px_malloc((size_t)M * k * sizeof(float)),
                       px_malloc((size_t)n * k * sizeof(float))};
    fill(o.x, (size_t)M * k, 1);
    fill(o.w, (size_t)n * k, 2);
    fill(o.dy, (size_t)M * n, 3);
    fill(o.dw, (size_t)n * k, 4);
    const double flops = 2.0 * M * (double)n * k;
    for (int p = 0; p < PRODUCTS; p++) {
      int calls;
      const double best = time_product(&o, p, seconds, trials, &calls);
      const double gf = flops / best * 1e-9;
      printf("sgemm %-10s M=%d N=%d K=%d (%s): %.1f GFLOP/s, %.0f%% of the FMA peak "
             "(best of %d x %d calls)\n",
             SHAPES[s].name, M, n, k, PRODUCT_WORDS[p], gf, 100.0 * gf * 1e9 / peak, trials, calls);
      printf("result sgemm_%s%s_gflop_per_s %.2f\n", SHAPES[s].name, PRODUCT_NAMES[p], gf);
      mix_flops[p] += flops;
      mix_time[p] += best;
    }
    free(o.x), free(o.w), free(o.y), free(o.dy), free(o.dx), free(o.dw);
  }
  printf("sgemm model mix (one forward's products): %.1f GFLOP/s, %.0f%% of the FMA peak\n",
         mix_flops[0] / mix_time[0] * 1e-9, 100.0 * mix_flops[0] / mix_time[0] / peak);
  printf("result sgemm_model_mix_gflop_per_s %.2f\n", mix_flops[0] / mix_time[0] * 1e-9);
  double step_flops = 0, step_time = 0;
  for (int p = 0; p < PRODUCTS; p++) step_flops += mix_flops[p], step_time += mix_time[p];
  printf("sgemm step mix (one training step's products, forward and backward): %.1f GFLOP/s, "
         "%.0f%% of the FMA peak\n",
         step_flops / step_time * 1e-9, 100.0 * step_flops / step_time / peak);
  printf("result sgemm_step_mix_gflop_per_s %.2f\n", step_flops / step_time * 1e-9);
  fflush(stdout);
}

/* One decoded token's forward products at M = 1, the three ways (see the top). */
static void bench_rows(double seconds, int trials) {
  double ms[ROW_END - ROW_DECODE] = {0};
  for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
    const int n = SHAPES[s].n, k = SHAPES[s].k;
    const int per_token = s == sizeof SHAPES / sizeof SHAPES[0] - 1 ? 1 : MODEL_L;
    gemm_operands o = {1,
                       n,
                       k,
                       px_malloc((size_t)k * sizeof(float)),
                       px_malloc((size_t)n * k * sizeof(float)),
                       px_malloc((size_t)n * sizeof(float)),
                       px_malloc((size_t)n * sizeof(float)),
                       NULL,
                       NULL};
    fill(o.x, (size_t)k, 1);
    fill(o.w, (size_t)n * k, 2);
    for (int way = ROW_DECODE; way < ROW_END; way++) {
      int calls;
      ms[way - ROW_DECODE] +=
          per_token * 1e3 * time_product(&o, way, 0.5 * seconds, trials, &calls);
    }
    free(o.x), free(o.w), free(o.y), free(o.dy);
  }
  printf("one row (a batch-1 token's %d products): the decode product %.3f ms, px_blas_sgemm "
         "%.3f ms, BLIS's BLAS sgemm_ (PyTorch's call) %.3f ms per token\n",
         4 * MODEL_L + 1, ms[0], ms[1], ms[2]);
  printf("result row_products_decode_ms_per_token %.4f\n", ms[0]);
  printf("result row_products_gemm_ms_per_token %.4f\n", ms[1]);
  printf("result row_products_blas_ms_per_token %.4f\n", ms[2]);
  fflush(stdout);
}

int main(int argc, char **argv) {
  double seconds = 1.0;
  int trials = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
      trials = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_peak [--seconds S] [--trials N]\n");
      return 1;
    }
  }
  if (!(seconds > 0) || trials < 1) {
    fprintf(stderr, "bench_peak: --seconds must be > 0 and --trials >= 1\n");
    return 1;
  }
  px_blas_init();
  const char *bt = getenv("BLIS_NUM_THREADS");
  printf("bench_peak: %s; OpenMP threads %d, BLIS_NUM_THREADS %s\n", px_blas_describe(),
         omp_get_max_threads(), bt ? bt : "(unset)");
  double peak = bench_fma(0.25 * seconds, trials);
  bench_sgemm(seconds, trials, peak);
  bench_rows(seconds, trials);
  return 0;
}
