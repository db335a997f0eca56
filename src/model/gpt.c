/*
 * gpt.c — the GPT-2 model (see gpt.h): the parameter table and its one buffer, the activation
 * arena, initialisation, and the forward and backward passes as a sequence of kernel calls
 * (kernels.c). Pre-LayerNorm blocks: x += attn(ln1(x)); x += mlp(ln2(x)); then lnf and the head.
 * The blocks' forward is block.h's, which the KV cache (kvcache.c) runs too.
 */
#include "proxima/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "profile.h"
#include "proxima/kernels.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"

/* ---------------------------------------------------------------------------------------------
 * Configuration and the parameter table
 * ------------------------------------------------------------------------------------------- */

px_status px_gpt_config_check(const px_gpt_config *c, px_error *err) {
  /* That the tokenizer's ids fit is px_tokenizer_check_vocab's to say: the model knows none. */
  if (c->vocab_size < 2 || c->vocab_size > (1 << 20))
    return px_error_set(err, PX_EINPUT, "model vocab_size is %d: expected 2 to %d", c->vocab_size,
                        1 << 20);
  if (c->max_seq_len < 1 || c->max_seq_len > (1 << 16))
    return px_error_set(err, PX_EINPUT, "model max_seq_len is %d: expected 1 to %d", c->max_seq_len,
                        1 << 16);
  if (c->n_layer < 1 || c->n_layer > 1024)
    return px_error_set(err, PX_EINPUT, "model n_layer is %d: expected 1 to 1024", c->n_layer);
  if (c->n_embd < 1 || c->n_embd > (1 << 16))
    return px_error_set(err, PX_EINPUT, "model n_embd is %d: expected 1 to %d", c->n_embd, 1 << 16);
  if (c->n_head < 1 || c->n_embd % c->n_head != 0)
    return px_error_set(err, PX_EINPUT,
                        "model n_head is %d: expected a divisor of n_embd (%d), at least 1",
                        c->n_head, c->n_embd);
  if (c->head != PX_GPT_HEAD_LM && c->head != PX_GPT_HEAD_SCALAR)
    return px_error_set(err, PX_EINPUT, "model head is %d: expected lm or scalar", (int)c->head);
  return PX_OK;
}

static void px_add_tensor(px_gpt *m, const char *name, int decay, int ndim, size_t d0, size_t d1,
                          size_t d2) {
  px_gpt_tensor *t = &m->tensors[m->n_tensors++];
  size_t dims[3] = {d0, d1, d2};
  t->name = name;
  t->ndim = ndim;
  t->count = 1;
  for (int i = 0; i < 3; i++) {
    t->shape[i] = i < ndim ? dims[i] : 0;
    if (i < ndim) t->count *= dims[i];
  }
  t->offset = m->n_params;
  t->decay = decay;
  m->n_params += t->count;
}

/* The table of DESIGN.md section 6, in buffer order. */
static void px_fill_table(px_gpt *m) {
  size_t V = m->config.vocab_size, T = m->config.max_seq_len, L = m->config.n_layer;
  size_t C = m->config.n_embd;
  m->n_tensors = 0;
  m->n_params = 0;
  px_add_tensor(m, "wte", 1, 2, V, C, 0);
  px_add_tensor(m, "wpe", 1, 2, T, C, 0);
  px_add_tensor(m, "ln1_w", 0, 2, L, C, 0);
  px_add_tensor(m, "ln1_b", 0, 2, L, C, 0);
  px_add_tensor(m, "qkv_w", 1, 3, L, 3 * C, C);
  px_add_tensor(m, "qkv_b", 0, 2, L, 3 * C, 0);
  px_add_tensor(m, "attproj_w", 1, 3, L, C, C);
  px_add_tensor(m, "attproj_b", 0, 2, L, C, 0);
  px_add_tensor(m, "ln2_w", 0, 2, L, C, 0);
  px_add_tensor(m, "ln2_b", 0, 2, L, C, 0);
  px_add_tensor(m, "fc_w", 1, 3, L, 4 * C, C);
  px_add_tensor(m, "fc_b", 0, 2, L, 4 * C, 0);
  px_add_tensor(m, "fcproj_w", 1, 3, L, C, 4 * C);
  px_add_tensor(m, "fcproj_b", 0, 2, L, C, 0);
  px_add_tensor(m, "lnf_w", 0, 1, C, 0, 0);
  px_add_tensor(m, "lnf_b", 0, 1, C, 0, 0);
  if (m->config.head == PX_GPT_HEAD_SCALAR) {
    px_add_tensor(m, "head_w", 1, 2, 1, C, 0);
    px_add_tensor(m, "head_b", 0, 1, 1, 0, 0);
  }
}

