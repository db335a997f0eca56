/*
 * rl.h — the RLHF math as pure functions over arrays (DESIGN.md section 2): the reward model's
 * pairwise loss, the KL estimators and the KL-shaped reward, the adaptive β, GAE, whitening, the
 * PPO clipped surrogate and clipped value loss, and the statistics the PPO loop reports. A reader
 * checks the formulas in src/rl/rl.c alone. Nothing here is collective: where a statistic must be
 * global, a function returns this rank's partial sums in double, the caller allreduces them (one
 * MPI_Allreduce of a small double array) and passes the result on.
 *
 * Conventions for the PPO functions:
 * - Arrays are [N, R] row-major: N responses, R response positions (position t of row i is
 *   element i*R + t). Functions that do not need the rows take n = N*R elements.
 * - mask [N, R] (uint8): 1 at the real response tokens, from the first one up to and including
 *   EOS (or up to the length limit for a response without EOS), 0 after; each row is a prefix of
 *   ones (px_rl_mask_from_lengths builds it). Padding is never EOS, and is never read: every
 *   output at a masked-out position is 0 and no input there affects any output or sum.
 * - Losses return (sum over masked tokens of the per-token loss) / norm. With norm = the number
 *   of masked tokens in the global (mini)batch the result is the masked mean, and the per-rank
 *   (per-microbatch) results add up to it; gradients are divided by the same norm.
 * - Inputs are float, sums and recursions run in double.
 */
#ifndef PROXIMA_RL_H
#define PROXIMA_RL_H

#include <stddef.h>
#include <stdint.h>

/* Bradley–Terry loss of n preference pairs, L_i = -log sigma(r+_i - r-_i), computed stably as
 * softplus(r-_i - r+_i). Returns sum_i L_i / norm (norm: e.g. the number of pairs in the global
 * batch, so that partial sums over ranks add up to the mean) and fills dplus[i] = dL/dr+_i =
 * -sigma(r-_i - r+_i) / norm and dminus[i] = -dplus[i] (either may be NULL). */
double px_rl_pairwise_loss(float *dplus, float *dminus, const float *rplus, const float *rminus,
                           size_t n, double norm);

/* mask [N, R] from lengths[N], the number of real response tokens of each row (EOS included;
 * values below 0 count as 0, above R as R). Not collective. */
void px_rl_mask_from_lengths(uint8_t *mask, const int64_t *lengths, size_t N, size_t R);

/* Per-token KL estimators of KL(pi || pi_ref) from log-probs of the sampled tokens, with
 * d = lp - lp_ref:  k1 = d (unbiased, either sign),  k3 = exp(-d) - 1 + d (unbiased, >= 0).
 * Each is clamped to [-clamp, clamp] (so k3 to [0, clamp]; pass INFINITY for no clamp), which
 * bounds what one improbable token can do to the shaped reward. kl[n] is 0 where mask is 0. */
typedef enum px_rl_kl_kind { PX_RL_KL_K1 = 1, PX_RL_KL_K3 = 3 } px_rl_kl_kind;
void px_rl_kl(float *kl, const float *lp, const float *lp_ref, const uint8_t *mask, size_t n,
              px_rl_kl_kind kind, float clamp);

/* KL-shaped reward [N, R]: r_t = -beta * kl_t at each real token, plus the row's score at its
 * last real token (its EOS, or the last token of a response cut at the length limit); 0 where
 * mask is 0. The score of row i is scores[i] when has_eos[i] is nonzero and no_eos_penalty when
 * it is 0 (has_eos NULL: every row has EOS). Summed over t this is the seed's
 * r'(x,y) = R_phi(x,y) - beta KL. A row with no real token gets nothing. Not collective. */
void px_rl_shape_rewards(float *rewards, const float *kl, const float *scores,
                         const uint8_t *has_eos, float no_eos_penalty, const uint8_t *mask,
                         size_t N, size_t R, float beta);

/* Adaptive KL coefficient (Ziegler et al. 2019): returns
 * beta * (1 + clip(kl/target - 1, -0.2, 0.2) * n / horizon), where kl is the measured mean KL
 * per response (global), n the number of responses in the step and horizon the controller's
 * horizon in responses. Not collective (pass the global kl). */
