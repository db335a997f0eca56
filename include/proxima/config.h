/*
 * config.h — every configuration key of Proxima, in one table.
 *
 * PX_CONFIG_KEYS is the single source of keys, types, defaults, allowed values and help text:
 * the px_config struct, the INI reader, the command-line overrides, `proxima config` and the
 * resolved config.ini of a run directory are all generated from it. A key `section.name` is the
 * field `section_name` of px_config.
 *
 * Types: INT (int64_t), REAL (double), BOOL (int, 0 or 1), STR (char *, owned), CHOICE (char *,
 * one of the '|'-separated words of its limits). Limits of INT and REAL are "lo..hi", either end
 * optional; a value outside them is refused.
 */
#ifndef PROXIMA_CONFIG_H
#define PROXIMA_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "proxima/error.h"

/* X(section, name, type, default, limits, help) */
#define PX_CONFIG_KEYS(X)                                                                          \
  X(run, dir, STR, "runs/demo", "",                                                                \
    "run directory: the resolved config.ini, metrics.jsonl, checkpoints/ and the log go here")     \
  X(run, seed, INT, "1", "0..", "seed of every random draw (Philox keys); same seed, same run")    \
  X(run, log_level, CHOICE, "info", "debug|info|warn|quiet", "least important messages shown")     \
  X(synth, task, CHOICE, "arith", "arith",                                                         \
    "built-in task: arith = two-digit additions \"37+45=\" answered by the sum")                   \
  X(synth, out, STR, "data", "", "directory that data synth writes its .jsonl and .h5 files to")   \
  X(synth, n_sft, INT, "20000", "1..", "SFT examples (prompt, base-model completion)")             \
  X(synth, n_prefs, INT, "120000", "1..",                                                          \
    "preference pairs drawn before ties are dropped (two base completions of one prompt)")         \
  X(synth, n_prompts, INT, "4096", "1..", "PPO training prompts")                                  \
  X(synth, n_eval, INT, "500", "1..",                                                              \
    "held-out evaluation prompts, disjoint from every training prompt")                            \
  X(synth, base_accuracy, REAL, "0.6", "0..1",                                                     \
    "probability that a base completion is the right answer (the base model's bad habits)")        \
  X(synth, errors, CHOICE, "digit", "digit|offset",                                                \
    "how a wrong completion is wrong: digit = the last digit off by 1..max_offset, wrapping "      \
    "within its ten (the tens right); offset = the sum off by 1..max_offset (may cross a ten)")    \
  X(synth, max_offset, INT, "3", "1..9",                                                           \
    "a wrong completion is off by a nonzero offset drawn uniformly from -max_offset..max_offset")  \
  X(synth, flip_rate, REAL, "0.1", "0..0.5",                                                       \
    "fraction of preference labels flipped (rater noise); the agreement ceiling is 1 - flip_rate") \
  X(model, tokenizer, CHOICE, "byte", "byte|gpt2",                                                 \
    "byte = the 256 bytes + PAD, BOS, EOS (no files); gpt2 = GPT-2's byte-level BPE from "         \
    "model.tokenizer_dir (sft reads it; later stages take the checkpoint's)")                      \
  X(model, tokenizer_dir, STR, "", "",                                                             \
    "directory of the gpt2 tokenizer's vocab.json + merges.txt (or encoder.json + vocab.bpe)")     \
  X(model, vocab_size, INT, "0", "0..1048576",                                                     \
    "embedding rows: 0 = fit the tokenizer (byte 259, gpt2 50304: 50257 + PAD rounded up to 64); " \
    "rows past the tokenizer's ids only pad the embedding (never sampled)")                        \
  X(model, max_seq_len, INT, "32", "2..65536", "longest sequence (prompt + response + BOS, EOS)")  \
  X(model, n_layer, INT, "4", "1..1024", "transformer blocks")                                     \
  X(model, n_head, INT, "4", "1..4096", "attention heads (must divide n_embd)")                    \
  X(model, n_embd, INT, "128", "1..65536", "width of the residual stream")                         \
  X(sft, data, STR, "data/sft.h5", "", "training data: an sft or text data set (data import)")     \
  X(sft, init, STR, "", "",                                                                        \
    "start from this checkpoint's policy (a file, e.g. model import's, or a run directory): its "  \
    "shape and tokenizer replace the [model] keys; empty: a fresh model of the [model] keys")      \
  X(sft, steps, INT, "3000", "1..", "optimizer steps")                                             \
  X(sft, batch_size, INT, "64", "1..", "sequences per optimizer step, over all ranks")             \
  X(sft, micro_batch, INT, "64", "1..",                                                            \
    "sequences per forward/backward on one rank (gradients accumulate up to batch_size)")          \
  X(sft, lr, REAL, "0.003", "0..", "peak learning rate")                                           \
  X(sft, lr_min, REAL, "0.0002", "0..", "learning rate at the end of the decay")                   \
  X(sft, warmup_steps, INT, "100", "0..", "steps of linear warm-up")                               \
  X(sft, decay, CHOICE, "cosine", "cosine|linear|constant", "learning-rate decay after warm-up")   \
  X(sft, weight_decay, REAL, "0.1", "0..", "AdamW decoupled weight decay (matrices, embeddings)")  \
  X(sft, grad_clip, REAL, "1", "0..", "clip the global gradient norm to this (0: no clipping)")    \
  X(sft, heldout, INT, "512", "0..", "records held out of training for the held-out loss")         \
  X(sft, eval_every, INT, "500", "0..", "held-out loss every N steps (0: only at the end)")        \
  X(sft, log_every, INT, "50", "1..", "progress line and metrics.jsonl record every N steps")      \
  X(sft, checkpoint_every, INT, "500", "0..", "checkpoint every N steps (0: only at the end)")     \
  X(run, keep_last, INT, "3", "0..", "checkpoints kept in run.dir/checkpoints (0: all)")           \
  X(run, resume, STR, "", "",                                                                      \
    "continue: auto (run.dir's newest intact checkpoint; fresh if none) or a checkpoint file or "  \
    "run directory; empty: start fresh, refused where run.dir holds checkpoints")                  \
  X(run, max_nonfinite, INT, "10", "0..",                                                          \
    "stop (exit 2, writing no checkpoint) after this many optimizer steps in a row skipped for a " \
    "non-finite loss or gradient in one model (0: never stop)")                                    \
  X(run, overlap_allreduce, BOOL, "true", "",                                                      \
    "sum the gradients over the ranks during the last micro-batch's backward, layer by layer "     \
    "(false: one blocking allreduce after it; the same sums, bitwise on 2 ranks)")                 \
  X(sample, temperature, REAL, "1", "0..100",                                                      \
    "sampling temperature: logits are divided by it, and so are they in every log-prob pass "      \
    "(0: greedy, whose log-probs are at temperature 1)")                                           \
  X(sample, top_k, INT, "0", "0..", "sample among the k most likely tokens only (0: all)")         \
  X(sample, top_p, REAL, "1", "0..1",                                                              \
    "nucleus sampling: the fewest most likely tokens whose probability reaches top_p, after "      \
    "top_k (1: all; must be above 0)")                                                             \
  X(sample, max_new_tokens, INT, "32", "1..65536",                                                 \
    "response tokens at most (EOS included); a response also stops at model.max_seq_len")          \
  X(sample, batch, INT, "64", "1..65536",                                                          \
    "sequences a rank generates together: KV-cache slots, and the rows of each step's GEMMs")      \
  X(adam, beta1, REAL, "0.9", "0..0.999999", "AdamW first-moment decay (every stage)")             \
  X(adam, beta2, REAL, "0.95", "0..0.999999", "AdamW second-moment decay (every stage)")           \
  X(adam, eps, REAL, "1e-08", "0..", "AdamW epsilon (every stage)")                                \
  X(rm, init, STR, "runs/demo/sft", "",                                                            \
    "SFT checkpoint the reward model's trunk starts from (a file, or a run directory: LATEST)")    \
  X(rm, data, STR, "data/prefs.h5", "", "preference pairs: a prefs data set (data import)")        \
  X(rm, epochs, REAL, "2", "0.001..",                                                              \
    "passes over the training pairs; the learning rate decays to 0")                               \
  X(rm, batch_size, INT, "32", "1..", "pairs per optimizer step, over all ranks")                  \
  X(rm, micro_batch, INT, "32", "1..", "pairs per forward/backward on one rank")                   \
  X(rm, lr, REAL, "0.0005", "0..", "peak learning rate")                                           \
  X(rm, warmup_steps, INT, "50", "0..", "steps of linear warm-up")                                 \
  X(rm, weight_decay, REAL, "0", "0..", "AdamW decoupled weight decay")                            \
  X(rm, grad_clip, REAL, "1", "0..", "clip the global gradient norm to this (0: no clipping)")     \
  X(rm, heldout, INT, "512", "0..", "pairs held out for the held-out accuracy and loss")           \
  X(rm, eval_every, INT, "50", "0..", "held-out accuracy every N steps (0: only at the end)")      \
  X(rm, log_every, INT, "10", "1..", "progress line and metrics.jsonl record every N steps")       \
  X(rm, checkpoint_every, INT, "500", "0..", "checkpoint every N steps (0: only at the end)")      \
  X(rm, norm_samples, INT, "1024", "0..",                                                          \
    "responses sampled from the SFT policy to set the score's gain and bias (0: none)")            \
  X(ppo, policy, STR, "runs/demo/sft", "",                                                         \
    "SFT checkpoint (file or run directory): the policy starts from it; its frozen copy is "       \
    "pi_base")                                                                                     \
  X(ppo, reward, STR, "runs/demo/rm", "", "reward-model checkpoint (file or run directory)")       \
  X(ppo, value_init, CHOICE, "reward", "reward|sft",                                               \
    "the value model starts as the reward model, or as the SFT trunk with a fresh scalar head")    \
  X(ppo, prompts, STR, "data/prompts.h5", "", "training prompts: a prompts data set")              \
  X(ppo, eval_prompts, STR, "data/eval.h5", "",                                                    \
    "held-out prompts for the gold accuracy (needs references; empty: none)")                      \
  X(ppo, estimator, CHOICE, "gae", "gae|grpo|rloo|reinforce_pp",                                   \
    "advantages: gae (value model and GAE: the seed's PPO); grpo, rloo (against the other "        \
    "responses to the prompt; no critic); reinforce_pp (KL-shaped returns, whitened; no critic)")  \
  X(ppo, group_size, INT, "1", "1..1024",                                                          \
    "responses per prompt (grpo and rloo need 2 or more); an iteration has batch_size x "          \
    "group_size responses")                                                                        \
  X(ppo, grpo_scale_std, BOOL, "true", "",                                                         \
    "grpo divides by the group's reward std (false: Dr. GRPO, the difference from the mean)")      \
  X(ppo, kl_in, CHOICE, "reward", "reward|loss",                                                   \
    "the KL to pi_base: in the shaped reward (r - beta KL, the seed's) or a k3 loss term "         \
    "weighted by ppo.beta (GRPO's)")                                                               \
  X(ppo, iterations, INT, "200", "1..", "collect-then-update iterations")                          \
  X(ppo, batch_size, INT, "128", "1..", "prompts per iteration, over all ranks")                   \
  X(ppo, epochs, INT, "2", "1..", "passes over each iteration's rollouts")                         \
  X(ppo, minibatch, INT, "64", "1..", "responses per optimizer step, over all ranks")              \
  X(ppo, micro_batch, INT, "32", "1..", "responses per forward/backward on one rank")              \
  X(ppo, lr, REAL, "0.0001", "0..", "policy learning rate (constant after a short warm-up)")       \
  X(ppo, value_lr, REAL, "0.0001", "0..", "value-model learning rate")                             \
  X(ppo, warmup_steps, INT, "5", "0..", "optimizer steps of linear warm-up, both models")          \
  X(ppo, clip, REAL, "0.2", "0..1", "PPO ratio clip epsilon")                                      \
  X(ppo, value_clip, REAL, "0.2", "0..", "value clip around the rollout's values (0: none)")       \
  X(ppo, gamma, REAL, "1", "0..1", "GAE discount")                                                 \
  X(ppo, lambda, REAL, "0.95", "0..1", "GAE lambda")                                               \
  X(ppo, beta, REAL, "0.1", "0..", "KL coefficient (the start value when adaptive)")               \
  X(ppo, adaptive_kl, BOOL, "false", "", "adapt beta towards ppo.kl_target")                       \
  X(ppo, kl_target, REAL, "1", "0..", "target KL per response for the adaptive beta")              \
  X(ppo, kl_horizon, REAL, "10000", "1..", "horizon of the adaptive beta, in responses")           \
  X(ppo, kl_estimator, CHOICE, "k1", "k1|k3", "per-token KL estimator in the shaped reward")       \
  X(ppo, kl_clamp, REAL, "10", "0..", "per-token KL estimates are clamped to +-this")              \
  X(ppo, kl_bound, REAL, "5", "0..",                                                               \
    "mean KL per response to pi_base that the run should stay under (warned and reported)")        \
  X(ppo, no_eos_penalty, REAL, "-3", "",                                                           \
    "the score of a response that reached the length limit without EOS")                           \
  X(ppo, whiten_shift, BOOL, "true", "", "whitening subtracts the mean of the advantages")         \
  X(ppo, grad_clip, REAL, "1", "0..", "clip each model's global gradient norm (0: no clipping)")   \
  X(ppo, eval_every, INT, "20", "0..", "gold accuracy on ppo.eval_prompts every N iterations")     \
  X(ppo, checkpoint_every, INT, "20", "0..", "checkpoint every N iterations (0: only at the end)") \
  X(ppo, rollout_every, INT, "10", "0..",                                                          \
    "write a rollout buffer file every N iterations (0: never)")

