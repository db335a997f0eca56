/*
 * h5chunk.c — see h5chunk.h.
 *
 * Fletcher-32 as HDF5 computes it (H5checksum.c): over the 16-bit big-endian words w_1..w_n
 * (an odd last byte b is the word b << 8), sum1 = sum of w_i and sum2 = sum over i of the
 * prefix sums w_1 + ... + w_i = sum of (n - i + 1) w_i, each reduced by folding (x & 0xffff) +
 * (x >> 16) every 360 words and twice at the end. Folding keeps x mod 65535 and maps a
 * positive x to a positive one, and no sum overflows 32 bits between folds, so HDF5's result
 * is the representative in [1, 65535] of each sum mod 65535, or 0 when the sum is 0 (all words
 * zero). Its filter appends (sum2 << 16 | sum1) to the chunk, little-endian.
 *
 * The fast version splits the data into blocks of LANES x ROUNDS words. Lane l of a block adds
 * the words l, l + LANES, l + 2 LANES, ... into s1[l] and adds s1[l] into s2[l] after each;
 * then the block's sum of words is sum_l s1[l] and its weighted sum, sum_j (m - j) w_j over
 * its m words j = 0..m-1, is sum_l (LANES s2[l] - l s1[l]). ROUNDS = 256 keeps s2 under 2^32
 * (256 x 257 / 2 x 65535 < 2^32). A block after a prefix with sums (A, B) gives (A + S,
 * B + m A + W), reduced mod 65535 in 64 bits.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "h5chunk.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "proxima/error.h"
#include "proxima/finite.h"
#include "proxima/simd.h"

enum {
  PX_F32_LANES = 32,
  PX_F32_ROUNDS = 256,
  PX_F32_BLOCK = PX_F32_LANES * PX_F32_ROUNDS, /* words: 16 KiB */
  PX_F32_PIECE = 4 * 2 * PX_F32_BLOCK          /* bytes copied and summed at a time: 128 KiB */
};

/* The sums so far: a and b mod 65535, and the exact sum of the words (0 iff all are 0). */
typedef struct px_f32_sums {
  uint64_t a, b, total;
} px_f32_sums;

/* One block of PX_F32_BLOCK words at p: *s the sum of its words, *w their weighted sum. */
PX_SIMD_CLONES static void px_f32_block(const unsigned char *p, uint64_t *s, uint64_t *w) {
  uint32_t s1[PX_F32_LANES] = {0}, s2[PX_F32_LANES] = {0};
  for (int k = 0; k < PX_F32_ROUNDS; k++, p += (size_t)2 * PX_F32_LANES)
    for (int l = 0; l < PX_F32_LANES; l++) {
      uint16_t word;
      memcpy(&word, p + 2 * (size_t)l, 2);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
      word = __builtin_bswap16(word);
#endif
      s1[l] += word;
      s2[l] += s1[l];
    }
  uint64_t sum = 0, weighted = 0;
  for (int l = 0; l < PX_F32_LANES; l++) {
    sum += s1[l];
    weighted += (uint64_t)PX_F32_LANES * s2[l] - (uint64_t)l * s1[l]; /* s2[l] >= s1[l] */
  }
  *s = sum, *w = weighted;
}

/* Adds the words p[0..2 words) to s. */
static void px_f32_words(px_f32_sums *s, const unsigned char *p, size_t words) {
  for (; words >= PX_F32_BLOCK; words -= PX_F32_BLOCK, p += (size_t)2 * PX_F32_BLOCK) {
    uint64_t sum, weighted;
    px_f32_block(p, &sum, &weighted);
    s->b = (s->b + (uint64_t)PX_F32_BLOCK * s->a + weighted) % 65535;
    s->a = (s->a + sum) % 65535;
    s->total += sum;
  }
  /* under a block: a < 65535 + 8192 x 65535 and b < 2^43 before the reduction */
  for (; words > 0; words--, p += 2) {
    uint32_t word = (uint32_t)p[0] << 8 | p[1];
    s->a += word, s->b += s->a, s->total += word;
  }
  s->a %= 65535, s->b %= 65535;
}