double px_rl_adaptive_beta(double beta, double kl, double target, double n, double horizon);

/* GAE(gamma, lambda) per row, backwards from the last real token:
 * delta_t = r_t + gamma V_{t+1} - V_t (V after the last real token is 0),
 * A_t = delta_t + gamma lambda A_{t+1},  returns R_t = A_t + V_t (before any whitening).
 * adv, ret [N, R] (ret may be NULL), 0 where mask is 0; a masked position ends the recursion.
 * With gamma = lambda = 1, A at the first token is sum_t r_t - V_0 = r'(x,y) - V(x). */
void px_rl_gae(float *adv, float *ret, const float *rewards, const float *values,
               const uint8_t *mask, size_t N, size_t R, float gamma, float lambda);

/* This rank's masked partial sums of x[n]: moments[0] = sum x, [1] = sum x^2, [2] = count, in
 * double. Allreduce (sum) the three across ranks, then px_rl_moments_mean_std. */
void px_rl_moments(double moments[3], const float *x, const uint8_t *mask, size_t n);

/* Mean and standard deviation from (global) moments: mean = sum/count,
 * std = sqrt(max(sum2/count - mean^2, 0) + eps) (population variance; eps, e.g. 1e-8, keeps
 * a constant batch finite). With count 0: mean 0, std sqrt(eps). Either output may be NULL. */
void px_rl_moments_mean_std(const double moments[3], double eps, double *mean, double *std);

/* Whitening with given (global) statistics: out = (x - mean) / std where mask is 1, 0 where it
 * is 0. With shift_mean = 0, out = x / std: the scale is normalised but the mean is kept, so
 * a batch whose advantages are all positive stays positive. out may be x. Not collective. */
void px_rl_whiten(float *out, const float *x, const uint8_t *mask, size_t n, double mean,
                  double std, int shift_mean);

/* Masked mean of x[n] on this rank (0 when nothing is masked in); for a global mean use
 * px_rl_moments and allreduce. */
double px_rl_masked_mean(const float *x, const uint8_t *mask, size_t n);

/* Partial sums reported by the PPO losses, over this rank's masked tokens, in double, so that
 * they allreduce directly: clip fraction = clipped / count, approximate KL = approx_kl / count.
 * The losses add into the struct (zero it first), so microbatches accumulate too. */
typedef struct px_rl_ppo_sums {
  double count;     /* masked tokens */
  double clipped;   /* tokens counted as clipped (see each loss) */
  double approx_kl; /* policy loss only: sum of (rho - 1) - log rho */
} px_rl_ppo_sums;

/* PPO clipped surrogate: with rho = exp(lp - lp_old), per token
 * l = -min(rho A, clip(rho, 1 - eps, 1 + eps) A); returns sum_masked l / norm and fills
 * dlp[n] = dl/dlp / norm (0 where mask is 0; may be NULL): -A rho / norm where the unclipped
 * term is the minimum, 0 where the clipped (constant) term is. sums (may be NULL): clipped counts
 * tokens with |rho - 1| > eps (the usual clip fraction, whatever the sign of A), approx_kl adds
 * the k3 estimator (rho - 1) - log rho of KL(pi_old || pi), >= 0 and exactly 0 when
 * lp == lp_old. Not collective. */
double px_rl_policy_loss(float *dlp, px_rl_ppo_sums *sums, const float *lp, const float *lp_old,
                         const float *adv, const uint8_t *mask, size_t n, float eps, double norm);

/* Clipped value loss: with Vc = clip(V, V_old - eps_v, V_old + eps_v), per token
 * l = 0.5 max((V - R)^2, (Vc - R)^2); returns sum_masked l / norm and fills dv[n] = dl/dV / norm
 * ((V - R) / norm where the unclipped term is the maximum, 0 where the clipped one is; may be
 * NULL). sums (may be NULL): clipped counts tokens where the clipped term is strictly larger
 * (its gradient is then 0). eps_v = INFINITY: no clipping. Not collective. */
