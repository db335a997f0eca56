/*
 * fuzz_safetensors.c — the safetensors reader (safetensors.h), structure-aware: the input is a
 * recipe for a safetensors file, whose header is built as text (so that it can hold what jansson
 * would never write: duplicate names, wrong types), written to the scratch directory and given
 * to px_st_open, px_st_read_f32 on every tensor, px_st_close. The contract: PX_OK or PX_EINPUT
 * with a message naming the file, never a crash or a read outside the file (ASan); a file that
 * opens has every tensor inside its data, and reads as an independent conversion of its bytes
 * says; and a recipe with no fault applied opens and reads back exactly as it intended.
 *
 * The recipe: how many tensors (0-7); for each a dtype (F32, F16, BF16), a shape of up to 3
 * small dimensions, its bytes (any bit patterns: NaN, infinities, subnormals), and perhaps one
 * fault: an unknown dtype, a dimension at an edge (negative, huge), offsets shifted back
 * (overlapping), past the end, reversed, a duplicate name, a field missing, extra or of another
 * type, too many dimensions; then "__metadata__" (none, good, not strings, not an object), the
 * header padded or not, extra or missing data bytes, the declared header length off, a header
 * byte flipped.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  px_fuzz_init(argc, argv);
  return 0;
}

enum { PX_FZ_MAX_T = 7, PX_FZ_HEADER = 8192, PX_FZ_DATA = 8 * 27 * 4 };

typedef struct px_fz_tensor {
  char name[16];
  int dtype, ndim;
  int64_t shape[3], count;
  uint64_t begin; /* intended, in the data */
} px_fz_tensor;

/* The float32 bits an element of dtype must read as, by arithmetic on its fields (the reader
 * works on bits): F16 is (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 m/1024 when e = 0; BF16 is
 * (-1)^s 2^(e-127) (1 + m/128), or 2^-126 m/128 when e = 0; the top exponent is inf or NaN. */
static int px_fz_same(int dtype, const unsigned char *p, float got) {
  if (dtype == 0) return memcmp(p, &got, 4) == 0;
  uint16_t h;
  memcpy(&h, p, 2);
  int s = h >> 15, ebits = dtype == 1 ? 5 : 8, mbits = 15 - ebits;
  int e = (h >> mbits) & ((1 << ebits) - 1), m = h & ((1 << mbits) - 1);
  int bias = (1 << (ebits - 1)) - 1;
  if (!!signbit(got) != s) return 0;
  if (e == (1 << ebits) - 1) return m ? isnan(got) : isinf(got);
  double v = e == 0 ? ldexp(m, 1 - bias - mbits) : ldexp((1 << mbits) + m, e - bias - mbits);
  return (double)fabsf(got) == v;
}

/* Every tensor of an open file: its range inside the data, its bytes read as px_fz_same says. */
static void px_fz_check_open(const px_st_file *f) {
  uint64_t n_header;
  memcpy(&n_header, f->map, 8);
  uint64_t data_size = f->size - 8 - n_header;
  for (int i = 0; i < f->n_tensors; i++) {
    const px_st_tensor *t = &f->tensors[i];
    int size = t->dtype == PX_ST_F32 ? 4 : 2;
    PX_FUZZ_CHECK(t->begin <= t->end && t->end <= data_size);
    PX_FUZZ_CHECK((uint64_t)t->count * (uint64_t)size == t->end - t->begin);
    PX_FUZZ_CHECK((const char *)t->data == (const char *)f->map + 8 + n_header + t->begin);
    PX_FUZZ_CHECK(px_st_find(f, t->name) != NULL);
    float *out = malloc((size_t)t->count * sizeof *out + 1);
    px_st_read_f32(t, out);
    for (int64_t k = 0; k < t->count; k++)
      PX_FUZZ_CHECK(px_fz_same((int)t->dtype, (const unsigned char *)t->data + k * size, out[k]));
    free(out);
  }
}

/* Appends to the header text. */
#define PX_FZ_PUT(...)                                                                             \
  do {                                                                                             \
    if (len < PX_FZ_HEADER) len += (size_t)snprintf(h + len, PX_FZ_HEADER - len, __VA_ARGS__);     \
  } while (0)

