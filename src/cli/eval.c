/*
 * eval.c — `proxima eval --policy` (cli.h): each rank answers its contiguous share of the
 * prompts with the tuned policy and pi_base, sampled and greedy, scores the sampled answers
 * with the reward model and the tuned answers' log-probs under both policies (teacher-forced,
 * the kernels PPO scores with); the sums are allreduced and rank 0 prints and writes the JSON.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/batch.h"
#include "proxima/checkpoint.h"
#include "proxima/cli.h"
#include "proxima/comm.h"
#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/generate.h"
#include "proxima/log.h"
#include "proxima/ppo.h"
#include "proxima/rm.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

/* One policy's answers to this rank's prompts, sampled and greedy. */
typedef struct px_answers {
  px_generation sampled, greedy;
  double gold_sampled, gold_greedy, reward_sum; /* this rank's sums */
} px_answers;

/* Sampled and greedy answers of model to prompts [lo, lo + n) (tokens/offsets: BOS prompt),
 * their gold counts and, with a reward model, the sum of the sampled answers' scores. */
static px_status px_eval_answer(const px_config *cfg, const px_tokenizer *tok, px_gpt *model,
                                px_gpt *reward, float gain, float bias, const px_dataset *ds,
                                const int32_t *tokens, const int64_t *offsets, int64_t lo,
                                int64_t n, int max_new, px_answers *a, px_error *err) {
  memset(a, 0, sizeof *a);
  for (int greedy = 0; greedy < 2; greedy++) {
    px_sampler_config sc = px_sample_config(cfg);
    if (greedy) sc.greedy = 1, sc.temperature = 0;
    px_generator gen;
    px_generator_build(&gen, model, tok, &sc, (uint64_t)cfg->run_seed, (int)cfg->sample_batch,
                       max_new, 0);
    px_generation *g = greedy ? &a->greedy : &a->sampled;
    px_status st = px_generate(&gen, tokens, offsets, n, PX_PPO_EVAL_ITERATION, lo, g, err);
    px_generator_free(&gen);
    PX_TRY(st);
    double *gold = greedy ? &a->gold_greedy : &a->gold_sampled;
    for (int64_t i = 0; i < n; i++)
      *gold += px_dataset_is_reference(ds, lo + i, g->tokens + (size_t)i * g->max_new,
                                       g->lengths[i], g->eos[i]);
  }
  if (!reward) return PX_OK;
  const px_generation *g = &a->sampled;
  for (int64_t i = 0; i < n; i++) {
    if (!g->eos[i]) {
      a->reward_sum += cfg->ppo_no_eos_penalty;
      continue;
    }
    const int32_t *p = tokens + offsets[i] + 1, *r = g->tokens + (size_t)i * g->max_new;
    int64_t pl = offsets[i + 1] - offsets[i] - 1, rl = g->lengths[i] - 1;
    float score;
    px_rm_score(reward, tok, gain, bias, &p, &pl, &r, &rl, 1, &score);
    a->reward_sum += score;
  }
  return PX_OK;
}

/* Sum over responses of sum_t log pi_model(y_t | ...) at temperature T, teacher-forced, into
 * lp[i] for each of the n generated responses. */
static void px_eval_logprobs(px_gpt *model, const px_tokenizer *tok, const int32_t *tokens,
                             const int64_t *offsets, const px_generation *g, float temperature,
                             double *lp) {
  const int T = model->config.max_seq_len, mb = model->max_B;
  px_batch b;
  px_batch_build(&b, tok, mb, T);
  int32_t *seq = px_malloc((size_t)T * sizeof *seq);
  float *out = px_malloc((size_t)mb * T * sizeof *out);
  for (int64_t start = 0; start < g->n; start += mb) {
    int rows = (int)(g->n - start < mb ? g->n - start : mb);
    px_batch_clear(&b);
    for (int r = 0; r < rows; r++) {
      int64_t i = start + r;
      int P = (int)(offsets[i + 1] - offsets[i]), L = g->lengths[i];
      memcpy(seq, tokens + offsets[i], (size_t)P * sizeof *seq);
      memcpy(seq + P, g->tokens + (size_t)i * g->max_new, (size_t)L * sizeof *seq);
      px_batch_add_response(&b, seq, P, L);
    }
    px_batch_pack(&b);
    px_gpt_forward(model, b.tokens, b.lengths, b.B, b.T);
    px_gpt_logprobs(model, out, b.targets, temperature);
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int t = 0; t < b.T; t++)
        if (b.targets[(size_t)r * b.T + t] >= 0) sum += out[(size_t)r * b.T + t];
      lp[start + r] = sum;
    }
  }
  free(out), free(seq);
  px_batch_free(&b);
}

