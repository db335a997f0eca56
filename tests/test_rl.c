/*
 * test_rl.c — the PPO math of rl.h (DESIGN.md section 2) on tiny arrays: hand-computed values
 * (the arithmetic in the comments), central finite differences for both loss gradients, GAE
 * against a naive double loop and the gamma = lambda = 1 identity A_0 = r' - V_0, whitening to
 * mean 0 / std 1, partial sums over two halves adding up to the whole (the allreduce contract),
 * ratio 1 before the first update, the adaptive beta, and masked positions that change nothing;
 * the critic-free estimators (GRPO, Dr. GRPO, RLOO) on hand-computed groups and their identities,
 * REINFORCE++'s returns, and the KL loss term with its gradient.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "proxima/rl.h"
#include "proxima/rng.h"
#include "test_util.h"

#define TOL 1e-6

/* Standard normal draws for (tag, i), scaled. */
static void fill_normal(float *x, size_t n, uint32_t tag, float scale) {
  for (size_t i = 0; i < n; i++) {
    px_rng_ctr c = {{tag, (uint32_t)i, 0, 11}};
    x[i] = scale * (float)px_rng_normal(5, c);
  }
}

/* A random prefix mask [N, R]; row 0 full and row 1 empty when N > 1, to cover both ends. */
static void random_mask(uint8_t *mask, size_t N, size_t R, uint32_t tag) {
  int64_t len[16];
  for (size_t i = 0; i < N && i < 16; i++) {
    px_rng_ctr c = {{tag, (uint32_t)i, 1, 12}};
    len[i] = (int64_t)px_rng_below(5, c, R + 1);
  }
  len[0] = (int64_t)R;
  if (N > 1) len[1] = 0;
  px_rl_mask_from_lengths(mask, len, N, R);
}

static void test_mask_from_lengths(void) {
  int64_t len[4] = {0, 2, 3, 9}; /* 9 > R: the whole row; below 0 would be 0 */
  uint8_t m[12];
  px_rl_mask_from_lengths(m, len, 4, 3);
  const uint8_t want[12] = {0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1};
  CU_ASSERT(memcmp(m, want, 12) == 0);
  int64_t neg = -4;
  px_rl_mask_from_lengths(m, &neg, 1, 3);
  CU_ASSERT(m[0] == 0 && m[1] == 0 && m[2] == 0);
}

static void test_kl_known_values(void) {
  const float lp[6] = {-1, -2, 0, -30, -0.5f, 3}, ref[6] = {-2, -1, -30, 0, -0.5f, -3};
  const uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
  float kl[6];
  /* k1 = d = lp - ref:  1, -1, 30 -> clamp 10, -30 -> clamp -10, 0, masked 0 */
  px_rl_kl(kl, lp, ref, mask, 6, PX_RL_KL_K1, 10);
  const double k1[6] = {1, -1, 10, -10, 0, 0};
  for (int i = 0; i < 6; i++) CU_ASSERT_DOUBLE_EQUAL(kl[i], k1[i], TOL);
  /* k3 = e^-d - 1 + d:  e^-1 = 0.36787944117;  e^1 - 2 = 0.71828182846;
   * e^-30 + 29 = 29 -> clamp 10;  e^30 - 31 = 1.07e13 -> clamp 10;  0;  masked 0 */
  px_rl_kl(kl, lp, ref, mask, 6, PX_RL_KL_K3, 10);
  const double k3[6] = {0.36787944117144233, 0.7182818284590451, 10, 10, 0, 0};
  for (int i = 0; i < 6; i++) CU_ASSERT_DOUBLE_EQUAL(kl[i], k3[i], TOL);
  /* without the clamp: k1 = 30, k3 = 29 */
  px_rl_kl(kl, lp, ref, mask, 6, PX_RL_KL_K1, INFINITY);
  CU_ASSERT_DOUBLE_EQUAL(kl[2], 30, TOL);
  CU_ASSERT_DOUBLE_EQUAL(kl[3], -30, TOL);
  px_rl_kl(kl, lp, ref, mask, 6, PX_RL_KL_K3, INFINITY);
  CU_ASSERT_DOUBLE_EQUAL(kl[2], 29, 1e-5);
  /* k3 stays >= 0 and is second order near d = 0: d = 1e-3 -> d^2/2 = 5e-7 (to 1e-10) */
  const float a = -1.0f, b = -1.001f;
  uint8_t one = 1;
  px_rl_kl(kl, &a, &b, &one, 1, PX_RL_KL_K3, 10);
  double d = (double)a - (double)b;
  CU_ASSERT(kl[0] >= 0);
  CU_ASSERT_DOUBLE_EQUAL(kl[0], d * d / 2 - d * d * d / 6, 1e-10);
}

static void test_shape_rewards_known_values(void) {
  enum { N = 3, R = 3 };
  const float kl[N * R] = {0.1f, -0.2f, 9, 0.4f, 0, 0.2f, 1, 1, 1};
  const uint8_t mask[N * R] = {1, 1, 0, 1, 1, 1, 0, 0, 0};
  const float scores[N] = {2, 5, 7};
  const uint8_t has_eos[N] = {1, 0, 1};
  float r[N * R];
  px_rl_shape_rewards(r, kl, scores, has_eos, -1.0f, mask, N, R, 0.5f);
  /* row 0 (EOS at t=1, score 2): -0.5*0.1 = -0.05;  -0.5*(-0.2) + 2 = 2.1;  masked 0
   * row 1 (cut at the limit: penalty -1, not its score 5): -0.2;  0;  -0.1 - 1 = -1.1
   * row 2 (no real token): all 0, its score 7 goes nowhere */
  const double want[N * R] = {-0.05, 2.1, 0, -0.2, 0, -1.1, 0, 0, 0};
  for (int i = 0; i < N * R; i++) CU_ASSERT_DOUBLE_EQUAL(r[i], want[i], TOL);
  /* has_eos NULL: every row has EOS, row 1 ends with -0.1 + 5 = 4.9 */
  px_rl_shape_rewards(r, kl, scores, NULL, -1.0f, mask, N, R, 0.5f);
  CU_ASSERT_DOUBLE_EQUAL(r[5], 4.9, TOL);
  CU_ASSERT_DOUBLE_EQUAL(r[1], 2.1, TOL);
  /* summed over a row: the seed's r' = score - beta * sum kl:  2 - 0.5*(0.1 - 0.2) = 2.05 */
  CU_ASSERT_DOUBLE_EQUAL((double)r[0] + r[1] + r[2], 2.05, TOL);
}

