/*
 * eval.h — `proxima eval --policy`: how good a tuned policy is, beside its base.
 *
 * On prompts with references (the built-in task's eval.h5), for the tuned policy and pi_base:
 * the gold exact-match accuracy of sampled answers (the [sample] settings, with the draws PPO's
 * own held-out evaluation uses, so the numbers equal its eval_gold_accuracy records) and of
 * greedy answers, the mean normalised reward of the sampled answers (the no-EOS penalty for an
 * answer that never ended), and the mean KL(pi_theta || pi_base) of the tuned policy's sampled
 * answers (summed k1 over each response's tokens, as PPO's kl metric); and a few prompts with
 * both answers side by side. Printed as a table by rank 0 and written to a JSON file.
 *
 * pi_base and the reward model default to the policy checkpoint's own reference and reward
 * groups (a PPO checkpoint has both).
 */
#ifndef PROXIMA_EVAL_H
#define PROXIMA_EVAL_H

#include "proxima/config.h"
#include "proxima/error.h"

typedef struct px_eval_args {
  const char *policy;  /* checkpoint (file or run directory) with the tuned policy */
  const char *base;    /* NULL: the policy checkpoint's reference group (if any) */
  const char *reward;  /* NULL: the policy checkpoint's reward group (if any) */
  const char *prompts; /* a prompts data set; references give the gold accuracy */
  const char *out;     /* JSON file to write; NULL: none */
  int examples;        /* prompts shown side by side */
} px_eval_args;

/* Runs the evaluation. Collective: the prompts are split over the ranks. */
px_status px_eval_policy_run(const px_config *cfg, const px_eval_args *args, px_error *err);

#endif
