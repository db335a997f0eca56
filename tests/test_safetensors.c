/*
 * test_safetensors.c — io/safetensors.c: px_st_write then px_st_open gives back the names,
 * shapes, bytes and metadata (the data 8-byte aligned, nothing left behind by a failed write);
 * a file written by an independent writer (tests/st_write.py: the format by hand with numpy)
 * reads as numpy's own float32 conversion, bit for bit, for F32, F16 and BF16 (subnormals,
 * infinities, NaN, negative zero, unaligned data); the F16 conversion of all 65,536 bit patterns
 * against the arithmetic definition; and every kind of bad file is refused with PX_EINPUT and a
 * message naming the file and the tensor or field.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/safetensors.h"
#include "test_util.h"

static px_error err;

static const char *px_path(char *buf, size_t n, const char *name) {
  snprintf(buf, n, "%s/%s", px_test_dir("safetensors"), name);
  return buf;
}

/* A file of the 8-byte length `declared`, the header text and n_data zero bytes. */
static int px_write_st(const char *path, uint64_t declared, const char *header, size_t n_data) {
  size_t n_header = strlen(header), n = 8 + n_header + n_data;
  char *buf = calloc(n, 1);
  memcpy(buf, &declared, 8);
  memcpy(buf + 8, header, n_header);
  int rc = px_test_write(path, buf, n);
  free(buf);
  return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Round trip through our own writer.
 * --------------------------------------------------------------------------------------------- */

static void test_round_trip(void) {
  float a[6] = {1, -2, 3.5f, NAN, INFINITY, -0.0f}, b[5] = {0.25f, 1e-40f, -1e30f, 7, 8};
  float c = 42;
  px_st_out out[4] = {
      {"wte.weight", 2, {2, 3}, a},
      {"h.0.ln_1.bias", 1, {5}, b},
      {"scalar", 0, {0}, &c},
      {"empty", 2, {0, 4}, NULL},
  };
  const char *meta[] = {"format", "pt", "proxima", "a \"quoted\" value"};
  char path[512];
  px_path(path, sizeof path, "round.safetensors");
  CU_ASSERT_EQUAL_FATAL(px_st_write(path, out, 4, meta, 2, &err), PX_OK);
  CU_ASSERT_EQUAL(px_count_entries(px_test_dir("safetensors")), 1); /* no temporary left */

  px_st_file f;
  CU_ASSERT_EQUAL_FATAL(px_st_open(path, &f, &err), PX_OK);
  CU_ASSERT_EQUAL(f.n_tensors, 4);
  CU_ASSERT_STRING_EQUAL(f.metadata_json,
                         "{\"format\":\"pt\",\"proxima\":\"a \\\"quoted\\\" value\"}");
  uint64_t header_len;
  memcpy(&header_len, f.map, 8);
  CU_ASSERT_EQUAL(header_len % 8, 0); /* padded with spaces: the data starts 8-byte aligned */
  CU_ASSERT_EQUAL(f.tensors[0].begin, 0);
  for (int i = 0; i < 4 && i < f.n_tensors; i++) {
    const px_st_tensor *t = &f.tensors[i];
    CU_ASSERT_STRING_EQUAL(t->name, out[i].name); /* in the order given */
    CU_ASSERT_EQUAL(t->dtype, PX_ST_F32);
    CU_ASSERT_EQUAL(t->ndim, out[i].ndim);
    int64_t count = 1;
    for (int d = 0; d < t->ndim; d++) {
      CU_ASSERT_EQUAL(t->shape[d], out[i].shape[d]);
      count *= out[i].shape[d];
    }
    CU_ASSERT_EQUAL(t->count, count);
    CU_ASSERT_PTR_EQUAL(t->data, (const char *)f.map + 8 + header_len + t->begin);
    CU_ASSERT_EQUAL(t->end - t->begin, (uint64_t)count * 4);
    if (count > 0) {
      CU_ASSERT_EQUAL(memcmp(t->data, out[i].data, (size_t)count * 4), 0);
      float back[8];
      px_st_read_f32(t, back);
      CU_ASSERT_EQUAL(memcmp(back, out[i].data, (size_t)count * 4), 0);
    }
  }
  CU_ASSERT_PTR_EQUAL(px_st_find(&f, "scalar"), &f.tensors[2]);
  CU_ASSERT_PTR_NULL(px_st_find(&f, "missing"));
  CU_ASSERT_STRING_EQUAL(px_st_dtype_name(PX_ST_BF16), "BF16");
  /* and so in memory (the mapping is page-aligned) */
  CU_ASSERT_EQUAL(((uintptr_t)f.tensors[0].data) % 8, 0);
  px_st_close(&f);
  CU_ASSERT_PTR_NULL(f.map);

  /* no metadata and no tensors: the smallest file, "{}" padded */
  CU_ASSERT_EQUAL(px_st_write(path, NULL, 0, NULL, 0, &err), PX_OK);
  CU_ASSERT_EQUAL_FATAL(px_st_open(path, &f, &err), PX_OK);
  CU_ASSERT_EQUAL(f.n_tensors, 0);
  CU_ASSERT_PTR_NULL(f.metadata_json);
  CU_ASSERT_EQUAL(f.size, 16);
  px_st_close(&f);
  CU_ASSERT_EQUAL(remove(path), 0);
}

/* A write that cannot be made leaves nothing: a missing directory (the temporary cannot be
 * created) and a directory in the file's place (the rename fails after the data is written). */
static void test_write_failures(void) {
  float v[2] = {1, 2};
  px_st_out out = {"x", 1, {2}, v};
  char path[512], dir[512];
  px_path(path, sizeof path, "no-such-dir/x.safetensors");
  CU_ASSERT_EQUAL(px_st_write(path, &out, 1, NULL, 0, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, path));
  px_path(dir, sizeof dir, "a-dir");
  CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
  CU_ASSERT_EQUAL(px_st_write(dir, &out, 1, NULL, 0, &err), PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, dir));
  CU_ASSERT_EQUAL(px_count_entries(px_test_dir("safetensors")), 1); /* the directory alone */
  CU_ASSERT_EQUAL(rmdir(dir), 0);
  /* what cannot make a valid file: a repeated name, a negative dimension */
  px_st_out twice[2] = {{"x", 1, {2}, v}, {"x", 1, {2}, v}};
  px_path(path, sizeof path, "bad.safetensors");
  CU_ASSERT_EQUAL(px_st_write(path, twice, 2, NULL, 0, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "'x'"));
  px_st_out negative = {"y", 1, {-2}, v};
  CU_ASSERT_EQUAL(px_st_write(path, &negative, 1, NULL, 0, &err), PX_EINPUT);
  CU_ASSERT_EQUAL(px_count_entries(px_test_dir("safetensors")), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Against an independent writer and numpy's conversions.
 * --------------------------------------------------------------------------------------------- */

static void test_python_writer(void) {
  const char *src = getenv("PX_TEST_SOURCE");
  CU_ASSERT_PTR_NOT_NULL_FATAL(src);
  char dir[512], cmd[2048], path[600];
  px_path(dir, sizeof dir, "py");
  CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/st_write.py %s", src, dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  snprintf(path, sizeof path, "%s/hf.safetensors", dir);
  px_st_file f;
  CU_ASSERT_EQUAL_FATAL(px_st_open(path, &f, &err), PX_OK);
  CU_ASSERT_STRING_EQUAL(f.metadata_json, "{\"format\":\"pt\",\"note\":\"hand-written\"}");
  static const struct {
    const char *name;
    px_st_dtype dtype;
    int ndim;
    int64_t shape[3], count;
  } want[] = {{"odd.f16", PX_ST_F16, 1, {3}, 3},   {"w.f32", PX_ST_F32, 2, {3, 4}, 12},
              {"h.f16", PX_ST_F16, 2, {4, 4}, 16}, {"b.bf16", PX_ST_BF16, 3, {2, 2, 4}, 16},
              {"scalar", PX_ST_F32, 0, {0}, 1},    {"empty", PX_ST_BF16, 2, {0, 3}, 0}};
  CU_ASSERT_EQUAL_FATAL(f.n_tensors, 6);
  for (int i = 0; i < 6; i++) {
    const px_st_tensor *t = &f.tensors[i];
    CU_ASSERT_STRING_EQUAL(t->name, want[i].name);
    CU_ASSERT_EQUAL(t->dtype, want[i].dtype);
    CU_ASSERT_EQUAL(t->ndim, want[i].ndim);
    for (int d = 0; d < want[i].ndim; d++) CU_ASSERT_EQUAL(t->shape[d], want[i].shape[d]);
    CU_ASSERT_EQUAL_FATAL(t->count, want[i].count);
    float got[16], ref[16];
    px_st_read_f32(t, got);
    snprintf(path, sizeof path, "%s/%s.f32", dir, t->name);
    FILE *in = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL(fread(ref, 4, 16, in), (size_t)t->count);
    fclose(in);
    for (int64_t k = 0; k < t->count; k++) {
      uint32_t g, r;
      memcpy(&g, &got[k], 4);
      memcpy(&r, &ref[k], 4);
      if (g != r)
        fprintf(stderr, "\n  %s[%lld]: 0x%08x, numpy 0x%08x", t->name, (long long)k, g, r);
      CU_ASSERT_EQUAL(g, r);
    }
    CU_ASSERT_EQUAL(remove(path), 0);
  }
  /* the data really is unaligned after the 6-byte tensor, and read as such */
  CU_ASSERT_EQUAL(f.tensors[1].begin, 6);
  px_st_close(&f);
  snprintf(path, sizeof path, "%s/hf.safetensors", dir);
  CU_ASSERT_EQUAL(remove(path), 0);
  CU_ASSERT_EQUAL(rmdir(dir), 0);
}

/* Every binary16 bit pattern against its definition: (-1)^s 2^(e-15) (1 + m/1024), or
 * 2^-14 m/1024 for e = 0, or inf and NaN for e = 31. */
static void test_f16_all(void) {
  static uint16_t h[65536];
  static float out[65536];
  for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
  px_st_tensor t = {.dtype = PX_ST_F16, .ndim = 1, .shape = {65536}, .count = 65536, .data = h};
  px_st_read_f32(&t, out);
  int bad = 0;
  for (int i = 0; i < 65536; i++) {
    int s = i >> 15, e = (i >> 10) & 31, m = i & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    if (s) v = -v;
    uint32_t bits;
    memcpy(&bits, &out[i], 4);
    if (e == 31 && m == 0)
      bad += !(isinf(out[i]) && !!signbit(out[i]) == s);
    else if (e == 31)
      bad += !(isnan(out[i]) && !!signbit(out[i]) == s && ((bits >> 13) & 1023) == (uint32_t)m);
    else
      bad += !((double)out[i] == v && !!signbit(out[i]) == s);
  }
  CU_ASSERT_EQUAL(bad, 0);
  /* BF16 is the top half of a binary32 */
  uint16_t b[3] = {0x3f80, 0x0001, 0xff80};
  px_st_tensor tb = {.dtype = PX_ST_BF16, .ndim = 1, .shape = {3}, .count = 3, .data = b};
  px_st_read_f32(&tb, out);
  CU_ASSERT_EQUAL(out[0], 1.0f);
  CU_ASSERT_EQUAL(out[1], ldexpf(1, -133)); /* the smallest bfloat16 subnormal */
  CU_ASSERT(isinf(out[2]) && out[2] < 0);
}

/* ---------------------------------------------------------------------------------------------
 * Bad files: PX_EINPUT, the file and the tensor or field named, nothing left open.
 * --------------------------------------------------------------------------------------------- */

/* Opens path, which must fail with PX_EINPUT and a message holding the path and each of the
 * needles (NULL-terminated). */
static void px_expect_bad(const char *path, const char *const *needles) {
  px_st_file f;
  memset(&f, 0x5a, sizeof f);
  err.msg[0] = 0;
  CU_ASSERT_EQUAL(px_st_open(path, &f, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, path));
  for (int i = 0; needles[i]; i++) CU_ASSERT(px_test_contains(err.msg, needles[i]));
  CU_ASSERT_PTR_NULL(f.map);
  CU_ASSERT_PTR_NULL(f.tensors);
  CU_ASSERT_EQUAL(f.n_tensors, 0);
}

static void test_bad_length(void) {
  char path[512];
  px_path(path, sizeof path, "bad.safetensors");
  CU_ASSERT_EQUAL_FATAL(px_test_write(path, "", 0), 0);
  px_expect_bad(path, (const char *const[]){"0 bytes", "8-byte header length", NULL});
  CU_ASSERT_EQUAL_FATAL(px_test_write(path, "\x02\0\0", 3), 0);
  px_expect_bad(path, (const char *const[]){"3 bytes", NULL});
  /* one byte more than the file holds */
  CU_ASSERT_EQUAL_FATAL(px_write_st(path, 3, "{}", 0), 0);
  px_expect_bad(path, (const char *const[]){"header length 3", "past the end", NULL});
  /* 1 GB declared in a small file: refused by the limit, before anything is allocated */
  CU_ASSERT_EQUAL_FATAL(px_write_st(path, (uint64_t)1 << 30, "{}", 0), 0);
  px_expect_bad(path, (const char *const[]){"header length 1073741824", "at most", NULL});
  CU_ASSERT_EQUAL_FATAL(px_write_st(path, UINT64_MAX, "{}", 0), 0);
  px_expect_bad(path, (const char *const[]){"header length 18446744073709551615", NULL});
  char dir[512];
  px_path(dir, sizeof dir, "dir.safetensors");
  CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0777), 0);
  px_expect_bad(dir, (const char *const[]){"not a regular file", NULL});
  CU_ASSERT_EQUAL(rmdir(dir), 0);
  px_path(dir, sizeof dir, "missing.safetensors");
  px_expect_bad(dir, (const char *const[]){"cannot open", NULL});
  CU_ASSERT_EQUAL(remove(path), 0);
}

