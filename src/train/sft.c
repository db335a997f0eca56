/*
 * sft.c — supervised fine-tuning, `proxima sft`: next-token cross-entropy on the completion
 * tokens of an sft data set (on every token of a text data set), data-parallel over the ranks.
 *
 * The global batch of each step is the same whatever the rank count: step s takes positions
 * [s B, (s+1) B) of an endless stream of epochs, each a fresh permutation of the training
 * records keyed by (seed, epoch); rank r takes its contiguous share of those B records. The
 * loss is normalised by the weight of the whole global batch, so the allreduced gradient is
 * exactly the global one, and 1 and N ranks differ only in float summation order.
 */
#include "proxima/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/fault.h"
#include "proxima/gpt.h"
#include "proxima/log.h"
#include "proxima/optim.h"
#include "proxima/stage.h"
#include "proxima/trainer.h"

enum { PX_STREAM_HELDOUT = 11, PX_STREAM_EPOCH = 12 };

typedef struct px_sft {
  const px_config *cfg;
  px_tokenizer tok; /* model.tokenizer's or sft.init's: stored in every checkpoint */
  char init[4300];  /* sft.init resolved to a file; "" for a fresh model */
  px_dataset data;
  px_split split; /* held-out and training records, the stream of training records */
  px_gpt model;
  px_trainer trainer;
  px_sft_state state;
  px_batch batch;
  float *logprobs, *dlogprobs; /* [micro_batch, T] */
  int64_t *records, lo, hi;    /* a step's B records; this rank's share [lo, hi) of them */
} px_sft;

/* The metrics of a step, in the order of their keys in metrics.jsonl. */
enum {
  SFT_LOSS,
  SFT_LR,
  SFT_GRAD_NORM,
  SFT_NONFINITE,
  SFT_HELDOUT,
  SFT_TOKENS,
  SFT_SECONDS,
  SFT_N
};
static const px_metric px_sft_metrics[SFT_N] = {
    [SFT_LOSS] = {.name = "loss",
                  .label = "loss",
                  .format = "%.4f",
                  .reduce = PX_METRIC_SUM,
                  .plot = "sft_loss",
                  .curve = "training loss"},
    [SFT_LR] = {.name = "lr", .label = "lr", .format = "%.2e"},
    [SFT_GRAD_NORM] = {.name = "grad_norm", .label = "|g|", .format = "%.3f"},
    [SFT_NONFINITE] = {.name = "nonfinite_steps"},
    [SFT_HELDOUT] = {.name = "heldout_loss",
                     .label = "heldout",
                     .format = "%.4f",
                     .flags = PX_METRIC_EVAL,
                     .plot = "sft_loss",
                     .curve = "held-out loss"},
    [SFT_TOKENS] = {.name = "tokens_per_s",
                    .label = "tok/s",
                    .format = "%.0f",
                    .reduce = PX_METRIC_SUM,
                    .flags = PX_METRIC_TIMING | PX_METRIC_RATE,
                    .plot = "sft_throughput",
                    .curve = "tokens/s"},
    [SFT_SECONDS] = {.name = "seconds", .flags = PX_METRIC_TIMING},
};
static const px_plot px_sft_plots[] = {
    {"sft_loss", "SFT loss", "cross-entropy"},
    {"sft_throughput", "SFT training throughput (all ranks)", "tokens/s"},
};
const px_stage_table px_sft_table = {
    "sft", "step",       px_sft_metrics,
    SFT_N, px_sft_plots, (int)(sizeof px_sft_plots / sizeof px_sft_plots[0])};

px_status px_sft_model_config(const px_config *cfg, const px_tokenizer *tok, px_gpt_config *mc,
                              px_error *err) {
  int64_t V = cfg->model_vocab_size ? cfg->model_vocab_size : px_tokenizer_vocab_size(tok);
  PX_TRY(px_tokenizer_check_vocab(tok, V, "model", err));
  *mc = (px_gpt_config){(int)V,
                        (int)cfg->model_max_seq_len,
                        (int)cfg->model_n_layer,
                        (int)cfg->model_n_head,
                        (int)cfg->model_n_embd,
                        PX_GPT_HEAD_LM};
  return px_gpt_config_check(mc, err);
}

