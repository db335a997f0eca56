/*
 * kernels.h — the layers of the transformer as forward/backward pairs of plain functions over
 * float32 arrays (STYLE.md rule 2): outputs first, then inputs, sizes last. They know nothing of
 * MPI, HDF5 or configs, allocate nothing the caller must free, and return void.
 *
 * Shapes: B sequences of T positions, C channels, NH heads, V vocabulary entries, N = B*T rows.
 * A batch holds sequences of different lengths right-padded to T: lengths [B] gives each one's
 * real positions 0..lengths[b]-1; the rest is padding, whose outputs are zero and which no real
 * position ever attends.
 *
 * Every backward ACCUMULATES (+=) into its gradient outputs, so a caller zeroes them first and
 * gradients of several microbatches simply add up; the two _set variants overwrite their dinp.
 *
 * Threads: element-wise kernels and attention run `#pragma omp parallel for` (the attention's
 * products as single-threaded BLIS calls inside it); the matmul runs on BLIS's threads
 * (px_blas_sgemm) and is never called from inside an OpenMP region. Results do not depend on
 * the number of threads.
 */
#ifndef PROXIMA_KERNELS_H
#define PROXIMA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proxima/simd.h"

/* exp(x) in float that a loop over arrays compiles to SIMD code (glibc's expf is a call per
 * element, which kept GELU and every softmax scalar). Cephes' expf: x = n ln2 + r with
 * |r| <= ln2/2 (ln2 in two parts, so n ln2 is exact), exp(r) by its degree-7 polynomial, then
 * times 2^n as two powers of two, so that results near the ends of the range come out as the
 * IEEE multiplications round them: subnormal below exp(-87.3), inf above 88.72. Within 2 ulp of
 * expf wherever the result is normal (test_kernels checks every 61st float in [-87, 88]: 1 ulp
 * at worst); NaN stays NaN. The rounding to n takes its integer from the float's bits, with no
 * float-to-int conversion, so no input is undefined behaviour. */
static inline float px_expf(float x) {
  const float lo = -104.0f, hi = 89.0f; /* exp is 0 below, inf above, in float */
  x = x < lo ? lo : x > hi ? hi : x;    /* NaN falls through both */
  const float round = 12582912.0f;      /* 1.5 * 2^23: adding it rounds to an integer */
  float t = x * 1.44269504088896341f + round;
  float n = t - round;
  uint32_t tb;
  memcpy(&tb, &t, sizeof tb);
  uint32_t nb = tb - 0x4b400000u + 256u; /* n + 256, in [106, 385] for the clamped range */
  uint32_t e1 = nb >> 1, e2 = nb - e1;   /* floor(n/2) + 128 and ceil(n/2) + 128 */
  uint32_t s1b = (e1 - 1u) << 23, s2b = (e2 - 1u) << 23; /* 2^(e - 128) as floats */
  float s1, s2;
  memcpy(&s1, &s1b, sizeof s1);
  memcpy(&s2, &s2b, sizeof s2);
  float r = x - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * s1 * s2;
}

/* Sum, dot product and maximum over [0..n) in a fixed order: 16 running lanes (lane l takes
 * elements l, l+16, ...), then a fixed tree. The compiler vectorises them (a plain running sum it
 * may not reorder), and the bits are the same at any vector width, thread count or batch. */
static inline float px_sum16(const float *x, int n) {
  float lane[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) lane[l] += x[i + l];
  for (int l = 0; i < n; i++, l++) lane[l] += x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lane[l] += lane[l + w];
  return lane[0];
}

static inline float px_dot16(const float *a, const float *b, int n) {
  float lane[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) lane[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; i++, l++) lane[l] += a[i] * b[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lane[l] += lane[l + w];
  return lane[0];
}

static inline float px_max16(const float *x, int n) {
  float lane[16];
  for (int l = 0; l < 16; l++) lane[l] = -3.402823466e38f;
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
  for (int l = 0; i < n; i++, l++) lane[l] = x[i] > lane[l] ? x[i] : lane[l];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) lane[l] = lane[l + w] > lane[l] ? lane[l + w] : lane[l];
  return lane[0];
}

/* Token + learned position embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] for real
 * positions, 0 for padding. out [B,T,C], tokens [B,T], lengths [B], wte [V,C], wpe [>=T,C]. */
void px_encoder_forward(float *out, const int32_t *tokens, const int32_t *lengths, const float *wte,
                        const float *wpe, int B, int T, int C);
void px_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                         const int32_t *lengths, int B, int T, int C);

/* LayerNorm over the last axis, eps 1e-5: out = (inp - mean) * rstd * weight + bias.
 * out, inp [N,C]; mean, rstd [N] (kept for the backward); weight, bias [C]. */
void px_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C);
void px_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, const float *mean,
                           const float *rstd, int N, int C);

