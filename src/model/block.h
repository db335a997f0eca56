/*
 * block.h — the forward of one transformer block, private to src/model/: the one body that the
 * training forward (px_gpt_forward) and the KV cache's extend (px_gpt_kv_extend) both run, so
 * that the two cannot drift apart. Pre-LayerNorm, as GPT-2:
 *   residual2 = x + attproj(attention(qkv(ln1(x)))),
 *   residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))).
 * Two things differ between the callers, so the caller hands them in: the attention (over the
 * batch, keeping its probabilities for the backward; or over a sequence's cached keys) as a
 * step, and the linear layer (BLIS's GEMM for training; the decode product, whose rows do not
 * depend on the batch, for generation).
 */
#ifndef PROXIMA_MODEL_BLOCK_H
#define PROXIMA_MODEL_BLOCK_H

#include "profile.h"
#include "proxima/gpt.h"
#include "proxima/kernels.h"

/* Where one block reads and writes: N rows of C channels. The KV cache runs the residual adds in
 * place (in, residual2 and residual3 the same buffer) and reuses one LayerNorm buffer. */
typedef struct px_gpt_block_acts {
  const float *in;                  /* (N,C): the residual stream entering the block */
  float *ln1, *ln1_mean, *ln1_rstd; /* (N,C), (N), (N) */
  float *qkv;                       /* (N,3C) */
  float *atty;                      /* (N,C): the attention's output */
  float *residual2;                 /* (N,C) */
  float *ln2, *ln2_mean, *ln2_rstd; /* (N,C), (N), (N) */
  float *fch, *fch_gelu;            /* (N,4C) */
  float *proj;                      /* (N,C): attproj's output, then fcproj's */
  float *residual3;                 /* (N,C): the block's output */
} px_gpt_block_acts;

/* The attention of layer l: forward(ctx, l, atty, qkv) writes atty (N,C) from qkv (N,3C). It
 * times its own attention (PX_GPT_ATTENTION), so that whatever else it does is not counted. */
typedef struct px_gpt_attention_step {
  void (*forward)(void *ctx, int l, float *atty, const float *qkv);
  void *ctx;
} px_gpt_attention_step;

/* The linear layer, px_matmul_forward's signature: px_matmul_forward or px_matmul_decode_forward.
 */
typedef void (*px_gpt_matmul)(float *out, const float *inp, const float *weight, const float *bias,
                              int N, int C, int OC);

/* Block l of model over the N rows of a, its four products by matmul. */
static inline void px_gpt_block_forward(const px_gpt_block_acts *a, const px_gpt *model, int l,
                                        const px_gpt_attention_step *attention,
                                        px_gpt_matmul matmul, int N) {
  const px_gpt_params *p = &model->p;
  const int C = model->config.n_embd;
  const size_t lC = (size_t)l * C;
  /* attproj's and fc's biases are added by the pass that reads their output (the residual
   * add, GELU), one pass over it fewer than the product adding them. With K = C inside one
   * BLIS k-block (384 for skx) acc + bias has the bits that the product's bias + acc had;
   * fcproj (K = 4C, several k-blocks) keeps its bias, as moving it would change the order of
   * its sums and so every trained model's bits. (The decode product adds a bias after its sum
   * either way.) */
  px_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->in, p->ln1_w + lC, p->ln1_b + lC, N, C);
  PX_GPT_TIMED(model, PX_GPT_MATMUL,
               matmul(a->qkv, a->ln1, p->qkv_w + 3 * lC * C, p->qkv_b + 3 * lC, N, C, 3 * C));
  attention->forward(attention->ctx, l, a->atty, a->qkv);
  PX_GPT_TIMED(model, PX_GPT_MATMUL,
               matmul(a->proj, a->atty, p->attproj_w + lC * C, NULL, N, C, C));
  px_residual_forward(a->residual2, a->in, a->proj, p->attproj_b + lC, N, C);
  px_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, p->ln2_w + lC, p->ln2_b + lC,
                       N, C);
  PX_GPT_TIMED(model, PX_GPT_MATMUL,
               matmul(a->fch, a->ln2, p->fc_w + 4 * lC * C, NULL, N, C, 4 * C));
  px_gelu_forward(a->fch_gelu, a->fch, p->fc_b + 4 * lC, N, 4 * C);
  PX_GPT_TIMED(
      model, PX_GPT_MATMUL,
      matmul(a->proj, a->fch_gelu, p->fcproj_w + 4 * lC * C, p->fcproj_b + lC, N, 4 * C, C));
  px_residual_forward(a->residual3, a->residual2, a->proj, NULL, N, C);
}

#endif
