/*
 * trainer.h — the end of a data-parallel training step, the same in every stage (sft, rm, and
 * the policy and value updates of ppo): the gradients summed over the ranks with one
 * allreduce, clipped by their global norm, and one AdamW step at the schedule's learning rate.
 */
#ifndef PROXIMA_TRAINER_H
#define PROXIMA_TRAINER_H

#include <stdint.h>

#include "proxima/gpt.h"
#include "proxima/optim.h"

typedef struct px_trainer {
  px_gpt *model; /* trainable; its grads hold this rank's part of the step's gradient */
  px_adamw_config adamw;
  px_lr_schedule schedule;
  double grad_clip;  /* 0: no clipping */
  const char *phase; /* for messages: "sft", "rm", ... */
  int64_t applied;   /* AdamW steps taken (the t of bias correction) */
  int64_t skipped;   /* steps skipped for a non-finite loss or gradient */
} px_trainer;

/* Sums the gradients over the ranks, clips them, and applies AdamW at the learning rate of
 * `step` (0, 1, ...) — unless loss (already summed over the ranks) or the gradient norm is not
 * finite: then the step is skipped, counted and warned about. Returns the gradient norm before
 * clipping and sets *lr. Collective. */
double px_trainer_step(px_trainer *t, int64_t step, double loss, double *lr);

#endif
