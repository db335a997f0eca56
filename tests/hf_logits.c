/*
 * hf_logits.c — Proxima's logits of a checkpoint's policy, for tests/hf_gpt2.py, which compares
 * them with its own PyTorch GPT-2 reading the Hugging Face directory the checkpoint came from
 * (or was exported to).
 *
 * Loads group /policy of CKPT (a file or run directory) with px_ckpt_load, runs the sequences of
 * TOKENS.bin through px_gpt_forward as one right-padded batch (the path training and generation
 * take) and writes, for each sequence in order, its [length, n_vocab] logits as little-endian
 * float32, where n_vocab is the checkpoint's tokenizer's vocabulary (50257 for GPT-2): the
 * padding columns of the embedding (PAD and up to 50304) are Proxima's own, not Hugging Face's.
 *
 *   TOKENS.bin: int32 count, then per sequence an int32 length and that many int32 ids.
 *
 * Usage: hf_logits CKPT TOKENS.bin OUT.bin
 * A test tool: any failure prints why and exits with status 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/blas.h"
#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/tokenizer.h"

static _Noreturn void fail(const char *what, const char *detail) {
  fprintf(stderr, "hf_logits: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static int32_t read_i32(FILE *f, const char *path) {
  int32_t v;
  if (fread(&v, sizeof v, 1, f) != 1) fail("short read", path);
  return v;
}

int main(int argc, char **argv) {
  px_blas_init();
  px_comm_init(&argc, &argv);
  if (argc != 4) fail("usage: hf_logits CKPT TOKENS.bin OUT.bin", NULL);
  const char *ckpt = argv[1], *in = argv[2], *out = argv[3];
  px_error err;

  px_tokenizer tok;
  if (px_ckpt_read_tokenizer(ckpt, &tok, &err) != PX_OK) fail(err.msg, NULL);
  const int n_vocab = tok.n_vocab;

  FILE *f = fopen(in, "rb");
  if (!f) fail("cannot open", in);
  const int32_t B = read_i32(f, in);
  if (B < 1 || B > 64) fail("sequence count out of range", in);
  int32_t *lengths = px_malloc((size_t)B * sizeof *lengths);
  int32_t **seqs = px_malloc((size_t)B * sizeof *seqs);
  int T = 0;
  for (int b = 0; b < B; b++) {
    lengths[b] = read_i32(f, in);
    if (lengths[b] < 1 || lengths[b] > 4096) fail("sequence length out of range", in);
    seqs[b] = px_malloc((size_t)lengths[b] * sizeof **seqs);
    for (int t = 0; t < lengths[b]; t++) seqs[b][t] = read_i32(f, in);
    if (lengths[b] > T) T = lengths[b];
  }
  fclose(f);

  px_gpt model;
  if (px_ckpt_load(ckpt, "policy", PX_GPT_HEAD_LM, B, T, 0, &model, NULL, NULL, &err) != PX_OK)
    fail(err.msg, NULL);
  if (T > model.config.max_seq_len) fail("a sequence is longer than the model's positions", in);
  const int V = model.config.vocab_size;
  /* Padding with id 0 (a real token): the positions past a length must not change the logits
   * before it, which the comparison then checks as well. */
  int32_t *tokens = px_calloc((size_t)B * T, sizeof *tokens);
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < lengths[b]; t++) {
      if (seqs[b][t] < 0 || seqs[b][t] >= n_vocab) fail("a token id is not the tokenizer's", in);
      tokens[(size_t)b * T + t] = seqs[b][t];
    }
  }
  px_gpt_forward(&model, tokens, lengths, B, T);

  FILE *o = fopen(out, "wb");
  if (!o) fail("cannot create", out);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < lengths[b]; t++)
      if (fwrite(model.logits + ((size_t)b * T + t) * V, sizeof(float), (size_t)n_vocab, o) !=
          (size_t)n_vocab)
        fail("write failed", out);
  if (fclose(o) != 0) fail("write failed", out);
  printf("hf_logits: %s: %d sequences (longest %d), %d of %d logit columns -> %s\n", ckpt, B, T,
         n_vocab, V, out);

  for (int b = 0; b < B; b++) free(seqs[b]);
  free(seqs);
  free(lengths);
  free(tokens);
  px_gpt_free(&model);
  px_tokenizer_free(&tok);
  px_comm_finalize();
  return 0;
}
