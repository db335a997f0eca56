/*
 * hf_gpt2.c — Hugging Face GPT-2 directories in and out (hf.h): config.json checked against
 * what Proxima implements, the weights through safetensors.h with the Conv1D transposes, the
 * tokenizer through tokenizer.h, and the checkpoint through checkpoint.h.
 */
#include "proxima/hf.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/gpt.h"
#include "proxima/log.h"
#include "proxima/safetensors.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

#define PX_HF_MAX_SHARDS 256
#define PX_HF_MAX_JSON ((size_t)64 << 20)

/* One block's tensors: the Hugging Face name after "h.{i}.", ours, and whether the Conv1D
 * weight is stored transposed ([in, out]). */
static const struct {
  const char *hf, *ours;
  int conv1d;
} px_hf_block[] = {
    {"ln_1.weight", "ln1_w", 0},
    {"ln_1.bias", "ln1_b", 0},
    {"attn.c_attn.weight", "qkv_w", 1},
    {"attn.c_attn.bias", "qkv_b", 0},
    {"attn.c_proj.weight", "attproj_w", 1},
    {"attn.c_proj.bias", "attproj_b", 0},
    {"ln_2.weight", "ln2_w", 0},
    {"ln_2.bias", "ln2_b", 0},
    {"mlp.c_fc.weight", "fc_w", 1},
    {"mlp.c_fc.bias", "fc_b", 0},
    {"mlp.c_proj.weight", "fcproj_w", 1},
    {"mlp.c_proj.bias", "fcproj_b", 0},
};
enum { PX_HF_BLOCK = (int)(sizeof px_hf_block / sizeof px_hf_block[0]) };

/* ---------------------------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------------------------- */

/* Keys that describe training, tokens or bookkeeping, not the forward pass: accepted as they
 * are. (Dropout is a training-time setting: Proxima trains without it, and says so.) */
static const char *const px_hf_inert[] = {"_name_or_path",
                                          "architectures",
                                          "bos_token_id",
                                          "eos_token_id",
                                          "pad_token_id",
                                          "initializer_range",
                                          "task_specific_params",
                                          "transformers_version",
                                          "torch_dtype",
                                          "use_cache",
                                          "output_past",
                                          "id2label",
                                          "label2id",
                                          "num_labels",
                                          "problem_type",
                                          "summary_type",
                                          "summary_use_proj",
                                          "summary_activation",
                                          "summary_proj_to_labels",
                                          "summary_first_dropout",
                                          "resid_pdrop",
                                          "embd_pdrop",
                                          "attn_pdrop",
                                          "n_ctx",
                                          "model_type",
                                          "activation_function",
                                          "layer_norm_epsilon",
                                          "n_inner",
                                          "scale_attn_weights",
                                          "scale_attn_by_inverse_layer_idx",
                                          "reorder_and_upcast_attn",
                                          "add_cross_attention",
                                          "tie_word_embeddings",
                                          "n_embd",
                                          "n_layer",
                                          "n_head",
                                          "n_positions",
                                          "vocab_size",
                                          "gradient_checkpointing",
                                          "prefix",
                                          "finetuning_task",
                                          "tokenizer_class"};

/* The model the config describes, with every key that would change it checked. */
typedef struct px_hf_config {
  int64_t n_embd, n_layer, n_head, n_positions, vocab_size;
  int dropout; /* some dropout probability is not 0 */
} px_hf_config;

static px_status px_hf_int(json_t *o, const char *key, const char *path, int64_t lo, int64_t hi,
                           int64_t *v, px_error *err) {
  json_t *x = json_object_get(o, key);
  if (!x)
    return px_error_set(err, PX_EINPUT, "%s: key \"%s\" is missing (a GPT-2 config has it)", path,
                        key);
  if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
    return px_error_set(err, PX_EINPUT, "%s: \"%s\" must be an integer from %lld to %lld", path,
                        key, (long long)lo, (long long)hi);
  *v = json_integer_value(x);
  return PX_OK;
}

