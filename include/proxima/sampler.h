/*
 * sampler.h — picking the next token from a row of logits (llama2.c's sampler, grown up):
 * temperature, top-k, top-p (nucleus) and greedy, over the tokens a response may hold.
 *
 * What may be drawn: the tokenizer's text tokens and EOS (px_tokenizer_sampleable). PAD and
 * BOS never are, nor any id of a wider model vocabulary (from the tokenizer's n_ids up: padding
 * of the embedding, never trained), whatever the logits say.
 *
 * Randomness enters in one place, px_sampler_coin: one uniform draw of Philox keyed by (seed,
 * iteration, global sample index, position), so what sample i draws does not depend on the rank
 * or the batch slot that computes it (DESIGN.md section 4). Everything else is a pure function
 * of the logits and that coin.
 */
#ifndef PROXIMA_SAMPLER_H
#define PROXIMA_SAMPLER_H

#include <stdint.h>

#include "proxima/error.h"
#include "proxima/tokenizer.h"

typedef struct px_sampler_config {
  float temperature; /* logits are divided by it; 0 means greedy */
  int top_k;         /* keep the k most likely tokens; 0 keeps all */
  float top_p;       /* keep the fewest most likely tokens whose probability reaches top_p
                        (after top-k); 1 keeps all; in (0, 1] */
  int greedy;        /* argmax, whatever the temperature */
} px_sampler_config;

/* PX_EINPUT with a message naming the setting when a value is out of range. Not collective. */
px_status px_sampler_config_check(const px_sampler_config *c, px_error *err);

/* One candidate token of a row: its logit, id and (unnormalised) probability. */
typedef struct px_sampler_candidate {
  float logit;
  int32_t index;
  double weight;
} px_sampler_candidate;

typedef struct px_sampler {
  px_sampler_config config;
  uint64_t seed;
  const px_tokenizer *tok;       /* not owned: which ids may be drawn */
  int vocab_size;                /* V of the logits rows */
  int max_rows;                  /* rows px_sampler_sample_rows takes at once */
  px_sampler_candidate *scratch; /* [max_rows, tok->n_ids] */
} px_sampler;

/* A sampler for logits rows of vocab_size entries (>= tok->n_ids), up to max_rows at once, over
 * the tokens of tok (which must outlive it). The configuration must pass
 * px_sampler_config_check. */
void px_sampler_build(px_sampler *s, const px_sampler_config *config, const px_tokenizer *tok,
                      uint64_t seed, int vocab_size, int max_rows);
void px_sampler_free(px_sampler *s);

/* Whether the sampler takes the argmax (greedy set, or temperature 0). */
int px_sampler_is_greedy(const px_sampler *s);

/* The temperature of the log-probs recorded with the samples, log softmax(logits / T)[token]:
 * the sampling temperature, or 1 for greedy sampling (the argmax has no temperature of its
 * own; 1 gives the model's plain log-probs, what a later pass at temperature 1 recomputes). */
float px_sampler_logprob_temperature(const px_sampler *s);

/* The one random draw: a uniform in [0, 1) for (seed, iteration, sample, position), sample
 * being the GLOBAL sample index and position the token's position in its sequence. */
double px_sampler_coin(const px_sampler *s, uint64_t iteration, int64_t sample, int position);

/* The token for one row of logits [vocab_size] and a coin in [0, 1), with scratch room for
 * tok->n_ids candidates. Greedy: the allowed token of the largest logit (the lowest id on a
 * tie). Otherwise, over the allowed tokens: softmax(logits / temperature), keep the top_k most
 * likely, then the smallest most-likely prefix whose mass reaches top_p, renormalise, and invert
 * the cumulative distribution at the coin (candidates ordered by probability, ties by id). */
int32_t px_sampler_sample(const px_sampler *s, const float *logits, double coin,
                          px_sampler_candidate *scratch);

/* px_sampler_sample for rows [n, vocab_size] with coins [n] (n <= max_rows), rows in parallel
 * (OpenMP). Not collective. */
void px_sampler_sample_rows(const px_sampler *s, int32_t *tokens, const float *logits,
                            const double *coins, int n);

#endif
