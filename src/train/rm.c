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
#include "proxima/stage.h"
#include "proxima/tokenizer.h"
#include "proxima/trainer.h"

enum { PX_STREAM_RM_HELDOUT = 21, PX_STREAM_RM_EPOCH = 22 };

void px_rm_scores(const px_gpt *model, const px_batch *b, float gain, float bias, float *scores) {
  for (int r = 0; r < b->B; r++)
    scores[r] = gain * model->values[(size_t)r * b->T + b->lengths[r] - 1] + bias;
}

px_status px_rm_load_model(const char *file_or_dir, px_gpt *model, int max_B, int max_T,
                           float *gain, float *bias, px_error *err) {
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
  PX_TRY(px_ckpt_load(path, "reward", PX_GPT_HEAD_SCALAR, max_B, max_T, 0, model, &g, &b, err));
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
                            path, (long long)d->first + i, f == 1 ? "chosen" : "rejected",
                            (long long)np + nr + 2, max_T);
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
      w->rp[r] = w->scores[2 * (size_t)r];
      w->rn[r] = w->scores[2 * (size_t)r + 1];
      *correct += w->rp[r] > w->rn[r];
    }
    *loss += px_rl_pairwise_loss(w->dp, w->dn, w->rp, w->rn, (size_t)rows, norm);
    if (!tr) continue;
    memset(w->dvalues, 0, (size_t)batch->B * batch->T * sizeof(float));
    for (int r = 0; r < rows; r++) {
      w->dvalues[(size_t)(2 * r) * batch->T + batch->lengths[2 * (size_t)r] - 1] = w->dp[r];
      w->dvalues[(size_t)(2 * r + 1) * batch->T + batch->lengths[2 * r + 1] - 1] = w->dn[r];
    }
    px_trainer_backward(tr, w->dvalues, start + mb >= n);
  }
}

px_status px_rm_evaluate(px_gpt *model, const px_tokenizer *tok, const px_dataset *pairs,
                         const int64_t *idx, int64_t n, int64_t n_global, int mb, double *accuracy,
                         double *loss) {
  px_batch batch;
  px_rm_work w;
  px_batch_build(&batch, tok, 2 * mb, model->max_T);
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
  px_split split; /* held-out and training pairs, the stream of training pairs */
  px_gpt model;
  px_trainer trainer;
  px_rm_state state;
  px_batch batch;
  px_rm_work work;
  int64_t *idx, lo, hi; /* a step's B pairs; this rank's share [lo, hi) of them */
  double heldout_acc;   /* at the last evaluation */
  char init_path[4300];
  px_tokenizer tok; /* the SFT checkpoint's */
} px_rm;

/* The metrics of a step, in the order of their keys in metrics.jsonl. */
enum { RM_LOSS, RM_ACC, RM_LR, RM_GRAD_NORM, RM_NONFINITE, RM_HELDOUT_ACC, RM_HELDOUT_LOSS, RM_N };
static const px_metric px_rm_metrics[RM_N] = {
    [RM_LOSS] = {.name = "loss", .label = "loss", .format = "%.4f", .reduce = PX_METRIC_SUM},
    [RM_ACC] = {.name = "accuracy",
                .label = "acc",
                .format = "%.3f",
                .reduce = PX_METRIC_SUM,
                .plot = "rm_accuracy",
                .curve = "training batch"},
    [RM_LR] = {.name = "lr", .label = "lr", .format = "%.2e"},
    [RM_GRAD_NORM] = {.name = "grad_norm"},
    [RM_NONFINITE] = {.name = "nonfinite_steps"},
    [RM_HELDOUT_ACC] = {.name = "heldout_accuracy",
                        .label = "heldout acc",
                        .format = "%.3f",
                        .flags = PX_METRIC_EVAL,
                        .plot = "rm_accuracy",
                        .curve = "held-out pairs"},
    [RM_HELDOUT_LOSS] = {.name = "heldout_loss",
                         .label = "heldout loss",
                         .format = "%.4f",
                         .flags = PX_METRIC_EVAL},
};
static const px_plot px_rm_plots[] = {
    {"rm_accuracy", "Reward model: pairwise accuracy", "accuracy"},
};
const px_stage_table px_rm_table = {
    "rm", "step",      px_rm_metrics,
    RM_N, px_rm_plots, (int)(sizeof px_rm_plots / sizeof px_rm_plots[0])};

