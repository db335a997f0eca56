/*
 * generate.c — batched generation (see generate.h): prompts go into the KV cache in waves of
 * `batch` sequences, then every unfinished sequence of the wave advances one token per step:
 *
 *   1. prefill: the wave's prompts through px_gpt_kv_extend, packed up to the cache's row limit
 *      (a long prompt is split over calls), keeping each prompt's last logits;
 *   2. step: one coin per active sequence, keyed by its global index and position; the sampler
 *      picks each token; px_crossentropy_forward gives its log-prob at the sampling temperature;
 *   3. sequences that drew EOS or reached max_new_tokens or the cache's positions stop; the others
 * feed their token through one px_gpt_kv_extend (one product of M = active rows per matrix) and go
 * back to 2.
 */
#include "proxima/generate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/kernels.h"
#include "proxima/log.h"
#include "proxima/tokenizer.h"

void px_generation_free(px_generation *g) {
  free(g->tokens);
  free(g->logprobs);
  free(g->lengths);
  free(g->eos);
  memset(g, 0, sizeof *g);
}

void px_generator_build(px_generator *g, const px_gpt *model, const px_tokenizer *tok,
                        const px_sampler_config *sampling, uint64_t seed, int batch,
                        int max_new_tokens, int positions) {
  const int max_T = model->config.max_seq_len;
  PX_REQUIRE(batch >= 1 && max_new_tokens >= 1 && positions >= 0 && positions <= max_T,
             "px_generator_build: batch %d, max_new %d, positions %d of %d", batch, max_new_tokens,
             positions, max_T);
  memset(g, 0, sizeof *g);
  const int V = model->config.vocab_size;
  g->model = model;
  g->batch = batch;
  g->max_new = max_new_tokens;
  px_sampler_build(&g->sampler, sampling, tok, seed, V, batch);
  const int rows = batch > PX_PREFILL_ROWS ? batch : PX_PREFILL_ROWS;
  px_gpt_kv_build(&g->kv, model, batch, positions ? positions : max_T, rows);
  g->rows = px_calloc((size_t)batch * V, sizeof(float));
  g->probs = px_calloc((size_t)batch * V, sizeof(float));
  g->losses = px_calloc((size_t)batch, sizeof(float));
  g->next = px_calloc((size_t)batch, sizeof(int32_t));
  g->n_new = px_calloc((size_t)batch, sizeof(int32_t));
  g->feed = px_calloc((size_t)rows, sizeof(int32_t));
  g->active = px_calloc((size_t)batch, sizeof(int));
  g->entry = px_calloc((size_t)batch, sizeof(int));
  g->final = px_calloc((size_t)batch, sizeof(uint8_t));
  g->coins = px_calloc((size_t)batch, sizeof(double));
}

double px_generator_bytes(const px_gpt_config *config, int batch, int positions) {
  /* px_generator_build's: the sampler's scratch, the cache, then rows, probs, losses, next,
   * n_new, feed, active, entry, final, coins. */
  const int rows = batch > PX_PREFILL_ROWS ? batch : PX_PREFILL_ROWS;
  const double B = batch, V = config->vocab_size;
  return B * V * sizeof(px_sampler_candidate) + /* at most V candidates a row */
         px_gpt_kv_bytes(config, batch, positions ? positions : config->max_seq_len, rows) +
         2 * B * V * sizeof(float) +
         B * (sizeof(float) + 2 * sizeof(int32_t) + 2 * sizeof(int) + 1 + sizeof(double)) +
         (double)rows * sizeof(int32_t);
}

void px_generator_free(px_generator *g) {
  px_sampler_free(&g->sampler);
  px_gpt_kv_free(&g->kv);
  free(g->rows);
  free(g->probs);
  free(g->losses);
  free(g->next);
  free(g->n_new);
  free(g->feed);
  free(g->active);
  free(g->entry);
  free(g->final);
  free(g->coins);
  memset(g, 0, sizeof *g);
}

