/*
 * h5util.c — see h5util.h.
 */
#include "h5util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proxima/fsutil.h"

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

void px_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t px_h5_first(unsigned n, const H5E_error2_t *e, void *data) {
  char *buf = data;
  if (n == 0 && e->desc) snprintf(buf, 256, "%s", e->desc);
  return 0;
}

const char *px_h5_reason(char *buf, size_t n) {
  char inner[256] = "";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, px_h5_first, inner); /* n == 0: the innermost */
  snprintf(buf, n, "%s", inner);
  return buf;
}

px_status px_h5_fail(px_error *err, px_status status, const char *fmt, ...) {
  char reason[256];
  px_h5_reason(reason, sizeof reason);
  if (!err) return status;
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  size_t used = len < 0 ? 0 : (size_t)len < sizeof err->msg ? (size_t)len : sizeof err->msg - 1;
  if (reason[0]) snprintf(err->msg + used, sizeof err->msg - used, ": %s", reason);
  return status;
}

/* HDF5's error stack when failed, taken before calls that would clear it (every API call does)
 * and put back after them with px_h5_put_back: the first failure's reason is the one reported. */
static hid_t px_h5_keep_reason(int failed) {
  return failed ? H5Eget_current_stack() : H5I_INVALID_HID;
}

static void px_h5_put_back(hid_t stack) {
  if (stack >= 0) H5Eset_current_stack(stack);
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

hid_t px_h5_create(const char *path, size_t in_memory) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE), file = -1;
  if (fapl >= 0 && fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0 &&
      (in_memory > 0 ? H5Pset_fapl_core(fapl, in_memory, 0) : H5Pset_fapl_sec2(fapl)) >= 0)
    file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  hid_t reason = px_h5_keep_reason(file < 0);
  herr_t closed = 0;
  if (fcpl >= 0 && H5Pclose(fcpl) < 0) closed = -1;
  if (fapl >= 0 && H5Pclose(fapl) < 0) closed = -1;
  if (file >= 0 && closed < 0) {
    reason = px_h5_keep_reason(1);
    H5Fclose(file);
    file = H5I_INVALID_HID;
  }
  px_h5_put_back(reason);
  return file;
}

int px_h5_file_fd(hid_t file) {
  hid_t fapl = H5Fget_access_plist(file);
  void *handle = NULL;
  int fd = -1;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
      H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle)
    fd = *(const int *)handle;
  if (fapl >= 0) H5Pclose(fapl);
  return fd;
}

/* >0 when path is an HDF5 file, 0 when not, <0 when it cannot be read. */
static htri_t px_h5_is_hdf5(const char *path) {
#if H5_VERSION_GE(1, 12, 0)
  return H5Fis_accessible(path, H5P_DEFAULT);
#else
  return H5Fis_hdf5(path);
#endif
}

/* Why path, which exists, cannot be read at all (px_h5_is_hdf5 failed): a directory, or HDF5's
 * reason. */
static px_status px_h5_unreadable(const char *path, px_error *err) {
  char reason[256];
  px_h5_reason(reason, sizeof reason);
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return px_error_set(err, PX_EINPUT, "%s: is a directory, not an HDF5 file", path);
  return px_error_set(err, PX_EINPUT, "%s: cannot read (%s)", path,
                      reason[0] ? reason : "unknown HDF5 error");
}

typedef struct px_inner {
  char desc[256];
  hid_t minor;
} px_inner;

/* Walking downward from the API call, the last entry is where the failure was found. */
static herr_t px_inner_cb(unsigned n, const H5E_error2_t *e, void *data) {
  (void)n;
  px_inner *in = data;
  snprintf(in->desc, sizeof in->desc, "%s", e->desc ? e->desc : "");
  in->minor = e->min_num;
  return 0;
}

/* Why path, an HDF5 file, cannot be opened, as PX_EINPUT in the user's terms: a file cut short
 * says how many bytes of how many its superblock records; otherwise HDF5's innermost reason.
 * Opens the file once more on this process alone (with the default driver) to find out. */
