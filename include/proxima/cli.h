/*
 * cli.h — the commands people run that are not a training stage (those are sft.h, rm.h, ppo.h):
 * generate, score, and eval of a policy or of the reward model. Each is collective and returns
 * a status that main turns into the exit status; rank 0 prints.
 *
 * `proxima eval --policy`: how good a tuned policy is, beside its base. On prompts with references
 * (the built-in task's eval.h5), for the tuned policy and pi_base: the gold exact-match accuracy of
 * sampled answers (the [sample] settings, with the draws PPO's own held-out evaluation uses, so the
 * numbers equal its eval_gold_accuracy records) and of greedy answers, the mean normalised reward
 * of the sampled answers (the no-EOS penalty for an answer that never ended), and the mean
 * KL(pi_theta || pi_base) of the tuned policy's sampled answers (summed k1 over each response's
 * tokens, as PPO's kl metric); and a few prompts with both answers side by side. Printed as a table
 * by rank 0 and written to a JSON file.
 *
 * pi_base and the reward model default to the policy checkpoint's own reference and reward
 * groups (a PPO checkpoint has both).
 */
#ifndef PROXIMA_CLI_H
#define PROXIMA_CLI_H

#include "proxima/config.h"
#include "proxima/error.h"

typedef struct px_cli_eval_args {
  const char *policy;  /* checkpoint (file or run directory) with the tuned policy */
  const char *base;    /* NULL: the policy checkpoint's reference group (if any) */
  const char *reward;  /* NULL: the policy checkpoint's reward group (if any) */
  const char *prompts; /* a prompts data set; references give the gold accuracy */
  const char *out;     /* JSON file to write; NULL: none */
  int examples;        /* prompts shown side by side */
} px_cli_eval_args;

/* Runs the evaluation. Collective: the prompts are split over the ranks. */
px_status px_cli_eval_policy(const px_config *cfg, const px_cli_eval_args *args, px_error *err);

/* `proxima generate`: loads the policy of the checkpoint ckpt (a file, or a directory with a
 * LATEST file, or a run directory with checkpoints/LATEST), generates a response to the prompt
 * `prompt` or to every prompt of the file `prompts` (a data set or JSONL with "prompt" fields),
 * the prompts split over the ranks, and prints one line per prompt in prompt order on rank 0:
 * the prompt, a tab and the response, with backslash, newline, tab and carriage return written
 * \\ \n \t \r; or, with json, one JSON object per prompt. Collective. */
px_status px_cli_generate(const px_config *cfg, const char *ckpt, const char *prompt,
                          const char *prompts, int json, px_error *err);

/* `proxima eval --reward CKPT --pairs FILE`: the reward model's accuracy and loss on a prefs
 * data set (or JSONL of prefs records), printed by rank 0. Collective. */
px_status px_cli_eval_reward(const px_config *cfg, const char *reward, const char *pairs,
                             px_error *err);

/* `proxima score --reward CKPT --data FILE`: the normalised score of each (prompt, completion)
 * of an sft data set (or JSONL of sft records), one line per record in order on rank 0:
 * score, tab, prompt, tab, completion (escaped as generate does), or JSONL with json.
 * Collective. */
px_status px_cli_score(const px_config *cfg, const char *reward, const char *data, int json,
                       px_error *err);

/* `proxima metrics`: every stage's metrics (key, file, how the ranks agree on it, the plot it is
 * drawn in) as a table, or with json as the JSON document scripts/report.py draws its plots
 * from, on stdout. Not collective: rank 0 calls it. */
px_status px_cli_metrics(int json, px_error *err);

#endif
