/*
 * test_h5chunk.c — io/h5chunk.c against HDF5 itself: the blocked Fletcher-32 equals the
 * word-by-word reference on sizes around its block and piece boundaries (odd ones too) and on
 * data whose sums are multiples of 65535; both equal the checksum HDF5's Fletcher-32 filter
 * appends to a chunk (read back raw with H5Dread_chunk); a dataset written chunk by chunk with
 * px_h5_write_checksummed holds byte for byte the chunks that H5Dwrite through the filter
 * writes (edge chunks, borrowed tails, one-byte elements, a big-endian file type), reads back
 * through HDF5's normal path with the checksum checked, leaves the caller's buffer as it was,
 * and a flipped byte in it fails the read; a NaN or an infinity is refused, naming its element.
 * And io/h5util.c's checks: an attribute written again is replaced, and a failed lookup or
 * removal fails the write; a 1-D integer dataset whose length cannot be read is refused, and
 * every refusal leaves its length 0; a property list that cannot be closed fails a write (the
 * calls that do not fail here are made to by test_h5fail.h).
 */
#define _GNU_SOURCE /* RTLD_NEXT, for test_h5fail.h */
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5chunk.h"
#include "h5util.h"
#include "test_h5fail.h"
#include "test_util.h"

static uint64_t rng_state = 88172645463325252ull;

static uint32_t next_u32(void) { /* xorshift64 */
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static void fill_random(unsigned char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)next_u32();
}

/* Sizes around the kernel's block (16 KiB) and piece (128 KiB) boundaries, odd ones included. */
static const size_t sizes[] = {0,     1,     2,     3,      4,      5,      63,      64,
                               719,   720,   721,   16383,  16384,  16385,  16386,   32769,
                               98303, 98304, 98305, 131071, 131072, 131073, 1000001, 4194304};
enum { N_SIZES = sizeof sizes / sizeof sizes[0], MAX_SIZE = 4194304 };