/* The text n tokens decode to as printable text (px_text_printable) into buf of cap bytes, cut
 * at a character boundary when it does not fit. */
static void px_eval_printable(const px_tokenizer *tok, const int32_t *tokens, int64_t n, char *buf,
                              size_t cap) {
  px_text bytes = {0}, t = {0};
  px_tokenizer_decode(tok, &bytes, tokens, (size_t)n);
  px_text_printable(&t, bytes.p, bytes.n);
  size_t len = t.n < cap - 1 ? t.n : cap - 1;
  while (len > 0 && len < t.n && ((unsigned char)t.p[len] & 0xC0) == 0x80) len--;
  memcpy(buf, t.p, len);
  buf[len] = '\0';
  px_text_free(&bytes);
  px_text_free(&t);
}

/* The text of a response (EOS dropped) into buf of n bytes. */
static void px_eval_text(const px_tokenizer *tok, const px_generation *g, int64_t i, char *buf,
                         size_t n) {
  int L = g->lengths[i] - (g->eos[i] ? 1 : 0);
  px_eval_printable(tok, g->tokens + (size_t)i * g->max_new, L, buf, n);
}

static json_t *px_eval_side(double gold_s, double gold_g, double reward, int has_ref,
                            int has_reward) {
  json_t *o = json_object();
  json_object_set_new(o, "gold_accuracy_sampled", has_ref ? json_real(gold_s) : json_null());
  json_object_set_new(o, "gold_accuracy_greedy", has_ref ? json_real(gold_g) : json_null());
  json_object_set_new(o, "mean_reward", has_reward ? json_real(reward) : json_null());
  return o;
}

/* What an evaluation reads: the checkpoints' paths, the models and the prompts. */
typedef struct px_eval {
  char path[4300], base_path[4300], reward_path[4300]; /* "": no pi_base, no reward model */
  px_gpt tuned, base, reward;
  float gain, bias; /* the reward model's normalisation */
  px_dataset ds;
  px_tokenizer tok; /* the policy's, which pi_base, the reward model and the prompts share */
} px_eval;

/* The tuned policy, pi_base (--base's policy group, else the policy checkpoint's reference
 * group, if any), the reward model (--reward, else the policy checkpoint's reward group, if any)
 * and the prompts. Not collective. */
static px_status px_eval_load(const px_config *cfg, const px_cli_eval_args *args, px_eval *e,
                              px_error *err) {
  const int mb = (int)cfg->sample_batch;
  px_gpt_config probe;
  px_error ignored;
  const char *base_group = "policy";
  e->gain = 1, e->bias = 0;
  PX_TRY(px_ckpt_resolve(args->policy, e->path, sizeof e->path, err));
  if (args->base) {
    PX_TRY(px_ckpt_resolve(args->base, e->base_path, sizeof e->base_path, err));
  } else if (px_ckpt_read_config(e->path, "reference", &probe, &ignored) == PX_OK) {
    snprintf(e->base_path, sizeof e->base_path, "%s", e->path);
    base_group = "reference";
  }
  if (args->reward)
    PX_TRY(px_ckpt_resolve(args->reward, e->reward_path, sizeof e->reward_path, err));
  else if (px_ckpt_read_config(e->path, "reward", &probe, &ignored) == PX_OK)
    snprintf(e->reward_path, sizeof e->reward_path, "%s", e->path);
  PX_TRY(px_ckpt_read_tokenizer(e->path, &e->tok, err));
  if (e->base_path[0])
    PX_TRY(px_ckpt_check_tokenizer(e->base_path, "pi_base", &e->tok, "the policy", err));
  if (e->reward_path[0])
    PX_TRY(px_ckpt_check_tokenizer(e->reward_path, "the reward model", &e->tok, "the policy", err));
  PX_TRY(px_ckpt_load(e->path, "policy", PX_GPT_HEAD_LM, mb, 0, 0, &e->tuned, NULL, NULL, err));
  if (e->base_path[0])
    PX_TRY(px_ckpt_load(e->base_path, base_group, PX_GPT_HEAD_LM, mb, 0, 0, &e->base, NULL, NULL,
                        err));
  if (e->reward_path[0])
    PX_TRY(px_rm_load_model(e->reward_path, &e->reward, mb, 0, &e->gain, &e->bias, err));
  PX_TRY(px_dataset_read(args->prompts, PX_IO_ALONE, 0, 1, PX_DATA_PROMPTS, &e->tok, &e->ds, err));
  if (e->ds.n == 0) return px_error_set(err, PX_EINPUT, "%s holds no prompts", args->prompts);
  return PX_OK;
}