/* A key that must hold `want` (a JSON value) or be absent; refused naming it otherwise. */
static px_status px_hf_must(json_t *o, const char *key, json_t *want, const char *path,
                            const char *why, px_error *err) {
  json_t *x = json_object_get(o, key);
  int ok = !x || json_equal(x, want) ||
           (json_is_number(x) && json_is_number(want) &&
            fabs(json_number_value(x) - json_number_value(want)) <=
                1e-12 * fabs(json_number_value(want)));
  json_decref(want);
  if (ok) return PX_OK;
  char *have = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
  px_status st = px_error_set(err, PX_EINPUT, "%s: \"%s\" is %s: %s", path, key,
                              have ? have : "(unprintable)", why);
  free(have);
  return st;
}

static px_status px_hf_check_config(json_t *o, const char *path, px_hf_config *c, px_error *err) {
  if (!json_is_object(o)) return px_error_set(err, PX_EINPUT, "%s: expected a JSON object", path);
  const char *key;
  json_t *value;
  json_object_foreach(o, key, value) {
    int known = 0;
    for (size_t i = 0; i < sizeof px_hf_inert / sizeof *px_hf_inert && !known; i++)
      known = !strcmp(key, px_hf_inert[i]);
    if (!known)
      return px_error_set(err, PX_EINPUT,
                          "%s: key \"%s\" is not one this GPT-2 implementation knows; refusing "
                          "rather than ignoring what may change the model",
                          path, key);
  }
  json_t *type = json_object_get(o, "model_type");
  if (type && (!json_is_string(type) || strcmp(json_string_value(type), "gpt2") != 0))
    return px_error_set(err, PX_EINPUT, "%s: model_type is not \"gpt2\"", path);
  PX_TRY(px_hf_int(o, "n_embd", path, 1, 65536, &c->n_embd, err));
  PX_TRY(px_hf_int(o, "n_layer", path, 1, 1024, &c->n_layer, err));
  PX_TRY(px_hf_int(o, "n_head", path, 1, 4096, &c->n_head, err));
  PX_TRY(px_hf_int(o, "n_positions", path, 1, 65536, &c->n_positions, err));
  PX_TRY(px_hf_int(o, "vocab_size", path, 1, (1 << 20) - 64, &c->vocab_size, err));
  if (c->n_embd % c->n_head)
    return px_error_set(err, PX_EINPUT, "%s: n_head %lld does not divide n_embd %lld", path,
                        (long long)c->n_head, (long long)c->n_embd);
  json_t *act = json_object_get(o, "activation_function");
  if (act && !(json_is_string(act) && (!strcmp(json_string_value(act), "gelu_new") ||
                                       !strcmp(json_string_value(act), "gelu_pytorch_tanh"))))
    return px_error_set(err, PX_EINPUT,
                        "%s: \"activation_function\" must be gelu_new (GELU's tanh form, what "
                        "Proxima computes)",
                        path);
  json_t *inner = json_object_get(o, "n_inner");
  if (inner && !json_is_null(inner) &&
      !(json_is_integer(inner) && json_integer_value(inner) == 4 * c->n_embd))
    return px_error_set(err, PX_EINPUT, "%s: \"n_inner\" must be null or 4 n_embd (%lld)", path,
                        4LL * c->n_embd);
  json_t *ctx = json_object_get(o, "n_ctx");
  if (ctx && !(json_is_integer(ctx) && json_integer_value(ctx) == c->n_positions))
    return px_error_set(err, PX_EINPUT, "%s: \"n_ctx\" must equal n_positions (%lld)", path,
                        (long long)c->n_positions);
  PX_TRY(px_hf_must(o, "layer_norm_epsilon", json_real(1e-5), path,
                    "Proxima's layer norms use 1e-5", err));
  PX_TRY(px_hf_must(o, "scale_attn_weights", json_true(), path,
                    "Proxima scales attention by 1/sqrt(head size)", err));
  PX_TRY(px_hf_must(o, "scale_attn_by_inverse_layer_idx", json_false(), path,
                    "Proxima does not scale attention by the layer's index", err));
  PX_TRY(px_hf_must(o, "add_cross_attention", json_false(), path,
                    "Proxima's blocks have no cross-attention", err));
  PX_TRY(px_hf_must(o, "tie_word_embeddings", json_true(), path,
                    "Proxima's LM head is the token embedding (tied)", err));
  PX_TRY(px_hf_must(o, "reorder_and_upcast_attn", json_false(), path,
                    "only GPT-2's own attention order is implemented", err));
  static const char *const drops[] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
  c->dropout = 0;
  for (int i = 0; i < 3; i++) {
    json_t *p = json_object_get(o, drops[i]);
    if (p && !json_is_number(p))
      return px_error_set(err, PX_EINPUT, "%s: \"%s\" must be a number", path, drops[i]);
    c->dropout |= p && json_number_value(p) != 0.0;
  }
  return PX_OK;
}

