/*
 * batch.c — records to padded batches; see batch.h.
 */
#include "proxima/batch.h"

#include <stdlib.h>
#include <string.h>

#include "proxima/error.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"

void px_batch_build(px_batch *b, const px_tokenizer *tok, int cap_B, int cap_T) {
  memset(b, 0, sizeof *b);
  b->pad = tok->pad, b->bos = tok->bos, b->eos = tok->eos;
  b->cap_B = cap_B;
  b->cap_T = cap_T;
  size_t n = (size_t)cap_B * (size_t)cap_T;
  b->tokens = px_malloc(n * sizeof *b->tokens);
  b->targets = px_malloc(n * sizeof *b->targets);
  b->weights = px_malloc(n * sizeof *b->weights);
  b->lengths = px_malloc((size_t)cap_B * sizeof *b->lengths);
}

void px_batch_free(px_batch *b) {
  free(b->tokens);
  free(b->targets);
  free(b->weights);
  free(b->lengths);
  memset(b, 0, sizeof *b);
}

void px_batch_clear(px_batch *b) { b->B = b->T = 0; }

float px_batch_add_lm(px_batch *b, const px_dataset *ds, int64_t i) {
  PX_REQUIRE(b->B < b->cap_B, "batch full (%d rows)", b->cap_B);
  int64_t np = 0, nc = 0;
  const int32_t *prompt = px_dataset_row(ds, 0, i, &np);
  const int32_t *rest = ds->kind == PX_DATA_SFT ? px_dataset_row(ds, 1, i, &nc) : NULL;
  /* the sequence is BOS prompt rest EOS: n = np + nc + 2 tokens, n - 1 input positions */
  int64_t n = np + nc + 2, len = n - 1;
  if (len > b->cap_T) len = b->cap_T, b->truncated++;
  int32_t *tok = b->tokens + (size_t)b->B * b->cap_T;
  int32_t *tgt = b->targets + (size_t)b->B * b->cap_T;
  float *w = b->weights + (size_t)b->B * b->cap_T;
  float sum = 0;
  for (int64_t t = 0; t < b->cap_T; t++) {
    if (t >= len) {
      tok[t] = b->pad, tgt[t] = -1, w[t] = 0;
      continue;
    }
    /* token at sequence position t, and the one after it */
    for (int k = 0; k < 2; k++) {
      int64_t s = t + k;
      int32_t v = s == 0         ? b->bos
                  : s <= np      ? prompt[s - 1]
                  : s <= np + nc ? rest[s - 1 - np]
                                 : b->eos;
      if (k == 0)
        tok[t] = v;
      else
        tgt[t] = v;
    }
    /* sft: the loss is on the completion and its EOS, the targets at positions t >= np */
    w[t] = ds->kind == PX_DATA_SFT && t + 1 <= np ? 0.0f : 1.0f;
    sum += w[t];
  }
  b->lengths[b->B++] = (int32_t)len;
  if (len > b->T) b->T = (int)len;
  return sum;
}

int px_batch_add_scored(px_batch *b, const int32_t *prompt, int64_t np, const int32_t *response,
                        int64_t nr) {
  PX_REQUIRE(b->B < b->cap_B, "batch full (%d rows)", b->cap_B);
  int64_t len = np + nr + 2;
  if (len > b->cap_T) return -1;
  int32_t *tok = b->tokens + (size_t)b->B * b->cap_T;
  int32_t *tgt = b->targets + (size_t)b->B * b->cap_T;
  float *w = b->weights + (size_t)b->B * b->cap_T;
  tok[0] = b->bos;
  memcpy(tok + 1, prompt, (size_t)np * sizeof *tok);
  memcpy(tok + 1 + np, response, (size_t)nr * sizeof *tok);
  tok[len - 1] = b->eos;
  for (int64_t t = len; t < b->cap_T; t++) tok[t] = b->pad;
  for (int64_t t = 0; t < b->cap_T; t++) tgt[t] = -1, w[t] = 0;
  b->lengths[b->B++] = (int32_t)len;
  if (len > b->T) b->T = (int)len;
  return 0;
}

void px_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint32_t stream, uint32_t epoch) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    px_rng_ctr c = {{stream, epoch, (uint32_t)i, (uint32_t)(i >> 32)}};
    int64_t j = (int64_t)px_rng_below(seed, c, (uint64_t)i + 1);
    int64_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
}

void px_batch_add_response(px_batch *b, const int32_t *seq, int P, int L) {
  int len = P + L - 1;
  PX_REQUIRE(b->B < b->cap_B && len <= b->cap_T, "px_batch_add_response: no room for the row");
  size_t at = (size_t)b->B * b->cap_T;
  for (int t = 0; t < b->cap_T; t++) {
    b->tokens[at + t] = t < len ? seq[t] : b->pad;
    b->targets[at + t] = t >= P - 1 && t < len ? seq[t + 1] : -1;
    b->weights[at + t] = 0;
  }
  b->lengths[b->B++] = len;
  if (len > b->T) b->T = len;
}

void px_batch_pack(px_batch *b) {
  /* Row r moves from r*cap_T to r*T; T <= cap_T, so in increasing r nothing is overwritten
   * before it is moved. */
  for (int r = 1; r < b->B; r++) {
    memmove(b->tokens + (size_t)r * b->T, b->tokens + (size_t)r * b->cap_T,
            (size_t)b->T * sizeof *b->tokens);
    memmove(b->targets + (size_t)r * b->T, b->targets + (size_t)r * b->cap_T,
            (size_t)b->T * sizeof *b->targets);
    memmove(b->weights + (size_t)r * b->T, b->weights + (size_t)r * b->cap_T,
            (size_t)b->T * sizeof *b->weights);
  }
}

void px_epochs_init(px_epochs *e, const int64_t *items, int64_t n, uint64_t seed, uint32_t stream) {
  *e =
      (px_epochs){items, n, px_malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t)), -1, seed, stream};
}

int64_t px_epochs_item(px_epochs *e, int64_t k) {
  int64_t epoch = k / e->n;
  if (epoch != e->epoch) {
    px_shuffle(e->perm, e->n, e->seed, e->stream, (uint32_t)epoch);
    e->epoch = epoch;
  }
  return e->items[e->perm[k % e->n]];
}

void px_epochs_free(px_epochs *e) {
  free(e->perm);
  e->perm = NULL;
}

void px_split_heldout(int64_t n, int64_t n_heldout, uint64_t seed, uint32_t stream,
                      int64_t **heldout, int64_t **train) {
  int64_t *order = px_malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
  px_shuffle(order, n, seed, stream, 0);
  *heldout = px_malloc((size_t)(n_heldout > 0 ? n_heldout : 1) * sizeof **heldout);
  *train = px_malloc((size_t)(n - n_heldout > 0 ? n - n_heldout : 1) * sizeof **train);
  memcpy(*heldout, order, (size_t)n_heldout * sizeof *order);
  memcpy(*train, order + n_heldout, (size_t)(n - n_heldout) * sizeof *order);
  free(order);
}
