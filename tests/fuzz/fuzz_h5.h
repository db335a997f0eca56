/*
 * fuzz_h5.h — building HDF5 files from a recipe, for the structure-aware targets (fuzz_dataset,
 * fuzz_ckpt).
 *
 * Why a recipe and not the file's bytes: libhdf5 1.10 itself crashes on byte-mutated files (its
 * metadata decoders trust lengths and addresses), which is not our code and not ours to fix.
 * What our loaders must survive is every file HDF5 can read: any groups, datasets and
 * attributes present or missing, of any type, shape, layout and size, holding any values (NaN,
 * huge, negative), a dataset declaring more elements than it stores, a chunk failing its
 * checksum. So the fuzzer's bytes choose those things, the HDF5 API writes the file, and our
 * loader reads it from its path, as it would a user's file.
 */
#ifndef PX_FUZZ_H5_H
#define PX_FUZZ_H5_H

#include <hdf5.h>

#include "fuzz_util.h"

/* An attribute called name on loc, holding a string, an integer or a double as the recipe says:
 * as intended (how 0), missing, of another type, a variable-length string, or an array. */
enum { PX_FZ_STR, PX_FZ_INT, PX_FZ_REAL };

static inline void px_fz_attr(hid_t loc, const char *name, int type, const char *s, int64_t i,
                              double d, px_fuzz_in *in) {
  int how = px_fuzz_pick(in, 10);
  if (how == 1) return;                /* missing */
  if (how == 2) type = (type + 1) % 3; /* another type */
  if (how == 3) type = (type + 2) % 3;
  hsize_t two[1] = {2};
  hid_t space = how == 4 ? H5Screate_simple(1, two, NULL) : H5Screate(H5S_SCALAR);
  hid_t t;
  if (type == PX_FZ_STR) {
    t = H5Tcopy(H5T_C_S1);
    if (how == 5) {
      H5Tset_size(t, H5T_VARIABLE);
    } else {
      H5Tset_size(t, strlen(s) + 1 + (how == 6 ? 40 : 0));
      if (how == 7) H5Tset_strpad(t, H5T_STR_NULLPAD);
    }
  } else {
    t = H5Tcopy(type == PX_FZ_INT ? (how == 8 ? H5T_STD_U8LE : H5T_STD_I64LE) : H5T_IEEE_F64LE);
  }
  hid_t a = H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (type == PX_FZ_STR) {
      if (how == 5) {
        const char *two_s[2] = {s, s};
        H5Awrite(a, t, two_s);
      } else {
        size_t size = H5Tget_size(t);
        char *buf = calloc(2, size);
        memcpy(buf, s, strlen(s));
        memcpy(buf + size, s, strlen(s));
        H5Awrite(a, t, buf);
        free(buf);
      }
    } else if (type == PX_FZ_INT) {
      int64_t v[2] = {i, i};
      H5Awrite(a, H5T_NATIVE_INT64, v);
    } else {
      double v[2] = {d, d};
      H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    }
    H5Aclose(a);
  }
  H5Tclose(t);
  H5Sclose(space);
}

/* Sometimes (a quarter of the time) rewrites the first chunk of a chunked, Fletcher-32
 * dataset raw with one byte flipped, so that reading it fails its checksum. */
static inline void px_fz_corrupt(hid_t d, px_fuzz_in *in) {
  if (px_fuzz_pick(in, 4) != 0) return;
  hsize_t off[H5S_MAX_RANK] = {0};
  uint32_t filters = 0;
  hsize_t bytes = 0;
  if (H5Dget_chunk_storage_size(d, off, &bytes) < 0 || bytes == 0 || bytes >= (1u << 20)) return;
  unsigned char *raw = malloc((size_t)bytes);
  if (H5Dread_chunk(d, H5P_DEFAULT, off, &filters, raw) >= 0) {
    size_t at = px_fuzz_u8(in) % bytes;
    raw[at] ^= (unsigned char)(1 + px_fuzz_pick(in, 255));
    H5Dwrite_chunk(d, H5P_DEFAULT, filters, off, (size_t)bytes, raw);
  }
  free(raw);
}

/* Writes the first `stored` rows of `cols` columns of dataset d (of `rank` dimensions, 0 for a
 * scalar) from buf, which holds them as mem_type. */
static inline void px_fz_write_first_rows(hid_t d, int rank, hsize_t stored, hsize_t cols,
                                          hid_t mem_type, const void *buf) {
  hid_t fsel = H5Dget_space(d);
  hsize_t off[2] = {0, 0}, cnt[2] = {stored, cols};
  hid_t msel = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, cnt, NULL);
  if (rank > 0) H5Sselect_hyperslab(fsel, H5S_SELECT_SET, off, NULL, cnt, NULL);
  H5Dwrite(d, mem_type, msel, fsel, H5P_DEFAULT, buf);
  H5Sclose(msel);
  H5Sclose(fsel);
}