static void test_adaptive_beta(void) {
  /* beta 0.1, target 6, n/horizon = 64/10000 = 0.0064:
   * kl 12: 12/6 - 1 = 1 -> clip 0.2 -> 0.1 (1 + 0.2*0.0064) = 0.100128
   * kl 6.6: 0.1 -> 0.1 (1 + 0.00064) = 0.100064;  kl 6: unchanged
   * kl 5.4: -0.1 -> 0.099936;  kl 0: -1 -> clip -0.2 -> 0.099872;  kl 1000: clip 0.2 */
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 12, 6, 64, 10000), 0.100128, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 6.6, 6, 64, 10000), 0.100064, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 6, 6, 64, 10000), 0.1, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 5.4, 6, 64, 10000), 0.099936, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 0, 6, 64, 10000), 0.099872, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_adaptive_beta(0.1, 1000, 6, 64, 10000), 0.100128, 1e-15);
  /* direction: KL above target raises beta, below lowers it, every step */
  double up = 0.1, down = 0.1;
  for (int i = 0; i < 100; i++) {
    double u = px_rl_adaptive_beta(up, 9, 6, 64, 10000);
    double d = px_rl_adaptive_beta(down, 3, 6, 64, 10000);
    CU_ASSERT(u > up && d < down);
    /* the step never exceeds the clamp: |ratio| <= 1 + 0.2 n / horizon */
    CU_ASSERT(u / up <= 1.00128 + 1e-12 && d / down >= 0.99872 - 1e-12);
    up = u, down = d;
  }
}

static void test_gae_known_values(void) {
  enum { N = 2, R = 3 };
  const float r[N * R] = {1, 2, 99, 0, 0, 1}, v[N * R] = {0.5f, 1, 77, 0.2f, 0.4f, 0.6f};
  const uint8_t mask[N * R] = {1, 1, 0, 1, 1, 1};
  float a[N * R], ret[N * R];
  px_rl_gae(a, ret, r, v, mask, N, R, 0.9f, 0.5f);
  /* gamma 0.9, lambda 0.5, gamma lambda = 0.45; V after the last real token is 0.
   * row 0: t=1: delta = 2 + 0.9*0 - 1 = 1, A = 1, R = 2
   *        t=0: delta = 1 + 0.9*1 - 0.5 = 1.4, A = 1.4 + 0.45*1 = 1.85, R = 2.35;  t=2 masked
   * row 1: t=2: delta = 1 - 0.6 = 0.4, A = 0.4, R = 1.0
   *        t=1: delta = 0.9*0.6 - 0.4 = 0.14, A = 0.14 + 0.45*0.4 = 0.32, R = 0.72
   *        t=0: delta = 0.9*0.4 - 0.2 = 0.16, A = 0.16 + 0.45*0.32 = 0.304, R = 0.504 */
  const double wa[N * R] = {1.85, 1, 0, 0.304, 0.32, 0.4};
  const double wr[N * R] = {2.35, 2, 0, 0.504, 0.72, 1.0};
  for (int i = 0; i < N * R; i++) {
    CU_ASSERT_DOUBLE_EQUAL(a[i], wa[i], TOL);
    CU_ASSERT_DOUBLE_EQUAL(ret[i], wr[i], TOL);
  }
  float a2[N * R];
  px_rl_gae(a2, NULL, r, v, mask, N, R, 0.9f, 0.5f); /* ret is optional */
  CU_ASSERT(memcmp(a, a2, sizeof a) == 0);
}

/* The seed's A(x,y) = r'(x,y) - V(x): gamma = lambda = 1 telescopes the deltas. */
static void test_gae_identity_gamma_lambda_one(void) {
  enum { N = 6, R = 9 };
  float r[N * R], v[N * R], a[N * R], ret[N * R];
  uint8_t mask[N * R];
  fill_normal(r, N * R, 1, 1.0f);
  fill_normal(v, N * R, 2, 2.0f);
  random_mask(mask, N, R, 3);
  px_rl_gae(a, ret, r, v, mask, N, R, 1.0f, 1.0f);
  for (int i = 0; i < N; i++) {
    if (!mask[i * R]) continue; /* the empty row */
    double sum_r = 0;
    for (int t = 0; t < R; t++)
      if (mask[i * R + t]) sum_r += r[i * R + t];
    CU_ASSERT_DOUBLE_EQUAL(a[i * R], sum_r - v[i * R], 1e-5);
    /* and the return at the first token is the whole shaped reward r' */
    CU_ASSERT_DOUBLE_EQUAL(ret[i * R], sum_r, 1e-5);
  }
}

/* A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l} over the row's real tokens, directly. */
static void naive_gae(double *a, const float *r, const float *v, const uint8_t *mask, int N, int R,
                      double gamma, double lambda) {
  for (int i = 0; i < N; i++) {
    int len = 0;
    while (len < R && mask[i * R + len]) len++;
    for (int t = 0; t < R; t++) {
      a[i * R + t] = 0;
      if (t >= len) continue;
      for (int l = t; l < len; l++) {
        double vnext = l + 1 < len ? v[i * R + l + 1] : 0;
        double delta = r[i * R + l] + gamma * vnext - v[i * R + l];
        a[i * R + t] += pow(gamma * lambda, l - t) * delta;
      }
    }
  }
}

