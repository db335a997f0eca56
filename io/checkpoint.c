/*
 * checkpoint.c — HDF5 checkpoints of the models; the layout is in checkpoint.h.
 */
#include "proxima/checkpoint.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5util.h"
#include "proxima/fsutil.h"

#define PX_CKPT_FORMAT "proxima-checkpoint"
#define PX_CKPT_VERSION 1

static px_status px_ckpt_h5_fail(px_error *err, const char *path, const char *what) {
  char reason[256];
  px_h5_reason(reason, sizeof reason);
  return px_error_set(err, PX_ERUN, "cannot write checkpoint %s: %s%s%s", path, what,
                      reason[0] ? ": " : "", reason);
}

static void px_tensor_dims(const px_gpt_tensor *t, hsize_t *dims) {
  for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
}

/* One model group (and its moments) under file. Returns <0 on an HDF5 failure. */
static herr_t px_write_model(hid_t file, hid_t gcpl, const px_ckpt_model *m) {
  const px_gpt *model = m->model;
  const px_gpt_config *c = &model->config;
  hid_t g = H5Gcreate2(file, m->group, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  if (g < 0) return -1;
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
  for (int i = 0; i < model->n_tensors && rc >= 0; i++) {
    const px_gpt_tensor *t = &model->tensors[i];
    hsize_t dims[3];
    px_tensor_dims(t, dims);
    rc |= px_h5_write_f32(g, t->name, t->ndim, dims, model->params + t->offset);
  }
  if (H5Gclose(g) < 0) rc = -1;
  if (rc < 0 || !m->optim) return rc;

  char name[256];
  snprintf(name, sizeof name, "/optim/%s", m->group);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) return -1;
  hid_t og = H5Gcreate2(file, name, lcpl, gcpl, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (og < 0) return -1;
  rc |= px_h5_attr_write_i64(og, "step", m->optim_step);
  for (int which = 0; which < 2 && rc >= 0; which++) {
    hid_t mg = H5Gcreate2(og, which ? "v" : "m", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (mg < 0) {
      rc = -1;
      break;
    }
    const float *buf = which ? model->v : model->m;
    for (int i = 0; i < model->n_tensors && rc >= 0; i++) {
      const px_gpt_tensor *t = &model->tensors[i];
      hsize_t dims[3];
      px_tensor_dims(t, dims);
      rc |= px_h5_write_f32(mg, t->name, t->ndim, dims, buf + t->offset);
    }
    if (H5Gclose(mg) < 0) rc = -1;
  }
  if (H5Gclose(og) < 0) rc = -1;
  return rc;
}

/* Keeps the newest keep_last ckpt-*.h5 of dir (by step, from the names). */
static void px_prune(const char *dir, int keep_last) {
  if (keep_last <= 0) return;
  DIR *d = opendir(dir);
  if (!d) return;
  int64_t *steps = NULL;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    long long s;
    int used = 0;
    if (sscanf(e->d_name, "ckpt-%lld.h5%n", &s, &used) == 1 && e->d_name[used] == '\0') {
      if (n == cap) cap = 2 * cap + 16, steps = px_realloc(steps, cap * sizeof *steps);
      steps[n++] = s;
    }
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) { /* remove each that keep_last others outrank */
    size_t newer = 0;
    for (size_t j = 0; j < n; j++) newer += steps[j] > steps[i];
    if (newer >= (size_t)keep_last) {
      char path[4200];
      snprintf(path, sizeof path, "%s/ckpt-%08lld.h5", dir, (long long)steps[i]);
      remove(path);
    }
  }
  free(steps);
}

px_status px_ckpt_write(const char *dir, int64_t step, int64_t iteration, const char *config_text,
                        const px_ckpt_model *models, int n_models, int keep_last, px_error *err) {
  px_h5_quiet();
  PX_TRY(px_fs_mkdirs(dir, err));
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/ckpt-%08lld.h5", dir, (long long)step);
  px_fs_temp_name(tmp, sizeof tmp, path);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0)
    return px_ckpt_h5_fail(err, path, "H5Pcreate");
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (file < 0) return px_ckpt_h5_fail(err, path, "cannot create the file");
  herr_t rc = 0;
  rc |= px_h5_attr_write_str(file, "format", PX_CKPT_FORMAT);
  rc |= px_h5_attr_write_i64(file, "format_version", PX_CKPT_VERSION);
  rc |= px_h5_attr_write_i64(file, "step", step);
  rc |= px_h5_attr_write_i64(file, "iteration", iteration);
  rc |= px_h5_attr_write_str(file, "config", config_text ? config_text : "");
  hid_t gcpl = px_h5_gcpl();
  for (int i = 0; i < n_models && rc >= 0; i++) rc |= px_write_model(file, gcpl, &models[i]);
  if (gcpl >= 0) H5Pclose(gcpl);
  px_status st = rc < 0 ? px_ckpt_h5_fail(err, path, "writing the datasets failed") : PX_OK;
  if (H5Fclose(file) < 0 && st == PX_OK) st = px_ckpt_h5_fail(err, path, "closing failed");
  if (st != PX_OK) {
    remove(tmp);
    return st;
  }
  PX_TRY(px_fs_publish(tmp, path, err));
  /* LATEST names the file relative to dir, so a run directory can be moved. */
  char latest[4200], line[300];
  snprintf(latest, sizeof latest, "%s/LATEST", dir);
  int len = snprintf(line, sizeof line, "ckpt-%08lld.h5\n", (long long)step);
  PX_TRY(px_fs_write_atomic(latest, line, (size_t)len, err));
  px_prune(dir, keep_last);
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
  px_h5_quiet();
  *file = H5I_INVALID_HID;
  if (!px_fs_exists(path)) return px_error_set(err, PX_EINPUT, "%s: no such file", path);
  if (px_h5_is_hdf5(path) <= 0) return px_error_set(err, PX_EINPUT, "%s: not an HDF5 file", path);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    char reason[256];
    return px_error_set(err, PX_EINPUT, "%s: cannot open (%s)", path,
                        px_h5_reason(reason, sizeof reason));
  }
  char format[64] = "";
  int64_t version = 0;
  px_status st = px_h5_attr_read_str(f, "format", format, sizeof format, path, err);
  if (st == PX_OK && strcmp(format, PX_CKPT_FORMAT) != 0)
    st = px_error_set(err, PX_EINPUT, "%s: format is '%s', not a proxima checkpoint", path, format);
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "format_version", &version, path, err);
  if (st == PX_OK && version != PX_CKPT_VERSION)
    st = px_error_set(err, PX_EINPUT, "%s: format_version %lld, this proxima reads version %d",
                      path, (long long)version, PX_CKPT_VERSION);
  if (st != PX_OK) {
    H5Fclose(f);
    return st;
  }
  *file = f;
  return PX_OK;
}