/* The end of a recipe's dataset d: one chunk corrupted when `corrupt` (and the recipe says so:
 * px_fz_corrupt), then d (if it was made), its creation list, dataspace and file type closed. */
static inline void px_fz_finish(hid_t d, int corrupt, hid_t dcpl, hid_t space, hid_t ftype,
                                px_fuzz_in *in) {
  if (d >= 0 && corrupt) px_fz_corrupt(d, in);
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(ftype);
}

/* A numeric dataset name on loc whose intended content is the n values of v (int64 or double:
 * mem_type). The recipe picks its file type (integers of other widths, floats, strings), its
 * rank and dims (as intended, scalar, 2-D, a declared length other than n, up to 2^62 with
 * only the first elements stored), its layout (contiguous, chunked with or without Fletcher-32,
 * compact) and one corrupted chunk. */
static inline void px_fz_dataset(hid_t loc, const char *name, hid_t mem_type, const void *v,
                                 hsize_t n, px_fuzz_in *in) {
  static const hid_t *const types[] = {&H5T_STD_I64LE_g, &H5T_STD_I32LE_g,  &H5T_STD_U8LE_g,
                                       &H5T_STD_U64BE_g, &H5T_IEEE_F32LE_g, &H5T_IEEE_F64BE_g,
                                       &H5T_STD_I16BE_g};
  int how_type = px_fuzz_pick(in, 24), how_shape = px_fuzz_pick(in, 16);
  int how_layout = px_fuzz_pick(in, 4);
  hid_t ftype = how_type < 7                    ? H5Tcopy(*types[how_type])
                : mem_type == H5T_NATIVE_DOUBLE ? H5Tcopy(H5T_IEEE_F32LE)
                                                : H5Tcopy(H5T_STD_I64LE);
  if (how_type == 7) {
    H5Tclose(ftype);
    ftype = H5Tcopy(H5T_C_S1);
    H5Tset_size(ftype, 8);
  }
  int rank = 1;
  hsize_t dims[2] = {n, 1};
  hsize_t stored = n; /* elements written, along dim 0 */
  switch (how_shape) {
  case 0:
    rank = 0;
    stored = n > 0;
    break;                                                      /* scalar */
  case 1: rank = 2, dims[1] = 1 + px_fuzz_pick(in, 3); break;   /* 2-D */
  case 2: dims[0] = n + 1 + px_fuzz_pick(in, 4); break;         /* declares a few more */
  case 3: dims[0] = n > 0 ? n - 1 : 0, stored = dims[0]; break; /* one fewer */
  case 4:
    dims[0] = (px_fuzz_u64(in) >> 2) | 1;
    stored = n < dims[0] ? n : dims[0];
    break;
  case 5: dims[0] = (hsize_t)1 << (32 + px_fuzz_pick(in, 30)); break; /* huge, mostly unstored */
  default: break;
  }
  if (how_shape == 5 && stored > dims[0]) stored = dims[0];
  int huge = dims[0] > n + 16;
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(dcpl, 0);
  int chunked = rank > 0 && (how_layout == 1 || how_layout == 2 || huge);
  if (chunked) {
    hsize_t chunk[2] = {dims[0] < 64 ? (dims[0] ? dims[0] : 1) : 64, dims[1]};
    H5Pset_chunk(dcpl, rank, chunk);
    if (how_layout != 1) H5Pset_fletcher32(dcpl);
  } else if (how_layout == 3 && rank > 0 && dims[0] * dims[1] < 1024) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  }
  hid_t d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d >= 0 && stored > 0) {
    /* the first `stored` rows, each row's columns all the same value (a string dataset gets
     * the values' bytes, 8 to an element) */
    int str = how_type == 7;
    size_t es = str ? 8 : H5Tget_size(mem_type);
    size_t cols = rank == 2 ? (size_t)dims[1] : 1;
    char *buf = calloc((size_t)stored * cols, es);
    for (hsize_t r = 0; r < stored && n > 0; r++)
      for (size_t c = 0; c < cols; c++)
        memcpy(buf + ((size_t)r * cols + c) * es, (const char *)v + (r < n ? r : n - 1) * es, es);
    px_fz_write_first_rows(d, rank, stored, cols, str ? ftype : mem_type, buf);
    free(buf);
  }
  px_fz_finish(d, chunked && how_layout == 2 && stored > 0, dcpl, space, ftype, in);
}

#endif