static void test_gae_against_naive(void) {
  enum { N = 7, R = 11 };
  const float gl[4][2] = {{0.99f, 0.95f}, {0.5f, 0.9f}, {0.9f, 0.1f}, {1.0f, 0.0f}};
  float r[N * R], v[N * R], a[N * R], ret[N * R];
  uint8_t mask[N * R];
  double want[N * R];
  for (int k = 0; k < 4; k++) {
    fill_normal(r, N * R, 10 + k, 1.0f);
    fill_normal(v, N * R, 20 + k, 1.5f);
    random_mask(mask, N, R, 30 + k);
    px_rl_gae(a, ret, r, v, mask, N, R, gl[k][0], gl[k][1]);
    naive_gae(want, r, v, mask, N, R, gl[k][0], gl[k][1]);
    for (int i = 0; i < N * R; i++) {
      CU_ASSERT_DOUBLE_EQUAL(a[i], want[i], 1e-5 * fmax(1, fabs(want[i])));
      CU_ASSERT_DOUBLE_EQUAL(ret[i], mask[i] ? want[i] + v[i] : 0, 1e-5 * fmax(1, fabs(want[i])));
    }
  }
}

static void test_whiten_known_values(void) {
  const float x[4] = {1, 2, 3, 6};
  const uint8_t mask[4] = {1, 1, 1, 0};
  double m[3], mean, std;
  px_rl_moments(m, x, mask, 4);
  /* sum 6, sum of squares 1 + 4 + 9 = 14, count 3 (the 6 is masked out) */
  CU_ASSERT_DOUBLE_EQUAL(m[0], 6, 0);
  CU_ASSERT_DOUBLE_EQUAL(m[1], 14, 0);
  CU_ASSERT_DOUBLE_EQUAL(m[2], 3, 0);
  /* mean 2, var 14/3 - 4 = 2/3 (population), std sqrt(2/3) = 0.81649658 */
  px_rl_moments_mean_std(m, 0, &mean, &std);
  CU_ASSERT_DOUBLE_EQUAL(mean, 2, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(std, 0.816496580927726, 1e-15);
  float out[4];
  px_rl_whiten(out, x, mask, 4, mean, std, 1);
  /* (x - 2) / 0.81649658: -1.22474487, 0, 1.22474487; masked 0 */
  const double w[4] = {-1.224744871391589, 0, 1.224744871391589, 0};
  for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], w[i], TOL);
  /* without the shift: x / 0.81649658 = 1.22474487, 2.44948974, 3.67423461; masked 0 */
  px_rl_whiten(out, x, mask, 4, mean, std, 0);
  const double w0[4] = {1.224744871391589, 2.449489742783178, 3.674234614174767, 0};
  for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], w0[i], TOL);
  /* eps: a constant batch has std sqrt(eps), so whitening gives 0, not NaN */
  const float c[3] = {5, 5, 5};
  const uint8_t all[3] = {1, 1, 1};
  px_rl_moments(m, c, all, 3);
  px_rl_moments_mean_std(m, 1e-8, &mean, &std);
  CU_ASSERT_DOUBLE_EQUAL(std, 1e-4, 1e-12);
  px_rl_whiten(out, c, all, 3, mean, std, 1);
  for (int i = 0; i < 3; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], 0, 0);
  /* nothing masked in: mean 0, std sqrt(eps) */
  const uint8_t none[3] = {0, 0, 0};
  px_rl_moments(m, c, none, 3);
  px_rl_moments_mean_std(m, 1e-8, &mean, &std);
  CU_ASSERT(mean == 0 && fabs(std - 1e-4) < 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_masked_mean(x, mask, 4), 2, 1e-15);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_masked_mean(c, none, 3), 0, 0);
}