static px_status px_h5_open_failure(const char *path, px_error *err) {
  px_h5_quiet();
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f >= 0) {
    H5Fclose(f);
    return px_error_set(err, PX_EINPUT, "%s: cannot open (it opens alone, not over MPI-IO)", path);
  }
  px_inner in = {"", H5I_INVALID_HID};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, px_inner_cb, &in);
  const char *stored = strstr(in.desc, "stored_eof = ");
  struct stat st;
  if (in.minor == H5E_TRUNCATED && stored && stat(path, &st) == 0)
    return px_error_set(err, PX_EINPUT,
                        "%s: the file is truncated: %lld bytes of the %lld its superblock "
                        "records (an interrupted copy or a full disk?)",
                        path, (long long)st.st_size, strtoll(stored + 13, NULL, 10));
  return px_error_set(err, PX_EINPUT, "%s: cannot open (%s)", path,
                      in.desc[0] ? in.desc : "unknown HDF5 error");
}

/* A file-access list for the MPI-IO driver on comm. */
static hid_t px_h5_fapl_mpio(MPI_Comm comm) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
    H5Pclose(fapl);
    return H5I_INVALID_HID;
  }
  return fapl;
}

px_status px_h5_open_read(const char *path, MPI_Comm comm, hid_t *file, px_error *err) {
  px_h5_quiet();
  *file = H5I_INVALID_HID;
  if (!px_fs_exists(path)) return px_error_set(err, PX_EINPUT, "%s: no such file", path);
  htri_t is_hdf5 = px_h5_is_hdf5(path);
  if (is_hdf5 < 0) return px_h5_unreadable(path, err);
  if (is_hdf5 == 0) return px_error_set(err, PX_EINPUT, "%s: not an HDF5 file", path);
  hid_t fapl = comm == MPI_COMM_NULL ? H5P_DEFAULT : px_h5_fapl_mpio(comm);
  if (fapl < 0) return px_error_set(err, PX_ERUN, "%s: cannot set up MPI-IO", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  herr_t released = fapl == H5P_DEFAULT ? 0 : H5Pclose(fapl);
  if (f < 0) return px_h5_open_failure(path, err);
  if (released < 0) {
    H5Fclose(f); /* already failing; collective like the open, as every rank's close is */
    return px_error_set(err, PX_ERUN, "%s: cannot release the file-access property list", path);
  }
  *file = f;
  return PX_OK;
}

typedef struct px_visit_fn {
  herr_t (*fn)(hid_t, const char *, void *);
  void *data;
} px_visit_fn;

#if H5_VERSION_GE(1, 12, 0)
static herr_t px_visit_cb(hid_t loc, const char *name, const H5O_info2_t *info, void *data) {
#else
static herr_t px_visit_cb(hid_t loc, const char *name, const H5O_info_t *info, void *data) {
#endif
  const px_visit_fn *v = data;
  return info->type == H5O_TYPE_DATASET ? v->fn(loc, name, v->data) : 0;
}

herr_t px_h5_visit_datasets(hid_t loc, herr_t (*fn)(hid_t loc, const char *name, void *data),
                            void *data) {
  px_visit_fn v = {fn, data};
#if H5_VERSION_GE(1, 12, 0)
  return H5Ovisit3(loc, H5_INDEX_NAME, H5_ITER_INC, px_visit_cb, &v, H5O_INFO_BASIC);
#else
  return H5Ovisit2(loc, H5_INDEX_NAME, H5_ITER_INC, px_visit_cb, &v, H5O_INFO_BASIC);
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Groups and attributes
 * ------------------------------------------------------------------------------------------- */

hid_t px_h5_gcpl(void) {
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
  if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) < 0) {
    H5Pclose(gcpl);
    return H5I_INVALID_HID;
  }
  return gcpl;
}

/* Writes a scalar attribute, replacing one of that name: an existing one that cannot be
 * removed, or a lookup that fails, is a failure (HDF5's error stack says which). */
static herr_t px_h5_attr_write(hid_t loc, const char *name, hid_t type, const void *value) {
  htri_t exists = H5Aexists(loc, name);
  if (exists < 0 || (exists > 0 && H5Adelete(loc, name) < 0)) return -1;
  hid_t space = H5Screate(H5S_SCALAR);
  if (space < 0) return -1;
  hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = attr < 0 ? -1 : H5Awrite(attr, type, value);
  if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
  if (H5Sclose(space) < 0) rc = -1;
  return rc < 0 ? -1 : 0;
}

herr_t px_h5_attr_write_str(hid_t loc, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  if (type < 0) return -1;
  herr_t rc = -1;
  if (H5Tset_size(type, strlen(value) + 1) >= 0 && H5Tset_strpad(type, H5T_STR_NULLTERM) >= 0 &&
      H5Tset_cset(type, H5T_CSET_UTF8) >= 0)
    rc = px_h5_attr_write(loc, name, type, value);
  if (H5Tclose(type) < 0) rc = -1;
  return rc;
}

herr_t px_h5_attr_write_i64(hid_t loc, const char *name, int64_t value) {
  return px_h5_attr_write(loc, name, H5T_NATIVE_INT64, &value);
}

herr_t px_h5_attr_write_f64(hid_t loc, const char *name, double value) {
  return px_h5_attr_write(loc, name, H5T_NATIVE_DOUBLE, &value);
}

/* An attribute open with its type and dataspace (each H5I_INVALID_HID when it could not be had). */
typedef struct px_h5_attr {
  hid_t attr, type, space;
} px_h5_attr;

/* Opens attribute name of loc into *a; PX_EINPUT naming `where` when it is missing. */
static px_status px_h5_attr_open(hid_t loc, const char *name, px_h5_attr *a, const char *where,
                                 px_error *err) {
  *a = (px_h5_attr){H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID};
  if (H5Aexists(loc, name) <= 0)
    return px_error_set(err, PX_EINPUT, "%s: attribute '%s' is missing", where, name);
  a->attr = H5Aopen(loc, name, H5P_DEFAULT);
  a->type = a->attr < 0 ? H5I_INVALID_HID : H5Aget_type(a->attr);
  a->space = a->attr < 0 ? H5I_INVALID_HID : H5Aget_space(a->attr);
  return PX_OK;
}

static void px_h5_attr_close(px_h5_attr *a) {
  if (a->space >= 0) H5Sclose(a->space);
  if (a->type >= 0) H5Tclose(a->type);
  if (a->attr >= 0) H5Aclose(a->attr);
}

px_status px_h5_attr_read_text(hid_t loc, const char *name, char **text, const char *where,
                               px_error *err) {
  *text = NULL;
  px_h5_attr a;
  PX_TRY(px_h5_attr_open(loc, name, &a, where, err));
  px_status st = PX_OK;
  if (a.type < 0 || a.space < 0 || H5Tget_class(a.type) != H5T_STRING ||
      H5Tis_variable_str(a.type) > 0 || H5Sget_simple_extent_npoints(a.space) != 1) {
    st = px_error_set(err, PX_EINPUT, "%s: attribute '%s' is not a fixed-length string", where,
                      name);
  } else {
    size_t size = H5Tget_size(a.type);
    hid_t mem = H5Tcopy(a.type);
    *text = px_malloc(size + 1);
    if (mem < 0 || H5Aread(a.attr, mem, *text) < 0) {
      st = px_error_set(err, PX_EINPUT, "%s: cannot read attribute '%s'", where, name);
      free(*text);
      *text = NULL;
    } else {
      (*text)[size] = '\0';
    }
    if (mem >= 0) H5Tclose(mem);
  }
  px_h5_attr_close(&a);
  return st;
}

px_status px_h5_attr_read_str(hid_t loc, const char *name, char *buf, size_t n, const char *where,
                              px_error *err) {
  char *text;
  PX_TRY(px_h5_attr_read_text(loc, name, &text, where, err));
  snprintf(buf, n, "%s", text);
  free(text);
  return PX_OK;
}

/* A scalar numeric attribute of the given class, read as mem_type. */
static px_status px_h5_attr_read_num(hid_t loc, const char *name, H5T_class_t cls, hid_t mem_type,
                                     void *value, const char *what, const char *where,
                                     px_error *err) {
  px_h5_attr a;
  PX_TRY(px_h5_attr_open(loc, name, &a, where, err));
  H5T_class_t have = a.type < 0 ? H5T_NO_CLASS : H5Tget_class(a.type);
  int ok_class = have == cls || (cls == H5T_FLOAT && have == H5T_INTEGER);
  px_status st = PX_OK;
  if (a.type < 0 || a.space < 0 || !ok_class || H5Sget_simple_extent_npoints(a.space) != 1 ||
      H5Aread(a.attr, mem_type, value) < 0)
    st = px_error_set(err, PX_EINPUT, "%s: attribute '%s' is not %s", where, name, what);
  px_h5_attr_close(&a);
  return st;
}

px_status px_h5_attr_read_i64(hid_t loc, const char *name, int64_t *value, const char *where,
                              px_error *err) {
  return px_h5_attr_read_num(loc, name, H5T_INTEGER, H5T_NATIVE_INT64, value, "an integer", where,
                             err);
}

px_status px_h5_attr_read_f64(hid_t loc, const char *name, double *value, const char *where,
                              px_error *err) {
  return px_h5_attr_read_num(loc, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value, "a number", where,
                             err);
}

/* ---------------------------------------------------------------------------------------------
 * Datasets
 * ------------------------------------------------------------------------------------------- */

/* The creation list of px_h5_create_dataset's datasets; H5I_INVALID_HID on failure. */
static hid_t px_h5_dcpl_checksummed(int rank, const hsize_t *dims, hsize_t max_chunk_elems) {
  if (rank < 1 || rank > H5S_MAX_RANK) return H5I_INVALID_HID;
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0) return H5I_INVALID_HID;
  hsize_t chunk[H5S_MAX_RANK];
  hsize_t inner = 1;
  for (int i = 1; i < rank; i++) chunk[i] = dims[i] > 0 ? dims[i] : 1, inner *= chunk[i];
  hsize_t rows = max_chunk_elems / (inner ? inner : 1);
  if (rows < 1) rows = 1;
  chunk[0] = dims[0] < rows ? (dims[0] > 0 ? dims[0] : 1) : rows;
  if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
      H5Pset_obj_track_times(dcpl, 0) < 0) {
    H5Pclose(dcpl);
    return H5I_INVALID_HID;
  }
  return dcpl;
}