double px_rl_value_loss(float *dv, px_rl_ppo_sums *sums, const float *v, const float *v_old,
                        const float *ret, const uint8_t *mask, size_t n, float eps_v, double norm);

/* ---------------------------------------------------------------------------------------------
 * Critic-free estimators (no value model). The responses to one prompt form a group of k rows,
 * rows g*k .. g*k + k - 1 (N a multiple of k); a group is whole on one rank, so its statistics
 * need no communication. GRPO and RLOO give each response one advantage from its sequence reward
 * seq[i], written at every real token of the row (0 where mask is 0); seq[i] is the row's sum of
 * shaped rewards (px_rl_row_sums): the score minus beta times its KL when the KL is in the
 * reward, the score alone when the KL is a loss term (px_rl_kl_loss). REINFORCE++ keeps the
 * per-token returns (px_rl_returns) and whitens them over the global batch, as GAE's advantages.
 * ------------------------------------------------------------------------------------------- */

/* out[i] = sum of x[i, t] over row i's masked tokens, in double. Not collective. */
void px_rl_row_sums(double *out, const float *x, const uint8_t *mask, size_t N, size_t R);

/* GRPO (Shao et al. 2024, DeepSeekMath): A_i = (r_i - mean_g) / (std_g + eps), std_g the
 * sample standard deviation (n - 1) of the group's sequence rewards, as DeepSeekMath's, TRL's and
 * verl's; scale_by_std = 0 gives Dr. GRPO's A_i = r_i - mean_g (Liu et al. 2025: dividing by the
 * std weights prompts whose answers are all nearly right or all nearly wrong up). A group whose
 * rewards are equal gets 0. k >= 2. Not collective. */
void px_rl_grpo_advantages(float *adv, const double *seq, const uint8_t *mask, size_t N, size_t R,
                           size_t k, int scale_by_std, double eps);

/* RLOO (Ahmadian et al. 2024): A_i = r_i - (sum over the group's other k - 1 rewards) / (k - 1),
 * the mean of the others as the baseline (k / (k - 1) times GRPO's unscaled advantage). k >= 2.
 * Not collective. */
void px_rl_rloo_advantages(float *adv, const double *seq, const uint8_t *mask, size_t N, size_t R,
                           size_t k);

/* Per-token returns of the shaped rewards, G_t = r_t + gamma G_{t+1} (G after the last real
 * token 0): GAE with V = 0 and lambda = 1, REINFORCE++'s (Hu 2025) advantage before its global
 * whitening. ret [N, R], 0 where mask is 0. Not collective. */
void px_rl_returns(float *ret, const float *rewards, const uint8_t *mask, size_t N, size_t R,
                   float gamma);

/* The KL to the reference as a loss term (GRPO's): per token beta * k3 with
 * k3 = exp(lp_ref - lp) - (lp_ref - lp) - 1 (an unbiased estimate of KL(pi || pi_ref), >= 0),
 * clamped to [0, clamp] as px_rl_kl's (the gradient is 0 where the clamp holds). Returns
 * beta * sum_masked k3 / norm and ADDS d/dlp = beta (1 - exp(lp_ref - lp)) / norm to dlp (may be
 * NULL), so that it joins the policy loss's gradient; sum_kl (may be NULL) adds the unweighted
 * sum of k3 for the report. Not collective. */
double px_rl_kl_loss(float *dlp, double *sum_kl, const float *lp, const float *lp_ref,
                     const uint8_t *mask, size_t n, float beta, float clamp, double norm);

/* Explained variance 1 - Var(R - V) / Var(R) over masked tokens, as partial sums:
 * sums[0..4] = sum R, sum R^2, sum (R - V), sum (R - V)^2, count (this rank, double). */
void px_rl_explained_variance_sums(double sums[5], const float *v, const float *ret,
                                   const uint8_t *mask, size_t n);
/* From (global) sums: 1 - Var(R - V) / Var(R), population variances; 0 when Var(R) is 0 or
 * count is 0 (undefined, and metrics must stay finite). */
double px_rl_explained_variance(const double sums[5]);

#endif
