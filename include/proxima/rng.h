/*
 * rng.h — counter-based random numbers (Philox4x32-10 from Random123, DESIGN.md section 4).
 *
 * A draw is a pure function of the run's seed and a counter of four 32-bit words, e.g.
 * (iteration, global sample index, token position, stream) for sampling. Nothing is stateful,
 * so no generator state is ever saved: a restarted run recomputes the same draws, and what
 * sample i draws does not depend on the rank or batch slot that computes it.
 */
#ifndef PROXIMA_RNG_H
#define PROXIMA_RNG_H

#include <stdint.h>

/* The counter of one draw. */
typedef struct px_rng_ctr {
  uint32_t w[4];
} px_rng_ctr;

/* Four independent 32-bit words for (seed, ctr). */
void px_rng_words(uint64_t seed, px_rng_ctr ctr, uint32_t out[4]);

/* A uniform double in [0, 1) with 53 random bits (words 0 and 1 of the draw). */
double px_rng_uniform(uint64_t seed, px_rng_ctr ctr);

/* Two uniform doubles in (0, 1): words (0,1) and (2,3). */
void px_rng_uniform2(uint64_t seed, px_rng_ctr ctr, double *u0, double *u1);

/* A standard normal draw (Box–Muller on the two uniforms of the counter). */
double px_rng_normal(uint64_t seed, px_rng_ctr ctr);

/* A uniform integer in [0, n), n > 0, free of modulo bias (rejection on the four words and,
 * if all four are rejected, on the following counters of the last word). */
uint64_t px_rng_below(uint64_t seed, px_rng_ctr ctr, uint64_t n);

#endif