size_t px_gpt_param_count(const px_gpt_config *config) {
  px_gpt m;
  m.config = *config;
  px_fill_table(&m);
  return m.n_params;
}

/* Points the named views at a buffer of the parameter layout (table order = struct order). */
static void px_point_params(px_gpt_params *v, float *base, const px_gpt *m) {
  float **views[PX_GPT_MAX_TENSORS] = {
      &v->wte,       &v->wpe,       &v->ln1_w, &v->ln1_b, &v->qkv_w,  &v->qkv_b,
      &v->attproj_w, &v->attproj_b, &v->ln2_w, &v->ln2_b, &v->fc_w,   &v->fc_b,
      &v->fcproj_w,  &v->fcproj_b,  &v->lnf_w, &v->lnf_b, &v->head_w, &v->head_b};
  for (int i = 0; i < PX_GPT_MAX_TENSORS; i++)
    *views[i] = base && i < m->n_tensors ? base + m->tensors[i].offset : NULL;
}

const px_gpt_tensor *px_gpt_find_tensor(const px_gpt *model, const char *name) {
  for (int i = 0; i < model->n_tensors; i++)
    if (strcmp(model->tensors[i].name, name) == 0) return &model->tensors[i];
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The activation arena
 * ------------------------------------------------------------------------------------------- */

struct px_gpt_acts {
  float *arena, *grad_arena; /* the forward's activations; the backward's scratch */
  int32_t *tokens;           /* [maxB,maxT], of the last forward */
  int32_t *lengths;          /* [maxB] */
  int32_t *targets;          /* [maxB,maxT]: of the last px_gpt_logprobs, -1 where none */
  float temperature;         /* of the last px_gpt_logprobs */
  int forward_done, logprobs_done;
  /* Views for the current (B,T), N = B*T; per-layer arrays hold L slices. */
  float *encoded;                   /* (N,C) */
  float *ln1, *ln1_mean, *ln1_rstd; /* (L,N,C), (L,N), (L,N) */
  float *qkv;                       /* (L,N,3C) */
  float *atty;                      /* (L,N,C) */
  float *att;                       /* (L,B,NH,T,T) */
  float *residual2;                 /* (L,N,C) */
  float *ln2, *ln2_mean, *ln2_rstd; /* (L,N,C), (L,N), (L,N) */
  float *fch, *fch_gelu;            /* (L,N,4C) */
  float *residual3;                 /* (L,N,C) */
  float *proj; /* (N,C): attproj, then fcproj; only the residual add reads them */
  float *lnf, *lnf_mean, *lnf_rstd; /* (N,C), (N), (N) */
  float *out;                       /* logits (N,V) or values (N) */
  float *probs;                     /* (N,V), LM head */
  float *losses;                    /* (N): -log-probs of the targets, LM head */
  /* The backward's scratch: one layer's worth, reused from the top layer down, and the
   * gradient of the residual stream, which flows through every block unchanged (a residual
   * connection passes its gradient on as it is) and gathers each branch's contribution. */
  float *dres, *dln, *datty; /* (N,C) */
  float *dqkv;               /* (N,3C) */
  float *dfch, *dfch_gelu;   /* (N,4C) */
  float *dlnf;               /* (N,C) */
  float *dhead;              /* dlogits (N,V) or dvalues (N) */
  float *dlosses;            /* (N) */
};

static float *px_take(float *base, size_t *offset, size_t count) {
  float *p = base ? base + *offset : NULL;
  *offset += count;
  return p;
}

/* Lays out the forward arena for (B,T) at base (NULL: just counts); returns its size in floats.
 * Every size grows with B and T, so the layout of any batch fits the arena of the largest. */
static size_t px_layout_acts(struct px_gpt_acts *a, const px_gpt_config *c, int B, int T,
                             float *base) {
  size_t N = (size_t)B * T, L = c->n_layer, C = c->n_embd, V = c->vocab_size;
  size_t NH = c->n_head, off = 0;
  int lm = c->head == PX_GPT_HEAD_LM;
  a->encoded = px_take(base, &off, N * C);
  a->ln1 = px_take(base, &off, L * N * C);
  a->ln1_mean = px_take(base, &off, L * N);
  a->ln1_rstd = px_take(base, &off, L * N);
  a->qkv = px_take(base, &off, L * N * 3 * C);
  a->atty = px_take(base, &off, L * N * C);
  a->att = px_take(base, &off, L * B * NH * (size_t)T * T);
  a->residual2 = px_take(base, &off, L * N * C);
  a->ln2 = px_take(base, &off, L * N * C);
  a->ln2_mean = px_take(base, &off, L * N);
  a->ln2_rstd = px_take(base, &off, L * N);
  a->fch = px_take(base, &off, L * N * 4 * C);
  a->fch_gelu = px_take(base, &off, L * N * 4 * C);
  a->proj = px_take(base, &off, N * C);
  a->residual3 = px_take(base, &off, L * N * C);
  a->lnf = px_take(base, &off, N * C);
  a->lnf_mean = px_take(base, &off, N);
  a->lnf_rstd = px_take(base, &off, N);
  a->out = px_take(base, &off, lm ? N * V : N);
  a->probs = px_take(base, &off, lm ? N * V : 0);
  a->losses = px_take(base, &off, N);
  return off;
}

static size_t px_layout_grads(struct px_gpt_acts *a, const px_gpt_config *c, int B, int T,
                              float *base) {
  size_t N = (size_t)B * T, C = c->n_embd, V = c->vocab_size, off = 0;
  a->dres = px_take(base, &off, N * C);
  a->dln = px_take(base, &off, N * C);
  a->datty = px_take(base, &off, N * C);
  a->dqkv = px_take(base, &off, N * 3 * C);
  a->dfch = px_take(base, &off, N * 4 * C);
  a->dfch_gelu = px_take(base, &off, N * 4 * C);
  a->dlnf = px_take(base, &off, N * C);
  a->dhead = px_take(base, &off, c->head == PX_GPT_HEAD_LM ? N * V : N);
  a->dlosses = px_take(base, &off, N);
  return off;
}

/* ---------------------------------------------------------------------------------------------
 * Build, free, initialise
 * ------------------------------------------------------------------------------------------- */

double px_gpt_bytes(const px_gpt_config *config, int max_B, int max_T, int trainable) {
  /* px_gpt_build's arrays: params (and grads, m, v), the arenas, then tokens, targets, lengths. */
  struct px_gpt_acts a;
  double params = px_calloc_large_bytes(4.0 * (double)px_gpt_param_count(config));
  double acts = px_calloc_large_bytes(4.0 * (double)px_layout_acts(&a, config, max_B, max_T, NULL));
  double grads =
      trainable
          ? px_calloc_large_bytes(4.0 * (double)px_layout_grads(&a, config, max_B, max_T, NULL))
          : 0;
  return params * (trainable ? 4 : 1) + acts + grads + 8.0 * max_B * (double)max_T + 4.0 * max_B;
}

px_status px_gpt_check_memory(const px_gpt_config *config, int max_B, int max_T, int trainable,
                              const char *what, px_error *err) {
  double need = px_gpt_bytes(config, max_B, max_T, trainable);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
  if (have > 0 && need > have)
    return px_error_set(err, PX_EINPUT,
                        "%s: a model of %d layers x %d wide (vocab %d, T %d) %s in batches of %d "
                        "x %d needs about %.3g GiB per rank (parameters%s and activations); this "
                        "machine has %.3g GiB: use a smaller model or a smaller micro_batch",
                        what, config->n_layer, config->n_embd, config->vocab_size,
                        config->max_seq_len, trainable ? "trained" : "run", max_B, max_T,
                        need / 1073741824.0, trainable ? ", gradients, Adam moments" : "",
                        have / 1073741824.0);
  return PX_OK;
}

void px_gpt_set_live_vocab(px_gpt *model, int n) {
  PX_REQUIRE(n >= 1 && n <= model->config.vocab_size,
             "px_gpt_set_live_vocab: %d of a vocabulary of %d", n, model->config.vocab_size);
  model->live_vocab = n;
}

void px_gpt_build(px_gpt *model, const px_gpt_config *config, int max_B, int max_T, int trainable) {
  px_error err;
  PX_REQUIRE(px_gpt_config_check(config, &err) == PX_OK, "bad model configuration: %s", err.msg);
  PX_REQUIRE(max_B >= 1 && max_T >= 1 && max_T <= config->max_seq_len,
             "px_gpt_build: batch %d x %d does not fit a model of max_seq_len %d", max_B, max_T,
             config->max_seq_len);
  memset(model, 0, sizeof *model);
  model->config = *config;
  model->live_vocab = config->vocab_size;
  model->max_B = max_B;
  model->max_T = max_T;
  px_fill_table(model);
  model->params = px_calloc_large(model->n_params, sizeof(float));
  px_point_params(&model->p, model->params, model);
  if (trainable) {
    model->grads = px_calloc_large(model->n_params, sizeof(float));
    model->m = px_calloc_large(model->n_params, sizeof(float));
    model->v = px_calloc_large(model->n_params, sizeof(float));
  }
  px_point_params(&model->g, model->grads, model);

  struct px_gpt_acts *a = px_calloc(1, sizeof *a);
  a->arena = px_calloc_large(px_layout_acts(a, config, max_B, max_T, NULL), sizeof(float));
  if (trainable)
    a->grad_arena = px_calloc_large(px_layout_grads(a, config, max_B, max_T, NULL), sizeof(float));
  a->tokens = px_calloc((size_t)max_B * max_T, sizeof(int32_t));
  a->targets = px_calloc((size_t)max_B * max_T, sizeof(int32_t));
  a->lengths = px_calloc((size_t)max_B, sizeof(int32_t));
  model->acts = a;
}

void px_gpt_free(px_gpt *model) {
  if (model->acts) {
    free(model->acts->arena);
    free(model->acts->grad_arena);
    free(model->acts->tokens);
    free(model->acts->targets);
    free(model->acts->lengths);
    free(model->acts);
  }
  free(model->params);
  free(model->grads);
  free(model->m);
  free(model->v);
  memset(model, 0, sizeof *model);
}

void px_gpt_init(px_gpt *model, uint64_t seed) {
  const px_gpt_config *c = &model->config;
  const double residual_scale = 1.0 / sqrt(2.0 * c->n_layer);
  for (int ti = 0; ti < model->n_tensors; ti++) {
    const px_gpt_tensor *t = &model->tensors[ti];
    float *w = model->params + t->offset;
    size_t len = strlen(t->name);
    double std = 0.02, fill = 0.0;
    if (strcmp(t->name + len - 2, "_b") == 0) {
      std = 0.0; /* every bias, LayerNorm's too */
    } else if (strncmp(t->name, "ln", 2) == 0) {
      std = 0.0, fill = 1.0; /* ln1_w, ln2_w, lnf_w */
    } else if (strcmp(t->name, "attproj_w") == 0 || strcmp(t->name, "fcproj_w") == 0) {
      std = 0.02 * residual_scale;
    } else if (strcmp(t->name, "head_w") == 0) {
      std = 1.0 / sqrt(c->n_embd + 1.0);
    }
    const size_t n = t->count;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
      /* A pure function of (seed, tensor, element): the same weights on every rank. */
      px_rng_ctr ctr = {{(uint32_t)ti, (uint32_t)i, (uint32_t)((uint64_t)i >> 32), 0x1u}};
      w[i] = std > 0.0 ? (float)(std * px_rng_normal(seed, ctr)) : (float)fill;
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * Forward
 * ------------------------------------------------------------------------------------------- */

/* The blocks' attention step (block.h) in the training forward: layer l's over the batch of the
 * current forward, its probabilities kept in att for the backward. ctx is the model. */
static void px_gpt_attention_forward(void *ctx, int l, float *atty, const float *qkv) {
  const px_gpt *model = ctx;
  const struct px_gpt_acts *a = model->acts;
  const int B = model->B, T = model->T, C = model->config.n_embd, NH = model->config.n_head;
  float *att = a->att + (size_t)l * B * NH * T * T;
  PX_GPT_TIMED(model, PX_GPT_ATTENTION,
               px_attention_forward(atty, att, qkv, a->lengths, B, T, C, NH));
}

void px_gpt_forward(px_gpt *model, const int32_t *tokens, const int32_t *lengths, int B, int T) {
  const px_gpt_config *c = &model->config;
  struct px_gpt_acts *a = model->acts;
  const int L = c->n_layer, C = c->n_embd, V = c->vocab_size;
  PX_REQUIRE(B >= 1 && B <= model->max_B && T >= 1 && T <= model->max_T,
             "px_gpt_forward: batch %d x %d exceeds the arena's %d x %d", B, T, model->max_B,
             model->max_T);
  for (int b = 0; b < B; b++) {
    PX_REQUIRE(lengths[b] >= 1 && lengths[b] <= T,
               "px_gpt_forward: length %d of sequence %d "
               "is not in [1, %d]",
               lengths[b], b, T);
    for (int t = 0; t < lengths[b]; t++)
      PX_REQUIRE(tokens[b * T + t] >= 0 && tokens[b * T + t] < V,
                 "px_gpt_forward: token %d at (%d, %d) is outside the vocabulary (%d)",
                 tokens[b * T + t], b, t, V);
  }
  model->B = B;
  model->T = T;
  memcpy(a->tokens, tokens, (size_t)B * T * sizeof(int32_t));
  memcpy(a->lengths, lengths, (size_t)B * sizeof(int32_t));
  px_layout_acts(a, c, B, T, a->arena);
  const px_gpt_params *p = &model->p;
  const int N = B * T;
  const size_t NC = (size_t)N * C, NC3 = 3 * NC, NC4 = 4 * NC;

  px_encoder_forward(a->encoded, a->tokens, a->lengths, p->wte, p->wpe, B, T, C);
  const px_gpt_attention_step attention = {px_gpt_attention_forward, model};
  const float *residual = a->encoded;
  for (int l = 0; l < L; l++) {
    const size_t lN = (size_t)l * N;
    const px_gpt_block_acts block = {.in = residual,
                                     .ln1 = a->ln1 + l * NC,
                                     .ln1_mean = a->ln1_mean + lN,
                                     .ln1_rstd = a->ln1_rstd + lN,
                                     .qkv = a->qkv + l * NC3,
                                     .atty = a->atty + l * NC,
                                     .residual2 = a->residual2 + l * NC,
                                     .ln2 = a->ln2 + l * NC,
                                     .ln2_mean = a->ln2_mean + lN,
                                     .ln2_rstd = a->ln2_rstd + lN,
                                     .fch = a->fch + l * NC4,
                                     .fch_gelu = a->fch_gelu + l * NC4,
                                     .proj = a->proj,
                                     .residual3 = a->residual3 + l * NC};
    px_gpt_block_forward(&block, model, l, &attention, px_matmul_forward, N);
    residual = block.residual3;
  }
  px_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, residual, p->lnf_w, p->lnf_b, N, C);

  /* The head; its outputs at padded positions are set to zero. */
  const int lm = c->head == PX_GPT_HEAD_LM;
  const int OC = lm ? V : 1;
  if (lm)
    PX_GPT_TIMED(
        model, PX_GPT_MATMUL,
        px_matmul_forward(a->out, a->lnf, p->wte, NULL, N, C, V)); /* tied: logits = x wte^T */
  else
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_forward(a->out, a->lnf, p->head_w, p->head_b, N, C, 1));
  for (int b = 0; b < B; b++)
    memset(a->out + ((size_t)b * T + lengths[b]) * OC, 0,
           (size_t)(T - lengths[b]) * OC * sizeof(float));
  model->logits = lm ? a->out : NULL;
  model->values = lm ? NULL : a->out;
  a->forward_done = 1;
  a->logprobs_done = 0;
}

/* ---------------------------------------------------------------------------------------------
 * The LM head's log-probs and loss
 * ------------------------------------------------------------------------------------------- */

void px_gpt_logprobs(px_gpt *model, float *logprobs, const int32_t *targets, float temperature) {
  struct px_gpt_acts *a = model->acts;
  const int B = model->B, T = model->T, V = model->config.vocab_size;
  PX_REQUIRE(model->config.head == PX_GPT_HEAD_LM && a->forward_done,
             "px_gpt_logprobs needs an LM head and a forward pass");
  PX_REQUIRE(temperature > 0.0f && isfinite(temperature), "px_gpt_logprobs: temperature %g",
             (double)temperature);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int32_t y = targets[b * T + t];
      PX_REQUIRE(y < model->live_vocab,
                 "px_gpt_logprobs: target %d at (%d, %d) is outside the vocabulary (%d of %d)", y,
                 b, t, model->live_vocab, V);
      a->targets[b * T + t] = t < a->lengths[b] && y >= 0 ? y : -1;
    }
  px_crossentropy_forward(a->losses, a->probs, a->out, a->targets, temperature, B * T, V,
                          model->live_vocab);
  if (logprobs)
    for (int i = 0; i < B * T; i++) logprobs[i] = a->targets[i] >= 0 ? -a->losses[i] : 0.0f;
  a->temperature = temperature;
  a->logprobs_done = 1;
}