hid_t px_h5_create_dataset(hid_t loc, const char *name, hid_t file_type, int ndim,
                           const hsize_t *dims, hsize_t max_chunk, hsize_t *chunk) {
  hid_t space = H5Screate_simple(ndim, dims, NULL);
  hid_t dcpl = px_h5_dcpl_checksummed(ndim, dims, max_chunk);
  hid_t dset = space < 0 || dcpl < 0
                   ? H5I_INVALID_HID
                   : H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  int ok = dset >= 0 && (!chunk || H5Pget_chunk(dcpl, ndim, chunk) == ndim);
  hid_t reason = px_h5_keep_reason(!ok);
  if (dcpl >= 0 && H5Pclose(dcpl) < 0) ok = 0;
  if (space >= 0 && H5Sclose(space) < 0) ok = 0;
  if (!ok && dset >= 0) {
    if (reason < 0) reason = px_h5_keep_reason(1);
    H5Dclose(dset);
    dset = H5I_INVALID_HID;
  }
  px_h5_put_back(reason);
  return dset;
}

herr_t px_h5_write_1d(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *data, hsize_t n) {
  hsize_t dims[1] = {n};
  hid_t dset = px_h5_create_dataset(loc, name, file_type, 1, dims, (hsize_t)1 << 16, NULL);
  herr_t rc = dset < 0 ? -1 : 0;
  if (rc == 0 && n > 0) rc = H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (dset >= 0 && H5Dclose(dset) < 0) rc = -1;
  return rc < 0 ? -1 : 0;
}

