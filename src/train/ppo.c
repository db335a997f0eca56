/*
 * ppo.c — `proxima ppo`, the seed's loop, one numbered step per call:
 *
 *   1. sample B prompts and generate responses with pi_theta (each rank its contiguous share);
 *   2. score: policy and reference log-probs, per-token values, the normalised reward at EOS
 *      (a fixed penalty for a response that hit the length limit without EOS);
 *   3. shape the reward with the KL brake, r_t = -beta kl_t (+ R at the last token), estimate
 *      advantages with GAE over V_psi and whiten them with global statistics (one allreduce);
 *   4. update theta (clipped surrogate) and psi (clipped value loss) for E epochs over
 *      minibatches drawn by a permutation that every rank draws alike;
 *   5. collect again.
 *
 * After scoring, every rank holds every rollout (one allgather per array; a rollout is a few
 * hundred bytes), so a minibatch is the same set of responses whatever the rank count and each
 * rank takes its contiguous share of it. The math is src/rl/rl.c.
 *
 * Non-finite rollouts: a response whose log-probs, reference log-probs, values or score are
 * not all finite is dropped after scoring: its mask is 0 and its numbers 0, so it takes no part
 * in the whitening, the minibatches (drawn from the kept responses only) or the metrics, and the
 * iteration counts it (nonfinite_rollouts). Every rank holds every row's flag after the
 * allgather, so the ranks agree. An iteration that keeps no response updates nothing;
 * run.max_nonfinite such iterations in a row stop the run, as do that many skipped optimizer
 * steps in a row of either model (trainer.h).
 */
#include "proxima/ppo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/fault.h"
#include "proxima/finite.h"
#include "proxima/generate.h"
#include "proxima/log.h"
#include "proxima/optim.h"
#include "proxima/rl.h"
#include "proxima/rm.h"
#include "proxima/rollout.h"
#include "proxima/stage.h"
#include "proxima/tokenizer.h"
#include "proxima/trainer.h"

enum { PX_STREAM_PPO_PROMPTS = 31 };

/* ppo.estimator, in the order of its names in px_rollout_estimators (rollout.h): gae uses the
 * value model; the others are critic-free (rl.h). */
typedef enum px_ppo_estimator {
  PX_EST_GAE,
  PX_EST_GRPO,
  PX_EST_RLOO,
  PX_EST_REINFORCE_PP
} px_ppo_estimator;
#define PX_PPO_WHITEN_EPS 1e-8 /* added to the advantages' variance before the square root */
#define PX_PPO_GROUP_EPS 1e-6  /* added to a group's reward std (grpo), as verl */

typedef struct px_ppo {
  const px_config *cfg;
  px_dataset prompts, eval;
  int64_t *prompt_ids;
  px_epochs prompt_stream;
  px_gpt policy, reference, value, reward;
  float gain, bias; /* the reward model's normalisation */
  px_generator gen;
  px_trainer policy_tr, value_tr;
  float temperature; /* of every log-prob pass */
  double beta;
  int B, T, R; /* rollouts per iteration; positions a sequence takes (px_ppo_positions); response
                  positions */
  int P, K;    /* prompts per iteration; responses per prompt (B = P K), rows p K .. p K + K - 1 */
  px_ppo_estimator estimator;
  int kl_loss; /* the KL to pi_base is a loss term (ppo.kl_in = loss), not in the reward */
  /* The iteration's rollouts, every rank holding all B rows after scoring. */
  int32_t *seq;         /* [B, T]: BOS prompt response (response with its EOS, if any) */
  int32_t *plen, *rlen; /* [B]: BOS + prompt tokens; response tokens */
  uint8_t *eos;         /* [B] */
  float *lp_old, *lp_ref, *values, *kl, *rewards, *adv, *ret; /* [B, R] */
  uint8_t *mask;                                              /* [B, R] */
  float *score, *raw;   /* [B]: the score (or the penalty); the reward model's raw output */
  uint8_t *gold;        /* [B]: the response equals the prompt's reference (when it has one) */
  uint8_t *dropped;     /* [B]: a non-finite number in the row: left out of everything */
  int64_t bad_in_a_row; /* iterations in a row whose every rollout was dropped */
  px_ppo_state state;
  px_tokenizer tok; /* the policy's, which every model and data set must share */
  /* scratch for forward passes over rows, micro_batch rows of up to T positions */
  px_batch batch;
  float *out, *grad, *row_lp, *row_d; /* [mb, T] x2, [R] x2 */
} px_ppo;

/* ------------------------------------------------------------------------------------------- */

/* Forward over rows idx[0..n) of the rollouts with model m in micro-batches; for the LM head
 * the response log-probs, for the scalar head the response values, into out rows [n, R] (0
 * past each response). When grad is given (a [n, R] gradient for those), also the backward,
 * through tr (m's trainer). */
static void px_ppo_pass(px_ppo *s, px_gpt *m, const int64_t *idx, int64_t n, float *out,
                        const float *grad, px_trainer *tr) {
  const int mb = (int)s->cfg->ppo_micro_batch, R = s->R;
  for (int64_t start = 0; start < n; start += mb) {
    int rows = (int)(n - start < mb ? n - start : mb);
    px_batch_clear(&s->batch);
    for (int r = 0; r < rows; r++) {
      int64_t i = idx[start + r];
      px_batch_add_response(&s->batch, s->seq + (size_t)i * s->T, s->plen[i], s->rlen[i]);
    }
    px_batch_pack(&s->batch);
    const px_batch *b = &s->batch;
    px_gpt_forward(m, b->tokens, b->lengths, b->B, b->T);
    const float *per_pos = m->values;
    if (m->config.head == PX_GPT_HEAD_LM) {
      px_gpt_logprobs(m, s->out, b->targets, s->temperature);
      per_pos = s->out;
    }
    for (int r = 0; r < rows; r++) {
      int64_t i = idx[start + r];
      int P = s->plen[i], L = s->rlen[i];
      float *o = out + (size_t)(start + r) * R;
      for (int j = 0; j < R; j++) o[j] = j < L ? per_pos[(size_t)r * b->T + P - 1 + j] : 0.0f;
    }
    if (!grad) continue;
    memset(s->grad, 0, (size_t)b->B * b->T * sizeof(float));
    for (int r = 0; r < rows; r++) {
      int64_t i = idx[start + r];
      int P = s->plen[i], L = s->rlen[i];
      const float *g = grad + (size_t)(start + r) * R;
      for (int j = 0; j < L; j++) s->grad[(size_t)r * b->T + P - 1 + j] = g[j];
    }
    px_trainer_backward(tr, s->grad, start + mb >= n);
  }
}

/* ------------------------------------------------------------------------------------------- */

/* The value model started from the reward model outputs the raw score, head_w . h + head_b;
 * PPO's rewards (and so the returns) carry the normalised one, gain * raw + bias. Folding the
 * normalisation into the head, head_w <- gain head_w and head_b <- gain head_b + bias, starts
 * the values on the returns' scale. */
static void px_ppo_fold_normalisation(px_gpt *value, float gain, float bias) {
  const px_gpt_tensor *w = px_gpt_find_tensor(value, "head_w"),
                      *b = px_gpt_find_tensor(value, "head_b");
  PX_REQUIRE(w && b && b->count == 1,
             "px_ppo_fold_normalisation: the value model has no scalar head");
  for (size_t i = 0; i < w->count; i++) value->params[w->offset + i] *= gain;
  value->params[b->offset] = gain * value->params[b->offset] + bias;
}