static void px_eval_free(px_eval *e) {
  px_dataset_free(&e->ds);
  px_tokenizer_free(&e->tok);
  px_gpt *models[] = {&e->tuned, &e->base, &e->reward};
  for (int i = 0; i < 3; i++)
    if (models[i]->params) px_gpt_free(models[i]);
}

/* Rank 0's report: the table and the examples on stdout, the JSON document returned (the
 * caller frees it). sums: over all prompts, tuned gold sampled/greedy, reward; the same of
 * pi_base; KL. at, ab: rank 0's answers of the tuned policy and pi_base to its n prompts. */
static json_t *px_eval_report(const px_config *cfg, const px_cli_eval_args *args, const px_eval *e,
                              const double sums[7], const px_answers *at, const px_answers *ab,
                              int64_t n) {
  const double N = (double)e->ds.n;
  const int has_ref = e->ds.n_fields >= 2, has_base = e->base_path[0] != 0;
  const int has_rm = e->reward_path[0] != 0;
  json_t *o = json_object();
  json_object_set_new(o, "policy", json_string(e->path));
  json_object_set_new(o, "base", has_base ? json_string(e->base_path) : json_null());
  json_object_set_new(o, "reward", has_rm ? json_string(e->reward_path) : json_null());
  json_object_set_new(o, "prompts", json_string(args->prompts));
  json_object_set_new(o, "n_prompts", json_integer((json_int_t)e->ds.n));
  json_object_set_new(o, "temperature", json_real(px_sample_config(cfg).temperature));
  json_object_set_new(o, "tuned",
                      px_eval_side(sums[0] / N, sums[1] / N, sums[2] / N, has_ref, has_rm));
  json_object_set_new(o, "pi_base",
                      has_base
                          ? px_eval_side(sums[3] / N, sums[4] / N, sums[5] / N, has_ref, has_rm)
                          : json_null());
  json_object_set_new(o, "kl_to_base", has_base ? json_real(sums[6] / N) : json_null());
  printf("%-34s %12s %12s\n", "", "pi_base", "tuned");
  const char *rows[] = {"gold accuracy, sampled", "gold accuracy, greedy",
                        "mean normalised reward"};
  for (int r = 0; r < 3; r++) {
    int known = r < 2 ? has_ref : has_rm;
    char b[32] = "-",
         t[32] = "n/a"; /* "-": no pi_base given; n/a: no references, no reward model */
    if (!known && has_base) snprintf(b, sizeof b, "n/a");
    if (known && has_base) snprintf(b, sizeof b, "%.4f", sums[3 + r] / N);
    if (known) snprintf(t, sizeof t, "%.4f", sums[r] / N);
    printf("%-34s %12s %12s\n", rows[r], b, t);
  }
  if (has_base) printf("%-34s %12s %12.4f\n", "KL(tuned || pi_base) per answer", "", sums[6] / N);
  printf("(%lld prompts of %s, sampled at temperature %g)\n", (long long)e->ds.n, args->prompts,
         px_sample_config(cfg).temperature);
  /* Examples, from the prompts rank 0 holds: first those where the two answers differ (what
   * tuning changed), then the others, each group in prompt order. */
  json_t *ex = json_array();
  int k = args->examples < n ? args->examples : (int)n, shown = 0;
  if (k > 0) printf("\n%-20s %-12s %-16s %-16s\n", "prompt", "reference", "pi_base", "tuned");
  for (int pass = 0; pass < 2; pass++)
    for (int64_t i = 0; i < n && shown < k; i++) {
      char prompt[256], ref[256] = "", bt[256] = "-", tt[256];
      if (has_base) px_eval_text(&e->tok, &ab->sampled, i, bt, sizeof bt);
      px_eval_text(&e->tok, &at->sampled, i, tt, sizeof tt);
      if ((strcmp(bt, tt) == 0) != pass) continue; /* pass 0: the answers differ; 1: the same */
      shown++;
      int64_t np, nr;
      const int32_t *p = px_dataset_row(&e->ds, 0, i, &np);
      px_eval_printable(&e->tok, p, np, prompt, sizeof prompt);
      if (has_ref) {
        const int32_t *r = px_dataset_row(&e->ds, 1, i, &nr);
        px_eval_printable(&e->tok, r, nr, ref, sizeof ref);
      }
      printf("%-20s %-12s %-16s %-16s\n", prompt, ref, bt, tt);
      json_t *x = json_object();
      json_object_set_new(x, "prompt", json_string(prompt));
      json_object_set_new(x, "reference", has_ref ? json_string(ref) : json_null());
      json_object_set_new(x, "pi_base", has_base ? json_string(bt) : json_null());
      json_object_set_new(x, "tuned", json_string(tt));
      json_array_append_new(ex, x);
    }
  json_object_set_new(o, "examples", ex);
  fflush(stdout);
  return o;
}