static void test_whiten_random(void) {
  enum { N = 8, R = 13 };
  float x[N * R], out[N * R];
  uint8_t mask[N * R];
  fill_normal(x, N * R, 40, 3.0f);
  for (int i = 0; i < N * R; i++) x[i] += 1.7f; /* a mean to remove */
  random_mask(mask, N, R, 41);
  double m[3], mean, std;
  px_rl_moments(m, x, mask, N * R);
  px_rl_moments_mean_std(m, 1e-8, &mean, &std);
  px_rl_whiten(out, x, mask, N * R, mean, std, 1);
  double s = 0, s2 = 0, c = 0;
  for (int i = 0; i < N * R; i++) {
    if (!mask[i]) {
      CU_ASSERT(out[i] == 0);
      continue;
    }
    s += out[i], s2 += (double)out[i] * out[i], c++;
  }
  CU_ASSERT(c > 10);
  CU_ASSERT_DOUBLE_EQUAL(s / c, 0, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(sqrt(s2 / c - (s / c) * (s / c)), 1, 1e-6);
  /* in place gives the same */
  float y[N * R];
  memcpy(y, x, sizeof x);
  px_rl_whiten(y, y, mask, N * R, mean, std, 1);
  CU_ASSERT(memcmp(y, out, sizeof y) == 0);
  /* without the shift the std is 1 and the mean is mean/std */
  px_rl_whiten(out, x, mask, N * R, mean, std, 0);
  px_rl_moments(m, out, mask, N * R);
  double mean0, std0;
  px_rl_moments_mean_std(m, 0, &mean0, &std0);
  CU_ASSERT_DOUBLE_EQUAL(mean0, mean / std, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(std0, 1, 1e-6);
}

static void test_policy_loss_known_values(void) {
  /* eps 0.2, 4 real tokens and one masked, norm 4 */
  const float lp[5] = {-1, 0.6931472f, 0.6931472f, -0.6931472f, 7}, old[5] = {-1, 0, 0, 0, -7},
              adv[5] = {2, 1, -1, 3, 100};
  const uint8_t mask[5] = {1, 1, 1, 1, 0};
  float g[5];
  px_rl_ppo_sums s = {0, 0, 0};
  double loss = px_rl_policy_loss(g, &s, lp, old, adv, mask, 5, 0.2f, 4);
  /* t0: rho 1,  A 2:  min(2, 2) = 2, l = -2;  dl/dlp = -A rho = -2 -> /4 = -0.5; not clipped,
   *     approx KL 0
   * t1: rho 2,  A 1:  min(2, 1.2) = 1.2 (clipped term), l = -1.2; grad 0; |rho-1| > eps;
   *     approx KL (2 - 1) - ln 2 = 0.30685282
   * t2: rho 2,  A -1: min(-2, -1.2) = -2, l = 2; grad -A rho = 2 -> 0.5; clipped count;
   *     approx KL 0.30685282
   * t3: rho 0.5, A 3: min(1.5, 2.4) = 1.5, l = -1.5; grad -3*0.5 = -1.5 -> -0.375; clipped
   *     count; approx KL (0.5 - 1) + ln 2 = 0.19314718
   * loss = (-2 - 1.2 + 2 - 1.5) / 4 = -0.675 */
  CU_ASSERT_DOUBLE_EQUAL(loss, -0.675, TOL);
  const double wg[5] = {-0.5, 0, 0.5, -0.375, 0};
  for (int i = 0; i < 5; i++) CU_ASSERT_DOUBLE_EQUAL(g[i], wg[i], TOL);
  CU_ASSERT_DOUBLE_EQUAL(s.count, 4, 0);
  CU_ASSERT_DOUBLE_EQUAL(s.clipped, 3, 0);
  CU_ASSERT_DOUBLE_EQUAL(s.approx_kl, 2 * 0.3068528194400547 + 0.1931471805599453, TOL);
  /* sums accumulate across calls (microbatches) */
  px_rl_policy_loss(NULL, &s, lp, old, adv, mask, 5, 0.2f, 4);
  CU_ASSERT_DOUBLE_EQUAL(s.count, 8, 0);
  CU_ASSERT_DOUBLE_EQUAL(s.clipped, 6, 0);
}

/* Before the first update lp == lp_old: rho = 1 exactly, loss = -mean(A), nothing clipped. */
static void test_policy_loss_ratio_one(void) {
  enum { N = 5, R = 8 };
  float lp[N * R], adv[N * R], g[N * R];
  uint8_t mask[N * R];
  fill_normal(lp, N * R, 50, 2.0f);
  fill_normal(adv, N * R, 51, 1.0f);
  random_mask(mask, N, R, 52);
  double m[3];
  px_rl_moments(m, adv, mask, N * R);
  px_rl_ppo_sums s = {0, 0, 0};
  double loss = px_rl_policy_loss(g, &s, lp, lp, adv, mask, N * R, 0.2f, m[2]);
  CU_ASSERT_DOUBLE_EQUAL(loss, -m[0] / m[2], 1e-12);
  CU_ASSERT(s.clipped == 0 && s.approx_kl == 0 && s.count == m[2]);
  for (int i = 0; i < N * R; i++) CU_ASSERT(g[i] == (mask[i] ? (float)(-adv[i] / m[2]) : 0.0f));
}

static void test_policy_loss_finite_differences(void) {
  /* rho in {0.5, 1.1, 1.5, 0.9} (outside below, inside, outside above, inside) times A of
   * both signs: every branch of the min, none within h of a kink (rho = 0.8 or 1.2). */
  const double rho[4] = {0.5, 1.1, 1.5, 0.9}, as[2] = {1.3, -0.7};
  float lp[8], old[8], adv[8], g[8];
  const uint8_t mask[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int k = 0; k < 8; k++) {
    old[k] = -0.7f - 0.1f * k;
    lp[k] = old[k] + (float)log(rho[k % 4]);
    adv[k] = (float)as[k / 4];
  }
  const double norm = 3;
  px_rl_policy_loss(g, NULL, lp, old, adv, mask, 8, 0.2f, norm);
  /* clipped-term tokens have gradient exactly 0: rho 1.5 with A > 0 and rho 0.5 with A < 0 */
  CU_ASSERT(g[2] == 0 && g[4] == 0);
  CU_ASSERT(g[0] != 0 && g[1] != 0 && g[3] != 0 && g[5] != 0 && g[6] != 0 && g[7] != 0);
  for (int k = 0; k < 8; k++) {
    float keep = lp[k];
    float up = keep + 1e-3f, down = keep - 1e-3f;
    lp[k] = up;
    double lu = px_rl_policy_loss(NULL, NULL, lp, old, adv, mask, 8, 0.2f, norm);
    lp[k] = down;
    double ld = px_rl_policy_loss(NULL, NULL, lp, old, adv, mask, 8, 0.2f, norm);
    lp[k] = keep;
    double fd = (lu - ld) / ((double)up - (double)down);
    CU_ASSERT_DOUBLE_EQUAL(g[k], fd, 1e-5 * fmax(1, fabs(fd)));
  }
}

static void test_value_loss_known_values(void) {
  /* eps_v 0.2, 3 real tokens and one masked, norm 3 */
  const float v[4] = {1, 1, 3, 50}, vo[4] = {0.5f, 0.9f, 1, -50}, ret[4] = {2, 0, 0, 9};
  const uint8_t mask[4] = {1, 1, 1, 0};
  float g[4];
  px_rl_ppo_sums s = {0, 0, 0};
  double loss = px_rl_value_loss(g, &s, v, vo, ret, mask, 4, 0.2f, 3);
  /* t0: Vc = clip(1, 0.3, 0.7) = 0.7; (1-2)^2 = 1 < (0.7-2)^2 = 1.69: l = 0.845, grad 0,
   *     clipped
   * t1: Vc = clip(1, 0.7, 1.1) = 1; both terms (1-0)^2 = 1: l = 0.5, grad (1-0)/3 = 1/3
   * t2: Vc = clip(3, 0.8, 1.2) = 1.2; (3-0)^2 = 9 > 1.44: l = 4.5, grad 3/3 = 1
   * loss = (0.845 + 0.5 + 4.5) / 3 = 1.9483333 */
  CU_ASSERT_DOUBLE_EQUAL(loss, 5.845 / 3, TOL);
  const double wg[4] = {0, 1.0 / 3, 1, 0};
  for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(g[i], wg[i], TOL);
  CU_ASSERT(s.count == 3 && s.clipped == 1 && s.approx_kl == 0);
  /* eps_v = INFINITY: plain 0.5 (V - R)^2 = (0.5 + 0.5 + 4.5) / 3 */
  double plain = px_rl_value_loss(g, NULL, v, vo, ret, mask, 4, INFINITY, 3);
  CU_ASSERT_DOUBLE_EQUAL(plain, 5.5 / 3, TOL);
  CU_ASSERT_DOUBLE_EQUAL(g[0], -1.0 / 3, TOL);
}

static void test_value_loss_finite_differences(void) {
  /* inside the clip range; outside with the unclipped term larger (gradient V - R); outside
   * with the clipped term larger (gradient 0); below the range both ways. No |V - R| within
   * h of |Vc - R|, and V not within h of V_old +- eps. */
  const float vo[6] = {0.5f, 0, 0, 1, 1, -0.3f}, ret[6] = {-1, 0, 2, 3, -2, 0.4f};
  float v[6] = {0.55f, 1, 1, 0.5f, 0.5f, -0.35f}, g[6];
  const uint8_t mask[6] = {1, 1, 1, 1, 1, 1};
  const double norm = 2;
  px_rl_value_loss(g, NULL, v, vo, ret, mask, 6, 0.2f, norm);
  /* t0, t5: inside the range, Vc = V: gradient (V - R) / norm
   * t1: Vc = 0.2, (1-0)^2 = 1 > (0.2-0)^2 = 0.04: gradient (1 - 0) / 2
   * t2: Vc = 0.2, (1-2)^2 = 1 < (0.2-2)^2 = 3.24: clipped, gradient 0
   * t3: Vc = 0.8, (0.5-3)^2 = 6.25 > (0.8-3)^2 = 4.84: gradient (0.5 - 3) / 2
   * t4: Vc = 0.8, (0.5+2)^2 = 6.25 < (0.8+2)^2 = 7.84: clipped, gradient 0 */
  CU_ASSERT(g[2] == 0 && g[4] == 0);
  CU_ASSERT_DOUBLE_EQUAL(g[1], (1 - 0) / norm, TOL);
  CU_ASSERT_DOUBLE_EQUAL(g[3], (0.5 - 3) / norm, TOL);
  for (int k = 0; k < 6; k++) {
    float keep = v[k], up = keep + 1e-3f, down = keep - 1e-3f;
    v[k] = up;
    double lu = px_rl_value_loss(NULL, NULL, v, vo, ret, mask, 6, 0.2f, norm);
    v[k] = down;
    double ld = px_rl_value_loss(NULL, NULL, v, vo, ret, mask, 6, 0.2f, norm);
    v[k] = keep;
    double fd = (lu - ld) / ((double)up - (double)down);
    CU_ASSERT_DOUBLE_EQUAL(g[k], fd, 1e-5 * fmax(1, fabs(fd)));
  }
}

static void test_explained_variance(void) {
  const float ret[4] = {1, 2, 3, 100}, v1[4] = {1, 2, 2, -5}, z[4] = {0, 0, 0, 0};
  const uint8_t mask[4] = {1, 1, 1, 0};
  double s[5];
  /* R - V = 0, 0, 1: Var = 1/3 - 1/9 = 2/9;  Var(R) = 14/3 - 4 = 2/3;  1 - (2/9)/(2/3) = 2/3 */
  px_rl_explained_variance_sums(s, v1, ret, mask, 4);
  CU_ASSERT_DOUBLE_EQUAL(s[4], 3, 0);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_explained_variance(s), 2.0 / 3, 1e-12);
  /* V = R: 1;  V = 0: Var(R - V) = Var(R): 0 */
  px_rl_explained_variance_sums(s, ret, ret, mask, 4);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_explained_variance(s), 1, 1e-12);
  px_rl_explained_variance_sums(s, z, ret, mask, 4);
  CU_ASSERT_DOUBLE_EQUAL(px_rl_explained_variance(s), 0, 1e-12);
  /* Var(R) = 0 or nothing masked in: 0, finite */
  px_rl_explained_variance_sums(s, v1, z, mask, 4);
  CU_ASSERT(px_rl_explained_variance(s) == 0);
  const uint8_t none[4] = {0, 0, 0, 0};
  px_rl_explained_variance_sums(s, v1, ret, none, 4);
  CU_ASSERT(px_rl_explained_variance(s) == 0);
}