static px_status px_rm_setup(px_rm *s, px_error *err) {
  const px_config *cfg = s->cfg;
  /* The trunk and its shape come from the SFT checkpoint; the head is new. */
  PX_TRY(px_ckpt_resolve(cfg->rm_init, s->init_path, sizeof s->init_path, err));
  px_gpt_config mc;
  PX_TRY(px_ckpt_read_config(s->init_path, "policy", &mc, err));
  mc.head = PX_GPT_HEAD_SCALAR;
  PX_TRY(px_ckpt_read_tokenizer(s->init_path, &s->tok, err));
  PX_TRY(px_tokenizer_check_vocab(&s->tok, mc.vocab_size, s->init_path, err));
  PX_TRY(px_dataset_read(cfg->rm_data, PX_IO_ALONE, 0, 1, PX_DATA_PREFS, &s->tok, &s->pairs, err));
  PX_TRY(px_rm_check_lengths(&s->pairs, mc.max_seq_len, cfg->rm_data, err));
  PX_TRY(px_split_build(&s->split, s->pairs.n, cfg->rm_heldout, (uint64_t)cfg->run_seed,
                        PX_STREAM_RM_HELDOUT, PX_STREAM_RM_EPOCH, cfg->rm_data, "pairs", err));
  const int mb = (int)cfg->rm_micro_batch;
  PX_TRY(px_gpt_check_memory(&mc, 2 * mb, mc.max_seq_len, 1, "rm", err));
  px_gpt_build(&s->model, &mc, 2 * mb, mc.max_seq_len, 1);
  /* head N(0, 1/sqrt(C+1)), bias 0: px_gpt_init's scalar head; then the SFT trunk over it */
  px_gpt_init(&s->model, (uint64_t)cfg->run_seed);
  PX_TRY(px_ckpt_read_trunk(s->init_path, "policy", &s->model, err));
  px_batch_build(&s->batch, &s->tok, 2 * mb, mc.max_seq_len);
  px_rm_work_build(&s->work, mb, mc.max_seq_len);
  s->idx = px_malloc((size_t)cfg->rm_batch_size * sizeof *s->idx);
  px_comm_share(cfg->rm_batch_size, px_comm_rank(), px_comm_size(), &s->lo, &s->hi);
  return PX_OK;
}

static void px_rm_free(px_rm *s) {
  free(s->idx);
  px_rm_work_free(&s->work);
  px_batch_free(&s->batch);
  if (s->model.params) px_gpt_free(&s->model);
  px_split_free(&s->split);
  px_dataset_free(&s->pairs);
  px_tokenizer_free(&s->tok);
}

/* The optimizer steps of rm.epochs passes over the training pairs. */
static int64_t px_rm_steps(const px_rm *s) {
  return (int64_t)ceil(s->cfg->rm_epochs * (double)s->split.n_train /
                       (double)s->cfg->rm_batch_size);
}

static void px_rm_trainer(px_rm *s, int64_t steps) {
  const px_config *cfg = s->cfg;
  s->trainer =
      (px_trainer){.model = &s->model,
                   .adamw = {(float)cfg->adam_beta1, (float)cfg->adam_beta2, (float)cfg->adam_eps,
                             (float)cfg->rm_weight_decay},
                   .schedule = {cfg->rm_lr, 0.0, cfg->rm_warmup_steps, steps, PX_LR_LINEAR},
                   .grad_clip = cfg->rm_grad_clip,
                   .phase = "rm",
                   .lr_key = "rm.lr",
                   .fault_point = "rm.grad",
                   .max_nonfinite = cfg->run_max_nonfinite,
                   .overlap = cfg->run_overlap_allreduce,
                   .applied = s->state.adam_applied,
                   .skipped = s->state.adam_skipped};
}

