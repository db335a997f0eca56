/*
 * h5util.h — io/'s private HDF5 helpers, the one place where io/ talks to HDF5 in general terms
 * (h5chunk.h writes checksummed chunks directly): its error stack turned into our messages;
 * files created without modification times, opened to read (serially or over MPI-IO) with the
 * reasons they cannot be in the user's words; typed attributes; checksummed chunked datasets
 * created and written, and datasets opened with their type and shape checked and read by rows.
 * Only io/ includes this header.
 */
#ifndef PROXIMA_IO_H5UTIL_H
#define PROXIMA_IO_H5UTIL_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "proxima/error.h"

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* Turns off HDF5's automatic error printing (we report errors ourselves). Idempotent. */
void px_h5_quiet(void);

/* The innermost message of the current HDF5 error stack ("" if none), in buf of n bytes. */
const char *px_h5_reason(char *buf, size_t n);

/* Sets err (when not NULL) to the message fmt formats, followed by ": " and HDF5's innermost
 * reason when its error stack holds one, and returns status: how an HDF5 call that failed on
 * our own file reads, `return px_h5_fail(err, PX_ERUN, "cannot write %s: ...", path);`. */
px_status px_h5_fail(px_error *err, px_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

/* Creates the file path (replacing one there) without modification times, so that equal content
 * gives equal bytes: with in_memory 0 through HDF5's POSIX (sec2) driver, otherwise in memory
 * only (the core driver without a backing store, grown in_memory bytes at a time; its bytes are
 * had with H5Fget_file_image). Returns the file, or H5I_INVALID_HID with HDF5's reason on its
 * error stack; a property list that cannot be closed is a failure too (a file made is closed
 * again; the caller removes it). Not collective. */
hid_t px_h5_create(const char *path, size_t in_memory);

/* The POSIX file descriptor of a file open with the sec2 (default) driver; -1 with another
 * driver or on failure. HDF5 keeps it: never close it. Not collective. */
int px_h5_file_fd(hid_t file);

/* Opens path read-only into *file: with comm MPI_COMM_NULL on this process alone (HDF5's default,
 * POSIX driver; not collective), otherwise over MPI-IO on comm (collective over comm). What can
 * be checked alone is checked first, so that under MPI-IO only a plausible file reaches the
 * collective open. PX_EINPUT in the user's terms: "PATH: no such file", "PATH: is a directory,
 * not an HDF5 file", "PATH: not an HDF5 file", "PATH: cannot read (reason)", and for a file that
 * HDF5 cannot open, a file cut short says how many bytes of how many its superblock records,
 * anything else HDF5's innermost reason. PX_ERUN when the file-access list cannot be set up or
 * released (the file is then closed again). On failure *file is H5I_INVALID_HID. Silences
 * HDF5's error printing (px_h5_quiet). */
px_status px_h5_open_read(const char *path, MPI_Comm comm, hid_t *file, px_error *err);

/* Calls fn(loc, name, data) for every dataset under loc, recursively, in name order (HDF5's
 * H5Ovisit, whatever its version's signature); fn returns 0 to go on, >0 to stop, <0 on error.
 * Returns what H5Ovisit returns. */
herr_t px_h5_visit_datasets(hid_t loc, herr_t (*fn)(hid_t loc, const char *name, void *data),
                            void *data);

/* ---------------------------------------------------------------------------------------------
 * Groups and attributes
 * ------------------------------------------------------------------------------------------- */

/* A group-creation list without modification times. */
hid_t px_h5_gcpl(void);

/* Attributes on loc (a file, group or dataset). Writes replace an attribute of that name and
 * return <0 on failure (HDF5's error stack holds the reason). Reads return
 * PX_EINPUT with a message naming `where` when the attribute is missing or of the wrong kind. */
herr_t px_h5_attr_write_str(hid_t loc, const char *name, const char *value);
herr_t px_h5_attr_write_i64(hid_t loc, const char *name, int64_t value);
herr_t px_h5_attr_write_f64(hid_t loc, const char *name, double value);
px_status px_h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t n, const char *where,
                              px_error *err);
/* A string attribute of any length into *text, allocated (the caller frees it; NULL on failure). */
px_status px_h5_attr_read_text(hid_t loc, const char *name, char **text, const char *where,
                               px_error *err);
px_status px_h5_attr_read_i64(hid_t loc, const char *name, int64_t *value, const char *where,
                              px_error *err);
px_status px_h5_attr_read_f64(hid_t loc, const char *name, double *value, const char *where,
                              px_error *err);

/* ---------------------------------------------------------------------------------------------
 * Datasets
 * ------------------------------------------------------------------------------------------- */

/* Creates dataset name under loc, of file_type and the shape dims[0..ndim), checksummed: chunked
 * along dim 0 (as many whole rows as fit in max_chunk elements, at least one, at most dims[0];
 * the other dimensions whole), with the Fletcher-32 filter, and without modification times (so
 * equal content gives equal bytes). The chunk's extents go into chunk[0..ndim) when chunk is not
 * NULL. Returns the open dataset (the caller closes it), or H5I_INVALID_HID with HDF5's reason on
 * its error stack and nothing left open (a dataspace or property list that cannot be closed is
 * a failure too). Not collective. */
hid_t px_h5_create_dataset(hid_t loc, const char *name, hid_t file_type, int ndim,
                           const hsize_t *dims, hsize_t max_chunk, hsize_t *chunk);

/* Creates a 1-D checksummed dataset of n elements (px_h5_create_dataset, chunks of at most 2^16)
 * and writes data, n elements of mem_type, into it through HDF5's filter pipeline. Returns <0
 * on failure. Not collective. */
herr_t px_h5_write_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *data, hsize_t n);

/* Opens dataset name under loc into *dset (the caller closes it) after checking what it must be:
 * of type class cls (H5T_INTEGER or H5T_FLOAT), of elem-byte elements (0: any size), and of the
 * shape dims[0..ndim) (dims NULL: one-dimensional, any length; ndim is then 1). PX_EINPUT naming
 * `where` when it is missing, not a dataset, of another class, element size or shape; PX_ERUN
 * when its type or dataspace cannot be closed. On failure *dset is H5I_INVALID_HID. Not
 * collective. */
px_status px_h5_open_dataset(hid_t loc, const char *name, H5T_class_t cls, size_t elem, int ndim,
                             const hsize_t *dims, hid_t *dset, const char *where, px_error *err);

/* Opens a 1-D integer dataset and gives its length; PX_EINPUT naming `where` if it is missing,
 * not 1-D, not of integer type or its length cannot be read (then *dset is H5I_INVALID_HID and
 * *n 0). *dset is closed by the caller. */
px_status px_h5_open_int_1d(hid_t loc, const char *name, hid_t *dset, hsize_t *n, const char *where,
                            px_error *err);

/* Reads the float dataset `name` into out, which has the expected shape; PX_EINPUT naming
 * `where` when it is not such a dataset (px_h5_open_dataset) or fails its checksum. */
px_status px_h5_read_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, float *out,
                         const char *where, px_error *err);

/* Reads rows [first, first + n) of an open dataset (along its first dimension; a scalar is one
 * row) as mem_type into out, which holds n rows; n may be 0. An independent transfer, so no
 * other process waits for this one. Returns <0 on failure. */
herr_t px_h5_read_rows(hid_t dset, hid_t mem_type, hsize_t first, hsize_t n, void *out);

#endif
