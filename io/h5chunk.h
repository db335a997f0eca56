/*
 * h5chunk.h — checksummed datasets written by one process without HDF5's filter pipeline:
 * HDF5's Fletcher-32 computed here (a fast blocked version and the plain reference) and each
 * chunk, with its checksum appended as the Fletcher-32 filter appends it, handed to
 * H5Dwrite_chunk. The file holds exactly what H5Dwrite through the filter would have written, so
 * every reader (HDF5's read path, which verifies the checksum; h5py; h5dump; h5diff) reads it as
 * before. Only io/ includes this header.
 */
#ifndef PROXIMA_IO_H5CHUNK_H
#define PROXIMA_IO_H5CHUNK_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* HDF5's Fletcher-32 of data[0..n) (H5_checksum_fletcher32, what its filter appends to a chunk
 * as a little-endian uint32): 16-bit big-endian words, an odd last byte as the high byte of a
 * word, both sums reduced to [1, 65535] (0 only for all-zero data). Any n, 0 included (0).
 * Blocked sums in 32-bit lanes so the compiler vectorises them; the result equals
 * px_h5_fletcher32_ref's bit for bit. Not collective. */
uint32_t px_h5_fletcher32(const void *data, size_t n);

/* The same checksum computed word by word, as HDF5 does: the reference for tests. */
uint32_t px_h5_fletcher32_ref(const void *data, size_t n);

/* What px_h5_write_checksummed keeps across the datasets of one file: a buffer for chunks that
 * cannot be written in place, grown as needed; the file's descriptor, through which the kernel
 * is told to start writing back every 16 MiB written (sync_file_range), so that the disk works
 * while the next chunks are summed and the final fsync has little left to do; and whether float
 * data must be finite. */
typedef struct px_h5_chunk_writer {
  unsigned char *buf;
  size_t n;
  int fd;              /* -1: no early writeback (not the sec2 driver, or no sync_file_range) */
  size_t pending;      /* bytes written since writeback was last started */
  int finite_only;     /* refuse native float data holding a NaN or an infinity */
  hsize_t bad_element; /* after a refusal (PX_H5_NONFINITE): the dataset's first such element */
} px_h5_chunk_writer;

/* px_h5_write_checksummed's result when finite_only refused the data. */
#define PX_H5_NONFINITE (-2)

/* A writer for file (open with any driver; early writeback with sec2). Not collective. */
void px_h5_chunk_writer_init(px_h5_chunk_writer *w, hid_t file, int finite_only);
void px_h5_chunk_writer_free(px_h5_chunk_writer *w);

/* Creates dataset `name` under loc, of file_type and shape dims[0..ndim), laid out as
 * px_h5_create_dataset(..., ndim, dims, max_chunk) (chunks along dim 0, Fletcher-32, no times),
 * and writes all of data, the whole dataset as mem_type in row-major order. When mem_type is
 * file_type's layout (as native types are their little-endian counterparts on x86), each chunk
 * is copied into scratch (an edge chunk padded with zeros, HDF5's default fill value), its
 * checksum appended, and written with H5Dwrite_chunk: one pass over the data, no filter
 * pipeline. The 4 bytes after a whole chunk, when they lie within the room bytes at data (the
 * caller's buffer goes on after the dataset's bytes), are borrowed for its checksum and given
 * back right after its write, so such a chunk is written from data itself; other chunks go
 * through w's buffer. Otherwise (a type conversion) the ordinary H5Dwrite through the filter.
 * With w->finite_only, native float data holding a NaN or an infinity is refused: each chunk is
 * checked just before it is summed, and the first such element stops the write there
 * (PX_H5_NONFINITE, w->bad_element; the dataset keeps the chunks before it). For a file open on
 * one process (sec2): H5Dwrite_chunk does not take part in parallel I/O. Returns <0 on an HDF5
 * failure (nothing is left open). */
herr_t px_h5_write_checksummed(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                               int ndim, const hsize_t *dims, hsize_t max_chunk, void *data,
                               size_t room, px_h5_chunk_writer *w);

#endif
