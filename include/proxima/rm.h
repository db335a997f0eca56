/*
 * rm.h — the reward model R_phi(x, y) (`proxima rm`, `proxima eval --reward`): the scalar-head
 * transformer read at the EOS of y, its trunk started from the SFT policy, trained on
 * preference pairs with L = -log sigma(R(x, y+) - R(x, y-)). After training, the score is
 * normalised: gain and bias make R on responses sampled from pi_base have mean 0 and standard
 * deviation 1; they are stored on the checkpoint's reward group and applied whenever the model
 * scores.
 */
#ifndef PROXIMA_RM_H
#define PROXIMA_RM_H

#include <stdint.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "proxima/dataset.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/stage.h"

/* The iteration number that keys the normalisation's samples (apart from PPO's iterations). */
// clang-format off
#define PX_RM_NORM_ITERATION 0xFFFFFFF0u
// clang-format on

/* Everything besides the model and its Adam moments that `rm` needs to resume exactly, one
 * X(s, type, name) per /state dataset (as PX_SFT_STATE), and whether the score is normalised yet:
 * a checkpoint written before the normalisation has gain 1 and bias 0, and PPO refuses it. */
#define PX_RM_STATE(X, s)                                                                          \
  X(s, int64_t, step)                                                                              \
  X(s, int64_t, seed)                                                                              \
  X(s, int64_t, data_cursor)                                                                       \
  X(s, int64_t, adam_applied)                                                                      \
  X(s, int64_t, adam_skipped)                                                                      \
  X(s, int64_t, metrics_bytes)                                                                     \
  X(s, int64_t, normalized)

typedef struct px_rm_state {
  PX_RM_STATE(PX_CKPT_FIELD, )
} px_rm_state;

/* Trains the reward model as configured. Collective. */
px_status px_rm_run(const px_config *cfg, px_error *err);

/* After px_gpt_forward on a batch of scored rows (px_batch_add_scored): gain * value at each
 * row's last position (its EOS) + bias, into scores [B]. Not collective. */
void px_rm_scores(const px_gpt *model, const px_batch *b, float gain, float bias, float *scores);

/* Scores n (prompt, response) pairs, prompt and response as tokens of tok without BOS and EOS,
 * in batches of the model's max_B. Not collective. */
void px_rm_score(px_gpt *model, const px_tokenizer *tok, float gain, float bias,
                 const int32_t *const *prompts, const int64_t *prompt_lens,
                 const int32_t *const *responses, const int64_t *response_lens, int64_t n,
                 float *scores);

/* Loads the reward group of a checkpoint (file or run directory) into a new model for batches
 * of max_B sequences of max_T positions (0: its max_seq_len), with its gain and bias. Not
 * collective. */
px_status px_rm_load_model(const char *file_or_dir, px_gpt *model, int max_B, int max_T,
                           float *gain, float *bias, px_error *err);

/* Accuracy (pairs scored the right way round) and mean loss over the ranks' pairs: this rank
 * scores pairs idx[0..n) of its data set, n_global pairs in all, in micro-batches of mb.
 * Collective. */
px_status px_rm_evaluate(px_gpt *model, const px_tokenizer *tok, const px_dataset *pairs,
                         const int64_t *idx, int64_t n, int64_t n_global, int mb, double *accuracy,
                         double *loss);

/* PX_EINPUT naming the first pair of the prefs data set d (read from path) whose chosen or
 * rejected sequence, with BOS and EOS, is longer than max_T. Not collective. */
px_status px_rm_check_lengths(const px_dataset *d, int max_T, const char *path, px_error *err);

/* The normalisation: samples rm.norm_samples responses from the policy of policy_path on the
 * training prompts (spread over the ranks), scores those that ended with EOS, and sets gain and
 * bias from their allreduced mean and standard deviation; then scores them again with gain and
 * bias applied. stats: raw mean, raw std, normalised mean, normalised std, the fraction that
 * ended with EOS (NaN when rm.norm_samples is 0). Collective. */
px_status px_rm_normalize(const px_config *cfg, px_gpt *reward, const px_tokenizer *tok,
                          const char *policy_path, const px_dataset *pairs, const int64_t *train,
                          int64_t n_train, float *gain, float *bias, double stats[5],
                          px_error *err);

/* The stage's metrics and plots (stage.h): `proxima metrics` lists them. */
extern const px_stage_table px_rm_table;

#endif