typedef enum px_config_type {
  PX_CFG_INT,
  PX_CFG_REAL,
  PX_CFG_BOOL,
  PX_CFG_STR,
  PX_CFG_CHOICE
} px_config_type;

#define PX_CFG_CTYPE_INT int64_t
#define PX_CFG_CTYPE_REAL double
#define PX_CFG_CTYPE_BOOL int
#define PX_CFG_CTYPE_STR char *
#define PX_CFG_CTYPE_CHOICE char *

typedef struct px_config {
#define PX_CONFIG_FIELD(section, name, type, def, limits, help)                                    \
  PX_CFG_CTYPE_##type section##_##name;
  PX_CONFIG_KEYS(PX_CONFIG_FIELD)
#undef PX_CONFIG_FIELD
} px_config;

/* One row of the table, for code that walks every key. */
typedef struct px_config_key {
  const char *section, *name, *full; /* full = "section.name" */
  px_config_type type;
  const char *def, *limits, *help;
  size_t offset; /* of the field in px_config */
} px_config_key;

extern const px_config_key px_config_table[];
extern const int px_config_n_keys;

/* Fills cfg with every default. Not collective. */
void px_config_init(px_config *cfg);
void px_config_free(px_config *cfg);

/* Parses INI text (named `where` in messages, e.g. the file's path) into cfg. An unknown key, a
 * bad value or a malformed line is PX_EINPUT with "where:line: ..." naming the nearest valid
 * key. Not collective. */
