/*
 * test_ppo_cli.c — `proxima ppo` end to end on small models of the built-in task: the ratio is
 * exactly 1 before each iteration's first update, the same seed and rank count give the same
 * metrics.jsonl and final checkpoint bytes, 1 and 2 ranks generate the same first iteration and
 * agree within the documented tolerance, and bad input is refused; a value model started from
 * the reward model carries its normalisation, and the response positions follow max_new_tokens.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/checkpoint.h"
#include "proxima/rm.h"
#include "proxima/rollout.h"
#include "test_proc.h"
#include "test_util.h"

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16 "
#define PPO_ARGS                                                                                   \
  "ppo --policy ppt-sft --reward ppt-rm --prompts ppt-data/prompts.h5 "                            \
  "--eval-prompts ppt-data/eval.h5 --iterations 3 ppo.batch_size=16 ppo.minibatch=8 "              \
  "ppo.micro_batch=4 ppo.eval_every=3 sample.batch=8 sample.max_new_tokens=6 ppo.lr=0.0003 "       \
  "ppo.rollout_every=1 run.log_level=warn"

static void test_make_models(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf ppt-*"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out ppt-data synth.n_sft=2000 "
                                        "synth.n_prefs=1000 synth.n_prompts=200 synth.n_eval=16 "
                                        "run.log_level=warn"),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "sft --data ppt-data/sft.h5 --run ppt-sft --steps 40 " SMALL
                                        "sft.batch_size=32 sft.lr=0.002 sft.warmup_steps=5 "
                                        "run.log_level=warn"),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "rm --init ppt-sft --data ppt-data/prefs.h5 --run ppt-rm "
                                        "rm.epochs=0.2 rm.heldout=32 rm.norm_samples=64 "
                                        "sample.max_new_tokens=6 run.log_level=warn"),
                        0);
}

static void test_two_runs_are_identical(void) {
  const char *launch = getenv("PX_LAUNCH_2");
  /* the same run directory both times: the checkpoint holds the resolved config, run.dir too */
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch, PPO_ARGS " --run ppt-a"), 0);
  CU_ASSERT_EQUAL_FATAL(system("mv ppt-a ppt-first"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch, PPO_ARGS " --run ppt-a"), 0);
  CU_ASSERT_EQUAL(system("cmp -s ppt-a/metrics.jsonl ppt-first/metrics.jsonl"), 0);
  CU_ASSERT_EQUAL(system("cmp -s ppt-a/checkpoints/ckpt-00000003.h5 "
                         "ppt-first/checkpoints/ckpt-00000003.h5"),
                  0);
}

static void test_ratio_is_one_before_each_first_update(void) {
  double dev[8], akl[8];
  int n = px_proc_metric("ppt-a", "ppo", "first_ratio_max_dev", dev, 8);
  CU_ASSERT_EQUAL_FATAL(n, 3);
  CU_ASSERT_EQUAL(px_proc_metric("ppt-a", "ppo", "first_approx_kl", akl, 8), 3);
  for (int i = 0; i < n; i++) {
    CU_ASSERT(dev[i] <= 1e-6);
    CU_ASSERT(fabs(akl[i]) <= 1e-9);
  }
  printf("\n    max |ratio - 1| before the first update of each iteration: %.2e %.2e %.2e\n",
         dev[0], dev[1], dev[2]);
}

