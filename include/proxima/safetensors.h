/*
 * safetensors.h — the safetensors format of Hugging Face models, read and written.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON header, then the data. The
 * header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
 * the data, end exclusive), and may hold "__metadata__", an object of strings. Reading
 * validates the whole header before touching any data: the header length (at most
 * PX_ST_MAX_HEADER bytes and inside the file), the JSON, every entry's fields and types, a dtype
 * this reader converts (F32, F16, BF16; any other is refused naming it), the shape's product
 * times the dtype's size equal to end - begin, every range inside the data and no two
 * overlapping. The data is mapped (mmap), not copied; a tensor is converted to float32 on read.
 * Every failure is PX_EINPUT naming the file and the tensor or field.
 *
 * Not collective: each process reads for itself (every rank needs all the weights).
 */
#ifndef PROXIMA_SAFETENSORS_H
#define PROXIMA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"

#define PX_ST_MAX_HEADER ((uint64_t)100 << 20) /* 100 MB, as the reference implementation */
#define PX_ST_MAX_DIMS 8

typedef enum px_st_dtype { PX_ST_F32, PX_ST_F16, PX_ST_BF16 } px_st_dtype;

typedef struct px_st_tensor {
  char *name;
  px_st_dtype dtype;
  int ndim;
  int64_t shape[PX_ST_MAX_DIMS];
  int64_t count;       /* elements: the product of the shape (1 for a scalar) */
  const void *data;    /* into the mapping */
  uint64_t begin, end; /* data_offsets */
} px_st_tensor;

typedef struct px_st_file {
  char path[4096];
  void *map;             /* the whole file, read-only */
  size_t size;           /* of the file */
  px_st_tensor *tensors; /* in header order */
  int n_tensors;
  char *metadata_json; /* "__metadata__" as compact JSON, or NULL */
} px_st_file;

/* Opens and validates path, mapping it. On failure nothing is left open and *f is zeroed (so
 * px_st_close on it is harmless). The tensors' data pointers stay valid until px_st_close; the
 * file must not be changed while it is open (a mapped file cut short faults on access). Names
 * in f->tensors are in header order; the data need not be aligned (reads go through memcpy). */
px_status px_st_open(const char *path, px_st_file *f, px_error *err);
void px_st_close(px_st_file *f);

/* The tensor called name, or NULL. */
const px_st_tensor *px_st_find(const px_st_file *f, const char *name);

/* The name of a dtype ("F32", ...). */
const char *px_st_dtype_name(px_st_dtype dtype);

/* Converts a tensor's count elements to float32 into out (room for count floats). F16 and BF16
 * convert exactly (subnormals, infinities and NaN with its payload included). Not collective. */
void px_st_read_f32(const px_st_tensor *t, float *out);

/* One tensor to write: float32 data of the given shape. */
typedef struct px_st_out {
  const char *name;
  int ndim;
  int64_t shape[PX_ST_MAX_DIMS];
  const float *data;
} px_st_out;

/* Writes the tensors (F32, end to end in the order given; the header padded with spaces so that
 * the data starts 8-byte aligned, as the reference writer does) and metadata (pairs of strings;
 * n_meta pairs, may be 0) to path atomically: a temporary file, fsynced and renamed; on failure
 * nothing is left and a file already at path is untouched. PX_ERUN naming path on an I/O failure;
 * PX_EINPUT for what cannot make a valid file (a name missing, repeated, "__metadata__" or not
 * UTF-8, ndim outside 0..PX_ST_MAX_DIMS, a negative dimension, a repeated metadata key). Not
 * collective. */
px_status px_st_write(const char *path, const px_st_out *tensors, int n, const char *const *meta,
                      int n_meta, px_error *err);

#endif