/* Forward (and, when tr is given, backward through it) over records[0..n) in micro-batches;
 * each row's loss weights are divided by total_weight. Returns sum of -w log p / total_weight. */
static double px_sft_pass(px_sft *s, const int64_t *records, int64_t n, double total_weight,
                          px_trainer *tr, int64_t *tokens) {
  const int mb = (int)s->cfg->sft_micro_batch;
  double loss = 0;
  for (int64_t start = 0; start < n; start += mb) {
    int rows = (int)(n - start < mb ? n - start : mb);
    px_batch_clear(&s->batch);
    for (int r = 0; r < rows; r++) px_batch_add_lm(&s->batch, &s->data, records[start + r]);
    px_batch_pack(&s->batch);
    const px_batch *b = &s->batch;
    px_gpt_forward(&s->model, b->tokens, b->lengths, b->B, b->T);
    px_gpt_logprobs(&s->model, s->logprobs, b->targets, 1.0f);
    for (int i = 0; i < b->B * b->T; i++) {
      loss -= (double)b->weights[i] * s->logprobs[i] / total_weight;
      s->dlogprobs[i] = (float)(-b->weights[i] / total_weight);
    }
    for (int r = 0; r < b->B; r++) *tokens += b->lengths[r];
    if (tr) px_trainer_backward(tr, s->dlogprobs, start + mb >= n);
  }
  return loss;
}

/* The total loss weight of records[0..n) (every rank computes it from its own copy). */
static double px_sft_weight(px_sft *s, const int64_t *records, int64_t n) {
  double w = 0;
  for (int64_t i = 0; i < n; i++) {
    px_batch_clear(&s->batch);
    w += px_batch_add_lm(&s->batch, &s->data, records[i]);
  }
  px_batch_clear(&s->batch);
  return w;
}

/* Held-out loss: the held-out records split over the ranks. Collective. */
static double px_sft_heldout_loss(px_sft *s) {
  const px_split *sp = &s->split;
  if (sp->n_heldout == 0) return NAN;
  double w = px_sft_weight(s, sp->heldout, sp->n_heldout);
  int64_t lo, hi, tokens = 0;
  px_comm_share(sp->n_heldout, px_comm_rank(), px_comm_size(), &lo, &hi);
  double loss = px_sft_pass(s, sp->heldout + lo, hi - lo, w, NULL, &tokens);
  px_comm_allreduce_sum_f64(&loss, 1);
  return loss;
}

static px_status px_sft_load(px_sft *s, px_error *err) {
  const px_config *cfg = s->cfg;
  /* Every rank holds every record, so a step's global batch does not depend on the rank
   * count. */
  PX_TRY(px_dataset_read(cfg->sft_data, PX_IO_ALONE, 0, 1, -1, &s->tok, &s->data, err));
  if (s->data.kind != PX_DATA_SFT && s->data.kind != PX_DATA_TEXT)
    return px_error_set(err, PX_EINPUT, "%s holds %s records; sft trains on sft or text records",
                        cfg->sft_data, px_data_kind_name(s->data.kind));
  return px_split_build(&s->split, s->data.n, cfg->sft_heldout, (uint64_t)cfg->run_seed,
                        PX_STREAM_HELDOUT, PX_STREAM_EPOCH, cfg->sft_data, "records", err);
}