static void test_one_and_two_ranks(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", PPO_ARGS " --run ppt-one"), 0);
  /* The first iteration's rollouts are the same responses: the same lengths, EOS and gold
   * counts exactly, the scores and KL up to float rounding of differently grouped rows. */
  const char *exact[] = {"response_length", "eos_rate", "gold_accuracy"};
  for (int k = 0; k < 3; k++) {
    double a[8], b[8];
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("ppt-one", "ppo", exact[k], a, 8), 3);
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("ppt-a", "ppo", exact[k], b, 8), 3);
    CU_ASSERT_DOUBLE_EQUAL(a[0], b[0], 0);
  }
  const char *close[] = {"score", "kl", "value_loss", "policy_loss"};
  double worst = 0;
  for (int k = 0; k < 4; k++) {
    double a[8], b[8];
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("ppt-one", "ppo", close[k], a, 8), 3);
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("ppt-a", "ppo", close[k], b, 8), 3);
    worst = fmax(worst, fabs(a[0] - b[0]) / fmax(1, fabs(b[0])));
  }
  printf("\n    first iteration, 1 rank vs 2 ranks: largest relative difference %.2e\n", worst);
  CU_ASSERT(worst <= 1e-4);
}

/* tests/rollout_check.py (numpy) on the files: it recomputes every derived dataset from each
 * file's inputs and attributes alone. */
static void rollout_check(const char *files) {
  const char *src = getenv("PX_TEST_SOURCE");
  CU_ASSERT_PTR_NOT_NULL_FATAL(src);
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null || exit 77; /usr/bin/python3 "
           "%s/rollout_check.py %s",
           src, files);
  int rc = system(cmd);
  rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  if (rc == 77)
    printf("\n    SKIP the numpy recomputation: /usr/bin/python3 lacks h5py or numpy\n");
  else
    CU_ASSERT_EQUAL(rc, 0);
}

/* Issue 5: the rollout files of the 1-rank and the 2-rank run hold the same first-iteration
 * tokens, and an independent recomputation (numpy) of the 2-rank run's shaped rewards,
 * advantages and returns from each file's inputs agrees with what it holds. */
static void test_rollout_files(void) {
  px_rollout one, two;
  px_rollout_attrs a1, a2;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(
      px_rollout_read("ppt-one/rollouts/rollouts-00000001.h5", PX_IO_ALONE, 0, 1, &one, &a1, &err),
      PX_OK);
  CU_ASSERT_EQUAL_FATAL(
      px_rollout_read("ppt-a/rollouts/rollouts-00000001.h5", PX_IO_ALONE, 0, 1, &two, &a2, &err),
      PX_OK);
  CU_ASSERT_EQUAL_FATAL(one.n, 16);
  CU_ASSERT_EQUAL_FATAL(two.n, 16);
  CU_ASSERT_EQUAL_FATAL(one.P, two.P);
  CU_ASSERT_EQUAL_FATAL(one.R, two.R);
  CU_ASSERT_EQUAL(memcmp(one.tokens, two.tokens, (size_t)one.n * (one.P + one.R) * 4), 0);
  CU_ASSERT_EQUAL(memcmp(one.response_len, two.response_len, (size_t)one.n * 4), 0);
  px_rollout_free(&one);
  px_rollout_free(&two);
  rollout_check("ppt-a/rollouts/rollouts-00000001.h5 ppt-a/rollouts/rollouts-00000003.h5");
}

/* proxima eval --policy on the PPO run: its sampled gold accuracies are PPO's own held-out
 * evaluations (the same draws), pi_base's the one before training; 1 and 2 ranks agree. */
