/*
 * generate.c — `proxima generate` (px_cli_generate in cli.h): the policy of a
 * checkpoint, prompts from the command line, a data set or a JSONL file split over the ranks,
 * one generator per rank, and the responses gathered to rank 0 and printed in prompt order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proxima/checkpoint.h"
#include "proxima/cli.h"
#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/generate.h"
#include "proxima/jsonl.h"
#include "proxima/log.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

/* The prompts of this rank, whole (px_generate refuses one too long for the model), with the
 * global index of the first and the total count. Collective (a data set is read with MPI-IO). */
static px_status px_load_prompts(px_tokenizer *tok, const char *prompt, const char *file,
                                 int64_t *first, int64_t *n_total, px_prompts *pr, px_error *err) {
  const int rank = px_comm_rank(), size = px_comm_size();
  px_dataset ds;
  memset(&ds, 0, sizeof ds);
  px_status st = PX_OK;
  int64_t lo = 0, hi = 0;
  if (prompt) {
    px_dataset_init(&ds, PX_DATA_PROMPTS, 1, tok);
    size_t len = strlen(prompt);
    const char *texts[1] = {prompt};
    px_dataset_append(&ds, texts, &len);
    px_comm_share(1, rank, size, &lo, &hi);
  } else {
    size_t len = strlen(file);
    if (len >= 6 && strcmp(file + len - 6, ".jsonl") == 0) {
      /* every rank reads it, takes a share */
      st = px_jsonl_read(file, PX_DATA_PROMPTS, tok, &ds, err);
      if (st == PX_OK) px_comm_share(ds.n, rank, size, &lo, &hi);
    } else {
      st = px_dataset_read(file, PX_IO_EVERY_RANK, rank, size, -1, tok, &ds, err);
      if (st == PX_OK && ds.kind == PX_DATA_TEXT)
        st = px_error_set(err, PX_EINPUT,
                          "%s holds text records; generate needs prompts (a prompts, sft or "
                          "prefs data set, or a JSONL file of {\"prompt\": ...} lines)",
                          file);
      lo = 0, hi = ds.n; /* the data set reader already took this rank's share */
    }
  }
  if (st != PX_OK) {
    px_dataset_free(&ds);
    return st;
  }
  *first = lo + ds.first; /* one of the two is 0 */
  *n_total = ds.n_total;
  px_prompts_pack(pr, &ds, tok, NULL, lo, hi - lo, 0);
  px_dataset_free(&ds);
  return PX_OK;
}

/* This rank's output lines, in prompt order: the texts the tokens decode to, as valid UTF-8
 * (a response cut inside a character shows U+FFFD there). */
static void px_format(px_text *t, const px_tokenizer *tok, const px_generation *g,
                      const int32_t *tokens, const int64_t *offsets, int64_t first, int json) {
  px_text prompt = {0}, resp = {0}, esc = {0};
  for (int64_t i = 0; i < g->n; i++) {
    prompt.n = resp.n = esc.n = 0;
    px_tokenizer_decode(tok, &prompt, tokens + offsets[i], (size_t)(offsets[i + 1] - offsets[i]));
    px_tokenizer_decode(tok, &resp, g->tokens + i * g->max_new, (size_t)g->lengths[i]);
    if (json) {
      double lp = 0.0;
      for (int j = 0; j < g->lengths[i]; j++) lp += g->logprobs[i * g->max_new + j];
      char head[64], tail[160];
      snprintf(head, sizeof head, "{\"index\": %lld, \"prompt\": ", (long long)first + i);
      px_text_str(t, head);
      px_text_json(t, prompt.p, prompt.n);
      px_text_str(t, ", \"response\": ");
      px_text_json(t, resp.p, resp.n);
      snprintf(tail, sizeof tail, ", \"eos\": %s, \"tokens\": %d, \"logprob\": %.6g}\n",
               g->eos[i] ? "true" : "false", g->lengths[i], isfinite(lp) ? lp : -1e300);
      px_text_str(t, tail);
    } else {
      px_text_escaped(&esc, prompt.p, prompt.n);
      px_text_printable(t, esc.p, esc.n);
      px_text_str(t, "\t");
      esc.n = 0;
      px_text_escaped(&esc, resp.p, resp.n);
      px_text_printable(t, esc.p, esc.n);
      px_text_str(t, "\n");
    }
  }
  px_text_free(&prompt);
  px_text_free(&resp);
  px_text_free(&esc);
}

