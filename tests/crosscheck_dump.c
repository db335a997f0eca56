/*
 * crosscheck_dump.c — the C half of the cross-check against an independent implementation
 * (issue 3, acceptance 2; the other half is tests/crosscheck.py, which runs PyTorch).
 *
 * Builds a model from the command-line sizes, initialises it (px_gpt_init, then a deterministic
 * perturbation of every tensor so that LayerNorm weights and biases are not 1 and 0, attention
 * is not uniform and the GELUs are off their linear part), writes it as a checkpoint
 * (px_ckpt_write: group "policy" for the LM head, "value" for the scalar head), runs one fixed
 * batch of B right-padded sequences of different lengths forward and backward, and writes what
 * it computed to an HDF5 file for the Python side to compare:
 *
 *   tokens [B,T] int32, lengths [B] int32;
 *   LM head:     targets [B,T] int32 (-1: none), weights [B,T], logits [B,T,V] (zero at padding),
 *                loss [] = the masked mean cross-entropy of px_gpt_crossentropy;
 *   scalar head: coef [B,T], values [B,T] (zero at padding),
 *                loss [] = sum over real positions of coef * value;
 *   /grads/<tensor>: dloss/dtensor, shaped as the tensor.
 *
 * Usage: crosscheck_dump --head lm|scalar --V 259 --T 16 --L 2 --H 2 --C 32 --B 3
 *                        --ckpt-dir DIR --out FILE.h5
 * A test tool: it uses the HDF5 C API directly, and any failure exits with status 2.
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/blas.h"
#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"

#define XC_H5(call)                                                                                \
  do {                                                                                             \
    if ((call) < 0) px_die(__FILE__, __LINE__, "%s failed", #call);                                \
  } while (0)

/* ---------------------------------------------------------------------------------------------
 * The fixed batch
 * ------------------------------------------------------------------------------------------- */

/* Sequence b's length: T, then shorter ones, all different while B <= T. */
static int32_t seq_length(int b, int T) {
  int len = T - (b * (T + 1)) / 3;
  return len < 1 ? 1 + b % T : len;
}

/* Tokens from a fixed pattern, right-padded with the last vocabulary entry (ignored there). */
static void fill_batch(int32_t *tokens, int32_t *lengths, int32_t *targets, float *weights,
                       float *coef, int B, int T, int V) {
  for (int b = 0; b < B; b++) {
    lengths[b] = seq_length(b, T);
    for (int t = 0; t < T; t++)
      tokens[b * T + t] =
          t < lengths[b] ? (int32_t)((b * 131 + t * 37 + t * t * 11 + 7) % V) : (int32_t)(V - 1);
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int i = b * T + t;
      int real = t < lengths[b];
      /* next token, and at the last real position some fixed token (an EOS); one real position
       * of every sequence longer than 3 has no target, to check that it is skipped */
      targets[i] = !real ? -1 : t + 1 < lengths[b] ? tokens[i + 1] : (int32_t)((b * 17 + 3) % V);
      if (real && t == 2 && lengths[b] > 3) targets[i] = -1;
      /* weights: none on the first two positions (a "prompt"), then a fixed non-uniform mask */
      weights[i] = t < 2 ? 0.0f : 0.25f + 0.25f * (float)((b * 7 + t * 3) % 5);
      coef[i] = real ? (float)(0.5 * cos(0.7 * t + 1.3 * b)) : 0.0f;
    }
}

/* Moves every tensor away from GPT-2's start, deterministically: LayerNorm weights around 1,
 * biases (LayerNorm's and the linear layers') and the scalar head around 0, matrices by a
 * multiple of their own scale. */
