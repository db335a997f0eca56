/*
 * error.c — user-facing error messages (px_error) and the internal-failure path (px_die).
 */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE, a Linux extension */
#include "proxima/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The process among the ranks; set by comm.c (px_error_set_process). */
static int px_proc_rank_ = 0, px_proc_size_ = 1;
static void (*px_abort_all)(int status) = NULL;

void px_error_set_process(int rank, int size, void (*abort_all)(int status)) {
  px_proc_rank_ = rank, px_proc_size_ = size, px_abort_all = abort_all;
}

int px_process_rank(void) { return px_proc_rank_; }
int px_process_size(void) { return px_proc_size_; }

px_status px_error_set(px_error *err, px_status status, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return status;
}

_Noreturn void px_die(const char *file, int line, const char *fmt, ...) {
  const char *base = strrchr(file, '/');
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (px_proc_size_ > 1)
    fprintf(stderr, "proxima: rank %d: %s:%d: %s\n", px_proc_rank_, base ? base + 1 : file, line,
            what);
  else
    fprintf(stderr, "proxima: %s:%d: %s\n", base ? base + 1 : file, line, what);
  fflush(stderr);
  if (px_abort_all) px_abort_all(PX_ERUN);
  exit(PX_ERUN);
}

void *px_malloc_check(size_t size, const char *file, int line) {
  void *p = malloc(size ? size : 1);
  if (!p) px_die(file, line, "malloc of %zu bytes failed (out of memory)", size);
  return p;
}

void *px_calloc_check(size_t count, size_t size, const char *file, int line) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) px_die(file, line, "calloc of %zu x %zu bytes failed (out of memory)", count, size);
  return p;
}

enum { PX_HUGE_PAGE = 2 << 20 }; /* x86-64's transparent huge page */

void *px_calloc_large_check(size_t count, size_t size, const char *file, int line) {
  if (size && count > SIZE_MAX / size)
    px_die(file, line, "allocation of %zu x %zu bytes overflows", count, size);
  const size_t bytes = count * size;
  if (bytes < PX_HUGE_PAGE) return px_calloc_check(count, size, file, line);
  void *p = NULL;
  const int rc = posix_memalign(&p, PX_HUGE_PAGE, bytes);
  if (rc != 0)
    px_die(file, line, "allocation of %zu bytes failed (%s)", bytes,
           rc == ENOMEM ? "out of memory" : strerror(rc));
#ifdef MADV_HUGEPAGE
  /* Before the first touch, so that the pages are huge from the start. Only a hint: where THP
   * is off (or not built into the kernel) the call fails and the pages stay small. */
  (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
  memset(p, 0, bytes);
  return p;
}

double px_calloc_large_bytes(double bytes) {
  return bytes >= PX_HUGE_PAGE ? bytes + PX_HUGE_PAGE : bytes;
}

void *px_realloc_check(void *ptr, size_t size, const char *file, int line) {
  void *p = realloc(ptr, size ? size : 1);
  if (!p) px_die(file, line, "realloc to %zu bytes failed (out of memory)", size);
  return p;
}

char *px_strdup_check(const char *s, const char *file, int line) {
  size_t n = strlen(s) + 1;
  char *p = px_malloc_check(n, file, line);
  memcpy(p, s, n);
  return p;
}
