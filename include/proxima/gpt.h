/*
 * gpt.h — the GPT-2 model of DESIGN.md section 3: the policy, its frozen reference, the value
 * model and the reward model are all this one transformer, with one of two heads.
 *
 * Memory: the parameters are ONE contiguous float32 buffer, and so are the gradients and each
 * Adam moment, all in the same layout, described by a table of named tensors (the names and
 * shapes of DESIGN.md section 6): one memset zeroes the gradients, one allreduce sums them, one
 * loop updates them, one dataset per tensor goes into a checkpoint. The activations live in one
 * arena sized once, at build time, for the largest batch (max_B sequences of max_T positions).
 *
 * Batches: B sequences right-padded to T positions, tokens [B,T] int32 with lengths [B]; the
 * positions past a sequence's length are padding (any token there is ignored), are never
 * attended, and give zero outputs. Positions count from each sequence's own start.
 *
 * A step: px_gpt_forward; then px_gpt_logprobs or px_gpt_crossentropy (LM head) or the values
 * (scalar head); px_gpt_zero_grad; px_gpt_backward with dL/d(log-probs or values); an optimizer
 * step (px_gpt_update). None of these is collective; threads are OpenMP's and BLIS's.
 */
#ifndef PROXIMA_GPT_H
#define PROXIMA_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"
#include "proxima/optim.h"

typedef enum px_gpt_head {
  PX_GPT_HEAD_LM = 0,    /* logits [V] per position through the tied token embedding wte */
  PX_GPT_HEAD_SCALAR = 1 /* one value per position: head_w [1,C] . x + head_b [1] */
} px_gpt_head;

typedef struct px_gpt_config {
  int vocab_size;  /* V: at least the tokenizer's n_ids (tokenizer.h) */
  int max_seq_len; /* T of wpe [T,C] */
  int n_layer;     /* L */
  int n_head;      /* NH, dividing n_embd */
  int n_embd;      /* C */
  px_gpt_head head;
} px_gpt_config;

/* Checks a configuration a user gave; PX_EINPUT with a message naming the field otherwise. */
px_status px_gpt_config_check(const px_gpt_config *config, px_error *err);

/* One named tensor of the parameter buffer (and of the gradient and moment buffers). */
typedef struct px_gpt_tensor {
  const char *name; /* "wte", "wpe", "ln1_w", ... as in DESIGN.md section 6 */
  int ndim;         /* 1 to 3 */
  size_t shape[3];  /* row-major, e.g. qkv_w {L, 3C, C} */
  size_t offset;    /* first element, in floats from the start of the buffer */
  size_t count;     /* number of elements, the product of the shape */
  int decay;        /* whether AdamW's weight decay applies (the matrices and embeddings) */
} px_gpt_tensor;

enum { PX_GPT_MAX_TENSORS = 18 };

/* Named views into one buffer of the parameter layout; head_w and head_b are NULL for the LM
 * head. Weights are [out, in] as in PyTorch's Linear. */
typedef struct px_gpt_params {
  float *wte;       /* [V,C] */
  float *wpe;       /* [T,C] */
  float *ln1_w;     /* [L,C] */
  float *ln1_b;     /* [L,C] */
  float *qkv_w;     /* [L,3C,C] */
  float *qkv_b;     /* [L,3C] */
  float *attproj_w; /* [L,C,C] */
  float *attproj_b; /* [L,C] */
  float *ln2_w;     /* [L,C] */
  float *ln2_b;     /* [L,C] */
  float *fc_w;      /* [L,4C,C] */
  float *fc_b;      /* [L,4C] */
  float *fcproj_w;  /* [L,C,4C] */
  float *fcproj_b;  /* [L,C] */
  float *lnf_w;     /* [C] */
  float *lnf_b;     /* [C] */
  float *head_w;    /* [1,C], scalar head only */
  float *head_b;    /* [1], scalar head only */
} px_gpt_params;

struct px_gpt_acts; /* the activation arena, private to gpt.c */

/* Where a model's time goes, for the benchmarks (bench_train): wall seconds and calls summed
 * per part of px_gpt_forward, px_gpt_backward_ex, px_gpt_update and px_gpt_kv_extend while
 * model->profile points to one. PX_GPT_MATMUL: the weight products (BLIS, with every bias
 * gradient and the biases they add: all but attproj's and fc's, added in the pass after);
 * PX_GPT_ATTENTION: the attention, forward or backward, training or KV cache (its own BLIS products
 * and softmax); PX_GPT_OPTIMIZER: AdamW. Whatever else a step takes (LayerNorm, GELU, residuals,
 * embeddings, the loss, memory clearing) is its wall time less these. The caller zeroes it; NULL,
 * the default, times nothing. */
typedef enum { PX_GPT_MATMUL, PX_GPT_ATTENTION, PX_GPT_OPTIMIZER, PX_GPT_PARTS } px_gpt_part;

typedef struct px_gpt_profile {
  double seconds[PX_GPT_PARTS];
  long calls[PX_GPT_PARTS];
} px_gpt_profile;