/* One optimizer step over the global batch of B pairs at data_cursor. */
static px_status px_rm_step(px_stage *sg, void *ctx, int64_t step, px_error *err) {
  px_rm *s = ctx;
  const px_config *cfg = s->cfg;
  const int64_t B = cfg->rm_batch_size;
  const int mb = (int)cfg->rm_micro_batch;
  for (int64_t i = 0; i < B; i++)
    s->idx[i] = px_epochs_item(&s->split.epochs, s->state.data_cursor + i);
  px_trainer_begin(&s->trainer, B);
  double loss = 0;
  int64_t correct = 0;
  px_rm_pass(&s->model, &s->pairs, s->idx + s->lo, s->hi - s->lo, mb, (double)B, &s->trainer, &loss,
             &correct, &s->batch, &s->work);
  px_stage_set(sg, RM_LOSS, loss, 1);
  px_stage_set(sg, RM_ACC, (double)correct, (double)B);
  px_stage_reduce(sg);
  double lr, norm = px_trainer_step(&s->trainer, step, px_stage_get(sg, RM_LOSS), &lr);
  PX_TRY(px_trainer_guard(&s->trainer, step, err));
  s->state.step = step + 1, s->state.data_cursor += B;
  s->state.adam_applied = s->trainer.applied, s->state.adam_skipped = s->trainer.skipped;
  sg->models[0].optim_step = s->trainer.applied;

  px_stage_set(sg, RM_LR, lr, 1);
  px_stage_set(sg, RM_GRAD_NORM, norm, 1);
  px_stage_set(sg, RM_NONFINITE, (double)s->trainer.skipped, 1);
  int last = step + 1 == sg->steps;
  if (last || (cfg->rm_eval_every > 0 && (step + 1) % cfg->rm_eval_every == 0)) {
    double acc = s->heldout_acc, loss_h = NAN;
    const px_split *sp = &s->split;
    if (sp->n_heldout > 0) {
      int64_t hlo, hhi;
      px_comm_share(sp->n_heldout, px_comm_rank(), px_comm_size(), &hlo, &hhi);
      px_rm_evaluate(&s->model, &s->tok, &s->pairs, sp->heldout + hlo, hhi - hlo, sp->n_heldout, mb,
                     &acc, &loss_h);
    }
    s->heldout_acc = acc;
    px_stage_set(sg, RM_HELDOUT_ACC, acc, 1);
    px_stage_set(sg, RM_HELDOUT_LOSS, loss_h, 1);
  }
  return PX_OK;
}

/* After the last step: the score normalised on pi_base's responses, and the finished reward
 * model's checkpoint. */
static px_status px_rm_finish(px_stage *sg, px_rm *s, px_error *err) {
  float gain = 1, bias = 0;
  double norm_stats[5];
  PX_TRY(px_rm_normalize(s->cfg, &s->model, &s->tok, s->init_path, &s->pairs, s->split.train,
                         s->split.n_train, &gain, &bias, norm_stats, err));
  if (s->cfg->rm_norm_samples > 0) {
    const char *names[] = {"raw_mean", "raw_std", "normalized_mean", "normalized_std", "eos_rate"};
    px_run_metrics(&sg->run, "rm_normalization", sg->steps, 5, names, norm_stats);
  }
  sg->models[0].optim_step = s->trainer.applied;
  sg->models[0].gain = gain, sg->models[0].bias = bias;
  s->state.normalized = 1;
  PX_TRY(px_stage_checkpoint(sg, sg->steps, err));
  px_log_info("rm: done in %.1fs; held-out accuracy %.3f; score gain %.4f bias %.4f; "
              "checkpoint %s/ckpt-%08lld.h5",
              px_log_elapsed() - sg->t_start, s->heldout_acc, gain, bias, sg->run.ckpt_dir,
              (long long)sg->steps);
  return PX_OK;
}

