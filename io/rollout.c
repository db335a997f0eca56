/*
 * rollout.c — the rollout buffer file (layout in rollout.h).
 *
 * Writing: one writer. The ranks' rows of each dataset are gathered to rank 0 (MPI_Gatherv, in
 * rank order), which writes the file alone with HDF5's POSIX driver, each dataset whole through
 * the checksummed chunk writer (io/h5chunk.c), under a temporary name that it publishes once
 * every rank has agreed that all went well. A disk failure (full, file too large, EIO) happens
 * on the writer, between MPI calls that need no disk, so every rank learns of it at the next
 * agreement and returns: no rank can wait forever in a collective write that failed elsewhere,
 * as parallel HDF5's MPI-IO writes did. A rollout buffer is a few MB per iteration even at
 * GPT-2 scale, so one writer costs little (bench_ckpt measures it beside a plain write).
 *
 * Reading: each process opens the file alone (POSIX driver, independent reads of its part) and
 * checks everything, then (PX_IO_EVERY_RANK) the ranks agree on the outcome.
 */
#include "proxima/rollout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5chunk.h"
#include "h5util.h"
#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/fsutil.h"
#include "proxima/tokenizer.h"

#define PX_ROLLOUT_FORMAT "proxima-rollouts"
#define PX_ROLLOUT_VERSION 1
#define PX_ROLLOUT_CHUNK ((hsize_t)1 << 16) /* elements per chunk, at most */
#define PX_ROLLOUT_MAX_POSITIONS ((int64_t)1 << 24)
#define PX_ROLLOUT_MAX_ROWS ((int64_t)INT32_MAX - 1) /* the rows' gather counts are MPI ints */

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

/* px_rollout_attrs.kl_kind: the estimator's number, N in its name kN (rl.h's px_rl_kl_kind). */
enum { PX_KL_K1 = 1, PX_KL_K3 = 3 };

static const char *px_kl_name(int k) { return k == PX_KL_K3 ? "k3" : "k1"; }

const char *const px_rollout_estimators[PX_ROLLOUT_N_ESTIMATORS] = {"gae", "grpo", "rloo",
                                                                    "reinforce_pp"};

/* ------------------------------------------------------------------------------------------- */

