/*
 * comm.c — owns every direct MPI call in Proxima (CoMD's rule: one compilation unit talks to
 * MPI). The world communicator is duplicated once at start-up with MPI_ERRORS_RETURN so that
 * every call can be checked; a failing call aborts all ranks with the call's error string.
 */
#include "proxima/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static MPI_Comm px_world = MPI_COMM_NULL;
static int px_rank = 0;
static int px_size = 1;
static int px_node_size = 1;    /* ranks on this rank's node (sharing its memory) */
static double px_comm_time = 0; /* seconds spent in collectives that move data */
/* The pending set of non-blocking reductions: requests in the order they were started. */
static MPI_Request *px_pending = NULL;
static int px_n_pending = 0, px_cap_pending = 0;
static double px_wait_time = 0; /* seconds blocked in px_comm_wait_all */

static void px_mpi_check(int rc, const char *what, const char *file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, text, &len);
  px_die(file, line, "%s failed (code %d: %s)", what, rc, text);
}

#define PX_MPI(call) px_mpi_check((call), #call, __FILE__, __LINE__)

void px_comm_init(int *argc, char ***argv) {
  int provided = 0;
  PX_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  PX_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  PX_REQUIRE(provided >= MPI_THREAD_FUNNELED,
             "MPI_Init_thread gave thread level %d, Proxima needs MPI_THREAD_FUNNELED", provided);
  PX_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &px_world));
  PX_MPI(MPI_Comm_set_errhandler(px_world, MPI_ERRORS_RETURN));
  PX_MPI(MPI_Comm_rank(px_world, &px_rank));
  PX_MPI(MPI_Comm_size(px_world, &px_size));
  MPI_Comm node;
  PX_MPI(MPI_Comm_split_type(px_world, MPI_COMM_TYPE_SHARED, px_rank, MPI_INFO_NULL, &node));
  PX_MPI(MPI_Comm_size(node, &px_node_size));
  PX_MPI(MPI_Comm_free(&node));
  px_error_set_process(px_rank, px_size, px_comm_abort);
}

int px_comm_node_size(void) { return px_node_size; }

int px_comm_is_up(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

void px_comm_finalize(void) {
  free(px_pending);
  px_pending = NULL;
  px_n_pending = px_cap_pending = 0;
  if (!px_comm_is_up()) return;
  if (px_world != MPI_COMM_NULL) PX_MPI(MPI_Comm_free(&px_world));
  PX_MPI(MPI_Finalize());
}

int px_comm_rank(void) { return px_rank; }
int px_comm_size(void) { return px_size; }

MPI_Comm px_comm_mpi(void) {
  PX_REQUIRE(px_world != MPI_COMM_NULL, "px_comm_mpi called before px_comm_init");
  return px_world;
}

_Noreturn void px_comm_abort(int status) {
  if (px_comm_is_up()) MPI_Abort(MPI_COMM_WORLD, status);
  exit(status);
}

px_status px_comm_agree(px_status local, px_error *err) {
  int mine = (int)local, worst = 0;
  PX_MPI(MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, px_world));
  if (worst == PX_OK) return PX_OK;
  /* The lowest rank holding the worst status tells everyone what went wrong. */
  int candidate = mine == worst ? px_rank : INT_MAX, teller = 0;
  PX_MPI(MPI_Allreduce(&candidate, &teller, 1, MPI_INT, MPI_MIN, px_world));
  if (err) PX_MPI(MPI_Bcast(err->msg, (int)sizeof err->msg, MPI_CHAR, teller, px_world));
  return (px_status)worst;
}

void px_comm_bcast(void *buf, size_t n, int root) {
  char *p = buf;
  while (n > 0) { /* MPI counts are int: send large buffers in pieces */
    int piece = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    PX_MPI(MPI_Bcast(p, piece, MPI_BYTE, root, px_world));
    p += piece;
    n -= (size_t)piece;
  }
}

static void px_allreduce_sum(void *buf, size_t n, size_t elem, MPI_Datatype type) {
  double t0 = MPI_Wtime();
  char *p = buf;
  while (n > 0) {
    int piece = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    PX_MPI(MPI_Allreduce(MPI_IN_PLACE, p, piece, type, MPI_SUM, px_world));
    p += (size_t)piece * elem;
    n -= (size_t)piece;
  }
  px_comm_time += MPI_Wtime() - t0;
}

void px_comm_allreduce_sum_f64(double *buf, size_t n) {
  px_allreduce_sum(buf, n, sizeof *buf, MPI_DOUBLE);
}
void px_comm_allreduce_sum_f32(float *buf, size_t n) {
  px_allreduce_sum(buf, n, sizeof *buf, MPI_FLOAT);
}
void px_comm_allreduce_sum_i64(int64_t *buf, size_t n) {
  px_allreduce_sum(buf, n, sizeof *buf, MPI_INT64_T);
}

void px_comm_iallreduce_sum_f32(float *buf, size_t n) {
  if (px_size == 1) return;
  double t0 = MPI_Wtime();
  while (n > 0) {
    int piece = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (px_n_pending == px_cap_pending) {
      px_cap_pending = px_cap_pending ? 2 * px_cap_pending : 64;
      px_pending = px_realloc(px_pending, (size_t)px_cap_pending * sizeof(MPI_Request));
    }
    PX_MPI(MPI_Iallreduce(MPI_IN_PLACE, buf, piece, MPI_FLOAT, MPI_SUM, px_world,
                          &px_pending[px_n_pending++]));
    buf += piece;
    n -= (size_t)piece;
  }
  px_comm_time += MPI_Wtime() - t0;
}