/* Every partial sum over the first rows plus the rest equals the sum over all rows, and the
 * per-token outputs of a half are those of the whole: what the allreduce relies on. */
static void test_partial_sums_add_up(void) {
  enum { N = 6, R = 10, H = (N / 2) * R };
  float lp[N * R], old[N * R], adv[N * R], v[N * R], vo[N * R], ret[N * R];
  uint8_t mask[N * R];
  fill_normal(lp, N * R, 60, 1.0f);
  fill_normal(old, N * R, 61, 1.0f);
  for (int i = 0; i < N * R; i++) old[i] = lp[i] + 0.3f * old[i]; /* some clipped, some not */
  fill_normal(adv, N * R, 62, 1.0f);
  fill_normal(v, N * R, 63, 1.0f);
  fill_normal(vo, N * R, 64, 1.0f);
  for (int i = 0; i < N * R; i++) vo[i] = v[i] + 0.3f * vo[i];
  fill_normal(ret, N * R, 65, 1.0f);
  random_mask(mask, N, R, 66);

  double m[3], m1[3], m2[3];
  px_rl_moments(m, adv, mask, N * R);
  px_rl_moments(m1, adv, mask, H);
  px_rl_moments(m2, adv + H, mask + H, N * R - H);
  for (int k = 0; k < 3; k++) CU_ASSERT_DOUBLE_EQUAL(m1[k] + m2[k], m[k], 1e-12);

  /* whitening each half with the global statistics is whitening the whole */
  double mean, std;
  px_rl_moments_mean_std(m, 1e-8, &mean, &std);
  float w[N * R], wh[N * R];
  px_rl_whiten(w, adv, mask, N * R, mean, std, 1);
  px_rl_whiten(wh, adv, mask, H, mean, std, 1);
  px_rl_whiten(wh + H, adv + H, mask + H, N * R - H, mean, std, 1);
  CU_ASSERT(memcmp(w, wh, sizeof w) == 0);

  double norm = m[2];
  float g[N * R], gh[N * R];
  px_rl_ppo_sums s = {0, 0, 0}, sh = {0, 0, 0};
  double l = px_rl_policy_loss(g, &s, lp, old, adv, mask, N * R, 0.2f, norm);
  double l1 = px_rl_policy_loss(gh, &sh, lp, old, adv, mask, H, 0.2f, norm);
  double l2 =
      px_rl_policy_loss(gh + H, &sh, lp + H, old + H, adv + H, mask + H, N * R - H, 0.2f, norm);
  CU_ASSERT_DOUBLE_EQUAL(l1 + l2, l, 1e-12);
  CU_ASSERT(memcmp(g, gh, sizeof g) == 0);
  CU_ASSERT(s.count == sh.count && s.clipped == sh.clipped);
  CU_ASSERT(s.clipped > 0 && s.clipped < s.count);
  CU_ASSERT_DOUBLE_EQUAL(s.approx_kl, sh.approx_kl, 1e-12);

  s = sh = (px_rl_ppo_sums){0, 0, 0};
  l = px_rl_value_loss(g, &s, v, vo, ret, mask, N * R, 0.2f, norm);
  l1 = px_rl_value_loss(gh, &sh, v, vo, ret, mask, H, 0.2f, norm);
  l2 = px_rl_value_loss(gh + H, &sh, v + H, vo + H, ret + H, mask + H, N * R - H, 0.2f, norm);
  CU_ASSERT_DOUBLE_EQUAL(l1 + l2, l, 1e-12);
  CU_ASSERT(memcmp(g, gh, sizeof g) == 0);
  CU_ASSERT(s.count == sh.count && s.clipped == sh.clipped);
  CU_ASSERT(s.clipped > 0 && s.clipped < s.count);

  double e[5], e1[5], e2[5];
  px_rl_explained_variance_sums(e, v, ret, mask, N * R);
  px_rl_explained_variance_sums(e1, v, ret, mask, H);
  px_rl_explained_variance_sums(e2, v + H, ret + H, mask + H, N * R - H);
  for (int k = 0; k < 5; k++) CU_ASSERT_DOUBLE_EQUAL(e1[k] + e2[k], e[k], 1e-12);
}

