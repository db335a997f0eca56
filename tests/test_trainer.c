/*
 * test_trainer.c — the end of a training step (trainer.c), run as a real 2-rank MPI launch (it
 * also passes on 1 rank): the gradient sum overlapped with the last micro-batch's backward gives
 * bitwise the gradient and the parameters of the blocking allreduce, over several micro-batches
 * and steps, for both heads, and leaves nothing pending; a step with fewer rows than ranks falls
 * back to the blocking allreduce on every rank.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxima/comm.h"
#include "proxima/gpt.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"
#include "proxima/trainer.h"
#include "test_util.h"

enum { MB = 2, TT = 12, N_MICRO = 3, STEPS = 2 }; /* micro-batches of MB rows of TT positions */

static double unif(uint32_t tag, uint32_t i, uint32_t j) {
  px_rng_ctr ctr = {{tag, i, j, (uint32_t)px_comm_rank()}}; /* each rank its own data */
  return px_rng_uniform(3, ctr);
}

/* A model and its trainer; overlap on or off. */
static void build(px_gpt *m, px_trainer *t, px_gpt_head head, int overlap) {
  px_gpt_config cfg = {PX_TOK_BYTE_IDS, TT, 3, 2, 32, head};
  px_gpt_build(m, &cfg, MB, TT, 1);
  px_gpt_init(m, 7);
  *t = (px_trainer){.model = m,
                    .adamw = {0.9f, 0.95f, 1e-8f, 0.1f},
                    .schedule = {1e-3, 1e-3, 0, 100, PX_LR_CONSTANT},
                    .grad_clip = 0, /* so that m->grads after the step is the plain sum */
                    .phase = "test",
                    .lr_key = "test.lr",
                    .overlap = overlap};
}

/* Micro-batch k of step s on this rank: forward, the loss's gradient, backward (through the
 * trainer); last says whether it is this rank's last of the step. */
static void micro_batch(px_trainer *t, int s, int k, int last) {
  px_gpt *m = t->model;
  int32_t tokens[MB * TT], lengths[MB], targets[MB * TT];
  float dout[MB * TT];
  for (int b = 0; b < MB; b++) {
    lengths[b] = TT - (int)(unif(1, (uint32_t)(s * 100 + k), (uint32_t)b) * 4); /* 9 to 12 */
    for (int p = 0; p < TT; p++) {
      uint32_t i = (uint32_t)((s * 100 + k) * 1000 + b * TT + p);
      tokens[b * TT + p] = p == 0 ? PX_TOK_BYTE_BOS : (int32_t)(unif(2, i, 0) * 256);
      targets[b * TT + p] = (int32_t)(unif(3, i, 0) * 256);
      dout[b * TT + p] = (float)(unif(4, i, 0) - 0.5) / (MB * TT);
    }
  }
  px_gpt_forward(m, tokens, lengths, MB, TT);
  if (m->config.head == PX_GPT_HEAD_LM) px_gpt_logprobs(m, NULL, targets, 1.0f);
  px_trainer_backward(t, dout, last);
}

static int same(const float *a, const float *b, size_t n) {
  return memcmp(a, b, n * sizeof(float)) == 0;
}

static void check_overlap(px_gpt_head head) {
  px_gpt blocking_m, overlap_m;
  px_trainer blocking, overlap;
  build(&blocking_m, &blocking, head, 0);
  build(&overlap_m, &overlap, head, 1);
  const int size = px_comm_size();
  const int64_t rows = (int64_t)size * MB * N_MICRO; /* the step's rows over all ranks */
  for (int s = 0; s < STEPS; s++) {
    double lr;
    px_trainer_begin(&blocking, rows);
    for (int k = 0; k < N_MICRO; k++) micro_batch(&blocking, s, k, k == N_MICRO - 1);
    CU_ASSERT_EQUAL(px_comm_pending(), 0);
    px_trainer_step(&blocking, s, 1.0, &lr);

    px_trainer_begin(&overlap, rows);
    for (int k = 0; k < N_MICRO; k++) {
      micro_batch(&overlap, s, k, k == N_MICRO - 1);
      /* only the last micro-batch starts reductions; with one rank there are none */
      CU_ASSERT_EQUAL(px_comm_pending() > 0, size > 1 && k == N_MICRO - 1);
    }
    double wait0 = px_comm_wait_seconds();
    px_trainer_step(&overlap, s, 1.0, &lr);
    CU_ASSERT_EQUAL(px_comm_pending(), 0);
    CU_ASSERT(px_comm_wait_seconds() >= wait0);
    CU_ASSERT(same(blocking_m.grads, overlap_m.grads, overlap_m.n_params));
    CU_ASSERT(same(blocking_m.params, overlap_m.params, overlap_m.n_params));
    CU_ASSERT_EQUAL(overlap.applied, s + 1);
  }
  /* And the sum is a sum: every rank holds the same gradient. */
  double mine = 0, all = 0;
  for (size_t i = 0; i < overlap_m.n_params; i++) mine += overlap_m.grads[i] * (double)(i % 7);
  all = mine;
  px_comm_allreduce_sum_f64(&all, 1);
  CU_ASSERT_DOUBLE_EQUAL(all, mine * size, fabs(mine) * 1e-12 * size);
  px_gpt_free(&blocking_m);
  px_gpt_free(&overlap_m);
}

static void test_overlap_lm(void) { check_overlap(PX_GPT_HEAD_LM); }
static void test_overlap_scalar(void) { check_overlap(PX_GPT_HEAD_SCALAR); }

/* One row over all the ranks: only rank 0 has a micro-batch, so no rank may start a
 * non-blocking reduction (the others would never match it); the step still sums. */
static void test_fewer_rows_than_ranks(void) {
  px_gpt blocking_m, overlap_m;
  px_trainer blocking, overlap;
  build(&blocking_m, &blocking, PX_GPT_HEAD_LM, 0);
  build(&overlap_m, &overlap, PX_GPT_HEAD_LM, 1);
  double lr;
  px_trainer *ts[2] = {&blocking, &overlap};
  for (int i = 0; i < 2; i++) {
    px_trainer_begin(ts[i], 1);
    if (px_comm_rank() == 0) micro_batch(ts[i], 0, 0, 1);
    CU_ASSERT_EQUAL(px_comm_pending(), 0);
    px_trainer_step(ts[i], 0, 1.0, &lr);
    CU_ASSERT_EQUAL(px_comm_pending(), 0);
  }
  CU_ASSERT(same(blocking_m.grads, overlap_m.grads, overlap_m.n_params));
  CU_ASSERT(same(blocking_m.params, overlap_m.params, overlap_m.n_params));
  px_gpt_free(&blocking_m);
  px_gpt_free(&overlap_m);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"overlapped sum = blocking allreduce, LM head", test_overlap_lm},
      {"overlapped sum = blocking allreduce, scalar head", test_overlap_scalar},
      {"fewer rows than ranks: blocking on every rank", test_fewer_rows_than_ranks},
      CU_TEST_INFO_NULL};
  px_test_suite("trainer", tests);
}
