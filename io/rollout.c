/*
 * rollout.c — the rollout buffer file (layout in rollout.h): every rank writes its rows of the
 * global datasets in one collective transfer each (parallel HDF5's ritual: MPI-IO file access,
 * global dataspaces, a hyperslab per rank, H5FD_MPIO_COLLECTIVE, which the Fletcher-32 filtered
 * datasets require), under a temporary name that rank 0 publishes after the collective close.
 * Reading is per rank, independent, and checks everything.
 *
 * Coordination (the status every rank agrees on, the temporary name, "the file is there") goes
 * through px_comm on the run's communicator; with MPI_COMM_SELF there is nothing to coordinate.
 * HDF5's collective calls (create, attributes, datasets, close) are made by every rank with the
 * same arguments, so an HDF5 failure in them happens on every rank alike; the checks that can
 * differ between ranks (the rows each passes) are agreed on before the file is created.
 */
#include "proxima/rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

#define PX_ROLLOUT_FORMAT "proxima-rollouts"
#define PX_ROLLOUT_VERSION 1
#define PX_ROLLOUT_CHUNK ((hsize_t)1 << 16) /* elements per chunk, at most */
#define PX_ROLLOUT_MAX_POSITIONS ((int64_t)1 << 24)

/* The datasets, in file order: element type and columns (1: [N], R: [N,R], P+R: [N,P+R]). */
typedef enum px_elem { PX_E_I32, PX_E_F32, PX_E_U8 } px_elem;
typedef enum px_cols { PX_C_ONE, PX_C_R, PX_C_PR } px_cols;
typedef struct px_field {
  const char *name;
  px_elem elem;
  px_cols cols;
} px_field;

static const px_field px_fields[] = {
    {"tokens", PX_E_I32, PX_C_PR},        {"prompt_len", PX_E_I32, PX_C_ONE},
    {"response_len", PX_E_I32, PX_C_ONE}, {"logprobs", PX_E_F32, PX_C_R},
    {"ref_logprobs", PX_E_F32, PX_C_R},   {"values", PX_E_F32, PX_C_R},
    {"rewards", PX_E_F32, PX_C_R},        {"advantages", PX_E_F32, PX_C_R},
    {"returns", PX_E_F32, PX_C_R},        {"mask", PX_E_U8, PX_C_R},
    {"score", PX_E_F32, PX_C_ONE}};
#define PX_N_FIELDS ((int)(sizeof px_fields / sizeof px_fields[0]))

/* The member of r that holds field f. */
static void **px_field_ptr(px_rollout *r, int f) {
  switch (f) {
  case 0: return (void **)&r->tokens;
  case 1: return (void **)&r->prompt_len;
  case 2: return (void **)&r->response_len;
  case 3: return (void **)&r->logprobs;
  case 4: return (void **)&r->ref_logprobs;
  case 5: return (void **)&r->values;
  case 6: return (void **)&r->rewards;
  case 7: return (void **)&r->advantages;
  case 8: return (void **)&r->returns;
  case 9: return (void **)&r->mask;
  default: return (void **)&r->score;
  }
}

static hsize_t px_field_cols(const px_field *f, int64_t P, int64_t R) {
  return f->cols == PX_C_ONE ? 1 : f->cols == PX_C_R ? (hsize_t)R : (hsize_t)(P + R);
}
static size_t px_elem_size(px_elem e) { return e == PX_E_U8 ? 1 : 4; }
static hid_t px_elem_mem(px_elem e) {
  return e == PX_E_I32 ? H5T_NATIVE_INT32 : e == PX_E_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
}
static hid_t px_elem_file(px_elem e) {
  return e == PX_E_I32 ? H5T_STD_I32LE : e == PX_E_F32 ? H5T_IEEE_F32LE : H5T_STD_U8LE;
}

static const char *px_kl_name(px_rl_kl_kind k) { return k == PX_RL_KL_K3 ? "k3" : "k1"; }

/* ------------------------------------------------------------------------------------------- */

