/*
 * sampler.c — the next token from a row of logits (see sampler.h): greedy, temperature, top-k
 * and top-p over the tokens a response may hold, with the one random draw of px_sampler_coin.
 *
 * Candidates are ranked by logit (monotone in the probability at any temperature, and free of
 * the ties that rounding exp() would make), ties broken by id, so the truncations and the draw
 * are a pure function of the logits and the coin.
 */
#include "proxima/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/rng.h"
#include "proxima/tokenizer.h"

/* The Philox stream of sampling draws (counter word 3), apart from every other use of the seed. */
enum { PX_STREAM_SAMPLE = 0x53414d50u /* "SAMP" */ };

px_status px_sampler_config_check(const px_sampler_config *c, px_error *err) {
  if (!(c->temperature >= 0.0f) || !isfinite(c->temperature))
    return px_error_set(err, PX_EINPUT, "sampling temperature is %g: expected 0 (greedy) or more",
                        (double)c->temperature);
  if (c->top_k < 0)
    return px_error_set(err, PX_EINPUT, "top_k is %d: expected 0 (off) or more", c->top_k);
  if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
    return px_error_set(err, PX_EINPUT, "top_p is %g: expected more than 0 and at most 1 (off)",
                        (double)c->top_p);
  return PX_OK;
}

void px_sampler_build(px_sampler *s, const px_sampler_config *config, const px_tokenizer *tok,
                      uint64_t seed, int vocab_size, int max_rows) {
  px_error err;
  PX_REQUIRE(px_sampler_config_check(config, &err) == PX_OK, "bad sampler: %s", err.msg);
  PX_REQUIRE(vocab_size >= tok->n_ids && max_rows >= 1, "px_sampler_build: vocabulary %d, %d rows",
             vocab_size, max_rows);
  memset(s, 0, sizeof *s);
  s->config = *config;
  s->tok = tok;
  s->seed = seed;
  s->vocab_size = vocab_size;
  s->max_rows = max_rows;
  s->scratch = px_calloc((size_t)max_rows * (size_t)tok->n_ids, sizeof *s->scratch);
}

void px_sampler_free(px_sampler *s) {
  free(s->scratch);
  memset(s, 0, sizeof *s);
}

int px_sampler_is_greedy(const px_sampler *s) {
  return s->config.greedy || s->config.temperature == 0.0f;
}

float px_sampler_logprob_temperature(const px_sampler *s) {
  return px_sampler_is_greedy(s) ? 1.0f : s->config.temperature;
}

double px_sampler_coin(const px_sampler *s, uint64_t iteration, int64_t sample, int position) {
  /* (iteration, sample, position, stream), the sample index folded to 32 bits with its high
   * half into the iteration word's spare bits: every index below 2^32 has its own counter. */
  px_rng_ctr ctr = {{(uint32_t)iteration ^ ((uint32_t)((uint64_t)sample >> 32) << 16),
                     (uint32_t)sample, (uint32_t)position, PX_STREAM_SAMPLE}};
  return px_rng_uniform(s->seed, ctr);
}

/* Descending logit, then ascending id: a total order. */
static int px_candidate_cmp(const void *a, const void *b) {
  const px_sampler_candidate *x = a, *y = b;
  if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

int32_t px_sampler_sample(const px_sampler *s, const float *logits, double coin,
                          px_sampler_candidate *scratch) {
  /* The allowed tokens, with non-finite logits (NaN, -inf) treated as impossible. */
  int n = 0;
  float best = -INFINITY;
  int32_t argmax = s->tok->eos;
  for (int32_t v = 0; v < s->tok->n_ids; v++) {
    if (!px_tokenizer_sampleable(s->tok, v)) continue;
    float z = logits[v];
    if (isnan(z) || z == -INFINITY) continue;
    if (z > best) best = z, argmax = v; /* strict: the lowest id wins a tie */
    scratch[n].logit = z;
    scratch[n].index = v;
    n++;
  }
  if (n == 0 || px_sampler_is_greedy(s)) return argmax;

  const double inv_temp = 1.0 / s->config.temperature;
  const int k = s->config.top_k;
  const double top_p = s->config.top_p;
  if ((k > 0 && k < n) || top_p < 1.0) {
    qsort(scratch, (size_t)n, sizeof *scratch, px_candidate_cmp);
    if (k > 0 && k < n) n = k;
  }
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    /* +inf logits: the max is inf and inf - inf is NaN; treat them as the only candidates. */
    double d = best == INFINITY ? (scratch[i].logit == INFINITY ? 0.0 : -INFINITY)
                                : ((double)scratch[i].logit - best) * inv_temp;
    scratch[i].weight = exp(d);
    total += scratch[i].weight;
  }
  if (top_p < 1.0) {
    /* The fewest most likely candidates whose mass reaches top_p (at least one). */
    double cum = 0.0;
    int keep = n;
    for (int i = 0; i < n; i++) {
      cum += scratch[i].weight;
      if (cum >= top_p * total) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    total = cum;
  }
  /* Invert the cumulative distribution at the coin. */
  const double r = coin * total;
  double cum = 0.0;
  for (int i = 0; i < n; i++) {
    cum += scratch[i].weight;
    if (r < cum) return scratch[i].index;
  }
  for (int i = n - 1; i > 0; i--) /* rounding: the last candidate with any mass */
    if (scratch[i].weight > 0.0) return scratch[i].index;
  return scratch[0].index;
}

void px_sampler_sample_rows(const px_sampler *s, int32_t *tokens, const float *logits,
                            const double *coins, int n) {
  PX_REQUIRE(n <= s->max_rows, "px_sampler_sample_rows: %d rows for a sampler of %d", n,
             s->max_rows);
#pragma omp parallel for
  for (int i = 0; i < n; i++)
    tokens[i] = px_sampler_sample(s, logits + (size_t)i * s->vocab_size, coins[i],
                                  s->scratch + (size_t)i * (size_t)s->tok->n_ids);
}
