/*
 * rm.c — the reward model, `proxima rm`: R_phi(x, y) is the scalar-head transformer read at the
 * EOS of y, its trunk started from the SFT policy, trained on preference pairs with the
 * Bradley–Terry loss L = -log sigma(R(x, y+) - R(x, y-)) (src/rl/rl.c), data-parallel over the
 * ranks in the same way as sft.c: every rank holds every pair, so each step's global batch does
 * not depend on the rank count, and the loss is normalised by the global pair count.
 */
#include "proxima/rm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/generate.h"
#include "proxima/log.h"
#include "proxima/optim.h"
#include "proxima/rl.h"
#include "proxima/run.h"
#include "proxima/tokenizer.h"
#include "proxima/trainer.h"

enum { PX_STREAM_RM_HELDOUT = 21, PX_STREAM_RM_EPOCH = 22 };

void px_rm_scores(const px_gpt *model, const px_batch *b, float gain, float bias, float *scores) {
  for (int r = 0; r < b->B; r++)
    scores[r] = gain * model->values[(size_t)r * b->T + b->lengths[r] - 1] + bias;
}

px_status px_rm_load_model(const char *file_or_dir, px_gpt *model, int max_B, float *gain,
                           float *bias, px_error *err) {
  double g = 1, b = 0;
  /* A checkpoint of an unfinished `rm` run (its /state says normalized = 0) is refused: its
   * score has not been normalised yet. Checkpoints of other stages have no such variable. */
  char path[4300];
  int64_t normalized = 1;
  px_ckpt_var var = {"normalized", &normalized, NULL};
  px_error ignored;
  PX_TRY(px_ckpt_resolve(file_or_dir, path, sizeof path, err));
  if (px_ckpt_read_state(path, &var, 1, &ignored) == PX_OK && !normalized)
    return px_error_set(err, PX_EINPUT,
                        "%s is from an unfinished rm run (its score is not normalised yet); "
                        "finish that run with --resume auto",
                        path);
  PX_TRY(px_ckpt_load(path, "reward", PX_GPT_HEAD_SCALAR, max_B, 0, 0, model, &g, &b, err));
  *gain = (float)g, *bias = (float)b;
  return PX_OK;
}

/* Every pair must fit the model whole (the score is read at EOS, so nothing may be cut). */
px_status px_rm_check_lengths(const px_dataset *d, int max_T, const char *path, px_error *err) {
  for (int64_t i = 0; i < d->n; i++)
    for (int f = 1; f <= 2; f++) {
      int64_t np, nr;
      px_dataset_row(d, 0, i, &np);
      px_dataset_row(d, f, i, &nr);
      if (np + nr + 2 > max_T)
        return px_error_set(err, PX_EINPUT,
                            "%s: pair %lld: BOS + prompt + %s + EOS is %lld tokens, more than "
                            "the model's max_seq_len %d",
                            path, (long long)(d->first + i), f == 1 ? "chosen" : "rejected",
                            (long long)(np + nr + 2), max_T);
    }
  return PX_OK;
}

/* Scratch of a pass over pairs, for micro-batches of mb pairs of up to T positions. */
typedef struct px_rm_work {
  float *scores;  /* [2 mb]: chosen, rejected, chosen, ... */
  float *rp, *rn; /* [mb] scores of the chosen and rejected responses */
  float *dp, *dn; /* [mb] dL/d of those */
  float *dvalues; /* [2 mb, T] */
} px_rm_work;

static void px_rm_work_build(px_rm_work *w, int mb, int T) {
  w->scores = px_malloc((size_t)2 * mb * sizeof(float));
  w->rp = px_malloc((size_t)mb * sizeof(float));
  w->rn = px_malloc((size_t)mb * sizeof(float));
  w->dp = px_malloc((size_t)mb * sizeof(float));
  w->dn = px_malloc((size_t)mb * sizeof(float));
  w->dvalues = px_malloc((size_t)2 * mb * T * sizeof(float));
}

static void px_rm_work_free(px_rm_work *w) {
  free(w->scores), free(w->rp), free(w->rn), free(w->dp), free(w->dn), free(w->dvalues);
}

