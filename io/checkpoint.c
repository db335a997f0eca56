/*
 * checkpoint.c — HDF5 checkpoints of the models; the layout is in checkpoint.h.
 *
 * Writing. Every rank holds the same models and state (data parallel), so one process, rank 0,
 * writes the file with HDF5's POSIX (sec2) driver while the others wait without spinning; all
 * agree on the outcome after each stage. Each tensor's chunks go to the file through
 * H5Dwrite_chunk with the Fletcher-32 checksum computed in io/h5chunk.c (the bytes HDF5's
 * filter would write), each chunk checked for non-finite values just before it is summed (from
 * cache), and the kernel starts writing back while later chunks are summed. Parallel HDF5 1.10
 * (MPI-IO) with a filtered dataset allocated and wrote every chunk twice (fill, then data) and
 * spent half its time creating the datasets: a quarter of a plain write's speed (README,
 * Checkpoints).
 */
#include "proxima/checkpoint.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_tokenizer.h"
#include "h5chunk.h"
#include "h5util.h"
#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/fsutil.h"
#include "proxima/log.h"

#define PX_CKPT_FORMAT "proxima-checkpoint"
#define PX_CKPT_VERSION 1

#define PX_CKPT_CHUNK ((hsize_t)1 << 20) /* elements per chunk, at most (4 MiB of float) */

static px_status px_ckpt_h5_fail(px_error *err, const char *path, const char *what) {
  return px_h5_fail(err, PX_ERUN, "cannot write checkpoint %s: %s", path, what);
}

/* st, or PX_ERUN naming path when st is PX_OK and a close returned closed < 0: what HDF5
 * could not close may not be released (a file stays open). */
static px_status px_ckpt_closed(herr_t closed, const char *path, px_status st, px_error *err) {
  if (closed >= 0 || st != PX_OK) return st;
  return px_h5_fail(err, PX_ERUN, "%s: closing failed", path);
}

static void px_tensor_dims(const px_gpt_tensor *t, hsize_t *dims) {
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
}

/* Rank 0's writing of one file: its chunk writer, and where a refusal is explained. */
typedef struct px_ckpt_out {
  px_h5_chunk_writer w;
  const char *path;
  px_error *err;
} px_ckpt_out;

/* The tensors of a model's layout from buf (one of its flat buffers) into group g, whose path
 * `where` names a non-finite value. <0 on failure; PX_H5_NONFINITE with out->err set. */
