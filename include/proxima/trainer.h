/*
 * trainer.h — the end of a data-parallel training step, the same in every stage (sft, rm, and
 * the policy and value updates of ppo): the gradients summed over the ranks with one
 * allreduce, clipped by their global norm, and one AdamW step at the schedule's learning rate.
 *
 * The numeric guard: a step whose loss or gradient norm is not finite is skipped (the model and
 * its moments stay as they were), counted and warned about. A NaN on one rank reaches every rank
 * through the allreduce, so the ranks skip together. max_nonfinite such steps in a row
 * (run.max_nonfinite) and px_trainer_guard stops the run.
 */
#ifndef PROXIMA_TRAINER_H
#define PROXIMA_TRAINER_H

#include <stdint.h>

#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/optim.h"

typedef struct px_trainer {
  px_gpt *model; /* trainable; its grads hold this rank's part of the step's gradient */
  px_adamw_config adamw;
  px_lr_schedule schedule;
  double grad_clip;         /* 0: no clipping */
  const char *phase;        /* for messages: "sft", "rm", "ppo policy", ... */
  const char *lr_key;       /* the config key of its learning rate, for messages */
  const char *fault_point;  /* where PROXIMA_FAULT may poison its gradient ("sft.grad") */
  int64_t max_nonfinite;    /* run.max_nonfinite: skipped steps in a row that stop a run */
  int64_t applied;          /* AdamW steps taken (the t of bias correction) */
  int64_t skipped;          /* steps skipped for a non-finite loss or gradient */
  int64_t skipped_in_a_row; /* the current run of skipped steps (0 after an applied one) */
} px_trainer;

/* Sums the gradients over the ranks, clips them, and applies AdamW at the learning rate of
 * `step` (0, 1, ...) — unless loss (already summed over the ranks) or the gradient norm is not
 * finite: then the step is skipped, counted and warned about. Returns the gradient norm before
 * clipping and sets *lr. Collective. */
double px_trainer_step(px_trainer *t, int64_t step, double loss, double *lr);

/* After px_trainer_step of `step`: PX_ERUN, with a message that says what happened, at which
 * steps and what to try, when the last max_nonfinite steps were all skipped; PX_OK otherwise.
 * The ranks agree without communicating (every rank saw the same allreduced numbers). Not
 * collective. */
px_status px_trainer_guard(const px_trainer *t, int64_t step, px_error *err);

#endif