/* Forward (and, when tr is given, backward through it) over pairs idx[0..n) in micro-batches
 * of mb pairs: adds sum of the pairs' losses / norm to *loss and the pairs scored the right way
 * round to *correct. */
static void px_rm_pass(px_gpt *model, const px_dataset *pairs, const int64_t *idx, int64_t n,
                       int mb, double norm, px_trainer *tr, double *loss, int64_t *correct,
                       px_batch *batch, px_rm_work *w) {
  for (int64_t start = 0; start < n; start += mb) {
    int rows = (int)(n - start < mb ? n - start : mb);
    px_batch_clear(batch);
    for (int r = 0; r < rows; r++) { /* row 2r: the chosen response, 2r+1: the rejected one */
      int64_t i = idx[start + r], np, nc, nr;
      const int32_t *p = px_dataset_row(pairs, 0, i, &np);
      const int32_t *c = px_dataset_row(pairs, 1, i, &nc);
      const int32_t *x = px_dataset_row(pairs, 2, i, &nr);
      PX_REQUIRE(px_batch_add_scored(batch, p, np, c, nc) == 0 &&
                     px_batch_add_scored(batch, p, np, x, nr) == 0,
                 "pair %lld does not fit the batch (lengths were checked)", (long long)i);
    }
    px_batch_pack(batch);
    px_gpt_forward(model, batch->tokens, batch->lengths, batch->B, batch->T);
    px_rm_scores(model, batch, 1, 0, w->scores);
    for (int r = 0; r < rows; r++) {
      w->rp[r] = w->scores[2 * r];
      w->rn[r] = w->scores[2 * r + 1];
      *correct += w->rp[r] > w->rn[r];
    }
    *loss += px_rl_pairwise_loss(w->dp, w->dn, w->rp, w->rn, (size_t)rows, norm);
    if (!tr) continue;
    memset(w->dvalues, 0, (size_t)batch->B * batch->T * sizeof(float));
    for (int r = 0; r < rows; r++) {
      w->dvalues[(size_t)(2 * r) * batch->T + batch->lengths[2 * r] - 1] = w->dp[r];
      w->dvalues[(size_t)(2 * r + 1) * batch->T + batch->lengths[2 * r + 1] - 1] = w->dn[r];
    }
    px_trainer_backward(tr, w->dvalues, start + mb >= n);
  }
}

px_status px_rm_evaluate(px_gpt *model, const px_dataset *pairs, const int64_t *idx, int64_t n,
                         int64_t n_global, int mb, double *accuracy, double *loss) {
  px_batch batch;
  px_rm_work w;
  px_batch_build(&batch, 2 * mb, model->max_T);
  px_rm_work_build(&w, mb, model->max_T);
  int64_t correct = 0;
  double sums[2] = {0, 0};
  px_rm_pass(model, pairs, idx, n, mb, n_global > 0 ? (double)n_global : 1, NULL, &sums[0],
             &correct, &batch, &w);
  sums[1] = (double)correct;
  px_comm_allreduce_sum_f64(sums, 2);
  *loss = sums[0];
  *accuracy = n_global > 0 ? sums[1] / (double)n_global : NAN;
  px_rm_work_free(&w);
  px_batch_free(&batch);
  return PX_OK;
}

typedef struct px_rm {
  const px_config *cfg;
  px_dataset pairs;
  int64_t *heldout, n_heldout, *train, n_train;
  px_epochs epochs;
  px_gpt model;
  px_batch batch;
  px_rm_work work;
  char init_path[4300];
} px_rm;

