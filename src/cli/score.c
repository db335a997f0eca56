/*
 * score.c — the reward model's commands for people: `proxima eval --reward --pairs` and
 * `proxima score --reward --data` (cli.h). The records are split over the ranks; rank 0 prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/checkpoint.h"
#include "proxima/cli.h"
#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/jsonl.h"
#include "proxima/log.h"
#include "proxima/rm.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

/* This rank's share of the records of path (a data set, or JSONL of the kind), as local rows
 * [*lo, *hi) of *ds, with the global index of local row 0 in *first. Collective. */
static px_status px_read_share(const char *path, px_data_kind kind, px_tokenizer *tok,
                               px_dataset *ds, int64_t *lo, int64_t *hi, int64_t *first,
                               px_error *err) {
  size_t len = strlen(path);
  px_status st;
  if (len >= 6 && strcmp(path + len - 6, ".jsonl") == 0) {
    st =
        px_jsonl_read(path, kind, tok, ds, err); /* small files: every rank parses, takes a share */
    if (st == PX_OK) px_comm_share(ds->n, px_comm_rank(), px_comm_size(), lo, hi);
    *first = *lo;
  } else {
    st = px_dataset_read(path, PX_IO_EVERY_RANK, px_comm_rank(), px_comm_size(), (int)kind, tok, ds,
                         err);
    *lo = 0, *hi = ds->n, *first = ds->first;
  }
  return px_comm_agree(st, err);
}

/* The reward model of a checkpoint and its tokenizer. Collective: the ranks agree. */
static px_status px_load_reward(const char *reward, int max_B, px_tokenizer *tok, px_gpt *model,
                                float *gain, float *bias, px_error *err) {
  px_tokenizer_byte(tok);
  px_status st = px_ckpt_read_tokenizer(reward, tok, err);
  if (st == PX_OK) st = px_rm_load_model(reward, model, max_B, 0, gain, bias, err);
  st = px_comm_agree(st, err);
  if (st != PX_OK) {
    if (model->params) px_gpt_free(model);
    px_tokenizer_free(tok);
  }
  return st;
}

px_status px_cli_eval_reward(const px_config *cfg, const char *reward, const char *pairs,
                             px_error *err) {
  px_gpt model = {0};
  px_dataset ds = {0};
  float gain = 1, bias = 0;
  const int mb = (int)cfg->rm_micro_batch;
  px_tokenizer tok;
  PX_TRY(px_load_reward(reward, 2 * mb, &tok, &model, &gain, &bias, err));
  int64_t lo = 0, hi = 0, first = 0;
  px_status st = px_read_share(pairs, PX_DATA_PREFS, &tok, &ds, &lo, &hi, &first, err);
  if (st == PX_OK) st = px_comm_agree(px_rm_check_lengths(&ds, model.max_T, pairs, err), err);
  if (st == PX_OK) {
    int64_t *idx = px_malloc((size_t)(hi - lo + 1) * sizeof *idx);
    for (int64_t i = lo; i < hi; i++) idx[i - lo] = i;
    double acc, loss;
    int64_t n_total = ds.n_total;
    px_rm_evaluate(&model, &tok, &ds, idx, hi - lo, n_total, mb, &acc, &loss);
    if (px_comm_rank() == 0) {
      printf("reward model  %s (score gain %.6g, bias %.6g)\n", reward, gain, bias);
      printf("pairs         %s (%lld)\n", pairs, (long long)n_total);
      printf("accuracy      %.4f\n", acc);
      printf("loss          %.4f\n", loss);
      fflush(stdout);
    }
    free(idx);
  }
  px_dataset_free(&ds);
  px_gpt_free(&model);
  px_tokenizer_free(&tok);
  return st;
}

px_status px_cli_score(const px_config *cfg, const char *reward, const char *data, int json,
                       px_error *err) {
  px_gpt model = {0};
  px_dataset ds = {0};
  float gain = 1, bias = 0;
  px_tokenizer tok;
  PX_TRY(px_load_reward(reward, (int)cfg->rm_micro_batch, &tok, &model, &gain, &bias, err));
  int64_t lo = 0, hi = 0, first = 0;
  px_status st = px_read_share(data, PX_DATA_SFT, &tok, &ds, &lo, &hi, &first, err);
  int64_t n = hi - lo;
  const int32_t **ps = px_malloc((size_t)(n + 1) * sizeof *ps);
  const int32_t **rs = px_malloc((size_t)(n + 1) * sizeof *rs);
  int64_t *pl = px_malloc((size_t)(n + 1) * sizeof *pl);
  int64_t *rl = px_malloc((size_t)(n + 1) * sizeof *rl);
  float *scores = px_malloc((size_t)(n + 1) * sizeof *scores);
  px_status mine = PX_OK;
  for (int64_t i = 0; st == PX_OK && i < n; i++) {
    ps[i] = px_dataset_row(&ds, 0, lo + i, &pl[i]);
    rs[i] = px_dataset_row(&ds, 1, lo + i, &rl[i]);
    if (pl[i] + rl[i] + 2 > model.max_T && mine == PX_OK)
      mine = px_error_set(err, PX_EINPUT,
                          "%s: record %lld: BOS + prompt + completion + EOS is %lld tokens, more "
                          "than the reward model's max_seq_len %d",
                          data, (long long)first + i, (long long)pl[i] + rl[i] + 2, model.max_T);
  }
  if (st == PX_OK) st = px_comm_agree(mine, err);
  if (st == PX_OK) {
    px_rm_score(&model, &tok, gain, bias, ps, pl, rs, rl, n, scores);
    px_text out = {0}, bytes = {0}, esc = {0};
    char num[64];
    for (int64_t i = 0; i < n; i++) {
      snprintf(num, sizeof num, "%.6f", scores[i]);
      if (json) {
        snprintf(num, sizeof num,
                 "{\"index\": %lld, \"score\": %.6f, \"prompt\": ", (long long)first + i,
                 scores[i]);
        px_text_str(&out, num);
      } else {
        px_text_str(&out, num);
        px_text_str(&out, "\t");
      }
      for (int f = 0; f < 2; f++) {
        bytes.n = esc.n = 0;
        px_tokenizer_decode(&tok, &bytes, f ? rs[i] : ps[i], (size_t)(f ? rl[i] : pl[i]));
        if (json) {
          if (f) px_text_str(&out, ", \"completion\": ");
          px_text_json(&out, bytes.p, bytes.n);
        } else {
          if (f) px_text_str(&out, "\t");
          px_text_escaped(&esc, bytes.p, bytes.n);
          px_text_printable(&out, esc.p, esc.n);
        }
      }
      px_text_str(&out, json ? "}\n" : "\n");
    }
    char *all = NULL;
    size_t all_n = 0;
    px_comm_gather_bytes(out.p ? out.p : "", out.n, &all, &all_n);
    if (px_comm_rank() == 0) st = px_text_write_stdout(all, all_n, err);
    st = px_comm_agree(st, err);
    free(all);
    px_text_free(&bytes);
    px_text_free(&esc);
    px_text_free(&out);
  }
  free(ps), free(rs), free(pl), free(rl), free(scores);
  px_dataset_free(&ds);
  px_gpt_free(&model);
  px_tokenizer_free(&tok);
  return st;
}
