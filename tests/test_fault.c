/*
 * test_fault.c — faults injected into real 2-rank runs (issue 10, Reliability): a NaN in one
 * rank's gradient, a run that diverges for good, a full disk and a failed write during a
 * checkpoint, an unusable run directory, a rank killed in the middle of an iteration, a NaN in
 * PPO's rollouts, and a model with a NaN that a checkpoint must refuse.
 *
 * Faults come from PROXIMA_FAULT (fault.h); the full disk from a file-size limit set in each
 * rank (ulimit -f, SIGXFSZ ignored), so that writes fail with EFBIG as they would with ENOSPC.
 * After every failure the test checks what a user resumes from: LATEST and the checkpoint it
 * names byte for byte as before, no temporary file, and --resume auto continuing.
 */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "proxima/checkpoint.h"
#include "proxima/finite.h"
#include "proxima/tokenizer.h"
#include "test_proc.h"
#include "test_util.h"

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16 "
#define SFT_ARGS                                                                                   \
  "sft --data ft-data/sft.h5 --steps 12 " SMALL "sft.batch_size=16 sft.micro_batch=8 "             \
  "sft.lr=0.002 sft.warmup_steps=2 sft.log_every=1 sft.eval_every=4 sft.checkpoint_every=4 "       \
  "sft.heldout=32 run.keep_last=0 run.log_level=warn"
#define RM_ARGS                                                                                    \
  "rm --init ft-sft --data ft-data/prefs.h5 rm.epochs=0.2 rm.heldout=32 rm.norm_samples=64 "       \
  "rm.eval_every=0 sample.max_new_tokens=6 run.keep_last=0 run.log_level=warn"
#define PPO_ARGS                                                                                   \
  "ppo --policy ft-sft --reward ft-rm --prompts ft-data/prompts.h5 --eval-prompts '' "             \
  "--iterations 4 ppo.batch_size=16 ppo.minibatch=8 ppo.micro_batch=4 ppo.eval_every=0 "           \
  "ppo.checkpoint_every=2 sample.batch=8 sample.max_new_tokens=6 run.keep_last=0 "                 \
  "run.log_level=warn"

/* PPO writing a rollout buffer every iteration (io/rollout.c: rank 0 writes what every rank
 * sends it). */
#define ROLL_ARGS PPO_ARGS " ppo.rollout_every=1"

/* The next launches talk over TCP (self,tcp) instead of the BTLs the tests' environment names
 * (tests/CMakeLists.txt, PX_TEST_MPI_ENV); over_tcp(0) puts those back. */
static void over_tcp(int on) {
  static char saved[256];
  static int had;
  if (on) {
    const char *btl = getenv("OMPI_MCA_btl");
    had = btl != NULL;
    snprintf(saved, sizeof saved, "%s", btl ? btl : "");
    setenv("OMPI_MCA_btl", "self,tcp", 1);
  } else if (had) {
    setenv("OMPI_MCA_btl", saved, 1);
  } else {
    unsetenv("OMPI_MCA_btl");
  }
}

/* A fresh run in dir stopped by SIGTERM at `fault` (exit 3); then dir/sub ("." for all of dir)
 * is copied to dir.saved/ to compare with after a failure. */
static void stopped_and_saved(const char *fault, const char *args, const char *dir,
                              const char *sub) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s.saved", dir, dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run2_fault(fault, args, dir), 3);
  snprintf(cmd, sizeof cmd, "cp -r %s/%s %s.saved", dir, sub, dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

/* SFT stopped after step 4 in dir: LATEST names ckpt-00000004.h5. Copies of both go to
 * dir.saved/. */
static void stopped_at_step_4(const char *dir) {
  stopped_and_saved("sft.step:4:TERM", SFT_ARGS, dir, "checkpoints");
}

/* dir's checkpoints/ holds exactly LATEST and ckpt-00000004.h5, both as saved: no other
 * checkpoint, no temporary file. */
static void checkpoints_as_saved(const char *dir) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/checkpoints", dir);
  CU_ASSERT_EQUAL(px_count_entries(a), 2);
  const char *files[] = {"LATEST", "ckpt-00000004.h5"};
  for (int i = 0; i < 2; i++) {
    snprintf(a, sizeof a, "%s/checkpoints/%s", dir, files[i]);
    snprintf(b, sizeof b, "%s.saved/%s", dir, files[i]);
    CU_ASSERT(px_proc_same_file(a, b));
  }
}

