/*
 * comm.h — the distributed layer: MPI set up and torn down in one place, and the few collective
 * operations the rest of Proxima needs. src/dist/comm.c is the only compilation unit that calls
 * MPI functions directly (io/ hands the communicator to HDF5's MPI-IO driver and nothing more).
 *
 * Every MPI call is checked: the world communicator runs with MPI_ERRORS_RETURN, and a failing
 * call prints "proxima: file.c:123: MPI_Xxx failed (code N: text)" and aborts every rank.
 */
#ifndef PROXIMA_COMM_H
#define PROXIMA_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"

/* Starts MPI (threads: funneled; only the master thread calls MPI). Collective over the
 * processes of the launch; call once, first thing in main. */
void px_comm_init(int *argc, char ***argv);

/* Ends MPI. Collective. Safe to call when px_comm_init was never called. */
void px_comm_finalize(void);

/* This process's rank and the number of ranks. Not collective. */
int px_comm_rank(void);
int px_comm_size(void);

/* The ranks on this rank's node, which share its memory (1 before px_comm_init). Not
 * collective. */
int px_comm_node_size(void);

/* Whether MPI is initialised and not yet finalised. Not collective. */
int px_comm_is_up(void);

/* The communicator of the run, for io/ to hand to HDF5's MPI-IO driver. Not collective. */
MPI_Comm px_comm_mpi(void);

/* Aborts every rank with the given exit status. Not collective. */
_Noreturn void px_comm_abort(int status);

/* Collective: returns the worst (largest) status over all ranks. When it is not PX_OK, err (on
 * every rank) holds the message of the lowest rank that had that status. */
px_status px_comm_agree(px_status local, px_error *err);

/* Collective: broadcasts n bytes from root. */
void px_comm_bcast(void *buf, size_t n, int root);

/* Collective: element-wise sums over all ranks, in place. */
void px_comm_allreduce_sum_f64(double *buf, size_t n);
void px_comm_allreduce_sum_f32(float *buf, size_t n);
void px_comm_allreduce_sum_i64(int64_t *buf, size_t n);

/* Non-blocking sums, for the gradient reduction that overlaps the backward pass (trainer.c).
 * px_comm_iallreduce_sum_f32 starts an in-place element-wise sum of buf over all ranks and adds
 * it to this process's pending set; buf must not be touched until px_comm_wait_all returns.
 * Every rank must start the same reductions (same n) in the same order, placed the same way
 * among the blocking collectives. Open MPI has no progress thread: a pending reduction moves
 * only inside MPI calls, so a caller that computes meanwhile calls px_comm_progress between
 * pieces of work. On 2 ranks the result is bitwise that of px_comm_allreduce_sum_f32 (a + b is
 * commutative); on more, the same up to the order of the sum. With 1 rank all three do nothing.
 * Starting is collective (non-blocking); progress and wait are not. */
void px_comm_iallreduce_sum_f32(float *buf, size_t n);
void px_comm_progress(void);
void px_comm_wait_all(void);

/* Reductions started and not yet completed by px_comm_wait_all. Not collective. */
int px_comm_pending(void);

/* Seconds this process has spent blocked in px_comm_wait_all: the part of the non-blocking
 * reductions that compute did not hide (also counted in px_comm_seconds, with the time spent
 * starting and progressing them). Not collective. */
double px_comm_wait_seconds(void);

/* Collective: gathers every rank's n bytes at send to rank 0, end to end in rank order. On rank
 * 0, *recv is a new buffer of *recv_n bytes plus a NUL (the caller frees it); on the other ranks
 * *recv is NULL and *recv_n 0. The total must stay below 2 GiB (MPI's int counts). */
void px_comm_gather_bytes(const void *send, size_t n, char **recv, size_t *recv_n);

/* Collective: gathers every rank's n rows of row_bytes each (at rows) to rank 0, end to end in
 * rank order, into all, which on rank 0 has room for every rank's rows (ignored elsewhere). Rows
 * travel as one MPI type of row_bytes, so only the row counts need fit MPI's int. */
void px_comm_gather_rows(void *all, const void *rows, int64_t n, size_t row_bytes);

/* Collective: rows is an array of n rows of row_bytes each, of which this rank holds its
 * px_comm_share rows in place; afterwards every rank holds all n. */
void px_comm_allgather_share(void *rows, int64_t n, size_t row_bytes);

/* Seconds this process has spent in the allreduces and allgathers (communication time, for
 * the metrics). Not collective. */
double px_comm_seconds(void);

/* The MPI library's version line ("Open MPI v4.1.4, ..."), first line only, in buf of n
 * bytes. Not collective. */
const char *px_comm_library(char *buf, size_t n);

/* Collective: waits for every rank. */
void px_comm_barrier(void);

/* px_comm_barrier for ranks that wait on one rank's long task (rank 0 writing a checkpoint):
 * it sleeps between polls (0.2 ms) instead of spinning on a core as MPI's blocking calls do,
 * so the waiting ranks leave the CPU to the working one and the kernel's writeback. Collective. */
void px_comm_barrier_idle(void);

/* The contiguous share [*lo, *hi) of n items that a rank owns when n items are split over size
 * ranks: the first n % size ranks get one more. Not collective (pure arithmetic). */
void px_comm_share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);

#endif