int px_ppo_positions(int max_seq_len, int64_t longest_prompt, int64_t max_new_tokens) {
  /* BOS, the prompt and max_new_tokens response tokens (EOS among them), and one more, so that
   * px_prompt_max_tokens (T - 3) keeps the longest prompt whole even at max_new_tokens 1. */
  const int64_t need = longest_prompt + max_new_tokens + 2;
  return need < max_seq_len ? (int)need : max_seq_len;
}

/* This rank's rows [lo, hi) of the iteration: whole groups (the responses to its share of the
 * prompts), so that a group's statistics (grpo, rloo) need no communication and are those of
 * one rank. Every gather of rows goes by groups too (px_ppo_gather). */
static void px_ppo_share(const px_ppo *s, int64_t *lo, int64_t *hi) {
  px_comm_share(s->P, px_comm_rank(), px_comm_size(), lo, hi);
  *lo *= s->K, *hi *= s->K;
}

/* Every rank's rows of array a (row_bytes a row) to every rank: the ranks' shares of the P
 * groups of K rows. Collective. */
static void px_ppo_gather(const px_ppo *s, void *a, size_t row_bytes) {
  px_comm_allgather_share(a, s->P, (size_t)s->K * row_bytes);
}

/* What a rank of PPO holds at once (the policy and value model with gradients and moments, the
 * reference and reward models, the generator and its KV cache), for sequences of T positions,
 * against the node's memory shared by its ranks: each model alone may fit (px_gpt_check_memory)
 * while the five do not, and a run the system kills is worse than one refused at the start. */
static px_status px_ppo_check_memory(const px_config *cfg, const char *policy, const char *reward,
                                     int T, px_error *err) {
  /* Checkpoints that cannot be read are the loaders' to report, in their order. */
  char path[4300];
  px_gpt_config pc, rc;
  px_error later;
  if (px_ckpt_resolve(policy, path, sizeof path, &later) != PX_OK ||
      px_ckpt_read_config(path, "policy", &pc, &later) != PX_OK ||
      px_ckpt_resolve(reward, path, sizeof path, &later) != PX_OK ||
      px_ckpt_read_config(path, "reward", &rc, &later) != PX_OK)
    return PX_OK;
  px_gpt_config vc = !strcmp(cfg->ppo_value_init, "reward") ? rc : pc;
  vc.head = PX_GPT_HEAD_SCALAR;
  const int mb = (int)cfg->ppo_micro_batch;
  const double need = px_gpt_bytes(&pc, mb, T, 1) + px_gpt_bytes(&pc, mb, T, 0) +
                      px_gpt_bytes(&rc, mb, T, 0) + px_gpt_bytes(&vc, mb, T, 1) +
                      px_generator_bytes(&pc, (int)cfg->sample_batch, T);
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
  const int here = px_comm_node_size();
  if (have > 0 && need * here > have)
    return px_error_set(err, PX_EINPUT,
                        "ppo: the four models (%d layers x %d wide, %d positions) in micro-batches "
                        "of %d and the generator (sample.batch %lld) need about %.3g GiB per rank; "
                        "%d rank%s on this node share %.3g GiB: lower ppo.micro_batch or "
                        "sample.batch, or run fewer ranks per node",
                        pc.n_layer, pc.n_embd, T, mb, (long long)cfg->sample_batch,
                        need / 1073741824.0, here, here == 1 ? "" : "s", have / 1073741824.0);
  return PX_OK;
}

/* The prompts and the held-out prompts (tok's), and the positions a sequence takes, s->T
 * (px_ppo_positions over the longest prompt of either set). A training prompt must fit the
 * policy's max_seq_len whole; a held-out one too long is cut, as eval cuts it. */
static px_status px_ppo_read_prompts(px_ppo *s, const char *policy, px_error *err) {
  const px_config *cfg = s->cfg;
  char path[4300];
  px_gpt_config pc;
  PX_TRY(px_ckpt_resolve(policy, path, sizeof path, err));
  PX_TRY(px_ckpt_read_config(path, "policy", &pc, err));
  PX_TRY(px_dataset_read(cfg->ppo_prompts, PX_IO_ALONE, 0, 1, -1, &s->tok, &s->prompts, err));
  if (s->prompts.kind == PX_DATA_TEXT)
    return px_error_set(err, PX_EINPUT, "%s holds text records; ppo needs prompts",
                        cfg->ppo_prompts);
  if (cfg->ppo_eval_prompts[0])
    PX_TRY(px_dataset_read(cfg->ppo_eval_prompts, PX_IO_ALONE, 0, 1, PX_DATA_PROMPTS, &s->tok,
                           &s->eval, err));
  int64_t longest = 0, np;
  for (int64_t i = 0; i < s->prompts.n; i++) {
    px_dataset_row(&s->prompts, 0, i, &np);
    if (np > px_prompt_max_tokens(pc.max_seq_len))
      return px_error_set(err, PX_EINPUT,
                          "%s: prompt %lld has %lld tokens: with BOS, one response token and "
                          "EOS it does not fit the model's max_seq_len %d",
                          cfg->ppo_prompts, (long long)i, (long long)np, pc.max_seq_len);
    longest = np > longest ? np : longest;
  }
  for (int64_t i = 0; i < s->eval.n; i++) {
    px_dataset_row(&s->eval, 0, i, &np);
    longest = np > longest ? np : longest;
  }
  s->T = px_ppo_positions(pc.max_seq_len, longest, cfg->sample_max_new_tokens);
  return PX_OK;
}

/* The four models: from the SFT and RM checkpoints for a fresh run, or all from the checkpoint
 * a run resumes from (resume, "" when fresh; its moments and state are read after), each for
 * micro-batches of s->T positions. */
static px_status px_ppo_setup(px_ppo *s, const char *resume, px_error *err) {
  const px_config *cfg = s->cfg;
  const int mb = (int)cfg->ppo_micro_batch;
  const char *policy = resume[0] ? resume : cfg->ppo_policy;
  const char *reward = resume[0] ? resume : cfg->ppo_reward;
  char rpath[4300];
  for (int e = 0; e < PX_ROLLOUT_N_ESTIMATORS; e++)
    if (!strcmp(cfg->ppo_estimator, px_rollout_estimators[e])) s->estimator = (px_ppo_estimator)e;
  s->kl_loss = !strcmp(cfg->ppo_kl_in, "loss");
  if ((s->estimator == PX_EST_GRPO || s->estimator == PX_EST_RLOO) && cfg->ppo_group_size < 2)
    return px_error_set(err, PX_EINPUT,
                        "ppo.estimator = %s needs ppo.group_size of 2 or more (it is %lld): each "
                        "response is measured against the other responses to its prompt",
                        cfg->ppo_estimator, (long long)cfg->ppo_group_size);
  PX_TRY(px_ckpt_read_tokenizer(policy, &s->tok, err));
  PX_TRY(px_ckpt_check_tokenizer(reward, "the reward model", &s->tok, "the policy", err));
  PX_TRY(px_ppo_read_prompts(s, policy, err));
  const int T = s->T;
  PX_TRY(px_ppo_check_memory(cfg, policy, reward, T, err));
  PX_TRY(px_ckpt_load(policy, "policy", PX_GPT_HEAD_LM, mb, T, 1, &s->policy, NULL, NULL, err));
  PX_TRY(px_ckpt_load(policy, resume[0] ? "reference" : "policy", PX_GPT_HEAD_LM, mb, T, 0,
                      &s->reference, NULL, NULL, err));
  PX_TRY(px_rm_load_model(reward, &s->reward, mb, T, &s->gain, &s->bias, err));
  if (resume[0])
    PX_TRY(px_ckpt_load(resume, "value", PX_GPT_HEAD_SCALAR, mb, T, 1, &s->value, NULL, NULL, err));
  PX_TRY(px_ckpt_resolve(reward, rpath, sizeof rpath, err));
  const px_gpt_config *pc = &s->policy.config, *rc = &s->reward.config;
  if (pc->max_seq_len != rc->max_seq_len || pc->vocab_size != rc->vocab_size)
    return px_error_set(err, PX_EINPUT,
                        "the policy (T %d, vocab %d) and the reward model (T %d, vocab %d) must "
                        "read the same sequences",
                        pc->max_seq_len, pc->vocab_size, rc->max_seq_len, rc->vocab_size);
  if (!resume[0]) { /* the value model: the reward model whole, or the SFT trunk, new head */
    int from_reward = !strcmp(cfg->ppo_value_init, "reward");
    px_gpt_config vc = from_reward ? *rc : *pc;
    vc.head = PX_GPT_HEAD_SCALAR;
    PX_TRY(px_gpt_check_memory(&vc, mb, T, 1, "ppo value model", err));
    px_gpt_build(&s->value, &vc, mb, T, 1);
    px_gpt_init(&s->value, (uint64_t)cfg->run_seed);
    if (from_reward) {
      px_ckpt_model cm = {.group = "reward", .model = &s->value, .gain = 1};
      PX_TRY(px_ckpt_read_model(rpath, &cm, err));
      px_ppo_fold_normalisation(&s->value, s->gain, s->bias);
    } else {
      char ppath[4300];
      PX_TRY(px_ckpt_resolve(cfg->ppo_policy, ppath, sizeof ppath, err));
      PX_TRY(px_ckpt_read_trunk(ppath, "policy", &s->value, err));
    }
  }
  return PX_OK;
}