px_status px_config_parse_ini(px_config *cfg, const char *text, const char *where, px_error *err);

/* Sets one key from text ("section.name", "value"); `where` names the source in messages
 * ("command line", "file.ini:12"). Not collective. */
px_status px_config_set(px_config *cfg, const char *key, const char *value, const char *where,
                        px_error *err);

/* Applies one "section.name=value" argument. Not collective. */
px_status px_config_override(px_config *cfg, const char *arg, px_error *err);

/* Writes cfg as INI text, every key, with its help as a comment. Not collective. */
void px_config_write_ini(const px_config *cfg, FILE *out);

/* The same as a malloc'd string (the caller frees it). Not collective. */
char *px_config_to_text(const px_config *cfg);

/* Prints the key table (key, type, default, allowed values, meaning). Not collective. */
void px_config_print_table(FILE *out);

/* The row of a "section.name" key, or NULL. */
const px_config_key *px_config_find(const char *full);

/* Levenshtein distance, ignoring case: the measure behind every "did you mean". */
int px_edit_distance(const char *a, const char *b);

/* The valid key closest to `full` in edit distance (never NULL). */
const char *px_config_nearest(const char *full);

/* The value of a key as text, as it would be written to an INI file; buf has n bytes. */
const char *px_config_format(const px_config *cfg, const px_config_key *key, char *buf, size_t n);

#endif