/* Reads group (with its moments when optim) of checkpoint path into a model of config mc and
 * returns whether every parameter and moment is finite; *optim_step gets the AdamW steps. */
static int checkpoint_finite(const char *path, const char *group, px_gpt_head head, int optim,
                             int64_t *optim_step) {
  px_gpt_config mc;
  px_error err;
  if (px_ckpt_read_config(path, group, &mc, &err) != PX_OK || mc.head != head) return 0;
  px_gpt m;
  px_gpt_build(&m, &mc, 1, mc.max_seq_len, optim);
  px_ckpt_model cm = {group, &m, optim, 0, 0, 0};
  int ok = px_ckpt_read_model(path, &cm, &err) == PX_OK;
  ok = ok && px_first_nonfinite(m.params, m.n_params) == m.n_params;
  ok = ok && (!optim || (px_first_nonfinite(m.m, m.n_params) == m.n_params &&
                         px_first_nonfinite(m.v, m.n_params) == m.n_params));
  if (optim_step) *optim_step = cm.optim_step;
  px_gpt_free(&m);
  return ok;
}

/* ------------------------------------------------------------------------------------------- */

static void test_make_inputs(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf ft-*"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out ft-data synth.n_sft=2000 "
                                        "synth.n_prefs=1000 synth.n_prompts=200 synth.n_eval=16 "
                                        "run.log_level=warn"),
                        0);
  /* the uninterrupted runs the tests compare with, and PPO's inputs */
  CU_ASSERT_EQUAL_FATAL(px_proc_run2_fault(NULL, SFT_ARGS, "ft-sft"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run2_fault(NULL, RM_ARGS, "ft-rm"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run2_fault(NULL, ROLL_ARGS, "ft-roll"), 0);
}

/* One NaN in rank 1's gradient at step 6: the allreduce gives it to both ranks, which skip the
 * step together; it is warned about, counted in metrics.jsonl, and the run finishes with a
 * finite checkpoint that took the other 11 steps. */
static void test_nan_once(void) {
  CU_ASSERT_EQUAL(px_proc_run2_fault("sft.grad:6:NAN@1", SFT_ARGS, "ft-nan1"), 0);
  CU_ASSERT(px_test_contains(px_proc_err, "sft step 6: non-finite gradient, step skipped"));
  char log[1 << 16];
  px_proc_slurp("ft-nan1/proxima.log", log, sizeof log);
  CU_ASSERT(px_test_contains(log, "sft step 6: non-finite gradient"));
  double count[16], loss[16], ref[16];
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-nan1", "sft", "nonfinite_steps", count, 16), 12);
  for (int i = 0; i < 12; i++) CU_ASSERT_EQUAL(count[i], i < 5 ? 0 : 1);
  /* the same run up to step 6 (its loss comes before its update), another one after */
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-nan1", "sft", "loss", loss, 16), 12);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-sft", "sft", "loss", ref, 16), 12);
  for (int i = 0; i < 6; i++) CU_ASSERT_EQUAL(loss[i], ref[i]);
  CU_ASSERT_NOT_EQUAL(loss[6], ref[6]);
  int64_t steps = 0;
  CU_ASSERT(checkpoint_finite("ft-nan1/checkpoints/ckpt-00000012.h5", "policy", PX_GPT_HEAD_LM, 1,
                              &steps));
  CU_ASSERT_EQUAL(steps, 11);
}

/* NaN at every step from the 5th: after run.max_nonfinite = 3 skipped steps in a row the run
 * stops with exit 2 and a message saying what, where and what to try; the checkpoint of step 4
 * and LATEST are byte for byte as before, and nothing else was written. */
static void test_nan_for_good(void) {
  stopped_at_step_4("ft-div");
  CU_ASSERT_EQUAL(px_proc_run2_fault("sft.grad:1+:NAN",
                                     SFT_ARGS " run.max_nonfinite=3 --resume auto", "ft-div"),
                  2);
  CU_ASSERT(px_test_contains(px_proc_err, "not finite (NaN or infinite) at 3 optimizer steps in "
                                          "a row, steps 5 to 7 (run.max_nonfinite = 3)"));
  CU_ASSERT(px_test_contains(px_proc_err, "Try a lower sft.lr"));
  CU_ASSERT(px_test_contains(px_proc_err, "without writing a checkpoint"));
  checkpoints_as_saved("ft-div");
  double count[16];
  CU_ASSERT_EQUAL(px_proc_metric("ft-div", "sft", "nonfinite_steps", count, 16), 6);
  CU_ASSERT_EQUAL(count[5], 2); /* step 7's record is not written: the run stopped first */
}

