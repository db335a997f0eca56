/*
 * kvcache.c — generation's half of the model (see gpt.h): a cache of every layer's keys and
 * values per sequence, and px_gpt_kv_extend, which pushes new tokens of several sequences
 * through the blocks at once. It is px_gpt_forward restricted to the new rows, in the same order
 * (encoder; each block by block.h's px_gpt_block_forward, the training forward's own; then lnf
 * and the tied head), with two differences. The attention step writes the new keys and values
 * into the cache and reads them from there (in plain loops, see px_attention_kv_forward). The
 * products are px_matmul_decode_forward, not BLIS's GEMM: one product over all the call's rows,
 * so a decode step of M sequences reads each weight matrix once, fast at a few rows, and a row's
 * bits do not depend on the rows beside it, so a sequence samples the same tokens alone, batched,
 * or with its prompt split over calls (kernels.c says how). The logits agree with
 * px_gpt_forward's to float tolerance; training never uses these (it scores teacher-forced).
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "profile.h"
#include "proxima/gpt.h"
#include "proxima/kernels.h"

void px_gpt_kv_build(px_gpt_kv *kv, const px_gpt *model, int n_slots, int max_T, int max_rows) {
  const px_gpt_config *c = &model->config;
  PX_REQUIRE(c->head == PX_GPT_HEAD_LM, "px_gpt_kv_build: generation needs the LM head");
  PX_REQUIRE(n_slots >= 1 && max_rows >= 1 && max_T >= 1 && max_T <= c->max_seq_len,
             "px_gpt_kv_build: %d slots of %d positions, %d rows, for max_seq_len %d", n_slots,
             max_T, max_rows, c->max_seq_len);
  memset(kv, 0, sizeof *kv);
  kv->n_slots = n_slots;
  kv->max_T = max_T;
  kv->max_rows = max_rows;
  kv->L = c->n_layer;
  kv->C = c->n_embd;
  kv->V = c->vocab_size;
  const size_t C = (size_t)kv->C, R = (size_t)max_rows, S = (size_t)n_slots;
  const size_t cache = (size_t)kv->L * S * (size_t)max_T * C;
  kv->k = px_calloc_large(cache, sizeof(float));
  kv->v = px_calloc_large(cache, sizeof(float));
  kv->pos = px_calloc(S, sizeof(int32_t));
  kv->logits = px_calloc(S * (size_t)kv->V, sizeof(float));
  kv->x = px_calloc(R * C, sizeof(float));
  kv->ln = px_calloc(R * C, sizeof(float));
  kv->qkv = px_calloc(R * 3 * C, sizeof(float));
  kv->atty = px_calloc(R * C, sizeof(float));
  kv->proj = px_calloc(R * C, sizeof(float));
  kv->fch = px_calloc(R * 4 * C, sizeof(float));
  kv->fch_gelu = px_calloc(R * 4 * C, sizeof(float));
  kv->mean = px_calloc(R, sizeof(float));
  kv->rstd = px_calloc(R, sizeof(float));
  kv->last = px_calloc(S * C, sizeof(float));
  kv->last_ln = px_calloc(S * C, sizeof(float));
  kv->last_mean = px_calloc(S, sizeof(float));
  kv->last_rstd = px_calloc(S, sizeof(float));
  kv->row_tok = px_calloc(R, sizeof(int32_t));
  kv->row_pos = px_calloc(R, sizeof(int32_t));
  kv->first_row = px_calloc(S + 1, sizeof(int32_t));
  kv->used = px_calloc(S, sizeof(uint8_t));
}

double px_gpt_kv_bytes(const px_gpt_config *config, int n_slots, int max_T, int max_rows) {
  /* px_gpt_kv_build's arrays, in its order: keys and values; pos; logits; x, ln, qkv, atty,
   * proj, fch, fch_gelu (15 C per row), mean, rstd; last, last_ln, last_mean, last_rstd;
   * row_tok, row_pos, first_row; used. */
  const double L = config->n_layer, C = config->n_embd, V = config->vocab_size;
  const double S = n_slots, T = max_T, R = max_rows, f = sizeof(float), i = sizeof(int32_t);
  return 2 * px_calloc_large_bytes(f * L * S * T * C) + i * S + f * S * V + f * R * (15 * C + 2) +
         f * S * (2 * C + 2) + i * (2 * R + S + 1) + S;
}

