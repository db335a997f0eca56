/*
 * fuzz_rollout.c — the rollout-file reader (px_rollout_read, rollout.h), structure-aware: the
 * input is a recipe for a rollout file (fuzz_h5.h says why), written with the HDF5 API and then
 * read by the reader on one process, as one part of several. Whatever the file, the reader must
 * return PX_OK with a well-formed share of the rows (the rows it stores, where the recipe wrote
 * them as intended), or PX_EINPUT (PX_ERUN for a failed close) with a message naming the file
 * and nothing allocated; never crash, leak or allocate more than the file holds.
 *
 * The recipe: the part read and whether the attributes are wanted; N (<= 6) rows of P, R (<= 8)
 * positions, and sometimes a declared row count far larger than the rows stored; the root
 * attributes (each as intended, missing, mistyped, an array: px_fz_attr); each row's prompt
 * and response lengths, one length overwritten with an edge value, one mask byte overwritten;
 * for each of the 11 datasets, nothing, a group, a dangling link, or the dataset (px_fz_table:
 * types, ranks, shapes, layouts, declared sizes, a bad checksum); the file truncated, removed
 * or replaced by bytes that are not HDF5.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_h5.h"
#include "proxima/rl.h"
#include "proxima/rollout.h"
#include "proxima/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  px_fuzz_init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return 0;
}

enum { PX_FZ_MAX_N = 6, PX_FZ_MAX_POS = 8, PX_FZ_FIELDS = 11 };

/* What the recipe intends the file to hold: N stored rows of P + R positions, declared as
 * n_decl rows. */
typedef struct px_fz_rows {
  int64_t N, P, R, n_decl;
  int32_t tokens[PX_FZ_MAX_N * 2 * PX_FZ_MAX_POS];
  int32_t prompt_len[PX_FZ_MAX_N], response_len[PX_FZ_MAX_N];
  float lp[PX_FZ_MAX_N * PX_FZ_MAX_POS], ref[PX_FZ_MAX_N * PX_FZ_MAX_POS];
  float values[PX_FZ_MAX_N * PX_FZ_MAX_POS], rewards[PX_FZ_MAX_N * PX_FZ_MAX_POS];
  float adv[PX_FZ_MAX_N * PX_FZ_MAX_POS], returns[PX_FZ_MAX_N * PX_FZ_MAX_POS];
  uint8_t mask[PX_FZ_MAX_N * PX_FZ_MAX_POS];
  float score[PX_FZ_MAX_N];
  int exact[PX_FZ_FIELDS]; /* written with the intended file type: reads back bit for bit */
} px_fz_rows;

/* The datasets in rollout.h's order: name, intended element (0 int32, 1 float32, 2 uint8),
 * rank. */
static const char *const px_fz_names[PX_FZ_FIELDS] = {
    "tokens",  "prompt_len", "response_len", "logprobs", "ref_logprobs", "values",
    "rewards", "advantages", "returns",      "mask",     "score"};
static const int px_fz_elem[PX_FZ_FIELDS] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 1};
static const int px_fz_rank[PX_FZ_FIELDS] = {2, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1};

static hid_t px_fz_mem(int elem) {
  return elem == 0 ? H5T_NATIVE_INT32 : elem == 1 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
}

/* The intended file type (how >= 8) or another: of another size or class, a string, or of the
 * same class and size (another byte order or sign, which the reader accepts). */
static hid_t px_fz_ftype(int elem, int how) {
  hid_t t;
  switch (how) {
  case 0: return H5Tcopy(H5T_STD_I64LE);
  case 1: return H5Tcopy(H5T_STD_I16BE);
  case 2: return H5Tcopy(H5T_STD_U8LE);
  case 3: return H5Tcopy(H5T_STD_I8LE);
  case 4: return H5Tcopy(H5T_IEEE_F64BE);
  case 5: return H5Tcopy(H5T_IEEE_F32BE);
  case 6: return H5Tcopy(H5T_STD_U32BE);
  case 7:
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 8);
    return t;
  default: return H5Tcopy(elem == 0 ? H5T_STD_I32LE : elem == 1 ? H5T_IEEE_F32LE : H5T_STD_U8LE);
  }
}

