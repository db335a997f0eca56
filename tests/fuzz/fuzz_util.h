/*
 * fuzz_util.h — what the fuzz targets share: one-time start-up (MPI as a singleton, the logger
 * quiet), a private scratch directory for the files a target hands to a loader that takes a
 * path, and a reader that turns the fuzzer's bytes into the choices of a recipe.
 *
 * Each target is one LLVMFuzzerTestOneInput; it is linked either with libFuzzer (clang,
 * -fsanitize=fuzzer: PROXIMA_FUZZ=ON) or with replay_main.c, which feeds it the files of the
 * seed corpus and of regress/ (the CTest fuzz_replay_<target>, in every build).
 */
#ifndef PX_FUZZ_UTIL_H
#define PX_FUZZ_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxima/comm.h"
#include "proxima/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Dies loudly (an abort the fuzzer reports as a crash) when a property of our code fails. */
#define PX_FUZZ_CHECK(cond)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

static char px_fuzz_dir_[512];

static inline void px_fuzz_cleanup_(void) {
  if (px_fuzz_dir_[0]) rmdir(px_fuzz_dir_); /* the targets remove their files themselves */
}

/* MPI (a singleton; io/ reads data sets over MPI-IO), a quiet logger, and the scratch
 * directory $TMPDIR/px-fuzz-XXXXXX, removed at exit. */
static inline void px_fuzz_init(int *argc, char ***argv) {
  px_comm_init(argc, argv);
  px_log_init(PX_LOG_QUIET);
  const char *tmp = getenv("TMPDIR");
  snprintf(px_fuzz_dir_, sizeof px_fuzz_dir_, "%s/px-fuzz-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(px_fuzz_dir_)) {
    perror("fuzz: mkdtemp");
    exit(2);
  }
  atexit(px_fuzz_cleanup_);
}

/* path of a file named name in the scratch directory, into buf of n bytes. */
static inline const char *px_fuzz_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", px_fuzz_dir_, name);
  return buf;
}

static inline void px_fuzz_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    perror("fuzz: writing the scratch file");
    abort();
  }
}

/* With PX_FUZZ_VERBOSE set, each loader's status and message go to stderr (to see what a
 * seed or a regression input exercises). */
static inline void px_fuzz_say(const char *what, int status, const char *msg) {
  if (getenv("PX_FUZZ_VERBOSE")) fprintf(stderr, "fuzz: %s: status %d %s\n", what, status, msg);
}

/* The fuzzer's bytes read as a recipe: each call takes the next bytes; past the end, zeros
 * (so every input, however short, is a complete recipe). */
typedef struct px_fuzz_in {
  const uint8_t *p;
  size_t n, pos;
} px_fuzz_in;

static inline uint8_t px_fuzz_u8(px_fuzz_in *in) { return in->pos < in->n ? in->p[in->pos++] : 0; }

static inline uint32_t px_fuzz_u32(px_fuzz_in *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)px_fuzz_u8(in) << (8 * i);
  return v;
}

static inline uint64_t px_fuzz_u64(px_fuzz_in *in) {
  uint64_t lo = px_fuzz_u32(in);
  return lo | (uint64_t)px_fuzz_u32(in) << 32;
}

/* One of n choices. */
static inline int px_fuzz_pick(px_fuzz_in *in, int n) { return (int)(px_fuzz_u8(in) % (uint8_t)n); }

/* An integer that is usually small but sometimes an edge: 0, -1, negative, huge. */
static inline int64_t px_fuzz_int(px_fuzz_in *in, int64_t usual) {
  switch (px_fuzz_pick(in, 8)) {
  case 0: return 0;
  case 1: return -1;
  case 2: return (int64_t)px_fuzz_u64(in); /* anything, negative and huge included */
  case 3: return INT64_MAX;
  case 4: return (int64_t)px_fuzz_u8(in);
  case 5: return usual + 1;
  default: return usual;
  }
}

/* A double that is sometimes NaN, infinite, negative or huge. */
static inline double px_fuzz_real(px_fuzz_in *in, double usual) {
  switch (px_fuzz_pick(in, 8)) {
  case 0: return NAN;
  case 1: return INFINITY;
  case 2: return -INFINITY;
  case 3: return -1e300;
  case 4: {
    uint64_t bits = px_fuzz_u64(in);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
  }
  default: return usual;
  }
}

#endif
