/*
 * finite.h — the guard of every numeric check (gradients, collected rollouts, checkpoints): where
 * the first NaN or infinity of an array is. Plain array code, no MPI or I/O.
 */
#ifndef PROXIMA_FINITE_H
#define PROXIMA_FINITE_H

#include <stddef.h>

/* The index of the first element of x[0..n) that is NaN or infinite; n when all are finite.
 * One pass, no allocation. Not collective. */
size_t px_first_nonfinite(const float *x, size_t n);

/* The same, one element at a time: the reference for tests. */
size_t px_first_nonfinite_ref(const float *x, size_t n);

#endif