static herr_t px_write_tensors(hid_t g, const char *where, const px_gpt *model, float *buf,
                               px_ckpt_out *out) {
  for (int i = 0; i < model->n_tensors; i++) {
    const px_gpt_tensor *t = &model->tensors[i];
    hsize_t dims[3];
    px_tensor_dims(t, dims);
    herr_t rc = px_h5_write_checksummed(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims,
                                        PX_CKPT_CHUNK, buf + t->offset,
                                        (model->n_params - t->offset) * sizeof(float), &out->w);
    if (rc == PX_H5_NONFINITE) {
      size_t at = (size_t)out->w.bad_element;
      px_error_set(out->err, PX_ERUN,
                   "cannot write checkpoint %s: %s/%s holds a non-finite value (%g at element "
                   "%zu)",
                   out->path, where, t->name, (double)buf[t->offset + at], at);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* A new group under parent into *g (with gcpl; lcpl may make the groups above it). */
static herr_t px_open_new_group(hid_t parent, const char *name, hid_t lcpl, hid_t gcpl, hid_t *g) {
  *g = H5Gcreate2(parent, name, lcpl, gcpl, H5P_DEFAULT);
  return *g < 0 ? -1 : 0;
}

/* Closes g, keeping the first failure. */
static herr_t px_close_group(hid_t g, herr_t rc) { return H5Gclose(g) < 0 && rc == 0 ? -1 : rc; }

/* A model group (its configuration and parameters) and, with m->optim, /optim/<model> (the step
 * attribute, the groups m and v). */
static herr_t px_write_model(hid_t file, hid_t gcpl, const px_ckpt_model *m, px_ckpt_out *out) {
  const px_gpt *model = m->model;
  const px_gpt_config *c = &model->config;
  char where[300];
  snprintf(where, sizeof where, "/%s", m->group);
  hid_t g;
  if (px_open_new_group(file, m->group, H5P_DEFAULT, gcpl, &g) < 0) return -1;
  herr_t rc = 0;
  rc |= px_h5_attr_write_i64(g, "vocab_size", c->vocab_size);
  rc |= px_h5_attr_write_i64(g, "max_seq_len", c->max_seq_len);
  rc |= px_h5_attr_write_i64(g, "n_layer", c->n_layer);
  rc |= px_h5_attr_write_i64(g, "n_head", c->n_head);
  rc |= px_h5_attr_write_i64(g, "n_embd", c->n_embd);
  rc |= px_h5_attr_write_str(g, "head", c->head == PX_GPT_HEAD_LM ? "lm" : "scalar");
  if (!strcmp(m->group, "reward")) {
    rc |= px_h5_attr_write_f64(g, "gain", m->gain);
    rc |= px_h5_attr_write_f64(g, "bias", m->bias);
  }
  rc = rc < 0 ? -1 : px_write_tensors(g, where, model, model->params, out);
  rc = px_close_group(g, rc);
  if (rc < 0 || !m->optim) return rc;

  snprintf(where, sizeof where, "/optim/%s", m->group);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), og = H5I_INVALID_HID;
  rc = lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
               px_open_new_group(file, where, lcpl, gcpl, &og) < 0
           ? -1
           : px_h5_attr_write_i64(og, "step", m->optim_step);
  for (int which = 0; which < 2 && rc >= 0; which++) {
    char moments[320];
    snprintf(moments, sizeof moments, "%s/%s", where, which ? "v" : "m");
    if (px_open_new_group(og, which ? "v" : "m", H5P_DEFAULT, gcpl, &g) < 0) {
      rc = -1;
      break;
    }
    rc = px_write_tensors(g, moments, model, which ? model->v : model->m, out);
    rc = px_close_group(g, rc);
  }
  if (og >= 0) rc = px_close_group(og, rc);
  if (lcpl >= 0 && H5Pclose(lcpl) < 0 && rc == 0) rc = -1;
  return rc;
}

/* /state: one single-element dataset per variable. */
static herr_t px_write_state(hid_t file, hid_t gcpl, const px_ckpt *ck, px_ckpt_out *out) {
  hid_t g;
  if (px_open_new_group(file, "state", H5P_DEFAULT, gcpl, &g) < 0) return -1;
  hsize_t one[1] = {1};
  herr_t rc = 0;
  for (int i = 0; i < ck->n_state && rc >= 0; i++) {
    const px_ckpt_var *v = &ck->state[i];
    PX_REQUIRE(!v->i64 != !v->f64, "state variable %s: set exactly one of i64 and f64", v->name);
    rc = v->i64 ? px_h5_write_checksummed(g, v->name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, one, 1,
                                          v->i64, 0, &out->w)
                : px_h5_write_checksummed(g, v->name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, one, 1,
                                          v->f64, 0, &out->w);
  }
  return px_close_group(g, rc);
}

/* Rank 0's part: creates tmp with the POSIX driver into *file and reserves the checkpoint's size
 * on disk (the bytes of its tensors and state, a lower bound of the file's size) before any
 * data is written, so a full disk is refused here. On failure no file is open. Not
 * collective. */
static px_status px_create_file(const char *tmp, const char *path, int64_t bytes, hid_t *file,
                                px_error *err) {
  *file = px_h5_create(tmp, 0); /* on failure the caller removes tmp */
  if (*file < 0) return px_ckpt_h5_fail(err, path, "cannot create the file");
  int fd = px_h5_file_fd(*file);
  char what[4300];
  snprintf(what, sizeof what, "checkpoint %s", path);
  px_status st = fd < 0 ? px_ckpt_h5_fail(err, path, "the file has no descriptor")
                        : px_fs_reserve_fd(fd, what, bytes, err);
  if (st != PX_OK) {
    H5Fclose(*file); /* given up: the caller removes tmp */
    *file = H5I_INVALID_HID;
  }
  return st;
}

/* Rank 0's part: the root attributes, the models and /state into file. Not collective. */
static px_status px_write_contents(hid_t file, const char *path, const px_ckpt *ck, px_error *err) {
  px_ckpt_out out = {.path = path, .err = err};
  px_h5_chunk_writer_init(&out.w, file, 1);
  hid_t gcpl = px_h5_gcpl();
  herr_t rc = gcpl < 0 ? -1 : 0;
  if (rc >= 0) {
    rc |= px_h5_attr_write_str(file, "format", PX_CKPT_FORMAT);
    rc |= px_h5_attr_write_i64(file, "format_version", PX_CKPT_VERSION);
    rc |= px_h5_attr_write_i64(file, "step", ck->step);
    rc |= px_h5_attr_write_i64(file, "iteration", ck->iteration);
    rc |= px_h5_attr_write_str(file, "config", ck->config_text ? ck->config_text : "");
    rc = rc < 0 ? -1 : 0;
  }
  if (rc >= 0) rc = px_ckpt_write_tokenizer(file, gcpl, ck->tokenizer, &out.w);
  for (int i = 0; i < ck->n_models && rc >= 0; i++)
    rc = px_write_model(file, gcpl, &ck->models[i], &out);
  if (rc >= 0) rc = px_write_state(file, gcpl, ck, &out);
  px_h5_chunk_writer_free(&out.w);
  if (gcpl >= 0 && H5Pclose(gcpl) < 0 && rc == 0) rc = -1;
  if (rc == PX_H5_NONFINITE) return PX_ERUN; /* err says which tensor */
  return rc < 0 ? px_ckpt_h5_fail(err, path, "writing the datasets failed") : PX_OK;
}

/* The bytes of a checkpoint's tensors and state: a lower bound of its file's size. */
static int64_t px_ckpt_data_bytes(const px_ckpt *ck) {
  int64_t bytes =
      8 * (int64_t)ck->n_state + (int64_t)(ck->tokenizer->vocab_len + ck->tokenizer->merges_len);
  for (int i = 0; i < ck->n_models; i++)
    bytes += (int64_t)ck->models[i].model->n_params * 4 * (ck->models[i].optim ? 3 : 1);
  return bytes;
}

/* Rank 0 creates tmp, reserves its space and writes everything into it; the other ranks wait
 * (without spinning) and every rank agrees on each stage: created, written (ckpt.write can fail
 * it on any rank), closed. A rank-0 failure inside HDF5 returns there and is told to the others
 * here: no rank ever waits in an HDF5 call for another. Collective. */
static px_status px_write_file(const char *tmp, const char *path, const px_ckpt *ck,
                               px_error *err) {
  const int root = px_comm_rank() == 0;
  hid_t file = H5I_INVALID_HID;
  px_status st = px_comm_agree(
      root ? px_create_file(tmp, path, px_ckpt_data_bytes(ck), &file, err) : PX_OK, err);
  px_fault_point("ckpt.created");
  if (st == PX_OK) {
    if (root) st = px_write_contents(file, path, ck, err);
    int injected = px_fault_fails("ckpt.write"); /* counted on every rank, whatever st is */
    if (st == PX_OK && injected)
      st = px_error_set(err, PX_ERUN,
                        "cannot write checkpoint %s: writing the datasets failed (PROXIMA_FAULT)",
                        path);
    px_comm_barrier_idle();
    st = px_comm_agree(st, err);
    px_fault_point("ckpt.written");
  }
  if (file >= 0 && H5Fclose(file) < 0 && st == PX_OK)
    st = px_ckpt_h5_fail(err, path, "closing failed");
  return px_comm_agree(st, err);
}

/* PX_ERUN when the reward normalisation that a reward group stores is not finite (the tensors
 * are checked as they are written). Not collective. */
static px_status px_check_gain_finite(const char *path, const px_ckpt_model *m, px_error *err) {
  if (!strcmp(m->group, "reward") && !(isfinite(m->gain) && isfinite(m->bias)))
    return px_error_set(err, PX_ERUN,
                        "cannot write checkpoint %s: the reward normalisation (gain %g, bias %g) "
                        "is not finite",
                        path, m->gain, m->bias);
  return PX_OK;
}

static int64_t *px_ckpt_list(const char *dir, size_t *n);

/* Whether name is prefix, decimal digits, suffix (a checkpoint's file name and its
 * temporary's); the digits' value into *step. Not collective. */
static int px_ckpt_step_of(const char *name, const char *prefix, const char *suffix,
                           int64_t *step) {
  size_t n = strlen(name), np = strlen(prefix), ns = strlen(suffix);
  if (n <= np + ns || strncmp(name, prefix, np) != 0 || strcmp(name + n - ns, suffix) != 0)
    return 0;
  int64_t v = 0;
  for (size_t i = np; i < n - ns; i++) {
    if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10) return 0;
    v = 10 * v + (name[i] - '0');
  }
  *step = v;
  return 1;
}

/* Keeps the newest keep_last (0: all) ckpt-*.h5 of dir and removes the temporary files that
 * interrupted writes left behind. Every .ckpt-*.h5.tmp is removed, whoever wrote it: the run
 * directory's lock (runlock.h, taken by px_run_open) keeps every other process out of dir, so
 * one that is not this writer's can only be a dead predecessor's. */
static void px_prune(const char *dir, int keep_last) {
  size_t n;
  int64_t *steps = px_ckpt_list(dir, &n);
  char path[4400];
  for (size_t i = keep_last > 0 ? (size_t)keep_last : n; i < n; i++) {
    snprintf(path, sizeof path, "%s/ckpt-%08lld.h5", dir, (long long)steps[i]);
    remove(path);
  }
  free(steps);
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    int64_t s;
    if (px_ckpt_step_of(e->d_name, ".ckpt-", ".h5.tmp", &s)) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      remove(path);
    }
  }
  closedir(d);
}

