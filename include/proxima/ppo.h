/*
 * ppo.h — `proxima ppo`: fine-tunes the SFT policy with PPO against the reward model, with the
 * KL brake toward the SFT policy (pi_base) and a learned value baseline (DESIGN.md section 2).
 * Writes metrics.jsonl (one record per iteration, every metric named) and checkpoints (every
 * ppo.checkpoint_every iterations, on a stop signal and at the end) with the policy, reference,
 * value and reward groups, the policy's and value's Adam moments, and the state below.
 */
#ifndef PROXIMA_PPO_H
#define PROXIMA_PPO_H

#include <stdint.h>

#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/stage.h"

/* Everything besides the models and moments that PPO needs to resume exactly, one X(s, type,
 * name) per /state dataset (as PX_SFT_STATE): iterations done, the seed (every draw is keyed by
 * seed, iteration and sample, so no other generator state exists), the position in the stream
 * of shuffled prompts, the KL coefficient beta (adaptive), the AdamW steps of both optimizers,
 * metrics.jsonl's size, and pi_base's held-out gold accuracy measured at the start. */
// clang-format off
#define PX_PPO_STATE(X, s)                                                                         \
  X(s, int64_t, iteration) X(s, int64_t, seed) X(s, int64_t, prompt_cursor) X(s, double, beta)     \
  X(s, int64_t, policy_adam_applied) X(s, int64_t, policy_adam_skipped)                            \
  X(s, int64_t, value_adam_applied) X(s, int64_t, value_adam_skipped)                              \
  X(s, int64_t, metrics_bytes) X(s, double, base_gold)
// clang-format on

typedef struct px_ppo_state {
  PX_PPO_STATE(PX_CKPT_FIELD, )
} px_ppo_state;

/* The iteration number that keys the draws of the held-out evaluation (PPO's
 * eval_gold_accuracy and `proxima eval`), apart from the training iterations. */
#define PX_PPO_EVAL_ITERATION 0xFFFFFF00u

/* The positions a PPO sequence may take, which size every model's activations and the KV
 * cache: BOS, the longest prompt, max_new_tokens and room for EOS, at most the model's
 * max_seq_len (for GPT-2's 1024 and 64-token prompts with 128-token responses, 196 instead of
 * 1024: the arenas a fifth the size). Not collective. */
int px_ppo_positions(int max_seq_len, int64_t longest_prompt, int64_t max_new_tokens);

/* Runs PPO as configured ([ppo] and [sample] keys). Collective. */
px_status px_ppo_run(const px_config *cfg, px_error *err);

/* The stage's metrics and plots (stage.h): `proxima metrics` lists them. */
extern const px_stage_table px_ppo_table;

#endif