float px_gpt_crossentropy(px_gpt *model, float *dlogprobs, const int32_t *targets,
                          const float *weights) {
  struct px_gpt_acts *a = model->acts;
  px_gpt_logprobs(model, NULL, targets, 1.0f);
  const int N = model->B * model->T;
  double wsum = 0.0, lsum = 0.0; /* in double and in order: the same bits on every run */
  for (int i = 0; i < N; i++) {
    if (a->targets[i] < 0) continue;
    double w = weights ? weights[i] : 1.0;
    wsum += w;
    lsum += w * a->losses[i];
  }
  if (dlogprobs)
    for (int i = 0; i < N; i++) {
      double w = a->targets[i] < 0 || wsum == 0.0 ? 0.0 : weights ? weights[i] : 1.0;
      dlogprobs[i] = wsum == 0.0 ? 0.0f : (float)(-w / wsum);
    }
  return wsum == 0.0 ? 0.0f : (float)(lsum / wsum);
}

/* ---------------------------------------------------------------------------------------------
 * Backward
 * ------------------------------------------------------------------------------------------- */

void px_gpt_zero_grad(px_gpt *model) {
  PX_REQUIRE(model->grads, "px_gpt_zero_grad: the model was built without gradients");
  px_zero(model->grads, model->n_params);
}

