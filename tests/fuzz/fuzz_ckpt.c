/*
 * fuzz_ckpt.c — the checkpoint loaders (checkpoint.h), structure-aware: the input is a recipe
 * for a checkpoint file (fuzz_h5.h says why), written with the HDF5 API, then given to what
 * reads checkpoints: px_ckpt_check (ckpt verify, and --resume auto choosing a file),
 * px_ckpt_read_state and px_ckpt_load (--resume, ppo.policy, rm.init), px_ckpt_read_tokenizer,
 * px_ckpt_info. Each must
 * return PX_OK or PX_EINPUT with a message; never crash, leak or allocate more than the file
 * holds.
 *
 * The recipe: the root attributes; for each model group present, its configuration attributes
 * (small valid values, or edges: 0, -1, huge), the head, a reward group's gain and bias (NaN,
 * infinite), every tensor of the model the attributes intend (missing, of another type or
 * shape, declaring a huge unstored shape, values NaN, infinite or huge, a chunk failing its
 * checksum), the Adam moments or not; /state's datasets (fuzz_h5.h's variants); a /tokenizer
 * group or none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5.h"
#include "proxima/checkpoint.h"
#include "proxima/ppo.h"
#include "proxima/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  px_fuzz_init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return 0;
}

/* One tensor of the intended model: as px_ckpt_write writes it (float32, chunked, Fletcher-32)
 * or not, as the recipe says. */
