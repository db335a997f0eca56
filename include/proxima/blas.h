/*
 * blas.h — Proxima's only door to BLIS (src/model/blas.c is the one file that includes blis.h).
 *
 * Debian's BLIS 0.9 does not know Zen 5 and silently runs its generic kernels there, about 5x
 * slower than its AVX-512 (skx) kernels. px_blas_init picks the kernel set before BLIS's first
 * call unless the user chose one with BLIS_ARCH_TYPE, and reports what is in use.
 */
#ifndef PROXIMA_BLAS_H
#define PROXIMA_BLAS_H

#include <stddef.h>

/* Selects the kernel set (see above) and initialises BLIS. Call once, before MPI starts (it
 * may fork a short-lived child to check that BLIS has the kernel set) and before any other BLIS
 * use. Not collective. */
void px_blas_init(void);

/* "BLIS 0.9.0, kernels skx (chosen by proxima for this CPU)" or similar, for the start-up log
 * and --version. Valid after px_blas_init. */
const char *px_blas_describe(void);

/* The kernel set in use ("skx", "zen3", "haswell", "generic", ...). Valid after px_blas_init. */
const char *px_blas_arch(void);

#endif
