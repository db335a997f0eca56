/*
 * kernels.c — the transformer's layers as forward/backward pairs over plain arrays (see
 * kernels.h for the shapes and conventions). The definitions followed are GPT-2's as written in
 * llm.c (train_gpt2.c); each backward is the exact derivative of its forward and accumulates.
 *
 * Parallelism: `#pragma omp parallel for` on the element-wise and attention loops; the matmuls
 * go to BLIS (px_blas_sgemm), which runs its own threads, outside any OpenMP region; inside the
 * attention's OpenMP loop each small product is a single-threaded BLIS call. Loops that
 * sum over rows into a weight gradient are split by channel, never by row, so that no two
 * threads write the same element and the order of every sum is fixed: results do not depend on
 * the thread count.
 */
#include "proxima/kernels.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/blas.h"
#include "proxima/error.h"

/* Channel blocks for the loops that reduce over rows (see above). */
enum { PX_CHANNEL_BLOCK = 64 };

/* ---------------------------------------------------------------------------------------------
 * Encoder: token and position embeddings
 * ------------------------------------------------------------------------------------------- */

PX_SIMD_CLONES
void px_encoder_forward(float *out, const int32_t *tokens, const int32_t *lengths, const float *wte,
                        const float *wpe, int B, int T, int C) {
  // out is (B,T,C); tokens (B,T); wte (V,C); wpe (maxT,C). Positions count from each
  // sequence's own start, which with right padding is just t.
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float *out_bt = out + ((size_t)b * T + t) * C;
      if (t >= lengths[b]) {
        memset(out_bt, 0, (size_t)C * sizeof(float));
        continue;
      }
      const float *wte_ix = wte + (size_t)tokens[b * T + t] * C;
      const float *wpe_t = wpe + (size_t)t * C;
      for (int i = 0; i < C; i++) out_bt[i] = wte_ix[i] + wpe_t[i];
    }
  }
}