void px_gpt_kv_free(px_gpt_kv *kv) {
  float *floats[] = {kv->k,    kv->v,       kv->logits,    kv->x,        kv->ln,   kv->qkv,
                     kv->atty, kv->proj,    kv->fch,       kv->fch_gelu, kv->mean, kv->rstd,
                     kv->last, kv->last_ln, kv->last_mean, kv->last_rstd};
  for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) free(floats[i]);
  free(kv->pos);
  free(kv->row_tok);
  free(kv->row_pos);
  free(kv->first_row);
  free(kv->used);
  memset(kv, 0, sizeof *kv);
}

void px_gpt_kv_reset(px_gpt_kv *kv, int slot) {
  PX_REQUIRE(slot >= 0 && slot < kv->n_slots, "px_gpt_kv_reset: slot %d of %d", slot, kv->n_slots);
  kv->pos[slot] = 0;
}

/* Attention of the call's rows over their sequences' cached keys (this call's included):
 * for entry j with n new rows at positions p0..p0+n-1, per head, row i's scores
 * S[t] = q_i . k_t / sqrt(hs) for the keys t = 0..p0+i it may see, their softmax P, and
 * o_i = sum_t P[t] v_t: px_attention_forward's arithmetic with the keys and values taken from
 * the cache. Plain loops, not BLIS: a decode step has one row per (sequence, head), and two BLIS
 * calls on such slivers cost more in overhead than the products (64 sequences x 6 heads x 2 per
 * layer made the attention most of a batch-64 step). Each row is computed alone, so the result
 * does not depend on how a prompt is split over calls or batched with others. out (R,C); qkv
 * (R,3C) of the rows; kcache, vcache (S,NH,max_T,hs) of this layer: a head's keys lie in one
 * run of memory, which a decode step streams through (a fifth faster at batch 64 than keys
 * strided by C). */
PX_SIMD_CLONES
static void px_attention_kv_forward(float *out, const float *qkv, const float *kcache,
                                    const float *vcache, const int *slots, const int32_t *n_new,
                                    const int32_t *first_row, const int32_t *pos, int M, int max_T,
                                    int C, int NH) {
  const int hs = C / NH;
  const size_t C3 = (size_t)C * 3;
  const float scale = 1.0f / sqrtf((float)hs);
  float *scratch = px_malloc((size_t)omp_get_max_threads() * (size_t)max_T * sizeof(float));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int j = 0; j < M; j++) {
    for (int h = 0; h < NH; h++) {
      const int n = n_new[j], p0 = pos[slots[j]];
      float *P = scratch + (size_t)omp_get_thread_num() * max_T;
      const size_t head = ((size_t)slots[j] * NH + h) * max_T * hs; /* this head's keys, in a row */
      const float *K = kcache + head, *V = vcache + head;
      for (int i = 0; i < n; i++) {
        const float *q = qkv + (size_t)(first_row[j] + i) * C3 + (size_t)h * hs;
        float *o = out + (size_t)(first_row[j] + i) * C + (size_t)h * hs;
        const int upto = p0 + i;
        for (int t = 0; t <= upto; t++) P[t] = scale * px_dot16(q, K + (size_t)t * hs, hs);
        px_softmax_causal_row(P, upto, upto + 1);
        for (int d = 0; d < hs; d++) o[d] = 0.0f;
        for (int t = 0; t <= upto; t++) {
          const float w = P[t], *v = V + (size_t)t * hs;
          for (int d = 0; d < hs; d++) o[d] += w * v[d];
        }
      }
    }
  }
  free(scratch);
}

/* The blocks' attention step (block.h) in px_gpt_kv_extend: layer l's keys and values of the
 * call's rows join the cache, then each row attends over its sequence's cached keys. */
typedef struct px_kv_step {
  const px_gpt *model;
  px_gpt_kv *kv;
  const int *slots;     /* [M] */
  const int32_t *n_new; /* [M] */
  int M;
} px_kv_step;

static void px_kv_attention_step(void *ctx, int l, float *atty, const float *qkv) {
  const px_kv_step *s = ctx;
  px_gpt_kv *kv = s->kv;
  const int M = s->M, C = kv->C, NH = s->model->config.n_head, hs = C / NH, maxT = kv->max_T;
  const size_t lstride = (size_t)kv->n_slots * maxT * C;
  float *kc = kv->k + l * lstride, *vc = kv->v + l * lstride;
#pragma omp parallel for
  for (int j = 0; j < M; j++)
    for (int r = kv->first_row[j]; r < kv->first_row[j + 1]; r++) {
      const float *qkv_r = qkv + (size_t)r * 3 * C;
      for (int h = 0; h < NH; h++) {
        const size_t at = (((size_t)s->slots[j] * NH + h) * maxT + kv->row_pos[r]) * hs;
        memcpy(kc + at, qkv_r + C + (size_t)h * hs, (size_t)hs * sizeof(float));
        memcpy(vc + at, qkv_r + 2 * (size_t)C + (size_t)h * hs, (size_t)hs * sizeof(float));
      }
    }
  PX_GPT_TIMED(s->model, PX_GPT_ATTENTION,
               px_attention_kv_forward(atty, qkv, kc, vc, s->slots, s->n_new, kv->first_row,
                                       kv->pos, M, maxT, C, NH));
}

