/*
 * trainer.c — the shared end of a training step; see trainer.h.
 */
#include "proxima/trainer.h"

#include <math.h>

#include "proxima/comm.h"
#include "proxima/log.h"

double px_trainer_step(px_trainer *t, int64_t step, double loss, double *lr) {
  px_gpt *m = t->model;
  px_comm_allreduce_sum_f32(m->grads, m->n_params);
  double norm = px_optim_clip_grad_norm(m->grads, m->n_params, t->grad_clip);
  *lr = px_optim_lr(&t->schedule, step);
  if (isfinite(norm) && isfinite(loss)) {
    px_gpt_update(m, &t->adamw, (float)*lr, ++t->applied);
  } else {
    t->skipped++;
    px_log_warn("%s step %lld: non-finite loss or gradient, step skipped", t->phase,
                (long long)step + 1);
  }
  return norm;
}
