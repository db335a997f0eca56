/*
 * rl.c — the RLHF formulas of rl.h, one function each.
 */
#include "proxima/rl.h"

#include <math.h>

/* softplus(x) = log(1 + e^x) without overflow, and sigma(x) = 1 / (1 + e^-x). */
static double px_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double px_sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double px_rl_pairwise_loss(float *dplus, float *dminus, const float *rplus, const float *rminus,
                           size_t n, double norm) {
  /* L = -log sigma(d), d = r+ - r-:  L = softplus(-d),  dL/dd = -sigma(-d). */
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)rplus[i] - (double)rminus[i];
    sum += px_softplus(-d);
    double g = -px_sigmoid(-d) / norm;
    if (dplus) dplus[i] = (float)g;
    if (dminus) dminus[i] = (float)-g;
  }
  return sum / norm;
}
