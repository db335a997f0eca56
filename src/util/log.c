/*
 * log.c — rank-0 logging to stderr and, once a run directory exists, to its log file.
 */
#include "proxima/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static px_log_level px_level = PX_LOG_INFO;
static struct timespec px_t0;
static FILE *px_logfile = NULL;

static double px_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void px_log_init(px_log_level level) {
  px_level = level;
  clock_gettime(CLOCK_MONOTONIC, &px_t0);
}

void px_log_set_level(px_log_level level) { px_level = level; }

double px_log_elapsed(void) {
  return px_now() - ((double)px_t0.tv_sec + 1e-9 * (double)px_t0.tv_nsec);
}

const char *px_log_duration(char *buf, size_t n, double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) seconds = 0;
  long t = (long)(seconds + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
  else
    snprintf(buf, n, "%lds", t);
  return buf;
}

px_status px_log_open_file(const char *path, px_error *err) {
  if (px_process_rank() != 0) return PX_OK;
  px_log_close_file();
  px_logfile = fopen(path, "a");
  if (!px_logfile) return px_error_set(err, PX_ERUN, "cannot open the log file %s", path);
  return PX_OK;
}

void px_log_close_file(void) {
  /* The log is best effort, as its writes (px_emit): a failed close must not stop a run. */
  if (px_logfile) (void)fclose(px_logfile);
  px_logfile = NULL;
}

static void px_emit(FILE *to, const char *prefix, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  fputs(prefix, to);
  vfprintf(to, fmt, ap);
  fputc('\n', to);
  fflush(to);
  if (px_logfile) {
    fputs(prefix, px_logfile);
    vfprintf(px_logfile, fmt, copy);
    fputc('\n', px_logfile);
    fflush(px_logfile);
  }
  va_end(copy);
}

#define PX_LOG_BODY(level, prefix)                                                                 \
  do {                                                                                             \
    if (px_level > (level) || px_process_rank() != 0) return;                                      \
    va_list ap;                                                                                    \
    va_start(ap, fmt);                                                                             \
    px_emit(stderr, (prefix), fmt, ap);                                                            \
    va_end(ap);                                                                                    \
  } while (0)

static const char *px_stamp(void) {
  static char buf[32];
  snprintf(buf, sizeof buf, "[proxima %7.1fs] ", px_log_elapsed());
  return buf;
}

void px_log_debug(const char *fmt, ...) { PX_LOG_BODY(PX_LOG_DEBUG, px_stamp()); }
void px_log_info(const char *fmt, ...) { PX_LOG_BODY(PX_LOG_INFO, px_stamp()); }
void px_log_warn(const char *fmt, ...) { PX_LOG_BODY(PX_LOG_WARN, "proxima: warning: "); }

void px_log_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  px_emit(stderr, "proxima: error: ", fmt, ap);
  va_end(ap);
}