static void perturb(px_gpt *m) {
  for (int ti = 0; ti < m->n_tensors; ti++) {
    const px_gpt_tensor *t = &m->tensors[ti];
    float *w = m->params + t->offset;
    size_t len = strlen(t->name);
    int is_bias = strcmp(t->name + len - 2, "_b") == 0;
    int is_ln = strncmp(t->name, "ln", 2) == 0;
    double std = is_ln ? 0.2 : is_bias ? 0.1 : strcmp(t->name, "head_w") == 0 ? 0.3 : 0.06;
    for (size_t i = 0; i < t->count; i++) {
      px_rng_ctr ctr = {{(uint32_t)ti, (uint32_t)i, 0, 0x7c0ffeeu}};
      w[i] += (float)(std * px_rng_normal(2024, ctr));
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------------------------- */

static void write_dataset(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims,
                          const void *data) {
  hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
  XC_H5(space);
  hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  XC_H5(ds);
  XC_H5(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  XC_H5(H5Dclose(ds));
  XC_H5(H5Sclose(space));
}

static void write_attr_str(hid_t loc, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  XC_H5(type);
  XC_H5(H5Tset_size(type, strlen(value) + 1));
  hid_t space = H5Screate(H5S_SCALAR);
  XC_H5(space);
  hid_t attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  XC_H5(attr);
  XC_H5(H5Awrite(attr, type, value));
  XC_H5(H5Aclose(attr));
  XC_H5(H5Sclose(space));
  XC_H5(H5Tclose(type));
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: crosscheck_dump --head lm|scalar --V N --T N --L N --H N --C N --B N "
                  "--ckpt-dir DIR --out FILE.h5\n");
  exit(2);
}

int main(int argc, char **argv) {
  px_blas_init();
  px_comm_init(&argc, &argv);
  px_gpt_config cfg = {PX_TOK_BYTE_IDS, 16, 2, 2, 32, PX_GPT_HEAD_LM};
  int B = 3;
  const char *ckpt_dir = NULL, *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) usage();
    const char *k = argv[i], *v = argv[++i];
    if (!strcmp(k, "--head") && (!strcmp(v, "lm") || !strcmp(v, "scalar")))
      cfg.head = !strcmp(v, "scalar") ? PX_GPT_HEAD_SCALAR : PX_GPT_HEAD_LM;
    else if (!strcmp(k, "--V"))
      cfg.vocab_size = atoi(v);
    else if (!strcmp(k, "--T"))
      cfg.max_seq_len = atoi(v);
    else if (!strcmp(k, "--L"))
      cfg.n_layer = atoi(v);
    else if (!strcmp(k, "--H"))
      cfg.n_head = atoi(v);
    else if (!strcmp(k, "--C"))
      cfg.n_embd = atoi(v);
    else if (!strcmp(k, "--B"))
      B = atoi(v);
    else if (!strcmp(k, "--ckpt-dir"))
      ckpt_dir = v;
    else if (!strcmp(k, "--out"))
      out = v;
    else
      usage();
  }
  px_error err;
  if (!ckpt_dir || !out || B < 1) usage();
  px_tokenizer bytes; /* the models here are the byte tokenizer's */
  px_tokenizer_byte(&bytes);
  if (px_gpt_config_check(&cfg, &err) != PX_OK ||
      px_tokenizer_check_vocab(&bytes, cfg.vocab_size, "the model", &err) != PX_OK) {
    fprintf(stderr, "crosscheck_dump: %s\n", err.msg);
    return 2;
  }
  const int T = cfg.max_seq_len, V = cfg.vocab_size, lm = cfg.head == PX_GPT_HEAD_LM;

  px_gpt model;
  px_gpt_build(&model, &cfg, B, T, 1);
  px_gpt_init(&model, 1234);
  perturb(&model);
  px_ckpt_model cm = {lm ? "policy" : "value", &model, 0, 0, 0.0, 0.0};
  if (px_ckpt_write(ckpt_dir, &(px_ckpt){0, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err) != PX_OK) {
    fprintf(stderr, "crosscheck_dump: %s\n", err.msg);
    return 2;
  }

  const size_t BT = (size_t)B * T;
  int32_t *tokens = px_malloc(BT * sizeof(int32_t)), *targets = px_malloc(BT * sizeof(int32_t));
  int32_t *lengths = px_malloc((size_t)B * sizeof(int32_t));
  float *weights = px_malloc(BT * sizeof(float)), *coef = px_malloc(BT * sizeof(float));
  float *dout = px_calloc(BT, sizeof(float));
  fill_batch(tokens, lengths, targets, weights, coef, B, T, V);

  px_gpt_forward(&model, tokens, lengths, B, T);
  double loss = 0.0;
  if (lm) {
    loss = px_gpt_crossentropy(&model, dout, targets, weights);
  } else {
    for (int b = 0; b < B; b++)
      for (int t = 0; t < lengths[b]; t++) {
        loss += (double)coef[b * T + t] * model.values[b * T + t];
        dout[b * T + t] = coef[b * T + t];
      }
  }
  px_gpt_zero_grad(&model);
  px_gpt_backward(&model, dout);

  hid_t file = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  XC_H5(file);
  write_attr_str(file, "head", lm ? "lm" : "scalar");
  write_attr_str(file, "group", cm.group);
  hsize_t dBT[3] = {(hsize_t)B, (hsize_t)T, (hsize_t)V}, dB[1] = {(hsize_t)B};
  write_dataset(file, "tokens", H5T_NATIVE_INT32, 2, dBT, tokens);
  write_dataset(file, "lengths", H5T_NATIVE_INT32, 1, dB, lengths);
  if (lm) {
    write_dataset(file, "targets", H5T_NATIVE_INT32, 2, dBT, targets);
    write_dataset(file, "weights", H5T_NATIVE_FLOAT, 2, dBT, weights);
    write_dataset(file, "logits", H5T_NATIVE_FLOAT, 3, dBT, model.logits);
  } else {
    write_dataset(file, "coef", H5T_NATIVE_FLOAT, 2, dBT, coef);
    write_dataset(file, "values", H5T_NATIVE_FLOAT, 2, dBT, model.values);
  }
  write_dataset(file, "loss", H5T_NATIVE_DOUBLE, 0, NULL, &loss);
  hid_t g = H5Gcreate2(file, "grads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  XC_H5(g);
  for (int i = 0; i < model.n_tensors; i++) {
    const px_gpt_tensor *t = &model.tensors[i];
    hsize_t dims[3];
    for (int d = 0; d < t->ndim; d++) dims[d] = t->shape[d];
    write_dataset(g, t->name, H5T_NATIVE_FLOAT, t->ndim, dims, model.grads + t->offset);
  }
  XC_H5(H5Gclose(g));
  XC_H5(H5Fclose(file));
  printf("crosscheck_dump: %s head, V=%d T=%d L=%d H=%d C=%d B=%d, loss %.9g: %s/ckpt-00000000.h5 "
         "and %s\n",
         lm ? "lm" : "scalar", V, T, cfg.n_layer, cfg.n_head, cfg.n_embd, B, loss, ckpt_dir, out);

  free(tokens);
  free(targets);
  free(lengths);
  free(weights);
  free(coef);
  free(dout);
  px_gpt_free(&model);
  px_comm_finalize();
  return 0;
}
