/*
 * run.h — a run directory (DESIGN.md section 7): the resolved config.ini, metrics.jsonl (one
 * JSON object per record, every metric named), checkpoints/ and rank 0's log, proxima.log.
 * Rank 0 alone writes; every function here is collective unless it says otherwise.
 */
#ifndef PROXIMA_RUN_H
#define PROXIMA_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "proxima/config.h"
#include "proxima/error.h"

typedef struct px_run {
  char dir[4096];
  char ckpt_dir[4200];    /* dir/checkpoints */
  char rollout_dir[4200]; /* dir/rollouts */
  char *config_text;      /* the resolved config as INI, for config.ini and checkpoints */
  FILE *metrics;          /* rank 0 only */
  FILE *timings;          /* rank 0 only */
} px_run;

/* Creates cfg->run_dir (and checkpoints/), writes config.ini, opens metrics.jsonl and the log
 * for appending. Collective: the ranks agree on the outcome. */
px_status px_run_open(px_run *run, const px_config *cfg, px_error *err);
void px_run_close(px_run *run);

/* One metrics.jsonl record: {"phase": phase, "step": step, names[i]: values[i], ...}.
 * Non-finite values are written as null. Not collective: rank 0 writes, others return. */
void px_run_metrics(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values);

/* The same into timings.jsonl, for wall-clock figures. Not collective. */
void px_run_timings(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values);

#endif