/* Dataset name on loc whose intended content is v: rows [n_decl, vcols] (rank 2) or [n_decl]
 * (rank 1) of element elem, of which the first n are held in v. The recipe picks the file type
 * (px_fz_ftype), the shape (as intended, scalar, the other rank, another row or column count,
 * a huge declared row count with only the first rows stored, a growable first dimension), the
 * layout (contiguous, chunked with or without Fletcher-32, compact) and one corrupted chunk.
 * Returns whether the file type is the intended one. The same recipe as px_fz_dataset, for
 * 2-D tables and with the intended type as the usual choice. */
static int px_fz_table(hid_t loc, const char *name, int elem, int vrank, const void *v, int64_t n,
                       int64_t n_decl, int64_t vcols, px_fuzz_in *in) {
  int how_type = px_fuzz_pick(in, 16), how_shape = px_fuzz_pick(in, 16);
  int how_layout = px_fuzz_pick(in, 4);
  hid_t ftype = px_fz_ftype(elem, how_type), mem = px_fz_mem(elem);
  int rank = vrank, grow = 0;
  hsize_t dims[2] = {(hsize_t)n_decl, (hsize_t)(vrank == 2 ? vcols : 1)};
  switch (how_shape) {
  case 0: rank = 0; break;
  case 1:
    rank = 3 - vrank;
    dims[1] = vrank == 1 ? 1 + (hsize_t)px_fuzz_pick(in, 3) : 1;
    break;
  case 2: dims[0] += 1 + (hsize_t)px_fuzz_pick(in, 4); break;
  case 3: dims[0] = dims[0] > 0 ? dims[0] - 1 : 0; break;
  case 4:
    if (vrank == 1)
      rank = 2, dims[1] = 1;
    else
      dims[1] = (hsize_t)px_fuzz_pick(in, (int)vcols + 2);
    break;
  case 5: dims[0] = (px_fuzz_u64(in) >> 8) | 1; break; /* anything below 2^56 */
  case 6: dims[0] = (hsize_t)1 << (32 + px_fuzz_pick(in, 30)); break;
  case 7: grow = 1; break;
  default: break;
  }
  hsize_t cols = rank == 2 ? dims[1] : 1;
  hsize_t stored = rank == 0 ? (n > 0) : (hsize_t)n < dims[0] ? (hsize_t)n : dims[0];
  int huge = rank > 0 && dims[0] > (hsize_t)n + 16;
  hsize_t maxdims[2] = {grow ? H5S_UNLIMITED : dims[0], dims[1]};
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(dcpl, 0);
  int chunked = rank > 0 && (dims[0] > 0 || grow) && cols > 0 &&
                (how_layout == 1 || how_layout == 2 || huge || grow);
  if (chunked) {
    hsize_t chunk[2] = {dims[0] == 0 ? 1 : dims[0] < 64 ? dims[0] : 64, cols};
    H5Pset_chunk(dcpl, rank, chunk);
    if (how_layout != 1) H5Pset_fletcher32(dcpl);
  } else if (how_layout == 3 && (rank == 0 || dims[0] * cols < 1024)) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  }
  hid_t d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d >= 0 && stored > 0 && cols > 0) {
    /* the first `stored` rows: v's where the columns agree, zeros after (a string type gets
     * zero bytes, 8 to an element) */
    int str = how_type == 7;
    size_t es = str ? 8 : H5Tget_size(mem);
    char *buf = calloc((size_t)(stored * cols), es);
    for (hsize_t r = 0; r < stored && !str; r++)
      for (hsize_t c = 0; c < cols && c < (hsize_t)vcols; c++)
        memcpy(buf + (r * cols + c) * es, (const char *)v + (r * (hsize_t)vcols + c) * es, es);
    px_fz_write_first_rows(d, rank, stored, cols, str ? ftype : mem, buf);
    free(buf);
  }
  px_fz_finish(d, chunked && how_layout == 2 && stored > 0, dcpl, space, ftype, in);
  return how_type >= 8;
}

/* The rows: lengths from the recipe (one perhaps overwritten with an edge value), tokens and
 * values made from them, the mask as the prefix of response_len (one byte perhaps
 * overwritten). */
