/*
 * ckpt_info.c — what `proxima ckpt info` and `proxima ckpt verify` print about a checkpoint: a
 * summary read from its metadata (attributes, shapes, /state), and the verdict of px_ckpt_check
 * (every dataset read, every checksum verified, the schema checked) with the file's totals.
 * Neither writes; both read with the serial HDF5 driver, on one rank.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5util.h"
#include "proxima/checkpoint.h"

/* ---------------------------------------------------------------------------------------------
 * The file's totals: datasets and the bytes they occupy on disk
 * ------------------------------------------------------------------------------------------- */

typedef struct px_totals {
  int64_t datasets;
  uint64_t stored; /* H5Dget_storage_size summed: the data's bytes, checksums included */
} px_totals;

static herr_t px_totals_add(hid_t loc, const char *name, void *data) {
  px_totals *t = data;
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d < 0) return -1;
  t->datasets++;
  t->stored += H5Dget_storage_size(d);
  return H5Dclose(d);
}

/* Opens path (px_h5_open_read) into *f and counts its datasets into *t; on failure nothing is
 * left open. */
static px_status px_open_totals(const char *path, hid_t *f, px_totals *t, px_error *err) {
  PX_TRY(px_h5_open_read(path, MPI_COMM_NULL, f, err));
  *t = (px_totals){0, 0};
  if (px_h5_visit_datasets(*f, px_totals_add, t) >= 0) return PX_OK;
  char reason[256];
  px_status st = px_error_set(err, PX_EINPUT, "%s: cannot walk the file (%s)", path,
                              px_h5_reason(reason, sizeof reason));
  H5Fclose(*f); /* already failing */
  *f = H5I_INVALID_HID;
  return st;
}

/* The file's size in bytes, or -1. */
static long long px_file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* bytes as "12.3 MB" (decimal units, as the GB/s of the benchmarks). */
static const char *px_human_bytes(char *buf, size_t n, double bytes) {
  static const char *const unit[] = {"bytes", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 4) bytes /= 1000.0, u++;
  if (u == 0)
    snprintf(buf, n, "%.0f bytes", bytes);
  else
    snprintf(buf, n, "%.1f %s", bytes, unit[u]);
  return buf;
}

/* A double in the fewest digits that read back as the same value (0.1, not 0.10000000000000001). */
static const char *px_shortest(char *buf, size_t n, double x) {
  for (int digits = 6; digits <= 17; digits++) {
    snprintf(buf, n, "%.*g", digits, x);
    if (strtod(buf, NULL) == x) break;
  }
  return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Pieces of the summary
 * ------------------------------------------------------------------------------------------- */

/* The name of link i of group g into buf; PX_EINPUT when it cannot be read or does not fit. */
static px_status px_link_name(hid_t g, hsize_t i, char *buf, size_t n, const char *where,
                              px_error *err) {
  ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, n, H5P_DEFAULT);
  if (len < 0 || (size_t)len >= n)
    return px_error_set(err, PX_EINPUT, "%s: cannot read the name of member %llu", where,
                        (unsigned long long)i);
  return PX_OK;
}

/* The number of links in group g, or -1. */
static long long px_group_size(hid_t g) {
  H5G_info_t gi;
  return H5Gget_info(g, &gi) < 0 ? -1 : (long long)gi.nlinks;
}

/* Tensors (datasets directly under g) and the elements they hold, from their shapes. */
static px_status px_count_tensors(hid_t g, const char *where, int *tensors, int64_t *elements,
                                  px_error *err) {
  *tensors = 0, *elements = 0;
  long long n = px_group_size(g);
  if (n < 0) return px_error_set(err, PX_EINPUT, "%s: cannot list the group", where);
  for (long long i = 0; i < n; i++) {
    char name[256];
    PX_TRY(px_link_name(g, (hsize_t)i, name, sizeof name, where, err));
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    if (obj < 0) return px_error_set(err, PX_EINPUT, "%s: cannot open '%s'", where, name);
    int is_dataset = H5Iget_type(obj) == H5I_DATASET;
    hid_t space = is_dataset ? H5Dget_space(obj) : H5I_INVALID_HID;
    hssize_t points = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (space >= 0) H5Sclose(space);
    H5Oclose(obj);
    if (!is_dataset) continue;
    if (points < 0)
      return px_error_set(err, PX_EINPUT, "%s: cannot read the shape of dataset '%s'", where, name);
    (*tensors)++;
    *elements += (int64_t)points;
  }
  return PX_OK;
}

/* "1,234,567" */
static const char *px_grouped(char *buf, size_t n, int64_t v) {
  char digits[32];
  int len = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
  size_t o = 0;
  if (v < 0 && o + 1 < n) buf[o++] = '-';
  for (int i = 0; i < len && o + 1 < n; i++) {
    buf[o++] = digits[i];
    if ((len - 1 - i) % 3 == 0 && i != len - 1 && o + 1 < n) buf[o++] = ',';
  }
  buf[o] = '\0';
  return buf;
}

