/*
 * test_optim.c — AdamW against values computed by hand and against the formulas stepped in
 * double, the learning-rate schedule at its landmarks, and global-norm clipping.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxima/error.h"
#include "proxima/optim.h"
#include "test_util.h"

/* First step, worked by hand: p = 1, g = 0.5, lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8,
 * wd = 0.1. m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25, mhat / (sqrt(vhat) + eps) =
 * 0.5 / 0.50000001 = 0.99999998; p = 1 - 0.1 (0.99999998 + 0.1 * 1) = 0.890000002. Without
 * decay p = 0.900000002. A second step with g = -0.5: m = 0.045 - 0.05 = -0.005, v =
 * 0.00024975 + 0.00025 = 0.00049975, mhat = -0.005 / 0.19 = -0.0263158, vhat = 0.00049975 /
 * 0.001999 = 0.25000, so the update is -0.0263158 / 0.5 = -0.0526316 and (decay) p =
 * 0.890000002 - 0.1 (-0.0526316 + 0.1 * 0.890000002) = 0.8863632. */
static void test_adamw_by_hand(void) {
  px_adamw_config cfg = {0.9f, 0.999f, 1e-8f, 0.1f};
  float p[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0};
  float g1[2] = {0.5f, 0.5f}, g2[2] = {-0.5f, -0.5f};
  px_optim_adamw_step(&p[0], &m[0], &v[0], &g1[0], 1, &cfg, 0.1f, 1, 1);
  px_optim_adamw_step(&p[1], &m[1], &v[1], &g1[1], 1, &cfg, 0.1f, 0, 1);
  CU_ASSERT_DOUBLE_EQUAL(p[0], 0.890000002, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(p[1], 0.900000002, 1e-6);
  CU_ASSERT_DOUBLE_EQUAL(m[0], 0.05, 1e-7); /* float's 1 - b1 */
  CU_ASSERT_DOUBLE_EQUAL(v[0], 0.00025, 1e-8);
  px_optim_adamw_step(&p[0], &m[0], &v[0], &g2[0], 1, &cfg, 0.1f, 1, 2);
  CU_ASSERT_DOUBLE_EQUAL(m[0], -0.005, 1e-7);
  CU_ASSERT_DOUBLE_EQUAL(v[0], 0.00049975, 2e-8);
  CU_ASSERT_DOUBLE_EQUAL(p[0], 0.8863632, 2e-6);
}

/* Five steps over several elements against the formulas of optim.h run in double. */
static void test_adamw_steps(void) {
  enum { N = 6, STEPS = 5 };
  px_adamw_config cfg = {0.9f, 0.95f, 1e-6f, 0.05f};
  float p[N], m[N] = {0}, v[N] = {0}, g[N];
  double pd[N], md[N] = {0}, vd[N] = {0};
  for (int i = 0; i < N; i++) p[i] = (float)(0.3 * i - 0.7), pd[i] = p[i];
  for (int t = 1; t <= STEPS; t++) {
    float lr = 0.01f * t;
    for (int i = 0; i < N; i++) g[i] = (float)(sin(1.3 * i + 0.7 * t) * (i + 1));
    px_optim_adamw_step(p, m, v, g, N, &cfg, lr, 1, t);
    for (int i = 0; i < N; i++) {
      md[i] = 0.9 * md[i] + 0.1 * g[i];
      vd[i] = 0.95 * vd[i] + 0.05 * (double)g[i] * g[i];
      double mhat = md[i] / (1.0 - pow(0.9, t)), vhat = vd[i] / (1.0 - pow(0.95, t));
      pd[i] -= (double)lr * (mhat / (sqrt(vhat) + 1e-6) + 0.05 * pd[i]);
    }
  }
  for (int i = 0; i < N; i++) {
    CU_ASSERT_DOUBLE_EQUAL(p[i], pd[i], 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(m[i], md[i], 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(v[i], vd[i], 1e-6);
  }
  /* a zero gradient with zero moments leaves only the decay: p (1 - lr wd) */
  float q = 2.0f, mq = 0.0f, vq = 0.0f, gq = 0.0f;
  px_optim_adamw_step(&q, &mq, &vq, &gq, 1, &cfg, 0.1f, 1, 1);
  CU_ASSERT_DOUBLE_EQUAL(q, 2.0 * (1.0 - 0.1 * 0.05), 1e-6);
}

static void test_schedule(void) {
  px_lr_schedule s = {1e-3, 1e-4, 10, 110, PX_LR_COSINE};
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 0), 1e-4, 1e-12); /* warm-up: lr (step+1)/10 */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 4), 5e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 9), 1e-3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 10), 1e-3, 1e-12); /* the decay starts at the peak */
  /* r = 0.25: 1e-4 + (1 + cos(pi/4)) / 2 * 9e-4 = 8.681981e-4 */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 35), 8.6819805153394637e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 60), 5.5e-4, 1e-12); /* r = 0.5: halfway */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 110), 1e-4, 1e-12);  /* the floor, and after it */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 5000), 1e-4, 1e-12);
  int falling = 1;
  for (int64_t t = 10; t < 120; t++) falling &= px_optim_lr(&s, t + 1) <= px_optim_lr(&s, t);
  CU_ASSERT(falling);

  s.decay = PX_LR_LINEAR;
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 9), 1e-3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 35), 7.75e-4, 1e-12); /* 1e-3 - 0.25 * 9e-4 */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 60), 5.5e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 109), 1e-3 - 0.99 * 9e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 110), 1e-4, 1e-12);

  s.decay = PX_LR_CONSTANT;
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 3), 4e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&s, 500), 1e-3, 1e-12);

  px_lr_schedule none = {3e-4, 0.0, 0, 100, PX_LR_COSINE}; /* no warm-up */
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&none, 0), 3e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_lr(&none, 100), 0.0, 1e-12);
}