/* A full disk at the second checkpoint (each rank limited to under a checkpoint's size): exit 2
 * naming the file and the reason, no temporary file, LATEST and the first checkpoint as they
 * were; then --resume auto, room again, ends as the uninterrupted run. Shared memory between
 * the ranks lives in files too, so this launch talks over TCP. */
static void test_disk_full(void) {
  stopped_at_step_4("ft-full");
  char launch[1024];
  snprintf(launch, sizeof launch, "%s sh -c 'ulimit -f 1200; trap \"\" XFSZ; exec \"$@\"' sh",
           getenv("PX_LAUNCH_2"));
  over_tcp(1);
  int rc = px_proc_run(launch, SFT_ARGS " --run ft-full --resume auto");
  over_tcp(0);
  CU_ASSERT_EQUAL(rc, 2);
  CU_ASSERT(px_test_contains(px_proc_err, "cannot write checkpoint "
                                          "ft-full/checkpoints/ckpt-00000008.h5: no room"));
  CU_ASSERT(px_test_contains(px_proc_err, "LATEST and the older checkpoints are kept"));
  checkpoints_as_saved("ft-full");
  CU_ASSERT_EQUAL(px_proc_run2_fault(NULL, SFT_ARGS " --resume auto", "ft-full"), 0);
  CU_ASSERT(px_proc_same_file("ft-sft/metrics.jsonl", "ft-full/metrics.jsonl"));
}

/* A write that fails on rank 1 alone (the ckpt.write fault): every rank stops with exit 2, the
 * message names the file, and the checkpoint directory holds nothing. */
static void test_failed_write_on_one_rank(void) {
  CU_ASSERT_EQUAL(px_proc_run2_fault("ckpt.write:1:FAIL@1", SFT_ARGS, "ft-fail"), 2);
  CU_ASSERT(px_test_contains(px_proc_err, "cannot write checkpoint "
                                          "ft-fail/checkpoints/ckpt-00000004.h5"));
  CU_ASSERT_EQUAL(px_count_entries("ft-fail/checkpoints"), 0);
}

/* A run directory that cannot be made (its parent is a file; chmod stops no root): exit 1
 * naming the path, before any step. */
static void test_unusable_run_dir(void) {
  CU_ASSERT_EQUAL_FATAL(px_test_write("ft-file", "x", 1), 0);
  CU_ASSERT_EQUAL(px_proc_run2_fault(NULL, SFT_ARGS, "ft-file/run"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "ft-file exists and is not a directory"));
}

/* Rank 1 killed (SIGKILL) in the middle of a step or iteration, the other waiting for it in the
 * gradient allreduce: the whole launch ends, non-zero, within 60 s, and LATEST, if any, names
 * an intact checkpoint. */
static void kill_rank_1(const char *fault, const char *args, const char *dir) {
  double t0 = px_proc_seconds();
  int rc = px_proc_run2_fault(fault, args, dir);
  double took = px_proc_seconds() - t0;
  printf("\n    %s: exit %d after %.1f s", fault, rc, took);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT(took < 60);
  char path[512], name[256];
  snprintf(path, sizeof path, "%s/checkpoints/LATEST", dir);
  px_proc_slurp(path, name, sizeof name);
  name[strcspn(name, "\n")] = '\0';
  if (name[0]) {
    px_error err;
    snprintf(path, sizeof path, "%s/checkpoints/%s", dir, name);
    CU_ASSERT_EQUAL(px_ckpt_check(path, &err), PX_OK);
  }
}

static void test_rank_killed(void) {
  kill_rank_1("sft.grad:6:KILL@1", SFT_ARGS, "ft-kill-sft");
  kill_rank_1("ppo.policy.grad:7:KILL@1", PPO_ARGS, "ft-kill-ppo");
}

/* PPO with a rollout buffer per iteration, stopped after iteration 2 in dir: LATEST names
 * ckpt-00000002.h5, rollouts/ holds iterations 1 and 2. All of dir is copied to dir.saved/. */