/* Everything the functions return for one set of inputs. */
enum { MN = 4, MR = 6, MT = MN * MR };
typedef struct rl_inputs {
  float lp[MT], ref[MT], old[MT], v[MT], vo[MT], scores[MN];
  uint8_t mask[MT], has_eos[MN];
} rl_inputs;
typedef struct rl_outputs {
  float kl1[MT], kl3[MT], rew[MT], adv[MT], ret[MT], wadv[MT], glp[MT], gv[MT];
  double moments[3], ev[5], ploss, vloss, mean;
  px_rl_ppo_sums ps, vs;
} rl_outputs;

static void run_all(rl_outputs *o, const rl_inputs *in) {
  memset(o, 0, sizeof *o);
  px_rl_kl(o->kl1, in->lp, in->ref, in->mask, MT, PX_RL_KL_K1, 10);
  px_rl_kl(o->kl3, in->lp, in->ref, in->mask, MT, PX_RL_KL_K3, 10);
  px_rl_shape_rewards(o->rew, o->kl1, in->scores, in->has_eos, -1, in->mask, MN, MR, 0.1f);
  px_rl_gae(o->adv, o->ret, o->rew, in->v, in->mask, MN, MR, 0.95f, 0.9f);
  px_rl_moments(o->moments, o->adv, in->mask, MT);
  double mean, std;
  px_rl_moments_mean_std(o->moments, 1e-8, &mean, &std);
  px_rl_whiten(o->wadv, o->adv, in->mask, MT, mean, std, 1);
  o->ploss = px_rl_policy_loss(o->glp, &o->ps, in->lp, in->old, o->wadv, in->mask, MT, 0.2f, 7);
  o->vloss = px_rl_value_loss(o->gv, &o->vs, in->v, in->vo, o->ret, in->mask, MT, 0.2f, 7);
  px_rl_explained_variance_sums(o->ev, in->v, o->ret, in->mask, MT);
  o->mean = px_rl_masked_mean(in->lp, in->mask, MT);
}

