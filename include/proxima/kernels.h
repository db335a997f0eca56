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
 * gradients of several microbatches simply add up.
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
void px_matmul_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC);
void px_matmul_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC);

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
void px_attention_forward_naive(float *out, float *att, const float *qkv, const int32_t *lengths,
                                int B, int T, int C, int NH);
void px_attention_backward_naive(float *dqkv, const float *dout, const float *qkv, const float *att,
                                 const int32_t *lengths, int B, int T, int C, int NH);

/* GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, inp [N]. */
void px_gelu_forward(float *out, const float *inp, long N);
void px_gelu_backward(float *dinp, const float *inp, const float *dout, long N);

/* Residual connection: out = a + b. All [N]. */
void px_residual_forward(float *out, const float *a, const float *b, long N);
void px_residual_backward(float *da, float *db, const float *dout, long N);

/* Softmax at a temperature and cross-entropy: probs[n,:] = softmax(logits[n,:] / temperature),
 * losses[n] = -log probs[n, targets[n]] (computed as logsumexp - logit, so it never overflows).
 * A row with targets[n] < 0 is skipped: loss 0, probs row untouched, no gradient.
 * losses [N], probs, logits [N,V], targets [N]. The backward adds
 * dlosses[n] * (probs[n,v] - [v == targets[n]]) / temperature to dlogits [N,V]. */
void px_crossentropy_forward(float *losses, float *probs, const float *logits,
                             const int32_t *targets, float temperature, int N, int V);
void px_crossentropy_backward(float *dlogits, const float *dlosses, const float *probs,
                              const int32_t *targets, float temperature, int N, int V);

/* The index of the first element of x[0..n) that is NaN or infinite; n when all are finite.
 * One pass, no allocation: the guard on gradients, collected rollouts and checkpoints. */
size_t px_first_nonfinite(const float *x, size_t n);

/* The same, one element at a time: the reference for tests. */
size_t px_first_nonfinite_ref(const float *x, size_t n);

#endif
