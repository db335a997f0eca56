/*
 * stage.c — the driver every training stage plugs its step into; see stage.h.
 */
#include "proxima/stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/log.h"

px_status px_stage_open(px_stage *sg, px_error *err) {
  const px_stage_table *t = sg->table;
  PX_REQUIRE(t->n_metrics <= PX_STAGE_MAX_METRICS, "%s: %d metrics, more than the %d a stage has",
             t->name, t->n_metrics, PX_STAGE_MAX_METRICS);
  if (sg->batch < px_comm_size())
    return px_error_set(err, PX_EINPUT, "%s = %lld is less than the %d ranks", sg->batch_key,
                        (long long)sg->batch, px_comm_size());
  PX_TRY(px_run_open(&sg->run, sg->cfg, err));
  px_status st = px_run_resume_from(&sg->run, sg->cfg, sg->resume, sizeof sg->resume, err);
  if (st != PX_OK) px_run_close(&sg->run);
  return st;
}

void px_stage_close(px_stage *sg) { px_run_close(&sg->run); }

px_status px_stage_restore(px_stage *sg, px_error *err) {
  const px_stage_table *t = sg->table;
  sg->first = 0;
  if (!sg->resume[0]) return PX_OK;
  px_tokenizer stored;
  px_status st = px_ckpt_read_tokenizer(sg->resume, &stored, err);
  if (st == PX_OK && !px_tokenizer_same(&stored, sg->tokenizer))
    st = px_error_set(err, PX_EINPUT,
                      "%s was written with the %s tokenizer (sha256 %.12s), but this %s run's is "
                      "%s (sha256 %.12s): resume with the same model.tokenizer",
                      sg->resume, px_tok_kind_name(stored.kind), stored.hash, t->name,
                      px_tok_kind_name(sg->tokenizer->kind), sg->tokenizer->hash);
  px_tokenizer_free(&stored);
  PX_TRY(px_comm_agree(st, err));
  PX_TRY(px_run_restore(&sg->run, sg->cfg, sg->resume, sg->models, sg->n_restored, sg->vars,
                        sg->n_vars, sg->seed, sg->metrics_bytes, err));
  sg->first = *sg->step;
  px_log_info("%s: resuming from %s after %s %lld", t->name, sg->resume, t->unit,
              (long long)sg->first);
  return PX_OK;
}

px_status px_stage_checkpoint(px_stage *sg, int64_t step, px_error *err) {
  int64_t iteration = strcmp(sg->table->unit, "iteration") == 0 ? step : 0;
  return px_run_checkpoint(&sg->run, sg->cfg, step, iteration, sg->tokenizer, sg->models,
                           sg->n_models, sg->vars, sg->n_vars, sg->metrics_bytes, err);
}

void px_stage_set(px_stage *sg, int k, double num, double den) {
  const px_stage_table *t = sg->table;
  PX_REQUIRE(k >= 0 && k < t->n_metrics, "%s: no metric %d", t->name, k);
  sg->num[k] = num, sg->den[k] = den, sg->set[k] = 1;
}

void px_stage_reduce(px_stage *sg) {
  const px_stage_table *t = sg->table;
  double sums[PX_STAGE_MAX_METRICS];
  int n = 0;
  for (int k = 0; k < t->n_metrics; k++)
    if (sg->set[k] && t->metrics[k].reduce == PX_METRIC_SUM) sums[n++] = sg->num[k];
  px_comm_allreduce_sum_f64(sums, n);
  n = 0;
  for (int k = 0; k < t->n_metrics; k++)
    if (sg->set[k] && t->metrics[k].reduce == PX_METRIC_SUM) sg->num[k] = sums[n++];
}

double px_stage_get(const px_stage *sg, int k) {
  return sg->set[k] ? sg->num[k] / sg->den[k] : NAN;
}

/* The record of step (1-based): metrics.jsonl, timings.jsonl and the progress line, from the
 * metrics this step set and the rates summed since the last record, in table order. */