/* The checks one rank can make on its own rows; the first problem goes into err. */
static px_status px_check_rows(const char *path, const px_rollout *r, const px_rollout_attrs *a,
                               px_error *err) {
  if (r->n < 0 || r->first < 0 || r->n_global < 0 || r->first + r->n > r->n_global)
    return px_error_set(err, PX_EINPUT,
                        "%s: rows [%lld, %lld) do not lie within the %lld rows of the batch", path,
                        (long long)r->first, (long long)(r->first + r->n), (long long)r->n_global);
  if (r->P < 1 || r->R < 1 || r->P > PX_ROLLOUT_MAX_POSITIONS || r->R > PX_ROLLOUT_MAX_POSITIONS)
    return px_error_set(
        err, PX_EINPUT, "%s: %lld prompt and %lld response positions (each must be 1 to %lld)",
        path, (long long)r->P, (long long)r->R, (long long)PX_ROLLOUT_MAX_POSITIONS);
  if (a->kl_kind != PX_RL_KL_K1 && a->kl_kind != PX_RL_KL_K3)
    return px_error_set(err, PX_EINPUT, "%s: unknown KL estimator %d", path, (int)a->kl_kind);
  if (!(a->whiten_std > 0) || !isfinite(a->whiten_std) || !isfinite(a->whiten_mean))
    return px_error_set(err, PX_EINPUT, "%s: whitening statistics mean %g, std %g are unusable",
                        path, a->whiten_mean, a->whiten_std);
  if (r->n == 0) return PX_OK;
  px_rollout *m = (px_rollout *)r;
  for (int f = 0; f < PX_N_FIELDS; f++)
    if (!*px_field_ptr(m, f))
      return px_error_set(err, PX_EINPUT, "%s: no data for '%s'", path, px_fields[f].name);
  for (int64_t i = 0; i < r->n; i++) {
    int64_t g = r->first + i, pl = r->prompt_len[i], rl = r->response_len[i];
    if (pl < 0 || pl > r->P || rl < 0 || rl > r->R)
      return px_error_set(err, PX_EINPUT,
                          "%s: row %lld has prompt length %lld and response length %lld "
                          "(at most %lld and %lld)",
                          path, (long long)g, (long long)pl, (long long)rl, (long long)r->P,
                          (long long)r->R);
    for (int64_t t = 0; t < r->R; t++)
      if (r->mask[i * r->R + t] != (t < rl))
        return px_error_set(err, PX_EINPUT,
                            "%s: row %lld: mask at position %lld is %d, but the response has "
                            "%lld tokens",
                            path, (long long)g, (long long)t, (int)r->mask[i * r->R + t],
                            (long long)rl);
  }
  return PX_OK;
}