typedef struct px_gpt {
  px_gpt_config config;
  int n_tensors;                             /* 16 (LM head) or 18 (scalar head) */
  px_gpt_tensor tensors[PX_GPT_MAX_TENSORS]; /* in buffer order */
  size_t n_params;                           /* floats in each of params, grads, m, v */
  float *params;
  px_gpt_params p; /* views into params */
  float *grads;    /* NULL unless built trainable */
  px_gpt_params g; /* views into grads */
  float *m, *v;    /* Adam moments, NULL unless built trainable */
  int live_vocab;  /* the LM head's softmax spans logits [0, live_vocab) (px_gpt_set_live_vocab) */
  int max_B, max_T;
  int B, T; /* of the last forward */
  /* Outputs of the last px_gpt_forward (zero at padded positions), valid until the next:
   * logits [B,T,V] for the LM head, values [B,T] for the scalar head, NULL for the other. */
  const float *logits;
  const float *values;
  struct px_gpt_acts *acts;
  px_gpt_profile *profile; /* NULL (px_gpt_build's default) or the caller's timers, above */
} px_gpt;

/* Allocates the model for batches of up to max_B sequences of up to max_T positions
 * (max_T <= max_seq_len): the parameters (zeroed; see px_gpt_init), the activation arena, and,
 * when trainable, the gradients, the Adam moments (zeroed) and the backward's scratch.
 * The configuration must pass px_gpt_config_check. */
void px_gpt_build(px_gpt *model, const px_gpt_config *config, int max_B, int max_T, int trainable);

/* Limits the LM head's softmax (px_gpt_logprobs, its backward, generation's log-probs) to the
 * logits of ids 0 .. n-1, the ids a tokenizer can put in a sequence (px_tokenizer_softmax_span);
 * the rows of a wider embedding (padding for speed, PAD) then get no gradient and no
 * probability. 1 <= n <= vocab_size; px_gpt_build sets vocab_size. Not collective. */
void px_gpt_set_live_vocab(px_gpt *model, int n);

/* The bytes px_gpt_build allocates for this configuration and batch size: parameters (and,
 * trainable, gradients and Adam moments), the activation arena and the backward's scratch.
 * Not collective. */
double px_gpt_bytes(const px_gpt_config *config, int max_B, int max_T, int trainable);

/* PX_EINPUT, with the estimate and what the machine has, when px_gpt_bytes exceeds this
 * machine's physical memory: a configuration too large is refused before anything is
 * allocated. what names the model for the message. Not collective. */
px_status px_gpt_check_memory(const px_gpt_config *config, int max_B, int max_T, int trainable,
                              const char *what, px_error *err);

/* The number of parameters of a model of this configuration (which must pass
 * px_gpt_config_check), without building it. Not collective. */
size_t px_gpt_param_count(const px_gpt_config *config);
void px_gpt_free(px_gpt *model);

/* GPT-2's initialisation, a pure function of seed: every weight N(0, 0.02) drawn with Philox at
 * counter (tensor index, element index), the residual projections attproj_w and fcproj_w scaled
 * by 1/sqrt(2 n_layer), LayerNorm weights 1, biases 0, and for the scalar head
 * head_w N(0, 1/sqrt(C+1)), head_b 0. */
void px_gpt_init(px_gpt *model, uint64_t seed);

/* The tensor of that name, or NULL. */
const px_gpt_tensor *px_gpt_find_tensor(const px_gpt *model, const char *name);

/* Forward pass over tokens [B,T] with lengths [B] (1 <= lengths[b] <= T <= max_T, B <= max_B;
 * real tokens in [0, V)). Fills model->logits or model->values. */
void px_gpt_forward(px_gpt *model, const int32_t *tokens, const int32_t *lengths, int B, int T);

/* LM head, after px_gpt_forward: logprobs [B,T] = log softmax(logits / temperature)[targets]
 * at each real position with targets >= 0, and 0 elsewhere (targets [B,T], in [0,V) or < 0).
 * This is log pi(y_t) with the sampling temperature applied; px_gpt_backward then takes
 * dL/dlogprobs. logprobs may be NULL when only the backward is wanted. */
void px_gpt_logprobs(px_gpt *model, float *logprobs, const int32_t *targets, float temperature);

/* LM head, after px_gpt_forward: the masked mean cross-entropy at temperature 1,
 * sum_bt w_bt (-log p(targets_bt)) / sum_bt w_bt over real positions with targets >= 0, with
 * weights [B,T] (NULL: all 1), e.g. 1 on completion tokens only for SFT. Fills dlogprobs [B,T]
 * (may be NULL) with its gradient with respect to the log-probs, -w / sum w, to hand to
 * px_gpt_backward. 0 when the weights sum to 0. */
float px_gpt_crossentropy(px_gpt *model, float *dlogprobs, const int32_t *targets,
                          const float *weights);

/* Zeroes the gradients (one memset). Trainable models only. */
void px_gpt_zero_grad(px_gpt *model);

/* Backward pass of the last forward, accumulating into model->grads. dout [B,T] is dL/dlogprobs
 * of the last px_gpt_logprobs / px_gpt_crossentropy (LM head) or dL/dvalues (scalar head);
 * padded positions are ignored. Trainable models only. */