static void ppo_stopped_at_2(const char *dir) {
  stopped_and_saved("ppo.iteration:2:TERM", ROLL_ARGS, dir, ".");
}

/* After a failed rollout write in iteration 3: dir's checkpoints/ and rollouts/ hold exactly
 * what they held at the stop, byte for byte (no temporary file, no iteration-3 buffer). */
static void ppo_as_saved(const char *dir) {
  const char *files[] = {"checkpoints/LATEST", "checkpoints/ckpt-00000002.h5",
                         "rollouts/rollouts-00000001.h5", "rollouts/rollouts-00000002.h5"};
  char a[512], b[512];
  for (int sub = 0; sub < 2; sub++) {
    snprintf(a, sizeof a, "%s/%s", dir, sub ? "rollouts" : "checkpoints");
    CU_ASSERT_EQUAL(px_count_entries(a), 2);
  }
  for (int i = 0; i < 4; i++) {
    snprintf(a, sizeof a, "%s/%s", dir, files[i]);
    snprintf(b, sizeof b, "%s.saved/%s", dir, files[i]);
    CU_ASSERT(px_proc_same_file(a, b));
  }
}

/* `--resume auto` in dir, no fault: the run ends as the uninterrupted ft-roll, with the same
 * metrics and the same bytes in iteration 3's and 4's rollout buffers. */
static void ppo_resumes_exactly(const char *dir) {
  CU_ASSERT_EQUAL(px_proc_run2_fault(NULL, ROLL_ARGS " --resume auto", dir), 0);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/metrics.jsonl", dir);
  CU_ASSERT(px_proc_same_file(a, "ft-roll/metrics.jsonl"));
  for (int it = 3; it <= 4; it++) {
    snprintf(a, sizeof a, "%s/rollouts/rollouts-%08d.h5", dir, it);
    snprintf(b, sizeof b, "ft-roll/rollouts/rollouts-%08d.h5", it);
    CU_ASSERT(px_proc_same_file(a, b));
  }
}