/* Collective: whether the ranks' rows tile [0, n_global) with one n_global, P, R and attrs. */
static px_status px_check_ranks(const char *path, const px_rollout *r, const px_rollout_attrs *a,
                                px_error *err) {
  int size = px_comm_size(), rank = px_comm_rank();
  size_t n = 2 * (size_t)size + 3;
  int64_t *v = px_calloc(n, sizeof *v);
  v[2 * rank] = r->first, v[2 * rank + 1] = r->n;
  v[2 * size] = r->n_global, v[2 * size + 1] = r->P, v[2 * size + 2] = r->R;
  px_comm_allreduce_sum_i64(v, n);
  px_status st = PX_OK;
  if (v[2 * size] != size * r->n_global || v[2 * size + 1] != size * r->P ||
      v[2 * size + 2] != size * r->R)
    st = px_error_set(err, PX_EINPUT,
                      "%s: the ranks disagree on the rows, prompt or response "
                      "positions of the batch",
                      path);
  /* Walk the ranges in order of their first row: each must start where the last ended. */
  int64_t next = 0;
  for (int k = 0; k < size && st == PX_OK; k++) {
    int found = -1;
    for (int q = 0; q < size; q++)
      if (v[2 * q + 1] > 0 && v[2 * q] == next) found = q;
    if (found < 0) break;
    next += v[2 * found + 1];
  }
  if (st == PX_OK && next != r->n_global)
    st = px_error_set(err, PX_EINPUT,
                      "%s: the ranks' rows do not cover the batch's %lld rows exactly once "
                      "(they run contiguously only up to row %lld)",
                      path, (long long)r->n_global, (long long)next);
  free(v);
  /* Attributes are metadata that every rank must write alike: compare with rank 0's. */
  px_rollout_attrs root = *a;
  px_comm_bcast(&root, sizeof root, 0);
  if (st == PX_OK && (root.iteration != a->iteration || root.kl_kind != a->kl_kind ||
                      root.whiten_shift_mean != a->whiten_shift_mean ||
                      memcmp(&root.beta, &a->beta, sizeof a->beta) ||
                      memcmp(&root.gamma, &a->gamma, sizeof a->gamma) ||
                      memcmp(&root.lambda, &a->lambda, sizeof a->lambda) ||
                      memcmp(&root.kl_clamp, &a->kl_clamp, sizeof a->kl_clamp) ||
                      memcmp(&root.no_eos_penalty, &a->no_eos_penalty, sizeof a->no_eos_penalty) ||
                      memcmp(&root.whiten_mean, &a->whiten_mean, sizeof a->whiten_mean) ||
                      memcmp(&root.whiten_std, &a->whiten_std, sizeof a->whiten_std) ||
                      memcmp(&root.whiten_eps, &a->whiten_eps, sizeof a->whiten_eps)))
    st = px_error_set(err, PX_EINPUT, "%s: rank %d's attributes differ from rank 0's", path, rank);
  return st;
}

static px_status px_rollout_fail(px_error *err, const char *path, const char *what) {
  char reason[256];
  px_h5_reason(reason, sizeof reason);
  return px_error_set(err, PX_ERUN, "cannot write %s: %s%s%s", path, what, reason[0] ? ": " : "",
                      reason);
}

static herr_t px_write_attrs(hid_t file, const px_rollout *r, const px_rollout_attrs *a) {
  herr_t rc = 0;
  rc |= px_h5_attr_write_str(file, "format", PX_ROLLOUT_FORMAT);
  rc |= px_h5_attr_write_i64(file, "format_version", PX_ROLLOUT_VERSION);
  rc |= px_h5_attr_write_i64(file, "n_rows", r->n_global);
  rc |= px_h5_attr_write_i64(file, "prompt_positions", r->P);
  rc |= px_h5_attr_write_i64(file, "response_positions", r->R);
  rc |= px_h5_attr_write_i64(file, "iteration", a->iteration);
  rc |= px_h5_attr_write_f64(file, "beta", a->beta);
  rc |= px_h5_attr_write_f64(file, "gamma", a->gamma);
  rc |= px_h5_attr_write_f64(file, "lambda", a->lambda);
  rc |= px_h5_attr_write_str(file, "kl_estimator", px_kl_name(a->kl_kind));
  rc |= px_h5_attr_write_f64(file, "kl_clamp", a->kl_clamp);
  rc |= px_h5_attr_write_f64(file, "no_eos_penalty", a->no_eos_penalty);
  rc |= px_h5_attr_write_f64(file, "whiten_mean", a->whiten_mean);
  rc |= px_h5_attr_write_f64(file, "whiten_std", a->whiten_std);
  rc |= px_h5_attr_write_f64(file, "whiten_eps", a->whiten_eps);
  rc |= px_h5_attr_write_i64(file, "whiten_shift_mean", a->whiten_shift_mean ? 1 : 0);
  rc |= px_h5_attr_write_i64(file, "pad_id", PX_TOK_PAD);
  rc |= px_h5_attr_write_i64(file, "bos_id", PX_TOK_BOS);
  rc |= px_h5_attr_write_i64(file, "eos_id", PX_TOK_EOS);
  return rc < 0 ? -1 : 0;
}

