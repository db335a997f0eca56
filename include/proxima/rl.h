/*
 * rl.h — the RLHF math as pure functions over arrays (DESIGN.md section 2): the reward model's
 * pairwise loss here; the KL-shaped reward, GAE, whitening and the PPO losses join it. A reader
 * checks the formulas in src/rl/rl.c alone. Nothing here is collective.
 */
#ifndef PROXIMA_RL_H
#define PROXIMA_RL_H

#include <stddef.h>

/* Bradley–Terry loss of n preference pairs, L_i = -log sigma(r+_i - r-_i), computed stably as
 * softplus(r-_i - r+_i). Returns sum_i L_i / norm (norm: e.g. the number of pairs in the global
 * batch, so that partial sums over ranks add up to the mean) and fills dplus[i] = dL/dr+_i =
 * -sigma(r-_i - r+_i) / norm and dminus[i] = -dplus[i] (either may be NULL). */
double px_rl_pairwise_loss(float *dplus, float *dminus, const float *rplus, const float *rminus,
                           size_t n, double norm);

#endif