/* The size of path in bytes, -1 when it cannot be read. */
static long file_bytes(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* `--resume auto` in dir with rank `rank` under a file-size limit of kb KiB (SIGXFSZ ignored,
 * so a write past it fails with EFBIG as a full disk fails with ENOSPC); over TCP, since shared
 * memory between the ranks lives in files too. Returns the exit status; *took the seconds. */
static int resume_with_limit(const char *dir, int rank, long kb, double *took) {
  char launch[1024];
  snprintf(launch, sizeof launch,
           "%s sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = %d ]; then ulimit -f %ld; fi; "
           "trap \"\" XFSZ; exec \"$@\"' sh",
           getenv("PX_LAUNCH_2"), rank, kb);
  over_tcp(1);
  double t0 = px_proc_seconds();
  int rc = px_proc_run(launch, ROLL_ARGS " --run %s --resume auto", dir);
  *took = px_proc_seconds() - t0;
  over_tcp(0);
  return rc;
}

/* The writer's disk fills while it writes iteration 3's rollout buffer: a limit under that
 * file's size on rank 0, which writes it (the files rank 0 writes before it, config.ini, the
 * logs, are smaller). Every rank stops within seconds, exit 2, with a message naming the file,
 * the rank and the reason; the temporary file is gone, LATEST, the checkpoint and the earlier
 * buffers are as they were; then --resume auto, room again, continues exactly. */
static void test_rollout_disk_full(void) {
  ppo_stopped_at_2("ft-rfull");
  long need = file_bytes("ft-roll/rollouts/rollouts-00000003.h5");
  const char *before[] = {"ft-rfull/config.ini", "ft-rfull/metrics.jsonl", "ft-rfull/proxima.log"};
  long kb = need / 1024 - 1, most = 0;
  for (int i = 0; i < 3; i++) most = file_bytes(before[i]) > most ? file_bytes(before[i]) : most;
  printf("\n    rollout buffer %ld bytes, limit %ld KiB, largest other file %ld bytes", need, kb,
         most);
  CU_ASSERT_FATAL(most < kb * 1024 - 4096); /* room for what else rank 0 writes first */
  double took;
  CU_ASSERT_EQUAL(resume_with_limit("ft-rfull", 0, kb, &took), 2);
  CU_ASSERT(took < 30);
  CU_ASSERT(px_test_contains(px_proc_err, "cannot write rollout buffer "
                                          "ft-rfull/rollouts/rollouts-00000003.h5 (rank 0)"));
  CU_ASSERT(px_test_contains(px_proc_err, "(rank 0): File too large"));
  ppo_as_saved("ft-rfull");
  ppo_resumes_exactly("ft-rfull");
}

/* The launch: rank 1 under a file-size limit of 20 KiB. Rank 1 writes no file (the
 * rollout buffers go through rank 0), so the run goes on to the end: the same files as
 * without the limit. */
static void test_rollout_limit_on_rank_1(void) {
  ppo_stopped_at_2("ft-rlim1");
  double took;
  CU_ASSERT_EQUAL(resume_with_limit("ft-rlim1", 1, 20, &took), 0);
  char a[512], b[512];
  for (int it = 1; it <= 4; it++) {
    snprintf(a, sizeof a, "ft-rlim1/rollouts/rollouts-%08d.h5", it);
    snprintf(b, sizeof b, "ft-roll/rollouts/rollouts-%08d.h5", it);
    CU_ASSERT(px_proc_same_file(a, b));
  }
  CU_ASSERT(px_proc_same_file("ft-rlim1/metrics.jsonl", "ft-roll/metrics.jsonl"));
}

/* Iteration 3's rollout write failing on each rank in turn (the rollout.write fault): on rank 0
 * the file's write, on rank 1 its part of it. Exit 2 within seconds naming the file and the
 * rank, nothing left behind, and the run resumes exactly. */
static void test_rollout_write_fails_on_each_rank(void) {
  for (int rank = 0; rank < 2; rank++) {
    char fault[64], want[160];
    snprintf(fault, sizeof fault, "rollout.write:1:FAIL@%d", rank);
    ppo_stopped_at_2("ft-rfail");
    double t0 = px_proc_seconds();
    CU_ASSERT_EQUAL(px_proc_run2_fault(fault, ROLL_ARGS " --resume auto", "ft-rfail"), 2);
    CU_ASSERT(px_proc_seconds() - t0 < 30);
    snprintf(want, sizeof want,
             "cannot write rollout buffer ft-rfail/rollouts/rollouts-00000003.h5 (rank %d)", rank);
    CU_ASSERT(px_test_contains(px_proc_err, want));
    ppo_as_saved("ft-rfail");
    ppo_resumes_exactly("ft-rfail");
  }
}

/* A held-out evaluation whose generation fails on rank 1 (the generate fault): before the first
 * iteration (pi_base's accuracy, arrival 1) and in iteration 1 (ppo.eval_every = 1: arrival 2
 * generates the rollouts, 3 evaluates). The run stops with exit 2 naming the evaluation, instead
 * of reporting an accuracy from the ranks that did generate. */
static void test_ppo_eval_generation_fails(void) {
  const char *faults[] = {"generate:1:FAIL@1", "generate:3:FAIL@1"};
  for (int k = 0; k < 2; k++) {
    CU_ASSERT_EQUAL(system("rm -rf ft-ppo-eval"), 0);
    CU_ASSERT_EQUAL(px_proc_run2_fault(faults[k],
                                       PPO_ARGS " --eval-prompts ft-data/eval.h5 --iterations 2 "
                                                "ppo.eval_every=1",
                                       "ft-ppo-eval"),
                    2);
    CU_ASSERT(px_test_contains(px_proc_err, "ppo: held-out evaluation on ft-data/eval.h5: "
                                            "generation of 8 prompts failed"));
  }
}

/* A NaN in one collected rollout (rank 1's first response, iteration 2): that response is left
 * out of the update and counted; the run finishes with finite models. */
static void test_ppo_nan_rollout(void) {
  CU_ASSERT_EQUAL(px_proc_run2_fault("ppo.rollout:2:NAN@1", PPO_ARGS, "ft-ppo"), 0);
  CU_ASSERT(px_test_contains(px_proc_err, "ppo it 2: 1 of 16 rollouts had a non-finite"));
  double dropped[8], skipped[8];
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-ppo", "ppo", "nonfinite_rollouts", dropped, 8), 4);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-ppo", "ppo", "nonfinite_steps", skipped, 8), 4);
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(dropped[i], i == 1 ? 1 : 0);
    CU_ASSERT_EQUAL(skipped[i], 0);
  }
  const char *path = "ft-ppo/checkpoints/ckpt-00000004.h5";
  CU_ASSERT(checkpoint_finite(path, "policy", PX_GPT_HEAD_LM, 1, NULL));
  CU_ASSERT(checkpoint_finite(path, "value", PX_GPT_HEAD_SCALAR, 1, NULL));
}