static void test_eval(void) {
  double ppo_eval[8], base_eval[2];
  int n = px_proc_metric("ppt-a", "ppo", "eval_gold_accuracy", ppo_eval, 8);
  CU_ASSERT_EQUAL_FATAL(n, 1);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ppt-a", "ppo_eval", "eval_gold_accuracy", base_eval, 2), 1);
  double kl[2];
  for (int ranks = 1; ranks <= 2; ranks++) {
    char out[64];
    snprintf(out, sizeof out, "ppt-eval-%d.json", ranks);
    CU_ASSERT_EQUAL_FATAL(px_proc_run(ranks == 2 ? getenv("PX_LAUNCH_2") : "",
                                      "eval --policy ppt-a --prompts ppt-data/eval.h5 --out %s "
                                      "--examples 3 " SMALL
                                      "sample.batch=8 sample.max_new_tokens=6 run.log_level=warn",
                                      out),
                          0);
    CU_ASSERT(px_test_contains(px_proc_out, "gold accuracy, sampled"));
    json_error_t jerr;
    json_t *o = json_load_file(out, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    json_t *tuned = json_object_get(o, "tuned"), *base = json_object_get(o, "pi_base");
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(tuned, "gold_accuracy_sampled")),
                           ppo_eval[0], 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(base, "gold_accuracy_sampled")),
                           base_eval[0], 1e-12);
    double greedy = json_number_value(json_object_get(tuned, "gold_accuracy_greedy"));
    CU_ASSERT(greedy >= 0 && greedy <= 1);
    CU_ASSERT(json_is_number(json_object_get(tuned, "mean_reward")));
    kl[ranks - 1] = json_number_value(json_object_get(o, "kl_to_base"));
    CU_ASSERT(isfinite(kl[ranks - 1]));
    /* The examples whose two answers differ come first. */
    json_t *ex = json_object_get(o, "examples");
    CU_ASSERT_EQUAL(json_array_size(ex), 3);
    int same_seen = 0;
    for (size_t i = 0; i < json_array_size(ex); i++) {
      json_t *e = json_array_get(ex, i);
      const char *b = json_string_value(json_object_get(e, "pi_base"));
      const char *t = json_string_value(json_object_get(e, "tuned"));
      CU_ASSERT_FATAL(b && t);
      int same = strcmp(b, t) == 0;
      CU_ASSERT(!same_seen || same);
      same_seen |= same;
    }
    json_decref(o);
  }
  CU_ASSERT_DOUBLE_EQUAL(kl[0], kl[1], 1e-4 * fabs(kl[0]) + 1e-6);
  CU_ASSERT_EQUAL(px_proc_run("", "eval --policy ppt-nowhere --prompts ppt-data/eval.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "ppt-nowhere"));
  CU_ASSERT_EQUAL(px_proc_run("", "eval --policy ppt-a --prompts ppt-data/prefs.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "prefs.h5"));
}

/* scripts/report.py on the runs: the summary's numbers are eval.json's, and every plot of the
 * metrics tables (proxima metrics --json) is a PNG (skipped without matplotlib). */
static void test_report(void) {
  CU_ASSERT_EQUAL_FATAL(system("rm -rf ppt-report && mkdir ppt-report && ln -s ../ppt-sft "
                               "ppt-report/sft && ln -s ../ppt-rm ppt-report/rm && ln -s "
                               "../ppt-a ppt-report/ppo && cp ppt-eval-2.json "
                               "ppt-report/eval.json && printf 'sft 1.5\\nppo 2.5\\n' > "
                               "ppt-report/phases"),
                        0);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 %s/../scripts/report.py ppt-report --phases "
           "ppt-report/phases --proxima %s > ppt-report/out.txt 2>&1",
           getenv("PX_SOURCE_DIR"), getenv("PX_PROXIMA"));
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  char out[8192];
  px_proc_slurp("ppt-report/out.txt", out, sizeof out);
  CU_ASSERT(px_test_contains(out, "gold accuracy, sampled answers"));
  CU_ASSERT(px_test_contains(out, "reward model held-out pair accuracy"));
  CU_ASSERT(px_test_contains(out, "\nall ") && px_test_contains(out, " 4s\n"));
  if (px_test_contains(out, "no matplotlib")) {
    printf("\n    SKIP the plots: /usr/bin/python3 lacks matplotlib");
    return;
  }
  const char *pngs[] = {"ppo_reward", "ppo_kl_beta", "ppo_gold_accuracy",
                        "ppo_losses", "ppo_clip",    "ppo_generation_throughput",
                        "sft_loss",   "rm_accuracy"};
  for (int i = 0; i < 8; i++) {
    char path[256];
    snprintf(path, sizeof path, "ppt-report/plots/%s.png", pngs[i]);
    FILE *f = fopen(path, "rb");
    unsigned char magic[8] = {0};
    CU_ASSERT_PTR_NOT_NULL(f);
    if (f) {
      CU_ASSERT_EQUAL(fread(magic, 1, 8, f), 8);
      CU_ASSERT(magic[1] == 'P' && magic[2] == 'N' && magic[3] == 'G');
      fseek(f, 0, SEEK_END);
      CU_ASSERT(ftell(f) > 5000); /* axes, labels and a curve, not an empty canvas */
      fclose(f);
    }
  }
}

static void test_bad_input(void) {
  CU_ASSERT_EQUAL(px_proc_run("", PPO_ARGS " --run ppt-bad --reward ppt-sft"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "group '/reward' is missing"));
  CU_ASSERT_EQUAL(px_proc_run("", PPO_ARGS " --run ppt-bad --prompts ppt-nowhere.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "ppt-nowhere.h5: no such file"));
  CU_ASSERT_EQUAL(px_proc_run("", PPO_ARGS " --run ppt-bad ppo.kl_estimator=k2"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "expected one of k1|k3"));
}

/* Issue 20: a value model started from the reward model has the reward's normalisation folded
 * into its head, head_w = gain w and head_b = gain b + bias of the reward model's head, and the
 * rest of it is the reward model's. With ppo.value_lr=0 the value model of the checkpoint after
 * one iteration is the one PPO started from. */
static void test_value_starts_on_the_reward_scale(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "ppo --policy ppt-sft --reward ppt-rm --prompts "
                                        "ppt-data/prompts.h5 --eval-prompts '' --run ppt-fold "
                                        "--iterations 1 ppo.batch_size=8 ppo.minibatch=8 "
                                        "ppo.micro_batch=4 sample.batch=8 sample.max_new_tokens=6 "
                                        "ppo.value_lr=0 run.log_level=warn"),
                        0);
  px_gpt value, reward;
  float gain, bias;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_ckpt_load("ppt-fold/checkpoints/ckpt-00000001.h5", "value",
                                     PX_GPT_HEAD_SCALAR, 1, 0, 0, &value, NULL, NULL, &err),
                        PX_OK);
  CU_ASSERT_EQUAL_FATAL(px_rm_load_model("ppt-rm", &reward, 1, 0, &gain, &bias, &err), PX_OK);
  CU_ASSERT_EQUAL_FATAL(value.n_params, reward.n_params);
  CU_ASSERT(fabsf(gain - 1) > 0.01f || fabsf(bias) > 0.01f); /* or the test shows nothing */
  const px_gpt_tensor *w = px_gpt_find_tensor(&value, "head_w"),
                      *b = px_gpt_find_tensor(&value, "head_b");
  CU_ASSERT_FATAL(w && b && b->offset == w->offset + w->count && b->offset + 1 == value.n_params);
  CU_ASSERT_EQUAL(memcmp(value.params, reward.params, w->offset * sizeof(float)), 0);
  double worst = 0;
  for (size_t i = 0; i < w->count; i++) {
    float want = gain * reward.params[w->offset + i];
    worst = fmax(worst, fabs(value.params[w->offset + i] - want) / fmax(fabs(want), 1e-6));
  }
  float want_b = gain * reward.params[b->offset] + bias;
  worst = fmax(worst, fabs(value.params[b->offset] - want_b) / fmax(fabs(want_b), 1e-6));
  printf("\n    reward gain %.3f bias %.3f; the value head against gain w, gain b + bias: largest "
         "relative difference %.2e\n",
         gain, bias, worst);
  CU_ASSERT(worst <= 1e-6);
  px_gpt_free(&value);
  px_gpt_free(&reward);
}

/* Issue 20: the rollouts' response positions are min(sample.max_new_tokens, T - 2) (T less BOS
 * and one prompt token), so they never shrink as max_new_tokens grows. */
/* The first iteration's rollout file of run directory run, read whole (attrs may be NULL). */
static px_rollout first_rollouts(const char *run, px_rollout_attrs *attrs) {
  char path[256];
  snprintf(path, sizeof path, "%s/rollouts/rollouts-00000001.h5", run);
  px_rollout r;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_rollout_read(path, PX_IO_ALONE, 0, 1, &r, attrs, &err), PX_OK);
  return r;
}

