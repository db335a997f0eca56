/*
 * test_proc.h — running the proxima binary from a test, as a user would: behind an optional
 * launcher (an mpiexec command line), with its stdout and stderr captured.
 *
 * The binary is $PX_PROXIMA; launchers come from $PX_LAUNCH (the suite's own) and
 * $PX_LAUNCH_2 (a 2-rank mpiexec), both set by tests/CMakeLists.txt.
 */
#ifndef PROXIMA_TEST_PROC_H
#define PROXIMA_TEST_PROC_H

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "test_util.h"

/* What the last px_proc_run printed. */
static char px_proc_out[1 << 16], px_proc_err[1 << 16];

static inline void px_proc_slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = '\0';
  if (f) fclose(f);
}

/* Variables the runner had before MPI started, which the singleton never sets: a user's
 * OMPI_ALLOW_RUN_AS_ROOT*, and the settings tests/CMakeLists.txt gives every test
 * (PX_TEST_ENV, PX_TEST_MPI_ENV). */
static inline int px_proc_keep_var(const char *e) {
  static const char *keep[] = {"OMPI_ALLOW_RUN_AS_ROOT",
                               "OMPI_MCA_mca_base_component_disable_dlclose=", "OMPI_MCA_pml=",
                               "OMPI_MCA_btl=", "OMPI_MCA_ess_singleton_isolated="};
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    if (!strncmp(e, keep[i], strlen(keep[i]))) return 1;
  return 0;
}

/* The runner starts MPI as a singleton, which leaves its own job's variables in the
 * environment; a launcher started from a test would take them for its own. Call once before
 * running anything (px_proc_keep_var's stay). */
static inline void px_proc_forget_singleton_job(void) {
  extern char **environ;
  for (int again = 1; again;) {
    again = 0;
    for (char **e = environ; *e; e++) {
      int ours = !strncmp(*e, "PMIX_", 5) || !strncmp(*e, "ORTE_", 5) ||
                 (!strncmp(*e, "OMPI_", 5) && !px_proc_keep_var(*e));
      if (!ours) continue;
      char name[256];
      size_t n = strcspn(*e, "=");
      snprintf(name, sizeof name, "%.*s", (int)n, *e);
      unsetenv(name);
      again = 1; /* environ changed under us: scan again */
      break;
    }
  }
}

/* Runs `LAUNCH $PX_PROXIMA ARGS` (ARGS formatted; quoting is the caller's); returns the exit
 * status and leaves stdout and stderr in px_proc_out and px_proc_err. */
static inline int px_proc_run(const char *launch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int px_proc_run(const char *launch, const char *fmt, ...) {
  char args[4096], cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  const char *bin = getenv("PX_PROXIMA");
  CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
  snprintf(cmd, sizeof cmd, "%s %s %s >proc.out 2>proc.err", launch ? launch : "", bin, args);
  int status = system(cmd);
  px_proc_slurp("proc.out", px_proc_out, sizeof px_proc_out);
  px_proc_slurp("proc.err", px_proc_err, sizeof px_proc_err);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs `$PX_LAUNCH_2 $PX_PROXIMA ARGS --run DIR` (2 ranks) with PROXIMA_FAULT=fault, or with
 * no fault when it is NULL; as px_proc_run. */
static inline int px_proc_run2_fault(const char *fault, const char *args, const char *dir) {
  if (fault) setenv("PROXIMA_FAULT", fault, 1);
  int rc = px_proc_run(getenv("PX_LAUNCH_2"), "%s --run %s", args, dir);
  unsetenv("PROXIMA_FAULT");
  return rc;
}

/* Seconds on the monotonic clock: for bounds on how long a launch took. */
static inline double px_proc_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 1 when files a and b both exist and hold the same bytes. */
static inline int px_proc_same_file(const char *a, const char *b) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

/* The values of key in the records of DIR/metrics.jsonl whose phase is `phase`, in file order,
 * into out (at most cap); returns how many there were. */
static inline int px_proc_metric(const char *dir, const char *phase, const char *key, double *out,
                                 int cap) {
  char path[512], line[8192];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  FILE *f = fopen(path, "r");
  int n = 0;
  while (f && fgets(line, sizeof line, f)) {
    json_t *o = json_loads(line, 0, NULL), *v = o ? json_object_get(o, key) : NULL;
    const char *ph = o ? json_string_value(json_object_get(o, "phase")) : NULL;
    if (ph && !strcmp(ph, phase) && v && json_is_number(v) && n < cap)
      out[n++] = json_number_value(v);
    json_decref(o);
  }
  if (f) fclose(f);
  return n;
}

#endif