/* A NaN in a PPO gradient: the step of that model is skipped and counted. */
static void test_ppo_nan_gradient(void) {
  CU_ASSERT_EQUAL(px_proc_run2_fault("ppo.value.grad:3:NAN", PPO_ARGS, "ft-ppo-grad"), 0);
  CU_ASSERT(px_test_contains(px_proc_err, "ppo value step 3: non-finite gradient"));
  double skipped[8];
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("ft-ppo-grad", "ppo", "nonfinite_steps", skipped, 8), 4);
  /* 2 epochs of 2 minibatches per iteration: the value model's step 3 is in iteration 1 */
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(skipped[i], 1);
}

/* px_ckpt_write refuses a model holding a NaN, naming the tensor, and leaves the directory as it
 * was: the previous checkpoint, LATEST, no temporary file. */
static void test_checkpoint_refuses_nonfinite(void) {
  px_gpt m;
  px_gpt_config mc = {PX_TOK_BYTE_IDS, 8, 1, 1, 8, PX_GPT_HEAD_LM};
  px_gpt_build(&m, &mc, 1, 8, 1);
  px_gpt_init(&m, 3);
  px_ckpt_model cm = {"policy", &m, 1, 0, 0, 0};
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  px_error err;
  CU_ASSERT_EQUAL_FATAL(
      px_ckpt_write("ft-nonfinite", &(px_ckpt){1, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err), PX_OK);
  CU_ASSERT_EQUAL_FATAL(system("cp ft-nonfinite/LATEST ft-nonfinite/ckpt-00000001.h5 ."), 0);
  const px_gpt_tensor *last = &m.tensors[m.n_tensors - 1];
  m.params[last->offset + 1] = NAN;
  CU_ASSERT_EQUAL(
      px_ckpt_write("ft-nonfinite", &(px_ckpt){2, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err),
      PX_ERUN);
  char want[128];
  snprintf(want, sizeof want, "/policy/%s holds a non-finite value (nan at element 1)", last->name);
  CU_ASSERT(px_test_contains(err.msg, want));
  m.params[last->offset + 1] = 0;
  m.v[5] = INFINITY;
  CU_ASSERT_EQUAL(
      px_ckpt_write("ft-nonfinite", &(px_ckpt){2, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err),
      PX_ERUN);
  CU_ASSERT(px_test_contains(err.msg, "/optim/policy/v/"));
  CU_ASSERT_EQUAL(px_count_entries("ft-nonfinite"), 2);
  CU_ASSERT(px_proc_same_file("LATEST", "ft-nonfinite/LATEST"));
  CU_ASSERT(px_proc_same_file("ckpt-00000001.h5", "ft-nonfinite/ckpt-00000001.h5"));
  remove("LATEST"), remove("ckpt-00000001.h5");
  px_gpt_free(&m);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"inputs and uninterrupted runs", test_make_inputs},
      {"a NaN in one rank's gradient, once", test_nan_once},
      {"NaN at every step: stop after run.max_nonfinite", test_nan_for_good},
      {"disk full during a checkpoint, then resume", test_disk_full},
      {"a checkpoint write failing on one rank", test_failed_write_on_one_rank},
      {"an unusable run directory", test_unusable_run_dir},
      {"a rank killed mid-iteration", test_rank_killed},
      {"ppo: the rollout writer's disk full, then resume", test_rollout_disk_full},
      {"ppo: rank 1 under a file-size limit", test_rollout_limit_on_rank_1},
      {"ppo: a rollout write failing on each rank", test_rollout_write_fails_on_each_rank},
      {"ppo: a held-out evaluation's generation failing", test_ppo_eval_generation_fails},
      {"ppo: a NaN in a rollout", test_ppo_nan_rollout},
      {"ppo: a NaN in a gradient", test_ppo_nan_gradient},
      {"a checkpoint refuses a non-finite model", test_checkpoint_refuses_nonfinite},
      CU_TEST_INFO_NULL};
  px_test_suite("faults", tests);
}