/* Changing the inputs at masked-out positions (to NaN, huge values, anything) changes no
 * output: post-EOS positions never leak into rewards, advantages, statistics or losses. */
static void test_masks_respected(void) {
  rl_inputs in;
  fill_normal(in.lp, MT, 70, 1.0f);
  fill_normal(in.ref, MT, 71, 1.0f);
  fill_normal(in.old, MT, 72, 0.3f);
  for (int i = 0; i < MT; i++) in.old[i] += in.lp[i];
  fill_normal(in.v, MT, 73, 1.0f);
  fill_normal(in.vo, MT, 74, 0.3f);
  for (int i = 0; i < MT; i++) in.vo[i] += in.v[i];
  fill_normal(in.scores, MN, 75, 1.0f);
  const int64_t len[MN] = {MR, 3, 1, 4};
  px_rl_mask_from_lengths(in.mask, len, MN, MR);
  const uint8_t eos[MN] = {0, 1, 1, 1};
  memcpy(in.has_eos, eos, MN);

  static rl_outputs base, other;
  run_all(&base, &in);
  const float garbage[3] = {NAN, 1e30f, -3.5f};
  for (int k = 0; k < 3; k++) {
    rl_inputs g = in;
    for (int i = 0; i < MT; i++)
      if (!g.mask[i]) g.lp[i] = g.ref[i] = g.old[i] = g.v[i] = g.vo[i] = garbage[k];
    run_all(&other, &g);
    CU_ASSERT(memcmp(&base, &other, sizeof base) == 0);
  }
  /* and every masked-out output is 0 */
  for (int i = 0; i < MT; i++)
    if (!in.mask[i])
      CU_ASSERT(base.kl1[i] == 0 && base.kl3[i] == 0 && base.rew[i] == 0 && base.adv[i] == 0 &&
                base.ret[i] == 0 && base.wadv[i] == 0 && base.glp[i] == 0 && base.gv[i] == 0);
  /* the score lands at the last real token only: row 1 (length 3) at t = 2 */
  CU_ASSERT_DOUBLE_EQUAL(base.rew[1 * MR + 2], -0.1 * base.kl1[1 * MR + 2] + in.scores[1], TOL);
  /* row 0 reached the limit without EOS: the penalty -1 at t = MR-1 */
  CU_ASSERT_DOUBLE_EQUAL(base.rew[MR - 1], -0.1 * base.kl1[MR - 1] - 1, TOL);
}

/* ---------------------------------------------------------------------------------------------
 * Critic-free estimators
 * ------------------------------------------------------------------------------------------- */

/* Two groups of 4 responses, 3 positions: group 0 scores 1, 0, 0, 1 (row 2 has no real token),
 * group 1 all 2. Group 0: mean 0.5, sample std sqrt((4 x 0.25) / 3) = 0.5773503, so GRPO gives
 * +-0.5 / 0.5773503 = +-0.8660254, Dr. GRPO +-0.5, RLOO 1 - 1/3 = 2/3 and 0 - 2/3 = -2/3.
 * Group 1: every estimator gives 0. */