PX_SIMD_CLONES
void px_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                         const int32_t *lengths, int B, int T, int C) {
  // dwte (V,C), dwpe (maxT,C), dout (B,T,C). Two positions may hold the same token, so
  // threads split the channels, not the positions.
#pragma omp parallel for
  for (int c0 = 0; c0 < C; c0 += PX_CHANNEL_BLOCK) {
    int c1 = c0 + PX_CHANNEL_BLOCK < C ? c0 + PX_CHANNEL_BLOCK : C;
    for (int b = 0; b < B; b++) {
      for (int t = 0; t < lengths[b]; t++) {
        const float *dout_bt = dout + ((size_t)b * T + t) * C;
        float *dwte_ix = dwte + (size_t)tokens[b * T + t] * C;
        float *dwpe_t = dwpe + (size_t)t * C;
        for (int i = c0; i < c1; i++) {
          dwte_ix[i] += dout_bt[i];
          dwpe_t[i] += dout_bt[i];
        }
      }
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * LayerNorm
 * ------------------------------------------------------------------------------------------- */

/* The row statistics of the LayerNorm are plain running sums over the channels, in channel
 * order (these bits are the reference the trained models and tests were made with). One such
 * sum is a chain of C dependent adds; these helpers run PX_LN_ROWS rows' chains side by side,
 * each still in channel order, so the adds overlap (2x faster at C = 384) and every row's bits
 * are what it gets alone, at any batch or thread count. They are kept out of the AVX-512 clones
 * (noinline, no PX_SIMD_CLONES): there GCC packs the eight scalars into vectors with shuffles
 * and the loop is slower than the plain chains. */
enum { PX_LN_ROWS = 8 };

/* Mean and rstd of rows x[r*C..] for r < rows (rows <= PX_LN_ROWS). */
__attribute__((noinline)) static void px_layernorm_stats(float *mean, float *rstd, const float *x,
                                                         int rows, int C) {
  const float eps = 1e-5f;
  float m[PX_LN_ROWS] = {0}, v[PX_LN_ROWS] = {0};
  for (int i = 0; i < C; i++)
    for (int r = 0; r < rows; r++) m[r] += x[(size_t)r * C + i];
  for (int r = 0; r < rows; r++) m[r] /= C;
  for (int i = 0; i < C; i++)
    for (int r = 0; r < rows; r++) {
      const float d = x[(size_t)r * C + i] - m[r];
      v[r] += d * d;
    }
  for (int r = 0; r < rows; r++) {
    mean[r] = m[r];
    rstd[r] = 1.0f / sqrtf(v[r] / C + eps);
  }
}

/* The backward's row sums mean(g) and mean(g xhat), g = weight dy, for rows <= PX_LN_ROWS. */
__attribute__((noinline)) static void px_layernorm_grad_stats(float *g_mean, float *gx_mean,
                                                              const float *dy, const float *x,
                                                              const float *weight,
                                                              const float *mean, const float *rstd,
                                                              int rows, int C) {
  float a[PX_LN_ROWS] = {0}, b[PX_LN_ROWS] = {0};
  for (int i = 0; i < C; i++)
    for (int r = 0; r < rows; r++) {
      const float g = weight[i] * dy[(size_t)r * C + i];
      a[r] += g;
      b[r] += g * (x[(size_t)r * C + i] - mean[r]) * rstd[r];
    }
  for (int r = 0; r < rows; r++) g_mean[r] = a[r] / C, gx_mean[r] = b[r] / C;
}

PX_SIMD_CLONES
void px_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C) {
  // out and inp are (N,C); mean and rstd (N); weight and bias (C). PyTorch's LayerNorm with
  // the biased variance and eps 1e-5.
#pragma omp parallel for
  for (int n0 = 0; n0 < N; n0 += PX_LN_ROWS) {
    const int rows = N - n0 < PX_LN_ROWS ? N - n0 : PX_LN_ROWS;
    px_layernorm_stats(mean + n0, rstd + n0, inp + (size_t)n0 * C, rows, C);
    for (int n = n0; n < n0 + rows; n++) {
      const float *x = inp + (size_t)n * C;
      const float m = mean[n], s = rstd[n];
      float *o = out + (size_t)n * C;
      for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * weight[i] + bias[i];
    }
  }
}

PX_SIMD_CLONES
void px_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const float *mean,
                           const float *rstd, int N, int C) {
  // dinp, dout, inp (N,C); dweight, dbias (C). With xhat = (x - mean) rstd and g = weight dout:
  // dx = rstd (g - mean(g) - xhat mean(g xhat)).
#pragma omp parallel for
  for (int n0 = 0; n0 < N; n0 += PX_LN_ROWS) {
    const int rows = N - n0 < PX_LN_ROWS ? N - n0 : PX_LN_ROWS;
    float g_mean[PX_LN_ROWS], gx_mean[PX_LN_ROWS];
    px_layernorm_grad_stats(g_mean, gx_mean, dout + (size_t)n0 * C, inp + (size_t)n0 * C, weight,
                            mean + n0, rstd + n0, rows, C);
    for (int r = 0; r < rows; r++) {
      const size_t n = (size_t)n0 + r;
      const float *x = inp + n * C, *dy = dout + n * C;
      const float m = mean[n], s = rstd[n];
      float *dx = dinp + n * C;
      for (int i = 0; i < C; i++) {
        float xhat = (x[i] - m) * s;
        dx[i] += s * (weight[i] * dy[i] - g_mean[r] - xhat * gx_mean[r]);
      }
    }
  }
#pragma omp parallel for
  for (int c0 = 0; c0 < C; c0 += PX_CHANNEL_BLOCK) {
    const int w = C - c0 < PX_CHANNEL_BLOCK ? C - c0 : PX_CHANNEL_BLOCK;
    float db[PX_CHANNEL_BLOCK] = {0}, dw[PX_CHANNEL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
      const float *x = inp + (size_t)n * C + c0, *dy = dout + (size_t)n * C + c0;
      const float m = mean[n], s = rstd[n];
      for (int j = 0; j < w; j++) {
        db[j] += dy[j];
        dw[j] += (x[j] - m) * s * dy[j];
      }
    }
    for (int j = 0; j < w; j++) dbias[c0 + j] += db[j], dweight[c0 + j] += dw[j];
  }
}

/* ---------------------------------------------------------------------------------------------
 * Matmul: y = x W^T + b, W [OC,C] as in PyTorch's Linear
 * ------------------------------------------------------------------------------------------- */

/* dbias[o] += sum_n dout[n,o], split by output channel. */
PX_SIMD_CLONES
static void px_bias_backward(float *dbias, const float *dout, int N, int OC) {
#pragma omp parallel for
  for (int o0 = 0; o0 < OC; o0 += PX_CHANNEL_BLOCK) {
    const int w = OC - o0 < PX_CHANNEL_BLOCK ? OC - o0 : PX_CHANNEL_BLOCK;
    float sum[PX_CHANNEL_BLOCK] = {0}; /* a local block: no aliasing, so it vectorises */
    for (int n = 0; n < N; n++) {
      const float *dy = dout + (size_t)n * OC + o0;
      for (int j = 0; j < w; j++) sum[j] += dy[j];
    }
    for (int j = 0; j < w; j++) dbias[o0 + j] += sum[j];
  }
}

void px_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC) {
  // out (N,OC) = inp (N,C) . weight^T (C,OC) + bias (OC): weight read with swapped strides.
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    beta = 1.0f;
  }
  px_blas_sgemm(N, OC, C, 1.0f, inp, C, 1, weight, 1, C, beta, out, OC, 1);
}

