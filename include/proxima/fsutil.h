/*
 * fsutil.h — the few file-system steps every writer shares: directories made on demand, whole
 * files read, and the atomic publish (write under a temporary name, fsync, rename, fsync the
 * directory) that keeps a good file in place until its replacement is complete. Not collective:
 * the caller decides which rank touches the disk.
 */
#ifndef PROXIMA_FSUTIL_H
#define PROXIMA_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"

/* Who takes part in a read or write of io/ (data sets, rollout buffers): this process alone
 * (nothing collective), or every rank of the run, each with its own part (collective). */
typedef enum px_io_who { PX_IO_ALONE, PX_IO_EVERY_RANK } px_io_who;

/* Creates dir and its missing parents (mode 0777 less the umask). PX_EINPUT when dir is empty
 * ("empty path") or a part of it is not a directory; PX_ERUN when mkdir fails. */
px_status px_fs_mkdirs(const char *dir, px_error *err);

/* Reads the whole file into a NUL-terminated buffer (*len excludes the NUL); refuses files
 * larger than max_bytes. The caller frees *data. */
px_status px_fs_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                          px_error *err);

/* A temporary name beside final (same directory, so the rename is atomic):
 * "DIR/.NAME.tmp.PID". buf has n bytes. */
void px_fs_temp_name(char *buf, size_t n, const char *final);

/* Makes a completed temporary file durable and gives it its final name: fsync(tmp),
 * rename(tmp, final), fsync(directory). On failure tmp is removed and final is untouched. */
px_status px_fs_publish(const char *tmp, const char *final, px_error *err);

/* Allocates `bytes` bytes of disk space from offset 0 to the file open as fd (posix_fallocate;
 * its size becomes at least bytes, and writing it out to a larger size uses the space): whether
 * a file of that size fits on the disk and under the file-size limit, asked before writing its
 * data, and the space is the file's while it is written. PX_ERUN naming `what` and the reason
 * (no space, file too large) otherwise; the caller removes the file. Interrupted calls are
 * retried; where the file system cannot reserve (EOPNOTSUPP, ENOSYS, EINVAL) the file is written
 * without a reservation. Not collective. */
px_status px_fs_reserve_fd(int fd, const char *what, int64_t bytes, px_error *err);

/* Writes len bytes of text to path atomically (via px_fs_temp_name and px_fs_publish): on
 * failure nothing is left and a file already at path is untouched. PX_ERUN "cannot write WHAT:
 * reason", what naming the file for the user ("rollout buffer PATH (rank 0)"; NULL: the path).
 * Not collective. */
px_status px_fs_write_atomic(const char *path, const char *what, const char *text, size_t len,
                             px_error *err);

/* PX_EINPUT naming the directory when the directory path would be created in does not exist
 * or is not a directory: an output path's mistake, reported before anything is written. */
px_status px_fs_check_parent(const char *path, px_error *err);

/* Whether path exists (any type). */
int px_fs_exists(const char *path);

#endif