/* The checksum of the words added to s and then, when odd is not NULL, the byte *odd. */
static uint32_t px_f32_finish(px_f32_sums *s, const unsigned char *odd) {
  if (odd) {
    uint32_t word = (uint32_t)odd[0] << 8;
    s->a = (s->a + word) % 65535, s->b = (s->b + s->a) % 65535, s->total += word;
  }
  if (s->total == 0) return 0;
  uint32_t sum1 = s->a ? (uint32_t)s->a : 65535, sum2 = s->b ? (uint32_t)s->b : 65535;
  return sum2 << 16 | sum1;
}

uint32_t px_h5_fletcher32(const void *data, size_t n) {
  const unsigned char *p = data;
  px_f32_sums s = {0, 0, 0};
  px_f32_words(&s, p, n / 2);
  return px_f32_finish(&s, n % 2 ? p + n - 1 : NULL);
}

uint32_t px_h5_fletcher32_ref(const void *data, size_t n) {
  const unsigned char *p = data;
  uint32_t sum1 = 0, sum2 = 0;
  for (size_t words = n / 2; words > 0;) {
    size_t run = words > 360 ? 360 : words;
    words -= run;
    for (; run > 0; run--, p += 2) {
      sum1 += (uint32_t)p[0] << 8 | p[1];
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (n % 2) {
    sum1 += (uint32_t)p[0] << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return sum2 << 16 | sum1;
}

static void px_put_le32(unsigned char *out, uint32_t v) {
  out[0] = (unsigned char)v, out[1] = (unsigned char)(v >> 8);
  out[2] = (unsigned char)(v >> 16), out[3] = (unsigned char)(v >> 24);
}

/* Copies data_bytes of src into dst, zeros dst up to chunk_bytes, and appends the Fletcher-32
 * of dst[0..chunk_bytes) little-endian: in pieces, each summed while it is still in cache. */
static void px_fill_chunk(unsigned char *dst, const unsigned char *src, size_t data_bytes,
                          size_t chunk_bytes) {
  px_f32_sums s = {0, 0, 0};
  for (size_t at = 0; at < chunk_bytes; at += PX_F32_PIECE) {
    size_t len = chunk_bytes - at < PX_F32_PIECE ? chunk_bytes - at : PX_F32_PIECE;
    size_t copy = at >= data_bytes ? 0 : data_bytes - at < len ? data_bytes - at : len;
    if (copy > 0) memcpy(dst + at, src + at, copy);
    if (copy < len) memset(dst + at + copy, 0, len - copy);
    px_f32_words(&s, dst + at, len / 2); /* PX_F32_PIECE is even: only the last can be odd */
  }
  uint32_t sum = px_f32_finish(&s, chunk_bytes % 2 ? dst + chunk_bytes - 1 : NULL);
  px_put_le32(dst + chunk_bytes, sum);
}

#define PX_WRITEBACK_EVERY ((size_t)16 << 20)

void px_h5_chunk_writer_init(px_h5_chunk_writer *w, hid_t file, int finite_only) {
  *w = (px_h5_chunk_writer){NULL, 0, px_h5_file_fd(file), 0, finite_only, 0};
}

void px_h5_chunk_writer_free(px_h5_chunk_writer *w) {
  free(w->buf);
  w->buf = NULL, w->n = 0;
}

/* Counts bytes written and, every PX_WRITEBACK_EVERY, asks the kernel to start writing the
 * file's dirty pages back without waiting for them. A hint: a failure here loses nothing (the
 * fsync before the rename reports real errors), so its result is not needed. */
static void px_writeback(px_h5_chunk_writer *w, size_t bytes) {
  w->pending += bytes;
  if (w->fd < 0 || w->pending < PX_WRITEBACK_EVERY) return;
  w->pending = 0;
#ifdef SYNC_FILE_RANGE_WRITE
  (void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
}

/* With w->finite_only: whether x[0..n) holds a NaN or an infinity, noting where in w (the
 * dataset's element first + its index). Called on each chunk just before it is summed, so the
 * checksum reads it again from cache, not from memory. */
static int px_refuse_nonfinite(px_h5_chunk_writer *w, const float *x, size_t n, hsize_t first) {
  if (!w->finite_only) return 0;
  size_t at = px_first_nonfinite(x, n);
  if (at == n) return 0;
  w->bad_element = first + at;
  return 1;
}

/* Writes every chunk of dset (chunk dims chunk[], chunked along dim 0 only) from data, which
 * has room bytes (the 4 after a chunk are borrowed when they are among them). */
static herr_t px_write_chunks(hid_t dset, int ndim, const hsize_t *dims, const hsize_t *chunk,
                              size_t elem, int floats, unsigned char *data, size_t room,
                              px_h5_chunk_writer *w) {
  size_t row_bytes = elem;
  for (int i = 1; i < ndim; i++) row_bytes *= (size_t)dims[i];
  size_t chunk_bytes = row_bytes * (size_t)chunk[0];
  hsize_t offset[H5S_MAX_RANK] = {0};
  for (hsize_t row = 0; row < dims[0]; row += chunk[0]) {
    hsize_t rows = dims[0] - row < chunk[0] ? dims[0] - row : chunk[0];
    unsigned char *src = data + (size_t)row * row_bytes;
    offset[0] = row;
    if (floats && px_refuse_nonfinite(w, (const float *)(const void *)src,
                                      (size_t)rows * row_bytes / sizeof(float),
                                      (hsize_t)row * (row_bytes / sizeof(float))))
      return PX_H5_NONFINITE;
    herr_t rc;
    if (rows == chunk[0] && (size_t)row * row_bytes + chunk_bytes + 4 <= room) {
      /* in place: the checksum goes into the 4 bytes after the chunk for the write */
      unsigned char saved[4];
      memcpy(saved, src + chunk_bytes, 4);
      px_put_le32(src + chunk_bytes, px_h5_fletcher32(src, chunk_bytes));
      rc = H5Dwrite_chunk(dset, H5P_DEFAULT, 0, offset, chunk_bytes + 4, src);
      memcpy(src + chunk_bytes, saved, 4);
    } else {
      if (w->n < chunk_bytes + 4) {
        free(w->buf);
        w->buf = px_malloc(chunk_bytes + 4);
        w->n = chunk_bytes + 4;
      }
      px_fill_chunk(w->buf, src, (size_t)rows * row_bytes, chunk_bytes);
      rc = H5Dwrite_chunk(dset, H5P_DEFAULT, 0, offset, chunk_bytes + 4, w->buf);
    }
    if (rc < 0) return -1;
    px_writeback(w, chunk_bytes + 4);
  }
  return 0;
}

herr_t px_h5_write_checksummed(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                               int ndim, const hsize_t *dims, hsize_t max_chunk, void *data,
                               size_t room, px_h5_chunk_writer *w) {
  if (ndim < 1 || ndim > H5S_MAX_RANK) return -1;
  hsize_t chunk[H5S_MAX_RANK], points = 1;
  for (int i = 0; i < ndim; i++) points *= dims[i];
  hid_t dset = px_h5_create_dataset(loc, name, file_type, ndim, dims, max_chunk, chunk);
  htri_t same = dset < 0 ? -1 : H5Tequal(file_type, mem_type);
  htri_t floats = dset < 0 ? -1 : H5Tequal(mem_type, H5T_NATIVE_FLOAT);
  size_t elem = H5Tget_size(mem_type);
  herr_t rc = same < 0 || floats < 0 || elem == 0 ? -1 : 0;
  if (rc == 0 && points == 0)
    rc = 0; /* no chunk to write */
  else if (rc == 0 && same > 0)
    rc = px_write_chunks(dset, ndim, dims, chunk, elem, floats > 0, data, room, w);
  else if (rc == 0 && floats > 0 && px_refuse_nonfinite(w, data, (size_t)points, 0))
    rc = PX_H5_NONFINITE;
  else if (rc == 0)
    rc = H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (dset >= 0 && H5Dclose(dset) < 0 && rc == 0) rc = -1;
  return rc == PX_H5_NONFINITE ? rc : rc < 0 ? -1 : 0;
}