static void test_response_positions(void) {
  const int T = 16, max_new[] = {T - 2, T - 1, T, T + 5};
  int64_t prev = 0;
  for (int k = 0; k < 4; k++) {
    CU_ASSERT_EQUAL_FATAL(px_proc_run("",
                                      "ppo --policy ppt-sft --reward ppt-rm --prompts "
                                      "ppt-data/prompts.h5 --eval-prompts '' --run ppt-cap-%d "
                                      "--iterations 1 ppo.batch_size=8 ppo.minibatch=8 "
                                      "ppo.micro_batch=4 sample.batch=8 "
                                      "sample.max_new_tokens=%d ppo.rollout_every=1 "
                                      "run.log_level=warn",
                                      k, max_new[k]),
                          0);
    char run[32];
    snprintf(run, sizeof run, "ppt-cap-%d", k);
    px_rollout r = first_rollouts(run, NULL);
    printf("\n    T %d, max_new_tokens %d: R %lld", T, max_new[k], (long long)r.R);
    CU_ASSERT_EQUAL(r.R, max_new[k] < T - 2 ? max_new[k] : T - 2);
    CU_ASSERT(r.R >= prev);
    prev = r.R;
    px_rollout_free(&r);
  }
  printf("\n");
}

/* One critic-free iteration: GRPO with the KL in the reward (group_size 4, 5 prompts: at 2 ranks
 * 3 and 2 groups, not the 10 and 10 rows an even split of the responses would give), or RLOO
 * with the KL as a loss term, at 1 or 2 ranks, its rollout file read back. */
