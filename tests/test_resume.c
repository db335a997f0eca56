/*
 * test_resume.c — restartable runs: checkpoints hold the whole state, a run stopped by a signal
 * and resumed with --resume auto ends exactly where an uninterrupted run ends, a checkpoint
 * moves between rank counts, a kill -9 at any stage of a checkpoint write never leaves LATEST
 * naming an incomplete file, and a damaged checkpoint is skipped (auto) or refused (a path).
 *
 * "Exactly" is checked on the files: metrics.jsonl byte for byte, and the final checkpoints'
 * groups with h5diff (the root attribute config differs: it holds run.dir).
 *
 * Stops at a known step come from PROXIMA_FAULT (fault.h), which raises a real SIGTERM in
 * every rank at that step; one test also sends SIGUSR1 from outside, to mpiexec, as a user or
 * a batch system does.
 */
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proxima/checkpoint.h"
#include "proxima/ppo.h"
#include "proxima/rm.h"
#include "proxima/sft.h"
#include "proxima/tokenizer.h"
#include "test_proc.h"
#include "test_util.h"

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16 "
#define SFT_ARGS                                                                                   \
  "sft --data rs-data/sft.h5 --steps 12 " SMALL "sft.batch_size=16 sft.micro_batch=8 "             \
  "sft.lr=0.002 sft.warmup_steps=2 sft.log_every=1 sft.eval_every=4 sft.checkpoint_every=4 "       \
  "sft.heldout=32 run.keep_last=0 run.log_level=warn"
#define RM_ARGS                                                                                    \
  "rm --init rs-sft --data rs-data/prefs.h5 rm.epochs=0.4 rm.heldout=32 rm.norm_samples=64 "       \
  "rm.log_every=1 rm.eval_every=3 rm.checkpoint_every=3 sample.max_new_tokens=6 "                  \
  "run.keep_last=0 run.log_level=warn"
#define PPO_ARGS                                                                                   \
  "ppo --policy rs-sft --reward rs-rm --prompts rs-data/prompts.h5 "                               \
  "--eval-prompts rs-data/eval.h5 --iterations 6 ppo.batch_size=16 ppo.minibatch=8 "               \
  "ppo.micro_batch=4 ppo.eval_every=2 ppo.checkpoint_every=2 sample.batch=8 "                      \
  "sample.max_new_tokens=6 ppo.lr=0.0003 ppo.adaptive_kl=1 run.keep_last=0 run.log_level=warn"

static const char *launch2(void) { return getenv("PX_LAUNCH_2"); }

/* Whether two checkpoints hold the same data in the given groups (h5diff, exact). */
static int same_groups(const char *a, const char *b, const char *groups) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "for g in %s; do h5diff -q %s %s /$g /$g >/dev/null 2>&1 || { echo \"differs: /$g\"; "
           "exit 1; }; done",
           groups, a, b);
  return system(cmd) == 0;
}

/* The file LATEST names in dir/checkpoints ("" if none). */
static const char *latest_of(const char *dir) {
  static char name[256];
  char path[512];
  snprintf(path, sizeof path, "%s/checkpoints/LATEST", dir);
  px_proc_slurp(path, name, sizeof name);
  name[strcspn(name, "\n")] = '\0';
  return name;
}

static void test_make_inputs(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rs-*"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out rs-data synth.n_sft=2000 "
                                        "synth.n_prefs=1000 synth.n_prompts=200 synth.n_eval=16 "
                                        "run.log_level=warn"),
                        0);
  /* the uninterrupted runs every test compares with */
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch2(), SFT_ARGS " --run rs-sft"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch2(), RM_ARGS " --run rs-rm"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch2(), PPO_ARGS " --run rs-ppo"), 0);
}

/* Every state struct is exactly its X-macro's fields (8 bytes each): a member added to the
 * struct by hand, outside the table that writes and reads the checkpoint, fails this. And the
 * table round-trips through a checkpoint. */