/* Linear layer as PyTorch's: out = inp W^T + bias. out [N,OC], inp [N,C], weight [OC,C],
 * bias [OC] or NULL. The fast versions are BLIS GEMMs; the _naive ones are plain loops, the
 * oracle of the tests. */
void px_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC);
void px_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC);
/* The same with dinp overwritten (=), not accumulated (dweight and dbias still accumulate): for
 * a caller whose dinp holds nothing yet, which then need not zero it first. */
void px_matmul_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
void px_matmul_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC);
void px_matmul_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC);

/* Generation's linear layer (the KV cache's products): out = inp W^T + bias as above, each output
 * computed as px_dot16(inp row, W row) + bias, so that its bits depend on its row alone, not on
 * the batch, the thread count or the vector width (kernels.c says why and how it is tiled). Fast
 * where BLIS's GEMM is slow, at a few rows; _naive is that definition, one px_dot16 per output,
 * and the fast version's bits equal it. OpenMP threads; call outside a parallel region. */
void px_matmul_decode_forward(float *out, const float *inp, const float *weight, const float *bias,
                              int N, int C, int OC);
void px_matmul_decode_forward_naive(float *out, const float *inp, const float *weight,
                                    const float *bias, int N, int C, int OC);

/* In place, one row of attention scores: row[0..upto] becomes their softmax and row[upto+1..n)
 * zero (the causal mask). Shared by the training forward and the KV-cache step, so both
 * compute the same numbers. */
void px_softmax_causal_row(float *row, int upto, int n);

/* Causal multi-head self-attention over a padded batch, scaled by 1/sqrt(C/NH).
 * out [B,T,C]; att [B,NH,T,T] (softmax weights, kept for the backward; row t holds keys 0..t,
 * zero elsewhere and for padded queries); qkv [B,T,3C] (q, k, v side by side, head h in
 * channels h*C/NH..). A real query t attends keys 0..t, all real since t < lengths[b]. The fast
 * versions do each (sequence, head) as single-threaded BLIS products inside an OpenMP loop;
 * the _naive ones are the dot-product loops of the definition, the tests' oracle. */
void px_attention_forward(float *out, float *att, const float *qkv, const int32_t *lengths, int B,
                          int T, int C, int NH);
void px_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const int32_t *lengths, int B, int T, int C, int NH);
/* The same with dqkv overwritten (=), padded positions zero, as px_matmul_backward_set. */
void px_attention_backward_set(float *dqkv, const float *dout, const float *qkv, const float *att,
                               const int32_t *lengths, int B, int T, int C, int NH);
void px_attention_forward_naive(float *out, float *att, const float *qkv, const int32_t *lengths,
                                int B, int T, int C, int NH);
void px_attention_backward_naive(float *dqkv, const float *dout, const float *qkv, const float *att,
                                 const int32_t *lengths, int B, int T, int C, int NH);

/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). The forward first adds
 * the bias of the linear layer before it (bias [C], or NULL for none) to pre in place, so that
 * layer's product can leave it out: pre += bias, out = GELU(pre); out, pre [N,C]. The backward
 * reads that pre-activation as inp; dinp, inp, dout [N]. */
void px_gelu_forward(float *out, float *pre, const float *bias, int N, int C);
void px_gelu_backward(float *dinp, const float *inp, const float *dout, long N);
/* The same with dinp overwritten (=), as px_matmul_backward_set. */
void px_gelu_backward_set(float *dinp, const float *inp, const float *dout, long N);

/* Residual connection: out = a + (b + bias), with the bias [C] (or NULL) of the projection that
 * made b and left it out. out, a, b [N,C]; out may be a. The backward's arrays are all [N]. */
void px_residual_forward(float *out, const float *a, const float *b, const float *bias, int N,
                         int C);

void px_residual_backward(float *da, float *db, const float *dout, long N);

/* x [N] = 0 on every thread: one core's memset does not saturate the memory system (43.8 MB,
 * gpt6x384's gradient: 1.8 ms on one thread, 0.9 on two). */
void px_zero(float *x, size_t N);

/* Softmax at a temperature and cross-entropy over the first Vs of each row's V logits (the
 * tokenizer's; the rest pad the embedding and take no part): probs[n,:Vs] =
 * softmax(logits[n,:Vs] / temperature), losses[n] = -log probs[n, targets[n]] (computed as
 * logsumexp - logit, so it never overflows; targets below Vs). A row with targets[n] < 0 is
 * skipped: loss 0, probs row untouched, no gradient. probs[n, Vs:] are never written.
 * losses [N], probs, logits [N,V], targets [N]. The backward adds
 * dlosses[n] * (probs[n,v] - [v == targets[n]]) / temperature to dlogits [N,:Vs], nothing to
 * the padding columns. */
void px_crossentropy_forward(float *losses, float *probs, const float *logits,
                             const int32_t *targets, float temperature, int N, int V, int Vs);
void px_crossentropy_backward(float *dlogits, const float *dlosses, const float *probs,
                              const int32_t *targets, float temperature, int N, int V, int Vs);

#endif