#define CRITIC_FREE_ARGS                                                                           \
  "ppo --policy ppt-sft --reward ppt-rm --prompts ppt-data/prompts.h5 --eval-prompts '' "          \
  "--iterations 1 ppo.batch_size=5 ppo.group_size=4 ppo.minibatch=8 ppo.micro_batch=4 "            \
  "sample.batch=8 sample.max_new_tokens=6 ppo.rollout_every=1 run.log_level=warn "
enum { CF_GROUPS = 5, CF_ROWS = 20 };
static px_rollout critic_free_rollouts(const char *run) {
  px_rollout r = first_rollouts(run, NULL);
  CU_ASSERT_EQUAL_FATAL(r.n, CF_ROWS);
  return r;
}

/* Each row's reward summed over its real tokens (its sequence reward), in double. */
static void sequence_rewards(const px_rollout *r, double *seq) {
  for (int64_t i = 0; i < r->n; i++) {
    seq[i] = 0;
    for (int64_t t = 0; t < r->R; t++)
      if (r->mask[i * r->R + t]) seq[i] += r->rewards[i * r->R + t];
  }
}

/* GRPO: the 4 responses to a prompt share it and are different draws; every real token of a
 * response holds (r - mean) / (std + 1e-6) of its group (sample std), recomputed here from the
 * file's rewards; no values, and the value metrics are null; 1 and 2 ranks draw the same
 * responses and give the same advantages up to the scores' rounding. */
