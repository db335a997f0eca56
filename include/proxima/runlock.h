/*
 * runlock.h — the lock that keeps a second process out of a run directory while one uses it
 * (a requeued job racing a manual resubmission would otherwise overwrite the other's
 * checkpoints). The lock is the kernel's, on DIR/.lock: it dies with its holder, so a holder
 * killed with kill -9 or lost with its node never locks its successor out. Not collective: one
 * process (rank 0) takes it for the run.
 */
#ifndef PROXIMA_RUNLOCK_H
#define PROXIMA_RUNLOCK_H

#include "proxima/error.h"

typedef struct px_runlock {
  int held; /* 1 while fd holds the lock; a zeroed px_runlock holds nothing */
  int fd;
} px_runlock;

/* Locks the existing directory dir: creates DIR/.lock if needed, takes its lock without
 * waiting and writes the holder into it (host, PID, Slurm job id when SLURM_JOB_ID is set,
 * start time). When another process holds it: PX_EINPUT naming the holder, and nothing in dir
 * is changed. On a file system without locking (ENOLCK, EOPNOTSUPP, ENOSYS): a warning, once
 * per process, that dir is not protected, and PX_OK with nothing held. PX_ERUN when the lock
 * file cannot be opened or written. The file descriptor is close-on-exec, but a child forked
 * without exec shares the lock until it exits. */
px_status px_runlock_acquire(px_runlock *lock, const char *dir, px_error *err);

/* Releases the lock (nothing when none is held). DIR/.lock stays: removing it would let two
 * processes lock two different files of the same name. */
void px_runlock_release(px_runlock *lock);

#endif
