/*
 * runlock.c — the run directory's lock; see runlock.h.
 *
 * Why a kernel lock and not a file that exists while a run does: a requeued job must never be
 * refused because its predecessor died holding the lock (kill -9, a lost node), and only a lock
 * the kernel (or the file server's lock manager) drops when its holder dies guarantees that.
 *
 * Which one: a Linux open-file-description lock (fcntl F_OFD_SETLK) on the whole of DIR/.lock.
 * It belongs to the open file, not the process, so unlike a classic POSIX lock (F_SETLK) it is
 * not dropped when the process closes some other descriptor of the same file (an HDF5 or stdio
 * open of it would do that), and a second open in the same process conflicts with it, as a
 * second process does. Unlike flock() it is a byte-range lock, which NFS (through NLM or NFSv4
 * locks) and Lustre and GPFS pass to their lock managers, so it excludes processes on other
 * nodes. A kernel without OFD locks (before 3.15) answers EINVAL; then the classic lock is
 * taken, which holds for the run because this is the process's only descriptor of the file.
 *
 * The holder writes who it is into the file after it has the lock, so that a refused process
 * can name it. A refused process opens the file without truncating it and only reads it: it
 * changes nothing in the directory.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "proxima/runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "proxima/log.h"

/* A write lock on the whole file, without waiting: 0, or -1 with errno (EAGAIN or EACCES when
 * another holds it). */
static int px_runlock_take(int fd) {
  struct flock fl;
  memset(&fl, 0, sizeof fl); /* l_pid must be 0 for an OFD lock */
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  int rc;
#ifdef F_OFD_SETLK
  do rc = fcntl(fd, F_OFD_SETLK, &fl);
  while (rc != 0 && errno == EINTR);
  if (rc == 0 || errno != EINVAL) return rc;
#endif
  do rc = fcntl(fd, F_SETLK, &fl);
  while (rc != 0 && errno == EINTR);
  return rc;
}

/* Copies the printable characters of src (at most n - 1) into dst. */
static void px_runlock_printable(char *dst, size_t n, const char *src, size_t len) {
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < n; i++)
    if ((unsigned char)src[i] >= 0x20 && (unsigned char)src[i] < 0x7f) dst[j++] = src[i];
  dst[j] = '\0';
}

/* The value of the line "key=value" of text into out (n bytes), "" when there is none. */
static void px_runlock_field(const char *text, const char *key, char *out, size_t n) {
  size_t klen = strlen(key);
  out[0] = '\0';
  for (const char *line = text; *line;) {
    size_t len = strcspn(line, "\n");
    if (len > klen && !strncmp(line, key, klen) && line[klen] == '=') {
      px_runlock_printable(out, n, line + klen + 1, len - klen - 1);
      return;
    }
    line += len + (line[len] == '\n');
  }
}

/* Truncates fd and writes the holder's record: host, PID, Slurm job id, start time. */
static int px_runlock_write_holder(int fd) {
  char host[256], job[64], since[64], text[1024];
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "an unknown host");
  host[sizeof host - 1] = '\0';
  const char *env = getenv("SLURM_JOB_ID");
  px_runlock_printable(job, sizeof job, env ? env : "", env ? strlen(env) : 0);
  time_t now = time(NULL);
  struct tm tm;
  if (now == (time_t)-1 || !localtime_r(&now, &tm) ||
      !strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S %z", &tm))
    snprintf(since, sizeof since, "an unknown time");
  int len = snprintf(text, sizeof text, "host=%s\npid=%ld\nslurm_job_id=%s\nsince=%s\n", host,
                     (long)getpid(), job, since);
  if (len < 0 || len >= (int)sizeof text) len = (int)sizeof text - 1;
  if (ftruncate(fd, 0) != 0) return -1;
  for (ssize_t done = 0; done < len;) {
    ssize_t put = pwrite(fd, text + done, (size_t)(len - done), (off_t)done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      if (put == 0) errno = EIO;
      return -1;
    }
    done += put;
  }
  return 0;
}

/* PX_EINPUT naming the holder recorded in fd's file (read only). */
static px_status px_runlock_refuse(int fd, const char *dir, px_error *err) {
  char text[1024], host[256], pid[32], job[64], since[64];
  ssize_t got;
  do got = pread(fd, text, sizeof text - 1, 0);
  while (got < 0 && errno == EINTR);
  text[got > 0 ? got : 0] = '\0';
  px_runlock_field(text, "host", host, sizeof host);
  px_runlock_field(text, "pid", pid, sizeof pid);
  px_runlock_field(text, "slurm_job_id", job, sizeof job);
  px_runlock_field(text, "since", since, sizeof since);
  const char *advice = "wait for it to finish or stop it (the lock is released when its holder "
                       "exits or dies)";
  if (!pid[0] || !host[0])
    return px_error_set(err, PX_EINPUT,
                        "run directory %s is in use by another process (it has not yet recorded "
                        "itself in %s/.lock); %s",
                        dir, dir, advice);
  char slurm[96] = "";
  if (job[0]) snprintf(slurm, sizeof slurm, " (Slurm job %s)", job);
  return px_error_set(err, PX_EINPUT, "run directory %s is in use by PID %s on %s%s since %s; %s",
                      dir, pid, host, slurm, since[0] ? since : "an unknown time", advice);
}

px_status px_runlock_acquire(px_runlock *lock, const char *dir, px_error *err) {
  memset(lock, 0, sizeof *lock);
  lock->fd = -1;
  char path[4200];
  if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
    return px_error_set(err, PX_EINPUT, "%.80s...: path too long", dir);
  /* O_NOFOLLOW: a symbolic link planted as .lock must not make us truncate another file */
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0666);
  if (fd < 0)
    return px_error_set(err, errno == ELOOP ? PX_EINPUT : PX_ERUN, "cannot open %s: %s", path,
                        errno == ELOOP ? "it is a symbolic link" : strerror(errno));
  struct stat sb;
  int bad = fstat(fd, &sb) != 0 ? errno : 0;
  if (bad || !S_ISREG(sb.st_mode)) {
    close(fd);
    return bad ? px_error_set(err, PX_ERUN, "cannot stat %s: %s", path, strerror(bad))
               : px_error_set(err, PX_EINPUT, "%s is not a regular file", path);
  }
  if (px_runlock_take(fd) != 0) {
    int e = errno;
    if (e == EAGAIN || e == EACCES) {
      px_status st = px_runlock_refuse(fd, dir, err);
      close(fd);
      return st;
    }
    close(fd);
    if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) {
      static int warned = 0;
      if (!warned)
        px_log_warn("cannot lock %s (%s): the file system does not support locks, so nothing "
                    "stops a second process from using run directory %s at the same time; do "
                    "not start two jobs on it",
                    path, strerror(e), dir);
      warned = 1;
      return PX_OK;
    }
    return px_error_set(err, PX_ERUN, "cannot lock %s: %s", path, strerror(e));
  }
  if (px_runlock_write_holder(fd) != 0) {
    int e = errno;
    close(fd);
    return px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(e));
  }
  lock->fd = fd;
  lock->held = 1;
  return PX_OK;
}

void px_runlock_release(px_runlock *lock) {
  if (!lock->held) return;
  /* Cleared while still held, so that no one reads a finished holder's record as the next
   * holder's (the next truncates and writes its own, but only after it has the lock). */
  if (ftruncate(lock->fd, 0) != 0)
    px_log_warn("cannot clear the run directory's lock file: %s", strerror(errno));
  if (close(lock->fd) != 0)
    px_log_warn("closing the run directory's lock file failed: %s", strerror(errno));
  lock->held = 0;
  lock->fd = -1;
}