/* Writes the checkpoint under tmp. A non-finite reward normalisation is refused before the file
 * exists; a full disk when the space is reserved, before any data is written; a NaN or an
 * infinity in a tensor where the write reaches it (the caller removes tmp). Collective. */
static px_status px_ckpt_write_tmp(const char *tmp, const char *path, const px_ckpt *ck,
                                   px_error *err) {
  px_status st = PX_OK;
  for (int i = 0; i < ck->n_models && st == PX_OK; i++)
    st = px_check_gain_finite(path, &ck->models[i], err);
  PX_TRY(px_comm_agree(st, err));
  return px_write_file(tmp, path, ck, err);
}

px_status px_ckpt_write_file(const char *path, const px_ckpt *ck, px_error *err) {
  px_h5_quiet();
  const int root = px_comm_rank() == 0;
  PX_TRY(px_comm_agree(root ? px_fs_check_parent(path, err) : PX_OK, err));
  char tmp[4300];
  px_fs_temp_name(tmp, sizeof tmp, path);
  px_status st = px_ckpt_write_tmp(tmp, path, ck, err);
  if (st == PX_OK) st = px_comm_agree(root ? px_fs_publish(tmp, path, err) : PX_OK, err);
  if (st != PX_OK && root) remove(tmp);
  return st;
}