/* Writes the JSON document to path, atomically, with a final newline. Not collective. */
static px_status px_eval_write_json(json_t *o, const char *path, px_error *err) {
  char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  PX_REQUIRE(text, "json_dumps failed (out of memory)");
  size_t tl = strlen(text);
  text = px_realloc(text, tl + 2);
  text[tl] = '\n', text[tl + 1] = '\0';
  px_status st = px_fs_write_atomic(path, NULL, text, tl + 1, err);
  if (st == PX_OK) px_log_info("eval: wrote %s", path);
  free(text);
  return st;
}

px_status px_cli_eval_policy(const px_config *cfg, const px_cli_eval_args *args, px_error *err) {
  px_eval e = {0};
  px_status st = px_comm_agree(px_eval_load(cfg, args, &e, err), err);
  if (st != PX_OK) {
    px_eval_free(&e);
    return st;
  }
  /* This rank's prompts, BOS first, cut to leave room for an answer (generate.h). */
  const int T = e.tuned.config.max_seq_len;
  const int max_new =
      (int)cfg->sample_max_new_tokens < T - 2 ? (int)cfg->sample_max_new_tokens : T - 2;
  int64_t lo, hi;
  px_comm_share(e.ds.n, px_comm_rank(), px_comm_size(), &lo, &hi);
  const int64_t n = hi - lo;
  px_prompts pr;
  px_prompts_pack(&pr, &e.ds, &e.tok, NULL, lo, n, T);
  px_prompts_warn_cut(&pr, "eval", T);
  px_log_info("eval: %lld prompts of %s; policy %s%s%s%s%s", (long long)e.ds.n, args->prompts,
              e.path, e.base_path[0] ? ", pi_base " : " (no pi_base)", e.base_path,
              e.reward_path[0] ? ", reward " : " (no reward model)", e.reward_path);
  px_answers at = {0}, ab = {0};
  double *lp_t = px_calloc((size_t)n + 1, sizeof *lp_t),
         *lp_b = px_calloc((size_t)n + 1, sizeof *lp_b);
  px_gpt *rm = e.reward_path[0] ? &e.reward : NULL;
  st = px_eval_answer(cfg, &e.tok, &e.tuned, rm, e.gain, e.bias, &e.ds, pr.tokens, pr.offsets, lo,
                      n, max_new, &at, err);
  if (st == PX_OK && e.base_path[0])
    st = px_eval_answer(cfg, &e.tok, &e.base, rm, e.gain, e.bias, &e.ds, pr.tokens, pr.offsets, lo,
                        n, max_new, &ab, err);
  st = px_comm_agree(st, err);
  /* sums over the ranks: tuned gold s/g, reward; base gold s/g, reward; KL */
  double sums[7] = {at.gold_sampled,
                    at.gold_greedy,
                    at.reward_sum,
                    ab.gold_sampled,
                    ab.gold_greedy,
                    ab.reward_sum,
                    0};
  if (st == PX_OK && e.base_path[0]) {
    px_sampler_config sc = px_sample_config(cfg);
    float temp = sc.greedy || sc.temperature <= 0 ? 1.0f : sc.temperature;
    px_eval_logprobs(&e.tuned, &e.tok, pr.tokens, pr.offsets, &at.sampled, temp, lp_t);
    px_eval_logprobs(&e.base, &e.tok, pr.tokens, pr.offsets, &at.sampled, temp, lp_b);
    for (int64_t i = 0; i < n; i++) sums[6] += lp_t[i] - lp_b[i];
  }
  if (st == PX_OK) px_comm_allreduce_sum_f64(sums, 7);
  if (st == PX_OK && px_comm_rank() == 0) {
    json_t *o = px_eval_report(cfg, args, &e, sums, &at, &ab, n);
    if (args->out) st = px_eval_write_json(o, args->out, err);
    json_decref(o);
  }
  st = px_comm_agree(st, err);
  px_generation *gens[] = {&at.sampled, &at.greedy, &ab.sampled, &ab.greedy};
  for (int i = 0; i < 4; i++) px_generation_free(gens[i]);
  free(lp_t), free(lp_b), px_prompts_free(&pr);
  px_eval_free(&e);
  return st;
}
