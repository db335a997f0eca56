/*
 * test_h5fail.h — HDF5 calls that do not fail on a healthy file (closing an object or a property
 * list, a dataspace's dimensions, an attribute lookup), made to fail on demand, so that a test
 * can show what io/ does when they do.
 *
 * This test binary's definitions of the functions below take the place of libhdf5's for the code
 * linked into it (proxima_lib is a static library). Each passes the call on to the library
 * (dlsym RTLD_NEXT: the including file defines _GNU_SOURCE first) unless it is armed:
 * px_h5fail_arm(PX_H5FAIL_FCLOSE, 2) makes the second H5Fclose from now fail, once. A failing
 * close still closes (the object is released, as after a flush that failed); a failing lookup
 * returns -1 and fills nothing. Either leaves "injected by test_h5fail.h" as the innermost
 * message on HDF5's error stack. Include this header in one file of a test binary.
 */
#ifndef PROXIMA_TEST_H5FAIL_H
#define PROXIMA_TEST_H5FAIL_H

#include <dlfcn.h>
#include <hdf5.h>
#include <stdlib.h>

typedef enum px_h5fail_call {
  PX_H5FAIL_AEXISTS,
  PX_H5FAIL_EXTENT_DIMS,
  PX_H5FAIL_PCLOSE,
  PX_H5FAIL_FCLOSE,
  PX_H5FAIL_N
} px_h5fail_call;

/* Calls of each kind until the armed one (1: the next); 0: not armed. */
static int px_h5fail_countdown[PX_H5FAIL_N];

static inline void px_h5fail_arm(px_h5fail_call call, int nth) { px_h5fail_countdown[call] = nth; }

/* Whether this call of the kind is the armed one (then disarmed); pushes the message. */
static int px_h5fail_now(px_h5fail_call call) {
  if (px_h5fail_countdown[call] <= 0 || --px_h5fail_countdown[call] > 0) return 0;
  H5Eclear2(H5E_DEFAULT);
  H5Epush2(H5E_DEFAULT, __FILE__, "px_h5fail_now", __LINE__, H5E_ERR_CLS, H5E_ARGS, H5E_CANTINIT,
           "injected by test_h5fail.h");
  return 1;
}

/* The library's own function `name`, found once. */
static void *px_h5fail_real(const char *name) {
  void *fn = dlsym(RTLD_NEXT, name);
  if (!fn) abort();
  return fn;
}

htri_t H5Aexists(hid_t obj_id, const char *attr_name) {
  static htri_t (*real)(hid_t, const char *);
  if (!real) *(void **)&real = px_h5fail_real("H5Aexists");
  return px_h5fail_now(PX_H5FAIL_AEXISTS) ? -1 : real(obj_id, attr_name);
}

int H5Sget_simple_extent_dims(hid_t space_id, hsize_t dims[], hsize_t maxdims[]) {
  static int (*real)(hid_t, hsize_t[], hsize_t[]);
  if (!real) *(void **)&real = px_h5fail_real("H5Sget_simple_extent_dims");
  return px_h5fail_now(PX_H5FAIL_EXTENT_DIMS) ? -1 : real(space_id, dims, maxdims);
}

herr_t H5Pclose(hid_t plist_id) {
  static herr_t (*real)(hid_t);
  if (!real) *(void **)&real = px_h5fail_real("H5Pclose");
  herr_t rc = real(plist_id);
  return px_h5fail_now(PX_H5FAIL_PCLOSE) ? -1 : rc;
}

herr_t H5Fclose(hid_t file_id) {
  static herr_t (*real)(hid_t);
  if (!real) *(void **)&real = px_h5fail_real("H5Fclose");
  herr_t rc = real(file_id);
  return px_h5fail_now(PX_H5FAIL_FCLOSE) ? -1 : rc;
}

#endif
