/*
 * log.h — the logger: rank 0 alone prints (DESIGN.md section 4). Messages go to stderr, so that
 * stdout carries only a command's results (a config table, generated text); a run directory's
 * log file receives a copy once px_log_open_file is called.
 *
 *   [proxima    1.2s] message         info, with seconds since start-up
 *   proxima: warning: message         warnings
 *   proxima: error: message           user-facing errors (printed by main)
 */
#ifndef PROXIMA_LOG_H
#define PROXIMA_LOG_H

#include "proxima/error.h"

typedef enum px_log_level {
  PX_LOG_DEBUG = 0,
  PX_LOG_INFO = 1,
  PX_LOG_WARN = 2,
  PX_LOG_QUIET = 3
} px_log_level;

/* Sets the level below which messages are dropped and starts the clock. Not collective. */
void px_log_init(px_log_level level);
void px_log_set_level(px_log_level level);

/* Copies every later message (rank 0 only) into path, appending. Returns PX_ERUN with a message
 * when the file cannot be opened. Not collective. */
px_status px_log_open_file(const char *path, px_error *err);
void px_log_close_file(void);

/* Seconds since px_log_init. */
double px_log_elapsed(void);

/* A duration for people: "42s", "3m07s", "2h05m". buf has n bytes; returns buf. */
const char *px_log_duration(char *buf, size_t n, double seconds);

void px_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void px_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void px_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Errors are printed by every rank that calls this (main calls it on rank 0 after the ranks
 * agreed on a status; px_die covers internal failures on any rank). */
void px_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