static px_status px_hf_load_json(const char *path, json_t **out, px_error *err) {
  char *text = NULL;
  size_t n = 0;
  PX_TRY(px_fs_read_file(path, PX_HF_MAX_JSON, &text, &n, err));
  json_error_t je;
  *out = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  free(text);
  if (!*out) return px_error_set(err, PX_EINPUT, "%s:%d: invalid JSON: %s", path, je.line, je.text);
  return PX_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The weights: one file or shards
 * ------------------------------------------------------------------------------------------- */

typedef struct px_hf_weights {
  px_st_file files[PX_HF_MAX_SHARDS];
  int n_files;
  const char *prefix; /* "" or "transformer." */
} px_hf_weights;

static void px_hf_weights_close(px_hf_weights *w) {
  for (int i = 0; i < w->n_files; i++) px_st_close(&w->files[i]);
  w->n_files = 0;
}

/* The tensor called prefix + name in any of the files, or NULL. */
static const px_st_tensor *px_hf_find(const px_hf_weights *w, const char *name, int *file) {
  char full[512];
  snprintf(full, sizeof full, "%s%s", w->prefix, name);
  for (int i = 0; i < w->n_files; i++) {
    const px_st_tensor *t = px_st_find(&w->files[i], full);
    if (t) {
      if (file) *file = i;
      return t;
    }
  }
  return NULL;
}

/* model.safetensors, or every shard model.safetensors.index.json names. */
static px_status px_hf_open_weights(const char *dir, px_hf_weights *w, px_error *err) {
  memset(w, 0, sizeof *w);
  char path[4200];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if (px_fs_exists(path)) {
    PX_TRY(px_st_open(path, &w->files[0], err));
    w->n_files = 1;
  } else {
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!px_fs_exists(path))
      return px_error_set(err, PX_EINPUT,
                          "%s: no model.safetensors and no model.safetensors.index.json (the "
                          "weights of a Hugging Face directory; .bin files are not read)",
                          dir);
    json_t *index;
    PX_TRY(px_hf_load_json(path, &index, err));
    json_t *map = json_object_get(index, "weight_map");
    px_status st = json_is_object(map) ? PX_OK
                                       : px_error_set(err, PX_EINPUT,
                                                      "%s: \"weight_map\" is missing or not an "
                                                      "object",
                                                      path);
    const char *name;
    json_t *file;
    json_object_foreach(map, name, file) {
      if (st != PX_OK) break;
      const char *shard = json_string_value(file);
      if (!shard || strchr(shard, '/') || !strcmp(shard, "..")) {
        st =
            px_error_set(err, PX_EINPUT,
                         "%s: weight_map[\"%s\"] must be a file name in the directory", path, name);
        break;
      }
      char spath[4400];
      snprintf(spath, sizeof spath, "%s/%s", dir, shard);
      int seen = 0;
      for (int i = 0; i < w->n_files && !seen; i++) seen = !strcmp(w->files[i].path, spath);
      if (seen) continue;
      if (w->n_files == PX_HF_MAX_SHARDS) {
        st = px_error_set(err, PX_EINPUT, "%s: more than %d shards", path, PX_HF_MAX_SHARDS);
        break;
      }
      st = px_st_open(spath, &w->files[w->n_files], err);
      if (st == PX_OK) w->n_files++;
    }
    /* every tensor the index names is in the shard it names */
    json_object_foreach(map, name, file) {
      if (st != PX_OK) break;
      int found = 0;
      for (int i = 0; i < w->n_files && !found; i++) found = px_st_find(&w->files[i], name) != 0;
      if (!found)
        st =
            px_error_set(err, PX_EINPUT, "%s: names tensor '%s', which no shard holds", path, name);
    }
    json_decref(index);
    if (st != PX_OK) {
      px_hf_weights_close(w);
      return st;
    }
  }
  w->prefix = ""; /* px_hf_find prepends it */
  w->prefix = px_hf_find(w, "transformer.wte.weight", NULL) ? "transformer." : "";
  return PX_OK;
}