static void test_grpo(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", CRITIC_FREE_ARGS "ppo.estimator=grpo --run ppt-grpo"), 0);
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run(getenv("PX_LAUNCH_2"), CRITIC_FREE_ARGS "ppo.estimator=grpo --run ppt-grpo2"), 0);
  px_rollout r = critic_free_rollouts("ppt-grpo"), r2 = critic_free_rollouts("ppt-grpo2");
  double seq[CF_ROWS], worst = 0, worst2 = 0;
  sequence_rewards(&r, seq);
  int differ = 0;
  const int64_t W = r.P + r.R;
  for (int g = 0; g < CF_GROUPS; g++) {
    double mean = 0, ss = 0;
    for (int j = 0; j < 4; j++) mean += seq[4 * g + j] / 4;
    for (int j = 0; j < 4; j++) ss += (seq[4 * g + j] - mean) * (seq[4 * g + j] - mean);
    const double std = sqrt(ss / 3);
    for (int j = 0; j < 4; j++) {
      const int64_t i = 4 * g + j;
      CU_ASSERT_EQUAL(memcmp(r.tokens + i * W, r.tokens + 4 * g * W, (size_t)r.P * 4), 0);
      differ += j > 0 && memcmp(r.tokens + i * W, r.tokens + 4 * g * W, (size_t)W * 4) != 0;
      for (int64_t t = 0; t < r.R; t++) {
        const int64_t k = i * r.R + t;
        CU_ASSERT_EQUAL(r.values[k], 0.0f);
        const double want = r.mask[k] ? (seq[i] - mean) / (std + 1e-6) : 0.0;
        worst = fmax(worst, fabs(r.advantages[k] - want));
        worst2 = fmax(worst2, fabs(r.advantages[k] - r2.advantages[k]));
      }
    }
  }
  printf("\n    grpo: advantages vs recomputed %.2e, 1 vs 2 ranks %.2e; %d of 15 responses differ "
         "from their group's first\n",
         worst, worst2, differ);
  CU_ASSERT(worst <= 1e-4);
  CU_ASSERT(worst2 <= 1e-3);
  CU_ASSERT(differ > 0);
  CU_ASSERT_EQUAL(memcmp(r.tokens, r2.tokens, (size_t)(r.n * W) * 4), 0);
  double v[2];
  CU_ASSERT_EQUAL(px_proc_metric("ppt-grpo", "ppo", "value_loss", v, 2), 0);
  CU_ASSERT_EQUAL(px_proc_metric("ppt-grpo", "ppo", "policy_loss", v, 2), 1);
  px_rollout_free(&r);
  px_rollout_free(&r2);
}

/* RLOO with ppo.kl_in = loss: the rewards hold the score alone, at the last real token, and
 * each response's advantage is its score less the mean of the other three's. */
static void test_rloo_kl_loss(void) {
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run("", CRITIC_FREE_ARGS "ppo.estimator=rloo ppo.kl_in=loss --run ppt-rloo"), 0);
  px_rollout r = critic_free_rollouts("ppt-rloo");
  double seq[CF_ROWS], worst = 0;
  sequence_rewards(&r, seq);
  for (int64_t i = 0; i < CF_ROWS; i++) {
    CU_ASSERT_DOUBLE_EQUAL(seq[i], r.score[i], 1e-6);
    const int64_t g = i / 4 * 4;
    const double others = (seq[g] + seq[g + 1] + seq[g + 2] + seq[g + 3] - seq[i]) / 3;
    for (int64_t t = 0; t < r.R; t++)
      worst = fmax(worst,
                   fabs(r.advantages[i * r.R + t] - (r.mask[i * r.R + t] ? seq[i] - others : 0)));
  }
  printf("\n    rloo, KL as a loss: advantages vs recomputed %.2e\n", worst);
  CU_ASSERT(worst <= 1e-5);
  px_rollout_free(&r);
  /* grpo needs groups */
  CU_ASSERT_EQUAL(
      px_proc_run("", CRITIC_FREE_ARGS "ppo.estimator=grpo ppo.group_size=1 --run ppt-g1"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "ppo.group_size of 2 or more"));
}

/* REINFORCE++: each token's advantage is its return (the rewards from it to the end, gamma 1)
 * whitened with the batch's mean and std, which the file records. */
