/*
 * run.h — a run directory (DESIGN.md section 7): the resolved config.ini, metrics.jsonl (one
 * JSON object per record, every metric named), checkpoints/, rank 0's log, proxima.log, and
 * .lock, which keeps a second process out while one uses the directory (runlock.h).
 * Rank 0 alone writes; every function here is collective unless it says otherwise.
 */
#ifndef PROXIMA_RUN_H
#define PROXIMA_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/runlock.h"

typedef struct px_run {
  char dir[4096];
  char ckpt_dir[4200];    /* dir/checkpoints */
  char rollout_dir[4200]; /* dir/rollouts */
  char *config_text;      /* the resolved config as INI, for config.ini and checkpoints */
  FILE *metrics;          /* rank 0 only */
  FILE *timings;          /* rank 0 only */
  px_runlock lock;        /* rank 0 only: DIR/.lock, held from open to close */
} px_run;

/* Creates cfg->run_dir, locks it (runlock.h: PX_EINPUT naming the holder when another process
 * uses it, before anything in it is changed), then creates checkpoints/, writes config.ini,
 * opens metrics.jsonl and the log for appending. Collective: the ranks agree on the outcome. */
px_status px_run_open(px_run *run, const px_config *cfg, px_error *err);
void px_run_close(px_run *run);

/* One metrics.jsonl record: {"phase": phase, "step": step, names[i]: values[i], ...}.
 * Non-finite values are written as null. Not collective: rank 0 writes, others return. */
void px_run_metrics(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values);

/* The same into timings.jsonl, for wall-clock figures. Not collective. */
void px_run_timings(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values);

/* Whether any rank has received a stop signal (SIGTERM, SIGUSR1): the ranks agree, so that
 * they all checkpoint and stop at the same step boundary. Collective. */
int px_run_should_stop(void);

/* The checkpoint the run continues from, per run.resume (px_ckpt_find_resume on
 * run.dir/checkpoints), into path of n bytes; "" to start fresh. Collective. */
px_status px_run_resume_from(const px_run *run, const px_config *cfg, char *path, size_t n,
                             px_error *err);

/* The size of metrics.jsonl in bytes, the same on every rank: a checkpoint stores it so that a
 * resume can drop the records written after it. Collective. */
int64_t px_run_metrics_bytes(px_run *run);

/* After resuming from ckpt_path: when that checkpoint is one of this run's, cuts
 * metrics.jsonl back to the bytes it recorded, so that the records of the steps run again are
 * not there twice. Not collective: rank 0 acts, the others return. */
void px_run_metrics_rewind(px_run *run, const char *ckpt_path, int64_t bytes);

/* Writes the checkpoint of step (and iteration), with the models' tokenizer, into
 * run.dir/checkpoints, keeping
 * run.keep_last: first *metrics_bytes (a state variable in vars) is set to metrics.jsonl's
 * size, so that the file records it. Collective. */
px_status px_run_checkpoint(px_run *run, const px_config *cfg, int64_t step, int64_t iteration,
                            const px_tokenizer *tokenizer, const px_ckpt_model *models,
                            int n_models, const px_ckpt_var *vars, int n_vars,
                            int64_t *metrics_bytes, px_error *err);

/* Resumes from the checkpoint at path: reads models[0..n_models) (into models already built to
 * their configuration) and the state vars on every rank, refuses a checkpoint written with
 * another run.seed (*seed, read from the state), and rewinds metrics.jsonl to *metrics_bytes.
 * Collective. */
px_status px_run_restore(px_run *run, const px_config *cfg, const char *path, px_ckpt_model *models,
                         int n_models, const px_ckpt_var *vars, int n_vars, const int64_t *seed,
                         const int64_t *metrics_bytes, px_error *err);

#endif