void px_comm_progress(void) {
  if (px_n_pending == 0) return;
  double t0 = MPI_Wtime();
  int done = 0; /* MPI_Testall completes all or none, but advances every request either way */
  PX_MPI(MPI_Testall(px_n_pending, px_pending, &done, MPI_STATUSES_IGNORE));
  if (done) px_n_pending = 0;
  px_comm_time += MPI_Wtime() - t0;
}

void px_comm_wait_all(void) {
  if (px_n_pending == 0) return;
  double t0 = MPI_Wtime();
  PX_MPI(MPI_Waitall(px_n_pending, px_pending, MPI_STATUSES_IGNORE));
  px_n_pending = 0;
  double dt = MPI_Wtime() - t0;
  px_wait_time += dt;
  px_comm_time += dt;
}

int px_comm_pending(void) { return px_n_pending; }

double px_comm_wait_seconds(void) { return px_wait_time; }

void px_comm_gather_bytes(const void *send, size_t n, char **recv, size_t *recv_n) {
  /* The counts first (as int64), then one MPI_Gatherv with int counts and displacements. */
  int64_t mine = (int64_t)n;
  int64_t *counts = px_rank == 0 ? px_malloc((size_t)px_size * sizeof *counts) : NULL;
  PX_MPI(MPI_Gather(&mine, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, 0, px_world));
  int *icounts = NULL, *displs = NULL;
  int64_t total = 0;
  *recv = NULL;
  *recv_n = 0;
  if (px_rank == 0) {
    icounts = px_malloc((size_t)px_size * sizeof *icounts);
    displs = px_malloc((size_t)px_size * sizeof *displs);
    for (int r = 0; r < px_size; r++) {
      PX_REQUIRE(total + counts[r] < INT_MAX, "px_comm_gather_bytes: %lld bytes exceed 2 GiB",
                 (long long)(total + counts[r]));
      displs[r] = (int)total;
      icounts[r] = (int)counts[r];
      total += counts[r];
    }
    *recv = px_malloc((size_t)total + 1);
    (*recv)[total] = '\0';
    *recv_n = (size_t)total;
  }
  PX_REQUIRE(n < INT_MAX, "px_comm_gather_bytes: %zu bytes exceed 2 GiB", n);
  PX_MPI(MPI_Gatherv(send, (int)n, MPI_BYTE, px_rank == 0 ? *recv : NULL, icounts, displs, MPI_BYTE,
                     0, px_world));
  free(counts);
  free(icounts);
  free(displs);
}

void px_comm_barrier(void) { PX_MPI(MPI_Barrier(px_world)); }

void px_comm_barrier_idle(void) {
  MPI_Request req;
  PX_MPI(MPI_Ibarrier(px_world, &req));
  for (int done = 0;;) {
    PX_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    (void)nanosleep(&(struct timespec){0, 200000}, NULL); /* woken early by a signal: poll */
  }
}

void px_comm_share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi) {
  int64_t base = n / size, extra = n % size;
  *lo = rank * base + (rank < extra ? rank : extra);
  *hi = *lo + base + (rank < extra ? 1 : 0);
}

const char *px_comm_library(char *buf, size_t n) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int len = 0;
  PX_MPI(MPI_Get_library_version(text, &len));
  text[strcspn(text, "\n,")] = '\0';
  snprintf(buf, n, "%s", text);
  return buf;
}

void px_comm_gather_rows(void *all, const void *rows, int64_t n, size_t row_bytes) {
  PX_REQUIRE(n >= 0 && n < INT_MAX && row_bytes > 0 && row_bytes < INT_MAX,
             "px_comm_gather_rows: %lld rows of %zu bytes", (long long)n, row_bytes);
  int mine = (int)n, *counts = NULL, *displs = NULL;
  if (px_rank == 0) {
    counts = px_malloc((size_t)px_size * sizeof *counts);
    displs = px_malloc((size_t)px_size * sizeof *displs);
  }
  PX_MPI(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, px_world));
  for (int r = 0, at = 0; px_rank == 0 && r < px_size; r++) {
    PX_REQUIRE((int64_t)at + counts[r] < INT_MAX, "px_comm_gather_rows: over %d rows", INT_MAX);
    displs[r] = at;
    at += counts[r];
  }
  MPI_Datatype row;
  PX_MPI(MPI_Type_contiguous((int)row_bytes, MPI_BYTE, &row));
  PX_MPI(MPI_Type_commit(&row));
  double t0 = MPI_Wtime();
  PX_MPI(MPI_Gatherv(rows, mine, row, all, counts, displs, row, 0, px_world));
  px_comm_time += MPI_Wtime() - t0;
  PX_MPI(MPI_Type_free(&row));
  free(counts);
  free(displs);
}

void px_comm_allgather_share(void *rows, int64_t n, size_t row_bytes) {
  /* Rank r's rows are [lo_r, hi_r) of the px_comm_share split, in place in rows. */
  int *counts = px_malloc((size_t)px_size * sizeof *counts);
  int *displs = px_malloc((size_t)px_size * sizeof *displs);
  for (int r = 0; r < px_size; r++) {
    int64_t lo, hi;
    px_comm_share(n, r, px_size, &lo, &hi);
    PX_REQUIRE((double)n * (double)row_bytes < (double)INT_MAX,
               "px_comm_allgather_share: %lld rows of %zu bytes exceed 2 GiB", (long long)n,
               row_bytes);
    counts[r] = (int)((hi - lo) * (int64_t)row_bytes);
    displs[r] = (int)(lo * (int64_t)row_bytes);
  }
  double t0 = MPI_Wtime();
  PX_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, rows, counts, displs, MPI_BYTE, px_world));
  px_comm_time += MPI_Wtime() - t0;
  free(counts);
  free(displs);
}

double px_comm_seconds(void) { return px_comm_time; }
