/*
 * optim.c — AdamW, the learning-rate schedule and global-norm clipping (see optim.h). Array
 * kernels, so they live in model/ beside px_gpt_update, which steps a model with them; the
 * training loops (train/) call them too, from above.
 */
#include "proxima/optim.h"
#include "proxima/simd.h"

#include <math.h>

PX_SIMD_CLONES
void px_optim_adamw_step(float *params, float *m, float *v, const float *grads, size_t n,
                         const px_adamw_config *cfg, float lr, int decay, int64_t t) {
  // params, m, v, grads are (n). Bias corrections in double: b^t for large t underflows
  // gracefully there, and both are the same for every element.
  const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
  const float wd = decay ? cfg->weight_decay : 0.0f;
  const float c1 = (float)(1.0 / (1.0 - pow(b1, (double)t)));
  const float c2 = (float)(1.0 / (1.0 - pow(b2, (double)t)));
#pragma omp parallel for
  for (size_t i = 0; i < n; i++) {
    float g = grads[i];
    float mi = b1 * m[i] + (1.0f - b1) * g;
    float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + wd * params[i]);
  }
}

double px_optim_lr(const px_lr_schedule *s, int64_t step) {
  if (step < s->warmup_steps) return s->lr * (double)(step + 1) / (double)s->warmup_steps;
  if (s->decay == PX_LR_CONSTANT) return s->lr;
  if (step >= s->total_steps) return s->lr_min;
  double r = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
  if (s->decay == PX_LR_LINEAR) return s->lr - r * (s->lr - s->lr_min);
  return s->lr_min + 0.5 * (1.0 + cos(M_PI * r)) * (s->lr - s->lr_min);
}

/* A fixed number of chunks, summed in parallel and then in order: the same bits for any
 * number of threads. */
enum { PX_NORM_CHUNKS = 256 };

double px_optim_grad_norm(const float *grads, size_t n) {
  double partial[PX_NORM_CHUNKS];
  size_t chunk = (n + PX_NORM_CHUNKS - 1) / PX_NORM_CHUNKS;
#pragma omp parallel for
  for (int c = 0; c < PX_NORM_CHUNKS; c++) {
    size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double sum = 0.0;
    for (size_t i = lo; i < hi; i++) sum += (double)grads[i] * grads[i];
    partial[c] = sum;
  }
  double sum = 0.0;
  for (int c = 0; c < PX_NORM_CHUNKS; c++) sum += partial[c];
  return sqrt(sum);
}

double px_optim_clip_grad_norm(float *grads, size_t n, double max_norm) {
  double norm = px_optim_grad_norm(grads, n);
  if (max_norm > 0.0 && isfinite(norm) && norm > max_norm) {
    const float scale = (float)(max_norm / norm);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) grads[i] *= scale;
  }
  return norm;
}