static px_status px_rm_setup(px_rm *s, px_error *err) {
  const px_config *cfg = s->cfg;
  /* The trunk and its shape come from the SFT checkpoint; the head is new. */
  PX_TRY(px_ckpt_resolve(cfg->rm_init, s->init_path, sizeof s->init_path, err));
  px_gpt_config mc;
  PX_TRY(px_ckpt_read_config(s->init_path, "policy", &mc, err));
  mc.head = PX_GPT_HEAD_SCALAR;
  PX_TRY(px_dataset_read(cfg->rm_data, MPI_COMM_SELF, 0, 1, PX_DATA_PREFS, &s->pairs, err));
  PX_TRY(px_rm_check_lengths(&s->pairs, mc.max_seq_len, cfg->rm_data, err));
  int64_t n = s->pairs.n;
  s->n_heldout = cfg->rm_heldout < n / 2 ? cfg->rm_heldout : n / 2;
  s->n_train = n - s->n_heldout;
  if (s->n_train < 1)
    return px_error_set(err, PX_EINPUT, "%s has %lld pairs: too few to train on", cfg->rm_data,
                        (long long)n);
  px_split_heldout(n, s->n_heldout, (uint64_t)cfg->run_seed, PX_STREAM_RM_HELDOUT, &s->heldout,
                   &s->train);
  px_epochs_init(&s->epochs, s->train, s->n_train, (uint64_t)cfg->run_seed, PX_STREAM_RM_EPOCH);
  const int mb = (int)cfg->rm_micro_batch;
  PX_TRY(px_gpt_check_memory(&mc, 2 * mb, mc.max_seq_len, 1, "rm", err));
  px_gpt_build(&s->model, &mc, 2 * mb, mc.max_seq_len, 1);
  /* head N(0, 1/sqrt(C+1)), bias 0: px_gpt_init's scalar head; then the SFT trunk over it */
  px_gpt_init(&s->model, (uint64_t)cfg->run_seed);
  PX_TRY(px_ckpt_read_trunk(s->init_path, "policy", &s->model, err));
  px_batch_build(&s->batch, 2 * mb, mc.max_seq_len);
  px_rm_work_build(&s->work, mb, mc.max_seq_len);
  return PX_OK;
}

static void px_rm_free(px_rm *s) {
  px_rm_work_free(&s->work);
  px_batch_free(&s->batch);
  if (s->model.params) px_gpt_free(&s->model);
  px_epochs_free(&s->epochs);
  free(s->heldout);
  free(s->train);
  px_dataset_free(&s->pairs);
}

