/*
 * stage.h — what every training stage (sft, rm, ppo) shares, so that a stage's file holds only
 * its own step: the run directory, resuming from a checkpoint, the step loop with its stop
 * signals and periodic checkpoints, the step's metrics (one named table per stage, from which
 * the progress line, metrics.jsonl, timings.jsonl and `proxima metrics`, the list that
 * scripts/report.py draws its plots from, all come), and the held-out split of a data set.
 *
 * A stage's life:
 *   px_stage_open        the run directory (locked), and the checkpoint to resume from
 *   (the stage builds its models and data, maybe from sg->resume)
 *   px_stage_restore     the models' moments and the stage's state from that checkpoint
 *   px_stage_loop        for each step: the stage's step function, its metrics record, the
 *                        fault point, a stop signal or checkpoint_every -> a checkpoint
 *   px_stage_close
 * Every function here is collective unless it says otherwise.
 */
#ifndef PROXIMA_STAGE_H
#define PROXIMA_STAGE_H

#include <stdint.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/run.h"

/* How a metric's value becomes the same on every rank. */
typedef enum {
  PX_METRIC_GLOBAL, /* every rank computed the same value already */
  PX_METRIC_SUM,    /* each rank's part, summed over the ranks by px_stage_reduce */
} px_metric_reduce;

/* What else a metric is (px_metric.flags). */
enum {
  PX_METRIC_EVAL =
      1, /* set only at some steps (held-out numbers): a step that sets it is recorded */
  PX_METRIC_TIMING = 2, /* a wall-clock figure: timings.jsonl, not metrics.jsonl */
  PX_METRIC_RATE = 4,   /* summed over the steps since the last record, divided by their seconds */
  PX_METRIC_RIGHT = 8,  /* drawn against its plot's right axis */
};

/* One row of a stage's metrics table: the table's order is the order of the keys in a record.
 * A metric is written only in the records of steps that set it (held-out numbers: eval steps). */
typedef struct px_metric {
  const char *name;   /* its key in metrics.jsonl (timings.jsonl when PX_METRIC_TIMING) */
  const char *label;  /* in the progress line ("loss"); NULL: not shown there */
  const char *format; /* printf format of the value in the progress line ("%.4f") */
  px_metric_reduce reduce;
  unsigned flags;    /* PX_METRIC_EVAL, PX_METRIC_TIMING, PX_METRIC_RATE, PX_METRIC_RIGHT */
  const char *plot;  /* the name of the plot it is drawn in (px_plot); NULL: not drawn */
  const char *curve; /* its curve's name in that plot's legend */
} px_metric;

/* A figure of a stage's metrics against its steps: RUN/plots/<name>.png (scripts/report.py). */
typedef struct px_plot {
  const char *name, *title, *ylabel;
} px_plot;

/* A stage's metrics and plots. The phase of its records is its name; a record of phase
 * "<name>_eval" at step 0 holds an eval metric's value before the first step. */
typedef struct px_stage_table {
  const char *name; /* "sft": messages, the records' phase, the fault point "<name>.<unit>" */
  const char *unit; /* "step" or "iteration" */
  const px_metric *metrics;
  int n_metrics;
  const px_plot *plots;
  int n_plots;
} px_stage_table;

enum { PX_STAGE_MAX_METRICS = 32 };

typedef struct px_stage px_stage;

/* One step of a stage (step 0, 1, ...): its work, its metrics (px_stage_set), and its state
 * as a checkpoint would store it after the step. PX_OK to go on; anything else ends the loop
 * without a checkpoint (LATEST keeps naming the last good one). Collective. */
typedef px_status (*px_stage_step_fn)(px_stage *sg, void *ctx, int64_t step, px_error *err);