/* The model, its trainer and the scratch of the passes. */
static px_status px_sft_build(px_sft *s, const px_gpt_config *mc, px_error *err) {
  const px_config *cfg = s->cfg;
  const int T = mc->max_seq_len, mb = (int)cfg->sft_micro_batch;
  PX_TRY(px_gpt_check_memory(mc, mb, T, 1, "sft", err));
  px_gpt_build(&s->model, mc, mb, T, 1);
  px_gpt_set_live_vocab(&s->model, px_tokenizer_softmax_span(&s->tok));
  px_gpt_init(&s->model, (uint64_t)cfg->run_seed);
  if (s->init[0]) {
    px_ckpt_model policy = {.group = "policy", .model = &s->model};
    PX_TRY(px_ckpt_read_model(s->init, &policy, err));
  }
  px_batch_build(&s->batch, &s->tok, mb, T);
  s->logprobs = px_malloc((size_t)mb * T * sizeof(float));
  s->dlogprobs = px_malloc((size_t)mb * T * sizeof(float));
  s->records = px_malloc((size_t)cfg->sft_batch_size * sizeof *s->records);
  px_comm_share(cfg->sft_batch_size, px_comm_rank(), px_comm_size(), &s->lo, &s->hi);
  s->trainer =
      (px_trainer){.model = &s->model,
                   .adamw = {(float)cfg->adam_beta1, (float)cfg->adam_beta2, (float)cfg->adam_eps,
                             (float)cfg->sft_weight_decay},
                   .schedule = {cfg->sft_lr, cfg->sft_lr_min, cfg->sft_warmup_steps, cfg->sft_steps,
                                !strcmp(cfg->sft_decay, "cosine")   ? PX_LR_COSINE
                                : !strcmp(cfg->sft_decay, "linear") ? PX_LR_LINEAR
                                                                    : PX_LR_CONSTANT},
                   .grad_clip = cfg->sft_grad_clip,
                   .phase = "sft",
                   .lr_key = "sft.lr",
                   .fault_point = "sft.grad",
                   .max_nonfinite = cfg->run_max_nonfinite,
                   .overlap = cfg->run_overlap_allreduce};
  return PX_OK;
}

static void px_sft_free(px_sft *s) {
  free(s->logprobs);
  free(s->dlogprobs);
  free(s->records);
  px_batch_free(&s->batch);
  if (s->model.params) px_gpt_free(&s->model);
  px_split_free(&s->split);
  px_dataset_free(&s->data);
  px_tokenizer_free(&s->tok);
}

/* One optimizer step over the global batch of B records at data_cursor. */
static px_status px_sft_step(px_stage *sg, void *ctx, int64_t step, px_error *err) {
  px_sft *s = ctx;
  const px_config *cfg = s->cfg;
  const int64_t B = cfg->sft_batch_size;
  for (int64_t i = 0; i < B; i++)
    s->records[i] = px_epochs_item(&s->split.epochs, s->state.data_cursor + i);
  double total_weight = px_sft_weight(s, s->records, B);
  px_trainer_begin(&s->trainer, B);
  int64_t tokens = 0;
  double loss = px_sft_pass(s, s->records + s->lo, s->hi - s->lo,
                            total_weight > 0 ? total_weight : 1, &s->trainer, &tokens);
  px_stage_set(sg, SFT_LOSS, loss, 1);
  px_stage_set(sg, SFT_TOKENS, (double)tokens, 1);
  px_stage_reduce(sg); /* the loss and the token count, over the ranks */
  double lr, norm = px_trainer_step(&s->trainer, step, px_stage_get(sg, SFT_LOSS), &lr);
  PX_TRY(px_trainer_guard(&s->trainer, step, err));
  s->state.step = step + 1, s->state.data_cursor += B;
  s->state.adam_applied = s->trainer.applied, s->state.adam_skipped = s->trainer.skipped;
  sg->models[0].optim_step = s->trainer.applied;

  px_stage_set(sg, SFT_LR, lr, 1);
  px_stage_set(sg, SFT_GRAD_NORM, norm, 1);
  px_stage_set(sg, SFT_NONFINITE, (double)s->trainer.skipped, 1);
  px_stage_set(sg, SFT_SECONDS, px_log_elapsed() - sg->t_start, 1);
  int last = step + 1 == cfg->sft_steps;
  if (last || (cfg->sft_eval_every > 0 && (step + 1) % cfg->sft_eval_every == 0))
    px_stage_set(sg, SFT_HELDOUT, px_sft_heldout_loss(s), 1);
  return PX_OK;
}

