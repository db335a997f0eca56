/*
 * test_util.h — what every suite shares: registration, a scratch directory, and small helpers.
 */
#ifndef PROXIMA_TEST_UTIL_H
#define PROXIMA_TEST_UTIL_H

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Defined by each test file: adds its suites to the CUnit registry. */
void px_test_register(void);

/* Adds a suite with the given tests ({name, function}, NULL-terminated). */
static inline CU_pSuite px_test_suite(const char *name, const CU_TestInfo *tests) {
  CU_pSuite s = CU_add_suite(name, NULL, NULL);
  for (int i = 0; s && tests[i].pName; i++) CU_add_test(s, tests[i].pName, tests[i].pTestFunc);
  return s;
}

/* A fresh scratch directory for this process (./scratch-NAME-PID), made on first use. */
static inline const char *px_test_dir(const char *name) {
  static char dir[512];
  snprintf(dir, sizeof dir, "scratch-%s-%ld", name, (long)getpid());
  mkdir(dir, 0777);
  return dir;
}

/* Writes text to path; returns 0 on success. */
static inline int px_test_write(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t put = fwrite(text, 1, len, f);
  return fclose(f) == 0 && put == len ? 0 : -1;
}

/* Entries of dir other than . and .. (to see that nothing, temporary files included, was
 * left), or -1 when dir cannot be read. */
static inline int px_count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

/* Whether haystack contains needle; prints both when it does not, to explain a failure. */
static inline int px_test_contains(const char *haystack, const char *needle) {
  if (strstr(haystack, needle)) return 1;
  fprintf(stderr, "\n  expected to find \"%s\" in:\n  %s\n", needle, haystack);
  return 0;
}

/* The size of path in bytes, -1 when it cannot be stat'ed. */
static inline long long px_test_file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Copies the first `bytes` bytes of from (all: -1) to to (a truncated copy for bad-input
 * tests). Returns 0, or -1 on failure. */
static inline int px_test_copy_file(const char *from, const char *to, long long bytes) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int ok = in && out;
  char buf[1 << 16];
  while (ok && bytes != 0) {
    size_t want = bytes < 0 || bytes > (long long)sizeof buf ? sizeof buf : (size_t)bytes;
    size_t got = fread(buf, 1, want, in);
    if (got == 0) break;
    ok = fwrite(buf, 1, got, out) == got;
    if (bytes > 0) bytes -= (long long)got;
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) ok = 0;
  return ok ? 0 : -1;
}

#endif