/* The checks one rank can make on its own rows; the first problem goes into err. */
static px_status px_check_rows(const char *path, const px_rollout *r, const px_rollout_attrs *a,
                               px_error *err) {
  if (r->n < 0 || r->first < 0 || r->n_global < 0 || r->n_global > PX_ROLLOUT_MAX_ROWS ||
      r->first > r->n_global || r->n > r->n_global - r->first)
    return px_error_set(err, PX_EINPUT,
                        "%s: %lld rows from row %lld do not lie within the %lld rows of the "
                        "batch (at most %lld)",
                        path, (long long)r->n, (long long)r->first, (long long)r->n_global,
                        (long long)PX_ROLLOUT_MAX_ROWS);
  if (r->P < 1 || r->R < 1 || r->P > PX_ROLLOUT_MAX_POSITIONS || r->R > PX_ROLLOUT_MAX_POSITIONS)
    return px_error_set(
        err, PX_EINPUT, "%s: %lld prompt and %lld response positions (each must be 1 to %lld)",
        path, (long long)r->P, (long long)r->R, (long long)PX_ROLLOUT_MAX_POSITIONS);
  if (a->kl_kind != PX_KL_K1 && a->kl_kind != PX_KL_K3)
    return px_error_set(err, PX_EINPUT, "%s: unknown KL estimator %d", path, a->kl_kind);
  if (a->estimator < 0 || a->estimator >= PX_ROLLOUT_N_ESTIMATORS || a->group_size < 1 ||
      r->n_global % a->group_size != 0 || r->first % a->group_size != 0)
    return px_error_set(err, PX_EINPUT,
                        "%s: estimator %d with groups of %lld for rows %lld.. of %lld (each "
                        "rank's rows must be whole groups)",
                        path, a->estimator, (long long)a->group_size, (long long)r->first,
                        (long long)r->n_global);
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

/* Collective: whether the ranks' rows tile [0, n_global) end to end in rank order (rank k's rows
 * start where rank k-1's end: the order in which they are gathered), with one n_global, P, R
 * and attrs everywhere. Ranks whose own rows failed px_check_rows (local_ok 0) send nothing to
 * compare: their numbers may be anything, and their own message is the one reported. */
static px_status px_check_ranks(const char *path, const px_rollout *r, const px_rollout_attrs *a,
                                int local_ok, px_error *err) {
  int size = px_comm_size(), rank = px_comm_rank();
  /* v: each rank's (first, n), then the sums of N, P and R, then how many ranks failed */
  const size_t tail = 2 * (size_t)size, n = tail + 4;
  int64_t *v = px_calloc(n, sizeof *v);
  if (local_ok) { /* px_check_rows bounded these: their sums cannot overflow */
    v[2 * (size_t)rank] = r->first, v[2 * (size_t)rank + 1] = r->n;
    v[tail] = r->n_global, v[tail + 1] = r->P, v[tail + 2] = r->R;
  } else {
    v[tail + 3] = 1;
  }
  px_comm_allreduce_sum_i64(v, n);
  if (v[tail + 3] > 0) { /* some rank's rows are wrong by themselves */
    free(v);
    return local_ok ? PX_OK : px_error_set(err, PX_EINPUT, "%s: bad rows", path);
  }
  px_status st = PX_OK;
  if (v[tail] != size * r->n_global || v[tail + 1] != size * r->P || v[tail + 2] != size * r->R)
    st = px_error_set(err, PX_EINPUT,
                      "%s: the ranks disagree on the rows, prompt or response "
                      "positions of the batch",
                      path);
  int64_t next = 0;
  for (int q = 0; q < size && st == PX_OK; q++) {
    const int64_t first = v[2 * (size_t)q], rows = v[2 * (size_t)q + 1];
    if (first != next && rows > 0)
      st = px_error_set(err, PX_EINPUT,
                        "%s: rank %d has rows [%lld, %lld), but the rows before it end at %lld "
                        "(each rank's rows must follow the previous rank's, without gap or "
                        "overlap)",
                        path, q, (long long)first, (long long)first + rows, (long long)next);
    next += rows;
  }
  if (st == PX_OK && next != r->n_global)
    st = px_error_set(err, PX_EINPUT,
                      "%s: the ranks' rows do not cover the batch: they hold %lld rows, the batch "
                      "has %lld",
                      path, (long long)next, (long long)r->n_global);
  free(v);
  /* Attributes are metadata that every rank must write alike: compare with rank 0's. */
  px_rollout_attrs root = *a;
  px_comm_bcast(&root, sizeof root, 0);
  const double mine[] = {a->beta,           a->gamma,       a->lambda,     a->kl_clamp,
                         a->no_eos_penalty, a->whiten_mean, a->whiten_std, a->whiten_eps};
  const double theirs[] = {root.beta,           root.gamma,       root.lambda,     root.kl_clamp,
                           root.no_eos_penalty, root.whiten_mean, root.whiten_std, root.whiten_eps};
  int same = root.iteration == a->iteration && root.kl_kind == a->kl_kind &&
             root.whiten_shift_mean == a->whiten_shift_mean && root.estimator == a->estimator &&
             root.group_size == a->group_size && root.grpo_scale_std == a->grpo_scale_std &&
             root.kl_in_loss == a->kl_in_loss && root.group_eps == a->group_eps;
  for (size_t k = 0; k < sizeof mine / sizeof mine[0]; k++) { /* bit for bit: NaN too */
    uint64_t x, y;
    memcpy(&x, &mine[k], sizeof x), memcpy(&y, &theirs[k], sizeof y);
    same &= x == y;
  }
  if (st == PX_OK && !same)
    st = px_error_set(err, PX_EINPUT, "%s: rank %d's attributes differ from rank 0's", path, rank);
  return st;
}

/* A failure of the writer (rank `rank` of the run), with HDF5's innermost reason. */
static px_status px_rollout_fail(px_error *err, const char *path, int rank, const char *what) {
  return px_h5_fail(err, PX_ERUN, "cannot write rollout buffer %s (rank %d): %s", path, rank, what);
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
  rc |= px_h5_attr_write_i64(file, "pad_id", a->pad_id);
  rc |= px_h5_attr_write_i64(file, "bos_id", a->bos_id);
  rc |= px_h5_attr_write_i64(file, "eos_id", a->eos_id);
  rc |= px_h5_attr_write_str(file, "estimator", px_rollout_estimators[a->estimator]);
  rc |= px_h5_attr_write_i64(file, "group_size", a->group_size);
  rc |= px_h5_attr_write_i64(file, "grpo_scale_std", a->grpo_scale_std ? 1 : 0);
  rc |= px_h5_attr_write_f64(file, "group_eps", a->group_eps);
  rc |= px_h5_attr_write_str(file, "kl_in", a->kl_in_loss ? "loss" : "reward");
  return rc < 0 ? -1 : 0;
}

/* The bytes of the file's datasets: the in-memory file grows by this much at a time. */
static size_t px_rollout_bytes(const px_rollout *r) {
  size_t bytes = 0;
  for (int f = 0; f < PX_N_FIELDS; f++)
    bytes += (size_t)r->n_global * (size_t)px_field_cols(&px_fields[f], r->P, r->R) *
             px_elem_size(px_fields[f].elem);
  return bytes;
}

/* The writer's part: a new HDF5 file in memory (the core driver, no backing store: HDF5 never
 * touches the disk, so a failing disk cannot leave HDF5 half-closed) with the root attributes.
 * On failure nothing is open. Not collective. */
static px_status px_create_image(const char *path, const px_rollout *r, const px_rollout_attrs *a,
                                 int rank, hid_t *file, px_error *err) {
  /* Room for the data, a checksum per chunk and the metadata at once: growing it would copy. */
  *file = px_h5_create(path, px_rollout_bytes(r) * 33 / 32 + ((size_t)1 << 20));
  if (*file < 0) return px_rollout_fail(err, path, rank, "cannot create the file");
  if (px_write_attrs(*file, r, a) >= 0) return PX_OK;
  px_status st = px_rollout_fail(err, path, rank, "writing the attributes failed");
  H5Fclose(*file); /* already failing: the first error is the one to report */
  *file = H5I_INVALID_HID;
  return st;
}

/* Closes the in-memory file, leaving its bytes in *image (*n of them; the caller frees it) when
 * st is PX_OK. Not collective. */
static px_status px_close_image(hid_t file, const char *path, int rank, px_status st,
                                unsigned char **image, size_t *n, px_error *err) {
  *image = NULL, *n = 0;
  ssize_t size =
      st == PX_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(file, NULL, 0) : -1;
  if (size > 0) {
    *image = px_malloc((size_t)size);
    if (H5Fget_file_image(file, *image, (size_t)size) != size) size = -1;
  }
  if (st == PX_OK && size <= 0) st = px_rollout_fail(err, path, rank, "taking the file's image");
  if (H5Fclose(file) < 0 && st == PX_OK)
    st = px_rollout_fail(err, path, rank, "closing the file failed");
  if (st != PX_OK) {
    free(*image);
    *image = NULL;
  } else {
    *n = (size_t)size;
  }
  return st;
}

/* The writer's last part: the image onto the disk under a temporary name, fsynced and renamed
 * to path (px_fs_write_atomic: on failure nothing is left). Not collective. */
static px_status px_store_image(const char *path, int rank, const unsigned char *image, size_t n,
                                px_error *err) {
  char what[4400]; /* which file this is, and which rank wrote it */
  snprintf(what, sizeof what, "rollout buffer %s (rank %d)", path, rank);
  return px_fs_write_atomic(path, what, (const char *)image, n, err);
}

/* Every dataset: the ranks' rows of field f gathered to the writer, which writes them whole as
 * one checksummed dataset. A writer that has failed (*st) goes on taking part in the gathers,
 * which need no disk, so that no rank waits for it; it writes nothing more. Collective when
 * shared. */
static void px_write_fields(hid_t file, const char *path, const px_rollout *r, int shared,
                            int writer, int rank, px_status *st, px_error *err) {
  px_h5_chunk_writer w = {0};
  if (writer) px_h5_chunk_writer_init(&w, file, 0);
  /* The writer gathers every field into one buffer of the largest field's size (+4: the
   * checksum of a last whole chunk is written in place too). */
  size_t most = 0;
  for (int f = 0; f < PX_N_FIELDS; f++) {
    size_t b = (size_t)r->n_global * px_field_cols(&px_fields[f], r->P, r->R) *
               px_elem_size(px_fields[f].elem);
    most = b > most ? b : most;
  }
  void *gathered = shared && writer ? px_malloc(most + 4) : NULL;
  for (int f = 0; f < PX_N_FIELDS; f++) {
    const px_field *fd = &px_fields[f];
    hsize_t dims[2] = {(hsize_t)r->n_global, px_field_cols(fd, r->P, r->R)};
    size_t row_bytes = (size_t)dims[1] * px_elem_size(fd->elem);
    size_t bytes = (size_t)r->n_global * row_bytes;
    void *mine = r->n > 0 ? *px_field_ptr((px_rollout *)r, f) : NULL;
    void *all = shared ? gathered : mine; /* one process: its rows are all rows */
    if (shared) px_comm_gather_rows(all, mine, r->n, row_bytes);
    if (writer && *st == PX_OK &&
        px_h5_write_checksummed(file, fd->name, px_elem_file(fd->elem), px_elem_mem(fd->elem),
                                fd->cols == PX_C_ONE ? 1 : 2, dims, PX_ROLLOUT_CHUNK, all,
                                shared ? most + 4 : bytes, &w) < 0) {
      *st = px_h5_fail(err, PX_ERUN,
                       "cannot write rollout buffer %s (rank %d): writing dataset '%s' failed",
                       path, rank, fd->name);
    }
  }
  free(gathered);
  if (writer) px_h5_chunk_writer_free(&w);
}

px_status px_rollout_write(const char *path, px_io_who who, const px_rollout *rows,
                           const px_rollout_attrs *attrs, px_error *err) {
  PX_REQUIRE(rows && attrs && path, "px_rollout_write: rows, attrs and path are required");
  const int shared = who == PX_IO_EVERY_RANK;
  int rank = px_comm_is_up() ? px_comm_rank() : 0, writer = !shared || rank == 0;
  px_h5_quiet();

  px_status st = px_check_rows(path, rows, attrs, err);
  if (shared) {
    px_error other = {""};
    px_status all = px_check_ranks(path, rows, attrs, st == PX_OK, &other);
    if (st == PX_OK && all != PX_OK) st = px_error_set(err, all, "%s", other.msg);
    PX_TRY(px_comm_agree(st, err));
  } else {
    PX_TRY(st);
    if (rows->first != 0 || rows->n != rows->n_global)
      return px_error_set(err, PX_EINPUT,
                          "%s: a single process writes all %lld rows, but has rows [%lld, %lld)",
                          path, (long long)rows->n_global, (long long)rows->first,
                          (long long)rows->first + rows->n);
  }

  /* One writer, the others send it their rows: the file is made in rank 0's memory while the
   * ranks' rows arrive (MPI calls that need no disk), the ranks agree, and only then does rank 0
   * write it, with plain checked POSIX calls; every rank hears how that went. A disk that fails
   * cannot stop a rank inside a collective call, as a parallel HDF5 write that failed on one
   * rank did. */
  hid_t file = H5I_INVALID_HID;
  if (writer) st = px_create_image(path, rows, attrs, rank, &file, err);
  if (shared) st = px_comm_agree(st, err);
  unsigned char *image = NULL;
  size_t image_n = 0;
  if (st == PX_OK) {
    px_write_fields(file, path, rows, shared, writer, rank, &st, err);
    if (px_fault_fails("rollout.write") && st == PX_OK) /* counted on every rank */
      st = px_error_set(err, PX_ERUN,
                        "cannot write rollout buffer %s (rank %d): its part of the write failed "
                        "(PROXIMA_FAULT)",
                        path, rank);
  }
  if (file >= 0) st = px_close_image(file, path, rank, st, &image, &image_n, err);
  if (shared) st = px_comm_agree(st, err); /* a failure on any rank: nothing is written */
  if (writer && st == PX_OK) st = px_store_image(path, rank, image, image_n, err);
  free(image);
  /* No rank returns before the file has its final name, or before all know it has none. */
  return shared ? px_comm_agree(st, err) : st;
}

/* ------------------------------------------------------------------------------------------- */

/* Opens dataset f and checks its type class, its global shape, and that the file stores its
 * bytes (at least what the shape needs, at most the file's size): a crafted shape must not
 * make a reader allocate more than the file holds. */
static px_status px_open_field(hid_t file, const char *path, int64_t file_bytes, int f, int64_t N,
                               int64_t P, int64_t R, hid_t *out, px_error *err) {
  const px_field *fd = &px_fields[f];
  hsize_t want[2] = {(hsize_t)N, px_field_cols(fd, P, R)};
  PX_TRY(px_h5_open_dataset(file, fd->name, fd->elem == PX_E_F32 ? H5T_FLOAT : H5T_INTEGER,
                            px_elem_size(fd->elem), fd->cols == PX_C_ONE ? 1 : 2, want, out, path,
                            err));
  double need = (double)want[0] * (double)want[1] * (double)px_elem_size(fd->elem);
  double stored = (double)H5Dget_storage_size(*out);
  if (stored >= need && stored <= (double)file_bytes) return PX_OK;
  H5Dclose(*out); /* already failing */
  *out = H5I_INVALID_HID;
  return px_error_set(err, PX_EINPUT,
                      "%s: dataset '%s' needs %.0f bytes for its shape, the file stores %.0f of "
                      "them in %lld bytes (damaged or incomplete file)",
                      path, fd->name, need, stored, (long long)file_bytes);
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
  if (*N < 0 || *N > PX_ROLLOUT_MAX_ROWS || *P < 1 || *R < 1 || *P > PX_ROLLOUT_MAX_POSITIONS ||
      *R > PX_ROLLOUT_MAX_POSITIONS)
    return px_error_set(err, PX_EINPUT,
                        "%s: n_rows %lld, prompt_positions %lld, response_positions %lld are out "
                        "of range",
                        path, (long long)*N, (long long)*P, (long long)*R);
  PX_TRY(px_h5_attr_read_i64(file, "iteration", &a->iteration, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "beta", &a->beta, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "gamma", &a->gamma, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "lambda", &a->lambda, path, err));
  PX_TRY(px_h5_attr_read_str(file, "kl_estimator", kl, sizeof kl, path, err));
  if (strcmp(kl, "k1") != 0 && strcmp(kl, "k3") != 0)
    return px_error_set(err, PX_EINPUT, "%s: kl_estimator is '%s', expected k1 or k3", path, kl);
  a->kl_kind = strcmp(kl, "k3") ? PX_KL_K1 : PX_KL_K3;
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
  int64_t *into[3] = {&a->pad_id, &a->bos_id, &a->eos_id};
  for (int k = 0; k < 3; k++) {
    PX_TRY(px_h5_attr_read_i64(file, ids[k], into[k], path, err));
    if (*into[k] < 0 || *into[k] >= (1 << 24))
      return px_error_set(err, PX_EINPUT, "%s: %s is %lld, expected 0 to %d", path, ids[k],
                          (long long)*into[k], (1 << 24) - 1);
  }
  /* The estimator's attributes; a file from before there was a choice is the seed's PPO. */
  a->estimator = 0, a->group_size = 1, a->grpo_scale_std = 1, a->group_eps = 1e-6;
  a->kl_in_loss = 0;
  if (H5Aexists(file, "estimator") <= 0) return PX_OK;
  char est[32], kl_in[16];
  PX_TRY(px_h5_attr_read_str(file, "estimator", est, sizeof est, path, err));
  a->estimator = -1;
  for (int e = 0; e < PX_ROLLOUT_N_ESTIMATORS; e++)
    if (!strcmp(est, px_rollout_estimators[e])) a->estimator = e;
  if (a->estimator < 0)
    return px_error_set(err, PX_EINPUT,
                        "%s: estimator is '%s', expected gae, grpo, rloo or reinforce_pp", path,
                        est);
  int64_t scale;
  PX_TRY(px_h5_attr_read_i64(file, "group_size", &a->group_size, path, err));
  PX_TRY(px_h5_attr_read_i64(file, "grpo_scale_std", &scale, path, err));
  PX_TRY(px_h5_attr_read_f64(file, "group_eps", &a->group_eps, path, err));
  PX_TRY(px_h5_attr_read_str(file, "kl_in", kl_in, sizeof kl_in, path, err));
  if (a->group_size < 1 || *N % a->group_size != 0 || (scale != 0 && scale != 1) ||
      !(a->group_eps >= 0) || (strcmp(kl_in, "reward") != 0 && strcmp(kl_in, "loss") != 0))
    return px_error_set(err, PX_EINPUT,
                        "%s: group_size %lld (of %lld rows), grpo_scale_std %lld, group_eps %g, "
                        "kl_in '%s': expected groups that divide the rows, 0 or 1, a number >= "
                        "0, reward or loss",
                        path, (long long)a->group_size, (long long)*N, (long long)scale,
                        a->group_eps, kl_in);
  a->grpo_scale_std = (int)scale, a->kl_in_loss = !strcmp(kl_in, "loss");
  return PX_OK;
}

/* Reads this part's rows of every dataset into out (whose n, first, P, R are set), after every
 * dataset has been checked: nothing is allocated for a file that does not hold its data. */
static px_status px_read_fields(hid_t file, const char *path, int64_t file_bytes, px_rollout *out,
                                px_error *err) {
  for (int f = 0; f < PX_N_FIELDS; f++) {
    hid_t d;
    PX_TRY(px_open_field(file, path, file_bytes, f, out->n_global, out->P, out->R, &d, err));
    if (H5Dclose(d) < 0)
      return px_error_set(err, PX_ERUN, "%s: closing dataset '%s' failed", path, px_fields[f].name);
  }
  for (int f = 0; f < PX_N_FIELDS; f++) {
    const px_field *fd = &px_fields[f];
    hid_t d;
    PX_TRY(px_open_field(file, path, file_bytes, f, out->n_global, out->P, out->R, &d, err));
    hsize_t cols = px_field_cols(fd, out->P, out->R);
    size_t bytes = (size_t)(out->n > 0 ? out->n : 1) * cols * px_elem_size(fd->elem);
    void **p = px_field_ptr(out, f);
    *p = px_malloc(bytes);
    herr_t rc = px_h5_read_rows(d, px_elem_mem(fd->elem), (hsize_t)out->first, (hsize_t)out->n, *p);
    char reason[256] = "";
    if (rc < 0) px_h5_reason(reason, sizeof reason);
    if (H5Dclose(d) < 0 && rc >= 0) rc = -1;
    if (rc < 0)
      return px_error_set(err, PX_EINPUT, "%s: cannot read dataset '%s' (%s; damaged file?)", path,
                          fd->name, reason[0] ? reason : "checksum or read error");
  }
  return PX_OK;
}

/* This process's part of px_rollout_read. */
static px_status px_read_part(const char *path, int part, int parts, px_rollout *out,
                              px_rollout_attrs *attrs, px_error *err) {
  hid_t file;
  PX_TRY(px_h5_open_read(path, MPI_COMM_NULL, &file, err));
  struct stat sb; /* the bound on what a dataset may store; 0 (all refused) if it is gone */
  int64_t file_bytes = stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
  px_rollout_attrs a;
  memset(&a, 0, sizeof a);
  int64_t N = 0, P = 0, R = 0;
  px_status st = px_read_attrs(file, path, &a, &N, &P, &R, err);
  if (st == PX_OK) {
    int64_t lo, hi;
    px_comm_share(N, part, parts, &lo, &hi);
    out->n = hi - lo, out->first = lo, out->n_global = N, out->P = P, out->R = R;
    st = px_read_fields(file, path, file_bytes, out, err);
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

px_status px_rollout_read(const char *path, px_io_who who, int part, int parts, px_rollout *out,
                          px_rollout_attrs *attrs, px_error *err) {
  px_h5_quiet();
  memset(out, 0, sizeof *out);
  PX_REQUIRE(parts >= 1 && part >= 0 && part < parts, "px_rollout_read: part %d of %d", part,
             parts);
  const int shared = who == PX_IO_EVERY_RANK;
  /* Each process opens the file alone (no MPI-IO): no rank can wait in a collective open or
   * read for another that stopped early; the ranks agree on the outcome after. */
  px_status st = px_read_part(path, part, parts, out, attrs, err);
  if (!shared) return st;
  px_status all = px_comm_agree(st, err);
  if (all != PX_OK && st == PX_OK) px_rollout_free(out);
  return all;
}

void px_rollout_free(px_rollout *r) {
  for (int f = 0; f < PX_N_FIELDS; f++) free(*px_field_ptr(r, f));
  memset(r, 0, sizeof *r);
}