/* Headers that are wrong, each with the data bytes after it and what the message must say. */
static const struct {
  const char *header;
  size_t n_data;
  const char *needle[3];
} px_bad_headers[] = {
    {"{\"a\": ", 0, {"header: invalid JSON", NULL}},
    {"[1, 2]", 0, {"header is an array", "expected a JSON object", NULL}},
    {"\"x\"", 0, {"header is a string", NULL}},
    {"{\"a\": [1]}", 0, {"tensor 'a'", "entry is an array", NULL}},
    {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     {"tensor 'a'", "'dtype'", "missing"}},
    {"{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, {"tensor 'a'", "'shape'", NULL}},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, {"tensor 'a'", "'data_offsets'", NULL}},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"x\": 1}}",
     4,
     {"tensor 'a'", "unknown field 'x'", NULL}},
    {"{\"a\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
     8,
     {"tensor 'a'", "dtype 'F64'", "F32, F16 or BF16"}},
    {"{\"b\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
     1,
     {"tensor 'b'", "dtype 'I8'", NULL}},
    {"{\"b\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
     1,
     {"tensor 'b'", "dtype 'Q4'", NULL}},
    {"{\"b\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     {"tensor 'b'", "dtype is an integer", NULL}},
    {"{\"c\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
     4,
     {"tensor 'c'", "shape[0] is negative", NULL}},
    {"{\"c\": {\"dtype\": \"F32\", \"shape\": [2, 1.0], \"data_offsets\": [0, 8]}}",
     8,
     {"tensor 'c'", "shape[1]", "is a number"}},
    {"{\"c\": {\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}}",
     8,
     {"tensor 'c'", "shape is a string", NULL}},
    {"{\"c\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}",
     4,
     {"tensor 'c'", "9 dimensions", "at most 8"}},
    {"{\"d\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
     12,
     {"tensor 'd'", "hold 8 bytes", "3 elements of F32"}},
    {"{\"d\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}",
     16,
     {"tensor 'd'", "4 elements of BF16", NULL}},
    {"{\"e\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     8,
     {"tensor 'e'", "end past the data", "end <= 8"}},
    {"{\"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}",
     8,
     {"tensor 'e'", "begin after end", NULL}},
    {"{\"e\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}",
     8,
     {"tensor 'e'", "data_offsets", "non-negative"}},
    {"{\"e\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}",
     8,
     {"tensor 'e'", "data_offsets", "two"}},
    {"{\"e\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0.0, 4]}}",
     8,
     {"tensor 'e'", "data_offsets", NULL}},
    {"{\"f\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
     "\"g\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     12,
     {"tensor 'g'", "overlap tensor 'f'", NULL}},
    {"{\"g\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
     "\"f\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
     16,
     {"tensor 'f'", "overlap tensor 'g'", NULL}},
    /* 2^32 * 2^32 * 4 wraps to 0 in 64 bits, which an unchecked product would accept */
    {"{\"h\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4], \"data_offsets\": [0, "
     "0]}}",
     0,
     {"tensor 'h'", "does not fit in 64 bits", NULL}},
    /* 2^62 elements fit in int64, 2^64 bytes do not */
    {"{\"h\": {\"dtype\": \"F32\", \"shape\": [2305843009213693952, 2], \"data_offsets\": [0, 0]}}",
     0,
     {"tensor 'h'", "4611686018427387904 elements", NULL}},
    {"{\"__metadata__\": [\"pt\"]}", 0, {"'__metadata__' is an array", "object of strings", NULL}},
    {"{\"__metadata__\": {\"format\": 1}}", 0, {"'__metadata__'", "'format' is an integer", NULL}},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
     "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8,
     {"invalid JSON", "duplicate", NULL}},
    {"{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     {"invalid JSON", "duplicate", NULL}},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [99999999999999999999], \"data_offsets\": [0, 4]}}",
     4,
     {"invalid JSON", NULL}},
};

