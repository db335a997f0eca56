/*
 * test_runlock.c — the run directory's lock (issue 20): a second process on a run directory is
 * refused with a message naming the holder and changes nothing there, and a holder killed with
 * kill -9 leaves no lock behind, so `--resume auto` continues the run.
 *
 * The unit part takes the lock in this process and tries it from forked children; the process
 * part runs real 2-rank `proxima sft` launches on one directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proxima/runlock.h"
#include "test_proc.h"
#include "test_util.h"

/* px_runlock_acquire(dir) in a forked child (which shares none of this process's open files
 * but the ones it inherits): its status, and its message into msg (n bytes). */
static px_status acquire_in_child(const char *dir, char *msg, size_t n) {
  struct {
    px_status status;
    px_error err;
  } res;
  int fds[2];
  CU_ASSERT_FATAL(pipe(fds) == 0);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    px_runlock lock;
    memset(&res, 0, sizeof res);
    res.status = px_runlock_acquire(&lock, dir, &res.err);
    ssize_t put = write(fds[1], &res, sizeof res);
    px_runlock_release(&lock);
    _exit(put == (ssize_t)sizeof res ? 0 : 1);
  }
  close(fds[1]);
  size_t got = 0;
  while (got < sizeof res) {
    ssize_t r = read(fds[0], (char *)&res + got, sizeof res - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fds[0]);
  int status;
  CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
  CU_ASSERT_FATAL(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == sizeof res);
  snprintf(msg, n, "%s", res.err.msg);
  return res.status;
}

/* Held here: a child is refused with PX_EINPUT naming this PID and host, and so is a second
 * acquire in this process, which must not drop the first lock; released: the child gets it. */
static void test_lock_in_process(void) {
  const char *dir = "rl-unit";
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rl-unit && mkdir rl-unit"), 0);
  px_runlock lock, again;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_runlock_acquire(&lock, dir, &err), PX_OK);
  CU_ASSERT(lock.held);
  CU_ASSERT((fcntl(lock.fd, F_GETFD) & FD_CLOEXEC) != 0); /* not inherited by an exec */

  char host[256], want[512], msg[2048];
  CU_ASSERT_EQUAL_FATAL(gethostname(host, sizeof host), 0);
  host[sizeof host - 1] = '\0';
  snprintf(want, sizeof want, "run directory rl-unit is in use by PID %ld on %s since ",
           (long)getpid(), host);
  CU_ASSERT_EQUAL(acquire_in_child(dir, msg, sizeof msg), PX_EINPUT);
  CU_ASSERT(px_test_contains(msg, want));

  CU_ASSERT_EQUAL(px_runlock_acquire(&again, dir, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, want));
  CU_ASSERT_FALSE(again.held);
  CU_ASSERT_EQUAL(acquire_in_child(dir, msg, sizeof msg), PX_EINPUT); /* still held */

  px_runlock_release(&lock);
  CU_ASSERT_FALSE(lock.held);
  px_runlock_release(&lock); /* a second release does nothing */
  CU_ASSERT_EQUAL(acquire_in_child(dir, msg, sizeof msg), PX_OK);
  CU_ASSERT_EQUAL(px_test_file_size("rl-unit/.lock"), 0); /* the child's record cleared */
  CU_ASSERT_EQUAL(px_runlock_acquire(&lock, dir, &err), PX_OK);
  px_runlock_release(&lock);
}

/* A symbolic link planted as .lock is refused, and the file it points to is not touched. */
static void test_lock_file_symlink(void) {
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rl-link && mkdir rl-link && echo keep >rl-link-target && "
                               "ln -s ../rl-link-target rl-link/.lock"),
                        0);
  px_runlock lock;
  px_error err;
  CU_ASSERT_EQUAL(px_runlock_acquire(&lock, "rl-link", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "rl-link/.lock: it is a symbolic link"));
  CU_ASSERT_FALSE(lock.held);
  CU_ASSERT_EQUAL(px_test_file_size("rl-link-target"), 5);
}

/* ------------------------------------------------------------------------------------------- */

#define SMALL "model.n_layer=2 model.n_embd=64 model.n_head=2 model.max_seq_len=16 "
#define RUN_ARGS                                                                                   \
  "sft --data rl-data/sft.h5 --steps 200 " SMALL "sft.batch_size=16 sft.micro_batch=16 "           \
  "sft.log_every=1 sft.eval_every=0 sft.checkpoint_every=20 sft.heldout=32 run.keep_last=2 "       \
  "run.log_level=warn --run rl-run --resume auto"

/* The processes descended from root (not root), into out (at most cap); returns how many. */
static int descendants(pid_t root, pid_t *out, int cap) {
  enum { MAXP = 4096 };
  static pid_t pids[MAXP], ppids[MAXP];
  int n = 0, found = 0;
  DIR *d = opendir("/proc");
  for (struct dirent *e; d && (e = readdir(d)) && n < MAXP;) {
    char path[300], text[512];
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    px_proc_slurp(path, text, sizeof text);
    const char *close_paren = strrchr(text, ')'); /* the command name may hold spaces */
    long ppid;
    if (close_paren && sscanf(close_paren + 1, " %*c %ld", &ppid) == 1)
      pids[n] = (pid_t)atol(e->d_name), ppids[n++] = (pid_t)ppid;
  }
  if (d) closedir(d);
  pid_t frontier[64] = {root};
  for (int nf = 1; nf > 0;) {
    pid_t parent = frontier[--nf];
    for (int i = 0; i < n; i++)
      if (ppids[i] == parent && found < cap && nf < 64) out[found++] = frontier[nf++] = pids[i];
  }
  return found;
}