static void px_fz_fill(px_fz_rows *w, px_fuzz_in *in) {
  int64_t N = w->N, P = w->P, R = w->R, C = P + R;
  for (int64_t i = 0; i < N; i++) {
    w->prompt_len[i] = px_fuzz_pick(in, (int)P + 1);
    w->response_len[i] = px_fuzz_pick(in, (int)R + 1);
  }
  if (px_fuzz_pick(in, 4) == 0 && N > 0) {
    int32_t *len = px_fuzz_pick(in, 2) ? w->response_len : w->prompt_len;
    int at = px_fuzz_pick(in, (int)N);
    len[at] = (int32_t)px_fuzz_int(in, len[at]);
  }
  for (int64_t i = 0; i < N; i++) {
    int64_t pl = w->prompt_len[i], rl = w->response_len[i];
    pl = pl < 0 ? 0 : pl > P ? P : pl;
    rl = rl < 0 ? 0 : rl > R ? R : rl;
    for (int64_t c = 0; c < P; c++)
      w->tokens[i * C + c] = c >= pl  ? PX_TOK_BYTE_PAD
                             : c == 0 ? PX_TOK_BYTE_BOS
                                      : 'a' + (int)((i + c) % 26);
    for (int64_t t = 0; t < R; t++) {
      int32_t tok = t >= rl                     ? PX_TOK_BYTE_PAD
                    : t == rl - 1 && i % 2 == 0 ? PX_TOK_BYTE_EOS
                                                : '0' + (int)t;
      w->tokens[i * C + P + t] = tok;
      int64_t k = i * R + t;
      int real = t < rl;
      w->lp[k] = -0.25f * (float)(t + 1) - 0.01f * (float)i;
      w->ref[k] = w->lp[k] - 0.05f;
      w->values[k] = 0.5f * (float)t;
      w->rewards[k] = !real ? 0.0f : t == rl - 1 ? 1.0f : -0.01f;
      w->adv[k] = real ? 0.1f * (float)(t - i) : 0.0f;
      w->returns[k] = real ? w->adv[k] + w->values[k] : 0.0f;
      w->mask[k] = (uint8_t)real;
    }
    w->score[i] = 0.5f * (float)i - 1.0f;
  }
  if (px_fuzz_pick(in, 4) == 0 && N > 0) {
    int at = px_fuzz_pick(in, (int)(N * R));
    w->mask[at] = px_fuzz_u8(in);
  }
}

static const void *px_fz_field(const px_fz_rows *w, int f) {
  const void *p[PX_FZ_FIELDS] = {w->tokens,  w->prompt_len, w->response_len, w->lp,
                                 w->ref,     w->values,     w->rewards,      w->adv,
                                 w->returns, w->mask,       w->score};
  return p[f];
}

static int64_t px_fz_cols(const px_fz_rows *w, int f) {
  return f == 0 ? w->P + w->R : px_fz_rank[f] == 1 ? 1 : w->R;
}

static const char *const px_fz_kl[] = {"k1", "k3", "k2", ""};

/* The file: returns 0 when HDF5 could write it (it may then be truncated, removed or replaced
 * by the recipe: that is still a file for the reader to refuse). */