px_status px_rm_run(const px_config *cfg, px_error *err) {
  if (cfg->rm_batch_size < px_comm_size())
    return px_error_set(err, PX_EINPUT, "rm.batch_size = %lld is less than the %d ranks",
                        (long long)cfg->rm_batch_size, px_comm_size());
  px_run run;
  PX_TRY(px_run_open(&run, cfg, err));
  px_rm s = {.cfg = cfg};
  px_status st = px_comm_agree(px_rm_setup(&s, err), err);
  if (st != PX_OK) goto done;

  const int64_t B = cfg->rm_batch_size;
  const int64_t steps = (int64_t)ceil(cfg->rm_epochs * (double)s.n_train / (double)B);
  const int mb = (int)cfg->rm_micro_batch;
  px_log_info("rm: %lld pairs (%lld held out), trunk from %s, %lld steps of %lld pairs",
              (long long)s.pairs.n, (long long)s.n_heldout, s.init_path, (long long)steps,
              (long long)B);
  px_trainer trainer = {.model = &s.model,
                        .adamw = {(float)cfg->adam_beta1, (float)cfg->adam_beta2,
                                  (float)cfg->adam_eps, (float)cfg->rm_weight_decay},
                        .schedule = {cfg->rm_lr, 0.0, cfg->rm_warmup_steps, steps, PX_LR_LINEAR},
                        .grad_clip = cfg->rm_grad_clip,
                        .phase = "rm",
                        .lr_key = "rm.lr",
                        .fault_point = "rm.grad",
                        .max_nonfinite = cfg->run_max_nonfinite,
                        .overlap = cfg->run_overlap_allreduce};
  px_rm_state state = {0, cfg->run_seed, 0, 0, 0, 0, 0}, *px_ckpt_state_ = &state;
  const px_ckpt_var vars[] = {PX_RM_STATE(PX_CKPT_VAR)};
  const int n_vars = (int)(sizeof vars / sizeof vars[0]);
  px_ckpt_model reward = {"reward", &s.model, 1, 0, 1, 0};
  char resume[4300];
  st = px_run_resume_from(&run, cfg, resume, sizeof resume, err);
  if (st == PX_OK && resume[0]) {
    st = px_run_restore(&run, cfg, resume, &reward, 1, vars, n_vars, &state.seed,
                        &state.metrics_bytes, err);
    if (st == PX_OK && state.normalized) {
      px_log_info("rm: %s is the finished reward model; nothing to do", resume);
      goto done;
    }
    if (st == PX_OK)
      px_log_info("rm: resuming from %s at step %lld", resume, (long long)state.step);
  }
  if (st != PX_OK) goto done;
  trainer.applied = state.adam_applied, trainer.skipped = state.adam_skipped;

  int64_t *idx = px_malloc((size_t)B * sizeof *idx);
  int64_t lo, hi, first = state.step;
  px_comm_share(B, px_comm_rank(), px_comm_size(), &lo, &hi);
  double t_start = px_log_elapsed(), acc = NAN, held_loss = NAN;

  for (int64_t step = first; step < steps; step++) {
    for (int64_t i = 0; i < B; i++) idx[i] = px_epochs_item(&s.epochs, state.data_cursor + i);
    px_trainer_begin(&trainer, B);
    double sums[2] = {0, 0};
    int64_t correct = 0;
    px_rm_pass(&s.model, &s.pairs, idx + lo, hi - lo, mb, (double)B, &trainer, &sums[0], &correct,
               &s.batch, &s.work);
    sums[1] = (double)correct;
    px_comm_allreduce_sum_f64(sums, 2);
    double lr, norm = px_trainer_step(&trainer, step, sums[0], &lr);
    st = px_trainer_guard(&trainer, step, err);
    if (st != PX_OK) break; /* no checkpoint: LATEST keeps naming the last good one */
    state.step = step + 1, state.data_cursor += B;
    state.adam_applied = trainer.applied, state.adam_skipped = trainer.skipped;
    int last = step + 1 == steps;
    int do_eval = last || (cfg->rm_eval_every > 0 && (step + 1) % cfg->rm_eval_every == 0);
    if (do_eval && s.n_heldout > 0) {
      int64_t hlo, hhi;
      px_comm_share(s.n_heldout, px_comm_rank(), px_comm_size(), &hlo, &hhi);
      px_rm_evaluate(&s.model, &s.pairs, s.heldout + hlo, hhi - hlo, s.n_heldout, mb, &acc,
                     &held_loss);
    }
    if (last || do_eval || (step + 1) % cfg->rm_log_every == 0) {
      char eta[32], held[80] = "";
      double now = px_log_elapsed();
      px_log_duration(eta, sizeof eta, (now - t_start) / (step + 1 - first) * (steps - step - 1));
      if (do_eval) snprintf(held, sizeof held, " | heldout acc %.3f loss %.4f", acc, held_loss);
      px_log_info("rm step %lld/%lld | loss %.4f | acc %.3f%s | lr %.2e | ETA %s",
                  (long long)step + 1, (long long)steps, sums[0], sums[1] / (double)B, held, lr,
                  eta);
      const char *names[] = {"loss",        "accuracy",        "lr",
                             "grad_norm",   "nonfinite_steps", "heldout_accuracy",
                             "heldout_loss"};
      double values[] = {sums[0],  sums[1] / (double)B, lr, norm, (double)trainer.skipped, acc,
                         held_loss};
      px_run_metrics(&run, "rm", step + 1, do_eval ? 7 : 5, names, values);
    }
    /* The last step's checkpoint is the normalised one below. */
    px_fault_point("rm.step");
    int stop = px_run_should_stop();
    if (!last &&
        (stop || (cfg->rm_checkpoint_every > 0 && (step + 1) % cfg->rm_checkpoint_every == 0))) {
      reward.optim_step = trainer.applied;
      st = px_run_checkpoint(&run, cfg, step + 1, 0, &reward, 1, vars, n_vars, &state.metrics_bytes,
                             err);
      if (st != PX_OK) break;
    }
    if (stop && !last) {
      st = px_error_set(err, PX_EINTERRUPTED,
                        "rm: stopped by a signal after step %lld, checkpoint written; continue "
                        "with --resume auto",
                        (long long)step + 1);
      break;
    }
  }
  free(idx);
  if (st != PX_OK) goto done;

  float gain = 1, bias = 0;
  double norm_stats[5];
  st = px_rm_normalize(cfg, &s.model, s.init_path, &s.pairs, s.train, s.n_train, &gain, &bias,
                       norm_stats, err);
  if (st == PX_OK && cfg->rm_norm_samples > 0) {
    const char *names[] = {"raw_mean", "raw_std", "normalized_mean", "normalized_std", "eos_rate"};
    px_run_metrics(&run, "rm_normalization", steps, 5, names, norm_stats);
  }
  if (st == PX_OK) {
    reward.optim_step = trainer.applied, reward.gain = gain, reward.bias = bias;
    state.normalized = 1;
    st =
        px_run_checkpoint(&run, cfg, steps, 0, &reward, 1, vars, n_vars, &state.metrics_bytes, err);
  }
  if (st == PX_OK)
    px_log_info("rm: done in %.1fs; held-out accuracy %.3f; score gain %.4f bias %.4f; "
                "checkpoint %s/ckpt-%08lld.h5",
                px_log_elapsed() - t_start, acc, gain, bias, run.ckpt_dir, (long long)steps);
done:
  px_rm_free(&s);
  px_run_close(&run);
  return st;
}