/* pid's state letter in /proc (R, S, T stopped, Z zombie, ...), or 0 when it is gone. */
static char state_of(pid_t pid) {
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  px_proc_slurp(path, text, sizeof text);
  const char *close_paren = strrchr(text, ')'); /* the command name may hold spaces */
  return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

/* Sends sig to the n processes and waits (up to 10 s each) until they are in a state `until`
 * names (0 standing for gone). */
static void signal_all(const pid_t *procs, int n, int sig, const char *until) {
  for (int i = 0; i < n; i++) kill(procs[i], sig);
  for (int i = 0; i < n; i++)
    for (int tries = 0; tries < 1000; tries++) {
      char st = state_of(procs[i]);
      if (!st || strchr(until, st)) break;
      nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
}

/* A 2-rank sft on rl-run (SLURM_JOB_ID=4242 in its ranks), stopped (SIGSTOP, lock still held)
 * once it has written a checkpoint; a second launch on rl-run exits 1 within seconds naming the
 * holder, and leaves every file of rl-run as it was; then the first is killed with kill -9 and
 * `--resume auto` on rl-run completes the run. */
static void test_second_run_refused_then_resume_after_kill(void) {
  px_proc_forget_singleton_job();
  CU_ASSERT_EQUAL_FATAL(system("rm -rf rl-data rl-run rl-run.before"), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data synth --out rl-data synth.n_sft=400 "
                                        "synth.n_prefs=8 synth.n_prompts=8 synth.n_eval=4 "
                                        "run.log_level=warn"),
                        0);
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "exec %s env SLURM_JOB_ID=4242 %s " RUN_ARGS " >rl-first.out "
           "2>rl-first.err",
           getenv("PX_LAUNCH_2"), getenv("PX_PROXIMA"));
  pid_t launcher = fork();
  CU_ASSERT_FATAL(launcher >= 0);
  if (launcher == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int started = 0;
  for (int tries = 0; tries < 6000 && !started; tries++) {
    started = px_test_file_size("rl-run/checkpoints/LATEST") > 0;
    if (!started) nanosleep(&(struct timespec){0, 10000000}, NULL);
  }
  /* stopped, not ended: the ranks keep the lock and the directory keeps still */
  pid_t procs[65];
  int n = descendants(launcher, procs, 64);
  procs[n] = launcher;
  signal_all(procs, n + 1, SIGSTOP, "Tt");
  if (!started || n < 2) { /* mpiexec's two ranks */
    signal_all(procs, n + 1, SIGKILL, "ZX");
    waitpid(launcher, NULL, 0);
    CU_FAIL_FATAL("the first run did not start and write a checkpoint");
  }
  CU_ASSERT_EQUAL(system("cp -a rl-run rl-run.before"), 0);
  struct stat before, after;
  CU_ASSERT_EQUAL(stat("rl-run/config.ini", &before), 0);
  double t0 = px_proc_seconds();
  int rc = px_proc_run(getenv("PX_LAUNCH_2"), RUN_ARGS);
  double took = px_proc_seconds() - t0;
  printf("\n    second launch: exit %d after %.1f s", rc, took);
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT(took < 30);
  char host[256], want[512];
  CU_ASSERT_EQUAL(gethostname(host, sizeof host), 0);
  host[sizeof host - 1] = '\0';
  const char *named = strstr(px_proc_err, "run directory rl-run is in use by PID ");
  CU_ASSERT(px_test_contains(px_proc_err, "run directory rl-run is in use by PID "));
  long holder = named ? atol(named + strlen("run directory rl-run is in use by PID ")) : 0;
  int ours = 0;
  for (int i = 0; i < n; i++) ours |= procs[i] == holder;
  CU_ASSERT(ours); /* a rank of the first launch */
  snprintf(want, sizeof want, "PID %ld on %s (Slurm job 4242) since ", holder, host);
  CU_ASSERT(px_test_contains(px_proc_err, want));
  /* nothing changed: every file's bytes, and config.ini not even replaced by its own copy */
  CU_ASSERT_EQUAL(system("diff -rq rl-run.before rl-run"), 0);
  CU_ASSERT(px_proc_same_file("rl-run.before/config.ini", "rl-run/config.ini"));
  CU_ASSERT(px_proc_same_file("rl-run.before/metrics.jsonl", "rl-run/metrics.jsonl"));
  CU_ASSERT_EQUAL(stat("rl-run/config.ini", &after), 0);
  CU_ASSERT_EQUAL(before.st_ino, after.st_ino);

  /* kill -9 of the whole first launch, holder included: the kernel drops its lock */
  signal_all(procs, n + 1, SIGKILL, "ZX");
  int status;
  CU_ASSERT_EQUAL(waitpid(launcher, &status, 0), launcher);
  CU_ASSERT_EQUAL(px_proc_run(getenv("PX_LAUNCH_2"), RUN_ARGS), 0);
  CU_ASSERT_PTR_NULL(strstr(px_proc_err, "in use by"));
  double steps[256];
  int records = px_proc_metric("rl-run", "sft", "step", steps, 256);
  CU_ASSERT_EQUAL(records, 200);
  CU_ASSERT(records > 0 && steps[records - 1] == 200);
  char latest[64];
  px_proc_slurp("rl-run/checkpoints/LATEST", latest, sizeof latest);
  CU_ASSERT_STRING_EQUAL(latest, "ckpt-00000200.h5\n");
  CU_ASSERT_EQUAL(px_test_file_size("rl-run/.lock"), 0); /* released at the end */
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"held here: refused elsewhere, then released", test_lock_in_process},
      {"a symbolic link as the lock file", test_lock_file_symlink},
      {"a second sft refused; kill -9, then --resume auto",
       test_second_run_refused_then_resume_after_kill},
      CU_TEST_INFO_NULL};
  px_test_suite("run directory lock", tests);
}