static void test_bad_headers(void) {
  char path[512];
  px_path(path, sizeof path, "bad.safetensors");
  int n = (int)(sizeof px_bad_headers / sizeof px_bad_headers[0]);
  for (int i = 0; i < n; i++) {
    const char *h = px_bad_headers[i].header;
    CU_ASSERT_EQUAL_FATAL(px_write_st(path, strlen(h), h, px_bad_headers[i].n_data), 0);
    const char *needles[4] = {px_bad_headers[i].needle[0], px_bad_headers[i].needle[1],
                              px_bad_headers[i].needle[2], NULL};
    px_expect_bad(path, needles);
  }
  CU_ASSERT_EQUAL(remove(path), 0);
}

/* What the format allows and this reader must take: empty data, a zero-size tensor anywhere (it
 * overlaps nothing), a huge dimension beside a zero, gaps between ranges, trailing spaces. */
static void test_good_edges(void) {
  char path[512];
  px_path(path, sizeof path, "edge.safetensors");
  const char *h = "{\"z\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [2, 2]}, "
                  "\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}, "
                  "\"big\": {\"dtype\": \"F32\", \"shape\": [9223372036854775807, 4294967296, "
                  "0], \"data_offsets\": [4, 4]}, "
                  "\"b\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [6, 8]}}   ";
  CU_ASSERT_EQUAL_FATAL(px_write_st(path, strlen(h), h, 10), 0);
  px_st_file f;
  CU_ASSERT_EQUAL_FATAL(px_st_open(path, &f, &err), PX_OK);
  CU_ASSERT_EQUAL(f.n_tensors, 4);
  CU_ASSERT_EQUAL(px_st_find(&f, "big")->count, 0);
  CU_ASSERT_EQUAL(px_st_find(&f, "b")->count, 1);
  px_st_close(&f);
  CU_ASSERT_EQUAL(px_write_st(path, 2, "{}", 0), 0);
  CU_ASSERT_EQUAL(px_st_open(path, &f, &err), PX_OK);
  CU_ASSERT_EQUAL(f.n_tensors, 0);
  px_st_close(&f);
  CU_ASSERT_EQUAL(remove(path), 0);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"round trip through px_st_write", test_round_trip},
      {"a failed write leaves nothing", test_write_failures},
      {"an independent writer, numpy's conversions", test_python_writer},
      {"every F16 bit pattern, BF16", test_f16_all},
      {"bad header lengths", test_bad_length},
      {"bad headers", test_bad_headers},
      {"what the format allows", test_good_edges},
      CU_TEST_INFO_NULL,
  };
  px_test_suite("safetensors", tests);
}