static void test_state_tables(void) {
  CU_ASSERT_EQUAL(sizeof(px_sft_state), 6 * 8);
  CU_ASSERT_EQUAL(sizeof(px_rm_state), 7 * 8);
  CU_ASSERT_EQUAL(sizeof(px_ppo_state), 10 * 8);
  px_ppo_state st, back;
  int64_t *ints = (int64_t *)&st;
  for (size_t i = 0; i < sizeof st / 8; i++) ints[i] = (int64_t)(1000 + 17 * i);
  st.beta = 0.0123456789, st.base_gold = -0.5;
  px_ckpt_var vars[] = {PX_PPO_STATE(PX_CKPT_VAR, &st)};
  int n = (int)(sizeof vars / sizeof vars[0]);
  CU_ASSERT_EQUAL(n * 8, (int)sizeof st);
  px_gpt m;
  px_gpt_config mc = {PX_TOK_BYTE_IDS, 8, 1, 1, 8, PX_GPT_HEAD_LM};
  px_gpt_build(&m, &mc, 1, 8, 0);
  px_gpt_init(&m, 3);
  px_ckpt_model cm = {"policy", &m, 0, 0, 0, 0};
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  px_error err;
  CU_ASSERT_EQUAL_FATAL(
      px_ckpt_write("rs-state", &(px_ckpt){7, 7, "", &cm, 1, vars, n, &bytes}, 0, &err), PX_OK);
  memset(&back, 0, sizeof back);
  px_ckpt_var into[] = {PX_PPO_STATE(PX_CKPT_VAR, &back)};
  CU_ASSERT_EQUAL(px_ckpt_read_state("rs-state/ckpt-00000007.h5", into, n, &err), PX_OK);
  CU_ASSERT_EQUAL(memcmp(&st, &back, sizeof st), 0);
  CU_ASSERT_EQUAL(px_ckpt_check("rs-state/ckpt-00000007.h5", &err), PX_OK);
  px_gpt_free(&m);
}

/* Stopped by SIGTERM after a step, resumed: the same files as the uninterrupted run. */
static void stop_and_resume(const char *args, const char *full, const char *dir, const char *fault,
                            const char *stop_ckpt, const char *final_ckpt, const char *groups) {
  CU_ASSERT_EQUAL(px_proc_run2_fault(fault, args, dir), 3);
  CU_ASSERT(px_test_contains(px_proc_err, "stopped by a signal"));
  CU_ASSERT_STRING_EQUAL(latest_of(dir), stop_ckpt);
  CU_ASSERT_EQUAL(px_proc_run(launch2(), "%s --run %s --resume auto", args, dir), 0);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/metrics.jsonl", full);
  snprintf(b, sizeof b, "%s/metrics.jsonl", dir);
  CU_ASSERT(px_proc_same_file(a, b));
  snprintf(a, sizeof a, "%s/checkpoints/%s", full, final_ckpt);
  snprintf(b, sizeof b, "%s/checkpoints/%s", dir, final_ckpt);
  CU_ASSERT(same_groups(a, b, groups));
}

static void test_sft_resume(void) {
  stop_and_resume(SFT_ARGS, "rs-sft", "rs-sft-stop", "sft.step:6:TERM", "ckpt-00000006.h5",
                  "ckpt-00000012.h5", "policy optim state");
}

static void test_rm_resume(void) {
  stop_and_resume(RM_ARGS, "rs-rm", "rs-rm-stop", "rm.step:5:TERM", "ckpt-00000005.h5",
                  "ckpt-00000008.h5", "reward optim state");
}

static void test_ppo_resume(void) {
  stop_and_resume(PPO_ARGS, "rs-ppo", "rs-ppo-stop", "ppo.iteration:3:TERM", "ckpt-00000003.h5",
                  "ckpt-00000006.h5", "policy reference value reward optim state");
}

/* A checkpoint written by 2 ranks continues on 1, and one written by 1 continues on 2: the same
 * run up to float summation order (README: 1e-4 relative on the losses). */
static void test_rank_count_change(void) {
  for (int from = 1; from <= 2; from++) {
    char dir[64];
    snprintf(dir, sizeof dir, "rs-sft-from%d", from);
    setenv("PROXIMA_FAULT", "sft.step:6:TERM", 1);
    CU_ASSERT_EQUAL(px_proc_run(from == 2 ? launch2() : "", SFT_ARGS " --run %s", dir), 3);
    unsetenv("PROXIMA_FAULT");
    CU_ASSERT_EQUAL(
        px_proc_run(from == 2 ? "" : launch2(), SFT_ARGS " --run %s --resume auto", dir), 0);
    double a[16], b[16];
    int n = px_proc_metric("rs-sft", "sft", "loss", a, 16);
    CU_ASSERT_EQUAL(n, 12);
    CU_ASSERT_EQUAL(px_proc_metric(dir, "sft", "loss", b, 16), n);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / fabs(a[i]));
    printf("\n    written by %d rank(s), resumed on %d: loss differs by %.1e relative at most",
           from, 3 - from, worst);
    CU_ASSERT(worst <= 1e-4);
  }
}