px_status px_ckpt_write(const char *dir, const px_ckpt *ck, int keep_last, px_error *err) {
  px_h5_quiet();
  const int root = px_comm_rank() == 0;
  PX_TRY(px_comm_agree(root ? px_fs_mkdirs(dir, err) : PX_OK, err));
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/ckpt-%08lld.h5", dir, (long long)ck->step);
  /* No PID in the name: one process at a time writes here (the run directory's lock), and a
   * fixed name lets the next write's prune find what a killed one left. */
  snprintf(tmp, sizeof tmp, "%s/.ckpt-%08lld.h5.tmp", dir, (long long)ck->step);
  px_status st = px_ckpt_write_tmp(tmp, path, ck, err);
  px_fault_point("ckpt.closed");
  if (st == PX_OK) {
    /* Durable under its final name, then named by LATEST (relative to dir, so that a run
     * directory can be moved): a crash at any point leaves LATEST naming a complete file. */
    st = px_comm_agree(root ? px_fs_publish(tmp, path, err) : PX_OK, err);
    px_fault_point("ckpt.renamed");
    if (st == PX_OK && root) {
      char latest[4200], line[300];
      snprintf(latest, sizeof latest, "%s/LATEST", dir);
      int len = snprintf(line, sizeof line, "ckpt-%08lld.h5\n", (long long)ck->step);
      st = px_fs_write_atomic(latest, NULL, line, (size_t)len, err);
    }
    st = px_comm_agree(st, err);
    px_fault_point("ckpt.latest");
  }
  if (st != PX_OK) {
    if (root) remove(tmp);
    px_error inner = *err;
    return px_error_set(err, st, "%s; LATEST and the older checkpoints are kept", inner.msg);
  }
  if (root) px_prune(dir, keep_last);
  return PX_OK;
}

px_status px_ckpt_latest(const char *dir, char *path, size_t n, px_error *err) {
  char latest[4200], *text = NULL;
  size_t len = 0;
  snprintf(latest, sizeof latest, "%s/LATEST", dir);
  if (!px_fs_exists(latest))
    return px_error_set(err, PX_EINPUT, "%s: no checkpoint yet (no LATEST file)", dir);
  PX_TRY(px_fs_read_file(latest, 4096, &text, &len, err));
  text[strcspn(text, "\r\n")] = '\0';
  px_status st = PX_OK;
  if (!text[0] || strchr(text, '/'))
    st = px_error_set(err, PX_EINPUT, "%s: LATEST does not name a checkpoint file", dir);
  else
    snprintf(path, n, "%s/%s", dir, text);
  free(text);
  return st;
}

px_status px_ckpt_resolve(const char *file_or_dir, char *path, size_t n, px_error *err) {
  struct stat st;
  if (stat(file_or_dir, &st) != 0)
    return px_error_set(err, PX_EINPUT, "%s: no such checkpoint file or directory", file_or_dir);
  if (!S_ISDIR(st.st_mode)) {
    snprintf(path, n, "%s", file_or_dir);
    return PX_OK;
  }
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/checkpoints", file_or_dir);
  struct stat st2;
  int has_sub = stat(sub, &st2) == 0 && S_ISDIR(st2.st_mode);
  return px_ckpt_latest(has_sub ? sub : file_or_dir, path, n, err);
}

/* ------------------------------------------------------------------------------------------- */

/* Opens a checkpoint for reading and checks its format. */
static px_status px_ckpt_open(const char *path, hid_t *file, px_error *err) {
  hid_t f;
  PX_TRY(px_h5_open_read(path, MPI_COMM_NULL, &f, err));
  char format[64] = "";
  int64_t version = 0;
  px_status st = px_h5_attr_read_str(f, "format", format, sizeof format, path, err);
  if (st == PX_OK && strcmp(format, PX_CKPT_FORMAT) != 0)
    st = px_error_set(err, PX_EINPUT, "%s: format is '%s', not a proxima checkpoint", path, format);
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "format_version", &version, path, err);
  if (st == PX_OK && version != PX_CKPT_VERSION)
    st = px_error_set(err, PX_EINPUT, "%s: format_version %lld, this proxima reads version %d",
                      path, (long long)version, PX_CKPT_VERSION);
  if (st != PX_OK) return px_ckpt_closed(H5Fclose(f), path, st, err);
  *file = f;
  return PX_OK;
}

static px_status px_open_group(hid_t file, const char *path, const char *group, hid_t *g,
                               px_error *err) {
  if (H5Lexists(file, group, H5P_DEFAULT) <= 0 || (*g = H5Gopen2(file, group, H5P_DEFAULT)) < 0)
    return px_error_set(err, PX_EINPUT, "%s: group '/%s' is missing", path, group);
  return PX_OK;
}

px_status px_ckpt_read_tokenizer(const char *file_or_dir, px_tokenizer *t, px_error *err) {
  char path[4300];
  hid_t f;
  PX_TRY(px_ckpt_resolve(file_or_dir, path, sizeof path, err));
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_ckpt_read_tokenizer_in(f, path, t, err);
  st = px_ckpt_closed(H5Fclose(f), path, st, err);
  if (st != PX_OK) px_tokenizer_free(t);
  return st;
}

px_status px_ckpt_check_tokenizer(const char *file_or_dir, const char *what,
                                  const px_tokenizer *want, const char *against, px_error *err) {
  px_tokenizer have;
  PX_TRY(px_ckpt_read_tokenizer(file_or_dir, &have, err));
  px_status st = PX_OK;
  if (!px_tokenizer_same(&have, want))
    st = px_error_set(err, PX_EINPUT,
                      "%s %s has the %s tokenizer (sha256 %.12s) but %s has %s (sha256 %.12s): "
                      "the models of a run must share one tokenizer",
                      what, file_or_dir, px_tok_kind_name(have.kind), have.hash, against,
                      px_tok_kind_name(want->kind), want->hash);
  px_tokenizer_free(&have);
  return st;
}

