/*
 * test_rm.c — the reward model's pieces: the Bradley–Terry loss on known values and against
 * finite differences, a gradient check of the pairwise loss through the whole scalar-head model
 * (scores read at EOS), and scores that do not depend on the padding of the batch.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxima/batch.h"
#include "proxima/gpt.h"
#include "proxima/rl.h"
#include "proxima/rm.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

static void test_pairwise_loss_known_values(void) {
  float rp[4] = {2, 0, -100, 30}, rn[4] = {0, 0, 100, 30.5f}, dp[4], dn[4];
  double loss = px_rl_pairwise_loss(dp, dn, rp, rn, 4, 4.0);
  /* log(1 + e^-2), log 2, softplus(200) = 200 (+ e^-200), softplus(0.5) */
  double want[4] = {0.12692801104297263, 0.6931471805599453, 200.0, 0.9740769841801067};
  CU_ASSERT_DOUBLE_EQUAL(loss, (want[0] + want[1] + want[2] + want[3]) / 4, 1e-9);
  /* dL/dr+ = -sigma(r- - r+) / norm */
  double s[4] = {0.11920292202211755, 0.5, 1.0, 0.6224593312018546};
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_DOUBLE_EQUAL(dp[i], -s[i] / 4, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(dn[i], s[i] / 4, 1e-7);
  }
}

static void test_pairwise_loss_finite_differences(void) {
  float rp[3] = {0.3f, -1.2f, 4.0f}, rn[3] = {0.1f, 0.8f, -2.5f}, dp[3], dn[3];
  px_rl_pairwise_loss(dp, dn, rp, rn, 3, 3.0);
  for (int i = 0; i < 3; i++)
    for (int side = 0; side < 2; side++) {
      float *r = side ? rn : rp, keep = r[i], h = 1e-2f;
      r[i] = keep + h;
      double up = px_rl_pairwise_loss(NULL, NULL, rp, rn, 3, 3.0);
      r[i] = keep - h;
      double down = px_rl_pairwise_loss(NULL, NULL, rp, rn, 3, 3.0);
      r[i] = keep;
      double fd = (up - down) / (2 * h), g = side ? dn[i] : dp[i];
      CU_ASSERT(fabs(fd - g) < 1e-4 * fmax(1, fabs(g)));
    }
}

/* The byte tokenizer, the models' here. */
static px_tokenizer bytes;

/* Three pairs of different lengths; tokens drawn with Philox. */
enum { NP = 3 };
static const int64_t prompt_len[NP] = {4, 1, 6}, chosen_len[NP] = {2, 5, 1},
                     rejected_len[NP] = {3, 1, 2};
static int32_t tok(int field, int pair, int t) {
  px_rng_ctr c = {{(uint32_t)field, (uint32_t)pair, (uint32_t)t, 3}};
  return (int32_t)px_rng_below(9, c, 256);
}

typedef struct pair_set {
  int32_t p[NP][8], c[NP][8], r[NP][8];
} pair_set;

static void make_pairs(pair_set *s) {
  for (int i = 0; i < NP; i++)
    for (int t = 0; t < 8; t++)
      s->p[i][t] = tok(0, i, t), s->c[i][t] = tok(1, i, t), s->r[i][t] = tok(2, i, t);
}

/* The mean pairwise loss of the pair set under the model, and (when dvalues is given) the
 * gradient wrt the values, read at each row's EOS. */
static double pair_loss(px_gpt *m, const pair_set *s, px_batch *b, float *dvalues) {
  px_batch_clear(b);
  for (int i = 0; i < NP; i++) {
    CU_ASSERT_EQUAL_FATAL(px_batch_add_scored(b, s->p[i], prompt_len[i], s->c[i], chosen_len[i]),
                          0);
    CU_ASSERT_EQUAL_FATAL(px_batch_add_scored(b, s->p[i], prompt_len[i], s->r[i], rejected_len[i]),
                          0);
  }
  px_batch_pack(b);
  px_gpt_forward(m, b->tokens, b->lengths, b->B, b->T);
  float scores[2 * NP], rp[NP], rn[NP], dp[NP], dn[NP];
  px_rm_scores(m, b, 1, 0, scores);
  for (int i = 0; i < NP; i++) rp[i] = scores[2 * i], rn[i] = scores[2 * i + 1];
  double loss = px_rl_pairwise_loss(dp, dn, rp, rn, NP, NP);
  if (dvalues) {
    memset(dvalues, 0, (size_t)b->B * b->T * sizeof *dvalues);
    for (int i = 0; i < NP; i++) {
      dvalues[(2 * i) * b->T + b->lengths[2 * i] - 1] = dp[i];
      dvalues[(2 * i + 1) * b->T + b->lengths[2 * i + 1] - 1] = dn[i];
    }
  }
  return loss;
}

/* Directional finite differences per tensor (the model runs in float; a direction averages the
 * rounding of single elements away, as test_gpt.c does). */
