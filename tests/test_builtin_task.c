/*
 * test_builtin_task.c — the pipeline's stages on the built-in task at their default settings,
 * with 2 ranks, held to what the task promises: the SFT policy's sampled answers are right about
 * as often as its data's (issue 3), the reward model's held-out accuracy reaches 0.9 of the
 * agreement ceiling that the label noise allows, 1 - synth.flip_rate (issue 4), and PPO raises
 * the held-out gold accuracy of sampled answers from pi_base's (about 0.6) to 0.9 or more while
 * the mean KL to pi_base stays under ppo.kl_bound (issue 5), with the value model's first
 * predictions on the returns' scale (issue 20). Slow (about 8 minutes on 2 cores):
 * label e2e.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "proxima/config.h"
#include "test_proc.h"
#include "test_util.h"

/* The fraction of the JSONL responses in text (from generate --json) equal to the references
 * of the JSONL file ref, line by line. */
static double exact_match(const char *text, const char *ref) {
  FILE *f = fopen(ref, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[4096];
  int n = 0, right = 0;
  const char *p = text;
  while (fgets(line, sizeof line, f) && *p) {
    const char *nl = strchr(p, '\n');
    json_t *r = json_loads(line, 0, NULL);
    json_t *g = json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
    const char *want = json_string_value(json_object_get(r, "reference"));
    const char *got = json_string_value(json_object_get(g, "response"));
    right += want && got && !strcmp(want, got);
    n++;
    json_decref(r), json_decref(g);
    p = nl ? nl + 1 : p + strlen(p);
  }
  fclose(f);
  CU_ASSERT(n > 0);
  return n ? (double)right / n : 0;
}

static void test_sft_sampled_answers_match_the_data(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf task-data task-sft task-rm task-ppo"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out task-data run.log_level=warn"), 0);
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run(getenv("PX_LAUNCH_2"),
                  "sft --data task-data/sft.h5 --run task-sft run.log_level=warn"),
      0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(getenv("PX_LAUNCH_2"),
                                    "generate --ckpt task-sft --prompts task-data/eval.h5 --json "
                                    "run.log_level=warn"),
                        0);
  double sampled = exact_match(px_proc_out, "task-data/eval.jsonl");
  CU_ASSERT_EQUAL_FATAL(px_proc_run(getenv("PX_LAUNCH_2"),
                                    "generate --ckpt task-sft --prompts task-data/eval.h5 --json "
                                    "--greedy run.log_level=warn"),
                        0);
  double greedy = exact_match(px_proc_out, "task-data/eval.jsonl");
  printf("\n    held-out prompts answered right by pi_base: sampled %.3f (its data: 0.6), greedy "
         "%.3f\n",
         sampled, greedy);
  CU_ASSERT(fabs(sampled - 0.6) <= 0.1);
}

static void test_rm_reaches_the_agreement_ceiling(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run(getenv("PX_LAUNCH_2"),
                                    "rm --init task-sft --data task-data/prefs.h5 --run task-rm "
                                    "run.log_level=warn"),
                        0);
  px_config cfg;
  px_config_init(&cfg);
  double ceiling = 1 - cfg.synth_flip_rate;
  px_config_free(&cfg);
  double accs[64], acc = NAN;
  int n = px_proc_metric("task-rm", "rm", "heldout_accuracy", accs, 64);
  if (n > 0) acc = accs[n - 1];
  printf("\n    reward model held-out accuracy %.3f; ceiling %.2f, target %.3f\n", acc, ceiling,
         0.9 * ceiling);
  CU_ASSERT(acc >= 0.9 * ceiling);
}

/* Issue 5, acceptance 4: PPO raises the held-out gold accuracy of sampled answers from pi_base's
 * (about 0.6) to at least 0.9, while the mean KL to pi_base stays under ppo.kl_bound at every
 * iteration; both are read from metrics.jsonl. */
static void test_ppo_improves_the_policy(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run(getenv("PX_LAUNCH_2"),
                                    "ppo --policy task-sft --reward task-rm --prompts "
                                    "task-data/prompts.h5 --eval-prompts task-data/eval.h5 --run "
                                    "task-ppo run.log_level=warn"),
                        0);
  double base[2], gold[64], kl[512];
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("task-ppo", "ppo_eval", "eval_gold_accuracy", base, 2), 1);
  int n = px_proc_metric("task-ppo", "ppo", "eval_gold_accuracy", gold, 64);
  int m = px_proc_metric("task-ppo", "ppo", "kl", kl, 512);
  CU_ASSERT_FATAL(n > 0 && m > 0);
  px_config cfg;
  px_config_init(&cfg);
  double bound = cfg.ppo_kl_bound, worst = 0;
  px_config_free(&cfg);
  for (int i = 0; i < m; i++) worst = fmax(worst, kl[i]);
  printf("\n    held-out gold accuracy: pi_base %.3f, after ppo %.3f; largest mean KL %.3f "
         "(bound %.1f)\n",
         base[0], gold[n - 1], worst, bound);
  CU_ASSERT(fabs(base[0] - 0.6) <= 0.1);
  CU_ASSERT(gold[n - 1] >= 0.9);
  CU_ASSERT(worst <= bound);
}

/* Issue 20: the value model, started from the reward model with its normalisation folded in,
 * predicts the first iteration's returns better than their mean: explained variance >= 0 at
 * iteration 1 (without the fold, the values are on the raw score's scale: about -1.4). */
static void test_ppo_values_start_on_the_returns_scale(void) {
  double ev[512];
  int n = px_proc_metric("task-ppo", "ppo", "explained_variance", ev, 512);
  CU_ASSERT_FATAL(n > 0);
  printf("\n    explained variance at iteration 1: %.3f\n", ev[0]);
  CU_ASSERT(ev[0] >= 0);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"sft: sampled answers match the data", test_sft_sampled_answers_match_the_data},
      {"rm: held-out accuracy reaches the agreement ceiling",
       test_rm_reaches_the_agreement_ceiling},
      {"ppo: the tuned policy is better and stays close", test_ppo_improves_the_policy},
      {"ppo: the values start on the returns' scale", test_ppo_values_start_on_the_returns_scale},
      CU_TEST_INFO_NULL};
  px_test_suite("built-in task", tests);
}