px_status px_ckpt_read_step(const char *path, int64_t *step, int64_t *iteration, px_error *err) {
  hid_t f;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_h5_attr_read_i64(f, "step", step, path, err);
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "iteration", iteration, path, err);
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}

px_status px_ckpt_read_config(const char *path, const char *group, px_gpt_config *config,
                              px_error *err) {
  hid_t f, g = H5I_INVALID_HID;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_open_group(f, path, group, &g, err);
  if (st != PX_OK) return px_ckpt_closed(H5Fclose(f), path, st, err);
  char where[4300], head[32] = "";
  snprintf(where, sizeof where, "%s: /%s", path, group);
  int64_t v[5] = {0};
  const char *names[5] = {"vocab_size", "max_seq_len", "n_layer", "n_head", "n_embd"};
  for (int i = 0; i < 5 && st == PX_OK; i++) {
    st = px_h5_attr_read_i64(g, names[i], &v[i], where, err);
    if (st == PX_OK && (v[i] < 1 || v[i] > (1 << 24)))
      st = px_error_set(err, PX_EINPUT, "%s: attribute %s = %lld is out of range", where, names[i],
                        (long long)v[i]);
  }
  if (st == PX_OK) st = px_h5_attr_read_str(g, "head", head, sizeof head, where, err);
  if (st == PX_OK && strcmp(head, "lm") != 0 && strcmp(head, "scalar") != 0)
    st = px_error_set(err, PX_EINPUT, "%s: head is '%s', expected lm or scalar", where, head);
  if (st == PX_OK) {
    *config = (px_gpt_config){(int)v[0], (int)v[1],
                              (int)v[2], (int)v[3],
                              (int)v[4], strcmp(head, "lm") ? PX_GPT_HEAD_SCALAR : PX_GPT_HEAD_LM};
    st = px_gpt_config_check(config, err);
    if (st != PX_OK) {
      char inner[sizeof err->msg];
      snprintf(inner, sizeof inner, "%s", err->msg);
      st = px_error_set(err, PX_EINPUT, "%s: %s", where, inner);
    }
    /* A damaged or crafted group must not make us allocate more than the file could hold. */
    struct stat fs;
    double bytes = 4.0 * (double)(st == PX_OK ? px_gpt_param_count(config) : 0);
    if (st == PX_OK && stat(path, &fs) == 0 && bytes > (double)fs.st_size)
      st = px_error_set(err, PX_EINPUT,
                        "%s: describes a model of %.0f parameters (%.3g GB), more than the "
                        "file's %lld bytes hold",
                        where, bytes / 4, bytes / 1e9, (long long)fs.st_size);
  }
  st = px_ckpt_closed(H5Gclose(g), path, st, err);
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}

/* Reads the first n_tensors tensors of model's table from g into buf. */
static px_status px_read_tensors(hid_t g, const px_gpt *model, int n_tensors, float *buf,
                                 const char *where, px_error *err) {
  for (int i = 0; i < n_tensors; i++) {
    const px_gpt_tensor *t = &model->tensors[i];
    hsize_t dims[3];
    px_tensor_dims(t, dims);
    PX_TRY(px_h5_read_f32(g, t->name, t->ndim, dims, buf + t->offset, where, err));
  }
  return PX_OK;
}

px_status px_ckpt_read_model(const char *path, px_ckpt_model *m, px_error *err) {
  px_gpt_config have;
  PX_TRY(px_ckpt_read_config(path, m->group, &have, err));
  const px_gpt_config *want = &m->model->config;
  if (memcmp(&have, want, sizeof have) != 0)
    return px_error_set(err, PX_EINPUT,
                        "%s: /%s is a model of vocab %d, T %d, %d layers, %d heads, width %d "
                        "(%s head); expected vocab %d, T %d, %d layers, %d heads, width %d",
                        path, m->group, have.vocab_size, have.max_seq_len, have.n_layer,
                        have.n_head, have.n_embd, have.head == PX_GPT_HEAD_LM ? "lm" : "scalar",
                        want->vocab_size, want->max_seq_len, want->n_layer, want->n_head,
                        want->n_embd);
  hid_t f, g = H5I_INVALID_HID;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_open_group(f, path, m->group, &g, err);
  if (st != PX_OK) return px_ckpt_closed(H5Fclose(f), path, st, err);
  char where[4300];
  snprintf(where, sizeof where, "%s: /%s", path, m->group);
  st = px_read_tensors(g, m->model, m->model->n_tensors, m->model->params, where, err);
  if (st == PX_OK && !strcmp(m->group, "reward")) {
    st = px_h5_attr_read_f64(g, "gain", &m->gain, where, err);
    if (st == PX_OK) st = px_h5_attr_read_f64(g, "bias", &m->bias, where, err);
  }
  st = px_ckpt_closed(H5Gclose(g), path, st, err);
  if (st == PX_OK && m->optim) {
    char name[300];
    snprintf(name, sizeof name, "optim/%s", m->group);
    hid_t og = H5I_INVALID_HID;
    st = px_open_group(f, path, name, &og, err);
    if (st == PX_OK) {
      snprintf(where, sizeof where, "%s: /optim/%s", path, m->group);
      st = px_h5_attr_read_i64(og, "step", &m->optim_step, where, err);
      for (int which = 0; which < 2 && st == PX_OK; which++) {
        hid_t mg = H5I_INVALID_HID;
        snprintf(where, sizeof where, "%s: /optim/%s/%s", path, m->group, which ? "v" : "m");
        st = px_open_group(og, path, which ? "v" : "m", &mg, err);
        if (st != PX_OK) break;
        st = px_read_tensors(mg, m->model, m->model->n_tensors, which ? m->model->v : m->model->m,
                             where, err);
        st = px_ckpt_closed(H5Gclose(mg), path, st, err);
      }
      st = px_ckpt_closed(H5Gclose(og), path, st, err);
    }
  }
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}

