/*
 * rng.c — Philox4x32-10 (Random123) behind a small C interface; see rng.h.
 */
#include "proxima/rng.h"

#include <Random123/philox.h>
#include <Random123/u01fixedpt.h>
#include <math.h>

void px_rng_words(uint64_t seed, px_rng_ctr ctr, uint32_t out[4]) {
  philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  philox4x32_ctr_t c = {{ctr.w[0], ctr.w[1], ctr.w[2], ctr.w[3]}};
  philox4x32_ctr_t r = philox4x32(c, key);
  for (int i = 0; i < 4; i++) out[i] = r.v[i];
}

static uint64_t px_join(uint32_t hi, uint32_t lo) { return ((uint64_t)hi << 32) | lo; }

double px_rng_uniform(uint64_t seed, px_rng_ctr ctr) {
  uint32_t w[4];
  px_rng_words(seed, ctr, w);
  return u01fixedpt_closed_open_64_double(px_join(w[0], w[1]));
}

void px_rng_uniform2(uint64_t seed, px_rng_ctr ctr, double *u0, double *u1) {
  uint32_t w[4];
  px_rng_words(seed, ctr, w);
  *u0 = u01fixedpt_open_open_64_double(px_join(w[0], w[1]));
  *u1 = u01fixedpt_open_open_64_double(px_join(w[2], w[3]));
}

double px_rng_normal(uint64_t seed, px_rng_ctr ctr) {
  double u0, u1;
  px_rng_uniform2(seed, ctr, &u0, &u1);
  return sqrt(-2.0 * log(u0)) * cos(2.0 * M_PI * u1);
}

uint64_t px_rng_below(uint64_t seed, px_rng_ctr ctr, uint64_t n) {
  /* Accept x < limit, the largest multiple of n that fits in 64 bits; x % n is then uniform. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint32_t w[4];
    px_rng_words(seed, ctr, w);
    uint64_t x = px_join(w[0], w[1]);
    if (x < limit) return x % n;
    x = px_join(w[2], w[3]);
    if (x < limit) return x % n;
    ctr.w[3] += 0x9E3779B9u; /* rejected twice (probability < 2^-62 for small n): move on */
  }
}
