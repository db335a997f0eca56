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
#include "proxima/run.h"
#include "proxima/trainer.h"

enum { PX_STREAM_HELDOUT = 11, PX_STREAM_EPOCH = 12 };

typedef struct px_sft {
  const px_config *cfg;
  px_dataset data;
  int64_t *heldout, n_heldout; /* record indices */
  int64_t *train, n_train;
  px_epochs epochs; /* the stream of training records */
  px_gpt model;
  px_batch batch;
  float *logprobs, *dlogprobs; /* [micro_batch, T] */
} px_sft;

px_status px_sft_model_config(const px_config *cfg, px_gpt_config *mc, px_error *err) {
  *mc = (px_gpt_config){(int)cfg->model_vocab_size, (int)cfg->model_max_seq_len,
                        (int)cfg->model_n_layer,    (int)cfg->model_n_head,
                        (int)cfg->model_n_embd,     PX_GPT_HEAD_LM};
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
  if (s->n_heldout == 0) return NAN;
  double w = px_sft_weight(s, s->heldout, s->n_heldout);
  int64_t lo, hi, tokens = 0;
  px_comm_share(s->n_heldout, px_comm_rank(), px_comm_size(), &lo, &hi);
  double loss = px_sft_pass(s, s->heldout + lo, hi - lo, w, NULL, &tokens);
  px_comm_allreduce_sum_f64(&loss, 1);
  return loss;
}

static px_status px_sft_load(px_sft *s, px_error *err) {
  const px_config *cfg = s->cfg;
  /* Every rank holds every record, so a step's global batch does not depend on the rank
   * count. */
  PX_TRY(px_dataset_read(cfg->sft_data, MPI_COMM_SELF, 0, 1, -1, &s->data, err));
  if (s->data.kind != PX_DATA_SFT && s->data.kind != PX_DATA_TEXT)
    return px_error_set(err, PX_EINPUT, "%s holds %s records; sft trains on sft or text records",
                        cfg->sft_data, px_data_kind_name(s->data.kind));
  int64_t n = s->data.n;
  s->n_heldout = cfg->sft_heldout < n / 2 ? cfg->sft_heldout : n / 2;
  s->n_train = n - s->n_heldout;
  if (s->n_train < 1)
    return px_error_set(err, PX_EINPUT, "%s has %lld records: too few to train on", cfg->sft_data,
                        (long long)n);
  px_split_heldout(n, s->n_heldout, (uint64_t)cfg->run_seed, PX_STREAM_HELDOUT, &s->heldout,
                   &s->train);
  px_epochs_init(&s->epochs, s->train, s->n_train, (uint64_t)cfg->run_seed, PX_STREAM_EPOCH);
  return PX_OK;
}

