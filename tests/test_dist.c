/*
 * test_dist.c — the distributed layer and a parallel data-set read, run as a real 2-rank MPI
 * launch (it also passes on 1 rank and on more).
 */
#include <stdio.h>
#include <stdlib.h>

#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

static void test_share_covers_range(void) {
  for (int64_t n = 0; n < 40; n++)
    for (int size = 1; size <= 9; size++) {
      int64_t next = 0;
      for (int r = 0; r < size; r++) {
        int64_t lo, hi;
        px_comm_share(n, r, size, &lo, &hi);
        CU_ASSERT_EQUAL(lo, next);                                 /* contiguous, in rank order */
        CU_ASSERT(hi - lo == n / size || hi - lo == n / size + 1); /* balanced */
        next = hi;
      }
      CU_ASSERT_EQUAL(next, n);
    }
}

static void test_allreduce_sums(void) {
  int rank = px_comm_rank(), size = px_comm_size();
  double d[3] = {rank + 1.0, 0.5, -rank};
  float f[2] = {(float)(rank + 1), 2.0f};
  int64_t i[1] = {((int64_t)1 << 40) * (rank + 1)};
  px_comm_allreduce_sum_f64(d, 3);
  px_comm_allreduce_sum_f32(f, 2);
  px_comm_allreduce_sum_i64(i, 1);
  double tri = size * (size + 1) / 2.0;
  CU_ASSERT_DOUBLE_EQUAL(d[0], tri, 0);
  CU_ASSERT_DOUBLE_EQUAL(d[1], 0.5 * size, 0);
  CU_ASSERT_DOUBLE_EQUAL(d[2], -(tri - size), 0);
  CU_ASSERT_DOUBLE_EQUAL(f[0], tri, 0);
  CU_ASSERT_DOUBLE_EQUAL(f[1], 2.0 * size, 0);
  CU_ASSERT_EQUAL(i[0], ((int64_t)1 << 40) * (int64_t)tri);
}

static void test_agree_spreads_the_worst_status(void) {
  int rank = px_comm_rank(), size = px_comm_size();
  px_error err = {""};
  CU_ASSERT_EQUAL(px_comm_agree(PX_OK, &err), PX_OK);
  /* The last rank fails with input trouble, rank 0 (when another) with a run failure: the run
   * failure is worse, so it and its message reach every rank. */
  px_status mine = PX_OK;
  if (rank == size - 1) mine = px_error_set(&err, PX_EINPUT, "rank %d: bad input", rank);
  CU_ASSERT_EQUAL(px_comm_agree(mine, &err), PX_EINPUT);
  char expect[64];
  snprintf(expect, sizeof expect, "rank %d: bad input", size - 1);
  CU_ASSERT_STRING_EQUAL(err.msg, expect);
  if (size > 1) {
    mine = rank == 0          ? px_error_set(&err, PX_ERUN, "rank 0: disk full")
           : rank == size - 1 ? px_error_set(&err, PX_EINPUT, "bad input")
                              : PX_OK;
    CU_ASSERT_EQUAL(px_comm_agree(mine, &err), PX_ERUN);
    CU_ASSERT_STRING_EQUAL(err.msg, "rank 0: disk full");
  }
}

static void test_bcast(void) {
  enum { N = 100000 };
  int32_t *buf = malloc(N * sizeof *buf);
  for (int i = 0; i < N; i++) buf[i] = px_comm_rank() == 0 ? i * 7 : -1;
  px_comm_bcast(buf, N * sizeof *buf, 0);
  int bad = 0;
  for (int i = 0; i < N; i++) bad += buf[i] != i * 7;
  CU_ASSERT_EQUAL(bad, 0);
  free(buf);
}

/* Rank 0 writes 11 records; every rank reads its share through MPI-IO and checks it holds
 * exactly the records it should, then the shares add up to the whole. */
static void test_parallel_dataset_read(void) {
  int rank = px_comm_rank(), size = px_comm_size();
  char path[256], texts[11][32];
  snprintf(path, sizeof path, "dist-%d.h5", size);
  for (int i = 0; i < 11; i++)
    snprintf(texts[i], sizeof texts[i], "record %d %.*s", i, i, "xxxxxxxxxxx");
  px_error err = {""};
  px_status st = PX_OK;
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  if (rank == 0) {
    px_dataset ds;
    px_dataset_init(&ds, PX_DATA_TEXT, 1, &bytes);
    for (int i = 0; i < 11; i++) {
      const char *t[1] = {texts[i]};
      size_t len[1] = {strlen(texts[i])};
      px_dataset_append(&ds, t, len);
    }
    st = px_dataset_write(path, &ds, &err);
    px_dataset_free(&ds);
  }
  CU_ASSERT_EQUAL_FATAL(px_comm_agree(st, &err), PX_OK);
  px_dataset part;
  st = px_dataset_read(path, PX_IO_EVERY_RANK, rank, size, PX_DATA_TEXT, &bytes, &part, &err);
  CU_ASSERT_EQUAL_FATAL(px_comm_agree(st, &err), PX_OK);
  int64_t lo, hi;
  px_comm_share(11, rank, size, &lo, &hi);
  CU_ASSERT_EQUAL(part.n_total, 11);
  CU_ASSERT_EQUAL(part.first, lo);
  CU_ASSERT_EQUAL(part.n, hi - lo);
  int64_t seen[2] = {0, 0}; /* records, and the sum of their indices */
  for (int64_t i = 0; i < part.n; i++) {
    int64_t len;
    const int32_t *tok = px_dataset_row(&part, 0, i, &len);
    const char *want = texts[lo + i];
    CU_ASSERT_EQUAL(len, (int64_t)strlen(want));
    int same = len == (int64_t)strlen(want);
    for (int64_t t = 0; same && t < len; t++) same = tok[t] == (unsigned char)want[t];
    CU_ASSERT(same);
    seen[0] += 1, seen[1] += lo + i;
  }
  px_comm_allreduce_sum_i64(seen, 2);
  CU_ASSERT_EQUAL(seen[0], 11);
  CU_ASSERT_EQUAL(seen[1], 55);
  px_dataset_free(&part);
  /* A file every rank finds damaged fails on every rank, and no rank hangs. */
  st = px_dataset_read("no-such-file.h5", PX_IO_EVERY_RANK, rank, size, -1, NULL, &part, &err);
  CU_ASSERT_EQUAL(px_comm_agree(st, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "no-such-file.h5: no such file"));
  px_comm_barrier();
  if (rank == 0) remove(path);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"share covers the range", test_share_covers_range},
      {"allreduce sums", test_allreduce_sums},
      {"agree spreads the worst status", test_agree_spreads_the_worst_status},
      {"bcast", test_bcast},
      {"parallel data-set read", test_parallel_dataset_read},
      CU_TEST_INFO_NULL};
  px_test_suite("dist", tests);
}