/* Creates dataset f of the global shape and writes this rank's rows into it (collective). */
static herr_t px_write_field(hid_t file, hid_t dxpl, const px_rollout *r, int f) {
  const px_field *fd = &px_fields[f];
  hsize_t dims[2] = {(hsize_t)r->n_global, px_field_cols(fd, r->P, r->R)};
  return px_h5_write_rows(file, fd->name, px_elem_file(fd->elem), px_elem_mem(fd->elem),
                          fd->cols == PX_C_ONE ? 1 : 2, dims, PX_ROLLOUT_CHUNK, (hsize_t)r->first,
                          (hsize_t)r->n, r->n > 0 ? *px_field_ptr((px_rollout *)r, f) : NULL, dxpl);
}

/* Creates the file at tmp over comm and writes everything; collective. */
static px_status px_write_file(const char *tmp, const char *path, MPI_Comm comm,
                               const px_rollout *r, const px_rollout_attrs *a, int *created,
                               px_error *err) {
  *created = 0;
  hid_t fapl = px_h5_fapl_mpio(comm);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  px_status st = PX_OK;
  if (fapl < 0 || fcpl < 0 || dxpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0 ||
      H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
    st = px_rollout_fail(err, path, "setting up the property lists failed");
  hid_t file = st == PX_OK ? H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl) : H5I_INVALID_HID;
  if (st == PX_OK && file < 0) st = px_rollout_fail(err, path, "cannot create the file");
  if (file >= 0) {
    *created = 1;
    if (px_write_attrs(file, r, a) < 0) st = px_rollout_fail(err, path, "writing attributes");
    for (int f = 0; f < PX_N_FIELDS && st == PX_OK; f++)
      if (px_write_field(file, dxpl, r, f) < 0) {
        char what[96];
        snprintf(what, sizeof what, "writing dataset '%s' failed", px_fields[f].name);
        st = px_rollout_fail(err, path, what);
      }
    if (H5Fclose(file) < 0 && st == PX_OK) st = px_rollout_fail(err, path, "closing failed");
  }
  if (dxpl >= 0 && H5Pclose(dxpl) < 0 && st == PX_OK) st = px_rollout_fail(err, path, "H5Pclose");
  if (fcpl >= 0 && H5Pclose(fcpl) < 0 && st == PX_OK) st = px_rollout_fail(err, path, "H5Pclose");
  if (fapl >= 0 && H5Pclose(fapl) < 0 && st == PX_OK) st = px_rollout_fail(err, path, "H5Pclose");
  return st;
}

px_status px_rollout_write(const char *path, MPI_Comm comm, const px_rollout *rows,
                           const px_rollout_attrs *attrs, px_error *err) {
  PX_REQUIRE(rows && attrs && path, "px_rollout_write: rows, attrs and path are required");
  int shared = comm != MPI_COMM_SELF;
  PX_REQUIRE(!shared || comm == px_comm_mpi(),
             "px_rollout_write: comm must be px_comm_mpi() or MPI_COMM_SELF");
  int root = !shared || px_comm_rank() == 0;
  px_h5_quiet();

  px_status st = px_check_rows(path, rows, attrs, err);
  if (shared) {
    px_error other = {""};
    px_status all = px_check_ranks(path, rows, attrs, &other);
    if (st == PX_OK && all != PX_OK) st = px_error_set(err, all, "%s", other.msg);
    PX_TRY(px_comm_agree(st, err));
  } else {
    PX_TRY(st);
    if (rows->first != 0 || rows->n != rows->n_global)
      return px_error_set(err, PX_EINPUT,
                          "%s: a single process writes all %lld rows, but has rows [%lld, %lld)",
                          path, (long long)rows->n_global, (long long)rows->first,
                          (long long)(rows->first + rows->n));
  }

  /* Every rank must open the same temporary file: rank 0's name (with its PID) for all. */
  char tmp[4200];
  px_fs_temp_name(tmp, sizeof tmp, path);
  if (shared) px_comm_bcast(tmp, sizeof tmp, 0);

  int created = 0;
  st = px_write_file(tmp, path, comm, rows, attrs, &created, err);
  if (shared) st = px_comm_agree(st, err); /* after the collective close: all data is down */
  if (st != PX_OK) {
    if (root && created) remove(tmp);
    return st;
  }
  st = root ? px_fs_publish(tmp, path, err) : PX_OK;
  /* No rank returns before the file has its final name. */
  return shared ? px_comm_agree(st, err) : st;
}

