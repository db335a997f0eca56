/*
 * hf.h — Hugging Face GPT-2 directories in and out: `proxima model import` and `model export`.
 *
 * A directory holds config.json, the weights as model.safetensors (or shards named by
 * model.safetensors.index.json's weight_map) and the tokenizer's vocab.json and merges.txt.
 * Tensor names are GPT2Model's, with or without the "transformer." prefix of GPT2LMHeadModel:
 * wte.weight [V,C], wpe.weight [T,C], h.{i}.ln_1.{weight,bias}, h.{i}.attn.c_attn.{weight,bias},
 * h.{i}.attn.c_proj.*, h.{i}.ln_2.*, h.{i}.mlp.c_fc.*, h.{i}.mlp.c_proj.*, ln_f.*. GPT-2's
 * Conv1D stores a weight as [in, out], the transpose of ours ([out, in], as torch's Linear).
 * h.{i}.attn.bias and masked_bias are causal-mask buffers, skipped; lm_head.weight, when
 * present, must be wte's (tied). config.json must describe what Proxima implements; a key that
 * would change the architecture (another activation, scale_attn_by_inverse_layer_idx, n_inner
 * other than 4C, a layer-norm epsilon other than 1e-5, untied embeddings, cross-attention ...)
 * is refused naming the key, and so is a key this reader does not know.
 *
 * On import the vocabulary (50257 for GPT-2) is padded with zero rows to the tokenizer's model
 * vocab_size (50304: PAD and speed); on export only the tokenizer's rows are written.
 */
#ifndef PROXIMA_HF_H
#define PROXIMA_HF_H

#include "proxima/error.h"

/* Reads the Hugging Face GPT-2 directory dir into a checkpoint file out (a /policy group with
 * its tokenizer, step 0; what sft.init, rm.init, ppo.policy, generate and eval take), written
 * atomically. PX_EINPUT naming the file and the tensor or key when dir is not a GPT-2 this
 * implementation reproduces. Collective: every rank reads, rank 0 writes. */
px_status px_hf_import(const char *dir, const char *out, px_error *err);

/* Writes the model `group` ("policy", "reference", "value" or "reward") of the checkpoint
 * ckpt (a file or run directory) as a Hugging Face directory out_dir: config.json,
 * model.safetensors and the tokenizer's vocab.json and merges.txt. An LM head loads as
 * GPT2LMHeadModel; a scalar head as GPT2ForSequenceClassification with one label, score.weight
 * its head_w times the reward's gain, and the bias (head_b times gain, plus the reward's bias),
 * which that class has no place for, in score.bias and in the file's metadata (proxima_bias).
 * Collective: rank 0 writes. */
px_status px_hf_export(const char *ckpt, const char *group, const char *out_dir, px_error *err);

#endif