px_status px_cli_generate(const px_config *cfg, const char *ckpt, const char *prompt,
                          const char *prompts, int json, px_error *err) {
  if (!ckpt)
    return px_error_set(err, PX_EINPUT,
                        "generate needs --ckpt FILE (a checkpoint, or a run's checkpoints "
                        "directory); see 'proxima generate --help'");
  if (!prompt == !prompts)
    return px_error_set(err, PX_EINPUT,
                        "generate needs exactly one of --prompt TEXT and --prompts FILE");
  px_sampler_config sc = px_sample_config(cfg);
  PX_TRY(px_sampler_config_check(&sc, err));

  /* The policy, read by every rank from the same file. */
  px_gpt model;
  memset(&model, 0, sizeof model);
  /* generation uses the KV cache, not the arena: a 1 x 1 arena */
  px_tokenizer tok;
  px_tokenizer_byte(&tok);
  px_status st = px_ckpt_read_tokenizer(ckpt, &tok, err);
  if (st == PX_OK)
    st = px_ckpt_load(ckpt, "policy", PX_GPT_HEAD_LM, 1, 1, 0, &model, NULL, NULL, err);
  st = px_comm_agree(st, err);
  if (st != PX_OK) {
    if (model.params) px_gpt_free(&model);
    px_tokenizer_free(&tok);
    return st;
  }

  int64_t first = 0, n_total = 0;
  px_prompts pr = {0};
  st = px_comm_agree(px_load_prompts(&tok, prompt, prompts, &first, &n_total, &pr, err), err);
  const int64_t n = pr.n;
  px_generation gen;
  memset(&gen, 0, sizeof gen);
  px_generator g;
  memset(&g, 0, sizeof g);
  if (st == PX_OK) {
    const int batch = (int)(cfg->sample_batch < n ? cfg->sample_batch : n > 0 ? n : 1);
    px_log_info("generate: %s, %lld prompt%s over %d rank%s, %d layers x %d wide, temperature "
                "%g, top_k %d, top_p %g",
                ckpt, (long long)n_total, n_total == 1 ? "" : "s", px_comm_size(),
                px_comm_size() == 1 ? "" : "s", model.config.n_layer, model.config.n_embd,
                (double)sc.temperature, sc.top_k, (double)sc.top_p);
    px_generator_build(&g, &model, &tok, &sc, (uint64_t)cfg->run_seed, batch,
                       (int)cfg->sample_max_new_tokens, 0);
    st = px_generate(&g, pr.tokens, pr.offsets, n, 0, first, &gen, err);
    st = px_comm_agree(st, err);
  }
  if (st == PX_OK) {
    px_text t = {NULL, 0, 0};
    px_format(&t, &tok, &gen, pr.tokens, pr.offsets, first, json);
    char *all = NULL;
    size_t all_n = 0;
    px_comm_gather_bytes(t.p, t.n, &all, &all_n);
    if (px_comm_rank() == 0) st = px_text_write_stdout(all, all_n, err);
    st = px_comm_agree(st, err);
    free(all);
    px_text_free(&t);
    double stats[2] = {(double)g.tokens_out, g.seconds};
    px_comm_allreduce_sum_f64(stats, 2);
    px_log_info("generate: %.0f tokens in %.2fs (%.0f tokens/s per rank)", stats[0],
                stats[1] / px_comm_size(), stats[0] / (stats[1] > 0 ? stats[1] : 1e-9));
  }
  if (g.model) px_generator_free(&g);
  px_generation_free(&gen);
  px_prompts_free(&pr);
  px_gpt_free(&model);
  px_tokenizer_free(&tok);
  return st;
}