/* ------------------------------------------------------------------------------------------- */

/* Opens dataset f and checks its type class and global shape. */
static px_status px_open_field(hid_t file, const char *path, int f, int64_t N, int64_t P, int64_t R,
                               hid_t *out, px_error *err) {
  const px_field *fd = &px_fields[f];
  *out = H5I_INVALID_HID;
  if (H5Lexists(file, fd->name, H5P_DEFAULT) <= 0)
    return px_error_set(err, PX_EINPUT, "%s: dataset '%s' is missing", path, fd->name);
  hid_t d = H5Dopen2(file, fd->name, H5P_DEFAULT);
  if (d < 0) return px_error_set(err, PX_EINPUT, "%s: '%s' is not a dataset", path, fd->name);
  hid_t type = H5Dget_type(d), space = H5Dget_space(d);
  int ndim = fd->cols == PX_C_ONE ? 1 : 2;
  hsize_t want[2] = {(hsize_t)N, px_field_cols(fd, P, R)}, have[2] = {0, 0};
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
  size_t tsize = type < 0 ? 0 : H5Tget_size(type);
  px_status st = PX_OK;
  if (fd->elem == PX_E_F32 ? cls != H5T_FLOAT : cls != H5T_INTEGER)
    st = px_error_set(err, PX_EINPUT, "%s: dataset '%s' is not of %s type", path, fd->name,
                      fd->elem == PX_E_F32 ? "floating-point" : "integer");
  else if (tsize != px_elem_size(fd->elem))
    st = px_error_set(err, PX_EINPUT, "%s: dataset '%s' has %zu-byte elements, expected %zu", path,
                      fd->name, tsize, px_elem_size(fd->elem));
  else if (nd != ndim || H5Sget_simple_extent_dims(space, have, NULL) < 0 || have[0] != want[0] ||
           (ndim == 2 && have[1] != want[1]))
    st = px_error_set(err, PX_EINPUT,
                      "%s: dataset '%s' has %d dimensions [%llu, %llu], expected [%llu%s%llu]",
                      path, fd->name, nd, (unsigned long long)have[0], (unsigned long long)have[1],
                      (unsigned long long)want[0], ndim == 2 ? ", " : "]",
                      ndim == 2 ? (unsigned long long)want[1] : 0ULL);
  if (((type >= 0 && H5Tclose(type) < 0) || (space >= 0 && H5Sclose(space) < 0)) && st == PX_OK)
    st = px_error_set(err, PX_ERUN, "%s: dataset '%s': closing its type or space failed", path,
                      fd->name);
  if (st != PX_OK)
    H5Dclose(d); /* already failing: the first error is the one to report */
  else
    *out = d;
  return st;
}

/* Reads rows [lo, lo + n) of an open dataset of `cols` columns (independent transfer). */
static herr_t px_read_rows(hid_t dset, hid_t mem_type, int ndim, hsize_t cols, hsize_t lo,
                           hsize_t n, void *out) {
  hid_t fspace = H5Dget_space(dset);
  hsize_t mdims[2] = {n > 0 ? n : 1, cols}, off[2] = {lo, 0}, cnt[2] = {n, cols};
  hid_t mspace = H5Screate_simple(ndim, mdims, NULL);
  herr_t rc = fspace < 0 || mspace < 0 ? -1 : 0;
  if (rc == 0 && n == 0)
    rc = H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0 ? -1 : 0;
  else if (rc == 0)
    rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL);
  if (rc >= 0) rc = H5Dread(dset, mem_type, mspace, fspace, H5P_DEFAULT, out);
  if (mspace >= 0 && H5Sclose(mspace) < 0) rc = -1;
  if (fspace >= 0 && H5Sclose(fspace) < 0) rc = -1;
  return rc < 0 ? -1 : 0;
}