static const char *const px_fz_dtypes[] = {"F32", "F16", "BF16"};
static const char *const px_fz_bad_dtypes[] = {"F64", "I8", "BOOL", "", "f32", "U8", "F8_E4M3"};

/* One header entry and its bytes, as t intends or off by one fault; returns whether a fault was
 * applied. */
static int px_fz_entry(px_fuzz_in *in, px_fz_tensor *t, const px_fz_tensor *prev, char *h,
                       size_t *plen, unsigned char *data, uint64_t *cursor) {
  size_t len = *plen;
  int size = t->dtype == 0 ? 4 : 2, fault = px_fuzz_pick(in, 32);
  fault = fault < 16 ? 0 : fault - 15; /* half the entries as intended */
  uint64_t bytes = (uint64_t)t->count * (uint64_t)size;
  t->begin = *cursor;
  for (uint64_t b = 0; b < bytes; b++) data[t->begin + b] = px_fuzz_u8(in);
  *cursor += bytes;
  int64_t begin = (int64_t)t->begin, end = (int64_t)(t->begin + bytes);
  if (fault == 4) begin -= 1 + px_fuzz_pick(in, 8), end -= 1 + px_fuzz_pick(in, 8);
  if (fault == 5) end += 1 + px_fuzz_pick(in, 8);
  if (fault == 6) begin = end + 1 + px_fuzz_pick(in, 4);
  if (fault == 7 && prev) memcpy(t->name, prev->name, sizeof t->name);
  PX_FZ_PUT("%s\"%s\": {", len > 1 ? ", " : "", t->name);
  if (fault == 8) PX_FZ_PUT("\"extra\": 1, ");
  if (fault == 1)
    PX_FZ_PUT("\"dtype\": \"%s\", ", px_fz_bad_dtypes[px_fuzz_pick(in, 7)]);
  else if (fault == 9)
    PX_FZ_PUT("\"dtype\": %d, ", px_fuzz_pick(in, 4));
  else if (fault != 10)
    PX_FZ_PUT("\"dtype\": \"%s\", ", px_fz_dtypes[t->dtype]);
  if (fault == 11) {
    PX_FZ_PUT("\"shape\": [%d.5], ", t->ndim);
  } else if (fault != 12) {
    PX_FZ_PUT("\"shape\": [");
    int nd = fault == 13 ? 9 : t->ndim;
    for (int d = 0; d < nd; d++) {
      int64_t v = d < t->ndim ? t->shape[d] : 1;
      if (fault == 2 && d == 0) v = px_fuzz_int(in, v);
      if (fault == 3) v = (int64_t)1 << (20 + px_fuzz_pick(in, 43)); /* products wrap */
      PX_FZ_PUT("%s%lld", d ? ", " : "", (long long)v);
    }
    PX_FZ_PUT("], ");
  }
  if (fault == 14)
    PX_FZ_PUT("\"data_offsets\": [%lld]}", (long long)begin);
  else if (fault == 15)
    PX_FZ_PUT("\"data_offsets\": \"%lld\"}", (long long)begin);
  else if (fault == 16)
    PX_FZ_PUT("\"x\": 0}");
  else
    PX_FZ_PUT("\"data_offsets\": [%lld, %lld]}", (long long)begin, (long long)end);
  *plen = len;
  return fault != 0 && !(fault == 7 && !prev);
}

