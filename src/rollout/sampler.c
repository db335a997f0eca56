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

/* Rearranges c[lo..hi) around a pivot (the median of three, by px_candidate_cmp): returns its
 * place p, with c[lo..p) before it and c[p+1..hi) after it. The order is total (ids differ), so
 * every step makes progress. */
static int px_partition(px_sampler_candidate *c, int lo, int hi) {
  const int mid = lo + (hi - lo) / 2, last = hi - 1;
  px_sampler_candidate t;
#define PX_SWAP(i, j) (t = c[i], c[i] = c[j], c[j] = t)
  if (px_candidate_cmp(&c[mid], &c[lo]) < 0) PX_SWAP(mid, lo);
  if (px_candidate_cmp(&c[last], &c[lo]) < 0) PX_SWAP(last, lo);
  if (px_candidate_cmp(&c[last], &c[mid]) < 0) PX_SWAP(last, mid);
  PX_SWAP(mid, last); /* the median as pivot, at the end */
  int p = lo;
  for (int i = lo; i < last; i++)
    if (px_candidate_cmp(&c[i], &c[last]) < 0) PX_SWAP(i, p), p++;
  PX_SWAP(p, last);
#undef PX_SWAP
  return p;
}

/* Puts the k first candidates of the order (the k most likely) in c[0..k), in any order:
 * quickselect, O(n) expected instead of sorting all n (50257 for GPT-2) every token. */
static void px_select_first(px_sampler_candidate *c, int n, int k) {
  int lo = 0, hi = n;
  while (hi - lo > 1) {
    const int p = px_partition(c, lo, hi);
    if (p == k || p == k - 1) return;
    if (p < k)
      lo = p + 1;
    else
      hi = p;
  }
}

/* For the nucleus: sorts a prefix c[0..m) of the order that holds at least `need` of the
 * weight (with a margin over the rounding of another summation order), and returns m. The
 * partitions narrow the window in which the cumulative weight crosses need, so only the
 * nucleus and a little more are sorted. */
static int px_nucleus_sort(px_sampler_candidate *c, int n, double need) {
  const double margin = need * (1.0 + 1e-9);
  double acc = 0.0; /* the weight of c[0..lo), all before c[lo..hi) */
  int lo = 0, hi = n;
  while (hi - lo > 64) {
    const int p = px_partition(c, lo, hi);
    double before = 0.0;
    for (int i = lo; i <= p; i++) before += c[i].weight;
    if (acc + before >= margin) {
      hi = p + 1;
    } else {
      acc += before;
      lo = p + 1;
    }
  }
  qsort(c, (size_t)hi, sizeof *c, px_candidate_cmp);
  return hi;
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
  int sorted = 0;
  if (k > 0 && k < n) { /* the k most likely, in order: a selection, then a sort of k */
    px_select_first(scratch, n, k);
    qsort(scratch, (size_t)k, sizeof *scratch, px_candidate_cmp);
    n = k, sorted = 1;
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
    /* The fewest most likely candidates whose mass reaches top_p (at least one). Unsorted
     * (no top-k), only the most likely few need ordering: px_nucleus_sort orders a prefix that
     * holds them, and when rounding leaves the mass short of it, everything is sorted. */
    const double need = top_p * total;
    int upto = sorted ? n : px_nucleus_sort(scratch, n, need);
    for (int pass = 0; pass < 2; pass++) {
      double cum = 0.0;
      int keep = -1;
      for (int i = 0; i < upto && keep < 0; i++) {
        cum += scratch[i].weight;
        if (cum >= need) keep = i + 1;
      }
      if (keep > 0 || upto == n) {
        n = keep > 0 ? keep : n;
        total = cum;
        break;
      }
      qsort(scratch, (size_t)n, sizeof *scratch, px_candidate_cmp);
      upto = n;
    }
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