static void test_pairwise_gradient_through_the_model(void) {
  px_gpt_config c = {PX_TOK_BYTE_IDS, 12, 2, 2, 16, PX_GPT_HEAD_SCALAR};
  px_gpt m;
  px_gpt_build(&m, &c, 2 * NP, 12, 1);
  px_gpt_init(&m, 4);
  for (size_t i = 0; i < m.n_params; i++) /* off GPT-2's near-linear start */
    m.params[i] += (float)(0.05 * px_rng_normal(8, (px_rng_ctr){{(uint32_t)i, 0, 0, 1}}));
  pair_set s;
  make_pairs(&s);
  px_batch b;
  px_batch_build(&b, &bytes, 2 * NP, 12);
  float *dvalues = malloc(2 * NP * 12 * sizeof *dvalues);
  pair_loss(&m, &s, &b, dvalues);
  px_gpt_zero_grad(&m);
  px_gpt_backward(&m, dvalues);
  float *dir = malloc(m.n_params * sizeof *dir), *keep = malloc(m.n_params * sizeof *keep);
  memcpy(keep, m.params, m.n_params * sizeof *keep);
  double worst = 0;
  for (int ti = 0; ti < m.n_tensors; ti++) {
    const px_gpt_tensor *t = &m.tensors[ti];
    const float eps = 1e-3f;
    double g_dot = 0, scale = 0;
    for (size_t k = 0; k < t->count; k++) {
      size_t i = t->offset + k;
      dir[i] = (float)px_rng_normal(6, (px_rng_ctr){{(uint32_t)ti, (uint32_t)k, 0, 2}});
    }
    for (size_t k = 0; k < t->count; k++) {
      size_t i = t->offset + k;
      m.params[i] = keep[i] + eps * dir[i];
    }
    double up = pair_loss(&m, &s, &b, NULL);
    for (size_t k = 0; k < t->count; k++) {
      size_t i = t->offset + k;
      m.params[i] = keep[i] - eps * dir[i];
      /* the float step actually taken, half of (up - down) */
      double step = ((double)(keep[i] + eps * dir[i]) - (double)(keep[i] - eps * dir[i])) / 2;
      g_dot += (double)m.grads[i] * step;
      scale += fabs((double)m.grads[i] * step);
    }
    double down = pair_loss(&m, &s, &b, NULL);
    memcpy(m.params + t->offset, keep + t->offset, t->count * sizeof *keep);
    /* lnf_b and head_b get no gradient: every pair pushes its two scores by -dL and +dL, so
     * what moves both equally cancels; their finite differences are rounding, so the error is
     * measured against a floor of 1e-4 (the loss itself is ~0.7). */
    double fd = (up - down) / 2, err = fabs(fd - g_dot) / fmax(scale, 1e-4);
    if (err > worst) worst = err;
    if (err > 2e-3) printf("\n    %s: finite difference %.6e, analytic %.6e\n", t->name, fd, g_dot);
    CU_ASSERT(err <= 2e-3);
  }
  printf("\n    pairwise loss through the model: worst relative error %.2e over %d tensors\n",
         worst, m.n_tensors);
  free(dir), free(keep), free(dvalues);
  px_batch_free(&b);
  px_gpt_free(&m);
}

/* A pair scored in a batch beside longer sequences gets the same scores as scored alone. */
static void test_scores_do_not_depend_on_padding(void) {
  px_gpt_config c = {PX_TOK_BYTE_IDS, 16, 2, 2, 16, PX_GPT_HEAD_SCALAR};
  px_gpt m;
  px_gpt_build(&m, &c, 8, 16, 0);
  px_gpt_init(&m, 5);
  for (size_t i = 0; i < m.n_params; i++)
    m.params[i] += (float)(0.05 * px_rng_normal(9, (px_rng_ctr){{(uint32_t)i, 0, 0, 1}}));
  pair_set s;
  make_pairs(&s);
  const int32_t *ps[NP], *cs[NP];
  int64_t pl[NP], cl[NP];
  for (int i = 0; i < NP; i++)
    ps[i] = s.p[i], cs[i] = s.c[i], pl[i] = prompt_len[i], cl[i] = chosen_len[i];
  float together[NP], alone[NP], scaled[NP];
  px_rm_score(&m, &bytes, 1, 0, ps, pl, cs, cl, NP, together);
  for (int i = 0; i < NP; i++)
    px_rm_score(&m, &bytes, 1, 0, &ps[i], &pl[i], &cs[i], &cl[i], 1, &alone[i]);
  for (int i = 0; i < NP; i++) CU_ASSERT_DOUBLE_EQUAL(together[i], alone[i], 1e-6);
  /* gain and bias apply: gain * raw + bias */
  px_rm_score(&m, &bytes, 2.5f, -1.0f, ps, pl, cs, cl, NP, scaled);
  for (int i = 0; i < NP; i++) CU_ASSERT_DOUBLE_EQUAL(scaled[i], 2.5 * together[i] - 1.0, 1e-5);
  /* the score is the value at EOS: changing the prompt's last token changes it */
  s.p[0][prompt_len[0] - 1] ^= 1;
  float changed;
  px_rm_score(&m, &bytes, 1, 0, &ps[0], &pl[0], &cs[0], &cl[0], 1, &changed);
  CU_ASSERT(changed != alone[0]);
  px_gpt_free(&m);
}

void px_test_register(void) {
  px_tokenizer_byte(&bytes);
  static const CU_TestInfo loss[] = {{"known values", test_pairwise_loss_known_values},
                                     {"finite differences", test_pairwise_loss_finite_differences},
                                     CU_TEST_INFO_NULL};
  static const CU_TestInfo model[] = {
      {"pairwise gradient through the model", test_pairwise_gradient_through_the_model},
      {"scores do not depend on padding", test_scores_do_not_depend_on_padding},
      CU_TEST_INFO_NULL};
  px_test_suite("bradley-terry loss", loss);
  px_test_suite("reward model", model);
}
