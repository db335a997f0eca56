/*
 * trainer.c — the shared end of a training step and its numeric guard; see trainer.h.
 */
#include "proxima/trainer.h"

#include <math.h>

#include "proxima/comm.h"
#include "proxima/fault.h"
#include "proxima/log.h"

void px_trainer_begin(px_trainer *t, int64_t n_global) {
  PX_REQUIRE(!t->launched, "%s: a step began with its last reduction still pending", t->phase);
  px_gpt_zero_grad(t->model);
  t->overlap_step = t->overlap && px_comm_size() > 1 && n_global >= px_comm_size();
}

/* The hook of the last backward: starts the sum of each span as it becomes final (in place,
 * one request per span: a layer's dozen), and lets the pending ones move on. The buckets are
 * the half layers; packing their small spans (LayerNorms and biases: 48 of gpt6x384's 76
 * requests, 0.1% of its bytes) into one request each was measured and changed nothing. */
static void px_trainer_ready(void *ctx, const px_gpt_span *spans, int n, int last) {
  px_trainer *t = ctx;
  px_gpt *m = t->model;
  /* PROXIMA_FAULT: the whole gradient is final now, and wte's first element (grads[0]) not yet
   * handed over: poisoned here, it is summed as the blocking path's would be. */
  if (last && t->fault_point) px_fault_poison(t->fault_point, m->grads, m->n_params);
  for (int i = 0; i < n; i++)
    px_comm_iallreduce_sum_f32(m->grads + spans[i].offset, spans[i].count);
  px_comm_progress();
}

void px_trainer_backward(px_trainer *t, const float *dout, int last) {
  if (!(last && t->overlap_step)) {
    px_gpt_backward(t->model, dout);
    return;
  }
  const px_gpt_grad_hook hook = {px_trainer_ready, t};
  px_gpt_backward_ex(t->model, dout, &hook);
  t->launched = 1;
}

double px_trainer_step(px_trainer *t, int64_t step, double loss, double *lr) {
  px_gpt *m = t->model;
  PX_REQUIRE(t->launched == t->overlap_step,
             "%s: an overlapped step ended without its last backward", t->phase);
  if (t->launched) {
    px_comm_wait_all();
    t->launched = t->overlap_step = 0;
  } else {
    if (t->fault_point) px_fault_poison(t->fault_point, m->grads, m->n_params);
    px_comm_allreduce_sum_f32(m->grads, m->n_params);
  }
  double norm = px_optim_clip_grad_norm(m->grads, m->n_params, t->grad_clip);
  *lr = px_optim_lr(&t->schedule, step);
  if (isfinite(norm) && isfinite(loss)) {
    px_gpt_update(m, &t->adamw, (float)*lr, ++t->applied);
    t->skipped_in_a_row = 0;
  } else {
    t->skipped++;
    t->skipped_in_a_row++;
    px_log_warn("%s step %lld: non-finite %s, step skipped (%lld in a row, %lld in all)", t->phase,
                (long long)step + 1, isfinite(loss) ? "gradient" : "loss",
                (long long)t->skipped_in_a_row, (long long)t->skipped);
  }
  return norm;
}

px_status px_trainer_guard(const px_trainer *t, int64_t step, px_error *err) {
  if (t->max_nonfinite <= 0 || t->skipped_in_a_row < t->max_nonfinite) return PX_OK;
  return px_error_set(
      err, PX_ERUN,
      "%s: the loss or gradient was not finite (NaN or infinite) at %lld optimizer steps in a "
      "row, steps %lld to %lld (run.max_nonfinite = %lld): stopped without writing a checkpoint "
      "of this state; LATEST still names the last good checkpoint. Try a lower %s or a tighter "
      "grad_clip, check the data, then continue with --resume auto",
      t->phase, (long long)t->skipped_in_a_row, (long long)(step + 2 - t->skipped_in_a_row),
      (long long)step + 1, (long long)t->max_nonfinite, t->lr_key);
}