static void test_reinforce_pp(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run("",
                                    CRITIC_FREE_ARGS "ppo.estimator=reinforce_pp ppo.group_size=1 "
                                                     "ppo.batch_size=16 --run ppt-rpp"),
                        0);
  px_rollout r;
  px_rollout_attrs a;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(
      px_rollout_read("ppt-rpp/rollouts/rollouts-00000001.h5", PX_IO_ALONE, 0, 1, &r, &a, &err),
      PX_OK);
  double worst = 0;
  for (int64_t i = 0; i < r.n; i++) {
    double g = 0;
    for (int64_t t = r.R; t-- > 0;) {
      const int64_t k = i * r.R + t;
      g = r.mask[k] ? r.rewards[k] + g : 0;
      const double want = r.mask[k] ? (g - a.whiten_mean) / a.whiten_std : 0;
      worst = fmax(worst, fabs(r.advantages[k] - want));
      CU_ASSERT_EQUAL(r.values[k], 0.0f);
    }
  }
  printf("\n    reinforce_pp: advantages vs recomputed %.2e (whitening mean %.3f, std %.3f)\n",
         worst, a.whiten_mean, a.whiten_std);
  CU_ASSERT(worst <= 1e-4);
  px_rollout_free(&r);
  /* and the independent numpy check of the three critic-free runs' files */
  rollout_check("ppt-grpo/rollouts/rollouts-00000001.h5 ppt-grpo2/rollouts/rollouts-00000001.h5 "
                "ppt-rloo/rollouts/rollouts-00000001.h5 ppt-rpp/rollouts/rollouts-00000001.h5");
}

/* Prompts without reference answers: the gold accuracy is not 0 but unknown, so the log says
 * n/a, metrics.jsonl has null, and eval's table n/a. */
static void test_gold_without_references(void) {
  FILE *f = fopen("ppt-noref.jsonl", "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < 16; i++) fprintf(f, "{\"prompt\": \"%d+%d=\"}\n", i, 2 * i);
  fclose(f);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data import --kind prompts --tokenizer byte "
                                        "ppt-noref.jsonl ppt-noref.h5 run.log_level=warn"),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("",
                                    "ppo --policy ppt-sft --reward ppt-rm --prompts ppt-noref.h5 "
                                    "--eval-prompts ppt-noref.h5 --run ppt-noref --iterations 1 "
                                    "ppo.batch_size=8 ppo.minibatch=8 ppo.micro_batch=4 "
                                    "ppo.eval_every=1 sample.batch=8 sample.max_new_tokens=6"),
                        0);
  const char *log = px_proc_err[0] ? px_proc_err : px_proc_out;
  CU_ASSERT(px_test_contains(log, "| gold n/a"));
  CU_ASSERT(px_test_contains(log, "| eval gold n/a"));
  CU_ASSERT(px_test_contains(log, "pi_base: n/a (ppt-noref.h5 has no reference answers)"));
  CU_ASSERT_PTR_NULL(strstr(log, "gold 0.000"));
  double v[4];
  CU_ASSERT_EQUAL(px_proc_metric("ppt-noref", "ppo", "gold_accuracy", v, 4), 0);
  CU_ASSERT_EQUAL(px_proc_metric("ppt-noref", "ppo", "response_length", v, 4), 1);
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run("", "eval --policy ppt-noref --prompts ppt-noref.h5 run.log_level=warn"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "n/a"));
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"make the models", test_make_models},
      {"two runs are identical", test_two_runs_are_identical},
      {"ratio is 1 before each first update", test_ratio_is_one_before_each_first_update},
      {"1 and 2 ranks", test_one_and_two_ranks},
      {"rollout files", test_rollout_files},
      {"eval against pi_base", test_eval},
      {"report: summary and plots", test_report},
      {"bad input", test_bad_input},
      {"the value model starts on the reward's scale", test_value_starts_on_the_reward_scale},
      {"response positions: min(max_new_tokens, T - 2)", test_response_positions},
      {"prompts without references: gold n/a", test_gold_without_references},
      {"grpo: group advantages, 1 and 2 ranks", test_grpo},
      {"rloo with the KL as a loss term", test_rloo_kl_loss},
      {"reinforce_pp: whitened returns", test_reinforce_pp},
      CU_TEST_INFO_NULL};
  px_test_suite("ppo end to end", tests);
}