static void px_ppo_alloc(px_ppo *s) {
  const px_config *cfg = s->cfg;
  const int mb = (int)cfg->ppo_micro_batch;
  s->P = (int)cfg->ppo_batch_size, s->K = (int)cfg->ppo_group_size;
  s->B = s->P * s->K;
  /* Response positions: max_new_tokens, at most what a prompt of one token leaves after BOS. */
  s->R = (int)cfg->sample_max_new_tokens < s->T - 2 ? (int)cfg->sample_max_new_tokens : s->T - 2;
  size_t BR = (size_t)s->B * s->R;
  s->seq = px_calloc((size_t)s->B * s->T, sizeof *s->seq);
  s->plen = px_calloc((size_t)s->B, sizeof *s->plen);
  s->rlen = px_calloc((size_t)s->B, sizeof *s->rlen);
  s->eos = px_calloc((size_t)s->B, 1);
  s->gold = px_calloc((size_t)s->B, 1);
  s->dropped = px_calloc((size_t)s->B, 1);
  float **fs[] = {&s->lp_old, &s->lp_ref, &s->values, &s->kl, &s->rewards, &s->adv, &s->ret};
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) *fs[k] = px_calloc(BR, sizeof(float));
  s->mask = px_calloc(BR, 1);
  s->score = px_calloc((size_t)s->B, sizeof(float));
  s->raw = px_calloc((size_t)s->B, sizeof(float));
  px_batch_build(&s->batch, &s->tok, mb, s->T);
  s->out = px_malloc((size_t)mb * s->T * sizeof(float));
  s->grad = px_malloc((size_t)mb * s->T * sizeof(float));
  s->prompt_ids = px_malloc((size_t)s->prompts.n * sizeof(int64_t));
  for (int64_t i = 0; i < s->prompts.n; i++) s->prompt_ids[i] = i;
  px_epochs_init(&s->prompt_stream, s->prompt_ids, s->prompts.n, (uint64_t)cfg->run_seed,
                 PX_STREAM_PPO_PROMPTS);
  px_sampler_config sampling = px_sample_config(cfg);
  px_generator_build(&s->gen, &s->policy, &s->tok, &sampling, (uint64_t)cfg->run_seed,
                     (int)cfg->sample_batch, s->R, s->T);
  s->temperature = px_sampler_logprob_temperature(&s->gen.sampler);
  s->beta = cfg->ppo_beta;
  px_adamw_config adamw = {(float)cfg->adam_beta1, (float)cfg->adam_beta2, (float)cfg->adam_eps,
                           0.0f};
  int64_t steps = cfg->ppo_iterations * cfg->ppo_epochs *
                  ((s->B + cfg->ppo_minibatch - 1) / cfg->ppo_minibatch);
  s->policy_tr = (px_trainer){
      .model = &s->policy,
      .adamw = adamw,
      .schedule = {cfg->ppo_lr, cfg->ppo_lr, cfg->ppo_warmup_steps, steps, PX_LR_CONSTANT},
      .grad_clip = cfg->ppo_grad_clip,
      .phase = "ppo policy",
      .lr_key = "ppo.lr",
      .fault_point = "ppo.policy.grad",
      .max_nonfinite = cfg->run_max_nonfinite,
      .overlap = cfg->run_overlap_allreduce};
  s->value_tr = (px_trainer){.model = &s->value,
                             .adamw = adamw,
                             .schedule = {cfg->ppo_value_lr, cfg->ppo_value_lr,
                                          cfg->ppo_warmup_steps, steps, PX_LR_CONSTANT},
                             .grad_clip = cfg->ppo_grad_clip,
                             .phase = "ppo value",
                             .lr_key = "ppo.value_lr",
                             .fault_point = "ppo.value.grad",
                             .max_nonfinite = cfg->run_max_nonfinite,
                             .overlap = cfg->run_overlap_allreduce};
}

static void px_ppo_free(px_ppo *s) {
  free(s->seq), free(s->plen), free(s->rlen), free(s->eos), free(s->gold), free(s->dropped);
  free(s->lp_old), free(s->lp_ref), free(s->values), free(s->kl), free(s->rewards);
  free(s->adv), free(s->ret), free(s->mask), free(s->score), free(s->raw);
  free(s->out), free(s->grad), free(s->prompt_ids);
  px_batch_free(&s->batch);
  px_epochs_free(&s->prompt_stream);
  if (s->gen.model) px_generator_free(&s->gen);
  px_gpt *models[] = {&s->policy, &s->reference, &s->value, &s->reward};
  for (int i = 0; i < 4; i++)
    if (models[i]->params) px_gpt_free(models[i]);
  px_dataset_free(&s->prompts);
  px_dataset_free(&s->eval);
  px_tokenizer_free(&s->tok);
}

/* ------------------------------------------------------------------------------------------- */

/* Drops rollout row i when its log-probs, reference log-probs, values (over its response) or its
 * score are not all finite: flagged, and its numbers zeroed so that nothing non-finite travels
 * on (the mask, from the lengths in px_ppo_advantages, is 0 for it). */
static void px_ppo_check_row(px_ppo *s, int64_t i) {
  const size_t R = (size_t)s->R, L = (size_t)s->rlen[i], off = (size_t)i * R;
  float *rows[] = {s->lp_old + off, s->lp_ref + off, s->values + off};
  int bad = !isfinite(s->score[i]);
  for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
    bad |= px_first_nonfinite(rows[k], L) < L;
  s->dropped[i] = (uint8_t)bad;
  if (!bad) return;
  for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) memset(rows[k], 0, R * sizeof(float));
  s->score[i] = 0, s->raw[i] = NAN;
}

/* Steps 1 and 2 for this rank's share [lo, hi) of the iteration's B responses: row r answers
 * prompt r / K of the iteration, item cursor + r / K of the stream of shuffled prompts, and its
 * draws are keyed by r, so the K responses to a prompt differ. */