static px_status px_read_attrs(hid_t file, const char *path, px_rollout_attrs *a, int64_t *N,
                               int64_t *P, int64_t *R, px_error *err) {
  char format[64] = "", kl[16] = "";
  int64_t version = 0, shift = 0;
  PX_TRY(px_h5_attr_read_str(file, "format", format, sizeof format, path, err));
  if (strcmp(format, PX_ROLLOUT_FORMAT) != 0)
    return px_error_set(err, PX_EINPUT, "%s: format is '%s', expected '%s' (not a rollout file)",
                        path, format, PX_ROLLOUT_FORMAT);
  PX_TRY(px_h5_attr_read_i64(file, "format_version", &version, path, err));
  if (version != PX_ROLLOUT_VERSION)
    return px_error_set(err, PX_EINPUT, "%s: format_version %lld, this proxima reads version %d",
                        path, (long long)version, PX_ROLLOUT_VERSION);
  PX_TRY(px_h5_attr_read_i64(file, "n_rows", N, path, err));
  PX_TRY(px_h5_attr_read_i64(file, "prompt_positions", P, path, err));
  PX_TRY(px_h5_attr_read_i64(file, "response_positions", R, path, err));
  if (*N < 0 || *P < 1 || *R < 1 || *P > PX_ROLLOUT_MAX_POSITIONS || *R > PX_ROLLOUT_MAX_POSITIONS)
    return px_error_set(err, PX_EINPUT,
                        "%s: n_rows %lld, prompt_positions %lld, response_positions %lld are out "
                        "of range",
                        path, (long long)*N, (long long)*P, (long long)*R);
  PX_TRY(px_h5_attr_read_i64(file, "iteration", &a->iteration, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "beta", &a->beta, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "gamma", &a->gamma, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "lambda", &a->lambda, path, err));
  PX_TRY(px_h5_attr_read_str(file, "kl_estimator", kl, sizeof kl, path, err));
  if (strcmp(kl, "k1") && strcmp(kl, "k3"))
    return px_error_set(err, PX_EINPUT, "%s: kl_estimator is '%s', expected k1 or k3", path, kl);
  a->kl_kind = strcmp(kl, "k3") ? PX_RL_KL_K1 : PX_RL_KL_K3;
  PX_TRY(px_h5_attr_read_f64(file, "kl_clamp", &a->kl_clamp, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "no_eos_penalty", &a->no_eos_penalty, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "whiten_mean", &a->whiten_mean, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "whiten_std", &a->whiten_std, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "whiten_eps", &a->whiten_eps, path, err));
  PX_TRY(px_h5_attr_read_i64(file, "whiten_shift_mean", &shift, path, err));
  if (shift != 0 && shift != 1)
    return px_error_set(err, PX_EINPUT, "%s: whiten_shift_mean is %lld, expected 0 or 1", path,
                        (long long)shift);
  a->whiten_shift_mean = (int)shift;
  const char *ids[3] = {"pad_id", "bos_id", "eos_id"};
  const int64_t want[3] = {PX_TOK_PAD, PX_TOK_BOS, PX_TOK_EOS};
  for (int k = 0; k < 3; k++) {
    int64_t id = 0;
    PX_TRY(px_h5_attr_read_i64(file, ids[k], &id, path, err));
    if (id != want[k])
      return px_error_set(err, PX_EINPUT, "%s: %s is %lld, this tokenizer's is %lld", path, ids[k],
                          (long long)id, (long long)want[k]);
  }
  return PX_OK;
}

