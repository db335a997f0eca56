/*
 * fault.h — fault injection for the tests: named points in the code where a test can make a
 * process receive a signal (what a kill -9 leaves on disk, a stop at a known step), put a NaN
 * into a buffer (a diverging gradient, a poisoned rollout), or make a write fail (a full disk).
 *
 * The environment variable PROXIMA_FAULT="POINT:N[+][:ACTION][@RANK]" acts at the N-th arrival
 * (1, 2, ...) of this process at the point named POINT; with "+", at every arrival from the
 * N-th on. "@RANK" limits it to that rank of the run (MPI_COMM_WORLD's numbering); without it
 * every rank acts. Arrivals are counted per process, so after a resume they count from 1 again.
 * ACTION is one of
 *   KILL (the default), TERM, USR1   raise that signal in this process;
 *   NAN                              at a point that hands over a buffer, write a NaN into it;
 *   FAIL                             at a point that writes, make the write fail.
 * An action a point does not take (NAN at a signal point, ...) does nothing. A specification
 * that does not parse injects nothing. Unset, a point costs one comparison.
 *
 * Points, in the order a run reaches them:
 *   sft.grad, rm.grad, ppo.policy.grad, ppo.value.grad
 *                   this rank's gradient of an optimizer step, before the allreduce (NAN;
 *                   a signal here stops a rank in the middle of a step). With the sum
 *                   overlapped (run.overlap_allreduce), it comes at the end of the last
 *                   micro-batch's backward, before the embeddings' part (buf[0]) is summed;
 *   ppo.rollout     this rank's collected rollouts of an iteration, before advantages (NAN:
 *                   the value of its first response's first token);
 *   generate        a batch of generation (px_generate: PPO's rollouts and held-out
 *                   evaluations, generate, eval, the reward model's normalisation samples;
 *                   FAIL: it fails as an internal error would);
 *   rollout.write   a rollout buffer's write (io/rollout.c), after the datasets (FAIL: on rank
 *                   0 the file's write fails, on another rank its part of the write);
 *   sft.step, rm.step, ppo.iteration
 *                   after each step or iteration, before the stop check;
 *   ckpt.created, ckpt.write, ckpt.written, ckpt.closed, ckpt.renamed, ckpt.latest
 *                   the stages of a checkpoint write (io/checkpoint.c); ckpt.write (FAIL) fails
 *                   the write of the datasets, as a full disk would.
 *
 * Examples: "sft.grad:6:NAN@1" (one NaN in rank 1's gradient at step 6), "sft.grad:5+:NAN"
 * (every step from the 5th diverges), "ppo.policy.grad:3:KILL@1" (rank 1 dies mid-iteration),
 * "ckpt.write:2:FAIL" (the second checkpoint cannot be written).
 */
#ifndef PROXIMA_FAULT_H
#define PROXIMA_FAULT_H

#include <stddef.h>

/* Counts an arrival at point and raises the signal there if PROXIMA_FAULT says so. Not
 * collective. */
void px_fault_point(const char *point);

/* px_fault_point for a point that hands over buf[0..n): with action NAN, buf[0] becomes a NaN
 * (nothing when n is 0). Returns whether it did. Not collective. */
int px_fault_poison(const char *point, float *buf, size_t n);

/* px_fault_point for a point that writes: whether the write must fail (action FAIL). Not
 * collective. */
int px_fault_fails(const char *point);

#endif
