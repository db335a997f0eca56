/*
 * fsutil.c — directories, whole-file reads and atomic publishing; see fsutil.h.
 */
#include "proxima/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

px_status px_fs_mkdirs(const char *dir, px_error *err) {
  /* "" names no directory (and the walk below starts past the first byte) */
  if (!dir[0]) return px_error_set(err, PX_EINPUT, "cannot create a directory: empty path");
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return px_error_set(err, PX_EINPUT, "%.80s...: path too long", dir);
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return px_error_set(err, PX_ERUN, "cannot create directory %s: %s", path, strerror(errno));
      struct stat st;
      if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return px_error_set(err, PX_EINPUT, "%s exists and is not a directory", path);
      *p = saved;
      if (!saved) break;
    }
  }
  return PX_OK;
}

px_status px_fs_read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                          px_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return px_error_set(err, PX_EINPUT, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = px_malloc(cap);
  for (;;) {
    if (n + 1 >= cap) {
      cap *= 2;
      buf = px_realloc(buf, cap);
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, f);
    n += got;
    if (n > max_bytes) {
      free(buf);
      (void)fclose(f); /* read only: closing cannot lose data */
      return px_error_set(err, PX_EINPUT, "%s is larger than %zu bytes", path, max_bytes);
    }
    if (got == 0) break;
  }
  int bad = ferror(f);
  (void)fclose(f);
  if (bad) {
    free(buf);
    return px_error_set(err, PX_EINPUT, "cannot read %s", path);
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return PX_OK;
}

void px_fs_temp_name(char *buf, size_t n, const char *final) {
  const char *slash = strrchr(final, '/');
  if (slash)
    snprintf(buf, n, "%.*s/.%s.tmp.%ld", (int)(slash - final), final, slash + 1, (long)getpid());
  else
    snprintf(buf, n, ".%s.tmp.%ld", final, (long)getpid());
}

static int px_fsync_path(const char *path, int directory) {
  int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

px_status px_fs_publish(const char *tmp, const char *final, px_error *err) {
  if (px_fsync_path(tmp, 0) != 0 || rename(tmp, final) != 0) {
    int e = errno;
    unlink(tmp);
    return px_error_set(err, PX_ERUN, "cannot write %s: %s", final, strerror(e));
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", final);
  if (px_fsync_path(dirname(dir), 1) != 0)
    return px_error_set(err, PX_ERUN, "cannot sync the directory of %s: %s", final,
                        strerror(errno));
  return PX_OK;
}

px_status px_fs_write_atomic(const char *path, const char *what, const char *text, size_t len,
                             px_error *err) {
  char tmp[4200];
  px_fs_temp_name(tmp, sizeof tmp, path);
  if (!what) what = path;
  FILE *f = fopen(tmp, "wb");
  if (!f) return px_error_set(err, PX_ERUN, "cannot write %s: %s", what, strerror(errno));
  size_t put = fwrite(text, 1, len, f);
  int bad = put != len || fflush(f) != 0;
  int e = errno;
  if (fclose(f) != 0 && !bad) bad = 1, e = errno;
  if (bad) {
    unlink(tmp);
    return px_error_set(err, PX_ERUN, "cannot write %s: %s", what, strerror(e));
  }
  px_status st = px_fs_publish(tmp, path, err);
  if (st != PX_OK && what != path) {
    px_error inner = *err;
    return px_error_set(err, st, "cannot write %s: %s", what, inner.msg);
  }
  return st;
}

px_status px_fs_reserve_fd(int fd, const char *what, int64_t bytes, px_error *err) {
  int rc = EINTR;
  while (rc == EINTR) rc = bytes > 0 ? posix_fallocate(fd, 0, (off_t)bytes) : 0;
  /* A file system that cannot reserve space (no fallocate) is written without the reservation. */
  if (rc == 0 || rc == EOPNOTSUPP || rc == ENOSYS || rc == EINVAL) return PX_OK;
  return px_error_set(err, PX_ERUN, "cannot write %s: no room for its %.1f MB (%s)", what,
                      (double)bytes / 1e6, strerror(rc));
}

int px_fs_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

px_status px_fs_check_parent(const char *path, px_error *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return PX_OK; /* the working directory */
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  struct stat st;
  if (stat(dir, &st) != 0)
    return px_error_set(err, PX_EINPUT, "%s: the directory %s does not exist", path, dir);
  if (!S_ISDIR(st.st_mode))
    return px_error_set(err, PX_EINPUT, "%s: %s is not a directory", path, dir);
  return PX_OK;
}