px_status px_ckpt_read_trunk(const char *path, const char *group, px_gpt *model, px_error *err) {
  px_gpt_config have;
  PX_TRY(px_ckpt_read_config(path, group, &have, err));
  px_gpt_config want = model->config;
  have.head = want.head;
  if (memcmp(&have, &want, sizeof have) != 0)
    return px_error_set(err, PX_EINPUT,
                        "%s: /%s has vocab %d, T %d, %d layers, %d heads, width %d; the model "
                        "to start from it needs vocab %d, T %d, %d layers, %d heads, width %d",
                        path, group, have.vocab_size, have.max_seq_len, have.n_layer, have.n_head,
                        have.n_embd, want.vocab_size, want.max_seq_len, want.n_layer, want.n_head,
                        want.n_embd);
  hid_t f, g = H5I_INVALID_HID;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_open_group(f, path, group, &g, err);
  if (st == PX_OK) {
    char where[4300];
    snprintf(where, sizeof where, "%s: /%s", path, group);
    /* the table lists the trunk first; a scalar head's two tensors come last */
    int n_trunk = model->n_tensors - (model->config.head == PX_GPT_HEAD_SCALAR ? 2 : 0);
    st = px_read_tensors(g, model, n_trunk, model->params, where, err);
    st = px_ckpt_closed(H5Gclose(g), path, st, err);
  }
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}

px_status px_ckpt_load(const char *file_or_dir, const char *group, px_gpt_head head, int max_B,
                       int max_T, int trainable, px_gpt *model, double *gain, double *bias,
                       px_error *err) {
  char path[4300];
  PX_TRY(px_ckpt_resolve(file_or_dir, path, sizeof path, err));
  px_gpt_config mc;
  PX_TRY(px_ckpt_read_config(path, group, &mc, err));
  if (mc.head != head)
    return px_error_set(err, PX_EINPUT, "%s: /%s has %s head, expected %s", path, group,
                        mc.head == PX_GPT_HEAD_LM ? "an lm" : "a scalar",
                        head == PX_GPT_HEAD_LM ? "lm" : "scalar");
  PX_TRY(px_gpt_check_memory(&mc, max_B, max_T > 0 ? max_T : mc.max_seq_len, trainable, path, err));
  px_gpt_build(model, &mc, max_B, max_T > 0 ? max_T : mc.max_seq_len, trainable);
  px_ckpt_model cm = {.group = group, .model = model, .gain = 1};
  px_status st = px_ckpt_read_model(path, &cm, err);
  px_tokenizer tok;
  px_tokenizer_byte(&tok);
  if (st == PX_OK) st = px_ckpt_read_tokenizer(path, &tok, err);
  if (st == PX_OK) {
    char what[4400];
    snprintf(what, sizeof what, "%s: /%s", path, group);
    st = px_tokenizer_check_vocab(&tok, mc.vocab_size, what, err);
  }
  if (st == PX_OK) px_gpt_set_live_vocab(model, px_tokenizer_softmax_span(&tok));
  px_tokenizer_free(&tok);
  if (st != PX_OK) {
    px_gpt_free(model);
    return st;
  }
  if (gain) *gain = cm.gain;
  if (bias) *bias = cm.bias;
  return PX_OK;
}

px_status px_ckpt_read_state(const char *path, const px_ckpt_var *vars, int n, px_error *err) {
  hid_t f, g = H5I_INVALID_HID;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_open_group(f, path, "state", &g, err);
  for (int i = 0; i < n && st == PX_OK; i++) {
    const px_ckpt_var *v = &vars[i];
    if (H5Lexists(g, v->name, H5P_DEFAULT) <= 0) {
      st = px_error_set(err, PX_EINPUT, "%s: /state/%s is missing", path, v->name);
      break;
    }
    hid_t d = H5Dopen2(g, v->name, H5P_DEFAULT);
    hid_t type = d < 0 ? H5I_INVALID_HID : H5Dget_type(d);
    hid_t space = d < 0 ? H5I_INVALID_HID : H5Dget_space(d);
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    if (cls != (v->i64 ? H5T_INTEGER : H5T_FLOAT) || space < 0 ||
        H5Sget_simple_extent_npoints(space) != 1) {
      st = px_error_set(err, PX_EINPUT, "%s: /state/%s is not a single %s", path, v->name,
                        v->i64 ? "integer" : "floating-point number");
    } else if (H5Dread(d, v->i64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                       H5P_DEFAULT, v->i64 ? (void *)v->i64 : (void *)v->f64) < 0) {
      char reason[256];
      st = px_error_set(err, PX_EINPUT, "%s: cannot read /state/%s (%s)", path, v->name,
                        px_h5_reason(reason, sizeof reason));
    }
    if (space >= 0) st = px_ckpt_closed(H5Sclose(space), path, st, err);
    if (type >= 0) st = px_ckpt_closed(H5Tclose(type), path, st, err);
    if (d >= 0) st = px_ckpt_closed(H5Dclose(d), path, st, err);
  }
  if (g >= 0) st = px_ckpt_closed(H5Gclose(g), path, st, err);
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}

