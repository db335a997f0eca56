/*
 * sft.h — supervised fine-tuning (`proxima sft`), the first stage of the pipeline: trains the
 * policy pi_base on an sft data set (loss on completion tokens) or a text data set (loss on
 * every token) and writes it to run.dir/checkpoints as the policy group.
 */
#ifndef PROXIMA_SFT_H
#define PROXIMA_SFT_H

#include <stdint.h>

#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/stage.h"

/* Everything besides the policy and its Adam moments that SFT needs to resume exactly, one
 * X(s, type, name) per /state dataset of its checkpoints (checkpoint.h, PX_CKPT_FIELD and
 * PX_CKPT_VAR): the steps done, the seed of every draw (a resume must use the same), the
 * position in the endless stream of shuffled records, the AdamW steps applied and skipped, and
 * the size of metrics.jsonl when the checkpoint was written. */
// clang-format off
#define PX_SFT_STATE(X, s)                                                                         \
  X(s, int64_t, step) X(s, int64_t, seed) X(s, int64_t, data_cursor)                               \
  X(s, int64_t, adam_applied) X(s, int64_t, adam_skipped) X(s, int64_t, metrics_bytes)
// clang-format on

typedef struct px_sft_state {
  PX_SFT_STATE(PX_CKPT_FIELD, )
} px_sft_state;

/* The policy's model configuration from the [model] keys for the tokenizer tok (vocab_size 0:
 * px_tokenizer_vocab_size); PX_EINPUT when they do not fit together (e.g. n_head not dividing
 * n_embd, a vocab_size below the tokenizer's ids). Not collective. */
px_status px_sft_model_config(const px_config *cfg, const px_tokenizer *tok, px_gpt_config *mc,
                              px_error *err);

/* Runs SFT as configured. Collective; every rank returns the same status. */
px_status px_sft_run(const px_config *cfg, px_error *err);

/* The stage's metrics and plots (stage.h): `proxima metrics` lists them. */
extern const px_stage_table px_sft_table;

#endif
