/*
 * signals.c — the stop flag set by SIGTERM and SIGUSR1; see signals.h.
 */
#include "proxima/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "proxima/error.h"

static volatile sig_atomic_t px_stop_signal = 0;

static void px_on_signal(int sig) {
  if (px_stop_signal) _exit(128 + sig); /* the second one: at once, no cleanup */
  px_stop_signal = sig;
}

void px_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = px_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* a signal must not fail the I/O it interrupts */
  PX_REQUIRE(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0,
             "sigaction failed");
}

int px_signals_pending(void) { return (int)px_stop_signal; }