/* keep_dinp 1: dinp accumulates; 0: it is overwritten (BLIS's beta). */
static void px_matmul_backward_beta(float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *weight, int N, int C, int OC,
                                    float keep_dinp) {
  // dinp (N,C) += dout (N,OC) . weight (OC,C); dweight (OC,C) += dout^T (OC,N) . inp (N,C);
  // dbias (OC) += column sums of dout. Any of the three may be NULL.
  if (dinp) px_blas_sgemm(N, C, OC, 1.0f, dout, OC, 1, weight, C, 1, keep_dinp, dinp, C, 1);
  if (dweight) px_blas_sgemm(OC, C, N, 1.0f, dout, 1, OC, inp, C, 1, 1.0f, dweight, C, 1);
  if (dbias) px_bias_backward(dbias, dout, N, OC);
}

void px_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC) {
  px_matmul_backward_beta(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 1.0f);
}

void px_matmul_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC) {
  px_matmul_backward_beta(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0.0f);
}

void px_matmul_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC) {
  // The definition, one dot product per output; the tests' oracle for px_matmul_forward.
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    for (int o = 0; o < OC; o++) {
      const float *w = weight + (size_t)o * C;
      float val = bias ? bias[o] : 0.0f;
      for (int i = 0; i < C; i++) val += x[i] * w[i];
      out[(size_t)n * OC + o] = val;
    }
  }
}

void px_matmul_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC) {
  if (dinp) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
      float *dx = dinp + (size_t)n * C;
      for (int o = 0; o < OC; o++) {
        const float *w = weight + (size_t)o * C;
        float d = dout[(size_t)n * OC + o];
        for (int i = 0; i < C; i++) dx[i] += w[i] * d;
      }
    }
  }
  if (dweight) {
#pragma omp parallel for
    for (int o = 0; o < OC; o++) {
      float *dw = dweight + (size_t)o * C;
      for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float d = dout[(size_t)n * OC + o];
        for (int i = 0; i < C; i++) dw[i] += x[i] * d;
      }
    }
  }
  if (dbias) {
    for (int o = 0; o < OC; o++)
      for (int n = 0; n < N; n++) dbias[o] += dout[(size_t)n * OC + o];
  }
}

/* ---------------------------------------------------------------------------------------------
 * The decode product: generation's matmul
 *
 * A decode step multiplies a few rows (one per active sequence, one at batch 1) by each weight
 * matrix. BLIS's GEMM packs the whole weight matrix into its panel layout on every call, which
 * at M = 1 costs far more than the product (GPT-2 124M's MLP product at K = 3072: 1.4 ms in
 * BLIS, 0.09 ms here), and BLIS's matrix-vector path has other bits than its GEMM, so a
 * sequence would sample differently alone and batched. This product reads the weights where
 * they lie ([OC,C], row-major, as PyTorch's Linear) and computes every output as px_dot16 does:
 * 16 running lanes over the input channels (lane l takes channels l, l+16, ...), each a product
 * then a sum in channel order, then the fixed tree over the lanes, then the bias. The tiling
 * below changes which outputs are computed together, never that arithmetic, so an output's bits
 * depend on its row and the weights only: not on the rows beside it (the batch), the thread
 * count or the vector width (GCC's mul and add are not fused into FMAs in ISO C mode, so the
 * AVX-512, AVX2 and SSE2 clones agree). px_matmul_decode_forward_naive is that definition, one
 * px_dot16 per output; the tests hold the fast path to it bit for bit and to BLIS to float
 * tolerance, and it computes the shapes the tiles do not fit (C not a multiple of 16).
 *
 * The tiles: PX_DECODE_MR rows by PX_DECODE_NR weight rows, 24 vector accumulators (of the 32
 * AVX-512 registers) fed by 10 loads per 24 products, so the product runs from registers; rows
 * are taken in chunks whose inputs stay in the L2 cache while each thread streams its share of
 * the weight rows once per chunk. At batch 1 the product is bound by memory bandwidth; at batch
 * 64 it is faster than BLIS's GEMM at GPT-2 124M's shapes (nothing to pack), while for long
 * prompts (a prefill of thousands of rows) BLIS would be about 1.3x faster: the model uses this
 * product for prefill too, since a prompt's rows must not depend on how the prompt is split.
 * ------------------------------------------------------------------------------------------- */

