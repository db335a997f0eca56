/*
 * optim.h — AdamW, the learning-rate schedule and clipping by the global gradient norm.
 *
 * Pure functions over flat float32 arrays: a model's parameters, gradients and Adam moments are
 * buffers of one layout (DESIGN.md section 3), so one call (or one call per tensor, to choose
 * which tensors decay) updates them all. None of these is collective: with data parallelism
 * the gradients are allreduced first, and then every rank computes the same global norm and the
 * same update.
 */
#ifndef PROXIMA_OPTIM_H
#define PROXIMA_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* AdamW's constants (Loshchilov & Hutter, "Decoupled weight decay regularization"). */
typedef struct px_adamw_config {
  float beta1;        /* first-moment decay, e.g. 0.9 */
  float beta2;        /* second-moment decay, e.g. 0.95 or 0.999 */
  float eps;          /* added to sqrt(v hat), e.g. 1e-8 */
  float weight_decay; /* decoupled: p -= lr * weight_decay * p, e.g. 0.1 */
} px_adamw_config;

/* One AdamW step, t = 1, 2, ... the number of steps taken including this one:
 *   m = b1 m + (1-b1) g,   v = b2 v + (1-b2) g^2,
 *   mhat = m / (1 - b1^t), vhat = v / (1 - b2^t),
 *   p -= lr (mhat / (sqrt(vhat) + eps) + wd p),   wd = decay ? cfg->weight_decay : 0.
 * params, m, v, grads [n]; m and v start at zero. Not collective. */
void px_optim_adamw_step(float *params, float *m, float *v, const float *grads, size_t n,
                         const px_adamw_config *cfg, float lr, int decay, int64_t t);

/* How the learning rate falls after the warm-up. */
typedef enum px_lr_decay {
  PX_LR_CONSTANT = 0, /* stays at lr */
  PX_LR_LINEAR = 1,   /* straight line from lr down to lr_min at total_steps */
  PX_LR_COSINE = 2    /* half a cosine from lr down to lr_min at total_steps */
} px_lr_decay;

typedef struct px_lr_schedule {
  double lr;            /* the peak, reached at the end of the warm-up */
  double lr_min;        /* the floor, from total_steps on (LINEAR and COSINE) */
  int64_t warmup_steps; /* linear warm-up: lr (step+1) / warmup_steps for step < warmup_steps */
  int64_t total_steps;  /* where the decay ends */
  px_lr_decay decay;
} px_lr_schedule;

/* The learning rate of step 0, 1, 2, ...: warm-up, then the decay over
 * [warmup_steps, total_steps) at fraction r = (step - warmup_steps) / (total_steps -
 * warmup_steps): LINEAR lr - r (lr - lr_min), COSINE lr_min + (1 + cos(pi r)) (lr - lr_min) / 2;
 * lr_min from total_steps on. Not collective. */
double px_optim_lr(const px_lr_schedule *s, int64_t step);

/* The L2 norm of grads [n], summed in double in a fixed order (the same bits whatever the
 * thread count). Not collective. */
double px_optim_grad_norm(const float *grads, size_t n);

/* Clips by the global norm: when max_norm > 0 and the norm exceeds it, scales grads by
 * max_norm / norm. Returns the norm before clipping; a non-finite norm is returned and the
 * gradients are left alone, for the caller to skip the step. Not collective. */
double px_optim_clip_grad_norm(float *grads, size_t n, double max_norm);

#endif