/* Every tensor of the files is one this import reads or knows to skip. */
static px_status px_hf_check_names(const px_hf_weights *w, int64_t n_layer, px_error *err) {
  const size_t np = strlen(w->prefix);
  for (int f = 0; f < w->n_files; f++)
    for (int k = 0; k < w->files[f].n_tensors; k++) {
      const char *full = w->files[f].tensors[k].name, *name = full;
      if (np && !strncmp(name, w->prefix, np)) name += np;
      int ok = !strcmp(name, "wte.weight") || !strcmp(name, "wpe.weight") ||
               !strcmp(name, "ln_f.weight") || !strcmp(name, "ln_f.bias") ||
               !strcmp(full, "lm_head.weight");
      char *rest = NULL;
      long layer = -1;
      if (!ok && !strncmp(name, "h.", 2) && name[2] >= '0' && name[2] <= '9') {
        errno = 0;
        layer = strtol(name + 2, &rest, 10);
        if (errno || *rest != '.' || layer >= n_layer) rest = NULL;
      }
      if (rest) {
        rest++; /* past the layer's dot */
        ok = !strcmp(rest, "attn.bias") || !strcmp(rest, "attn.masked_bias");
        for (int i = 0; i < PX_HF_BLOCK && !ok; i++) ok = !strcmp(rest, px_hf_block[i].hf);
      }
      if (!ok)
        return px_error_set(err, PX_EINPUT,
                            "%s: tensor '%s' is not part of a GPT-2 of %lld layers as Proxima "
                            "implements it",
                            w->files[f].path, full, (long long)n_layer);
    }
  return PX_OK;
}

/* Copies Hugging Face tensor `name` into dst: rows x cols as stored, or transposed (conv1d:
 * stored [cols, rows], dst [rows, cols]). rows_stored: the rows the file holds (wte may have
 * fewer than dst). */
static px_status px_hf_take(const px_hf_weights *w, const char *name, float *dst, int64_t rows,
                            int64_t cols, int conv1d, px_error *err) {
  int file = 0;
  const px_st_tensor *t = px_hf_find(w, name, &file);
  if (!t)
    return px_error_set(err, PX_EINPUT, "%s: tensor '%s%s' is missing", w->files[0].path, w->prefix,
                        name);
  const int64_t want0 = conv1d ? cols : rows, want1 = conv1d ? rows : cols;
  const int matrix = cols > 1 || conv1d;
  int ok = matrix ? t->ndim == 2 && t->shape[0] == want0 && t->shape[1] == want1
                  : t->ndim == 1 && t->shape[0] == rows;
  if (!ok) {
    char shape[128] = "";
    size_t len = 0;
    for (int d = 0; d < t->ndim && len < sizeof shape; d++)
      len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? ", " : "",
                              (long long)t->shape[d]);
    return matrix ? px_error_set(
                        err, PX_EINPUT, "%s: tensor '%s' has shape [%s], expected [%lld, %lld]",
                        w->files[file].path, t->name, shape, (long long)want0, (long long)want1)
                  : px_error_set(err, PX_EINPUT, "%s: tensor '%s' has shape [%s], expected [%lld]",
                                 w->files[file].path, t->name, shape, (long long)rows);
  }
  float *src = px_malloc((size_t)t->count * sizeof *src);
  px_st_read_f32(t, src);
  if (!conv1d) {
    memcpy(dst, src, (size_t)t->count * sizeof *src);
  } else {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) dst[r * cols + c] = src[c * rows + r];
  }
  free(src);
  return PX_OK;
}