void px_gpt_backward(px_gpt *model, const float *dout);

/* A contiguous piece of the gradient buffer: count floats from offset. */
typedef struct px_gpt_span {
  size_t offset, count;
} px_gpt_span;

/* What px_gpt_backward_ex calls as parts of the gradient become final, so that a caller can
 * start reducing them while the backward goes on (trainer.c overlaps the allreduce this way).
 * ready(ctx, spans, n, last) hands over n spans of model->grads that this backward will not
 * write again: per block, top down, first the MLP half (ln2, fc, fcproj of that layer), then
 * the attention half (ln1, qkv, attproj); last (last = 1) the embeddings wte and wpe, lnf, and
 * the scalar head. Every element of the gradient is in exactly one span of one call. The
 * callback runs on the calling thread, outside any parallel region; it must not write the
 * spans' gradients, nor any part of the model. */
typedef struct px_gpt_grad_hook {
  void (*ready)(void *ctx, const px_gpt_span *spans, int n, int last);
  void *ctx;
} px_gpt_grad_hook;

/* px_gpt_backward, calling hook (may be NULL) as the gradient becomes final. The arithmetic is
 * px_gpt_backward's: the same gradients, bit for bit. */
void px_gpt_backward_ex(px_gpt *model, const float *dout, const px_gpt_grad_hook *hook);

/* One AdamW step on every tensor (weight decay on those with decay set); t = 1, 2, ... the
 * number of steps including this one. Trainable models only. */
void px_gpt_update(px_gpt *model, const px_adamw_config *cfg, float lr, int64_t t);

/* ---------------------------------------------------------------------------------------------
 * Generation with a KV cache (src/model/kvcache.c)
 *
 * The cache holds, for each of n_slots sequences, the keys and values of every layer at the
 * positions fed so far. px_gpt_kv_extend appends new tokens to some of the sequences at once:
 * its rows (all the new tokens of all the entries) go through each layer as ONE product, so a
 * decode step that adds one token to each of M active sequences reads each weight matrix once,
 * and a prefill is the same call with each prompt's tokens. The arithmetic is the training
 * forward's kernels for the embeddings, LayerNorm, GELU and residuals; the products are
 * px_matmul_decode_forward (a row's bits do not depend on the rows beside it, so a sequence's
 * logits are the same alone, batched or with its prompt split over calls), and the attention of
 * each (entry, head) is px_attention_forward's scores, row softmax and weighted sum over the
 * cached keys (as plain loops: one row per head is too thin for BLIS). Only rounding separates
 * the logits from those of px_gpt_forward over the same tokens: the products and the attention
 * sum in another order. LM head only.
 * ------------------------------------------------------------------------------------------- */

typedef struct px_gpt_kv {
  int n_slots, max_T; /* sequences held; positions per sequence (<= max_seq_len) */
  int max_rows;       /* new tokens per px_gpt_kv_extend, over all its entries */
  int L, C, V;
  float *k, *v;  /* [L, n_slots, n_head, max_T, C / n_head]: each head's keys in a row */
  int32_t *pos;  /* [n_slots]: positions cached, i.e. the position of the next token */
  float *logits; /* [n_slots, V]: of the last px_gpt_kv_extend, row j for its entry j */
  /* The extend's scratch, rows of the current call; last_* for the entries' last rows. */
  float *x, *ln, *qkv, *atty, *proj, *fch, *fch_gelu, *mean, *rstd;
  float *last, *last_ln, *last_mean, *last_rstd;
  int32_t *row_tok, *row_pos; /* [max_rows] */
  int32_t *first_row;         /* [n_slots + 1]: the entries' rows are first_row[j].. */
  uint8_t *used;              /* [n_slots]: slot taken in the current call */
} px_gpt_kv;

/* A cache of n_slots sequences of up to max_T positions (max_T <= the model's max_seq_len)
 * taking up to max_rows new tokens per call; every slot starts empty. */
void px_gpt_kv_build(px_gpt_kv *kv, const px_gpt *model, int n_slots, int max_T, int max_rows);
void px_gpt_kv_free(px_gpt_kv *kv);

/* The bytes px_gpt_kv_build allocates for a model of this configuration and these sizes. */
double px_gpt_kv_bytes(const px_gpt_config *config, int n_slots, int max_T, int max_rows);

/* Empties a slot (its next token goes to position 0). */
void px_gpt_kv_reset(px_gpt_kv *kv, int slot);

/* Feeds M entries: entry j appends n_new[j] >= 1 tokens to sequence slots[j] (distinct slots)
 * at positions pos[slot] .. pos[slot] + n_new[j] - 1 (< max_T); tokens holds the entries' new
 * tokens end to end (sum of n_new <= max_rows). Fills kv->logits row j with the logits after
 * entry j's last new token, and advances pos. Not collective; threads as the forward's. */
void px_gpt_kv_extend(const px_gpt *model, px_gpt_kv *kv, int M, const int *slots,
                      const int32_t *n_new, const int32_t *tokens);

#endif