static void test_group_advantages_known_values(void) {
  enum { N = 8, R = 3, K = 4 };
  const double seq[N] = {1, 0, 0, 1, 2, 2, 2, 2};
  const int64_t len[N] = {3, 1, 0, 2, 3, 3, 2, 1};
  uint8_t mask[N * R];
  px_rl_mask_from_lengths(mask, len, N, R);
  float grpo[N * R], dr[N * R], rloo[N * R];
  px_rl_grpo_advantages(grpo, seq, mask, N, R, K, 1, 1e-8);
  px_rl_grpo_advantages(dr, seq, mask, N, R, K, 0, 1e-8);
  px_rl_rloo_advantages(rloo, seq, mask, N, R, K);
  const double want_grpo[4] = {0.8660254, -0.8660254, -0.8660254, 0.8660254};
  const double want_dr[4] = {0.5, -0.5, -0.5, 0.5};
  const double want_rloo[4] = {2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3};
  for (int i = 0; i < N; i++)
    for (int t = 0; t < R; t++) {
      const int k = i * R + t, in = t < len[i];
      CU_ASSERT_DOUBLE_EQUAL(grpo[k], in && i < K ? want_grpo[i] : 0.0, 1e-6);
      CU_ASSERT_DOUBLE_EQUAL(dr[k], in && i < K ? want_dr[i] : 0.0, 1e-6);
      CU_ASSERT_DOUBLE_EQUAL(rloo[k], in && i < K ? want_rloo[i] : 0.0, 1e-6);
    }
  /* the definitions' identities on random rewards: GRPO's group mean 0 and sample std 1 (up to
   * eps), RLOO = k / (k - 1) x Dr. GRPO */
  enum { G = 5, K2 = 6 };
  double r[G * K2];
  float noise[G * K2];
  fill_normal(noise, G * K2, 41, 2.0f);
  for (int i = 0; i < G * K2; i++) r[i] = noise[i];
  uint8_t ones[G * K2];
  memset(ones, 1, sizeof ones);
  float a[G * K2], d[G * K2], l[G * K2];
  px_rl_grpo_advantages(a, r, ones, G * K2, 1, K2, 1, 0.0);
  px_rl_grpo_advantages(d, r, ones, G * K2, 1, K2, 0, 0.0);
  px_rl_rloo_advantages(l, r, ones, G * K2, 1, K2);
  for (int g = 0; g < G; g++) {
    double s = 0, s2 = 0;
    for (int j = 0; j < K2; j++) s += a[g * K2 + j], s2 += (double)a[g * K2 + j] * a[g * K2 + j];
    CU_ASSERT_DOUBLE_EQUAL(s / K2, 0.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(s2 / (K2 - 1), 1.0, 1e-5);
    for (int j = 0; j < K2; j++)
      CU_ASSERT_DOUBLE_EQUAL(l[g * K2 + j], (double)K2 / (K2 - 1) * d[g * K2 + j], 1e-5);
  }
}

/* Returns: rewards 1, 2, 3 give 6, 5, 3 at gamma 1 and 1 + 0.5 (2 + 0.5 x 3) = 2.75, 3.5, 3 at
 * gamma 0.5; a row cut after 2 tokens 3, 2, 0; and on random data GAE with V = 0, lambda = 1. */
static void test_returns(void) {
  const float rew[6] = {1, 2, 3, 1, 2, 3};
  const int64_t len[2] = {3, 2};
  uint8_t mask[6];
  px_rl_mask_from_lengths(mask, len, 2, 3);
  float ret[6];
  px_rl_returns(ret, rew, mask, 2, 3, 1.0f);
  const float want1[6] = {6, 5, 3, 3, 2, 0};
  for (int k = 0; k < 6; k++) CU_ASSERT_DOUBLE_EQUAL(ret[k], want1[k], TOL);
  px_rl_returns(ret, rew, mask, 2, 3, 0.5f);
  const float want_half[3] = {2.75f, 3.5f, 3};
  for (int k = 0; k < 3; k++) CU_ASSERT_DOUBLE_EQUAL(ret[k], want_half[k], TOL);
  enum { N = 6, R = 7 };
  float r[N * R], zero[N * R] = {0}, g[N * R], gae[N * R];
  uint8_t m[N * R];
  fill_normal(r, N * R, 42, 1.0f);
  random_mask(m, N, R, 43);
  px_rl_returns(g, r, m, N, R, 0.9f);
  px_rl_gae(gae, NULL, r, zero, m, N, R, 0.9f, 1.0f);
  for (int k = 0; k < N * R; k++) CU_ASSERT_DOUBLE_EQUAL(g[k], gae[k], 1e-6);
}

/* The KL loss term: lp = -1, lp_ref = -2: k3 = e^-1 - 1 + 1 = 0.3678794, its gradient
 * 1 - e^-1 = 0.6321206; beta 0.5, norm 2: loss 0.0919699, gradient 0.1580302 added to what dlp
 * held. A token whose k3 passes the clamp counts the clamp and gets no gradient. Then central
 * finite differences on random log-probs. */
static void test_kl_loss(void) {
  const float lp[3] = {-1, -1, -0.1f}, ref[3] = {-2, -2, -9};
  const uint8_t mask[3] = {1, 0, 1};
  float dlp[3] = {1, 1, 1};
  double sum = 0;
  const double loss = px_rl_kl_loss(dlp, &sum, lp, ref, mask, 2, 0.5f, 10.0f, 2.0);
  CU_ASSERT_DOUBLE_EQUAL(loss, 0.0919699, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(sum, 0.3678794, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(dlp[0], 1.1580302, 1e-6);
  CU_ASSERT_EQUAL(dlp[1], 1.0f); /* masked out */
  /* third token: d = -8.9, k3 = e^-8.9 + 7.9 = 7.90014 > clamp 5 */
  sum = 0;
  const double clamped = px_rl_kl_loss(dlp, &sum, lp + 2, ref + 2, mask + 2, 1, 1.0f, 5.0f, 1.0);
  CU_ASSERT_DOUBLE_EQUAL(clamped, 5.0, 1e-9);
  CU_ASSERT_EQUAL(dlp[2], 1.0f);

  enum { N = 24 };
  float x[N], xr[N], g[N] = {0};
  uint8_t m[N];
  fill_normal(x, N, 44, 1.0f);
  fill_normal(xr, N, 45, 1.0f);
  random_mask(m, 4, 6, 46);
  px_rl_kl_loss(g, NULL, x, xr, m, N, 0.3f, 100.0f, 7.0);
  for (int i = 0; i < N; i++) {
    const float keep = x[i];
    const float h = 1e-3f;
    x[i] = keep + h;
    const double up = px_rl_kl_loss(NULL, NULL, x, xr, m, N, 0.3f, 100.0f, 7.0);
    x[i] = keep - h;
    const double down = px_rl_kl_loss(NULL, NULL, x, xr, m, N, 0.3f, 100.0f, 7.0);
    x[i] = keep;
    CU_ASSERT_DOUBLE_EQUAL(g[i], (up - down) / (2.0 * h), 1e-3);
  }
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"mask_from_lengths", test_mask_from_lengths},
      {"kl_known_values", test_kl_known_values},
      {"shape_rewards_known_values", test_shape_rewards_known_values},
      {"adaptive_beta", test_adaptive_beta},
      {"gae_known_values", test_gae_known_values},
      {"gae_identity_gamma_lambda_one", test_gae_identity_gamma_lambda_one},
      {"gae_against_naive", test_gae_against_naive},
      {"whiten_known_values", test_whiten_known_values},
      {"whiten_random", test_whiten_random},
      {"policy_loss_known_values", test_policy_loss_known_values},
      {"policy_loss_ratio_one", test_policy_loss_ratio_one},
      {"policy_loss_finite_differences", test_policy_loss_finite_differences},
      {"value_loss_known_values", test_value_loss_known_values},
      {"value_loss_finite_differences", test_value_loss_finite_differences},
      {"explained_variance", test_explained_variance},
      {"partial_sums_add_up", test_partial_sums_add_up},
      {"masks_respected", test_masks_respected},
      {"group_advantages_known_values", test_group_advantages_known_values},
      {"returns", test_returns},
      {"kl_loss", test_kl_loss},
      CU_TEST_INFO_NULL};
  px_test_suite("rl", tests);
}
