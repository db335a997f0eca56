/*
 * checkpoint.h — model checkpoints in HDF5 (DESIGN.md section 6).
 *
 * One file per step, DIR/ckpt-00000100.h5: root attributes format "proxima-checkpoint",
 * format_version, step, iteration and config (the resolved INI text); one group per model
 * (/policy, /reference, /value, /reward) with attributes vocab_size, max_seq_len, n_layer,
 * n_head, n_embd, head ("lm" or "scalar") — the reward group also gain and bias — and one
 * float32 dataset per tensor, named and shaped as the model's tensor table; the Adam moments in
 * /optim/<model>/m/<tensor> and /optim/<model>/v/<tensor> with attribute step. Every dataset is
 * chunked with the Fletcher-32 checksum. A checkpoint is written under a temporary name,
 * fsynced and renamed; DIR/LATEST (one line naming the newest complete checkpoint) is replaced
 * the same way, last; older checkpoints are pruned to keep_last.
 *
 * Reading validates everything against what the caller expects: a file that is not a
 * checkpoint, a missing group, a tensor of the wrong shape (a checkpoint of another model
 * size), a checksum error — each is PX_EINPUT with a message naming the file and the object.
 */
#ifndef PROXIMA_CHECKPOINT_H
#define PROXIMA_CHECKPOINT_H

#include <stdint.h>

#include "proxima/error.h"
#include "proxima/gpt.h"

/* One model of a checkpoint. */
typedef struct px_ckpt_model {
  const char *group;  /* "policy", "reference", "value" or "reward" */
  px_gpt *model;      /* its parameters are written (or read into it) */
  int optim;          /* also its Adam moments (the model must be trainable) */
  int64_t optim_step; /* AdamW steps taken, stored as the moments' step attribute */
  double gain, bias;  /* reward normalisation; written and read for the reward group */
} px_ckpt_model;

/* Writes DIR/ckpt-<step>.h5 holding the models, then LATEST, then prunes all but the newest
 * keep_last (0 keeps all). config_text is the resolved INI. Not collective: one rank writes. */
px_status px_ckpt_write(const char *dir, int64_t step, int64_t iteration, const char *config_text,
                        const px_ckpt_model *models, int n_models, int keep_last, px_error *err);

/* The path of DIR's newest complete checkpoint (from LATEST) into path of n bytes; PX_EINPUT
 * when there is none. Not collective. */
px_status px_ckpt_latest(const char *dir, char *path, size_t n, px_error *err);

/* A checkpoint named by the user: a file as it is, or a directory (a run's checkpoints/ or the
 * run directory itself) through its LATEST. Into path of n bytes. Not collective. */
px_status px_ckpt_resolve(const char *file_or_dir, char *path, size_t n, px_error *err);

/* Reads the model configuration of a group, to build a model that fits it. Not collective. */
px_status px_ckpt_read_config(const char *path, const char *group, px_gpt_config *config,
                              px_error *err);

/* Reads the tensors (and, with m->optim, the moments and their step) of m->group into
 * m->model, which must have the group's configuration. Not collective. */
px_status px_ckpt_read_model(const char *path, px_ckpt_model *m, px_error *err);

/* Reads only the trunk of a group (every tensor but a scalar head's head_w and head_b) into
 * model, whose configuration must match the group's except for the head: how a reward or value
 * model starts from the SFT policy. Not collective. */
px_status px_ckpt_read_trunk(const char *path, const char *group, px_gpt *model, px_error *err);

/* Builds model from group of the checkpoint file_or_dir (px_ckpt_resolve) for batches of max_B
 * sequences of max_T positions (0: the model's max_seq_len), trainable or not, and reads its
 * tensors; the group must have the given head. gain and bias (may be NULL) receive a reward
 * group's normalisation. On failure model is left unbuilt. Not collective. */
px_status px_ckpt_load(const char *file_or_dir, const char *group, px_gpt_head head, int max_B,
                       int max_T, int trainable, px_gpt *model, double *gain, double *bias,
                       px_error *err);

/* The root attributes step and iteration. Not collective. */
px_status px_ckpt_read_step(const char *path, int64_t *step, int64_t *iteration, px_error *err);

#endif