static void px_fz_tensor(hid_t g, const px_gpt_tensor *t, px_fuzz_in *in) {
  int how = px_fuzz_pick(in, 16);
  if (how == 1) return; /* missing */
  int rank = t->ndim;
  hsize_t dims[4] = {1, 1, 1, 1};
  for (int i = 0; i < rank; i++) dims[i] = t->shape[i];
  hid_t ftype = how == 2 ? H5T_STD_I32LE : how == 3 ? H5T_IEEE_F64BE : H5T_IEEE_F32LE;
  if (how == 4) dims[0] += 1;
  if (how == 5) rank = rank < 3 ? rank + 1 : rank - 1;
  int unstored = how == 6;
  if (unstored) dims[0] = (hsize_t)1 << (30 + px_fuzz_pick(in, 30));
  hsize_t count = 1;
  for (int i = 0; i < rank; i++) count *= dims[i];
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk[4];
  for (int i = 0; i < rank; i++) chunk[i] = dims[i];
  if (unstored) chunk[0] = 1;
  H5Pset_chunk(dcpl, rank, chunk);
  if (how != 7) H5Pset_fletcher32(dcpl);
  hid_t d = H5Dcreate2(g, t->name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d >= 0 && !unstored) {
    float *v = malloc((size_t)count * sizeof *v);
    int fill = px_fuzz_pick(in, 8);
    for (hsize_t i = 0; i < count; i++)
      v[i] = fill == 0 ? NAN : fill == 1 ? INFINITY : fill == 2 ? -3e38f : 0.01f * (float)(i % 7);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
    if (how != 7) px_fz_corrupt(d, in);
  }
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static void px_fz_tensors(hid_t g, const px_gpt *m, px_fuzz_in *in) {
  for (int i = 0; i < m->n_tensors; i++) px_fz_tensor(g, &m->tensors[i], in);
}

static const char *const px_groups[] = {"policy", "reference", "value", "reward"};

static void px_fz_model(hid_t file, int which, px_fuzz_in *in) {
  const char *group = px_groups[which];
  int lm = which < 2;
  if (px_fuzz_pick(in, 8) == 0) lm = !lm;
  /* one statement per draw: the order of the recipe's bytes must not depend on the compiler */
  px_gpt_config c;
  c.head = lm ? PX_GPT_HEAD_LM : PX_GPT_HEAD_SCALAR;
  c.n_head = 1 << px_fuzz_pick(in, 2);
  c.vocab_size = PX_TOK_BYTE_IDS + px_fuzz_pick(in, 2);
  c.max_seq_len = 2 + px_fuzz_pick(in, 3);
  c.n_layer = 1 + px_fuzz_pick(in, 2);
  c.n_embd = c.n_head * (1 + px_fuzz_pick(in, 3));
  hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return;
  /* the attributes describe c, or (sometimes) something else */
  const char *names[5] = {"vocab_size", "max_seq_len", "n_layer", "n_head", "n_embd"};
  int v[5] = {c.vocab_size, c.max_seq_len, c.n_layer, c.n_head, c.n_embd};
  for (int i = 0; i < 5; i++) px_fz_attr(g, names[i], PX_FZ_INT, "", px_fuzz_int(in, v[i]), 1, in);
  px_fz_attr(g, "head", PX_FZ_STR, px_fuzz_pick(in, 16) ? (lm ? "lm" : "scalar") : "LM", 0, 0, in);
  if (which == 3 || px_fuzz_pick(in, 8) == 0) {
    px_fz_attr(g, "gain", PX_FZ_REAL, "", 1, px_fuzz_real(in, 1.5), in);
    px_fz_attr(g, "bias", PX_FZ_REAL, "", 0, px_fuzz_real(in, -0.5), in);
  }
  px_gpt model;
  px_gpt_build(&model, &c, 1, 1, 0);
  px_fz_tensors(g, &model, in);
  H5Gclose(g);
  if (px_fuzz_pick(in, 2)) { /* the Adam moments */
    char name[64];
    snprintf(name, sizeof name, "/optim/%s", group);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t og = H5Gcreate2(file, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (og >= 0) {
      px_fz_attr(og, "step", PX_FZ_INT, "", px_fuzz_int(in, 3), 3, in);
      for (int k = 0; k < 2; k++) {
        if (px_fuzz_pick(in, 16) == 0) continue;
        hid_t mg = H5Gcreate2(og, k ? "v" : "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (mg >= 0) {
          px_fz_tensors(mg, &model, in);
          H5Gclose(mg);
        }
      }
      H5Gclose(og);
    }
  }
  px_gpt_free(&model);
}

static const char *const px_state_names[] = {
#define PX_FZ_NAME(s, type, name) #name,
    PX_PPO_STATE(PX_FZ_NAME, )
#undef PX_FZ_NAME
};
static const int px_state_is_int[] = {
#define PX_FZ_INT_(s, type, name) sizeof(type) == sizeof(int64_t) && (type)0.5 == 0,
    PX_PPO_STATE(PX_FZ_INT_, )
#undef PX_FZ_INT_
};
enum { PX_N_STATE = sizeof px_state_names / sizeof px_state_names[0] };

static int px_make_file(const char *path, px_fuzz_in *in) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return -1;
  const char *format = px_fuzz_pick(in, 8) ? "proxima-checkpoint" : "proxima-dataset";
  px_fz_attr(file, "format", PX_FZ_STR, format, 1, 1.0, in);
  px_fz_attr(file, "format_version", PX_FZ_INT, "1", px_fuzz_int(in, 1), 1.0, in);
  px_fz_attr(file, "step", PX_FZ_INT, "", px_fuzz_int(in, 10), 10, in);
  px_fz_attr(file, "iteration", PX_FZ_INT, "", px_fuzz_int(in, 2), 2, in);
  px_fz_attr(file, "config", PX_FZ_STR, "[run]\nseed = 1\n", 0, 0, in);
  for (int m = 0; m < 4; m++)
    if (px_fuzz_pick(in, 3) == 0 || (m == 0 && px_fuzz_pick(in, 2))) px_fz_model(file, m, in);
  if (px_fuzz_pick(in, 8)) {
    hid_t g = H5Gcreate2(file, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int i = 0; g >= 0 && i < PX_N_STATE; i++) {
      if (px_fuzz_pick(in, 16) == 0) continue;
      if (px_state_is_int[i]) {
        int64_t v = px_fuzz_int(in, 7);
        px_fz_dataset(g, px_state_names[i], H5T_NATIVE_INT64, &v, 1, in);
      } else {
        double v = px_fuzz_real(in, 0.25);
        px_fz_dataset(g, px_state_names[i], H5T_NATIVE_DOUBLE, &v, 1, in);
      }
    }
    if (g >= 0) H5Gclose(g);
  }
  /* The tokenizer last, so that a recipe that ends before it (the older seeds) has none: the
   * byte tokenizer, as a checkpoint written before tokenizers were stored. Otherwise its
   * attributes, as intended or not, for the byte kind, another name, or gpt2 with the files'
   * text from the recipe (up to 64 KiB each, any bytes) in the datasets vocab and merges, and a
   * hash the recipe may spell out (the seeds give a small vocabulary's right one). */
  if (px_fuzz_pick(in, 2)) {
    px_tokenizer bytes;
    px_tokenizer_byte(&bytes);
    static const char *const kinds[] = {"byte", "gpt2", "bytes", ""};
    const int gpt2 = px_fuzz_pick(in, 4);
    const char *kind = kinds[gpt2];
    char hash[65] = "0123456789abcdef";
    int how_hash = px_fuzz_pick(in, 4);
    if (how_hash == 1)
      for (int i = 0; i < 64; i++) hash[i] = (char)px_fuzz_u8(in), hash[i + 1] = '\0';
    else if (how_hash > 1)
      memcpy(hash, bytes.hash, sizeof hash);
    /* the usual ids: the byte tokenizer's, or the seeds' small gpt2 vocabulary's (256 bytes, two
     * merges' tokens, <|endoftext|> at 258) */
    const int64_t n_vocab = gpt2 == 1 ? 259 : bytes.n_vocab, pad = gpt2 == 1 ? 259 : bytes.pad;
    const int64_t bos = gpt2 == 1 ? 258 : bytes.bos, eos = gpt2 == 1 ? 258 : bytes.eos;
    hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) {
      px_fz_attr(g, "kind", PX_FZ_STR, kind, 0, 0, in);
      px_fz_attr(g, "sha256", PX_FZ_STR, hash, 0, 0, in);
      px_fz_attr(g, "n_vocab", PX_FZ_INT, "", px_fuzz_int(in, n_vocab), 256, in);
      px_fz_attr(g, "pad_id", PX_FZ_INT, "", px_fuzz_int(in, pad), 0, in);
      px_fz_attr(g, "bos_id", PX_FZ_INT, "", px_fuzz_int(in, bos), 0, in);
      px_fz_attr(g, "eos_id", PX_FZ_INT, "", px_fuzz_int(in, eos), 0, in);
      for (int k = 0; gpt2 == 1 && k < 2; k++) {
        size_t n = (size_t)px_fuzz_u8(in) << 8;
        n |= px_fuzz_u8(in);
        int64_t *text = malloc((n ? n : 1) * sizeof *text);
        for (size_t i = 0; i < n; i++) text[i] = px_fuzz_u8(in);
        px_fz_dataset(g, k ? "merges" : "vocab", H5T_NATIVE_INT64, text, n, in);
        free(text);
      }
      H5Gclose(g);
    }
  }
  return H5Fclose(file) < 0 ? -1 : 0;
}