/* The tokenizer and the model's shape: sft.init's checkpoint's, or the [model] keys'. */
static px_status px_sft_start(px_sft *s, px_gpt_config *mc, px_error *err) {
  const px_config *cfg = s->cfg;
  px_tokenizer_byte(&s->tok);
  if (!cfg->sft_init[0]) {
    PX_TRY(px_tokenizer_load(&s->tok, cfg->model_tokenizer, cfg->model_tokenizer_dir, err));
    return px_sft_model_config(cfg, &s->tok, mc, err);
  }
  PX_TRY(px_ckpt_resolve(cfg->sft_init, s->init, sizeof s->init, err));
  PX_TRY(px_ckpt_read_config(s->init, "policy", mc, err));
  if (mc->head != PX_GPT_HEAD_LM)
    return px_error_set(err, PX_EINPUT, "%s: /policy has a scalar head, not an LM head", s->init);
  PX_TRY(px_ckpt_read_tokenizer(s->init, &s->tok, err));
  PX_TRY(px_tokenizer_check_vocab(&s->tok, mc->vocab_size, s->init, err));
  px_log_info("sft: starting from %s (%d layers x %d wide, %d positions, %s tokenizer); the "
              "[model] keys are not used",
              s->init, mc->n_layer, mc->n_embd, mc->max_seq_len, px_tok_kind_name(s->tok.kind));
  return PX_OK;
}

px_status px_sft_run(const px_config *cfg, px_error *err) {
  px_sft s = {.cfg = cfg, .state = {.seed = cfg->run_seed}};
  px_gpt_config mc;
  px_status st = px_comm_agree(px_sft_start(&s, &mc, err), err);
  if (st != PX_OK) {
    px_tokenizer_free(&s.tok);
    return st;
  }
  px_ckpt_model policy = {.group = "policy", .model = &s.model, .optim = 1};
  const px_ckpt_var vars[] = {PX_SFT_STATE(PX_CKPT_VAR, &s.state)};
  px_stage sg = {.cfg = cfg,
                 .table = &px_sft_table,
                 .batch_key = "sft.batch_size",
                 .batch = cfg->sft_batch_size,
                 .steps = cfg->sft_steps,
                 .log_every = cfg->sft_log_every,
                 .checkpoint_every = cfg->sft_checkpoint_every,
                 .last_checkpoint = 1,
                 .tokenizer = &s.tok,
                 .models = &policy,
                 .n_models = 1,
                 .n_restored = 1,
                 PX_STAGE_STATE(vars, s.state, step)};
  st = px_stage_open(&sg, err);
  if (st != PX_OK) {
    px_tokenizer_free(&s.tok);
    return st;
  }
  st = px_comm_agree(px_sft_load(&s, err), err);
  if (st == PX_OK) st = px_comm_agree(px_sft_build(&s, &mc, err), err);
  if (st == PX_OK) {
    px_log_info("sft: %lld %s records (%lld held out), model %d layers x %d wide, %zu parameters",
                (long long)s.data.n, px_data_kind_name(s.data.kind), (long long)s.split.n_heldout,
                mc.n_layer, mc.n_embd, s.model.n_params);
    st = px_stage_restore(&sg, err);
  }
  if (st == PX_OK) {
    s.trainer.applied = s.state.adam_applied, s.trainer.skipped = s.state.adam_skipped;
    st = px_stage_loop(&sg, px_sft_step, &s, err);
  }
  if (s.batch.truncated)
    px_log_warn("sft: sequences longer than model.max_seq_len = %d were cut", mc.max_seq_len);
  if (st == PX_OK)
    px_log_info("sft: done in %.1fs; checkpoint %s/ckpt-%08lld.h5", px_log_elapsed() - sg.t_start,
                sg.run.ckpt_dir, (long long)cfg->sft_steps);
  px_sft_free(&s);
  px_stage_close(&sg);
  return st;
}