/* Hands the hook layer l's slices of the per-layer tensors [L, ...] that are the table's
 * entries first..last. */
static void px_grad_ready(const px_gpt *m, const px_gpt_grad_hook *hook, int l, int first,
                          int last) {
  if (!hook || !hook->ready) return;
  px_gpt_span spans[PX_GPT_MAX_TENSORS];
  int n = 0;
  for (int i = first; i <= last; i++) {
    size_t per = m->tensors[i].count / (size_t)m->config.n_layer;
    spans[n++] = (px_gpt_span){m->tensors[i].offset + (size_t)l * per, per};
  }
  hook->ready(hook->ctx, spans, n, 0);
}

/* Entries of the table (px_fill_table's order) by what makes them final in the backward. */
enum {
  PX_T_WTE = 0,
  PX_T_WPE = 1,
  PX_T_ATTN_FIRST = 2,
  PX_T_ATTN_LAST = 7, /* ln1_w .. attproj_b */
  PX_T_MLP_FIRST = 8,
  PX_T_MLP_LAST = 13, /* ln2_w .. fcproj_b */
  PX_T_TOP_FIRST = 14 /* lnf_w, lnf_b, head_w, head_b */
};

void px_gpt_backward(px_gpt *model, const float *dout) { px_gpt_backward_ex(model, dout, NULL); }