/* The parameters of model (built to the config) from the weights. */
static px_status px_hf_fill(const px_hf_weights *w, px_gpt *m, int64_t V, px_error *err) {
  const int64_t C = m->config.n_embd, L = m->config.n_layer, T = m->config.max_seq_len;
  memset(m->params, 0, m->n_params * sizeof *m->params); /* the padding rows of wte stay 0 */
  PX_TRY(px_hf_take(w, "wte.weight", m->p.wte, V, C, 0, err));
  PX_TRY(px_hf_take(w, "wpe.weight", m->p.wpe, T, C, 0, err));
  PX_TRY(px_hf_take(w, "ln_f.weight", m->p.lnf_w, C, 1, 0, err));
  PX_TRY(px_hf_take(w, "ln_f.bias", m->p.lnf_b, C, 1, 0, err));
  for (int i = 0; i < PX_HF_BLOCK; i++) {
    const px_gpt_tensor *t = px_gpt_find_tensor(m, px_hf_block[i].ours);
    const int64_t rows = (int64_t)t->shape[1], cols = t->ndim == 3 ? (int64_t)t->shape[2] : 1;
    for (int64_t l = 0; l < L; l++) {
      char name[128];
      snprintf(name, sizeof name, "h.%lld.%s", (long long)l, px_hf_block[i].hf);
      PX_TRY(px_hf_take(w, name, m->params + t->offset + (size_t)(l * rows * cols), rows, cols,
                        px_hf_block[i].conv1d, err));
    }
  }
  /* an lm_head that is there must be the tied embedding */
  const px_st_tensor *head = NULL;
  int hf = 0;
  for (; hf < w->n_files && !head; hf++) head = px_st_find(&w->files[hf], "lm_head.weight");
  if (head) {
    float *wte = px_malloc((size_t)(V * C) * sizeof *wte);
    px_error ignored;
    px_status st = head->ndim == 2 && head->shape[0] == V && head->shape[1] == C
                       ? px_hf_take(w, "wte.weight", wte, V, C, 0, &ignored)
                       : PX_EINPUT;
    float *lm = st == PX_OK ? px_malloc((size_t)(V * C) * sizeof *lm) : NULL;
    if (lm) px_st_read_f32(head, lm);
    int same = lm && memcmp(lm, wte, (size_t)(V * C) * sizeof *lm) == 0;
    free(lm);
    free(wte);
    if (!same)
      return px_error_set(err, PX_EINPUT,
                          "%s: tensor 'lm_head.weight' differs from wte.weight: Proxima's LM "
                          "head is the token embedding (tied), so an untied head cannot be "
                          "imported",
                          w->files[hf - 1].path);
  }
  return PX_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Import
 * ------------------------------------------------------------------------------------------- */

/* The resolved configuration a checkpoint records: the model's keys (nothing else, not even
 * the source directory: the same model imported from anywhere gives the same bytes). */
static char *px_hf_config_text(const px_gpt_config *mc) {
  px_text t = {0};
  char line[512];
  snprintf(line, sizeof line,
           "# proxima model import\n[model]\ntokenizer = gpt2\nvocab_size = %d\n"
           "max_seq_len = %d\nn_layer = %d\nn_head = %d\nn_embd = %d\n",
           mc->vocab_size, mc->max_seq_len, mc->n_layer, mc->n_head, mc->n_embd);
  px_text_str(&t, line);
  return t.p;
}

/* Everything but the write: the config, the tokenizer, the weights into model. Not collective. */
static px_status px_hf_read(const char *dir, px_tokenizer *tok, px_gpt *model, px_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_t *cj;
  PX_TRY(px_hf_load_json(path, &cj, err));
  px_hf_config hc;
  px_status st = px_hf_check_config(cj, path, &hc, err);
  json_decref(cj);
  PX_TRY(st);
  PX_TRY(px_tokenizer_load_dir(tok, dir, err));
  if (hc.vocab_size != tok->n_vocab) {
    st = px_error_set(err, PX_EINPUT,
                      "%s: vocab_size %lld but the tokenizer (vocab.json) has %d tokens", path,
                      (long long)hc.vocab_size, (int)tok->n_vocab);
    px_tokenizer_free(tok);
    return st;
  }
  px_gpt_config mc = {(int)px_tokenizer_vocab_size(tok),
                      (int)hc.n_positions,
                      (int)hc.n_layer,
                      (int)hc.n_head,
                      (int)hc.n_embd,
                      PX_GPT_HEAD_LM};
  px_hf_weights *w = px_calloc(1, sizeof *w);
  st = px_gpt_config_check(&mc, err);
  if (st == PX_OK) st = px_hf_open_weights(dir, w, err);
  if (st == PX_OK) {
    st = px_hf_check_names(w, hc.n_layer, err);
    if (st == PX_OK) st = px_gpt_check_memory(&mc, 1, 1, 0, "model import", err);
    if (st == PX_OK) {
      px_gpt_build(model, &mc, 1, 1, 0);
      st = px_hf_fill(w, model, hc.vocab_size, err);
      if (st != PX_OK) px_gpt_free(model);
    }
    px_hf_weights_close(w);
  }
  free(w);
  if (st != PX_OK) {
    px_tokenizer_free(tok);
    return st;
  }
  if (hc.dropout)
    px_log_info("model import: config.json sets dropout probabilities; Proxima trains without "
                "dropout");
  return PX_OK;
}

px_status px_hf_import(const char *dir, const char *out, px_error *err) {
  px_tokenizer tok;
  px_gpt model;
  memset(&model, 0, sizeof model);
  px_tokenizer_byte(&tok);
  PX_TRY(px_comm_agree(px_hf_read(dir, &tok, &model, err), err));
  char *config = px_hf_config_text(&model.config);
  px_ckpt_model policy = {.group = "policy", .model = &model};
  px_ckpt ck = {.step = 0,
                .iteration = 0,
                .config_text = config,
                .models = &policy,
                .n_models = 1,
                .tokenizer = &tok};
  px_status st = px_ckpt_write_file(out, &ck, err);
  if (st == PX_OK)
    px_log_info("model import: %s -> %s (%d layers x %d wide, %d heads, %d positions, "
                "vocabulary %d padded to %d; %zu parameters)",
                dir, out, model.config.n_layer, model.config.n_embd, model.config.n_head,
                model.config.max_seq_len, (int)tok.n_vocab, model.config.vocab_size,
                model.n_params);
  free(config);
  px_gpt_free(&model);
  px_tokenizer_free(&tok);
  return st;
}

/* ---------------------------------------------------------------------------------------------
 * Export
 * ------------------------------------------------------------------------------------------- */

static char *px_hf_export_config(const px_gpt_config *mc, const px_tokenizer *tok) {
  json_t *o = json_object();
  const int lm = mc->head == PX_GPT_HEAD_LM;
  json_object_set_new(o, "activation_function", json_string("gelu_new"));
  json_t *arch = json_array();
  json_array_append_new(arch,
                        json_string(lm ? "GPT2LMHeadModel" : "GPT2ForSequenceClassification"));
  json_object_set_new(o, "architectures", arch);
  json_object_set_new(o, "attn_pdrop", json_real(0));
  json_object_set_new(o, "bos_token_id", json_integer(tok->bos));
  json_object_set_new(o, "embd_pdrop", json_real(0));
  json_object_set_new(o, "eos_token_id", json_integer(tok->eos));
  json_object_set_new(o, "initializer_range", json_real(0.02));
  json_object_set_new(o, "layer_norm_epsilon", json_real(1e-5));
  json_object_set_new(o, "model_type", json_string("gpt2"));
  json_object_set_new(o, "n_ctx", json_integer(mc->max_seq_len));
  json_object_set_new(o, "n_embd", json_integer(mc->n_embd));
  json_object_set_new(o, "n_head", json_integer(mc->n_head));
  json_object_set_new(o, "n_inner", json_null());
  json_object_set_new(o, "n_layer", json_integer(mc->n_layer));
  json_object_set_new(o, "n_positions", json_integer(mc->max_seq_len));
  json_object_set_new(o, "resid_pdrop", json_real(0));
  json_object_set_new(o, "scale_attn_weights", json_true());
  json_object_set_new(o, "tie_word_embeddings", json_true());
  json_object_set_new(o, "vocab_size", json_integer(tok->n_vocab));
  if (!lm) {
    json_t *id2 = json_object(), *l2 = json_object();
    json_object_set_new(id2, "0", json_string("LABEL_0"));
    json_object_set_new(l2, "LABEL_0", json_integer(0));
    json_object_set_new(o, "id2label", id2);
    json_object_set_new(o, "label2id", l2);
  }
  char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(o);
  PX_REQUIRE(text, "json_dumps failed (out of memory)");
  return text;
}

/* The weights in Hugging Face's names and layout (Conv1D transposed back, wte cut to the
 * tokenizer's rows) into tensors[], their data in scratch; returns how many. */
static int px_hf_export_tensors(const px_gpt *m, int64_t V, float gain, float bias, px_st_out *out,
                                char (*names)[64], float **scratch) {
  const int64_t C = m->config.n_embd, L = m->config.n_layer, T = m->config.max_seq_len;
  int n = 0;
  /* room for every matrix transposed (less than the parameters, wte being one) and the score */
  *scratch = px_malloc((m->n_params + (size_t)C + 1) * sizeof **scratch);
  float *s = *scratch;
#define PX_HF_OUT(nm, ptr, nd, d0, d1)                                                             \
  do {                                                                                             \
    snprintf(names[n], 64, "%s", nm);                                                              \
    out[n] = (px_st_out){names[n], nd, {d0, d1}, ptr};                                             \
    n++;                                                                                           \
  } while (0)
  PX_HF_OUT("wte.weight", m->p.wte, 2, V, C);
  PX_HF_OUT("wpe.weight", m->p.wpe, 2, T, C);
  for (int64_t l = 0; l < L; l++)
    for (int i = 0; i < PX_HF_BLOCK; i++) {
      const px_gpt_tensor *t = px_gpt_find_tensor(m, px_hf_block[i].ours);
      const int64_t rows = (int64_t)t->shape[1], cols = t->ndim == 3 ? (int64_t)t->shape[2] : 1;
      const float *src = m->params + t->offset + (size_t)(l * rows * cols);
      char name[64];
      snprintf(name, sizeof name, "h.%lld.%s", (long long)l, px_hf_block[i].hf);
      if (!px_hf_block[i].conv1d) {
        PX_HF_OUT(name, src, 1, rows, 0);
        continue;
      }
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) s[c * rows + r] = src[r * cols + c];
      PX_HF_OUT(name, s, 2, cols, rows);
      s += rows * cols;
    }
  PX_HF_OUT("ln_f.weight", m->p.lnf_w, 1, C, 0);
  PX_HF_OUT("ln_f.bias", m->p.lnf_b, 1, C, 0);
  if (m->config.head == PX_GPT_HEAD_SCALAR) {
    for (int64_t c = 0; c < C; c++) s[c] = gain * m->p.head_w[c];
    PX_HF_OUT("score.weight", s, 2, 1, C);
    s[C] = gain * m->p.head_b[0] + bias;
    PX_HF_OUT("score.bias", s + C, 1, 1, 0);
  }
#undef PX_HF_OUT
  return n;
}

