/*
 * replay_main.c — a main for a fuzz target without libFuzzer: runs LLVMFuzzerTestOneInput once
 * on each file named on the command line, and on each file of each directory named (in name
 * order; dot files and README* skipped). This is how the seed corpus and every input that ever
 * crashed (regress/<target>/) run as a CTest in every build, the gcc ASan build included.
 * Exit 0 when every input ran; a failing input aborts, as it would under the fuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static int px_replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  uint8_t *buf = NULL;
  size_t n = 0, cap = 0, got;
  do {
    if (n == cap) {
      cap = 2 * cap + 4096;
      uint8_t *grown = realloc(buf, cap);
      if (!grown) abort();
      buf = grown;
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
  } while (got > 0);
  fclose(f);
  printf("replay %s (%zu bytes)\n", path, n);
  fflush(stdout);
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

static int px_skip(const char *name) { return name[0] == '.' || !strncmp(name, "README", 6); }

static int px_by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  int bad = 0, inputs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      bad++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad += px_replay_file(argv[i]), inputs++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (!d) {
      perror(argv[i]);
      bad++;
      continue;
    }
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
      if (px_skip(e->d_name)) continue;
      char **grown = realloc(names, (n + 1) * sizeof *names);
      if (!grown) abort();
      names = grown;
      size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
      names[n] = malloc(len);
      if (!names[n]) abort();
      snprintf(names[n++], len, "%s/%s", argv[i], e->d_name);
    }
    closedir(d);
    if (n > 0) qsort(names, n, sizeof *names, px_by_name); /* no directory entries: names is NULL */
    for (size_t k = 0; k < n; k++) {
      bad += px_replay_file(names[k]), inputs++;
      free(names[k]);
    }
    free(names);
  }
  printf("%d inputs replayed, %d unreadable\n", inputs, bad);
  px_comm_finalize();
  return bad ? 1 : 0;
}