/* Reads this part's rows of every dataset into out (whose n, first, P, R are set). */
static px_status px_read_fields(hid_t file, const char *path, px_rollout *out, px_error *err) {
  for (int f = 0; f < PX_N_FIELDS; f++) {
    const px_field *fd = &px_fields[f];
    hid_t d;
    PX_TRY(px_open_field(file, path, f, out->n_global, out->P, out->R, &d, err));
    hsize_t cols = px_field_cols(fd, out->P, out->R);
    size_t bytes = (size_t)(out->n > 0 ? out->n : 1) * cols * px_elem_size(fd->elem);
    void **p = px_field_ptr(out, f);
    *p = px_malloc(bytes);
    herr_t rc = px_read_rows(d, px_elem_mem(fd->elem), fd->cols == PX_C_ONE ? 1 : 2, cols,
                             (hsize_t)out->first, (hsize_t)out->n, *p);
    char reason[256] = "";
    if (rc < 0) px_h5_reason(reason, sizeof reason);
    if (H5Dclose(d) < 0 && rc >= 0) rc = -1;
    if (rc < 0)
      return px_error_set(err, PX_EINPUT, "%s: cannot read dataset '%s' (%s; damaged file?)", path,
                          fd->name, reason[0] ? reason : "checksum or read error");
  }
  return PX_OK;
}

px_status px_rollout_read(const char *path, MPI_Comm comm, int part, int parts, px_rollout *out,
                          px_rollout_attrs *attrs, px_error *err) {
  px_h5_quiet();
  memset(out, 0, sizeof *out);
  PX_REQUIRE(parts >= 1 && part >= 0 && part < parts, "px_rollout_read: part %d of %d", part,
             parts);
  /* H5Fopen over MPI-IO is collective: check alone first what every rank sees alike. */
  if (!px_fs_exists(path)) return px_error_set(err, PX_EINPUT, "%s: no such file", path);
  if (px_h5_is_hdf5(path) <= 0) return px_error_set(err, PX_EINPUT, "%s: not an HDF5 file", path);
  hid_t fapl = px_h5_fapl_mpio(comm);
  if (fapl < 0) return px_error_set(err, PX_ERUN, "%s: cannot set up MPI-IO", path);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (H5Pclose(fapl) < 0 && file >= 0) {
    H5Fclose(file);
    return px_error_set(err, PX_ERUN, "%s: H5Pclose failed", path);
  }
  if (file < 0) {
    char reason[256];
    px_h5_reason(reason, sizeof reason);
    return px_error_set(err, PX_EINPUT, "%s: cannot open (%s)", path,
                        reason[0] ? reason : "damaged or truncated HDF5 file");
  }
  px_rollout_attrs a;
  memset(&a, 0, sizeof a);
  int64_t N = 0, P = 0, R = 0;
  px_status st = px_read_attrs(file, path, &a, &N, &P, &R, err);
  if (st == PX_OK) {
    int64_t lo, hi;
    px_comm_share(N, part, parts, &lo, &hi);
    out->n = hi - lo, out->first = lo, out->n_global = N, out->P = P, out->R = R;
    st = px_read_fields(file, path, out, err);
  }
  /* What the writer checks, checked again: files can be damaged or made by hand. */
  for (int64_t i = 0; i < out->n && st == PX_OK; i++) {
    int64_t g = out->first + i, pl = out->prompt_len[i], rl = out->response_len[i];
    if (pl < 0 || pl > P || rl < 0 || rl > R) {
      st = px_error_set(err, PX_EINPUT,
                        "%s: row %lld has prompt length %lld and response length %lld (at most "
                        "%lld and %lld)",
                        path, (long long)g, (long long)pl, (long long)rl, (long long)P,
                        (long long)R);
      break;
    }
    for (int64_t t = 0; t < R; t++)
      if (out->mask[i * R + t] != (t < rl)) {
        st = px_error_set(
            err, PX_EINPUT, "%s: row %lld: mask at position %lld is %d, but response_len is %lld",
            path, (long long)g, (long long)t, (int)out->mask[i * R + t], (long long)rl);
        break;
      }
  }
  if (H5Fclose(file) < 0 && st == PX_OK)
    st = px_error_set(err, PX_ERUN, "%s: closing the file failed", path);
  if (st != PX_OK) {
    px_rollout_free(out);
    return st;
  }
  if (attrs) *attrs = a;
  return PX_OK;
}

void px_rollout_free(px_rollout *r) {
  for (int f = 0; f < PX_N_FIELDS; f++) free(*px_field_ptr(r, f));
  memset(r, 0, sizeof *r);
}