/* The steps of dir's ckpt-*.h5 files, newest first; *n of them. The caller frees the array. */
static int64_t *px_ckpt_list(const char *dir, size_t *n) {
  *n = 0;
  int64_t *steps = NULL;
  size_t cap = 0;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  for (struct dirent *e; (e = readdir(d));) {
    int64_t s;
    if (px_ckpt_step_of(e->d_name, "ckpt-", ".h5", &s)) {
      if (*n == cap) cap = 2 * cap + 16, steps = px_realloc(steps, cap * sizeof *steps);
      steps[(*n)++] = s;
    }
  }
  closedir(d);
  for (size_t i = 1; i < *n; i++) /* insertion sort, descending */
    for (size_t j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
      int64_t t = steps[j];
      steps[j] = steps[j - 1], steps[j - 1] = t;
    }
  return steps;
}

/* Rank 0's part of px_ckpt_find_resume with "auto". */
static px_status px_ckpt_pick(const char *dir, char *path, size_t n, px_error *err) {
  path[0] = '\0';
  char named[4300] = "";
  px_error lerr;
  int64_t latest = -1;
  if (px_ckpt_latest(dir, named, sizeof named, &lerr) == PX_OK) {
    const char *base = strrchr(named, '/') ? strrchr(named, '/') + 1 : named;
    if (!px_ckpt_step_of(base, "ckpt-", ".h5", &latest)) latest = -1;
  }
  size_t count;
  int64_t *steps = px_ckpt_list(dir, &count);
  if (latest < 0 && count > 0)
    px_log_warn("resume: %s has no usable LATEST; trying its checkpoints, newest first", dir);
  char first_error[sizeof err->msg] = "";
  int tried = 0;
  /* LATEST's file and then the older ones, newest first; a file newer than LATEST's was never
   * announced, so it is not trusted. */
  for (size_t i = 0; i < count && !path[0]; i++) {
    if (latest >= 0 && steps[i] > latest) continue;
    char cand[4300];
    snprintf(cand, sizeof cand, "%s/ckpt-%08lld.h5", dir, (long long)steps[i]);
    tried++;
    px_error cerr;
    if (px_ckpt_check(cand, &cerr) == PX_OK) {
      snprintf(path, n, "%s", cand);
    } else {
      px_log_warn("resume: skipping damaged checkpoint %s", cerr.msg);
      if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", cerr.msg);
    }
  }
  free(steps);
  if (!path[0] && tried > 0)
    return px_error_set(err, PX_EINPUT,
                        "resume: no intact checkpoint in %s (%d tried; the newest: %s)", dir, tried,
                        first_error);
  return PX_OK;
}

px_status px_ckpt_find_resume(const char *dir, const char *resume, char *path, size_t n,
                              px_error *err) {
  char found[4300] = "";
  px_status st = PX_OK;
  if (px_comm_rank() == 0) {
    if (!resume[0]) { /* a fresh start must not overwrite another run's checkpoints */
      size_t count;
      free(px_ckpt_list(dir, &count));
      if (count > 0)
        st = px_error_set(err, PX_EINPUT,
                          "%s already holds checkpoints: continue that run with --resume auto "
                          "(run.resume = auto), or choose another run.dir",
                          dir);
    } else if (!strcmp(resume, "auto")) {
      st = px_ckpt_pick(dir, found, sizeof found, err);
    } else {
      st = px_ckpt_resolve(resume, found, sizeof found, err);
      if (st == PX_OK) st = px_ckpt_check(found, err);
    }
  }
  PX_TRY(px_comm_agree(st, err));
  px_comm_bcast(found, sizeof found, 0);
  snprintf(path, n, "%s", found);
  return PX_OK;
}

/* ------------------------------------------------------------------------------------------- */

typedef struct px_visit {
  const char *path;
  px_error *err;
  px_status st;
  int64_t datasets;
} px_visit;

#define PX_CHECK_PIECE ((size_t)64 << 20) /* bytes read at a time */

/* Reads one dataset whole, in pieces of rows (HDF5 verifies each chunk's Fletcher-32 checksum
 * on the way); first, that the file stores as many bytes as the dataset declares, so that a
 * crafted shape cannot make us allocate more than the file holds. */