/* The tensors of a recipe with no fault, as intended: names, dtypes, shapes, bytes. */
static void px_fz_check_intended(const px_st_file *f, const px_fz_tensor *t, int n,
                                 const unsigned char *data, int meta) {
  PX_FUZZ_CHECK(f->n_tensors == n);
  PX_FUZZ_CHECK(meta == 1 ? f->metadata_json && strcmp(f->metadata_json, "{\"format\":\"pt\"}") == 0
                          : f->metadata_json == NULL);
  for (int i = 0; i < n; i++) {
    const px_st_tensor *g = &f->tensors[i];
    PX_FUZZ_CHECK(strcmp(g->name, t[i].name) == 0 && (int)g->dtype == t[i].dtype);
    PX_FUZZ_CHECK(g->ndim == t[i].ndim && g->count == t[i].count && g->begin == t[i].begin);
    for (int d = 0; d < g->ndim; d++) PX_FUZZ_CHECK(g->shape[d] == t[i].shape[d]);
    size_t bytes = (size_t)g->count * (g->dtype == PX_ST_F32 ? 4 : 2);
    PX_FUZZ_CHECK(bytes == 0 || memcmp(g->data, data + t[i].begin, bytes) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
  px_fuzz_in in = {bytes, size, 0};
  static char h[PX_FZ_HEADER + 8];
  static unsigned char file[8 + PX_FZ_HEADER + 8 + PX_FZ_DATA + 16];
  unsigned char data[PX_FZ_DATA + 16];
  px_fz_tensor t[PX_FZ_MAX_T];
  int n = px_fuzz_pick(&in, PX_FZ_MAX_T + 1), faults = 0;
  int meta = px_fuzz_pick(&in, 8);
  meta = meta < 4 ? meta : 0;
  size_t len = 0;
  PX_FZ_PUT("{");
  if (meta == 1) PX_FZ_PUT("\"__metadata__\": {\"format\": \"pt\"}");
  if (meta == 2) PX_FZ_PUT("\"__metadata__\": {\"format\": 1}");
  if (meta == 3) PX_FZ_PUT("\"__metadata__\": \"pt\"");
  faults += meta >= 2;
  uint64_t cursor = 0;
  for (int i = 0; i < n; i++) {
    snprintf(t[i].name, sizeof t[i].name, "t%d", i);
    t[i].dtype = px_fuzz_pick(&in, 3);
    t[i].ndim = px_fuzz_pick(&in, 4);
    t[i].count = 1;
    for (int d = 0; d < t[i].ndim; d++) t[i].count *= t[i].shape[d] = px_fuzz_pick(&in, 4);
    faults += px_fz_entry(&in, &t[i], i ? &t[i - 1] : NULL, h, &len, data, &cursor);
  }
  PX_FZ_PUT("}");
  if (len >= PX_FZ_HEADER) return 0; /* cannot happen with these sizes; keeps the checks exact */
  if (px_fuzz_pick(&in, 2))
    while (len % 8) h[len++] = ' ';
  size_t n_data = (size_t)cursor;
  int extra = px_fuzz_pick(&in, 8);
  if (extra == 1) { /* bytes after the last tensor: allowed */
    int more = 1 + px_fuzz_pick(&in, 16);
    for (int k = 0; k < more; k++) data[n_data++] = px_fuzz_u8(&in);
  }
  if (extra == 2) { /* the data cut short */
    size_t cut = 1 + (size_t)px_fuzz_pick(&in, 16);
    n_data = cut < n_data ? n_data - cut : 0;
    faults++;
  }
  uint64_t declared = len;
  int lie = px_fuzz_pick(&in, 16);
  if (lie == 1) declared = px_fuzz_u64(&in);
  if (lie == 2) declared = len + 1 + px_fuzz_pick(&in, 8);
  if (lie == 3) declared = len > 0 ? len - 1 : 0;
  if (lie == 4) declared = PX_ST_MAX_HEADER + px_fuzz_pick(&in, 2);
  if (lie == 5 && len > 0) h[px_fuzz_u32(&in) % len] ^= (char)(1 + px_fuzz_u8(&in) % 255);
  faults += lie >= 1 && lie <= 5;
  memcpy(file, &declared, 8);
  memcpy(file + 8, h, len);
  memcpy(file + 8 + len, data, n_data);

  char path[600];
  px_fuzz_path(path, sizeof path, "model.safetensors");
  px_fuzz_write(path, file, 8 + len + n_data);
  px_st_file f;
  px_error err = {{0}};
  px_status st = px_st_open(path, &f, &err);
  px_fuzz_say("px_st_open", st, err.msg);
  PX_FUZZ_CHECK(st == PX_OK || st == PX_EINPUT);
  if (st != PX_OK) {
    PX_FUZZ_CHECK(strstr(err.msg, path) != NULL);
    PX_FUZZ_CHECK(f.map == NULL && f.tensors == NULL && f.n_tensors == 0);
  } else {
    px_fz_check_open(&f);
  }
  if (faults == 0) { /* a recipe as intended must open and read back as it intended */
    PX_FUZZ_CHECK(st == PX_OK);
    px_fz_check_intended(&f, t, n, data, meta);
  }
  if (st == PX_OK) px_st_close(&f);
  remove(path);
  return 0;
}
