/*
 * fault.h — fault injection for the tests: named points in the code where a test can make the
 * process receive a signal, to show what a kill -9 leaves on disk, or that a stop signal at a
 * known step is handled exactly.
 *
 * The environment variable PROXIMA_FAULT="POINT:N[:SIGNAL]" makes the N-th arrival (1, 2, ...)
 * at the point named POINT raise SIGNAL (KILL, the default, TERM or USR1) in this process.
 * Unset, a point costs one comparison. Points, in the order a run reaches them:
 *   sft.step, rm.step, ppo.iteration     after each step or iteration, before the stop check;
 *   ckpt.created, ckpt.written, ckpt.closed, ckpt.renamed, ckpt.latest
 *                                        the stages of a checkpoint write (io/checkpoint.c).
 */
#ifndef PROXIMA_FAULT_H
#define PROXIMA_FAULT_H

/* Counts an arrival at point and raises the signal there if PROXIMA_FAULT says so. Not
 * collective. */
void px_fault_point(const char *point);

#endif
