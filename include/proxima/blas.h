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

/* Its number, as BLIS_ARCH_TYPE takes it. Valid after px_blas_init. */
int px_blas_arch_id(void);

/* C = alpha * A B + beta * C for row-major or strided operands: A is m x k with element (i,p)
 * at a[i*rsa + p*csa], B is k x n at b[p*rsb + j*csb], C is m x n at c[i*rsc + j*csc]. A
 * transposed operand is the same array with its strides swapped, so y = x W^T for a PyTorch
 * weight W [out,in] needs no copy (rsb = 1, csb = in). When beta is 0, C is only written.
 * BLIS runs its own threads here (BLIS_NUM_THREADS); called from inside an OpenMP parallel
 * region it runs single-threaded instead, as px_blas_sgemm_serial does. Not collective. */
void px_blas_sgemm(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                   const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c,
                   ptrdiff_t rsc, ptrdiff_t csc);

/* The same on one thread (a single-threaded rntm_t), for calls from OpenMP regions. */
void px_blas_sgemm_serial(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa,
                          ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta,
                          float *c, ptrdiff_t rsc, ptrdiff_t csc);

/* y = W x for one row x [in] and a row-major W [out,in], through BLIS's BLAS interface (sgemm_
 * with one column): the call PyTorch's Linear makes for a single row. BLIS takes a
 * matrix-vector path there (faster at one row, since BLIS's GEMM packs all of W first) whose
 * bits differ from px_blas_sgemm's, so the model never calls it: a row's result must not
 * depend on how many rows share the product (DESIGN.md, section 4). For bench_peak's
 * comparison only. Not collective. */
void px_blas_row_via_blas(int out, int in, const float *w, const float *x, float *y);

#endif
