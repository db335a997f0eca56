/*
 * ppo.h — `proxima ppo`: fine-tunes the SFT policy with PPO against the reward model, with the
 * KL brake toward the SFT policy (pi_base) and a learned value baseline (DESIGN.md section 2).
 * Writes metrics.jsonl (one record per iteration, every metric named) and, at the end, a
 * checkpoint with the policy, reference, value and reward groups.
 */
#ifndef PROXIMA_PPO_H
#define PROXIMA_PPO_H

#include "proxima/config.h"
#include "proxima/error.h"

/* Runs PPO as configured ([ppo] and [sample] keys). Collective. */
px_status px_ppo_run(const px_config *cfg, px_error *err);

#endif
