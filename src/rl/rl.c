/*
 * rl.c — the RLHF formulas of rl.h, one function each: the reward model's pairwise loss, then
 * the PPO math (KL, shaped reward, adaptive beta, GAE, whitening, the two clipped losses), then
 * the critic-free estimators (GRPO, RLOO, REINFORCE++'s returns, the KL as a loss term).
 */
#include "proxima/rl.h"

#include <math.h>

/* softplus(x) = log(1 + e^x) without overflow, and sigma(x) = 1 / (1 + e^-x). */
static double px_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double px_sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double px_rl_pairwise_loss(float *dplus, float *dminus, const float *rplus, const float *rminus,
                           size_t n, double norm) {
  /* L = -log sigma(d), d = r+ - r-:  L = softplus(-d),  dL/dd = -sigma(-d). */
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)rplus[i] - (double)rminus[i];
    sum += px_softplus(-d);
    double g = -px_sigmoid(-d) / norm;
    if (dplus) dplus[i] = (float)g;
    if (dminus) dminus[i] = (float)-g;
  }
  return sum / norm;
}

/* ---------------------------------------------------------------------------------------------
 * PPO (DESIGN.md section 2). Arrays [N, R] row-major; mask 1 at real response tokens (a prefix
 * of each row); every masked-out output is 0 and no masked-out input is read.
 * --------------------------------------------------------------------------------------------- */

static double px_clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

void px_rl_mask_from_lengths(uint8_t *mask, const int64_t *lengths, size_t N, size_t R) {
  for (size_t i = 0; i < N; i++) {
    size_t len = lengths[i] <= 0 ? 0 : (uint64_t)lengths[i] >= R ? R : (size_t)lengths[i];
    for (size_t t = 0; t < R; t++) mask[i * R + t] = t < len;
  }
}

void px_rl_kl(float *kl, const float *lp, const float *lp_ref, const uint8_t *mask, size_t n,
              px_rl_kl_kind kind, float clamp) {
  for (size_t i = 0; i < n; i++) {
    if (!mask[i]) {
      kl[i] = 0;
      continue;
    }
    double d = (double)lp[i] - (double)lp_ref[i]; /* log pi/pi_ref */
    /* k1 = d;  k3 = pi_ref/pi - 1 - log(pi_ref/pi) = e^-d - 1 + d  (Schulman 2020) */
    double k = kind == PX_RL_KL_K3 ? expm1(-d) + d : d;
    kl[i] = (float)px_clamp(k, -(double)clamp, (double)clamp);
  }
}

void px_rl_shape_rewards(float *rewards, const float *kl, const float *scores,
                         const uint8_t *has_eos, float no_eos_penalty, const uint8_t *mask,
                         size_t N, size_t R, float beta) {
  for (size_t i = 0; i < N; i++) {
    const uint8_t *m = mask + i * R;
    float *r = rewards + i * R;
    size_t last = R; /* the last real token; R when the row has none */
    for (size_t t = 0; t < R; t++) {
      r[t] = m[t] ? -beta * kl[i * R + t] : 0.0f; /* r_t = -beta kl_t */
      if (m[t]) last = t;
    }
    if (last < R) r[last] += (!has_eos || has_eos[i]) ? scores[i] : no_eos_penalty;
  }
}

double px_rl_adaptive_beta(double beta, double kl, double target, double n, double horizon) {
  double err = px_clamp(kl / target - 1.0, -0.2, 0.2);
  return beta * (1.0 + err * n / horizon);
}

void px_rl_gae(float *adv, float *ret, const float *rewards, const float *values,
               const uint8_t *mask, size_t N, size_t R, float gamma, float lambda) {
  for (size_t i = 0; i < N; i++) {
    double a_next = 0, v_next = 0; /* A and V after the last real token are 0 */
    for (size_t t = R; t-- > 0;) {
      size_t k = i * R + t;
      if (!mask[k]) {
        adv[k] = 0;
        if (ret) ret[k] = 0;
        a_next = v_next = 0;
        continue;
      }
      double v = values[k];
      double delta = (double)rewards[k] + gamma * v_next - v; /* r_t + gamma V_{t+1} - V_t */
      double a = delta + (double)gamma * lambda * a_next;     /* + gamma lambda A_{t+1} */
      adv[k] = (float)a;
      if (ret) ret[k] = (float)(a + v); /* returns before whitening */
      a_next = a, v_next = v;
    }
  }
}