static void test_fletcher_matches_reference(void) {
  unsigned char *buf = malloc(MAX_SIZE + 1);
  CU_ASSERT_FATAL(buf != NULL);
  int bad = 0;
  /* random bytes; all 0xFF (every word 65535: the sums are multiples of 65535, never 0); zeros */
  for (int pattern = 0; pattern < 3; pattern++) {
    if (pattern == 0) fill_random(buf, MAX_SIZE);
    if (pattern == 1) memset(buf, 0xFF, MAX_SIZE);
    if (pattern == 2) memset(buf, 0, MAX_SIZE);
    for (int i = 0; i < N_SIZES; i++) {
      uint32_t want = px_h5_fletcher32_ref(buf, sizes[i]), got = px_h5_fletcher32(buf, sizes[i]);
      if (want != got) {
        printf("\n    pattern %d, %zu bytes: %08x, reference %08x", pattern, sizes[i], got, want);
        bad++;
      }
    }
  }
  /* one non-zero word among zeros, at several places: sum1 = w, sum2 = w x (words after + 1) */
  memset(buf, 0, MAX_SIZE);
  for (size_t at = 0; at < 40000; at += 997) {
    buf[at] = 0x80;
    bad += px_h5_fletcher32(buf, 40001) != px_h5_fletcher32_ref(buf, 40001);
    buf[at] = 0;
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(px_h5_fletcher32(buf, 0), 0);
  CU_ASSERT_EQUAL(px_h5_fletcher32_ref("\x01\x02", 2), 0x01020102u); /* by hand: one word */
  free(buf);
}

/* A fresh serial file (the sec2 driver) in this test's scratch directory. */
static hid_t new_file(const char *name, char *path, size_t n) {
  snprintf(path, n, "%s/%s", px_test_dir("h5chunk"), name);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  CU_ASSERT_FATAL(fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  CU_ASSERT_FATAL(f >= 0);
  return f;
}

/* The raw stored bytes (data and checksum) of the chunk at offset of dataset name. */
static unsigned char *raw_chunk(hid_t f, const char *name, const hsize_t *offset, hsize_t *size) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  CU_ASSERT_FATAL(d >= 0);
  CU_ASSERT_FATAL(H5Dget_chunk_storage_size(d, offset, size) >= 0 && *size >= 4);
  unsigned char *buf = malloc(*size);
  uint32_t filters = 0xFFFF;
  CU_ASSERT_FATAL(buf != NULL);
  CU_ASSERT_FATAL(H5Dread_chunk(d, H5P_DEFAULT, offset, &filters, buf) >= 0);
  CU_ASSERT_EQUAL(filters, 0); /* the Fletcher-32 filter applied */
  H5Dclose(d);
  return buf;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* HDF5's filter, on one-byte elements so that odd sizes occur: a one-chunk dataset of n bytes
 * written with H5Dwrite stores the bytes and then our checksum, little-endian. */
static void test_fletcher_matches_hdf5_filter(void) {
  char path[512];
  hid_t f = new_file("filter.h5", path, sizeof path);
  unsigned char *buf = malloc(MAX_SIZE);
  CU_ASSERT_FATAL(buf != NULL);
  fill_random(buf, MAX_SIZE);
  for (int i = 1; i < N_SIZES; i++) {
    char name[32];
    snprintf(name, sizeof name, "n%zu", sizes[i]);
    CU_ASSERT_FATAL(px_h5_write_1d(f, name, H5T_STD_U8LE, H5T_NATIVE_UCHAR, buf, sizes[i]) >= 0);
    hsize_t chunk_elems = sizes[i] < ((hsize_t)1 << 16) ? sizes[i] : (hsize_t)1 << 16, size = 0;
    hsize_t offset[1] = {0};
    unsigned char *raw = raw_chunk(f, name, offset, &size);
    CU_ASSERT_EQUAL(size, chunk_elems + 4);
    CU_ASSERT_EQUAL(memcmp(raw, buf, chunk_elems), 0);
    CU_ASSERT_EQUAL(le32(raw + chunk_elems), px_h5_fletcher32(buf, chunk_elems));
    CU_ASSERT_EQUAL(le32(raw + chunk_elems), px_h5_fletcher32_ref(buf, chunk_elems));
    free(raw);
  }
  CU_ASSERT(H5Fclose(f) >= 0);
  free(buf);
}

/* One dataset written both ways (the filter through H5Dwrite; px_h5_write_checksummed). */
typedef struct shape_case {
  const char *name;
  hid_t file_type, mem_type;
  int ndim;
  hsize_t dims[3], max_chunk;
  int borrow; /* data sits in a larger buffer: the tail after a chunk can be borrowed */
} shape_case;

/* The filter path: the dataset px_h5_write_checksummed creates (px_h5_create_dataset), all of data
 * written through H5Dwrite and HDF5's own Fletcher-32 filter. */
static herr_t write_through_filter(hid_t f, const shape_case *k, const void *data) {
  hid_t d = px_h5_create_dataset(f, k->name, k->file_type, k->ndim, k->dims, k->max_chunk, NULL);
  if (d < 0) return -1;
  herr_t rc = k->dims[0] > 0 ? H5Dwrite(d, k->mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
  return H5Dclose(d) < 0 ? -1 : rc;
}

static void test_direct_write_matches_filter(void) {
  const shape_case cases[] = {
      {"f32_edge", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, {7, 5, 3}, 40, 1},
      {"f32_edge_end", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, {7, 5, 3}, 40, 0},
      {"f32_exact", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, {12, 1000}, 3000, 1},
      {"f32_one_chunk", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, {123457}, (hsize_t)1 << 20, 1},
      {"f32_big", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, {1001, 3000}, (hsize_t)1 << 20, 1},
      {"i64_state", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, {1}, 1, 0},
      {"f64_state", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, {1}, 1, 0},
      {"u8_odd", H5T_STD_U8LE, H5T_NATIVE_UCHAR, 2, {11, 7}, 21, 1},
      {"f32_big_endian_file", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, 2, {9, 4}, 8, 1},
      {"empty", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, {0}, 16, 0},
  };
  char path_a[512], path_b[512];
  hid_t fa = new_file("filter_path.h5", path_a, sizeof path_a);
  hid_t fb = new_file("direct.h5", path_b, sizeof path_b);
  px_h5_chunk_writer w;
  px_h5_chunk_writer_init(&w, fb, 1);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const shape_case *k = &cases[c];
    size_t elem = H5Tget_size(k->mem_type), n = 1;
    for (int i = 0; i < k->ndim; i++) n *= (size_t)k->dims[i];
    size_t bytes = n * elem, room = bytes + (k->borrow ? 64 : 0);
    unsigned char *data = malloc(room + 1), *copy = malloc(room + 1), *back = malloc(bytes + 1);
    CU_ASSERT_FATAL(data && copy && back);
    if (k->mem_type == H5T_NATIVE_FLOAT)
      for (size_t i = 0; i < room / 4; i++) ((float *)data)[i] = (float)next_u32() * 1e-9f - 2.f;
    else
      fill_random(data, room);
    memcpy(copy, data, room);

    CU_ASSERT_FATAL(write_through_filter(fa, k, data) >= 0);
    CU_ASSERT_FATAL(px_h5_write_checksummed(fb, k->name, k->file_type, k->mem_type, k->ndim,
                                            k->dims, k->max_chunk, data, room, &w) >= 0);
    CU_ASSERT_EQUAL(memcmp(data, copy, room), 0); /* borrowed bytes given back */

    /* every chunk the same bytes, checksum included */
    hid_t da = H5Dopen2(fa, k->name, H5P_DEFAULT), dcpl = H5Dget_create_plist(da);
    hsize_t chunk[3] = {0};
    CU_ASSERT_FATAL(H5Pget_chunk(dcpl, k->ndim, chunk) == k->ndim);
    H5Pclose(dcpl), H5Dclose(da);
    int chunks = 0, differ = 0;
    for (hsize_t row = 0; row < k->dims[0]; row += chunk[0], chunks++) {
      hsize_t offset[3] = {row, 0, 0}, sa = 0, sb = 0;
      unsigned char *ra = raw_chunk(fa, k->name, offset, &sa),
                    *rb = raw_chunk(fb, k->name, offset, &sb);
      differ += sa != sb || memcmp(ra, rb, sa) != 0;
      differ += le32(rb + sb - 4) != px_h5_fletcher32_ref(rb, sb - 4);
      free(ra), free(rb);
    }
    if (differ) printf("\n    %s: %d of %d chunks differ", k->name, differ, chunks);
    CU_ASSERT_EQUAL(differ, 0);

    /* and the normal read path (checksum verified) gives the data back */
    hid_t db = H5Dopen2(fb, k->name, H5P_DEFAULT);
    CU_ASSERT_FATAL(db >= 0);
    if (n > 0) {
      CU_ASSERT(H5Dread(db, k->mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
      CU_ASSERT_EQUAL(memcmp(back, data, bytes), 0);
    }
    H5Dclose(db);
    free(data), free(copy), free(back);
  }
  CU_ASSERT(w.fd >= 0); /* the sec2 driver's descriptor, for early writeback */
  px_h5_chunk_writer_free(&w);
  CU_ASSERT(H5Fclose(fa) >= 0);
  CU_ASSERT(H5Fclose(fb) >= 0);
}

/* A byte flipped inside a chunk written directly: HDF5's read fails on the checksum. */
static void test_flipped_byte_is_caught(void) {
  char path[512];
  hid_t f = new_file("flip.h5", path, sizeof path);
  enum { N = 5000 };
  float *data = malloc((N + 16) * sizeof *data), *back = malloc(N * sizeof *back);
  CU_ASSERT_FATAL(data && back);
  for (int i = 0; i < N + 16; i++) data[i] = (float)i * 0.25f;
  hsize_t dims[2] = {50, 100};
  px_h5_chunk_writer w;
  px_h5_chunk_writer_init(&w, f, 0);
  CU_ASSERT_FATAL(px_h5_write_checksummed(f, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, 1000,
                                          data, (N + 16) * sizeof *data, &w) >= 0);
  px_h5_chunk_writer_free(&w);
  hid_t d = H5Dopen2(f, "x", H5P_DEFAULT), space = H5Dget_space(d);
  haddr_t addr = HADDR_UNDEF;
  hsize_t offset[2], size = 0;
  unsigned mask = 0;
  CU_ASSERT_FATAL(H5Dget_chunk_info(d, space, 2, offset, &mask, &addr, &size) >= 0);
  CU_ASSERT_EQUAL(offset[0], 20); /* the third chunk of 10 rows */
  CU_ASSERT(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
  CU_ASSERT_EQUAL(memcmp(back, data, N * sizeof *data), 0);
  H5Sclose(space), H5Dclose(d);
  CU_ASSERT_FATAL(H5Fclose(f) >= 0);

  int fd = open(path, O_RDWR);
  unsigned char b = 0;
  CU_ASSERT_FATAL(fd >= 0 && pread(fd, &b, 1, (off_t)addr + 1234) == 1);
  b ^= 0x01;
  CU_ASSERT_FATAL(pwrite(fd, &b, 1, (off_t)addr + 1234) == 1 && close(fd) == 0);

  px_h5_quiet();
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  d = f < 0 ? H5I_INVALID_HID : H5Dopen2(f, "x", H5P_DEFAULT);
  CU_ASSERT_FATAL(d >= 0);
  CU_ASSERT(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) < 0);
  char reason[256];
  printf("\n    HDF5 says: %s", px_h5_reason(reason, sizeof reason));
  H5Dclose(d), H5Fclose(f);
  free(data), free(back);
}

/* With finite_only, a NaN or an infinity stops the write at its chunk and says which element;
 * without, the same data is written and reads back as it was. */
static void test_nonfinite_refused(void) {
  char path[512];
  hid_t f = new_file("nonfinite.h5", path, sizeof path);
  enum { N = 6000 };
  float *data = malloc(N * sizeof *data), *back = malloc(N * sizeof *back);
  CU_ASSERT_FATAL(data && back);
  for (int i = 0; i < N; i++) data[i] = (float)i;
  hsize_t dims[2] = {60, 100}, big_endian[1] = {N};
  const float bad[] = {NAN, INFINITY, -INFINITY};
  const size_t at[] = {0, 2345, N - 1};
  px_h5_chunk_writer w;
  px_h5_chunk_writer_init(&w, f, 1);
  for (int i = 0; i < 3; i++) {
    char name[32];
    data[at[i]] = bad[i];
    snprintf(name, sizeof name, "refused%d", i);
    w.bad_element = 0;
    CU_ASSERT_EQUAL(px_h5_write_checksummed(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims,
                                            1000, data, N * sizeof *data, &w),
                    PX_H5_NONFINITE);
    CU_ASSERT_EQUAL(w.bad_element, at[i]);
    snprintf(name, sizeof name, "refused_be%d", i); /* the H5Dwrite path (a conversion) */
    CU_ASSERT_EQUAL(px_h5_write_checksummed(f, name, H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, 1,
                                            big_endian, 1000, data, 0, &w),
                    PX_H5_NONFINITE);
    CU_ASSERT_EQUAL(w.bad_element, at[i]);
    data[at[i]] = (float)at[i];
  }
  data[2345] = NAN;
  w.finite_only = 0;
  CU_ASSERT_EQUAL(px_h5_write_checksummed(f, "kept", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims,
                                          1000, data, N * sizeof *data, &w),
                  0);
  hid_t d = H5Dopen2(f, "kept", H5P_DEFAULT);
  CU_ASSERT(d >= 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
  CU_ASSERT(back[2345] != back[2345] && back[2344] == 2344.0f && back[N - 1] == (float)(N - 1));
  H5Dclose(d);
  px_h5_chunk_writer_free(&w);
  CU_ASSERT(H5Fclose(f) >= 0);
  free(data), free(back);
}

/* ---------------------------------------------------------------------------------------------
 * io/h5util.c's checks
 * ------------------------------------------------------------------------------------------- */

/* An attribute written again is replaced (another length, another type). One that cannot be
 * removed (a read-only file) is kept and the write fails; so does a write for which HDF5 cannot
 * say whether the attribute exists, instead of going on as if it did not. */
static void test_attr_write_checked(void) {
  char path[512], s[64], reason[256];
  double x = 0;
  px_error err = {""};
  hid_t f = new_file("attr.h5", path, sizeof path);
  CU_ASSERT_EQUAL(px_h5_attr_write_str(f, "a", "the first value"), 0);
  CU_ASSERT_EQUAL(px_h5_attr_write_str(f, "a", "2nd"), 0);
  CU_ASSERT_EQUAL(px_h5_attr_write_i64(f, "b", 7), 0);
  CU_ASSERT_EQUAL(px_h5_attr_write_f64(f, "b", 0.5), 0);
  CU_ASSERT_EQUAL(px_h5_attr_read_str(f, "a", s, sizeof s, path, &err), PX_OK);
  CU_ASSERT_STRING_EQUAL(s, "2nd");
  CU_ASSERT_EQUAL(px_h5_attr_read_f64(f, "b", &x, path, &err), PX_OK);
  CU_ASSERT_EQUAL(x, 0.5);

  px_h5fail_arm(PX_H5FAIL_AEXISTS, 1);
  CU_ASSERT(px_h5_attr_write_i64(f, "c", 1) < 0);
  CU_ASSERT(px_test_contains(px_h5_reason(reason, sizeof reason), "injected"));
  CU_ASSERT_EQUAL(H5Aexists(f, "c"), 0); /* nothing was written */
  CU_ASSERT(H5Fclose(f) >= 0);

  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  CU_ASSERT(px_h5_attr_write_str(f, "a", "third") < 0);
  CU_ASSERT_EQUAL(px_h5_attr_read_str(f, "a", s, sizeof s, path, &err), PX_OK);
  CU_ASSERT_STRING_EQUAL(s, "2nd");
  CU_ASSERT(H5Fclose(f) >= 0);
}

/* px_h5_open_int_1d: a length that HDF5 cannot read is refused, naming the dataset, instead of
 * handing on a length nobody wrote; every refusal (an object of the wrong kind or type too)
 * leaves *n 0 and *dset invalid. */
static void test_open_int_1d_checked(void) {
  char path[512];
  px_error err = {""};
  hid_t f = new_file("int1d.h5", path, sizeof path);
  static const int32_t v[5] = {1, 2, 3, 4, 5};
  static const float fl[2] = {1, 2};
  CU_ASSERT_EQUAL(px_h5_write_1d(f, "v", H5T_STD_I32LE, H5T_NATIVE_INT32, v, 5), 0);
  CU_ASSERT_EQUAL(px_h5_write_1d(f, "fl", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fl, 2), 0);
  hid_t g = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CU_ASSERT(g >= 0 && H5Gclose(g) >= 0);
  hid_t d = H5I_INVALID_HID;
  hsize_t n = 12345;
  CU_ASSERT_EQUAL(px_h5_open_int_1d(f, "v", &d, &n, path, &err), PX_OK);
  CU_ASSERT_EQUAL(n, 5);
  CU_ASSERT(d >= 0 && H5Dclose(d) >= 0);

  n = 12345;
  px_h5fail_arm(PX_H5FAIL_EXTENT_DIMS, 1);
  CU_ASSERT_EQUAL(px_h5_open_int_1d(f, "v", &d, &n, path, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "cannot read the length of dataset 'v' (injected"));
  CU_ASSERT(px_test_contains(err.msg, path));
  CU_ASSERT_EQUAL(n, 0);
  CU_ASSERT_EQUAL(d, H5I_INVALID_HID);

  static const char *const refused[][2] = {{"fl", "is not of integer type"},
                                           {"g", "'g' is not a dataset"},
                                           {"none", "'none' is missing"}};
  for (int i = 0; i < 3; i++) {
    n = 12345;
    CU_ASSERT_EQUAL(px_h5_open_int_1d(f, refused[i][0], &d, &n, path, &err), PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, refused[i][1]));
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(d, H5I_INVALID_HID);
  }
  CU_ASSERT(H5Fclose(f) >= 0);
}

/* px_h5_write_1d: a property list or dataspace that cannot be closed fails the write. */
static void test_write_1d_closes_checked(void) {
  char path[512];
  hid_t f = new_file("closes.h5", path, sizeof path);
  static const int32_t v[3] = {1, 2, 3};
  px_h5fail_arm(PX_H5FAIL_PCLOSE, 1);
  CU_ASSERT(px_h5_write_1d(f, "v", H5T_STD_I32LE, H5T_NATIVE_INT32, v, 3) < 0);
  CU_ASSERT_EQUAL(px_h5_write_1d(f, "w", H5T_STD_I32LE, H5T_NATIVE_INT32, v, 3), 0);
  CU_ASSERT(H5Fclose(f) >= 0);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"fletcher32 matches the reference", test_fletcher_matches_reference},
      {"fletcher32 matches HDF5's filter", test_fletcher_matches_hdf5_filter},
      {"direct chunk writes match the filter path", test_direct_write_matches_filter},
      {"a flipped byte is caught", test_flipped_byte_is_caught},
      {"non-finite data is refused", test_nonfinite_refused},
      {"h5util: attribute writes checked", test_attr_write_checked},
      {"h5util: a 1-D dataset's length checked", test_open_int_1d_checked},
      {"h5util: px_h5_write_1d's closes checked", test_write_1d_closes_checked},
      CU_TEST_INFO_NULL};
  px_test_suite("h5chunk", tests);
}
