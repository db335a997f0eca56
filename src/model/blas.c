/*
 * blas.c — BLIS kernel-set selection and, later, every GEMM of the model. The one file of
 * Proxima that includes blis.h (STYLE.md rule 13).
 */
#include "proxima/blas.h"

#include <blis.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char px_description[256] = "BLIS not initialised";
static const char *px_arch_in_use = "unknown";
static int px_arch_id_in_use = -1;

/* The kernel set to ask BLIS for on this CPU, or -1 to let BLIS choose. BLIS 0.9 picks skx
 * only for Intel CPUs it knows and zen3 only for AMD families up to 0x19; a newer CPU with the
 * same instructions gets the generic kernels. The instruction sets decide here instead. */
static int px_preferred_arch(void) {
  int arch = -1;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    arch = BLIS_ARCH_SKX;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    arch = __builtin_cpu_is("amd") ? BLIS_ARCH_ZEN3 : BLIS_ARCH_HASWELL;
#endif
  return arch;
}

/* Whether this BLIS was built with the kernel set (a cluster's BLIS may hold just one, and
 * BLIS aborts when asked for one it lacks): a child process tries it. Call before MPI starts. */
static int px_arch_available(int arch) {
  pid_t child = fork();
  if (child < 0) return 0;
  if (child == 0) {
    char value[16];
    snprintf(value, sizeof value, "%d", arch);
    setenv("BLIS_ARCH_TYPE", value, 1);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO), dup2(null, STDOUT_FILENO);
    bli_init();
    _exit(bli_arch_query_id() == (arch_t)arch ? 0 : 1);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void px_blas_init(void) {
  const char *user = getenv("BLIS_ARCH_TYPE");
  const char *how = "chosen by BLIS";
  if (user && *user) {
    how = "chosen by BLIS_ARCH_TYPE";
  } else {
    int arch = px_preferred_arch();
    if (arch >= 0 && px_arch_available(arch)) {
      char value[16];
      snprintf(value, sizeof value, "%d", arch);
      setenv("BLIS_ARCH_TYPE", value, 1); /* read by bli_init, hence before any BLIS call */
      how = "chosen by proxima for this CPU";
    }
  }
  bli_init();
  px_arch_id_in_use = (int)bli_arch_query_id();
  px_arch_in_use = bli_arch_string((arch_t)px_arch_id_in_use);
  snprintf(px_description, sizeof px_description, "BLIS %s, kernels %s (%s)",
           bli_info_get_version_str(), px_arch_in_use, how);
}

const char *px_blas_describe(void) { return px_description; }
const char *px_blas_arch(void) { return px_arch_in_use; }
int px_blas_arch_id(void) { return px_arch_id_in_use; }

/* ---------------------------------------------------------------------------------------------
 * GEMM: every matrix product of training and scoring (generation's is kernels.c's decode product)
 * ------------------------------------------------------------------------------------------- */

#include <omp.h>

static void px_sgemm_run(int serial, int m, int n, int k, float alpha, const float *a,
                         ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb,
                         float beta, float *c, ptrdiff_t rsc, ptrdiff_t csc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* C = beta C: BLIS would do the same, but an empty product needs no call */
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        float *cij = &c[i * rsc + j * csc];
        *cij = beta == 0.0f ? 0.0f : beta * *cij;
      }
    return;
  }
  /* BLIS's typed API takes non-const pointers; it never writes A, B, alpha or beta. */
  int one_thread = serial || omp_in_parallel(); /* never nest BLIS threads in OpenMP's */
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  if (one_thread) bli_rntm_set_num_threads(1, &rntm);
  bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, rsa, csa,
               (float *)b, rsb, csb, &beta, c, rsc, csc, NULL, one_thread ? &rntm : NULL);
}

void px_blas_sgemm(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa,
                   const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float *c,
                   ptrdiff_t rsc, ptrdiff_t csc) {
  px_sgemm_run(0, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

void px_blas_sgemm_serial(int m, int n, int k, float alpha, const float *a, ptrdiff_t rsa,
                          ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float beta,
                          float *c, ptrdiff_t rsc, ptrdiff_t csc) {
  px_sgemm_run(1, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

void px_blas_row_via_blas(int out, int in, const float *w, const float *x, float *y) {
  /* Column-major, as BLAS sees it: W [out,in] row-major is an in x out matrix (lda = in), so
   * y (out x 1) = that matrix transposed times x (in x 1). */
  const f77_char transa = 'T', transb = 'N';
  const f77_int m = out, n = 1, k = in, lda = in, ldb = in, ldc = out;
  const float one = 1.0f, zero = 0.0f;
  sgemm_(&transa, &transb, &m, &n, &k, &one, w, &lda, x, &ldb, &zero, y, &ldc);
}