px_status px_rm_run(const px_config *cfg, px_error *err) {
  px_rm s = {.cfg = cfg, .state = {.seed = cfg->run_seed}, .heldout_acc = NAN};
  px_ckpt_model reward = {.group = "reward", .model = &s.model, .optim = 1, .gain = 1};
  const px_ckpt_var vars[] = {PX_RM_STATE(PX_CKPT_VAR, &s.state)};
  px_stage sg = {.cfg = cfg,
                 .table = &px_rm_table,
                 .batch_key = "rm.batch_size",
                 .batch = cfg->rm_batch_size,
                 .log_every = cfg->rm_log_every,
                 .checkpoint_every = cfg->rm_checkpoint_every,
                 .last_checkpoint = 0, /* the last one is the normalised model's, px_rm_finish */
                 .tokenizer = &s.tok,
                 .models = &reward,
                 .n_models = 1,
                 .n_restored = 1,
                 PX_STAGE_STATE(vars, s.state, step)};
  PX_TRY(px_stage_open(&sg, err));
  px_status st = px_comm_agree(px_rm_setup(&s, err), err);
  if (st == PX_OK) {
    sg.steps = px_rm_steps(&s);
    px_log_info("rm: %lld pairs (%lld held out), trunk from %s, %lld steps of %lld pairs",
                (long long)s.pairs.n, (long long)s.split.n_heldout, s.init_path,
                (long long)sg.steps, (long long)cfg->rm_batch_size);
    st = px_stage_restore(&sg, err);
  }
  if (st == PX_OK && s.state.normalized) {
    px_log_info("rm: %s is the finished reward model; nothing to do", sg.resume);
  } else if (st == PX_OK) {
    px_rm_trainer(&s, sg.steps);
    st = px_stage_loop(&sg, px_rm_step, &s, err);
    if (st == PX_OK) st = px_rm_finish(&sg, &s, err);
  }
  px_rm_free(&s);
  px_stage_close(&sg);
  return st;
}

void px_rm_score(px_gpt *model, const px_tokenizer *tok, float gain, float bias,
                 const int32_t *const *prompts, const int64_t *prompt_lens,
                 const int32_t *const *responses, const int64_t *response_lens, int64_t n,
                 float *scores) {
  px_batch batch;
  px_batch_build(&batch, tok, model->max_B, model->max_T);
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

px_status px_rm_normalize(const px_config *cfg, px_gpt *reward, const px_tokenizer *tok,
                          const char *policy_path, const px_dataset *pairs, const int64_t *train,
                          int64_t n_train, float *gain, float *bias, double stats[5],
                          px_error *err) {
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
  int64_t *recs = px_malloc((size_t)(hi - lo + 1) * sizeof *recs);
  for (int64_t i = lo; i < hi; i++) recs[i - lo] = train[i % n_train];
  px_prompts pr;
  px_prompts_pack(&pr, pairs, tok, recs, 0, hi - lo, mc.max_seq_len);
  free(recs);
  px_sampler_config sampling = px_sample_config(cfg);
  px_generator gen;
  px_generator_build(&gen, &policy, tok, &sampling, (uint64_t)cfg->run_seed, gen_batch,
                     (int)cfg->sample_max_new_tokens, 0);
  px_generation out = {0};
  st = px_generate(&gen, pr.tokens, pr.offsets, hi - lo, PX_RM_NORM_ITERATION, lo, &out, err);
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
    ps[m] = pr.tokens + pr.offsets[i] + 1; /* without BOS */
    pl[m] = pr.offsets[i + 1] - pr.offsets[i] - 1;
    rs[m] = out.tokens + (size_t)i * out.max_new;
    rl[m] = out.lengths[i] - 1; /* without EOS */
    m++;
  }
  px_rm_score(reward, tok, 1, 0, ps, pl, rs, rl, m, scores);
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
      px_rm_score(reward, tok, *gain, *bias, ps, pl, rs, rl, m, scores);
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
  px_prompts_free(&pr);
  px_gpt_free(&policy);
  return st;
}