/* Rank 0's part of px_hf_export. */
static px_status px_hf_write_dir(const char *out_dir, const px_gpt *m, const px_tokenizer *tok,
                                 const char *group, float gain, float bias, px_error *err) {
  PX_TRY(px_fs_mkdirs(out_dir, err));
  char path[4300];
  char *config = px_hf_export_config(&m->config, tok);
  snprintf(path, sizeof path, "%s/config.json", out_dir);
  px_status st = px_fs_write_atomic(path, NULL, config, strlen(config), err);
  free(config);
  snprintf(path, sizeof path, "%s/vocab.json", out_dir);
  if (st == PX_OK) st = px_fs_write_atomic(path, NULL, tok->vocab, tok->vocab_len, err);
  snprintf(path, sizeof path, "%s/merges.txt", out_dir);
  if (st == PX_OK) st = px_fs_write_atomic(path, NULL, tok->merges, tok->merges_len, err);
  if (st != PX_OK) return st;
  const int cap = 4 + PX_HF_BLOCK * m->config.n_layer + 2;
  px_st_out *tensors = px_calloc((size_t)cap, sizeof *tensors);
  char(*names)[64] = px_calloc((size_t)cap, sizeof *names);
  float *scratch = NULL;
  int n = px_hf_export_tensors(m, tok->n_vocab, gain, bias, tensors, names, &scratch);
  char gain_s[64], bias_s[64];
  snprintf(gain_s, sizeof gain_s, "%.9g", (double)gain);
  snprintf(bias_s, sizeof bias_s, "%.9g",
           m->p.head_b ? (double)(gain * m->p.head_b[0] + bias) : 0.0);
  const char *meta[] = {"format",       "pt",   "proxima_group", group,
                        "proxima_gain", gain_s, "proxima_bias",  bias_s};
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  st = px_st_write(path, tensors, n, meta, m->config.head == PX_GPT_HEAD_LM ? 2 : 4, err);
  free(scratch);
  free(names);
  free(tensors);
  return st;
}