enum { PX_DECODE_MR = 4, PX_DECODE_NR = 6, PX_DECODE_L2_BYTES = 192 * 1024 };

/* 16 floats; aligned(4) so that a vector may start at any float. */
typedef float px_v16 __attribute__((vector_size(64), aligned(4)));
typedef float px_v8 __attribute__((vector_size(32), aligned(4)));
typedef float px_v4 __attribute__((vector_size(16), aligned(4)));

/* px_dot16's tree over the 16 lanes of *acc: lanes l and l+8, then l and l+4, l and l+2. */
static inline float px_lanes_sum(const px_v16 *acc) {
  px_v8 lo, hi;
  memcpy(&lo, acc, sizeof lo);
  memcpy(&hi, (const char *)acc + sizeof lo, sizeof hi);
  const px_v8 s8 = lo + hi;
  px_v4 lo4, hi4;
  memcpy(&lo4, &s8, sizeof lo4);
  memcpy(&hi4, (const char *)&s8 + sizeof lo4, sizeof hi4);
  const px_v4 s4 = lo4 + hi4;
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* One tile: out[i, j] for mr rows of x (mr <= PX_DECODE_MR, a constant where it is inlined) and
 * PX_DECODE_NR weight rows w, K a multiple of 16. out's rows are ldo apart. */
static inline __attribute__((always_inline)) void px_decode_tile(float *out, size_t ldo,
                                                                 const float *x, const float *w,
                                                                 const float *bias, int K, int mr) {
  px_v16 acc[PX_DECODE_MR][PX_DECODE_NR];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int j = 0; j < PX_DECODE_NR; j++) acc[i][j] = (px_v16){0};
  for (int k = 0; k < K; k += 16) {
    px_v16 xv[PX_DECODE_MR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) memcpy(&xv[i], x + (size_t)i * K + k, sizeof xv[i]);
#pragma GCC unroll 8
    for (int j = 0; j < PX_DECODE_NR; j++) {
      px_v16 wv;
      memcpy(&wv, w + (size_t)j * K + k, sizeof wv);
#pragma GCC unroll 8
      for (int i = 0; i < mr; i++) acc[i][j] += xv[i] * wv;
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
    for (int j = 0; j < PX_DECODE_NR; j++) {
      float v = px_lanes_sum(&acc[i][j]);
      if (bias) v += bias[j];
      out[(size_t)i * ldo + j] = v;
    }
}

/* One output of the definition: px_dot16, then the bias. */
static inline float px_decode_one(const float *x, const float *w, const float *bias, int K) {
  float v = px_dot16(x, w, K);
  if (bias) v += bias[0];
  return v;
}

/* Columns j0 .. j0+nr-1 of out for rows 0 .. M-1: full tiles, then the rows left over as
 * narrower tiles; a block of fewer than PX_DECODE_NR columns (the last) by the definition. */
PX_SIMD_CLONES
static void px_decode_columns(float *out, const float *x, const float *weight, const float *bias,
                              int M, int K, int OC, int j0, int nr) {
  const float *w = weight + (size_t)j0 * K, *b = bias ? bias + j0 : NULL;
  float *o = out + j0;
  if (nr < PX_DECODE_NR) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < nr; j++)
        o[(size_t)i * OC + j] =
            px_decode_one(x + (size_t)i * K, w + (size_t)j * K, b ? b + j : NULL, K);
    return;
  }
  int i = 0;
  for (; i + PX_DECODE_MR <= M; i += PX_DECODE_MR)
    px_decode_tile(o + (size_t)i * OC, (size_t)OC, x + (size_t)i * K, w, b, K, PX_DECODE_MR);
  switch (M - i) {
  case 3: px_decode_tile(o + (size_t)i * OC, (size_t)OC, x + (size_t)i * K, w, b, K, 3); break;
  case 2: px_decode_tile(o + (size_t)i * OC, (size_t)OC, x + (size_t)i * K, w, b, K, 2); break;
  case 1: px_decode_tile(o + (size_t)i * OC, (size_t)OC, x + (size_t)i * K, w, b, K, 1); break;
  default: break;
  }
}