static void px_expect(const char *what, px_status st, const px_error *err) {
  px_fuzz_say(what, (int)st, st == PX_OK ? "" : err->msg);
  if (st != PX_OK && !(st == PX_EINPUT && err->msg[0]))
    fprintf(stderr, "fuzz: status %d, message '%s'\n", (int)st, err->msg);
  PX_FUZZ_CHECK(st == PX_OK || (st == PX_EINPUT && err->msg[0]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  px_fuzz_in in = {data, size, 0};
  char path[600];
  px_fuzz_path(path, sizeof path, "ckpt-00000010.h5");
  if (px_make_file(path, &in) == 0) {
    px_error err = {""};
    px_expect("check", px_ckpt_check(path, &err), &err);

    px_ppo_state state;
    px_ckpt_var vars[] = {PX_PPO_STATE(PX_CKPT_VAR, &state)};
    err.msg[0] = '\0';
    px_expect("read_state", px_ckpt_read_state(path, vars, PX_N_STATE, &err), &err);

    for (int m = 0; m < 4; m++) {
      px_gpt model;
      double gain = 0, bias = 0;
      err.msg[0] = '\0';
      px_status st = px_ckpt_load(path, px_groups[m], m < 2 ? PX_GPT_HEAD_LM : PX_GPT_HEAD_SCALAR,
                                  1, 0, m == 2, &model, &gain, &bias, &err);
      px_expect(px_groups[m], st, &err);
      if (st == PX_OK) px_gpt_free(&model);
    }

    px_tokenizer tok;
    err.msg[0] = '\0';
    px_status st = px_ckpt_read_tokenizer(path, &tok, &err);
    px_expect("tokenizer", st, &err);
    if (st == PX_OK) {
      PX_FUZZ_CHECK(tok.n_ids >= tok.n_vocab && tok.pad != tok.eos);
      px_tokenizer_free(&tok);
    }

    FILE *devnull = fopen("/dev/null", "w");
    err.msg[0] = '\0';
    px_expect("info", px_ckpt_info(path, devnull, &err), &err);
    fclose(devnull);
  }
  remove(path);
  return 0;
}
