/*
 * test_rm_cli.c — `proxima rm`, `eval --reward` and `score` end to end on the built-in task:
 * 1 and 2 ranks agree, the normalised score has mean 0 and standard deviation 1 on pi_base's
 * samples, imported JSONL gives the same run as the synthesised data set, and bad input is
 * refused.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "test_proc.h"
#include "test_util.h"

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16 "
#define RM_ARGS                                                                                    \
  "rm --init rmt-sft " SMALL "rm.epochs=0.25 rm.heldout=128 rm.eval_every=5 rm.log_every=1 "       \
  "rm.norm_samples=256 sample.batch=64 run.log_level=warn"

static void test_make_data_and_base(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rmt-*"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out rmt-data synth.n_sft=3000 "
                                        "synth.n_prefs=2400 synth.n_prompts=10 synth.n_eval=10 "
                                        "run.log_level=warn"),
                        0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "sft --data rmt-data/sft.h5 --run rmt-sft --steps 60 " SMALL
                                        "sft.batch_size=32 run.log_level=warn"),
                        0);
}

static void test_one_and_two_ranks_agree(void) {
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", RM_ARGS " --data rmt-data/prefs.h5 --run rmt-rm1"), 0);
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run(getenv("PX_LAUNCH_2"), RM_ARGS " --data rmt-data/prefs.h5 --run rmt-rm2"), 0);
  double l1[64], l2[64], a1[64], a2[64];
  int n = px_proc_metric("rmt-rm1", "rm", "heldout_loss", l1, 64);
  CU_ASSERT(n >= 3);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("rmt-rm2", "rm", "heldout_loss", l2, 64), n);
  CU_ASSERT_EQUAL(px_proc_metric("rmt-rm1", "rm", "heldout_accuracy", a1, 64), n);
  CU_ASSERT_EQUAL(px_proc_metric("rmt-rm2", "rm", "heldout_accuracy", a2, 64), n);
  double worst_l = 0, worst_a = 0;
  for (int i = 0; i < n; i++) {
    worst_l = fmax(worst_l, fabs(l1[i] - l2[i]));
    worst_a = fmax(worst_a, fabs(a1[i] - a2[i]));
  }
  printf("\n    held-out loss |1 rank - 2 ranks| <= %.2e, accuracy <= %.4f over %d evaluations\n",
         worst_l, worst_a, n);
  /* The documented tolerance: 1e-4 on the loss; the accuracy within one pair of the 128 (a
   * pair whose two scores are within rounding of each other may flip). */
  CU_ASSERT(worst_l <= 1e-4);
  CU_ASSERT(worst_a <= 1.0 / 128 + 1e-12);
}

static void test_normalised_scores(void) {
  double mean, sd, eos;
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("rmt-rm1", "rm_normalization", "normalized_mean", &mean, 1),
                        1);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("rmt-rm1", "rm_normalization", "normalized_std", &sd, 1), 1);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("rmt-rm1", "rm_normalization", "eos_rate", &eos, 1), 1);
  printf("\n    pi_base samples after normalisation: mean %.5f, std %.5f (%.0f%% ended with EOS)\n",
         mean, sd, 100 * eos);
  CU_ASSERT(fabs(mean) <= 0.05);
  CU_ASSERT(fabs(sd - 1) <= 0.05);
  CU_ASSERT(eos > 0.5);
}

static void test_imported_jsonl_gives_the_same_run(void) {
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run("", "data import --kind prefs rmt-data/prefs.jsonl rmt-imported.h5"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", RM_ARGS " --data rmt-imported.h5 --run rmt-rm3"), 0);
  double l1[64], l3[64];
  int n = px_proc_metric("rmt-rm1", "rm", "heldout_loss", l1, 64);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("rmt-rm3", "rm", "heldout_loss", l3, 64), n);
  for (int i = 0; i < n; i++) CU_ASSERT_DOUBLE_EQUAL(l1[i], l3[i], 0);
}

static void test_eval_and_score(void) {
  CU_ASSERT_EQUAL(
      px_proc_run(getenv("PX_LAUNCH_2"),
                  "eval --reward rmt-rm1 --pairs rmt-data/prefs.jsonl run.log_level=warn"),
      0);
  CU_ASSERT(px_test_contains(px_proc_out, "accuracy"));
  double acc = -1;
  const char *a = strstr(px_proc_out, "accuracy");
  if (a) acc = atof(a + strlen("accuracy"));
  CU_ASSERT(acc > 0.3 && acc <= 1);
  CU_ASSERT_EQUAL(
      px_proc_run(getenv("PX_LAUNCH_2"),
                  "score --reward rmt-rm1 --data rmt-data/sft.jsonl run.log_level=warn"),
      0);
  int lines = 0;
  for (const char *p = px_proc_out; (p = strchr(p, '\n')); p++) lines++;
  CU_ASSERT_EQUAL(lines, 3000); /* one per record, in order */
  CU_ASSERT(px_test_contains(px_proc_out, "\t"));
}

static void test_bad_input(void) {
  CU_ASSERT_EQUAL(
      px_proc_run("", RM_ARGS " --init rmt-nowhere --run rmt-bad --data rmt-data/prefs.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "rmt-nowhere: no such checkpoint"));
  CU_ASSERT_EQUAL(px_proc_run("", RM_ARGS " --data rmt-data/sft.h5 --run rmt-bad"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "holds sft records"));
  CU_ASSERT_EQUAL(px_proc_run("", "eval --reward rmt-rm1"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "--reward CKPT and --pairs FILE (the reward model"));
  CU_ASSERT_EQUAL(px_proc_run("", "eval --reward rmt-sft --pairs rmt-data/prefs.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "group '/reward' is missing"));
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"make the data and the base policy", test_make_data_and_base},
      {"1 and 2 ranks agree", test_one_and_two_ranks_agree},
      {"normalised scores", test_normalised_scores},
      {"imported JSONL gives the same run", test_imported_jsonl_gives_the_same_run},
      {"eval and score", test_eval_and_score},
      {"bad input", test_bad_input},
      CU_TEST_INFO_NULL};
  px_test_suite("rm end to end", tests);
}