/* One model group: its configuration (checked as px_ckpt_read_config checks it), tensors and
 * parameters, a reward group's normalisation, and its Adam moments. */
static px_status px_info_model(hid_t f, const char *path, const char *group, FILE *out,
                               px_error *err) {
  px_gpt_config c;
  PX_TRY(px_ckpt_read_config(path, group, &c, err));
  char where[4400];
  snprintf(where, sizeof where, "%s: /%s", path, group);
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  if (g < 0) return px_error_set(err, PX_EINPUT, "%s: cannot open the group", where);
  int tensors;
  int64_t elements;
  px_status st = px_count_tensors(g, where, &tensors, &elements, err);
  double gain = 0.0, bias = 0.0;
  int reward = !strcmp(group, "reward");
  if (st == PX_OK && reward) st = px_h5_attr_read_f64(g, "gain", &gain, where, err);
  if (st == PX_OK && reward) st = px_h5_attr_read_f64(g, "bias", &bias, where, err);
  H5Gclose(g);
  PX_TRY(st);

  char count[40];
  fprintf(out, "  %-10s %s head: vocab %d, T %d, %d layers, %d heads, width %d\n", group,
          c.head == PX_GPT_HEAD_LM ? "lm" : "scalar", c.vocab_size, c.max_seq_len, c.n_layer,
          c.n_head, c.n_embd);
  fprintf(out, "  %-10s %d tensors, %s parameters\n", "", tensors,
          px_grouped(count, sizeof count, elements));
  if (reward) {
    char a[40], b[40];
    fprintf(out, "  %-10s normalisation: gain %s, bias %s\n", "", px_shortest(a, sizeof a, gain),
            px_shortest(b, sizeof b, bias));
  }

  /* The moments: /optim/<group> with attribute step and subgroups m and v. */
  char optim[64];
  snprintf(optim, sizeof optim, "optim/%s", group);
  if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0 || H5Lexists(f, optim, H5P_DEFAULT) <= 0) {
    fprintf(out, "  %-10s no Adam moments\n", "");
    return PX_OK;
  }
  snprintf(where, sizeof where, "%s: /%s", path, optim);
  hid_t og = H5Gopen2(f, optim, H5P_DEFAULT);
  if (og < 0) return px_error_set(err, PX_EINPUT, "%s: cannot open the group", where);
  int64_t step = 0;
  st = px_h5_attr_read_i64(og, "step", &step, where, err);
  int has_m = H5Lexists(og, "m", H5P_DEFAULT) > 0, has_v = H5Lexists(og, "v", H5P_DEFAULT) > 0;
  H5Gclose(og);
  PX_TRY(st);
  fprintf(out, "  %-10s Adam moments %s (step %lld)\n", "",
          has_m && has_v ? "m and v"
          : has_m        ? "m only, v MISSING"
          : has_v        ? "v only, m MISSING"
                         : "MISSING (m and v)",
          (long long)step);
  return PX_OK;
}

/* Every dataset of /state with its value: a single integer or floating-point number each. */
static px_status px_info_state(hid_t f, const char *path, FILE *out, px_error *err) {
  if (H5Lexists(f, "state", H5P_DEFAULT) <= 0) {
    fprintf(out, "  %-10s MISSING (no /state group)\n", "state");
    return PX_OK;
  }
  char where[4400];
  snprintf(where, sizeof where, "%s: /state", path);
  hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
  long long n = g < 0 ? -1 : px_group_size(g);
  if (n < 0) {
    if (g >= 0) H5Gclose(g);
    return px_error_set(err, PX_EINPUT, "%s: cannot open the group", where);
  }
  fprintf(out, "  %-10s %lld variable%s\n", "state", n, n == 1 ? "" : "s");
  px_status st = PX_OK;
  for (long long i = 0; i < n && st == PX_OK; i++) {
    char name[256], value[64] = "";
    st = px_link_name(g, (hsize_t)i, name, sizeof name, where, err);
    if (st != PX_OK) break;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t type = d < 0 ? H5I_INVALID_HID : H5Dget_type(d);
    hid_t space = d < 0 ? H5I_INVALID_HID : H5Dget_space(d);
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    char reason[256];
    if (d < 0 || space < 0 || H5Sget_simple_extent_npoints(space) != 1 ||
        (cls != H5T_INTEGER && cls != H5T_FLOAT)) {
      st = px_error_set(err, PX_EINPUT, "%s/%s is not a single integer or floating-point number",
                        where, name);
    } else if (cls == H5T_INTEGER) {
      int64_t v;
      if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
        st = px_error_set(err, PX_EINPUT, "%s/%s is damaged (%s)", where, name,
                          px_h5_reason(reason, sizeof reason));
      else
        snprintf(value, sizeof value, "%lld", (long long)v);
    } else {
      double v;
      if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
        st = px_error_set(err, PX_EINPUT, "%s/%s is damaged (%s)", where, name,
                          px_h5_reason(reason, sizeof reason));
      else
        px_shortest(value, sizeof value, v);
    }
    if (st == PX_OK) fprintf(out, "    %-20s %s\n", name, value);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (d >= 0) H5Dclose(d);
  }
  H5Gclose(g);
  return st;
}

