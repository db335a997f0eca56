/*
 * signals.h — stopping a run cleanly on SIGTERM or SIGUSR1 (what Slurm sends before a time
 * limit or a preemption).
 *
 * The first signal only sets a flag. The training loops read it at each step boundary, agree
 * on it over the ranks (px_run_should_stop), write a checkpoint and exit with status 3. A second
 * signal ends the process at once with status 128 + the signal number, as if the signal had
 * killed it: a checkpoint being written is left as a temporary file, and LATEST keeps naming
 * the last complete one.
 */
#ifndef PROXIMA_SIGNALS_H
#define PROXIMA_SIGNALS_H

/* Installs the handlers for SIGTERM and SIGUSR1. Not collective. */
void px_signals_install(void);

/* The number of the first stop signal received on this process, 0 if none. Not collective. */
int px_signals_pending(void);

#endif