/* kill -9 of every rank at each stage of the second checkpoint's write: LATEST names an intact
 * checkpoint, and --resume auto ends with the uninterrupted run's files. */
static void test_kill_during_checkpoint(void) {
  const char *points[] = {"created", "written", "closed", "renamed", "latest"};
  for (int i = 0; i < 5; i++) {
    char dir[64], fault[64], path[512];
    snprintf(dir, sizeof dir, "rs-kill-%s", points[i]);
    snprintf(fault, sizeof fault, "ckpt.%s:2", points[i]);
    setenv("PROXIMA_FAULT", fault, 1);
    int rc = px_proc_run(launch2(), SFT_ARGS " --run %s", dir);
    unsetenv("PROXIMA_FAULT");
    CU_ASSERT_NOT_EQUAL(rc, 0);
    const char *named = latest_of(dir);
    /* before the rename LATEST still names the first checkpoint; after it, the second */
    CU_ASSERT_STRING_EQUAL(named, i < 4 ? "ckpt-00000004.h5" : "ckpt-00000008.h5");
    snprintf(path, sizeof path, "%s/checkpoints/%s", dir, named);
    px_error err;
    CU_ASSERT_EQUAL(px_ckpt_check(path, &err), PX_OK);
    CU_ASSERT_EQUAL(px_proc_run(launch2(), SFT_ARGS " --run %s --resume auto", dir), 0);
    char a[512];
    snprintf(a, sizeof a, "%s/metrics.jsonl", dir);
    CU_ASSERT(px_proc_same_file("rs-sft/metrics.jsonl", a));
    snprintf(a, sizeof a, "%s/checkpoints/ckpt-00000012.h5", dir);
    CU_ASSERT(same_groups("rs-sft/checkpoints/ckpt-00000012.h5", a, "policy optim state"));
    snprintf(a, sizeof a, "ls -a %s/checkpoints | grep -q tmp", dir);
    CU_ASSERT_NOT_EQUAL(system(a), 0); /* the next checkpoint cleared what the kill left */
  }
}

/* Flips one byte in the middle of dataset name's first chunk. */
static int flip_byte(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
  haddr_t addr = 0;
  hsize_t size = 0;
  unsigned mask;
  hsize_t off[3];
  hid_t space = d < 0 ? -1 : H5Dget_space(d);
  int ok = space >= 0 && H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size) >= 0;
  if (space >= 0) H5Sclose(space);
  if (d >= 0) H5Dclose(d);
  if (f >= 0) H5Fclose(f);
  if (!ok || size < 8) return 0;
  FILE *fp = fopen(path, "r+b");
  if (!fp) return 0;
  long at = (long)(addr + size / 2);
  int c = fseek(fp, at, SEEK_SET) == 0 ? fgetc(fp) : EOF;
  ok = c != EOF && fseek(fp, at, SEEK_SET) == 0 && fputc(c ^ 0x5a, fp) != EOF;
  return fclose(fp) == 0 && ok;
}

/* A damaged newest checkpoint: --resume auto warns, naming it, and continues from the one
 * before; --resume with its path is an error naming the dataset. */
static void test_damaged_checkpoint(void) {
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rs-dmg && cp -r rs-sft rs-dmg"), 0);
  CU_ASSERT_FATAL(flip_byte("rs-dmg/checkpoints/ckpt-00000012.h5", "/policy/wte"));
  px_error err;
  CU_ASSERT_EQUAL(px_ckpt_check("rs-dmg/checkpoints/ckpt-00000012.h5", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "/policy/wte"));
  CU_ASSERT_EQUAL(px_proc_run("", SFT_ARGS " --run rs-dmg --resume "
                                           "rs-dmg/checkpoints/ckpt-00000012.h5"),
                  1);
  CU_ASSERT(px_test_contains(px_proc_err, "/policy/wte"));
  CU_ASSERT_EQUAL(px_proc_run(launch2(), SFT_ARGS " --run rs-dmg --resume auto"), 0);
  CU_ASSERT(px_test_contains(px_proc_err, "skipping damaged checkpoint"));
  CU_ASSERT(px_test_contains(px_proc_err, "ckpt-00000012.h5"));
  CU_ASSERT(px_proc_same_file("rs-sft/metrics.jsonl", "rs-dmg/metrics.jsonl"));
  CU_ASSERT(same_groups("rs-sft/checkpoints/ckpt-00000012.h5",
                        "rs-dmg/checkpoints/ckpt-00000012.h5", "policy optim state"));
}

