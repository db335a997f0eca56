/*
 * test_sft.c — `proxima sft` end to end on the built-in task: the loss curve does not depend
 * on the rank count or the micro-batch size, the held-out loss goes down, the run directory
 * and its checkpoint are complete, and bad input is refused.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "proxima/checkpoint.h"
#include "proxima/config.h"
#include "test_proc.h"
#include "test_util.h"

/* A small model and run, fast on 2 cores (sft.lr 0.002 warms up in 10 steps). */
#define PX_SFT_ARGS                                                                                \
  "sft --data sft-data/sft.h5 model.n_layer=2 model.n_embd=64 model.n_head=2 "                     \
  "model.max_seq_len=16 sft.batch_size=16 sft.log_every=1 sft.heldout=64 sft.lr=0.002 "            \
  "sft.warmup_steps=10 run.log_level=warn"

static void test_make_data(void) {
  CU_ASSERT_EQUAL_FATAL(system("rm -rf sft-data sft-1rank sft-2ranks sft-micro sft-heldout"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out sft-data synth.n_sft=3000 "
                                        "synth.n_prefs=10 synth.n_prompts=10 synth.n_eval=10 "
                                        "run.log_level=warn"),
                        0);
}

static void test_rank_count_and_micro_batch_do_not_change_the_curve(void) {
  enum { STEPS = 20 };
  double one[STEPS], two[STEPS], micro[STEPS];
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run("", PX_SFT_ARGS " --steps 20 --run sft-1rank sft.micro_batch=16"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(getenv("PX_LAUNCH_2"),
                                    PX_SFT_ARGS " --steps 20 --run sft-2ranks sft.micro_batch=8"),
                        0);
  CU_ASSERT_EQUAL_FATAL(
      px_proc_run("", PX_SFT_ARGS " --steps 20 --run sft-micro sft.micro_batch=3"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("sft-1rank", "sft", "loss", one, STEPS), STEPS);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("sft-2ranks", "sft", "loss", two, STEPS), STEPS);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("sft-micro", "sft", "loss", micro, STEPS), STEPS);
  double worst = 0, worst_micro = 0;
  for (int i = 0; i < STEPS; i++) {
    worst = fmax(worst, fabs(one[i] - two[i]));
    worst_micro = fmax(worst_micro, fabs(one[i] - micro[i]));
  }
  printf("\n    loss curves over %d steps: |1 rank - 2 ranks| <= %.2e, |micro-batch 16 - 3| <= "
         "%.2e; loss %.4f -> %.4f\n",
         STEPS, worst, worst_micro, one[0], one[STEPS - 1]);
  CU_ASSERT(worst <= 1e-4);
  CU_ASSERT(worst_micro <= 1e-4);
  CU_ASSERT(one[STEPS - 1] < one[0]); /* and it trains */
}

static void test_heldout_loss_goes_down(void) {
  double held[3] = {NAN, NAN, NAN};
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", PX_SFT_ARGS " --steps 90 --run sft-heldout "
                                                    "sft.eval_every=30 sft.micro_batch=16"),
                        0);
  CU_ASSERT_EQUAL(px_proc_metric("sft-heldout", "sft", "heldout_loss", held, 3), 3);
  printf("\n    held-out loss at steps 30, 60, 90: %.4f %.4f %.4f (uniform: %.4f)\n", held[0],
         held[1], held[2], log(259.0));
  CU_ASSERT(held[0] < log(259.0));
  CU_ASSERT(held[1] < held[0]);
  CU_ASSERT(held[2] < held[1]);
}

static void test_run_directory_is_complete(void) {
  /* written by the 1-rank run above */
  char path[256], *text = NULL;
  CU_ASSERT_EQUAL(access("sft-1rank/config.ini", R_OK), 0);
  CU_ASSERT_EQUAL(access("sft-1rank/proxima.log", R_OK), 0);
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_ckpt_latest("sft-1rank/checkpoints", path, sizeof path, &err), PX_OK);
  CU_ASSERT(px_test_contains(path, "ckpt-00000020.h5"));
  px_gpt_config mc;
  CU_ASSERT_EQUAL_FATAL(px_ckpt_read_config(path, "policy", &mc, &err), PX_OK);
  CU_ASSERT_EQUAL(mc.n_layer, 2);
  CU_ASSERT_EQUAL(mc.n_embd, 64);
  CU_ASSERT_EQUAL(mc.head, PX_GPT_HEAD_LM);
  /* the resolved config reads back and holds the command line's settings */
  px_config cfg;
  px_config_init(&cfg);
  FILE *f = fopen("sft-1rank/config.ini", "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  text = calloc(1, 1 << 16);
  size_t n = fread(text, 1, (1 << 16) - 1, f);
  fclose(f);
  text[n] = '\0';
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, text, "config.ini", &err), PX_OK);
  CU_ASSERT_EQUAL(cfg.sft_steps, 20);
  CU_ASSERT_EQUAL(cfg.model_n_embd, 64);
  px_config_free(&cfg);
  free(text);
}

static void test_bad_input(void) {
  CU_ASSERT_EQUAL(px_proc_run("", PX_SFT_ARGS " --data no-such.h5 --run sft-bad"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "no-such.h5: no such file"));
  CU_ASSERT_EQUAL(px_proc_run("", PX_SFT_ARGS " --data sft-data/prefs.h5 --run sft-bad"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "holds prefs records"));
  CU_ASSERT_EQUAL(px_proc_run("", PX_SFT_ARGS " --run sft-bad model.n_head=3"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "n_head"));
  CU_ASSERT_EQUAL(px_proc_run("", PX_SFT_ARGS " --run sft-bad sft.micro_batch=0"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "sft.micro_batch = '0' is out of range"));
}

void px_test_register(void) {
  px_proc_forget_singleton_job();
  static const CU_TestInfo tests[] = {{"make the data", test_make_data},
                                      {"rank count and micro-batch do not change the curve",
                                       test_rank_count_and_micro_batch_do_not_change_the_curve},
                                      {"held-out loss goes down", test_heldout_loss_goes_down},
                                      {"run directory is complete", test_run_directory_is_complete},
                                      {"bad input", test_bad_input},
                                      CU_TEST_INFO_NULL};
  px_test_suite("sft", tests);
}
