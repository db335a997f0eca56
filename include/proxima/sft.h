/*
 * sft.h — supervised fine-tuning (`proxima sft`), the first stage of the pipeline: trains the
 * policy pi_base on an sft data set (loss on completion tokens) or a text data set (loss on
 * every token) and writes it to run.dir/checkpoints as the policy group.
 */
#ifndef PROXIMA_SFT_H
#define PROXIMA_SFT_H

#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/gpt.h"

/* The policy's model configuration from the [model] keys; PX_EINPUT when they do not fit
 * together (e.g. n_head not dividing n_embd). Not collective. */
px_status px_sft_model_config(const px_config *cfg, px_gpt_config *mc, px_error *err);

/* Runs SFT as configured. Collective; every rank returns the same status. */
px_status px_sft_run(const px_config *cfg, px_error *err);

#endif