static herr_t px_visit_read(hid_t loc, const char *name, void *data) {
  px_visit *v = data;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  hid_t type = d < 0 ? H5I_INVALID_HID : H5Dget_type(d);
  hid_t mem = type < 0 ? H5I_INVALID_HID : H5Tget_native_type(type, H5T_DIR_ASCEND);
  hid_t space = d < 0 ? H5I_INVALID_HID : H5Dget_space(d);
  int nd = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
  hsize_t dims[H5S_MAX_RANK] = {0};
  hssize_t npoints = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  size_t size = mem < 0 ? 0 : H5Tget_size(mem);
  char reason[256];
  if (d < 0 || mem < 0 || nd < 0 || npoints < 0 || size == 0 ||
      H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    v->st = px_error_set(v->err, PX_EINPUT, "%s: cannot open dataset /%s (%s)", v->path, name,
                         px_h5_reason(reason, sizeof reason));
  } else if (npoints > 0 && (double)H5Dget_storage_size(d) < (double)npoints * (double)size) {
    v->st = px_error_set(v->err, PX_EINPUT,
                         "%s: dataset /%s is incomplete: %llu bytes stored of the %.0f its shape "
                         "needs",
                         v->path, name, (unsigned long long)H5Dget_storage_size(d),
                         (double)npoints * (double)size);
  } else if (npoints > 0) {
    /* rows of dim 0 at a time (a scalar is one row) */
    hsize_t rows = nd > 0 ? dims[0] : 1, row_bytes = (hsize_t)npoints / (rows ? rows : 1) * size;
    hsize_t per = PX_CHECK_PIECE / row_bytes > 0 ? PX_CHECK_PIECE / row_bytes : 1;
    if (per > rows) per = rows;
    void *buf = px_malloc((size_t)(per * row_bytes));
    for (hsize_t r = 0; r < rows && v->st == PX_OK; r += per)
      if (px_h5_read_rows(d, mem, r, rows - r < per ? rows - r : per, buf) < 0)
        v->st = px_error_set(v->err, PX_EINPUT, "%s: dataset /%s is damaged (%s)", v->path, name,
                             px_h5_reason(reason, sizeof reason));
    free(buf);
  }
  if (space >= 0) v->st = px_ckpt_closed(H5Sclose(space), v->path, v->st, v->err);
  if (mem >= 0) v->st = px_ckpt_closed(H5Tclose(mem), v->path, v->st, v->err);
  if (type >= 0) v->st = px_ckpt_closed(H5Tclose(type), v->path, v->st, v->err);
  if (d >= 0) v->st = px_ckpt_closed(H5Dclose(d), v->path, v->st, v->err);
  v->datasets++;
  return v->st == PX_OK ? 0 : 1; /* 1 stops the visit */
}

px_status px_ckpt_check(const char *path, px_error *err) {
  hid_t f;
  PX_TRY(px_ckpt_open(path, &f, err));
  /* Every byte of data: each dataset read whole. */
  px_visit v = {path, err, PX_OK, 0};
  herr_t rc = px_h5_visit_datasets(f, px_visit_read, &v);
  if (v.st == PX_OK && rc < 0) {
    char reason[256];
    v.st = px_error_set(err, PX_EINPUT, "%s: cannot walk the file (%s)", path,
                        px_h5_reason(reason, sizeof reason));
  }
  /* The schema: root attributes, /state, and each model group (with its moments) read as the
   * model its attributes describe. */
  int64_t step, iteration;
  px_status st = v.st;
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "step", &step, path, err);
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "iteration", &iteration, path, err);
  if (st == PX_OK && H5Aexists(f, "config") <= 0)
    st = px_error_set(err, PX_EINPUT, "%s: attribute 'config' is missing", path);
  if (st == PX_OK && H5Lexists(f, "state", H5P_DEFAULT) <= 0)
    st = px_error_set(err, PX_EINPUT, "%s: group '/state' is missing", path);
  /* The tokenizer rebuilt from its stored files; every model must hold its ids. */
  px_tokenizer tok;
  px_tokenizer_byte(&tok);
  if (st == PX_OK) st = px_ckpt_read_tokenizer_in(f, path, &tok, err);
  static const char *const groups[] = {"policy", "reference", "value", "reward"};
  int n_models = 0;
  for (int i = 0; i < 4 && st == PX_OK; i++) {
    if (H5Lexists(f, groups[i], H5P_DEFAULT) <= 0) continue;
    n_models++;
    char optim[64];
    snprintf(optim, sizeof optim, "optim/%s", groups[i]);
    int has_optim = H5Lexists(f, "optim", H5P_DEFAULT) > 0 && H5Lexists(f, optim, H5P_DEFAULT) > 0;
    px_gpt_config mc;
    st = px_ckpt_read_config(path, groups[i], &mc, err);
    if (st == PX_OK) {
      char what[4300];
      snprintf(what, sizeof what, "%s: /%s", path, groups[i]);
      st = px_tokenizer_check_vocab(&tok, mc.vocab_size, what, err);
    }
    if (st != PX_OK) break;
    px_gpt model;
    px_gpt_build(&model, &mc, 1, 1, has_optim);
    px_ckpt_model cm = {.group = groups[i], .model = &model, .optim = has_optim, .gain = 1};
    st = px_ckpt_read_model(path, &cm, err);
    px_gpt_free(&model);
  }
  if (st == PX_OK && n_models == 0)
    st = px_error_set(err, PX_EINPUT,
                      "%s: holds no model group (policy, reference, value or "
                      "reward)",
                      path);
  px_tokenizer_free(&tok);
  return px_ckpt_closed(H5Fclose(f), path, st, err);
}