void px_rl_moments(double moments[3], const float *x, const uint8_t *mask, size_t n) {
  double s = 0, s2 = 0, c = 0;
  for (size_t i = 0; i < n; i++)
    if (mask[i]) s += x[i], s2 += (double)x[i] * x[i], c += 1;
  moments[0] = s, moments[1] = s2, moments[2] = c;
}

void px_rl_moments_mean_std(const double moments[3], double eps, double *mean, double *std) {
  double c = moments[2], mu = c > 0 ? moments[0] / c : 0;
  double var = c > 0 ? moments[1] / c - mu * mu : 0;
  if (mean) *mean = mu;
  if (std) *std = sqrt((var > 0 ? var : 0) + eps);
}

void px_rl_whiten(float *out, const float *x, const uint8_t *mask, size_t n, double mean,
                  double std, int shift_mean) {
  double shift = shift_mean ? mean : 0, inv = 1.0 / std;
  for (size_t i = 0; i < n; i++) out[i] = mask[i] ? (float)(((double)x[i] - shift) * inv) : 0.0f;
}

double px_rl_masked_mean(const float *x, const uint8_t *mask, size_t n) {
  double m[3];
  px_rl_moments(m, x, mask, n);
  return m[2] > 0 ? m[0] / m[2] : 0;
}

double px_rl_policy_loss(float *dlp, px_rl_ppo_sums *sums, const float *lp, const float *lp_old,
                         const float *adv, const uint8_t *mask, size_t n, float eps, double norm) {
  double loss = 0, count = 0, clipped = 0, akl = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mask[i]) {
      if (dlp) dlp[i] = 0;
      continue;
    }
    double d = (double)lp[i] - (double)lp_old[i], rho = exp(d), a = adv[i];
    double unclipped = rho * a, clip = px_clamp(rho, 1.0 - eps, 1.0 + eps) * a;
    /* l = -min(rho A, clip(rho) A); d rho / d lp = rho. Inside the clip range the two terms
     * are equal and the unclipped one carries the gradient; outside, the clipped one is
     * constant. */
    int take_unclipped = unclipped <= clip;
    loss -= take_unclipped ? unclipped : clip;
    if (dlp) dlp[i] = take_unclipped ? (float)(-a * rho / norm) : 0.0f;
    count += 1;
    clipped += fabs(rho - 1.0) > eps;
    akl += expm1(d) - d; /* (rho - 1) - log rho */
  }
  if (sums) sums->count += count, sums->clipped += clipped, sums->approx_kl += akl;
  return loss / norm;
}

double px_rl_value_loss(float *dv, px_rl_ppo_sums *sums, const float *v, const float *v_old,
                        const float *ret, const uint8_t *mask, size_t n, float eps_v, double norm) {
  double loss = 0, count = 0, clipped = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mask[i]) {
      if (dv) dv[i] = 0;
      continue;
    }
    double vi = v[i], vo = v_old[i], r = ret[i];
    double vc = px_clamp(vi, vo - eps_v, vo + eps_v);
    double lu = (vi - r) * (vi - r), lc = (vc - r) * (vc - r);
    /* l = 0.5 max(lu, lc); inside the clip range vc = V and lu = lc; outside, vc is constant */
    int take_unclipped = lu >= lc;
    loss += 0.5 * (take_unclipped ? lu : lc);
    if (dv) dv[i] = take_unclipped ? (float)((vi - r) / norm) : 0.0f;
    count += 1;
    clipped += !take_unclipped;
  }
  if (sums) sums->count += count, sums->clipped += clipped;
  return loss / norm;
}