/* The root attribute config (the resolved INI): its lines and its settings. */
static px_status px_info_config(hid_t f, const char *path, FILE *out, px_error *err) {
  char *text;
  PX_TRY(px_h5_attr_read_text(f, "config", &text, path, err));
  int lines = 0, settings = 0;
  for (const char *s = text; *s;) {
    size_t len = strcspn(s, "\n");
    const char *p = s + strspn(s, " \t");
    lines++;
    if (*p != ';' && *p != '#' && *p != '[' && memchr(s, '=', len)) settings++;
    s += len + (s[len] == '\n');
  }
  fprintf(out, "  %-10s %d line%s, %d setting%s (the resolved INI; h5dump -a config shows it)\n",
          "config", lines, lines == 1 ? "" : "s", settings, settings == 1 ? "" : "s");
  free(text);
  return PX_OK;
}

/* /tokenizer from its attributes (the files it stores are not read): kind, ids and hash; a
 * checkpoint without one is the byte tokenizer's (written before tokenizers were stored). */
static px_status px_info_tokenizer(hid_t f, const char *path, FILE *out, px_error *err) {
  if (H5Lexists(f, "tokenizer", H5P_DEFAULT) <= 0) {
    fprintf(out, "  %-10s byte (not stored: an older checkpoint)\n", "tokenizer");
    return PX_OK;
  }
  char where[4400], kind[32], hash[80];
  snprintf(where, sizeof where, "%s: /tokenizer", path);
  hid_t g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
  if (g < 0) return px_error_set(err, PX_EINPUT, "%s is not a group", where);
  int64_t ids[4] = {0};
  static const char *const names[4] = {"n_vocab", "pad_id", "bos_id", "eos_id"};
  px_status st = px_h5_attr_read_str(g, "kind", kind, sizeof kind, where, err);
  if (st == PX_OK) st = px_h5_attr_read_str(g, "sha256", hash, sizeof hash, where, err);
  for (int i = 0; i < 4 && st == PX_OK; i++)
    st = px_h5_attr_read_i64(g, names[i], &ids[i], where, err);
  H5Gclose(g);
  if (st == PX_OK)
    fprintf(out, "  %-10s %s: %lld tokens, BOS %lld, EOS %lld, PAD %lld, sha256 %.16s\n",
            "tokenizer", kind, (long long)ids[0], (long long)ids[2], (long long)ids[3],
            (long long)ids[1], hash);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * The two commands
 * ------------------------------------------------------------------------------------------- */

px_status px_ckpt_info(const char *file_or_dir, FILE *out, px_error *err) {
  char path[4300];
  PX_TRY(px_ckpt_resolve(file_or_dir, path, sizeof path, err));
  int64_t step, iteration;
  PX_TRY(px_ckpt_read_step(path, &step, &iteration, err)); /* also: is it a checkpoint */
  hid_t f;
  px_totals t;
  PX_TRY(px_open_totals(path, &f, &t, err));
  char size[40], data[40];
  long long bytes = px_file_size(path);
  fprintf(out, "%s\n", path);
  fprintf(out, "  %-10s %lld bytes (%s)\n", "size", bytes,
          px_human_bytes(size, sizeof size, (double)bytes));
  fprintf(out, "  %-10s proxima-checkpoint, version 1\n", "format");
  fprintf(out, "  %-10s %lld\n  %-10s %lld\n", "step", (long long)step, "iteration",
          (long long)iteration);
  fprintf(out, "  %-10s %lld (%s of data, checksums included)\n", "datasets", (long long)t.datasets,
          px_human_bytes(data, sizeof data, (double)t.stored));
  px_status st = px_info_tokenizer(f, path, out, err);
  static const char *const groups[] = {"policy", "reference", "value", "reward"};
  int n_models = 0;
  for (int i = 0; i < 4 && st == PX_OK; i++) {
    if (H5Lexists(f, groups[i], H5P_DEFAULT) <= 0) continue;
    n_models++;
    st = px_info_model(f, path, groups[i], out, err);
  }
  if (st == PX_OK && n_models == 0) fprintf(out, "  %-10s none\n", "models");
  if (st == PX_OK) st = px_info_state(f, path, out, err);
  if (st == PX_OK) st = px_info_config(f, path, out, err);
  H5Fclose(f);
  return st;
}

px_status px_ckpt_verify(const char *file_or_dir, FILE *out, px_error *err) {
  char path[4300];
  PX_TRY(px_ckpt_resolve(file_or_dir, path, sizeof path, err));
  PX_TRY(px_ckpt_check(path, err));
  hid_t f;
  px_totals t;
  PX_TRY(px_open_totals(path, &f, &t, err));
  H5Fclose(f);
  fprintf(out, "%s: ok (%lld datasets, %lld bytes)\n", path, (long long)t.datasets,
          px_file_size(path));
  return PX_OK;
}