static int px_make_file(const char *path, px_fz_rows *w, px_fuzz_in *in) {
  /* one statement per draw: the order of the recipe's bytes must not depend on the compiler */
  w->N = px_fuzz_pick(in, PX_FZ_MAX_N + 1);
  w->P = 1 + px_fuzz_pick(in, PX_FZ_MAX_POS);
  w->R = 1 + px_fuzz_pick(in, PX_FZ_MAX_POS);
  w->n_decl = w->N;
  if (px_fuzz_pick(in, 8) == 0) w->n_decl = (int64_t)1 << (8 + px_fuzz_pick(in, 23));
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return -1;
  const char *format = px_fuzz_pick(in, 8) ? "proxima-rollouts" : "proxima-dataset";
  px_fz_attr(file, "format", PX_FZ_STR, format, 1, 1.0, in);
  px_fz_attr(file, "format_version", PX_FZ_INT, "1", px_fuzz_int(in, 1), 1.0, in);
  px_fz_attr(file, "n_rows", PX_FZ_INT, "n", px_fuzz_int(in, w->n_decl), (double)w->N, in);
  px_fz_attr(file, "prompt_positions", PX_FZ_INT, "P", px_fuzz_int(in, w->P), (double)w->P, in);
  px_fz_attr(file, "response_positions", PX_FZ_INT, "R", px_fuzz_int(in, w->R), (double)w->R, in);
  px_fz_attr(file, "iteration", PX_FZ_INT, "3", px_fuzz_int(in, 3), 3.0, in);
  px_fz_attr(file, "beta", PX_FZ_REAL, "0.05", 0, px_fuzz_real(in, 0.05), in);
  px_fz_attr(file, "gamma", PX_FZ_REAL, "1", 1, px_fuzz_real(in, 1.0), in);
  px_fz_attr(file, "lambda", PX_FZ_REAL, "0.95", 1, px_fuzz_real(in, 0.95), in);
  const char *kl = px_fz_kl[px_fuzz_pick(in, 4)];
  px_fz_attr(file, "kl_estimator", PX_FZ_STR, kl, 1, 1.0, in);
  px_fz_attr(file, "kl_clamp", PX_FZ_REAL, "inf", 10, px_fuzz_real(in, 10.0), in);
  px_fz_attr(file, "no_eos_penalty", PX_FZ_REAL, "-1", -1, px_fuzz_real(in, -1.0), in);
  px_fz_attr(file, "whiten_mean", PX_FZ_REAL, "0", 0, px_fuzz_real(in, 0.0), in);
  px_fz_attr(file, "whiten_std", PX_FZ_REAL, "1", 1, px_fuzz_real(in, 1.0), in);
  px_fz_attr(file, "whiten_eps", PX_FZ_REAL, "1e-8", 0, px_fuzz_real(in, 1e-8), in);
  px_fz_attr(file, "whiten_shift_mean", PX_FZ_INT, "1", px_fuzz_int(in, 1), 1.0, in);
  px_fz_attr(file, "pad_id", PX_FZ_INT, "", px_fuzz_int(in, PX_TOK_BYTE_PAD), PX_TOK_BYTE_PAD, in);
  px_fz_attr(file, "bos_id", PX_FZ_INT, "", px_fuzz_int(in, PX_TOK_BYTE_BOS), PX_TOK_BYTE_BOS, in);
  px_fz_attr(file, "eos_id", PX_FZ_INT, "", px_fuzz_int(in, PX_TOK_BYTE_EOS), PX_TOK_BYTE_EOS, in);

  px_fz_fill(w, in);
  for (int f = 0; f < PX_FZ_FIELDS; f++) {
    int how = px_fuzz_pick(in, 16);
    w->exact[f] = 0;
    if (how == 0) continue; /* missing */
    if (how == 1) {         /* a group in its place */
      hid_t g = H5Gcreate2(file, px_fz_names[f], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g >= 0) H5Gclose(g);
      continue;
    }
    if (how == 2) { /* a link to nothing */
      H5Lcreate_soft("/nowhere", file, px_fz_names[f], H5P_DEFAULT, H5P_DEFAULT);
      continue;
    }
    w->exact[f] = px_fz_table(file, px_fz_names[f], px_fz_elem[f], px_fz_rank[f], px_fz_field(w, f),
                              w->N, w->n_decl, px_fz_cols(w, f), in);
  }
  if (H5Fclose(file) < 0) return -1;

  int how_file = px_fuzz_pick(in, 32);
  if (how_file == 1) { /* cut short: the reader must see it at open */
    struct stat sb;
    int keep = px_fuzz_u8(in);
    if (stat(path, &sb) == 0 && truncate(path, (off_t)(sb.st_size * keep / 256)) != 0) return -1;
  } else if (how_file == 2) {
    remove(path);
  } else if (how_file == 3) {
    px_fuzz_write(path, "not an HDF5 file\n", 17);
  }
  return 0;
}

/* The reader's 11 arrays, in px_fz_names' order. */
static void px_fz_arrays(px_rollout *r, void *p[PX_FZ_FIELDS]) {
  void *q[PX_FZ_FIELDS] = {r->tokens,       r->prompt_len, r->response_len, r->logprobs,
                           r->ref_logprobs, r->values,     r->rewards,      r->advantages,
                           r->returns,      r->mask,       r->score};
  memcpy(p, q, sizeof q);
}