void px_rm_score(px_gpt *model, float gain, float bias, const int32_t *const *prompts,
                 const int64_t *prompt_lens, const int32_t *const *responses,
                 const int64_t *response_lens, int64_t n, float *scores) {
  px_batch batch;
  px_batch_build(&batch, model->max_B, model->max_T);
  for (int64_t start = 0; start < n; start += model->max_B) {
    int rows = (int)(n - start < model->max_B ? n - start : model->max_B);
    px_batch_clear(&batch);
    for (int r = 0; r < rows; r++) {
      int64_t i = start + r;
      PX_REQUIRE(px_batch_add_scored(&batch, prompts[i], prompt_lens[i], responses[i],
                                     response_lens[i]) == 0,
                 "sequence %lld is longer than the reward model's max_seq_len", (long long)i);
    }
    px_batch_pack(&batch);
    px_gpt_forward(model, batch.tokens, batch.lengths, batch.B, batch.T);
    px_rm_scores(model, &batch, gain, bias, scores + start);
  }
  px_batch_free(&batch);
}

px_status px_rm_normalize(const px_config *cfg, px_gpt *reward, const char *policy_path,
                          const px_dataset *pairs, const int64_t *train, int64_t n_train,
                          float *gain, float *bias, double stats[5], px_error *err) {
  *gain = 1, *bias = 0;
  for (int i = 0; i < 5; i++) stats[i] = NAN;
  const int64_t n = cfg->rm_norm_samples;
  if (n == 0) return PX_OK;
  /* pi_base, the SFT policy, answers the first n training prompts (cycling when there are
   * fewer), each rank its contiguous share. */
  px_gpt policy = {0};
  const int gen_batch = (int)cfg->sample_batch;
  px_status st = px_comm_agree(px_ckpt_load(policy_path, "policy", PX_GPT_HEAD_LM, gen_batch, 0, 0,
                                            &policy, NULL, NULL, err),
                               err);
  if (st != PX_OK) {
    if (policy.params) px_gpt_free(&policy);
    return st;
  }
  const px_gpt_config mc = policy.config;
  int64_t lo, hi;
  px_comm_share(n, px_comm_rank(), px_comm_size(), &lo, &hi);
  int64_t *offsets = px_malloc((size_t)(hi - lo + 1) * sizeof *offsets);
  int32_t *tokens = px_malloc((size_t)(hi - lo) * (size_t)(mc.max_seq_len + 1) * sizeof *tokens);
  offsets[0] = 0;
  for (int64_t i = lo; i < hi; i++) { /* BOS + prompt, as the model reads it */
    int64_t np;
    const int32_t *p = px_dataset_row(pairs, 0, train[i % n_train], &np);
    if (np > mc.max_seq_len - 2) np = mc.max_seq_len - 2;
    int32_t *dst = tokens + offsets[i - lo];
    dst[0] = PX_TOK_BOS;
    memcpy(dst + 1, p, (size_t)np * sizeof *dst);
    offsets[i - lo + 1] = offsets[i - lo] + np + 1;
  }
  px_sampler_config sampling = px_sample_config(cfg);
  px_generator gen;
  px_generator_build(&gen, &policy, &sampling, (uint64_t)cfg->run_seed, gen_batch,
                     (int)cfg->sample_max_new_tokens);
  px_generation out = {0};
  st = px_generate(&gen, tokens, offsets, hi - lo, PX_RM_NORM_ITERATION, lo, &out, err);
  double sums[3] = {0, 0, 0}; /* sum, sum of squares, count */
  /* Score the responses that ended with EOS (the others get PPO's fixed penalty, not R). */
  int64_t m = 0, cap = (st == PX_OK ? out.n : 0) + 1;
  const int32_t **ps = px_malloc((size_t)cap * sizeof *ps);
  const int32_t **rs = px_malloc((size_t)cap * sizeof *rs);
  int64_t *pl = px_malloc((size_t)cap * sizeof *pl);
  int64_t *rl = px_malloc((size_t)cap * sizeof *rl);
  float *scores = px_malloc((size_t)cap * sizeof *scores);
  for (int64_t i = 0; st == PX_OK && i < out.n; i++) {
    if (!out.eos[i]) continue;
    ps[m] = tokens + offsets[i] + 1; /* without BOS */
    pl[m] = offsets[i + 1] - offsets[i] - 1;
    rs[m] = out.tokens + (size_t)i * out.max_new;
    rl[m] = out.lengths[i] - 1; /* without EOS */
    m++;
  }
  px_rm_score(reward, 1, 0, ps, pl, rs, rl, m, scores);
  for (int64_t i = 0; i < m; i++)
    sums[0] += scores[i], sums[1] += (double)scores[i] * scores[i], sums[2] += 1;
  st = px_comm_agree(st, err);
  if (st == PX_OK) {
    px_comm_allreduce_sum_f64(sums, 3);
    double mean = sums[2] > 0 ? sums[0] / sums[2] : 0;
    double var = sums[2] > 1 ? (sums[1] - sums[2] * mean * mean) / (sums[2] - 1) : 0;
    if (sums[2] < 2 || !(var > 1e-12)) {
      st = px_error_set(err, PX_ERUN,
                        "rm: cannot normalise the scores: %.0f of %lld sampled responses ended "
                        "with EOS and their scores %s",
                        sums[2], (long long)n, sums[2] < 2 ? "are too few" : "do not vary");
    } else {
      double sd = sqrt(var);
      *gain = (float)(1.0 / sd);
      *bias = (float)(-mean / sd);
      /* Score the set again as every later use will, gain and bias applied: the check. */
      double check[2] = {0, 0};
      px_rm_score(reward, *gain, *bias, ps, pl, rs, rl, m, scores);
      for (int64_t i = 0; i < m; i++)
        check[0] += scores[i], check[1] += (double)scores[i] * scores[i];
      px_comm_allreduce_sum_f64(check, 2);
      stats[0] = mean, stats[1] = sd, stats[2] = check[0] / sums[2];
      stats[3] = sqrt((check[1] - sums[2] * stats[2] * stats[2]) / (sums[2] - 1));
      stats[4] = sums[2] / (double)n;
      px_log_info("rm: normalised on %.0f responses of pi_base (%.1f%% ended with EOS): raw "
                  "mean %.4f std %.4f; normalised mean %.4f std %.4f",
                  sums[2], 100.0 * stats[4], mean, sd, stats[2], stats[3]);
    }
  }
  free(ps), free(rs), free(pl), free(rl), free(scores);
  px_generation_free(&out);
  px_generator_free(&gen);
  free(tokens);
  free(offsets);
  px_gpt_free(&policy);
  return st;
}