void px_matmul_decode_forward(float *out, const float *inp, const float *weight, const float *bias,
                              int N, int C, int OC) {
  // out (N,OC) = inp (N,C) . weight^T + bias, every output as px_matmul_decode_forward_naive.
  if (C % 16 != 0) {
    px_matmul_decode_forward_naive(out, inp, weight, bias, N, C, OC);
    return;
  }
  int chunk = PX_DECODE_L2_BYTES / (C * (int)sizeof(float));
  chunk = chunk < PX_DECODE_MR ? PX_DECODE_MR : chunk / PX_DECODE_MR * PX_DECODE_MR;
  const int blocks = (OC + PX_DECODE_NR - 1) / PX_DECODE_NR;
  for (int i0 = 0; i0 < N; i0 += chunk) {
    const int rows = N - i0 < chunk ? N - i0 : chunk;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
      const int j0 = blk * PX_DECODE_NR;
      px_decode_columns(out + (size_t)i0 * OC, inp + (size_t)i0 * C, weight, bias, rows, C, OC, j0,
                        OC - j0 < PX_DECODE_NR ? OC - j0 : PX_DECODE_NR);
    }
  }
}

PX_SIMD_CLONES
void px_matmul_decode_forward_naive(float *out, const float *inp, const float *weight,
                                    const float *bias, int N, int C, int OC) {
  // The definition: one px_dot16 per output, then the bias.
#pragma omp parallel for
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++)
      out[(size_t)n * OC + o] =
          px_decode_one(inp + (size_t)n * C, weight + (size_t)o * C, bias ? bias + o : NULL, C);
}

/* ---------------------------------------------------------------------------------------------
 * Causal self-attention over a padded batch
 * ------------------------------------------------------------------------------------------- */

void px_attention_forward_naive(float *out, float *att, const float *qkv, const int32_t *lengths,
                                int B, int T, int C, int NH) {
  // qkv (B,T,3C) holds q, k, v; out (B,T,C); att (B,NH,T,T).
  // out[b,t,h] = sum_{t2<=t} softmax_t2(q_t . k_t2 / sqrt(hs)) v_t2, hs = C/NH. With right
  // padding every key a real query sees (t2 <= t < length) is real; padded queries give 0.
  const int hs = C / NH;
  const size_t C3 = (size_t)C * 3;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(3)
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      for (int h = 0; h < NH; h++) {
        float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
        float *out_bth = out + ((size_t)b * T + t) * C + (size_t)h * hs;
        memset(att_row, 0, (size_t)T * sizeof(float));
        memset(out_bth, 0, (size_t)hs * sizeof(float));
        if (t >= lengths[b]) continue;
        const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        float maxval = -FLT_MAX;
        for (int t2 = 0; t2 <= t; t2++) {
          const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
          float dot = 0.0f;
          for (int i = 0; i < hs; i++) dot += q[i] * k[i];
          dot *= scale;
          att_row[t2] = dot;
          if (dot > maxval) maxval = dot;
        }
        float sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) {
          att_row[t2] = expf(att_row[t2] - maxval);
          sum += att_row[t2];
        }
        float inv = 1.0f / sum;
        for (int t2 = 0; t2 <= t; t2++) {
          att_row[t2] *= inv;
          const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
          for (int i = 0; i < hs; i++) out_bth[i] += att_row[t2] * v[i];
        }
      }
    }
  }
}

void px_attention_backward_naive(float *dqkv, const float *dout, const float *qkv, const float *att,
                                 const int32_t *lengths, int B, int T, int C, int NH) {
  // dqkv, qkv (B,T,3C); dout (B,T,C); att (B,NH,T,T). For query t with weights a = att[t,:]:
  // da_t2 = dout_t . v_t2; dpre_t2 = a_t2 (da_t2 - sum_j a_j da_j) (the softmax's Jacobian);
  // dq_t += dpre_t2 k_t2 / sqrt(hs); dk_t2 += dpre_t2 q_t / sqrt(hs); dv_t2 += a_t2 dout_t.
  // Keys receive from many queries, so a thread owns a whole (b, h) and writes nowhere else.
  const int hs = C / NH;
  const size_t C3 = (size_t)C * 3;
  const float scale = 1.0f / sqrtf((float)hs);
  float *scratch =
      px_malloc((size_t)omp_get_max_threads() * (size_t)(T > 0 ? T : 1) * sizeof(float));
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      float *datt = scratch + (size_t)omp_get_thread_num() * T;
      for (int t = 0; t < lengths[b]; t++) {
        const float *att_row = att + (((size_t)b * NH + h) * T + t) * T;
        const float *dout_t = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
        const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        float *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        float dot_sum = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) {
          const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
          float *dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
          float d = 0.0f;
          for (int i = 0; i < hs; i++) {
            d += dout_t[i] * v[i];
            dv[i] += att_row[t2] * dout_t[i];
          }
          datt[t2] = d;
          dot_sum += att_row[t2] * d;
        }
        for (int t2 = 0; t2 <= t; t2++) {
          const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
          float *dk = dqkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
          float dpre = att_row[t2] * (datt[t2] - dot_sum) * scale;
          for (int i = 0; i < hs; i++) {
            dq[i] += dpre * k[i];
            dk[i] += dpre * q[i];
          }
        }
      }
    }
  }
  free(scratch);
}