static void test_clip(void) {
  float g[2] = {3.0f, 4.0f};
  CU_ASSERT_DOUBLE_EQUAL(px_optim_clip_grad_norm(g, 2, 10.0), 5.0, 1e-12); /* under: kept */
  CU_ASSERT(g[0] == 3.0f && g[1] == 4.0f);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_clip_grad_norm(g, 2, 0.0), 5.0, 1e-12); /* 0: no clipping */
  CU_ASSERT(g[0] == 3.0f && g[1] == 4.0f);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_clip_grad_norm(g, 2, 1.0), 5.0, 1e-12); /* the norm before */
  CU_ASSERT_DOUBLE_EQUAL(g[0], 0.6, 1e-7);
  CU_ASSERT_DOUBLE_EQUAL(g[1], 0.8, 1e-7);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_grad_norm(g, 2), 1.0, 1e-6);

  float bad[3] = {1.0f, NAN, 2.0f};
  CU_ASSERT(isnan(px_optim_clip_grad_norm(bad, 3, 1.0)));
  CU_ASSERT(bad[0] == 1.0f && bad[2] == 2.0f); /* left for the caller to skip the step */

  /* many elements, more than the chunks of the sum: sqrt(n * 0.25) */
  size_t n = 1000003;
  float *big = px_malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) big[i] = 0.5f;
  CU_ASSERT_DOUBLE_EQUAL(px_optim_grad_norm(big, n), sqrt(n * 0.25), 1e-9);
  double before = px_optim_clip_grad_norm(big, n, 2.0);
  CU_ASSERT_DOUBLE_EQUAL(before, sqrt(n * 0.25), 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_grad_norm(big, n), 2.0, 1e-5);
  CU_ASSERT_DOUBLE_EQUAL(px_optim_grad_norm(big, 0), 0.0, 0.0);
  free(big);
}

void px_test_register(void) {
  static CU_TestInfo tests[] = {{"adamw by hand", test_adamw_by_hand},
                                {"adamw five steps against double", test_adamw_steps},
                                {"learning-rate schedule", test_schedule},
                                {"global-norm clipping", test_clip},
                                CU_TEST_INFO_NULL};
  px_test_suite("optim", tests);
}