/* What PX_OK promises: this part's share of the declared rows, lengths within P and R, the
 * mask the prefix of response_len; and, where the recipe wrote a dataset as intended with the
 * intended P and R, the rows it stored, bit for bit. */
static void px_check_share(px_rollout *r, const px_fz_rows *w, int part, int parts) {
  int64_t lo, hi;
  PX_FUZZ_CHECK(r->n_global >= 0 && r->P >= 1 && r->R >= 1);
  px_comm_share(r->n_global, part, parts, &lo, &hi);
  PX_FUZZ_CHECK(r->first == lo && r->n == hi - lo);
  PX_FUZZ_CHECK(r->first >= 0 && r->n >= 0 && r->first + r->n <= r->n_global);
  PX_FUZZ_CHECK(r->tokens && r->prompt_len && r->response_len && r->logprobs && r->ref_logprobs);
  PX_FUZZ_CHECK(r->values && r->rewards && r->advantages && r->returns && r->mask && r->score);
  for (int64_t i = 0; i < r->n; i++) {
    int64_t rl = r->response_len[i];
    PX_FUZZ_CHECK(r->prompt_len[i] >= 0 && r->prompt_len[i] <= r->P);
    PX_FUZZ_CHECK(rl >= 0 && rl <= r->R);
    for (int64_t t = 0; t < r->R; t++) PX_FUZZ_CHECK(r->mask[i * r->R + t] == (t < rl));
  }
  if (r->P != w->P || r->R != w->R) return;
  void *got[PX_FZ_FIELDS];
  px_fz_arrays(r, got);
  for (int f = 0; f < PX_FZ_FIELDS; f++) {
    if (!w->exact[f]) continue;
    size_t row = (size_t)px_fz_cols(w, f) * (px_fz_elem[f] == 2 ? 1 : 4);
    for (int64_t i = 0; i < r->n && r->first + i < w->N; i++)
      PX_FUZZ_CHECK(!memcmp((const char *)got[f] + (size_t)i * row,
                            (const char *)px_fz_field(w, f) + (size_t)(r->first + i) * row, row));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  px_fuzz_in in = {data, size, 0};
  int parts = 1 + px_fuzz_pick(&in, 4), part = px_fuzz_pick(&in, parts);
  int want_attrs = px_fuzz_pick(&in, 4) != 0;
  char path[600];
  px_fuzz_path(path, sizeof path, "rollouts-00000003.h5");
  px_fz_rows *w = calloc(1, sizeof *w);
  if (px_make_file(path, w, &in) == 0) {
    px_rollout r;
    px_rollout_attrs attrs;
    px_error err = {""};
    px_status st =
        px_rollout_read(path, PX_IO_ALONE, part, parts, &r, want_attrs ? &attrs : NULL, &err);
    px_fuzz_say("read", (int)st, st == PX_OK ? "" : err.msg);
    if (st == PX_OK) {
      px_check_share(&r, w, part, parts);
      if (want_attrs) {
        PX_FUZZ_CHECK(attrs.kl_kind == PX_RL_KL_K1 || attrs.kl_kind == PX_RL_KL_K3);
        PX_FUZZ_CHECK(attrs.whiten_shift_mean == 0 || attrs.whiten_shift_mean == 1);
        /* the tokenizer's specials, as stored: ids, not checked against any constant */
        const int64_t ids[3] = {attrs.pad_id, attrs.bos_id, attrs.eos_id};
        for (int k = 0; k < 3; k++) PX_FUZZ_CHECK(ids[k] >= 0 && ids[k] < (1 << 24));
      }
    } else {
      if (!((st == PX_EINPUT || st == PX_ERUN) && strstr(err.msg, path)))
        fprintf(stderr, "fuzz: status %d, message '%s'\n", (int)st, err.msg);
      PX_FUZZ_CHECK((st == PX_EINPUT || st == PX_ERUN) && strstr(err.msg, path));
      void *got[PX_FZ_FIELDS];
      px_fz_arrays(&r, got);
      for (int f = 0; f < PX_FZ_FIELDS; f++) PX_FUZZ_CHECK(!got[f]); /* out holds nothing */
    }
    px_rollout_free(&r);
  }
  free(w);
  remove(path);
  return 0;
}