/* Starting afresh where checkpoints are is refused, and touches nothing. */
static void test_fresh_start_refused(void) {
  struct stat before, after;
  CU_ASSERT_EQUAL_FATAL(stat("rs-sft/checkpoints/ckpt-00000012.h5", &before), 0);
  CU_ASSERT_EQUAL(px_proc_run("", SFT_ARGS " --run rs-sft"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "--resume auto"));
  CU_ASSERT_EQUAL_FATAL(stat("rs-sft/checkpoints/ckpt-00000012.h5", &after), 0);
  CU_ASSERT_EQUAL(before.st_mtime, after.st_mtime);
  CU_ASSERT_EQUAL(before.st_ino, after.st_ino);
  CU_ASSERT_STRING_EQUAL(latest_of("rs-sft"), "ckpt-00000012.h5");
}

/* Starts `sh -c CMD` in the background; returns its pid (the shell execs the command). */
static pid_t spawn(const char *cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Waits until path holds at least `lines` lines (up to 60 s). */
static int wait_lines(const char *path, int lines) {
  for (int tries = 0; tries < 6000; tries++) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    if (n >= lines) return 1;
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
  return 0;
}

#define LONG_SFT                                                                                   \
  "sft --data rs-data/sft.h5 --steps 600 " SMALL "sft.batch_size=16 sft.micro_batch=16 "           \
  "sft.log_every=1 sft.eval_every=0 sft.checkpoint_every=0 sft.heldout=32 run.log_level=warn"

static int run_to_exit(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* SIGUSR1 sent to mpiexec, which passes it on to the ranks: a checkpoint at the next step, exit
 * 3, and the resumed run ends as the uninterrupted one. */
static void test_signal_to_mpiexec(void) {
  char cmd[4096];
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch2(), LONG_SFT " --run rs-long"), 0);
  snprintf(cmd, sizeof cmd, "exec %s %s " LONG_SFT " --run rs-long-stop >/dev/null 2>rs-long.err",
           launch2(), getenv("PX_PROXIMA"));
  pid_t pid = spawn(cmd);
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT(wait_lines("rs-long-stop/metrics.jsonl", 20));
  kill(pid, SIGUSR1);
  CU_ASSERT_EQUAL(run_to_exit(pid), 3);
  CU_ASSERT_NOT_EQUAL(latest_of("rs-long-stop")[0], '\0');
  CU_ASSERT_EQUAL(px_proc_run(launch2(), LONG_SFT " --run rs-long-stop --resume auto"), 0);
  CU_ASSERT(px_proc_same_file("rs-long/metrics.jsonl", "rs-long-stop/metrics.jsonl"));
  CU_ASSERT(same_groups("rs-long/checkpoints/ckpt-00000600.h5",
                        "rs-long-stop/checkpoints/ckpt-00000600.h5", "policy optim state"));
}

/* A second signal ends the process at once (128 + the signal) and leaves no checkpoint
 * half-named: LATEST, if there is one, names an intact file. */
static void test_second_signal(void) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "exec %s " LONG_SFT " --run rs-twice >/dev/null 2>&1",
           getenv("PX_PROXIMA"));
  pid_t pid = spawn(cmd);
  CU_ASSERT_FATAL(pid > 0);
  CU_ASSERT(wait_lines("rs-twice/metrics.jsonl", 5));
  kill(pid, SIGTERM);
  kill(pid, SIGTERM);
  int rc = run_to_exit(pid);
  CU_ASSERT(rc == 128 + SIGTERM || rc == 3); /* 3 only if the first stop won the race */
  const char *named = latest_of("rs-twice");
  if (named[0]) {
    char path[512];
    px_error err;
    snprintf(path, sizeof path, "rs-twice/checkpoints/%s", named);
    CU_ASSERT_EQUAL(px_ckpt_check(path, &err), PX_OK);
  }
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"inputs and uninterrupted runs", test_make_inputs},
      {"state tables are the whole state", test_state_tables},
      {"sft: SIGTERM after step 6, resume auto", test_sft_resume},
      {"rm: SIGTERM after step 5, resume auto", test_rm_resume},
      {"ppo: SIGTERM after iteration 3, resume auto", test_ppo_resume},
      {"2 ranks -> 1 and 1 -> 2", test_rank_count_change},
      {"kill -9 during a checkpoint write", test_kill_during_checkpoint},
      {"a damaged checkpoint", test_damaged_checkpoint},
      {"fresh start over checkpoints refused", test_fresh_start_refused},
      {"SIGUSR1 to mpiexec", test_signal_to_mpiexec},
      {"a second signal", test_second_signal},
      CU_TEST_INFO_NULL};
  px_test_suite("restartable runs", tests);
}
