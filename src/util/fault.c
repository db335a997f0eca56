/*
 * fault.c — PROXIMA_FAULT, the tests' switch; see fault.h.
 */
#include "proxima/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void px_fault_point(const char *point) {
  static int parsed = 0, arrivals = 0, sig = SIGKILL;
  static long when = 0;
  static char name[64];
  if (!parsed) { /* "POINT:N[:SIGNAL]" */
    parsed = 1;
    const char *spec = getenv("PROXIMA_FAULT");
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (colon && (size_t)(colon - spec) < sizeof name) {
      memcpy(name, spec, (size_t)(colon - spec));
      name[colon - spec] = '\0';
      char *end;
      when = strtol(colon + 1, &end, 10);
      if (!strcmp(end, ":TERM"))
        sig = SIGTERM;
      else if (!strcmp(end, ":USR1"))
        sig = SIGUSR1;
      else if (*end && strcmp(end, ":KILL"))
        when = 0; /* not understood: no fault */
    }
  }
  if (when <= 0 || strcmp(point, name) != 0 || ++arrivals != when) return;
  fprintf(stderr, "proxima: PROXIMA_FAULT: signal %d at %s (arrival %d)\n", sig, point, arrivals);
  fflush(stderr);
  raise(sig);
}
