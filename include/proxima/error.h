/*
 * error.h — status codes, user-facing error messages and the checking macros.
 *
 * Two kinds of failure (DESIGN.md section 8):
 *  - a user's mistake (a bad config key, a malformed JSONL line, a damaged HDF5 file): the module
 *    that read the input returns PX_EINPUT with a message in the user's terms in a px_error, and
 *    only main() turns it into exit status 1;
 *  - an internal failure (an MPI call, an allocation, an HDF5 call on our own file): the module's
 *    checking macro (PX_MPI in comm.c, PX_REQUIRE, px_malloc, the io/ checks of h5util.h) prints
 *    "proxima: file.c:123: what failed (call returned code)" and aborts every rank.
 */
#ifndef PROXIMA_ERROR_H
#define PROXIMA_ERROR_H

#include <stddef.h>

/* Exit statuses of the program (DESIGN.md section 7) and return statuses of module boundaries. */
typedef enum px_status {
  PX_OK = 0,          /* done */
  PX_EINPUT = 1,      /* bad usage, config or input: the message says what and where */
  PX_ERUN = 2,        /* a failure while running (I/O error, resource exhausted) */
  PX_EINTERRUPTED = 3 /* stopped on a signal after writing a checkpoint */
} px_status;

/* The message that goes with a failing status. Filled by px_error_set; empty when none. */
typedef struct px_error {
  char msg[2048];
} px_error;

/* Formats a message into err (when err is not NULL) and returns status, so that a failure
 * reads `return px_error_set(err, PX_EINPUT, "%s:%d: ...", path, line);`. Not collective. */
px_status px_error_set(px_error *err, px_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Where this process stands among the ranks, for messages, the log and PROXIMA_FAULT: rank 0 of 1
 * until the distributed layer (comm.c, the one file that calls MPI) reports its rank, the rank
 * count and the function that ends every rank (util itself calls no MPI). Not collective. */
void px_error_set_process(int rank, int size, void (*abort_all)(int status));
int px_process_rank(void);
int px_process_size(void);

/* Prints "proxima: FILE:LINE: what (detail)" on stderr (with "rank R: " when there are several)
 * and ends every rank (px_error_set_process's abort_all, exit when none) with status 2. Not
 * collective: any rank may call it. */
_Noreturn void px_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocation that never returns NULL: an exhausted allocator is an internal failure. */
void *px_malloc_check(size_t size, const char *file, int line);
void *px_calloc_check(size_t count, size_t size, const char *file, int line);
void *px_realloc_check(void *ptr, size_t size, const char *file, int line);
char *px_strdup_check(const char *s, const char *file, int line);
/* Zeroed memory for a large, long-lived array (a model's parameters, gradients, Adam moments,
 * activations): from 2 MiB on, aligned to 2 MiB and, on Linux, offered transparent huge pages
 * (madvise MADV_HUGEPAGE, which Debian's default THP setting "madvise" waits for), so that
 * hundreds of megabytes take hundreds of TLB entries instead of tens of thousands. Released
 * with free(). */
void *px_calloc_large_check(size_t count, size_t size, const char *file, int line);
/* What px_calloc_large takes from the heap for an array of that many bytes: from 2 MiB on, 2 MiB
 * more for the alignment (address space only: the pages before the array are never touched). */
double px_calloc_large_bytes(double bytes);

#define px_malloc(size) px_malloc_check((size), __FILE__, __LINE__)
#define px_calloc(count, size) px_calloc_check((count), (size), __FILE__, __LINE__)
#define px_realloc(ptr, size) px_realloc_check((ptr), (size), __FILE__, __LINE__)
#define px_strdup(s) px_strdup_check((s), __FILE__, __LINE__)
#define px_calloc_large(count, size) px_calloc_large_check((count), (size), __FILE__, __LINE__)

/* Dies when cond is false; for invariants of our own code, never for user input. */
#define PX_REQUIRE(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) px_die(__FILE__, __LINE__, __VA_ARGS__);                                          \
  } while (0)

/* Propagates a non-OK status to the caller. */
#define PX_TRY(expr)                                                                               \
  do {                                                                                             \
    px_status px_try_status_ = (expr);                                                             \
    if (px_try_status_ != PX_OK) return px_try_status_;                                            \
  } while (0)

#endif