void px_rl_explained_variance_sums(double sums[5], const float *v, const float *ret,
                                   const uint8_t *mask, size_t n) {
  for (int k = 0; k < 5; k++) sums[k] = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mask[i]) continue;
    double r = ret[i], e = r - (double)v[i];
    sums[0] += r, sums[1] += r * r, sums[2] += e, sums[3] += e * e, sums[4] += 1;
  }
}

double px_rl_explained_variance(const double sums[5]) {
  double c = sums[4];
  if (c <= 0) return 0;
  double mr = sums[0] / c, var_r = sums[1] / c - mr * mr;
  double me = sums[2] / c, var_e = sums[3] / c - me * me;
  return var_r > 0 ? 1.0 - var_e / var_r : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Critic-free estimators: groups of k rows, one advantage per response (rl.h).
 * --------------------------------------------------------------------------------------------- */

void px_rl_row_sums(double *out, const float *x, const uint8_t *mask, size_t N, size_t R) {
  for (size_t i = 0; i < N; i++) {
    double s = 0;
    for (size_t t = 0; t < R; t++)
      if (mask[i * R + t]) s += x[i * R + t];
    out[i] = s;
  }
}

/* Row i's advantage a at each of its real tokens, 0 elsewhere. */
static void px_rl_fill_row(float *adv, const uint8_t *mask, size_t i, size_t R, double a) {
  for (size_t t = 0; t < R; t++) adv[i * R + t] = mask[i * R + t] ? (float)a : 0.0f;
}

void px_rl_grpo_advantages(float *adv, const double *seq, const uint8_t *mask, size_t N, size_t R,
                           size_t k, int scale_by_std, double eps) {
  for (size_t g = 0; g + k <= N; g += k) {
    double mean = 0, ss = 0;
    for (size_t j = 0; j < k; j++) mean += seq[g + j];
    mean /= (double)k;
    for (size_t j = 0; j < k; j++) ss += (seq[g + j] - mean) * (seq[g + j] - mean);
    const double std = sqrt(ss / (double)(k - 1)); /* sample std, as torch.std */
    for (size_t j = 0; j < k; j++) {
      const double a = seq[g + j] - mean;
      px_rl_fill_row(adv, mask, g + j, R, scale_by_std ? a / (std + eps) : a);
    }
  }
}

void px_rl_rloo_advantages(float *adv, const double *seq, const uint8_t *mask, size_t N, size_t R,
                           size_t k) {
  for (size_t g = 0; g + k <= N; g += k) {
    double sum = 0;
    for (size_t j = 0; j < k; j++) sum += seq[g + j];
    for (size_t j = 0; j < k; j++) /* r_i - mean of the others */
      px_rl_fill_row(adv, mask, g + j, R, seq[g + j] - (sum - seq[g + j]) / (double)(k - 1));
  }
}

void px_rl_returns(float *ret, const float *rewards, const uint8_t *mask, size_t N, size_t R,
                   float gamma) {
  for (size_t i = 0; i < N; i++) {
    double g_next = 0;
    for (size_t t = R; t-- > 0;) {
      const size_t k = i * R + t;
      if (!mask[k]) {
        ret[k] = 0, g_next = 0;
        continue;
      }
      g_next = (double)rewards[k] + (double)gamma * g_next; /* G_t = r_t + gamma G_{t+1} */
      ret[k] = (float)g_next;
    }
  }
}

double px_rl_kl_loss(float *dlp, double *sum_kl, const float *lp, const float *lp_ref,
                     const uint8_t *mask, size_t n, float beta, float clamp, double norm) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    if (!mask[i]) continue;
    const double d = (double)lp_ref[i] - (double)lp[i]; /* log pi_ref/pi */
    const double k3 = expm1(d) - d;                     /* e^d - 1 - d >= 0 */
    const int clamped = k3 > (double)clamp;
    sum += clamped ? (double)clamp : k3;
    /* d k3 / d lp = -(e^d - 1) = 1 - e^d */
    if (dlp && !clamped) dlp[i] += (float)((double)beta * -expm1(d) / norm);
  }
  if (sum_kl) *sum_kl += sum;
  return (double)beta * sum / norm;
}