static px_status px_open_group(hid_t file, const char *path, const char *group, hid_t *g,
                               px_error *err) {
  if (H5Lexists(file, group, H5P_DEFAULT) <= 0 || (*g = H5Gopen2(file, group, H5P_DEFAULT)) < 0)
    return px_error_set(err, PX_EINPUT, "%s: group '/%s' is missing", path, group);
  return PX_OK;
}

px_status px_ckpt_read_step(const char *path, int64_t *step, int64_t *iteration, px_error *err) {
  hid_t f;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_h5_attr_read_i64(f, "step", step, path, err);
  if (st == PX_OK) st = px_h5_attr_read_i64(f, "iteration", iteration, path, err);
  H5Fclose(f);
  return st;
}

px_status px_ckpt_read_config(const char *path, const char *group, px_gpt_config *config,
                              px_error *err) {
  hid_t f, g = H5I_INVALID_HID;
  PX_TRY(px_ckpt_open(path, &f, err));
  px_status st = px_open_group(f, path, group, &g, err);
  if (st != PX_OK) {
    H5Fclose(f);
    return st;
  }
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
  if (st == PX_OK && strcmp(head, "lm") && strcmp(head, "scalar"))
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
  }
  H5Gclose(g);
  H5Fclose(f);
  return st;
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
  if (st != PX_OK) {
    H5Fclose(f);
    return st;
  }
  char where[4300];
  snprintf(where, sizeof where, "%s: /%s", path, m->group);
  st = px_read_tensors(g, m->model, m->model->n_tensors, m->model->params, where, err);
  if (st == PX_OK && !strcmp(m->group, "reward")) {
    st = px_h5_attr_read_f64(g, "gain", &m->gain, where, err);
    if (st == PX_OK) st = px_h5_attr_read_f64(g, "bias", &m->bias, where, err);
  }
  H5Gclose(g);
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
        H5Gclose(mg);
      }
      H5Gclose(og);
    }
  }
  H5Fclose(f);
  return st;
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
    H5Gclose(g);
  }
  H5Fclose(f);
  return st;
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
  px_gpt_build(model, &mc, max_B, max_T > 0 ? max_T : mc.max_seq_len, trainable);
  px_ckpt_model cm = {group, model, 0, 0, 1, 0};
  px_status st = px_ckpt_read_model(path, &cm, err);
  if (st != PX_OK) {
    px_gpt_free(model);
    return st;
  }
  if (gain) *gain = cm.gain;
  if (bias) *bias = cm.bias;
  return PX_OK;
}
