/*
 * checkpoint.h — model checkpoints in HDF5 (DESIGN.md section 6).
 *
 * One file per step, DIR/ckpt-00000100.h5: root attributes format "proxima-checkpoint",
 * format_version, step, iteration and config (the resolved INI text); one group per model
 * (/policy, /reference, /value, /reward) with attributes vocab_size, max_seq_len, n_layer,
 * n_head, n_embd, head ("lm" or "scalar") — the reward group also gain and bias — and one
 * float32 dataset per tensor, named and shaped as the model's tensor table; /tokenizer, the
 * models' tokenizer whole (attributes kind, sha256, n_vocab, pad_id, bos_id, eos_id; for gpt2
 * the uint8 datasets vocab and merges, the text of vocab.json and merges.txt); the Adam moments in
 * /optim/<model>/m/<tensor> and /optim/<model>/v/<tensor> with attribute step. Every dataset is
 * chunked with the Fletcher-32 checksum (chunks along the first dimension, at most 4 MiB). A
 * checkpoint is written under a temporary name, fsynced and renamed; DIR/LATEST (one line naming
 * the newest complete checkpoint) is replaced the same way, last; older checkpoints are pruned to
 * keep_last.
 *
 * Reading validates everything against what the caller expects: a file that is not a
 * checkpoint, a missing group, a tensor of the wrong shape (a checkpoint of another model
 * size), a checksum error — each is PX_EINPUT with a message naming the file and the object.
 */
#ifndef PROXIMA_CHECKPOINT_H
#define PROXIMA_CHECKPOINT_H

#include <stdint.h>
#include <stdio.h>

#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/tokenizer.h"

/* One model of a checkpoint. */
typedef struct px_ckpt_model {
  const char *group;  /* "policy", "reference", "value" or "reward" */
  px_gpt *model;      /* its parameters are written (or read into it) */
  int optim;          /* also its Adam moments (the model must be trainable) */
  int64_t optim_step; /* AdamW steps taken, stored as the moments' step attribute */
  double gain, bias;  /* reward normalisation; written and read for the reward group */
} px_ckpt_model;

/* One scalar of a run's resumable state, the dataset /state/<name> (int64 or float64, one
 * element). Exactly one of i64 and f64 points at the run's variable: written from it, read
 * into it. A stage lists its state once (an X-macro, e.g. PX_PPO_STATE in ppo.h) and uses the
 * same table to write and to resume, so nothing can be saved and not restored. */
typedef struct px_ckpt_var {
  const char *name;
  int64_t *i64;
  double *f64;
} px_ckpt_var;

/* Declares a state struct's field, and its entry of a px_ckpt_var table, from one X-macro row
 * X(s, type, name) with type int64_t or double; s is the state struct's address, e.g.
 * `px_ckpt_var vars[] = {PX_SFT_STATE(PX_CKPT_VAR, &state)};`. */
#define PX_CKPT_FIELD(s, type, name) type name;
#define PX_CKPT_VAR_int64_t(p) p, NULL
#define PX_CKPT_VAR_double(p) NULL, p
#define PX_CKPT_VAR(s, type, name) {#name, PX_CKPT_VAR_##type(&(s)->name)},

/* What a checkpoint holds. */
typedef struct px_ckpt {
  int64_t step, iteration;
  const char *config_text; /* the resolved INI */
  const px_ckpt_model *models;
  int n_models;
  const px_ckpt_var *state;
  int n_state;
  const px_tokenizer *tokenizer; /* the models' tokenizer, stored whole in /tokenizer */
} px_ckpt;

/* Writes DIR/ckpt-<step>.h5. Every rank holds the same models and state (data parallel), so
 * rank 0 writes the file alone (HDF5's POSIX driver; each chunk with its Fletcher-32 checksum
 * through H5Dwrite_chunk, io/h5chunk.h) while the others wait, and all agree on the outcome; the
 * file does not depend on the rank count. It is written as DIR/.ckpt-<step>.h5.tmp, its size
 * reserved on disk before any data, closed, fsynced and renamed; then LATEST is replaced the
 * same way; then all but the newest keep_last (0: all) are pruned, with every temporary file
 * in DIR: one process at a time may write into DIR (sft, rm and ppo hold the run directory's
 * lock, runlock.h), so any other is a killed write's. A failure leaves LATEST and
 * the older checkpoints as they were, and no temporary file. A model whose parameters or
 * moments hold a NaN or an infinity is refused (PX_ERUN naming the tensor and element): rank 0
 * checks each chunk as it writes it, stops at the first, and the temporary file is removed, so
 * nothing non-finite is ever published. While a chunk is written, the 4 bytes after it in the
 * model's buffer hold its checksum (given back before the next; the buffers are not otherwise
 * touched). Collective: every rank passes the same. */