px_status px_hf_export(const char *ckpt, const char *group, const char *out_dir, px_error *err) {
  static const char *const groups[] = {"policy", "reference", "value", "reward"};
  int g = -1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(group, groups[i])) g = i;
  if (g < 0)
    return px_error_set(err, PX_EINPUT, "--model %s: expected policy, reference, value or reward",
                        group);
  px_tokenizer tok;
  px_status st = px_ckpt_read_tokenizer(ckpt, &tok, err);
  if (st == PX_OK && tok.kind != PX_TOK_GPT2) {
    st = px_error_set(err, PX_EINPUT,
                      "%s: its tokenizer is %s; a Hugging Face GPT-2 directory needs GPT-2's "
                      "(a model trained with model.tokenizer = gpt2, or imported)",
                      ckpt, px_tok_kind_name(tok.kind));
    px_tokenizer_free(&tok);
  }
  PX_TRY(px_comm_agree(st, err));
  px_gpt model;
  memset(&model, 0, sizeof model);
  double gain = 1, bias = 0;
  st = px_ckpt_load(ckpt, group, g < 2 ? PX_GPT_HEAD_LM : PX_GPT_HEAD_SCALAR, 1, 1, 0, &model,
                    &gain, &bias, err);
  st = px_comm_agree(st, err);
  if (st == PX_OK) {
    st = px_comm_rank() == 0
             ? px_hf_write_dir(out_dir, &model, &tok, group, (float)gain, (float)bias, err)
             : PX_OK;
    st = px_comm_agree(st, err);
  }
  if (st == PX_OK)
    px_log_info("model export: %s /%s -> %s (config.json, model.safetensors, vocab.json, "
                "merges.txt)",
                ckpt, group, out_dir);
  if (model.params) px_gpt_free(&model);
  px_tokenizer_free(&tok);
  return st;
}
