/*
 * fault.c — PROXIMA_FAULT, the tests' switch; see fault.h.
 */
#include "proxima/fault.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/error.h"

typedef enum px_fault_action {
  PX_FAULT_NONE,
  PX_FAULT_SIGNAL,
  PX_FAULT_NAN,
  PX_FAULT_FAIL
} px_fault_action;

/* PROXIMA_FAULT, parsed once. */
typedef struct px_fault_spec {
  char point[64];
  long when;  /* the arrival that acts; 0: no fault */
  int and_on; /* "+": every arrival from `when` on */
  int rank;   /* -1: every rank */
  px_fault_action action;
  int sig; /* for PX_FAULT_SIGNAL */
} px_fault_spec;

/* Parses "POINT:N[+][:ACTION][@RANK]" into spec; returns 0 when it does not parse. */
static int px_fault_parse(const char *text, px_fault_spec *spec) {
  static const struct {
    const char *name;
    px_fault_action action;
    int sig;
  } actions[] = {{"KILL", PX_FAULT_SIGNAL, SIGKILL},
                 {"TERM", PX_FAULT_SIGNAL, SIGTERM},
                 {"USR1", PX_FAULT_SIGNAL, SIGUSR1},
                 {"NAN", PX_FAULT_NAN, 0},
                 {"FAIL", PX_FAULT_FAIL, 0}};
  *spec = (px_fault_spec){.rank = -1, .action = PX_FAULT_SIGNAL, .sig = SIGKILL};
  const char *colon = strchr(text, ':');
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof spec->point) return 0;
  memcpy(spec->point, text, (size_t)(colon - text));
  spec->point[colon - text] = '\0';
  char *end;
  spec->when = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || spec->when <= 0) return 0;
  if (*end == '+') spec->and_on = 1, end++;
  if (*end == ':') {
    size_t len = strcspn(end + 1, "@");
    size_t i = 0, n = sizeof actions / sizeof actions[0];
    while (i < n && (strlen(actions[i].name) != len || strncmp(end + 1, actions[i].name, len) != 0))
      i++;
    if (i == n) return 0;
    spec->action = actions[i].action, spec->sig = actions[i].sig;
    end += 1 + len;
  }
  if (*end == '@') {
    const char *digits = end + 1;
    long rank = strtol(digits, &end, 10);
    if (end == digits || rank < 0) return 0;
    spec->rank = (int)rank;
  }
  return *end == '\0';
}

/* Counts an arrival at point; returns what PROXIMA_FAULT asks of it (and raises a signal). */
static px_fault_action px_fault_arrive(const char *point) {
  static int parsed = 0;
  static long arrivals = 0;
  static px_fault_spec spec;
  if (!parsed) {
    parsed = 1;
    const char *text = getenv("PROXIMA_FAULT");
    if (!text || !px_fault_parse(text, &spec)) spec.when = 0;
  }
  if (spec.when <= 0 || strcmp(point, spec.point) != 0) return PX_FAULT_NONE;
  arrivals++;
  if (arrivals < spec.when || (arrivals > spec.when && !spec.and_on)) return PX_FAULT_NONE;
  if (spec.rank >= 0 && spec.rank != px_process_rank()) return PX_FAULT_NONE;
  const char *what = spec.action == PX_FAULT_NAN ? "a NaN" : "a failed write";
  char sig[32];
  if (spec.action == PX_FAULT_SIGNAL) snprintf(sig, sizeof sig, "signal %d", spec.sig), what = sig;
  fprintf(stderr, "proxima: PROXIMA_FAULT: %s at %s (arrival %ld, rank %d)\n", what, point,
          arrivals, px_process_rank());
  fflush(stderr);
  if (spec.action == PX_FAULT_SIGNAL) raise(spec.sig);
  return spec.action;
}

void px_fault_point(const char *point) { px_fault_arrive(point); }

int px_fault_poison(const char *point, float *buf, size_t n) {
  if (px_fault_arrive(point) != PX_FAULT_NAN || n == 0) return 0;
  buf[0] = NAN;
  return 1;
}

int px_fault_fails(const char *point) { return px_fault_arrive(point) == PX_FAULT_FAIL; }