/* Where the row has room, the loops run over whole 16-float blocks, m = upto + 1 rounded up:
 * the masked entries in the last block are -FLT_MAX for the maximum and 0 for the sum, which
 * leaves both as px_max16 and px_sum16 over upto + 1 give them (adding 0 changes no lane), and
 * no loop has a scalar tail (a sixth faster at T = 256). */
PX_SIMD_CLONES
void px_softmax_causal_row(float *row, int upto, int n) {
  int m = (upto + 16) / 16 * 16;
  if (m > n) m = upto + 1;
  for (int t = upto + 1; t < m; t++) row[t] = -FLT_MAX;
  const float maxval = px_max16(row, m);
  for (int t = 0; t < m; t++) row[t] = px_expf(row[t] - maxval);
  for (int t = upto + 1; t < m; t++) row[t] = 0.0f;
  const float inv = 1.0f / px_sum16(row, m);
  for (int t = 0; t < m; t++) row[t] *= inv;
  for (int t = upto + 1; t < n; t++) row[t] = 0.0f; /* the future: masked */
}

/* The same attention as products of matrices: per (sequence, head), with n = its length,
 * S = Q K^T / sqrt(hs) (n x n), P = causal softmax of S by rows, O = P V, each product a
 * single-threaded BLIS call inside the OpenMP loop over (b, h). The query rows go in blocks of
 * PX_ATT_BLOCK: a block's rows see only the keys up to its last row, so the products skip the
 * upper triangle's blocks (3/4 of the full products' work at n = 256); what they do compute
 * above the diagonal is overwritten with zeros by the softmax. */
enum { PX_ATT_BLOCK = 128 };

PX_SIMD_CLONES
void px_attention_forward(float *out, float *att, const float *qkv, const int32_t *lengths, int B,
                          int T, int C, int NH) {
  const int hs = C / NH;
  const size_t C3 = (size_t)C * 3;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const int n = lengths[b];
      float *P = att + ((size_t)b * NH + h) * T * T;
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *K = Q + C,
                  *V = Q + 2 * (size_t)C;
      float *O = out + (size_t)b * T * C + (size_t)h * hs;
      memset(P + (size_t)n * T, 0, (size_t)(T - n) * T * sizeof(float)); /* padded queries */
      for (int t = n; t < T; t++) memset(O + (size_t)t * C, 0, (size_t)hs * sizeof(float));
      for (int i0 = 0; i0 < n; i0 += PX_ATT_BLOCK) {
        const int rows = n - i0 < PX_ATT_BLOCK ? n - i0 : PX_ATT_BLOCK, keys = i0 + rows;
        float *Pi = P + (size_t)i0 * T;
        px_blas_sgemm_serial(rows, keys, hs, scale, Q + i0 * C3, C3, 1, K, 1, C3, 0.0f, Pi, T, 1);
        for (int t = 0; t < rows; t++) px_softmax_causal_row(Pi + (size_t)t * T, i0 + t, T);
        px_blas_sgemm_serial(rows, hs, keys, 1.0f, Pi, T, 1, V, C3, 1, 0.0f, O + (size_t)i0 * C, C,
                             1);
      }
    }
  }
}

/* set 0: dqkv accumulates; 1: it is written whole (padded positions zero), with the bits that
 * accumulating onto zeros gives: the keys a block shares with earlier blocks add onto them, its
 * new keys and its own query rows are written (BLIS's beta 0), so each sum is formed in the
 * same order. */