/* Step 1: the prompts of slots 0..nw-1 (prompt w0 + slot) into the empty cache; each prompt's
 * last logits into g->rows by slot. */
static void px_prefill(px_generator *g, const int32_t *tokens, const int64_t *offsets, int64_t w0,
                       int nw) {
  const int V = g->kv.V;
  for (int s = 0; s < nw; s++) px_gpt_kv_reset(&g->kv, s);
  int s = 0;
  int64_t done = 0; /* tokens of prompt s already in the cache */
  while (s < nw) {
    int M = 0, R = 0;
    while (s < nw && R < g->kv.max_rows) {
      const int64_t len = offsets[w0 + s + 1] - offsets[w0 + s];
      const int64_t room = g->kv.max_rows - R;
      const int take = (int)(len - done < room ? len - done : room);
      memcpy(g->feed + R, tokens + offsets[w0 + s] + done, (size_t)take * sizeof(int32_t));
      g->entry[M] = s;
      g->n_new[M] = take;
      R += take;
      done += take;
      g->final[M] = done == len;
      M++;
      if (done < len) break; /* the rest of this prompt goes into the next call */
      s++;
      done = 0;
    }
    px_gpt_kv_extend(g->model, &g->kv, M, g->entry, g->n_new, g->feed);
    for (int j = 0; j < M; j++)
      if (g->final[j])
        memcpy(g->rows + (size_t)g->entry[j] * V, g->kv.logits + (size_t)j * V,
               (size_t)V * sizeof(float));
  }
}

px_status px_generate(px_generator *g, const int32_t *tokens, const int64_t *offsets, int64_t n,
                      uint64_t iteration, int64_t first_index, px_generation *out, px_error *err) {
  const int V = g->kv.V, max_T = g->kv.max_T, R = g->max_new;
  memset(out, 0, sizeof *out);
  if (px_fault_fails("generate"))
    return px_error_set(err, PX_ERUN, "generation of %lld prompts failed (PROXIMA_FAULT)",
                        (long long)n);
  for (int64_t i = 0; i < n; i++) {
    const int64_t len = offsets[i + 1] - offsets[i];
    if (len < 1)
      return px_error_set(err, PX_EINPUT, "prompt %lld is empty (it needs at least BOS)",
                          (long long)first_index + i);
    if (len >= max_T)
      return px_error_set(err, PX_EINPUT,
                          "prompt %lld is %lld tokens long (BOS included): the model's "
                          "max_seq_len %d leaves no room for a response",
                          (long long)first_index + i, (long long)len, max_T);
    for (int64_t t = offsets[i]; t < offsets[i + 1]; t++)
      if (tokens[t] < 0 || tokens[t] >= V)
        return px_error_set(err, PX_EINPUT,
                            "prompt %lld holds token %d, outside the model's vocabulary (%d)",
                            (long long)first_index + i, tokens[t], V);
  }
  out->n = n;
  out->max_new = R;
  out->tokens = px_malloc((size_t)(n > 0 ? n : 1) * R * sizeof(int32_t));
  out->logprobs = px_calloc((size_t)(n > 0 ? n : 1) * R, sizeof(float));
  out->lengths = px_calloc((size_t)(n > 0 ? n : 1), sizeof(int32_t));
  out->eos = px_calloc((size_t)(n > 0 ? n : 1), sizeof(uint8_t));
  const px_tokenizer *tok = g->sampler.tok;
  for (int64_t i = 0; i < n * R; i++) out->tokens[i] = tok->pad;
  const float lp_temp = px_sampler_logprob_temperature(&g->sampler);
  const double t0 = px_log_elapsed();

  for (int64_t w0 = 0; w0 < n; w0 += g->batch) {
    const int nw = (int)(n - w0 < g->batch ? n - w0 : g->batch);
    px_prefill(g, tokens, offsets, w0, nw);
    int M = nw;
    for (int j = 0; j < M; j++) g->active[j] = j;
    const float *rows = g->rows; /* row j: the logits of active[j] */
    while (M > 0) {
      /* 2. the draws of the active sequences, and their log-probs */
      for (int j = 0; j < M; j++) {
        const int64_t i = w0 + g->active[j];
        const int pos = (int)(offsets[i + 1] - offsets[i]) + out->lengths[i];
        g->coins[j] = px_sampler_coin(&g->sampler, iteration, first_index + i, pos);
      }
      px_sampler_sample_rows(&g->sampler, g->next, rows, g->coins, M);
      px_crossentropy_forward(g->losses, g->probs, rows, g->next, lp_temp, M, V,
                              g->model->live_vocab);

      /* 3. record; keep the unfinished ones, in order, and feed their tokens */
      int kept = 0;
      for (int j = 0; j < M; j++) {
        const int slot = g->active[j];
        const int64_t i = w0 + slot;
        const int len = out->lengths[i];
        out->tokens[i * R + len] = g->next[j];
        out->logprobs[i * R + len] = -g->losses[j];
        out->lengths[i] = len + 1;
        const int full = (int)(offsets[i + 1] - offsets[i]) + len + 1;
        if (g->next[j] == tok->eos) {
          out->eos[i] = 1;
          continue;
        }
        if (len + 1 == R || full == max_T) continue;
        g->active[kept] = slot;
        g->feed[kept] = g->next[j];
        g->n_new[kept] = 1;
        kept++;
      }
      g->tokens_out += M;
      M = kept;
      if (M == 0) break;
      px_gpt_kv_extend(g->model, &g->kv, M, g->active, g->n_new, g->feed);
      rows = g->kv.logits;
    }
  }
  g->seconds += px_log_elapsed() - t0;
  return PX_OK;
}