static px_status px_ppo_collect(px_ppo *s, int64_t it, int64_t cursor, int64_t lo, int64_t hi,
                                double *t_gen, double *t_score, px_error *err) {
  const int T = s->T, R = s->R;
  int64_t n = hi - lo;
  int64_t *recs = px_malloc((size_t)(n + 1) * sizeof *recs);
  for (int64_t i = 0; i < n; i++)
    recs[i] = px_epochs_item(&s->prompt_stream, cursor + (lo + i) / s->K);
  px_prompts pr; /* no prompt is cut: px_ppo_setup refused any too long */
  px_prompts_pack(&pr, &s->prompts, &s->tok, recs, 0, n, T);
  double t0 = px_log_elapsed();
  px_generation g = {0};
  px_status st = px_generate(&s->gen, pr.tokens, pr.offsets, n, (uint64_t)it, lo, &g, err);
  *t_gen += px_log_elapsed() - t0;
  if (st == PX_OK) {
    t0 = px_log_elapsed();
    for (int64_t i = 0; i < n; i++) {
      int64_t row = lo + i;
      int P = (int)(pr.offsets[i + 1] - pr.offsets[i]), L = g.lengths[i];
      int32_t *seq = s->seq + (size_t)row * T;
      memset(seq, 0, (size_t)T * sizeof *seq);
      memcpy(seq, pr.tokens + pr.offsets[i], (size_t)P * sizeof *seq);
      memcpy(seq + P, g.tokens + (size_t)i * g.max_new, (size_t)L * sizeof *seq);
      s->plen[row] = P, s->rlen[row] = L, s->eos[row] = g.eos[i];
      s->gold[row] = (uint8_t)px_dataset_is_reference(&s->prompts, recs[i], seq + P, L, g.eos[i]);
    }
    /* Policy and reference log-probs and the values, teacher-forced (the training passes'
     * kernels, so the first ratio is 1); the reward at EOS. */
    int64_t *idx = px_malloc((size_t)(n + 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = lo + i;
    px_ppo_pass(s, &s->policy, idx, n, s->lp_old + (size_t)lo * R, NULL, NULL);
    px_ppo_pass(s, &s->reference, idx, n, s->lp_ref + (size_t)lo * R, NULL, NULL);
    if (s->estimator == PX_EST_GAE) /* critic-free: the values stay 0 */
      px_ppo_pass(s, &s->value, idx, n, s->values + (size_t)lo * R, NULL, NULL);
    for (int64_t i = 0; i < n; i++) {
      int64_t row = lo + i;
      const int32_t *seq = s->seq + (size_t)row * T;
      int P = s->plen[row], L = s->rlen[row];
      if (s->eos[row]) {
        const int32_t *pp = seq + 1, *rr = seq + P;
        int64_t pl = P - 1, rl = L - 1;
        px_rm_score(&s->reward, &s->tok, 1, 0, &pp, &pl, &rr, &rl, 1, &s->raw[row]);
        s->score[row] = s->gain * s->raw[row] + s->bias;
      } else {
        s->raw[row] = NAN;
        s->score[row] = (float)s->cfg->ppo_no_eos_penalty;
      }
    }
    free(idx);
    int64_t first = lo; /* the fault poisons the first row with a response, where it is seen */
    while (first < hi && s->rlen[first] == 0) first++;
    px_fault_poison("ppo.rollout", s->values + (size_t)first * R, first < hi ? 1 : 0);
    for (int64_t row = lo; row < hi; row++) px_ppo_check_row(s, row);
    *t_score += px_log_elapsed() - t0;
  }
  px_generation_free(&g);
  px_prompts_free(&pr);
  free(recs);
  return st;
}

/* Step 3 on this rank's rows (whole groups): the shaped reward (beta 0 when the KL is a loss
 * term), the estimator's advantages, whitened with global moments for gae and reinforce_pp
 * (grpo and rloo are normalised within their groups: *adv_mean 0, *adv_std 1); then every rank
 * gets all rows. The returns of critic-free runs are the rewards' sums to go (for the record). */
static void px_ppo_advantages(px_ppo *s, int64_t lo, int64_t hi, double *adv_mean,
                              double *adv_std) {
  const int R = s->R;
  const px_config *cfg = s->cfg;
  size_t n = (size_t)(hi - lo), off = (size_t)lo * R;
  int64_t *lens = px_malloc((n + 1) * sizeof *lens);
  for (size_t i = 0; i < n; i++)
    lens[i] = s->dropped[lo + (int64_t)i] ? 0 : s->rlen[lo + (int64_t)i];
  px_rl_mask_from_lengths(s->mask + off, lens, n, (size_t)R);
  free(lens);
  px_rl_kl(s->kl + off, s->lp_old + off, s->lp_ref + off, s->mask + off, n * R,
           !strcmp(cfg->ppo_kl_estimator, "k3") ? PX_RL_KL_K3 : PX_RL_KL_K1,
           (float)cfg->ppo_kl_clamp);
  px_rl_shape_rewards(s->rewards + off, s->kl + off, s->score + lo, s->eos + lo,
                      (float)cfg->ppo_no_eos_penalty, s->mask + off, n, (size_t)R,
                      s->kl_loss ? 0.0f : (float)s->beta);
  float *adv = s->adv + off, *ret = s->ret + off;
  const float *rew = s->rewards + off;
  const uint8_t *mask = s->mask + off;
  if (s->estimator == PX_EST_GAE) {
    px_rl_gae(adv, ret, rew, s->values + off, mask, n, (size_t)R, (float)cfg->ppo_gamma,
              (float)cfg->ppo_lambda);
  } else {
    px_rl_returns(ret, rew, mask, n, (size_t)R, (float)cfg->ppo_gamma);
    if (s->estimator == PX_EST_REINFORCE_PP) memcpy(adv, ret, n * R * sizeof *adv);
  }
  if (s->estimator == PX_EST_GRPO || s->estimator == PX_EST_RLOO) {
    double *seq = px_malloc((n + 1) * sizeof *seq); /* each response's sequence reward */
    px_rl_row_sums(seq, rew, mask, n, (size_t)R);
    if (s->estimator == PX_EST_GRPO)
      px_rl_grpo_advantages(adv, seq, mask, n, (size_t)R, (size_t)s->K, cfg->ppo_grpo_scale_std,
                            PX_PPO_GROUP_EPS);
    else
      px_rl_rloo_advantages(adv, seq, mask, n, (size_t)R, (size_t)s->K);
    free(seq);
    *adv_mean = 0, *adv_std = 1;
  } else {
    double moments[3];
    px_rl_moments(moments, adv, mask, n * R);
    px_comm_allreduce_sum_f64(moments, 3); /* the one allreduce of the global statistics */
    px_rl_moments_mean_std(moments, PX_PPO_WHITEN_EPS, adv_mean, adv_std);
    px_rl_whiten(adv, adv, mask, n * R, *adv_mean, *adv_std, cfg->ppo_whiten_shift);
  }
  /* Every rank now takes every row, so minibatches do not depend on the rank count. */
  px_ppo_gather(s, s->seq, (size_t)s->T * sizeof *s->seq);
  px_ppo_gather(s, s->plen, sizeof *s->plen);
  px_ppo_gather(s, s->rlen, sizeof *s->rlen);
  px_ppo_gather(s, s->eos, 1);
  px_ppo_gather(s, s->gold, 1);
  px_ppo_gather(s, s->dropped, 1);
  px_ppo_gather(s, s->score, sizeof(float));
  px_ppo_gather(s, s->raw, sizeof(float));
  px_ppo_gather(s, s->mask, (size_t)R);
  float *rows[] = {s->lp_old, s->lp_ref, s->values, s->kl, s->rewards, s->adv, s->ret};
  for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
    px_ppo_gather(s, rows[k], (size_t)R * sizeof(float));
}

/* Step 4: E epochs of minibatches over the kept (not dropped) rollouts; sums for the metrics.
 * PX_ERUN when either model has skipped run.max_nonfinite optimizer steps in a row (the update
 * stops there). */
typedef struct px_ppo_stats {
  double adv_mean, adv_std; /* the whitening's global moments (step 3) */
  double policy_loss, value_loss, tokens;
  px_rl_ppo_sums psums, vsums;
  double first_max_ratio_dev, first_approx_kl;
  int64_t updates;
} px_ppo_stats;

static px_status px_ppo_update(px_ppo *s, int64_t it, px_ppo_stats *stats, px_error *err) {
  const px_config *cfg = s->cfg;
  const int R = s->R, M = (int)cfg->ppo_minibatch;
  int64_t *perm = px_malloc((size_t)s->B * sizeof *perm);
  float *lp = px_malloc((size_t)M * R * sizeof *lp), *dlp = px_malloc((size_t)M * R * sizeof *dlp);
  float *old = px_malloc((size_t)M * R * sizeof *old),
        *adv = px_malloc((size_t)M * R * sizeof *adv);
  float *vv = px_malloc((size_t)M * R * sizeof *vv), *dv = px_malloc((size_t)M * R * sizeof *dv);
  float *vold = px_malloc((size_t)M * R * sizeof *vold),
        *ret = px_malloc((size_t)M * R * sizeof *ret);
  uint8_t *mask = px_malloc((size_t)M * R);
  float *ref = s->kl_loss ? px_malloc((size_t)M * R * sizeof *ref) : NULL;
  const int critic = s->estimator == PX_EST_GAE;
  /* *stats comes zeroed but for the advantages' moments */
  px_status status = PX_OK;
  for (int64_t epoch = 0; epoch < cfg->ppo_epochs && status == PX_OK; epoch++) {
    px_shuffle(perm, s->B, (uint64_t)cfg->run_seed, 0x50000000u | (uint32_t)it, (uint32_t)epoch);
    int B = 0; /* the kept rollouts, in the permutation's order */
    for (int i = 0; i < s->B; i++)
      if (!s->dropped[perm[i]]) perm[B++] = perm[i];
    for (int start = 0; start < B && status == PX_OK; start += M) {
      int m = B - start < M ? B - start : M;
      int64_t lo, hi;
      px_comm_share(m, px_comm_rank(), px_comm_size(), &lo, &hi);
      const int64_t *mine = perm + start + lo;
      int64_t k = hi - lo;
      double norm = 0; /* the minibatch's response tokens, over all ranks */
      for (int r = 0; r < m; r++) norm += s->rlen[perm[start + r]];
      for (int64_t r = 0; r < k; r++) {
        size_t src = (size_t)mine[r] * R, dst = (size_t)r * R;
        memcpy(old + dst, s->lp_old + src, (size_t)R * sizeof *old);
        memcpy(adv + dst, s->adv + src, (size_t)R * sizeof *adv);
        if (critic) { /* what the value loss reads */
          memcpy(vold + dst, s->values + src, (size_t)R * sizeof *vold);
          memcpy(ret + dst, s->ret + src, (size_t)R * sizeof *ret);
        }
        memcpy(mask + dst, s->mask + src, (size_t)R);
        if (ref) memcpy(ref + dst, s->lp_ref + src, (size_t)R * sizeof *ref);
      }
      size_t nk = (size_t)k * R;
      /* the policy: forward for the new log-probs, the clipped surrogate, backward */
      px_trainer_begin(&s->policy_tr, m);
      px_ppo_pass(s, &s->policy, mine, k, lp, NULL, NULL);
      px_rl_ppo_sums ps = {0, 0, 0}, vs = {0, 0, 0};
      double sums[8] = {0};
      sums[0] = px_rl_policy_loss(dlp, &ps, lp, old, adv, mask, nk, (float)cfg->ppo_clip, norm);
      if (ref) /* ppo.kl_in = loss: beta k3(pi || pi_base) joins the loss and its gradient */
        sums[0] += px_rl_kl_loss(dlp, NULL, lp, ref, mask, nk, (float)s->beta,
                                 (float)cfg->ppo_kl_clamp, norm);
      if (start == 0 && epoch == 0) { /* the ratio before any update of this iteration */
        double dev = 0;
        for (size_t j = 0; j < nk; j++)
          if (mask[j]) dev = fmax(dev, fabs(exp((double)lp[j] - old[j]) - 1));
        sums[6] = dev; /* summed over the ranks below: an upper bound of the largest */
      }
      px_ppo_pass(s, &s->policy, mine, k, lp, dlp, &s->policy_tr);
      if (critic) { /* the value model: forward, the clipped value loss, backward */
        px_trainer_begin(&s->value_tr, m);
        px_ppo_pass(s, &s->value, mine, k, vv, NULL, NULL);
        float eps_v = cfg->ppo_value_clip > 0 ? (float)cfg->ppo_value_clip : INFINITY;
        sums[1] = px_rl_value_loss(dv, &vs, vv, vold, ret, mask, nk, eps_v, norm);
        px_ppo_pass(s, &s->value, mine, k, vv, dv, &s->value_tr);
      }
      sums[2] = ps.count, sums[3] = ps.clipped, sums[4] = ps.approx_kl, sums[5] = vs.clipped;
      px_comm_allreduce_sum_f64(sums, 8);
      double lr;
      int64_t pstep = s->policy_tr.applied + s->policy_tr.skipped;
      int64_t vstep = s->value_tr.applied + s->value_tr.skipped;
      px_trainer_step(&s->policy_tr, pstep, sums[0], &lr);
      if (critic) px_trainer_step(&s->value_tr, vstep, sums[1], &lr);
      status = px_trainer_guard(&s->policy_tr, pstep, err);
      if (status == PX_OK && critic) status = px_trainer_guard(&s->value_tr, vstep, err);
      stats->policy_loss += sums[0], stats->value_loss += sums[1], stats->tokens += sums[2];
      stats->psums.clipped += sums[3], stats->psums.approx_kl += sums[4],
          stats->vsums.clipped += sums[5];
      if (start == 0 && epoch == 0) {
        stats->first_max_ratio_dev = sums[6];
        stats->first_approx_kl = sums[4] / (sums[2] > 0 ? sums[2] : 1);
      }
      stats->updates++;
    }
  }
  free(perm), free(lp), free(dlp), free(old), free(adv), free(vv), free(dv), free(vold);
  free(ret), free(mask), free(ref);
  return status;
}

/* sum / n for a metric over the kept rollouts; NaN (null in metrics.jsonl) when none was kept. */
static double px_ppo_mean(double sum, double n) { return n > 0 ? sum / n : NAN; }

/* Gold exact-match accuracy of sampled answers on the held-out prompts (split over ranks), into
 * *accuracy (NaN without held-out prompts with references). A generation that fails on any rank
 * fails it on every rank, with that rank's message. Collective. */
static px_status px_ppo_eval_gold(px_ppo *s, double *accuracy, px_error *err) {
  const px_dataset *ev = &s->eval;
  *accuracy = NAN;
  if (ev->n == 0 || ev->n_fields < 2) return PX_OK;
  int64_t lo, hi;
  px_comm_share(ev->n, px_comm_rank(), px_comm_size(), &lo, &hi);
  int64_t n = hi - lo;
  px_prompts pr;
  px_prompts_pack(&pr, ev, &s->tok, NULL, lo, n, s->T);
  px_generation g = {0};
  double right = 0;
  px_status st = px_generate(&s->gen, pr.tokens, pr.offsets, n, PX_PPO_EVAL_ITERATION, lo, &g, err);
  for (int64_t i = 0; st == PX_OK && i < n; i++)
    right += px_dataset_is_reference(ev, lo + i, g.tokens + (size_t)i * g.max_new, g.lengths[i],
                                     g.eos[i]);
  px_generation_free(&g);
  px_prompts_free(&pr);
  if ((st = px_comm_agree(st, err)) != PX_OK) {
    px_error inner = *err;
    return px_error_set(err, st, "ppo: held-out evaluation on %s: %s", s->cfg->ppo_eval_prompts,
                        inner.msg);
  }
  px_comm_allreduce_sum_f64(&right, 1);
  *accuracy = right / (double)ev->n;
  return PX_OK;
}

/* The iteration's rollout buffer, DIR/rollouts-<iteration>.h5: every rank passes its own rows and
 * rank 0 writes the file (io/rollout.c); a dropped row is there with response length 0 (its mask
 * is 0). Collective. */
static px_status px_ppo_write_rollouts(const px_ppo *s, const char *dir, int64_t it, double beta,
                                       double adv_mean, double adv_std, px_error *err) {
  const px_config *cfg = s->cfg;
  int64_t lo, hi;
  px_ppo_share(s, &lo, &hi);
  int P = 1, R = s->R;
  for (int i = 0; i < s->B; i++) P = s->plen[i] > P ? s->plen[i] : P;
  int64_t n = hi - lo;
  int32_t *tokens = px_malloc((size_t)(n > 0 ? n : 1) * (size_t)(P + R) * sizeof *tokens);
  int32_t *rlen = px_malloc((size_t)(n > 0 ? n : 1) * sizeof *rlen);
  for (int64_t i = 0; i < n; i++) { /* prompt padded to P, then the response padded to R */
    const int32_t *seq = s->seq + (size_t)(lo + i) * s->T;
    int32_t *row = tokens + (size_t)i * (P + R);
    int pl = s->plen[lo + i], rl = rlen[i] = s->dropped[lo + i] ? 0 : s->rlen[lo + i];
    for (int t = 0; t < P; t++) row[t] = t < pl ? seq[t] : s->tok.pad;
    for (int t = 0; t < R; t++) row[P + t] = t < rl ? seq[pl + t] : s->tok.pad;
  }
  size_t off = (size_t)lo * R;
  px_rollout rows = {.n = n,
                     .first = lo,
                     .n_global = s->B,
                     .P = P,
                     .R = R,
                     .tokens = tokens,
                     .prompt_len = s->plen + lo,
                     .response_len = rlen,
                     .logprobs = s->lp_old + off,
                     .ref_logprobs = s->lp_ref + off,
                     .values = s->values + off,
                     .rewards = s->rewards + off,
                     .advantages = s->adv + off,
                     .returns = s->ret + off,
                     .mask = s->mask + off,
                     .score = s->score + lo};
  px_rollout_attrs attrs = {.iteration = it + 1,
                            .beta = beta,
                            .gamma = cfg->ppo_gamma,
                            .lambda = cfg->ppo_lambda,
                            .kl_kind =
                                !strcmp(cfg->ppo_kl_estimator, "k3") ? PX_RL_KL_K3 : PX_RL_KL_K1,
                            .whiten_shift_mean = cfg->ppo_whiten_shift,
                            .kl_clamp = cfg->ppo_kl_clamp,
                            .no_eos_penalty = cfg->ppo_no_eos_penalty,
                            .whiten_mean = adv_mean,
                            .whiten_std = adv_std,
                            .whiten_eps = PX_PPO_WHITEN_EPS,
                            .pad_id = s->tok.pad,
                            .bos_id = s->tok.bos,
                            .eos_id = s->tok.eos,
                            .estimator = (int)s->estimator,
                            .group_size = s->K,
                            .grpo_scale_std = cfg->ppo_grpo_scale_std,
                            .group_eps = PX_PPO_GROUP_EPS,
                            .kl_in_loss = s->kl_loss};
  char path[4300];
  snprintf(path, sizeof path, "%s/rollouts-%08lld.h5", dir, (long long)it + 1);
  px_status st = px_rollout_write(path, PX_IO_EVERY_RANK, &rows, &attrs, err);
  free(tokens), free(rlen);
  return st;
}

/* The metrics of an iteration, in the order of their keys in metrics.jsonl (and timings.jsonl). */
enum {
  PPO_SCORE,
  PPO_RAW_SCORE,
  PPO_KL,
  PPO_BETA,
  PPO_ENTROPY,
  PPO_CLIP,
  PPO_APPROX_KL,
  PPO_POLICY_LOSS,
  PPO_VALUE_LOSS,
  PPO_VALUE_CLIP,
  PPO_EXPLAINED_VAR,
  PPO_LENGTH,
  PPO_EOS_RATE,
  PPO_GOLD,
  PPO_FIRST_RATIO_DEV,
  PPO_FIRST_APPROX_KL,
  PPO_ADV_MEAN,
  PPO_ADV_STD,
  PPO_NONFINITE_ROLLOUTS,
  PPO_NONFINITE_STEPS,
  PPO_EVAL_GOLD,
  PPO_T_GENERATE,
  PPO_T_SCORE,
  PPO_T_TRAIN,
  PPO_T_COMM,
  PPO_T_ALL,
  PPO_GEN_RATE,
  PPO_N
};
#define PX_PPO_TIMING(name_, label_)                                                               \
  { .name = (name_), .label = (label_), .format = "%.1fs", .flags = PX_METRIC_TIMING }
static const px_metric px_ppo_metrics[PPO_N] = {
    [PPO_SCORE] = {.name = "score",
                   .label = "score",
                   .format = "%.3f",
                   .plot = "ppo_reward",
                   .curve = "normalised score"},
    [PPO_RAW_SCORE] = {.name = "raw_score",
                       .flags = PX_METRIC_RIGHT,
                       .plot = "ppo_reward",
                       .curve = "raw reward-model score"},
    [PPO_KL] = {.name = "kl",
                .label = "kl",
                .format = "%.3f",
                .plot = "ppo_kl_beta",
                .curve = "mean KL per response"},
    [PPO_BETA] = {.name = "beta",
                  .label = "beta",
                  .format = "%.3g",
                  .flags = PX_METRIC_RIGHT,
                  .plot = "ppo_kl_beta",
                  .curve = "beta"},
    [PPO_ENTROPY] = {.name = "entropy"},
    [PPO_CLIP] = {.name = "clip_fraction",
                  .label = "clip",
                  .format = "%.3f",
                  .plot = "ppo_clip",
                  .curve = "policy clip fraction"},
    [PPO_APPROX_KL] = {.name = "approx_kl",
                       .flags = PX_METRIC_RIGHT,
                       .plot = "ppo_clip",
                       .curve = "approximate KL"},
    [PPO_POLICY_LOSS] = {.name = "policy_loss",
                         .plot = "ppo_losses",
                         .curve = "policy loss (clipped surrogate)"},
    [PPO_VALUE_LOSS] = {.name = "value_loss",
                        .label = "vloss",
                        .format = "%.4f",
                        .flags = PX_METRIC_RIGHT,
                        .plot = "ppo_losses",
                        .curve = "value loss (clipped)"},
    [PPO_VALUE_CLIP] = {.name = "value_clip_fraction",
                        .plot = "ppo_clip",
                        .curve = "value clip fraction"},
    [PPO_EXPLAINED_VAR] = {.name = "explained_variance"},
    [PPO_LENGTH] = {.name = "response_length", .label = "len", .format = "%.1f"},
    [PPO_EOS_RATE] = {.name = "eos_rate"},
    [PPO_GOLD] = {.name = "gold_accuracy",
                  .label = "gold",
                  .format = "%.3f",
                  .plot = "ppo_gold_accuracy",
                  .curve = "training prompts (this iteration)"},
    [PPO_FIRST_RATIO_DEV] = {.name = "first_ratio_max_dev"},
    [PPO_FIRST_APPROX_KL] = {.name = "first_approx_kl"},
    [PPO_ADV_MEAN] = {.name = "adv_mean"},
    [PPO_ADV_STD] = {.name = "adv_std"},
    [PPO_NONFINITE_ROLLOUTS] = {.name = "nonfinite_rollouts"},
    [PPO_NONFINITE_STEPS] = {.name = "nonfinite_steps"},
    [PPO_EVAL_GOLD] = {.name = "eval_gold_accuracy",
                       .label = "eval gold",
                       .format = "%.3f",
                       .flags = PX_METRIC_EVAL,
                       .plot = "ppo_gold_accuracy",
                       .curve = "held-out prompts"},
    [PPO_T_GENERATE] = PX_PPO_TIMING("seconds_generate", "gen"),
    [PPO_T_SCORE] = PX_PPO_TIMING("seconds_score", "scoring"),
    [PPO_T_TRAIN] = PX_PPO_TIMING("seconds_train", "train"),
    [PPO_T_COMM] = PX_PPO_TIMING("seconds_comm", NULL),
    [PPO_T_ALL] = PX_PPO_TIMING("seconds", "took"),
    [PPO_GEN_RATE] = {.name = "generated_tokens_per_s",
                      .flags = PX_METRIC_TIMING,
                      .plot = "ppo_generation_throughput",
                      .curve = "response tokens/s"},
};
static const px_plot px_ppo_plots[] = {
    {"ppo_reward", "Reward of the sampled responses", "normalised score"},
    {"ppo_kl_beta", "KL to pi_base and the KL coefficient", "mean KL per response"},
    {"ppo_gold_accuracy", "Gold exact-match accuracy of sampled answers", "gold accuracy"},
    {"ppo_losses", "PPO losses", "policy loss"},
    {"ppo_clip", "Clipping and approximate KL of the updates", "fraction"},
    {"ppo_generation_throughput", "PPO generation throughput (all ranks)", "tokens/s"},
};
const px_stage_table px_ppo_table = {
    "ppo", "iteration",  px_ppo_metrics,
    PPO_N, px_ppo_plots, (int)(sizeof px_ppo_plots / sizeof px_ppo_plots[0])};

/* The iteration's metrics over the kept rollouts (every rank holds every rollout, so these need
 * no reduction), and beta adapted to the iteration's KL when ppo.adaptive_kl. */
static void px_ppo_metrics_of(px_stage *sg, px_ppo *s, const px_ppo_stats *ps, int dropped) {
  const px_config *cfg = s->cfg;
  double kl_sum = 0, score_sum = 0, raw_sum = 0, raw_n = 0, len_sum = 0, eos_n = 0, gold_n = 0;
  double ent = 0, tok = 0, ev[5], kept = s->B - dropped;
  const int critic = s->estimator == PX_EST_GAE; /* the value metrics: n/a without a critic */
  for (int i = 0; i < s->B; i++) {
    if (s->dropped[i]) continue;
    for (int j = 0; j < s->rlen[i]; j++) {
      kl_sum += s->kl[(size_t)i * s->R + j];
      ent -= s->lp_old[(size_t)i * s->R + j];
      tok += 1;
    }
    score_sum += s->score[i], len_sum += s->rlen[i], eos_n += s->eos[i], gold_n += s->gold[i];
    if (s->eos[i]) raw_sum += s->raw[i], raw_n += 1;
  }
  px_rl_explained_variance_sums(ev, s->values, s->ret, s->mask, (size_t)s->B * s->R);
  double kl = px_ppo_mean(kl_sum, kept);
  if (cfg->ppo_adaptive_kl && kept > 0)
    s->beta = px_rl_adaptive_beta(s->beta, kl, cfg->ppo_kl_target, kept, cfg->ppo_kl_horizon);
  double upd = ps->updates > 0 ? (double)ps->updates : 1, toks = ps->tokens > 0 ? ps->tokens : 1;
  const double values[PPO_EVAL_GOLD] = {
      [PPO_SCORE] = px_ppo_mean(score_sum, kept),
      [PPO_RAW_SCORE] = raw_n > 0 ? raw_sum / raw_n : NAN,
      [PPO_KL] = kl,
      [PPO_BETA] = s->beta,
      [PPO_ENTROPY] = ent / (tok > 0 ? tok : 1),
      [PPO_CLIP] = ps->psums.clipped / toks,
      [PPO_APPROX_KL] = ps->psums.approx_kl / toks,
      [PPO_POLICY_LOSS] = ps->policy_loss / upd,
      [PPO_VALUE_LOSS] = critic ? ps->value_loss / upd : NAN,
      [PPO_VALUE_CLIP] = critic ? ps->vsums.clipped / toks : NAN,
      [PPO_EXPLAINED_VAR] = critic ? px_rl_explained_variance(ev) : NAN,
      [PPO_LENGTH] = px_ppo_mean(len_sum, kept),
      [PPO_EOS_RATE] = px_ppo_mean(eos_n, kept),
      [PPO_GOLD] =
          s->prompts.n_fields >= 2 ? px_ppo_mean(gold_n, kept) : NAN, /* no references: n/a */
      [PPO_FIRST_RATIO_DEV] = ps->first_max_ratio_dev,
      [PPO_FIRST_APPROX_KL] = ps->first_approx_kl,
      [PPO_ADV_MEAN] = ps->adv_mean,
      [PPO_ADV_STD] = ps->adv_std,
      [PPO_NONFINITE_ROLLOUTS] = dropped,
      [PPO_NONFINITE_STEPS] = (double)(s->policy_tr.skipped + s->value_tr.skipped)};
  for (int k = 0; k < PPO_EVAL_GOLD; k++) px_stage_set(sg, k, values[k], 1);
}

/* The rollouts dropped this iteration, warned about; PX_ERUN when every rollout has been dropped
 * in run.max_nonfinite iterations in a row. */
static px_status px_ppo_guard(px_ppo *s, int64_t it, int *dropped, px_error *err) {
  const px_config *cfg = s->cfg;
  *dropped = 0;
  for (int i = 0; i < s->B; i++) *dropped += s->dropped[i];
  if (*dropped > 0)
    px_log_warn("ppo it %lld: %d of %d rollouts had a non-finite log-prob, value or reward; "
                "left out of the update",
                (long long)it + 1, *dropped, s->B);
  s->bad_in_a_row = *dropped == s->B ? s->bad_in_a_row + 1 : 0;
  if (cfg->run_max_nonfinite <= 0 || s->bad_in_a_row < cfg->run_max_nonfinite) return PX_OK;
  return px_error_set(err, PX_ERUN,
                      "ppo: every rollout had a non-finite log-prob, value or reward in %lld "
                      "iterations in a row, iterations %lld to %lld (run.max_nonfinite = %lld): "
                      "stopped without writing a checkpoint of this state; LATEST still names "
                      "the last good checkpoint. Check the reward model (ppo.reward) and the "
                      "policy, then continue with --resume auto",
                      (long long)s->bad_in_a_row, (long long)(it + 2 - s->bad_in_a_row),
                      (long long)it + 1, (long long)cfg->run_max_nonfinite);
}

/* One iteration of the loop in the file comment. */
static px_status px_ppo_iteration(px_stage *sg, void *ctx, int64_t it, px_error *err) {
  px_ppo *s = ctx;
  const px_config *cfg = s->cfg;
  double t_it = px_log_elapsed(), t_gen = 0, t_score = 0, comm0 = px_comm_seconds();
  px_ppo_stats ps = {0};
  int64_t lo, hi;
  px_ppo_share(s, &lo, &hi);
  /* 1, 2: generate with pi_theta and score */
  PX_TRY(px_comm_agree(px_ppo_collect(s, it, s->state.prompt_cursor, lo, hi, &t_gen, &t_score, err),
                       err));
  /* 3: the shaped reward, the advantages */
  double t0 = px_log_elapsed();
  px_ppo_advantages(s, lo, hi, &ps.adv_mean, &ps.adv_std);
  if (cfg->ppo_rollout_every > 0 && (it + 1) % cfg->ppo_rollout_every == 0)
    PX_TRY(
        px_ppo_write_rollouts(s, sg->run.rollout_dir, it, s->beta, ps.adv_mean, ps.adv_std, err));
  int dropped;
  PX_TRY(px_ppo_guard(s, it, &dropped, err));
  /* 4: update theta and psi */
  px_status st = px_ppo_update(s, it, &ps, err);
  if (st != PX_OK) {
    px_error inner = *err;
    return px_error_set(err, st, "ppo iteration %lld: %s", (long long)it + 1, inner.msg);
  }
  double t_train = px_log_elapsed() - t0;
  px_ppo_metrics_of(sg, s, &ps, dropped);
  int last = it + 1 == cfg->ppo_iterations;
  if (cfg->ppo_eval_every > 0 && ((it + 1) % cfg->ppo_eval_every == 0 || last)) {
    double gold;
    PX_TRY(px_ppo_eval_gold(s, &gold, err));
    px_stage_set(sg, PPO_EVAL_GOLD, gold, 1);
  }
  double generated = 0; /* response tokens of the iteration, over all ranks */
  for (int i = 0; i < s->B; i++) generated += s->rlen[i];
  px_stage_set(sg, PPO_T_GENERATE, t_gen, 1);
  px_stage_set(sg, PPO_T_SCORE, t_score, 1);
  px_stage_set(sg, PPO_T_TRAIN, t_train, 1);
  px_stage_set(sg, PPO_T_COMM, px_comm_seconds() - comm0, 1);
  px_stage_set(sg, PPO_T_ALL, px_log_elapsed() - t_it, 1);
  px_stage_set(sg, PPO_GEN_RATE, generated, t_gen > 0 ? t_gen : 1e-9);
  if (px_stage_get(sg, PPO_KL) > cfg->ppo_kl_bound)
    px_log_warn("ppo it %lld: mean KL to pi_base %.3f is over ppo.kl_bound %.3f", (long long)it + 1,
                px_stage_get(sg, PPO_KL), cfg->ppo_kl_bound);
  /* 5: what a checkpoint after this iteration holds; then collect again */
  px_ppo_state *state = &s->state;
  state->iteration = it + 1, state->prompt_cursor += s->P, state->beta = s->beta;
  state->policy_adam_applied = s->policy_tr.applied;
  state->policy_adam_skipped = s->policy_tr.skipped;
  state->value_adam_applied = s->value_tr.applied, state->value_adam_skipped = s->value_tr.skipped;
  sg->models[0].optim_step = s->policy_tr.applied, sg->models[1].optim_step = s->value_tr.applied;
  return PX_OK;
}

px_status px_ppo_run(const px_config *cfg, px_error *err) {
  px_ppo s = {.cfg = cfg,
              .state = {.seed = cfg->run_seed, .beta = cfg->ppo_beta, .base_gold = NAN}};
  px_ckpt_model models[4] = {{.group = "policy", .model = &s.policy, .optim = 1},
                             {.group = "value", .model = &s.value, .optim = 1},
                             {.group = "reference", .model = &s.reference},
                             {.group = "reward", .model = &s.reward}};
  const px_ckpt_var vars[] = {PX_PPO_STATE(PX_CKPT_VAR, &s.state)};
  px_stage sg = {.cfg = cfg,
                 .table = &px_ppo_table,
                 .batch_key = "ppo.batch_size",
                 .batch = cfg->ppo_batch_size,
                 .steps = cfg->ppo_iterations,
                 .log_every = 1,
                 .checkpoint_every = cfg->ppo_checkpoint_every,
                 .last_checkpoint = 1,
                 .tokenizer = &s.tok,
                 .models = models,
                 .n_models = 4,
                 .n_restored = 2, /* the moments; the models come with px_ppo_setup */
                 PX_STAGE_STATE(vars, s.state, iteration)};
  PX_TRY(px_stage_open(&sg, err));
  px_status st = px_comm_agree(px_ppo_setup(&s, sg.resume, err), err);
  if (st == PX_OK) {
    px_ppo_alloc(&s);
    models[3].gain = s.gain, models[3].bias = s.bias;
    st = px_stage_restore(&sg, err);
  }
  if (st == PX_OK) {
    s.beta = s.state.beta;
    s.policy_tr.applied = s.state.policy_adam_applied;
    s.policy_tr.skipped = s.state.policy_adam_skipped;
    s.value_tr.applied = s.state.value_adam_applied;
    s.value_tr.skipped = s.state.value_adam_skipped;
    px_log_info("ppo: %lld prompts, %d per iteration x %d responses, %lld iterations; policy %d x "
                "%d; sequences of up to %d positions (of max_seq_len %d); estimator %s, KL in "
                "the %s, beta %.4g",
                (long long)s.prompts.n, s.P, s.K, (long long)cfg->ppo_iterations,
                s.policy.config.n_layer, s.policy.config.n_embd, s.T, s.policy.config.max_seq_len,
                cfg->ppo_estimator, s.kl_loss ? "loss" : "reward", s.beta);
  }
  if (st == PX_OK && s.eval.n > 0 && !sg.resume[0]) { /* pi_base's held-out accuracy */
    st = px_ppo_eval_gold(&s, &s.state.base_gold, err);
    if (st == PX_OK) {
      if (isnan(s.state.base_gold))
        px_log_info("ppo: held-out gold accuracy of pi_base: n/a (%s has no reference answers)",
                    cfg->ppo_eval_prompts);
      else
        px_log_info("ppo: held-out gold accuracy of pi_base (sampled): %.3f", s.state.base_gold);
      const char *names[] = {"eval_gold_accuracy"};
      px_run_metrics(&sg.run, "ppo_eval", 0, 1, names, &s.state.base_gold);
    }
  }
  if (st == PX_OK) st = px_stage_loop(&sg, px_ppo_iteration, &s, err);
  if (st == PX_OK) {
    char took[32];
    px_log_info("ppo: done in %s; checkpoint %s/ckpt-%08lld.h5",
                px_log_duration(took, sizeof took, px_log_elapsed() - sg.t_start), sg.run.ckpt_dir,
                (long long)cfg->ppo_iterations);
  }
  px_ppo_free(&s);
  px_stage_close(&sg);
  return st;
}