PX_SIMD_CLONES
static void px_attention_backward_beta(float *dqkv, const float *dout, const float *qkv,
                                       const float *att, const int32_t *lengths, int B, int T,
                                       int C, int NH, int set) {
  // Per (b, h), n = length, by blocks of query rows i with keys 0..k_i (as the forward):
  // dP_i = dO_i V^T; dV += P_i^T dO_i; dS_i = P_i (dP_i - rowsum(P_i dP_i)) / sqrt(hs);
  // dQ_i += dS_i K; dK += dS_i^T Q_i. dS lives in a per-thread n x n scratch.
  const int hs = C / NH;
  const size_t C3 = (size_t)C * 3;
  const float scale = 1.0f / sqrtf((float)hs), fresh = set ? 0.0f : 1.0f;
  float *scratch = px_malloc((size_t)omp_get_max_threads() * (size_t)T * T * sizeof(float));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const int n = lengths[b];
      const float *P = att + ((size_t)b * NH + h) * T * T;
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *K = Q + C,
                  *V = Q + 2 * (size_t)C;
      const float *dO = dout + (size_t)b * T * C + (size_t)h * hs;
      float *dQ = dqkv + (size_t)b * T * C3 + (size_t)h * hs, *dK = dQ + C,
            *dV = dQ + 2 * (size_t)C;
      float *dS = scratch + (size_t)omp_get_thread_num() * T * T;
      for (int i0 = 0; i0 < n; i0 += PX_ATT_BLOCK) {
        const int rows = n - i0 < PX_ATT_BLOCK ? n - i0 : PX_ATT_BLOCK, keys = i0 + rows;
        const int shared = set ? i0 : keys; /* keys 0..shared-1 add; the rest are fresh */
        const float *Pi = P + (size_t)i0 * T, *dOi = dO + (size_t)i0 * C;
        float *dSi = dS + (size_t)i0 * T;
        px_blas_sgemm_serial(rows, keys, hs, 1.0f, dOi, C, 1, V, 1, C3, 0.0f, dSi, T, 1);
        px_blas_sgemm_serial(shared, hs, rows, 1.0f, Pi, 1, T, dOi, C, 1, 1.0f, dV, C3, 1);
        px_blas_sgemm_serial(keys - shared, hs, rows, 1.0f, Pi + shared, 1, T, dOi, C, 1, fresh,
                             dV + shared * C3, C3, 1);
        for (int t = 0; t < rows; t++) {
          const float *p = Pi + (size_t)t * T;
          float *d = dSi + (size_t)t * T;
          const int upto = i0 + t;
          for (int t2 = 0; t2 <= upto; t2++) d[t2] *= p[t2];
          const float dot_sum = px_sum16(d, upto + 1); /* sum_t2 P dP */
          for (int t2 = 0; t2 <= upto; t2++) d[t2] = (d[t2] - p[t2] * dot_sum) * scale;
          for (int t2 = upto + 1; t2 < keys; t2++) d[t2] = 0.0f;
        }
        px_blas_sgemm_serial(rows, hs, keys, 1.0f, dSi, T, 1, K, C3, 1, fresh, dQ + i0 * C3, C3, 1);
        px_blas_sgemm_serial(shared, hs, rows, 1.0f, dSi, 1, T, Q + i0 * C3, C3, 1, 1.0f, dK, C3,
                             1);
        px_blas_sgemm_serial(keys - shared, hs, rows, 1.0f, dSi + shared, 1, T, Q + i0 * C3, C3, 1,
                             fresh, dK + shared * C3, C3, 1);
      }
      if (set) /* the padded positions' gradients */
        for (int t = n; t < T; t++)
          for (int part = 0; part < 3; part++)
            memset(dQ + t * C3 + (size_t)part * C, 0, (size_t)hs * sizeof(float));
    }
  }
  free(scratch);
}

void px_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const int32_t *lengths, int B, int T, int C, int NH) {
  px_attention_backward_beta(dqkv, dout, qkv, att, lengths, B, T, C, NH, 0);
}

void px_attention_backward_set(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const int32_t *lengths, int B, int T, int C, int NH) {
  px_attention_backward_beta(dqkv, dout, qkv, att, lengths, B, T, C, NH, 1);
}

/* ---------------------------------------------------------------------------------------------
 * GELU (tanh form) and the residual connection
 * ------------------------------------------------------------------------------------------- */

#define PX_GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* With u = sqrt(2/pi) (x + 0.044715 x^3), GELU's 0.5 x (1 + tanh u) is exactly x sigmoid(2u):
 * one exp instead of glibc's tanhf (which took a third of a training step), and no
 * cancellation in 1 + tanh u on the negative tail. exp overflowing to inf gives 0 there.
 * px_expf, not expf, so that the loops run in SIMD registers (about 10x faster). */
static inline float px_gelu(float x) {
  float u = PX_GELU_SCALE * (x + 0.044715f * x * x * x);
  return x / (1.0f + px_expf(-2.0f * u));
}

PX_SIMD_CLONES
void px_gelu_forward(float *out, float *pre, const float *bias, int N, int C) {
  // out and pre are (N,C), bias (C) or NULL. The bias of the linear layer before (which leaves
  // it out) is added here, in the pass that reads its output anyway: pre += bias in place,
  // since the backward reads the pre-activation, then out = GELU(pre).
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    float *x = pre + (size_t)n * C, *y = out + (size_t)n * C;
    if (bias)
      for (int c = 0; c < C; c++) x[c] += bias[c];
    for (int c = 0; c < C; c++) y[c] = px_gelu(x[c]);
  }
}