px_sampler_config px_sample_config(const px_config *cfg) {
  px_sampler_config c = {(float)cfg->sample_temperature, (int)cfg->sample_top_k,
                         (float)cfg->sample_top_p, 0};
  return c;
}

void px_prompts_pack(px_prompts *p, const px_dataset *d, const px_tokenizer *tok,
                     const int64_t *records, int64_t first, int64_t n, int T) {
  const int64_t max = T > 0 ? px_prompt_max_tokens(T) : INT64_MAX;
  p->n = n, p->cut = 0;
  p->offsets = px_malloc((size_t)(n + 1) * sizeof *p->offsets);
  p->offsets[0] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t len;
    px_dataset_row(d, 0, records ? records[i] : first + i, &len);
    p->cut += len > max;
    p->offsets[i + 1] = p->offsets[i] + 1 + (len < max ? len : max);
  }
  p->tokens = px_malloc((size_t)(p->offsets[n] + 1) * sizeof *p->tokens);
  for (int64_t i = 0; i < n; i++) {
    int64_t len;
    const int32_t *row = px_dataset_row(d, 0, records ? records[i] : first + i, &len);
    int32_t *dst = p->tokens + p->offsets[i];
    dst[0] = tok->bos;
    memcpy(dst + 1, row, (size_t)(p->offsets[i + 1] - p->offsets[i] - 1) * sizeof *dst);
  }
}

void px_prompts_free(px_prompts *p) {
  free(p->tokens);
  free(p->offsets);
  p->tokens = NULL, p->offsets = NULL, p->n = 0;
}

void px_prompts_warn_cut(const px_prompts *p, const char *who, int T) {
  int64_t cut = p->cut;
  px_comm_allreduce_sum_i64(&cut, 1);
  if (cut > 0)
    px_log_warn("%s: %lld prompt%s longer than %lld tokens lost their end (BOS, the prompt, a "
                "response token and EOS must fit max_seq_len %d)",
                who, (long long)cut, cut == 1 ? "" : "s", (long long)px_prompt_max_tokens(T), T);
}