void px_gpt_kv_extend(const px_gpt *model, px_gpt_kv *kv, int M, const int *slots,
                      const int32_t *n_new, const int32_t *tokens) {
  const px_gpt_config *c = &model->config;
  const px_gpt_params *p = &model->p;
  const int L = c->n_layer, C = c->n_embd, V = c->vocab_size;
  const int S = kv->n_slots, maxT = kv->max_T;
  PX_REQUIRE(kv->L == L && kv->C == C && kv->V == V, "px_gpt_kv_extend: cache of another model");
  PX_REQUIRE(M >= 1 && M <= S, "px_gpt_kv_extend: %d entries for %d slots", M, S);

  /* The rows of the call: entry j's new tokens are rows first_row[j] .. first_row[j+1]-1. */
  memset(kv->used, 0, (size_t)S);
  int R = 0;
  for (int j = 0; j < M; j++) {
    const int s = slots[j];
    PX_REQUIRE(s >= 0 && s < S && !kv->used[s],
               "px_gpt_kv_extend: slot %d (entry %d) is not "
               "a free slot of %d",
               s, j, S);
    PX_REQUIRE(n_new[j] >= 1 && R + n_new[j] <= kv->max_rows && kv->pos[s] + n_new[j] <= maxT,
               "px_gpt_kv_extend: entry %d adds %d tokens at position %d (rows %d of %d, "
               "positions %d)",
               j, n_new[j], kv->pos[s], R, kv->max_rows, maxT);
    kv->used[s] = 1;
    kv->first_row[j] = R;
    for (int i = 0; i < n_new[j]; i++, R++) {
      PX_REQUIRE(tokens[R] >= 0 && tokens[R] < V,
                 "px_gpt_kv_extend: token %d of entry %d is outside the vocabulary (%d)", tokens[R],
                 j, V);
      kv->row_tok[R] = tokens[R];
      kv->row_pos[R] = kv->pos[s] + i;
    }
  }
  kv->first_row[M] = R;

  /* The encoder: token and position embeddings, as px_encoder_forward. */
#pragma omp parallel for
  for (int r = 0; r < R; r++) {
    const float *wte_ix = p->wte + (size_t)kv->row_tok[r] * C;
    const float *wpe_t = p->wpe + (size_t)kv->row_pos[r] * C;
    float *x = kv->x + (size_t)r * C;
    for (int i = 0; i < C; i++) x[i] = wte_ix[i] + wpe_t[i];
  }

  /* The blocks, on the call's rows: the residual adds in place in x, one LayerNorm buffer. */
  px_kv_step step = {model, kv, slots, n_new, M};
  const px_gpt_attention_step attention = {px_kv_attention_step, &step};
  const px_gpt_block_acts block = {.in = kv->x,
                                   .ln1 = kv->ln,
                                   .ln1_mean = kv->mean,
                                   .ln1_rstd = kv->rstd,
                                   .qkv = kv->qkv,
                                   .atty = kv->atty,
                                   .residual2 = kv->x,
                                   .ln2 = kv->ln,
                                   .ln2_mean = kv->mean,
                                   .ln2_rstd = kv->rstd,
                                   .fch = kv->fch,
                                   .fch_gelu = kv->fch_gelu,
                                   .proj = kv->proj,
                                   .residual3 = kv->x};
  for (int l = 0; l < L; l++)
    px_gpt_block_forward(&block, model, l, &attention, px_matmul_decode_forward, R);

  /* The head, on each entry's last row only: lnf, then logits = x wte^T. */
  for (int j = 0; j < M; j++)
    memcpy(kv->last + (size_t)j * C, kv->x + (size_t)(kv->first_row[j + 1] - 1) * C,
           (size_t)C * sizeof(float));
  px_layernorm_forward(kv->last_ln, kv->last_mean, kv->last_rstd, kv->last, p->lnf_w, p->lnf_b, M,
                       C);
  PX_GPT_TIMED(model, PX_GPT_MATMUL,
               px_matmul_decode_forward(kv->logits, kv->last_ln, p->wte, NULL, M, C, V));
  for (int j = 0; j < M; j++) kv->pos[slots[j]] += n_new[j];
}
