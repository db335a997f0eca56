/*
 * trainer.h — the end of a data-parallel training step, the same in every stage (sft, rm, and
 * the policy and value updates of ppo): the gradients summed over the ranks with one
 * allreduce, clipped by their global norm, and one AdamW step at the schedule's learning rate.
 *
 * Overlap (run.overlap_allreduce, DESIGN.md section 4): a step's micro-batches go through
 * px_trainer_begin and px_trainer_backward; with overlap on and more than one rank, the last
 * micro-batch's backward starts a non-blocking sum of each layer's gradients as soon as the
 * backward has finished them (px_gpt_backward_ex's hook), and px_trainer_step waits for them
 * instead of running one blocking allreduce. Earlier micro-batches only accumulate. A step
 * where some rank has no micro-batch (fewer rows than ranks) reduces the blocking way on every
 * rank, so the ranks always agree on which collectives they start.
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
  int overlap;              /* run.overlap_allreduce */
  int overlap_step;         /* this step's last backward starts the reduction (begin's answer) */
  int launched;             /* it did: px_trainer_step waits for it */
} px_trainer;

/* Starts an optimizer step over n_global rows (sequences, pairs: what the ranks split with
 * px_comm_share): zeroes the gradient and decides whether this step's reduction overlaps the
 * last backward (overlap on, more than one rank, and n_global >= ranks so that every rank has a
 * micro-batch; the same answer on every rank). Not collective. */
void px_trainer_begin(px_trainer *t, int64_t n_global);

/* The backward of one micro-batch (px_gpt_backward of t->model); last: this rank's last
 * micro-batch of the step. When the step overlaps, the last one starts the gradient's
 * reduction layer by layer (and the PROXIMA_FAULT point fault_point arrives in it, before the
 * embeddings' reduction starts). Collective when last and overlapping (non-blocking). */
void px_trainer_backward(px_trainer *t, const float *dout, int last);

/* Sums the gradients over the ranks (or waits for the overlapped sum), clips them, and applies
 * AdamW at the learning rate of `step` (0, 1, ...) — unless loss (already summed over the ranks) or
 * the gradient norm is not finite: then the step is skipped, counted and warned about. Returns the
 * gradient norm before clipping and sets *lr. Collective. */
double px_trainer_step(px_trainer *t, int64_t step, double loss, double *lr);

/* After px_trainer_step of `step`: PX_ERUN, with a message that says what happened, at which
 * steps and what to try, when the last max_nonfinite steps were all skipped; PX_OK otherwise.
 * The ranks agree without communicating (every rank saw the same allreduced numbers). Not
 * collective. */
px_status px_trainer_guard(const px_trainer *t, int64_t step, px_error *err);

#endif