px_status px_sft_run(const px_config *cfg, px_error *err) {
  px_gpt_config mc;
  PX_TRY(px_sft_model_config(cfg, &mc, err));
  if (cfg->sft_batch_size < px_comm_size())
    return px_error_set(err, PX_EINPUT, "sft.batch_size = %lld is less than the %d ranks",
                        (long long)cfg->sft_batch_size, px_comm_size());
  px_run run;
  PX_TRY(px_run_open(&run, cfg, err));
  px_sft s = {.cfg = cfg};
  px_status st = px_comm_agree(px_sft_load(&s, err), err);
  if (st != PX_OK) goto done;

  const int T = (int)cfg->model_max_seq_len, mb = (int)cfg->sft_micro_batch;
  st = px_comm_agree(px_gpt_check_memory(&mc, mb, T, 1, "sft", err), err);
  if (st != PX_OK) goto done;
  px_gpt_build(&s.model, &mc, mb, T, 1);
  px_gpt_init(&s.model, (uint64_t)cfg->run_seed);
  px_batch_build(&s.batch, mb, T);
  s.logprobs = px_malloc((size_t)mb * T * sizeof(float));
  s.dlogprobs = px_malloc((size_t)mb * T * sizeof(float));
  px_log_info("sft: %lld %s records (%lld held out), model %d layers x %d wide, %zu parameters",
              (long long)s.data.n, px_data_kind_name(s.data.kind), (long long)s.n_heldout,
              mc.n_layer, mc.n_embd, s.model.n_params);

  px_trainer trainer = {.model = &s.model,
                        .adamw = {(float)cfg->adam_beta1, (float)cfg->adam_beta2,
                                  (float)cfg->adam_eps, (float)cfg->sft_weight_decay},
                        .schedule = {cfg->sft_lr, cfg->sft_lr_min, cfg->sft_warmup_steps,
                                     cfg->sft_steps,
                                     !strcmp(cfg->sft_decay, "cosine")   ? PX_LR_COSINE
                                     : !strcmp(cfg->sft_decay, "linear") ? PX_LR_LINEAR
                                                                         : PX_LR_CONSTANT},
                        .grad_clip = cfg->sft_grad_clip,
                        .phase = "sft",
                        .lr_key = "sft.lr",
                        .fault_point = "sft.grad",
                        .max_nonfinite = cfg->run_max_nonfinite,
                        .overlap = cfg->run_overlap_allreduce};
  const int64_t B = cfg->sft_batch_size, steps = cfg->sft_steps;
  px_sft_state state = {0, cfg->run_seed, 0, 0, 0, 0}, *px_ckpt_state_ = &state;
  const px_ckpt_var vars[] = {PX_SFT_STATE(PX_CKPT_VAR)};
  const int n_vars = (int)(sizeof vars / sizeof vars[0]);
  px_ckpt_model policy = {"policy", &s.model, 1, 0, 0, 0};
  char resume[4300];
  st = px_run_resume_from(&run, cfg, resume, sizeof resume, err);
  if (st == PX_OK && resume[0]) {
    st = px_run_restore(&run, cfg, resume, &policy, 1, vars, n_vars, &state.seed,
                        &state.metrics_bytes, err);
    if (st == PX_OK)
      px_log_info("sft: resuming from %s at step %lld", resume, (long long)state.step);
  }
  if (st != PX_OK) goto done;
  trainer.applied = state.adam_applied, trainer.skipped = state.adam_skipped;

  int64_t *records = px_malloc((size_t)B * sizeof *records);
  int64_t lo, hi, tokens_since = 0, first = state.step;
  px_comm_share(B, px_comm_rank(), px_comm_size(), &lo, &hi);
  double t_start = px_log_elapsed(), t_last = t_start;

  for (int64_t step = first; step < steps; step++) {
    for (int64_t i = 0; i < B; i++) records[i] = px_epochs_item(&s.epochs, state.data_cursor + i);
    double total_weight = px_sft_weight(&s, records, B);
    px_trainer_begin(&trainer, B);
    int64_t tokens = 0;
    double loss = px_sft_pass(&s, records + lo, hi - lo, total_weight > 0 ? total_weight : 1,
                              &trainer, &tokens);
    double sums[2] = {loss, (double)tokens}; /* the loss and the token count, over the ranks */
    px_comm_allreduce_sum_f64(sums, 2);
    loss = sums[0];
    tokens_since += (int64_t)sums[1];
    double lr, norm = px_trainer_step(&trainer, step, loss, &lr);
    st = px_trainer_guard(&trainer, step, err);
    if (st != PX_OK) break; /* no checkpoint: LATEST keeps naming the last good one */
    state.step = step + 1, state.data_cursor += B;
    state.adam_applied = trainer.applied, state.adam_skipped = trainer.skipped;

    int last = step + 1 == steps;
    int do_eval = last || (cfg->sft_eval_every > 0 && (step + 1) % cfg->sft_eval_every == 0);
    double heldout = do_eval ? px_sft_heldout_loss(&s) : NAN;
    if (last || (step + 1) % cfg->sft_log_every == 0 || do_eval) {
      double now = px_log_elapsed(), rate = tokens_since / (now - t_last + 1e-9);
      char eta[32], held[48] = "";
      px_log_duration(eta, sizeof eta, (now - t_start) / (step + 1 - first) * (steps - step - 1));
      if (do_eval) snprintf(held, sizeof held, " | heldout %.4f", heldout);
      px_log_info("sft step %lld/%lld | loss %.4f%s | lr %.2e | |g| %.3f | %.0f tok/s | ETA %s",
                  (long long)step + 1, (long long)steps, loss, held, lr, norm, rate, eta);
      const char *names[] = {"loss", "lr", "grad_norm", "nonfinite_steps", "heldout_loss"};
      double values[] = {loss, lr, norm, (double)trainer.skipped, heldout};
      px_run_metrics(&run, "sft", step + 1, do_eval ? 5 : 4, names, values);
      const char *tnames[] = {"tokens_per_s", "seconds"};
      double tvalues[] = {rate, now - t_start};
      px_run_timings(&run, "sft", step + 1, 2, tnames, tvalues);
      tokens_since = 0;
      t_last = now;
    }
    px_fault_point("sft.step");
    int stop = px_run_should_stop();
    if (last || stop ||
        (cfg->sft_checkpoint_every > 0 && (step + 1) % cfg->sft_checkpoint_every == 0)) {
      policy.optim_step = trainer.applied;
      st = px_run_checkpoint(&run, cfg, step + 1, 0, &policy, 1, vars, n_vars, &state.metrics_bytes,
                             err);
      if (st != PX_OK) break;
    }
    if (stop && !last) {
      st = px_error_set(err, PX_EINTERRUPTED,
                        "sft: stopped by a signal after step %lld, checkpoint written; continue "
                        "with --resume auto",
                        (long long)step + 1);
      break;
    }
  }
  if (s.batch.truncated)
    px_log_warn("sft: sequences longer than model.max_seq_len = %d were cut", T);
  free(records);
  if (st == PX_OK)
    px_log_info("sft: done in %.1fs; checkpoint %s/ckpt-%08lld.h5", px_log_elapsed() - t_start,
                run.ckpt_dir, (long long)steps);

done:
  free(s.logprobs);
  free(s.dlogprobs);
  px_batch_free(&s.batch);
  if (s.model.params) px_gpt_free(&s.model);
  free(s.heldout);
  free(s.train);
  px_epochs_free(&s.epochs);
  px_dataset_free(&s.data);
  px_run_close(&run);
  return st;
}