/* "2,3,4": the extents dims[0..nd) into buf. */
static const char *px_h5_shape(char *buf, size_t n, const hsize_t *dims, int nd) {
  buf[0] = '\0';
  for (int i = 0, at = 0; i < nd && (size_t)at < n; i++)
    at += snprintf(buf + at, n - (size_t)at, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
  return buf;
}

/* px_h5_open_dataset's checks of a dataset's type and dataspace. */
static px_status px_h5_check_dataset(hid_t type, hid_t space, const char *name, H5T_class_t cls,
                                     size_t elem, int ndim, const hsize_t *dims, const char *where,
                                     px_error *err) {
  size_t size = type < 0 ? 0 : H5Tget_size(type);
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  if (type < 0 || H5Tget_class(type) != cls)
    return px_error_set(err, PX_EINPUT, "%s: dataset '%s' is not of %s type", where, name,
                        cls == H5T_FLOAT ? "floating-point" : "integer");
  if (elem > 0 && size != elem)
    return px_error_set(err, PX_EINPUT, "%s: dataset '%s' has %zu-byte elements, expected %zu",
                        where, name, size, elem);
  if (!dims)
    return nd == 1 ? PX_OK
                   : px_error_set(err, PX_EINPUT, "%s: dataset '%s' is not one-dimensional", where,
                                  name);
  hsize_t have[H5S_MAX_RANK] = {0};
  if (nd == ndim && H5Sget_simple_extent_dims(space, have, NULL) >= 0 &&
      memcmp(have, dims, (size_t)ndim * sizeof *dims) == 0)
    return PX_OK;
  char got[256], want[256];
  return px_error_set(err, PX_EINPUT, "%s: dataset '%s' has shape [%s], expected [%s]", where, name,
                      px_h5_shape(got, sizeof got, have, nd),
                      px_h5_shape(want, sizeof want, dims, ndim));
}

px_status px_h5_open_dataset(hid_t loc, const char *name, H5T_class_t cls, size_t elem, int ndim,
                             const hsize_t *dims, hid_t *dset, const char *where, px_error *err) {
  PX_REQUIRE(ndim >= 1 && ndim <= H5S_MAX_RANK && (dims || ndim == 1),
             "px_h5_open_dataset: ndim %d", ndim);
  *dset = H5I_INVALID_HID;
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
    return px_error_set(err, PX_EINPUT, "%s: dataset '%s' is missing", where, name);
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return px_error_set(err, PX_EINPUT, "%s: '%s' is not a dataset", where, name);
  hid_t type = H5Dget_type(d), space = H5Dget_space(d);
  px_status st = px_h5_check_dataset(type, space, name, cls, elem, ndim, dims, where, err);
  if (((type >= 0 && H5Tclose(type) < 0) || (space >= 0 && H5Sclose(space) < 0)) && st == PX_OK)
    st = px_error_set(err, PX_ERUN, "%s: dataset '%s': closing its type or space failed", where,
                      name);
  if (st != PX_OK)
    H5Dclose(d); /* already failing: the first error is the one to report */
  else
    *dset = d;
  return st;
}

px_status px_h5_open_int_1d(hid_t loc, const char *name, hid_t *dset, hsize_t *n, const char *where,
                            px_error *err) {
  *n = 0;
  PX_TRY(px_h5_open_dataset(loc, name, H5T_INTEGER, 0, 1, NULL, dset, where, err));
  hid_t space = H5Dget_space(*dset);
  if (space >= 0 && H5Sget_simple_extent_dims(space, n, NULL) >= 0) {
    H5Sclose(space);
    return PX_OK;
  }
  char reason[256];
  px_status st = px_error_set(err, PX_EINPUT, "%s: cannot read the length of dataset '%s' (%s)",
                              where, name, px_h5_reason(reason, sizeof reason));
  if (space >= 0) H5Sclose(space);
  H5Dclose(*dset);
  *dset = H5I_INVALID_HID, *n = 0;
  return st;
}

px_status px_h5_read_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, float *out,
                         const char *where, px_error *err) {
  hid_t d;
  PX_TRY(px_h5_open_dataset(loc, name, H5T_FLOAT, 0, ndim, dims, &d, where, err));
  px_status st = PX_OK;
  if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    char reason[256];
    st = px_error_set(err, PX_EINPUT, "%s: cannot read dataset '%s' (%s)", where, name,
                      px_h5_reason(reason, sizeof reason));
  }
  H5Dclose(d);
  return st;
}