px_status px_ckpt_write(const char *dir, const px_ckpt *ckpt, int keep_last, px_error *err);

/* Writes one checkpoint file at path, outside any run directory (`model import`): written under
 * a temporary name beside it, fsynced and renamed, so a file already at path stays whole until
 * the new one is complete; no LATEST, no pruning. Collective, as px_ckpt_write. */
px_status px_ckpt_write_file(const char *path, const px_ckpt *ck, px_error *err);

/* Reads the state variables vars[0..n) from path's /state; each must be there with its
 * type. Not collective. */
px_status px_ckpt_read_state(const char *path, const px_ckpt_var *vars, int n, px_error *err);

/* The checkpoint a run resumes from. resume is "auto" or a checkpoint (file or directory, as
 * px_ckpt_resolve). With "auto": the file LATEST in dir names, else the newest ckpt-*.h5; one
 * that fails px_ckpt_check is skipped with a warning naming it and the next older is tried;
 * *path = "" when dir holds none (start fresh). With a path: a damaged file is an error. With
 * "" (start fresh): *path = "", and an error if dir already holds checkpoints.
 * Collective: every rank checks, and the ranks agree. */
px_status px_ckpt_find_resume(const char *dir, const char *resume, char *path, size_t n,
                              px_error *err);

/* Reads every dataset of path (so every Fletcher-32 checksum is verified) and checks the
 * schema: the root attributes, each model group against its own configuration, the moments
 * against their model, /state. PX_EINPUT naming the first problem. Not collective. */
px_status px_ckpt_check(const char *path, px_error *err);

/* `proxima ckpt info` and `ckpt verify` on file_or_dir (px_ckpt_resolve), printing to out. info:
 * a summary from the metadata (size, step, each model's configuration, parameters, moments,
 * every /state value, the config's length); no tensor data is read. verify: px_ckpt_check, then
 * "PATH: ok (N datasets, M bytes)" (M the file's size). PX_EINPUT naming the file and the
 * problem otherwise. Not collective. */
px_status px_ckpt_info(const char *file_or_dir, FILE *out, px_error *err);
px_status px_ckpt_verify(const char *file_or_dir, FILE *out, px_error *err);

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
 * tensors; the group must have the given head, and hold the checkpoint's tokenizer's ids, whose
 * softmax span the model then takes (px_gpt_set_live_vocab). gain and bias (may be NULL) receive a
 * reward group's normalisation. On failure model is left unbuilt. Not collective. */
px_status px_ckpt_load(const char *file_or_dir, const char *group, px_gpt_head head, int max_B,
                       int max_T, int trainable, px_gpt *model, double *gain, double *bias,
                       px_error *err);

/* The tokenizer stored in the checkpoint file_or_dir (px_ckpt_resolve) into t (free it with
 * px_tokenizer_free): its files rebuilt and checked against the stored hash and ids; the byte
 * tokenizer when the file has no /tokenizer (written before tokenizers were stored). PX_EINPUT
 * naming the problem. Not collective. */
px_status px_ckpt_read_tokenizer(const char *file_or_dir, px_tokenizer *t, px_error *err);

/* PX_EINPUT unless the checkpoint file_or_dir stores the tokenizer want; what names the
 * checkpoint's role in messages ("ppo.reward"), against names want's ("ppo.policy"). Not
 * collective. */
px_status px_ckpt_check_tokenizer(const char *file_or_dir, const char *what,
                                  const px_tokenizer *want, const char *against, px_error *err);

/* The root attributes step and iteration. Not collective. */
px_status px_ckpt_read_step(const char *path, int64_t *step, int64_t *iteration, px_error *err);

#endif