/* d/dx x s(2u) = s + 2 x s (1 - s) du/dx with s = sigmoid(2u) = (1 + tanh u) / 2, the tanh
 * form's 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx written through s. */
static inline float px_gelu_grad(float x) {
  float u = PX_GELU_SCALE * (x + 0.044715f * x * x * x);
  float du = PX_GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
  float s = 1.0f / (1.0f + px_expf(-2.0f * u));
  return s + 2.0f * x * s * (1.0f - s) * du;
}

PX_SIMD_CLONES
void px_gelu_backward(float *dinp, const float *inp, const float *dout, long N) {
#pragma omp parallel for
  for (long i = 0; i < N; i++) dinp[i] += px_gelu_grad(inp[i]) * dout[i];
}

PX_SIMD_CLONES
void px_gelu_backward_set(float *dinp, const float *inp, const float *dout, long N) {
#pragma omp parallel for
  for (long i = 0; i < N; i++) dinp[i] = px_gelu_grad(inp[i]) * dout[i];
}

PX_SIMD_CLONES
void px_residual_forward(float *out, const float *a, const float *b, const float *bias, int N,
                         int C) {
  // out, a, b (N,C), bias (C) or NULL: out = a + (b + bias), b the output of a projection that
  // left its bias to this pass (one pass over b instead of two).
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float *x = a + (size_t)n * C, *y = b + (size_t)n * C;
    float *z = out + (size_t)n * C;
    if (bias)
      for (int c = 0; c < C; c++) z[c] = x[c] + (y[c] + bias[c]);
    else
      for (int c = 0; c < C; c++) z[c] = x[c] + y[c];
  }
}

void px_zero(float *x, size_t N) {
  enum { CHUNK = 1 << 18 }; /* floats: 1 MiB per task */
  const long chunks = (long)((N + CHUNK - 1) / CHUNK);
#pragma omp parallel for
  for (long c = 0; c < chunks; c++) {
    const size_t lo = (size_t)c * CHUNK, n = N - lo < CHUNK ? N - lo : CHUNK;
    memset(x + lo, 0, n * sizeof(float));
  }
}

PX_SIMD_CLONES
void px_residual_backward(float *da, float *db, const float *dout, long N) {
#pragma omp parallel for
  for (long i = 0; i < N; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

/* ---------------------------------------------------------------------------------------------
 * Softmax at a temperature and cross-entropy
 * ------------------------------------------------------------------------------------------- */

PX_SIMD_CLONES
void px_crossentropy_forward(float *losses, float *probs, const float *logits,
                             const int32_t *targets, float temperature, int N, int V, int Vs) {
  // logits, probs (N,V); losses, targets (N). With z = logits[:Vs] / temperature:
  // loss = logsumexp(z) - z[target] = -log softmax(z)[target], finite however small the prob.
  const float inv_temp = 1.0f / temperature;
  PX_REQUIRE(Vs >= 1 && Vs <= V, "softmax over %d of %d logits", Vs, V);
  for (int n = 0; n < N; n++)
    PX_REQUIRE(targets[n] < Vs, "target %d out of the vocabulary (%d) at row %d", targets[n], Vs,
               n);
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) {
      losses[n] = 0.0f;
      continue;
    }
    const float *z = logits + (size_t)n * V;
    float *p = probs + (size_t)n * V;
    /* max(z / temperature) = max(z) / temperature: dividing is monotonic */
    const float maxval = px_max16(z, Vs) * inv_temp;
    for (int v = 0; v < Vs; v++) p[v] = px_expf(z[v] * inv_temp - maxval);
    const float sum = px_sum16(p, Vs), inv = 1.0f / sum;
    for (int v = 0; v < Vs; v++) p[v] *= inv;
    losses[n] = logf(sum) + maxval - z[targets[n]] * inv_temp;
  }
}

PX_SIMD_CLONES
void px_crossentropy_backward(float *dlogits, const float *dlosses, const float *probs,
                              const int32_t *targets, float temperature, int N, int V, int Vs) {
  // dlogits, probs (N,V); dlosses, targets (N). d loss / d z = probs - onehot(target), and
  // z = logits / temperature.
  const float inv_temp = 1.0f / temperature;
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    const float *p = probs + (size_t)n * V;
    float *dz = dlogits + (size_t)n * V;
    float d = dlosses[n] * inv_temp;
    for (int v = 0; v < Vs; v++) dz[v] += (p[v] - (v == targets[n] ? 1.0f : 0.0f)) * d;
  }
}