herr_t px_h5_read_rows(hid_t dset, hid_t mem_type, hsize_t first, hsize_t n, void *out) {
  hid_t fspace = H5Dget_space(dset), mspace = H5I_INVALID_HID;
  int nd = fspace < 0 ? -1 : H5Sget_simple_extent_ndims(fspace);
  hsize_t cnt[H5S_MAX_RANK], mdims[H5S_MAX_RANK], off[H5S_MAX_RANK] = {0};
  herr_t rc = nd < 0 || H5Sget_simple_extent_dims(fspace, cnt, NULL) < 0 ? -1 : 0;
  if (rc == 0 && nd > 0) {
    memcpy(mdims, cnt, (size_t)nd * sizeof *cnt);
    off[0] = first, cnt[0] = n, mdims[0] = n > 0 ? n : 1;
    mspace = H5Screate_simple(nd, mdims, NULL);
    if (mspace < 0)
      rc = -1;
    else if (n == 0)
      rc = H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0 ? -1 : 0;
    else
      rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL);
  }
  if (rc >= 0)
    rc = nd > 0 ? H5Dread(dset, mem_type, mspace, fspace, H5P_DEFAULT, out)
                : H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  hid_t reason = px_h5_keep_reason(rc < 0);
  if (mspace >= 0 && H5Sclose(mspace) < 0) rc = -1;
  if (fspace >= 0 && H5Sclose(fspace) < 0) rc = -1;
  px_h5_put_back(reason);
  return rc < 0 ? -1 : 0;
}