static void px_stage_record(px_stage *sg, int64_t step) {
  const px_stage_table *t = sg->table;
  const char *names[2][PX_STAGE_MAX_METRICS];
  double values[2][PX_STAGE_MAX_METRICS];
  int n[2] = {0, 0};
  double now = px_log_elapsed();
  char line[1024], eta[32];
  int at = snprintf(line, sizeof line, "%s %s %lld/%lld", t->name, t->unit, (long long)step,
                    (long long)sg->steps);
  for (int k = 0; k < t->n_metrics; k++) {
    const px_metric *m = &t->metrics[k];
    const int rate = (m->flags & PX_METRIC_RATE) != 0, file = (m->flags & PX_METRIC_TIMING) != 0;
    if (!sg->set[k] && !rate) continue;
    double v = rate ? sg->acc[k] / (now - sg->t_record + 1e-9) : px_stage_get(sg, k);
    names[file][n[file]] = m->name;
    values[file][n[file]++] = v;
    if (m->label && at < (int)sizeof line) {
      at += snprintf(line + at, sizeof line - (size_t)at, " | %s ", m->label);
      /* NaN: not known this step (no reference answers, nothing kept): say so, not "nan" */
      if (at < (int)sizeof line)
        at += isnan(v) ? snprintf(line + at, sizeof line - (size_t)at, "n/a")
                       : snprintf(line + at, sizeof line - (size_t)at, m->format, v);
    }
    sg->acc[k] = 0;
  }
  px_run_metrics(&sg->run, t->name, step, n[0], names[0], values[0]);
  if (n[1] > 0) px_run_timings(&sg->run, t->name, step, n[1], names[1], values[1]);
  px_log_duration(eta, sizeof eta,
                  (now - sg->t_start) / (double)(step - sg->first) * (double)(sg->steps - step));
  px_log_info("%s | ETA %s", line, eta);
  sg->t_record = now;
}

/* After step (0-based): whether a record is due, and keep the rates' sums. */
static int px_stage_due(px_stage *sg, int64_t step) {
  const px_stage_table *t = sg->table;
  int due = step + 1 == sg->steps || (sg->log_every > 0 && (step + 1) % sg->log_every == 0);
  for (int k = 0; k < t->n_metrics; k++) {
    if (sg->set[k] && (t->metrics[k].flags & PX_METRIC_EVAL)) due = 1;
    if (sg->set[k] && (t->metrics[k].flags & PX_METRIC_RATE)) sg->acc[k] += px_stage_get(sg, k);
  }
  return due;
}

px_status px_stage_loop(px_stage *sg, px_stage_step_fn step_fn, void *ctx, px_error *err) {
  const px_stage_table *t = sg->table;
  char fault[64];
  snprintf(fault, sizeof fault, "%s.%s", t->name, t->unit);
  sg->t_start = sg->t_record = px_log_elapsed();
  memset(sg->acc, 0, sizeof sg->acc);
  for (int64_t step = sg->first; step < sg->steps; step++) {
    memset(sg->set, 0, sizeof sg->set);
    PX_TRY(step_fn(sg, ctx, step, err));
    if (px_stage_due(sg, step)) px_stage_record(sg, step + 1);
    px_fault_point(fault);
    int last = step + 1 == sg->steps, stop = px_run_should_stop();
    int every = sg->checkpoint_every > 0 && (step + 1) % sg->checkpoint_every == 0;
    if ((stop || every || last) && (!last || sg->last_checkpoint))
      PX_TRY(px_stage_checkpoint(sg, step + 1, err));
    if (stop && !last)
      return px_error_set(err, PX_EINTERRUPTED,
                          "%s: stopped by a signal after %s %lld, checkpoint written; continue "
                          "with --resume auto",
                          t->name, t->unit, (long long)step + 1);
  }
  return PX_OK;
}

px_status px_split_build(px_split *s, int64_t n, int64_t heldout, uint64_t seed,
                         uint32_t heldout_stream, uint32_t epoch_stream, const char *path,
                         const char *what, px_error *err) {
  memset(s, 0, sizeof *s);
  s->n_heldout = heldout < n / 2 ? heldout : n / 2;
  s->n_train = n - s->n_heldout;
  if (s->n_train < 1)
    return px_error_set(err, PX_EINPUT, "%s has %lld %s: too few to train on", path, (long long)n,
                        what);
  px_split_heldout(n, s->n_heldout, seed, heldout_stream, &s->heldout, &s->train);
  px_epochs_init(&s->epochs, s->train, s->n_train, seed, epoch_stream);
  return PX_OK;
}

void px_split_free(px_split *s) {
  px_epochs_free(&s->epochs);
  free(s->heldout);
  free(s->train);
  memset(s, 0, sizeof *s);
}
