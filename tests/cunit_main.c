/*
 * cunit_main.c — the one runner of every CUnit suite: starts MPI (a singleton when the suite
 * runs as a plain process), BLIS and the logger as main() does, runs the suites that the test
 * file registers in px_test_register, and exits with the number of failed tests (STYLE.md
 * rule 17), summed over the ranks so that every rank of an MPI launch agrees.
 */
#include <CUnit/Basic.h>
#include <stdio.h>

#include "proxima/blas.h"
#include "proxima/comm.h"
#include "proxima/log.h"
#include "test_util.h"

int main(int argc, char **argv) {
  px_blas_init();
  px_comm_init(&argc, &argv);
  px_log_init(PX_LOG_WARN);
  if (CU_initialize_registry() != CUE_SUCCESS) {
    fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
    return 2;
  }
  px_test_register();
  CU_basic_set_mode(px_comm_rank() == 0 ? CU_BRM_VERBOSE : CU_BRM_SILENT);
  CU_basic_run_tests();
  int64_t failed[2] = {(int64_t)CU_get_number_of_tests_failed(),
                       CU_get_error() != CUE_SUCCESS ? 1 : 0};
  CU_cleanup_registry();
  px_comm_allreduce_sum_i64(failed, 2);
  if (px_comm_rank() == 0 && px_comm_size() > 1)
    printf("\n%d ranks: %lld failed tests in all\n", px_comm_size(), (long long)failed[0]);
  px_comm_finalize();
  return failed[0] + failed[1] > 0 ? 1 : 0;
}