void px_gpt_backward_ex(px_gpt *model, const float *dout, const px_gpt_grad_hook *hook) {
  const px_gpt_config *c = &model->config;
  struct px_gpt_acts *a = model->acts;
  const int lm = c->head == PX_GPT_HEAD_LM;
  PX_REQUIRE(model->grads, "px_gpt_backward: the model was built without gradients");
  PX_REQUIRE(a->forward_done && (!lm || a->logprobs_done), "px_gpt_backward needs a forward pass%s",
             lm ? " and px_gpt_logprobs" : "");
  const int B = model->B, T = model->T, N = B * T;
  const int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
  const size_t NC = (size_t)N * C, NC3 = 3 * NC, NC4 = 4 * NC, NHTT = (size_t)B * NH * T * T;
  const px_gpt_params *p = &model->p, *g = &model->g;
  const size_t grad_count = px_layout_grads(a, c, B, T, a->grad_arena);
  /* Zeroed: what the head and the top LayerNorm add into (dres, and dlnf to the end). The
   * per-layer scratch gradients are written whole, or zeroed, where the loop reaches them. */
  const size_t top_at = (size_t)(a->dlnf - a->grad_arena);
  px_zero(a->dres, NC);
  px_zero(a->dlnf, grad_count - top_at);

  /* The head, from dL/d(log-prob) = -dL/d(loss) or dL/d(value); padding contributes nothing. */
  if (lm) {
    for (int i = 0; i < N; i++) a->dlosses[i] = a->targets[i] >= 0 ? -dout[i] : 0.0f;
    px_crossentropy_backward(a->dhead, a->dlosses, a->probs, a->targets, a->temperature, N, V,
                             model->live_vocab);
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_backward(a->dlnf, g->wte, NULL, a->dhead, a->lnf, p->wte, N, C, V));
  } else {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < a->lengths[b]; t++) a->dhead[b * T + t] = dout[b * T + t];
    PX_GPT_TIMED(
        model, PX_GPT_MATMUL,
        px_matmul_backward(a->dlnf, g->head_w, g->head_b, a->dhead, a->lnf, p->head_w, N, C, 1));
  }
  const float *top = L > 0 ? a->residual3 + (size_t)(L - 1) * NC : a->encoded;
  px_layernorm_backward(a->dres, g->lnf_w, g->lnf_b, a->dlnf, top, p->lnf_w, a->lnf_mean,
                        a->lnf_rstd, N, C);

  /* The blocks, top down. a->dres holds dL/d(residual stream) at the block's output. */
  for (int l = L - 1; l >= 0; l--) {
    const size_t lC = (size_t)l * C, lN = (size_t)l * N;
    const float *residual = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * NC;
    const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * NC3, *atty = a->atty + l * NC;
    const float *att = a->att + l * NHTT, *residual2 = a->residual2 + l * NC;
    const float *ln2 = a->ln2 + l * NC, *fch = a->fch + l * NC4;
    const float *fch_gelu = a->fch_gelu + l * NC4;

    /* residual3 = residual2 + mlp(ln2(residual2)) */
    /* The _set kernels write the layer's scratch gradients whole: no zeroing first. */
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_backward_set(a->dfch_gelu, g->fcproj_w + 4 * lC * C, g->fcproj_b + lC,
                                        a->dres, fch_gelu, p->fcproj_w + 4 * lC * C, N, 4 * C, C));
    px_gelu_backward_set(a->dfch, fch, a->dfch_gelu, (long)NC4);
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_backward_set(a->dln, g->fc_w + 4 * lC * C, g->fc_b + 4 * lC, a->dfch,
                                        ln2, p->fc_w + 4 * lC * C, N, C, 4 * C));
    px_layernorm_backward(a->dres, g->ln2_w + lC, g->ln2_b + lC, a->dln, residual2, p->ln2_w + lC,
                          a->ln2_mean + lN, a->ln2_rstd + lN, N, C);
    px_grad_ready(model, hook, l, PX_T_MLP_FIRST, PX_T_MLP_LAST);

    /* residual2 = residual + attproj(attention(qkv(ln1(residual)))) */
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_backward_set(a->datty, g->attproj_w + lC * C, g->attproj_b + lC, a->dres,
                                        atty, p->attproj_w + lC * C, N, C, C));
    PX_GPT_TIMED(model, PX_GPT_ATTENTION,
                 px_attention_backward_set(a->dqkv, a->datty, qkv, att, a->lengths, B, T, C, NH));
    PX_GPT_TIMED(model, PX_GPT_MATMUL,
                 px_matmul_backward_set(a->dln, g->qkv_w + 3 * lC * C, g->qkv_b + 3 * lC, a->dqkv,
                                        ln1, p->qkv_w + 3 * lC * C, N, C, 3 * C));
    px_layernorm_backward(a->dres, g->ln1_w + lC, g->ln1_b + lC, a->dln, residual, p->ln1_w + lC,
                          a->ln1_mean + lN, a->ln1_rstd + lN, N, C);
    px_grad_ready(model, hook, l, PX_T_ATTN_FIRST, PX_T_ATTN_LAST);
  }
  /* wte is the tied head's matrix too: final only now. */
  px_encoder_backward(g->wte, g->wpe, a->dres, a->tokens, a->lengths, B, T, C);
  if (hook && hook->ready) {
    px_gpt_span rest[PX_GPT_MAX_TENSORS];
    int n = 0;
    for (int i = PX_T_WTE; i <= PX_T_WPE; i++)
      rest[n++] = (px_gpt_span){model->tensors[i].offset, model->tensors[i].count};
    for (int i = PX_T_TOP_FIRST; i < model->n_tensors; i++)
      rest[n++] = (px_gpt_span){model->tensors[i].offset, model->tensors[i].count};
    hook->ready(hook->ctx, rest, n, 1);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Update
 * ------------------------------------------------------------------------------------------- */

void px_gpt_update(px_gpt *model, const px_adamw_config *cfg, float lr, int64_t t) {
  PX_REQUIRE(model->grads, "px_gpt_update: the model was built without gradients");
  for (int i = 0; i < model->n_tensors; i++) {
    const px_gpt_tensor *x = &model->tensors[i];
    PX_GPT_TIMED(model, PX_GPT_OPTIMIZER,
                 px_optim_adamw_step(model->params + x->offset, model->m + x->offset,
                                     model->v + x->offset, model->grads + x->offset, x->count, cfg,
                                     lr, x->decay, t));
  }
}