struct px_stage {
  /* Set by the stage before px_stage_open. */
  const px_config *cfg;
  const px_stage_table *table; /* its name, unit, metrics and plots */
  const char *batch_key; /* "sft.batch_size": rows per step over all ranks, at least one each */
  int64_t batch;
  /* Set by the stage before px_stage_restore. */
  int64_t steps;            /* in all */
  int64_t log_every;        /* a record every this many steps (and at the last; 1: every step) */
  int64_t checkpoint_every; /* 0: only at the end and on a stop signal */
  int last_checkpoint;      /* the loop checkpoints its last step (0: the stage does after it) */
  const px_tokenizer *tokenizer; /* the models' (stored in every checkpoint) */
  px_ckpt_model *models;         /* what a checkpoint holds */
  int n_models, n_restored;      /* models[0..n_restored) are read back by px_stage_restore */
  const px_ckpt_var *vars;       /* the stage's state */
  int n_vars;
  int64_t *seed, *metrics_bytes,
      *step; /* in the state: run.seed, metrics.jsonl's size, steps done */
  /* The driver's. */
  px_run run;
  char resume[4300];        /* the checkpoint this run continues from; "" when fresh */
  int64_t first;            /* the first step this process runs */
  double t_start, t_record; /* px_log_elapsed at the loop's start and at the last record */
  double num[PX_STAGE_MAX_METRICS], den[PX_STAGE_MAX_METRICS], acc[PX_STAGE_MAX_METRICS];
  unsigned char set[PX_STAGE_MAX_METRICS];
};

/* The state every stage's state has, for px_stage's initialiser: the table of its variables,
 * the seed, metrics.jsonl's size and the steps done (step_: that field's name), e.g.
 * `px_stage sg = {..., PX_STAGE_STATE(vars, s.state, step)};`. */
#define PX_STAGE_STATE(vars_, state_, step_)                                                       \
  .vars = (vars_), .n_vars = (int)(sizeof(vars_) / sizeof((vars_)[0])), .seed = &(state_).seed,    \
  .metrics_bytes = &(state_).metrics_bytes, .step = &(state_).step_

/* Refuses a batch smaller than the rank count (PX_EINPUT), then opens the run directory of
 * sg->cfg (run.h) and finds the checkpoint to resume from (run.resume) into sg->resume. On
 * failure nothing is left open. */
px_status px_stage_open(px_stage *sg, px_error *err);

/* When resuming: refuses a checkpoint whose tokenizer is not sg->tokenizer, reads
 * models[0..n_restored) and the state, refuses another run.seed, rewinds metrics.jsonl, and says
 * so in the log; sets sg->first to the steps done. Fresh: sg->first 0. */
px_status px_stage_restore(px_stage *sg, px_error *err);

/* Runs steps sg->first .. sg->steps-1 with step(sg, ctx, step, err). After each: the record of
 * the metrics it set (and a progress line) at every log_every-th step, the last step, and a step
 * that set an eval metric; the fault point "<name>.<unit>" ("sft.step", "ppo.iteration"); then a
 * checkpoint at a stop signal, at every checkpoint_every-th step, and at the last step when
 * last_checkpoint. A stop signal ends the loop with PX_EINTERRUPTED after the checkpoint. */
px_status px_stage_loop(px_stage *sg, px_stage_step_fn step, void *ctx, px_error *err);

/* Writes the checkpoint of sg->models and the state after `step` steps. */
px_status px_stage_checkpoint(px_stage *sg, int64_t step, px_error *err);

void px_stage_close(px_stage *sg);

/* Sets metric k of this step to num / den (den 1 for a plain value). For a PX_METRIC_SUM metric
 * num is this rank's part, and the division waits for px_stage_reduce. Not collective. */
void px_stage_set(px_stage *sg, int k, double num, double den);

/* Sums the PX_METRIC_SUM metrics set so far this step over the ranks (one allreduce, in table
 * order) and returns their value. */
void px_stage_reduce(px_stage *sg);

/* Metric k of this step (NaN when not set). Not collective. */
double px_stage_get(const px_stage *sg, int k);

/* A data set's records 0..n-1 split into held-out and training records, and the endless stream
 * of shuffled training records (batch.h). */
typedef struct px_split {
  int64_t *heldout, n_heldout; /* min(heldout, n / 2) records */
  int64_t *train, n_train;
  px_epochs epochs;
} px_split;

/* Splits n records of path (what: "records", "pairs", for the message) keeping heldout of them
 * out, by permutations keyed by (seed, heldout_stream) and (seed, epoch_stream). PX_EINPUT when
 * no training record is left. Not collective. */
px_status px_split_build(px_split *s, int64_t n, int64_t heldout, uint64_t seed,
                         uint32_t heldout_stream, uint32_t epoch_stream, const char *path,
                         const char *what, px_error *err);
void px_split_free(px_split *s);

#endif
