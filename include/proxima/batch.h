/*
 * batch.h — turning data-set records into padded training batches, shared by sft, rm and ppo.
 *
 * A record becomes the sequence BOS prompt response EOS (or BOS text EOS). A batch row holds its
 * first len-1 tokens as inputs and the next tokens as targets, right-padded with PAD to the
 * batch's T; lengths say where each row ends (masks come from lengths, never from PAD).
 */
#ifndef PROXIMA_BATCH_H
#define PROXIMA_BATCH_H

#include <stdint.h>

#include "proxima/dataset.h"
#include "proxima/tokenizer.h"

typedef struct px_batch {
  int cap_B, cap_T;      /* room */
  int B, T;              /* rows in use; positions in use (the longest row) */
  int32_t *tokens;       /* [B,T] inputs, PAD past lengths[b] (stride cap_T until packed) */
  int32_t *targets;      /* [B,T] next tokens, -1 past lengths[b] */
  float *weights;        /* [B,T] loss weights, 0 past lengths[b] */
  int32_t *lengths;      /* [B] */
  int truncated;         /* rows cut to cap_T since px_batch_build */
  int32_t pad, bos, eos; /* the tokenizer's */
} px_batch;

/* A batch of up to cap_B rows of cap_T positions, for sequences of tok's ids. */
void px_batch_build(px_batch *b, const px_tokenizer *tok, int cap_B, int cap_T);
void px_batch_free(px_batch *b);

/* Empties the batch (B = T = 0). */
void px_batch_clear(px_batch *b);

/* Appends record i of ds as a training row: for kind sft, BOS prompt completion EOS with loss
 * weight 1 on the completion and EOS targets only; for kind text, BOS text EOS with weight 1
 * everywhere. A sequence longer than cap_T + 1 is cut (and counted in truncated). Returns the
 * sum of the row's weights. Not collective. */
float px_batch_add_lm(px_batch *b, const px_dataset *ds, int64_t i);

/* Appends the whole sequence BOS prompt response EOS as a row to be scored (no targets): the
 * score is read at its last position, the EOS. Returns 0, or -1 (nothing added) when the
 * sequence is longer than cap_T. Not collective. */
int px_batch_add_scored(px_batch *b, const int32_t *prompt, int64_t np, const int32_t *response,
                        int64_t nr);

/* Appends a row for the teacher-forced log-probs of a response: seq is BOS prompt (P tokens in
 * all) then the response's L tokens; the inputs are seq[0 .. P+L-2] and the targets of
 * positions P-1 .. P+L-2 the response tokens (-1 elsewhere), weights 0. P + L - 1 must not
 * exceed cap_T. Not collective. */
void px_batch_add_response(px_batch *b, const int32_t *seq, int P, int L);

/* Lays the rows out with stride T (they are added with stride cap_T), ready for the model's
 * [B,T] arrays. Add no row after this until px_batch_clear. */
void px_batch_pack(px_batch *b);

/* An endless stream of epochs over items[0..n): position k is items[perm_e[k % n]] with
 * e = k / n and perm_e a fresh permutation per epoch keyed by (seed, stream, e), so every rank
 * sees the same stream. */
typedef struct px_epochs {
  const int64_t *items;
  int64_t n;
  int64_t *perm, epoch; /* the permutation of epoch `epoch` */
  uint64_t seed;
  uint32_t stream;
} px_epochs;

void px_epochs_init(px_epochs *e, const int64_t *items, int64_t n, uint64_t seed, uint32_t stream);
int64_t px_epochs_item(px_epochs *e, int64_t k);
void px_epochs_free(px_epochs *e);

/* Splits records 0..n-1 by a permutation keyed by (seed, stream): the first n_heldout into
 * *heldout, the rest into *train (both malloc'd, the caller frees). Not collective. */
void px_split_heldout(int64_t n, int64_t n_heldout, uint64_t seed, uint32_t stream,
                      int64_t **heldout, int64_t **train);

/* Fisher–Yates permutation of 0..n-1 keyed by (seed, stream, epoch): the same on every rank.
 * Not collective. */
void px_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint32_t stream, uint32_t epoch);

#endif
