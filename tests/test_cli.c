/*
 * test_cli.c — the proxima command line as a user meets it: exit statuses, messages, files.
 *
 * Runs the real binary ($PX_PROXIMA) behind an optional launcher ($PX_LAUNCH, e.g. a 2-rank
 * mpiexec), so one suite checks both a plain run and an MPI launch. Under a launch, a message
 * must still appear once: rank 0 alone prints.
 */
#include <dirent.h>
#include <stdlib.h>

#include "proxima/blas.h"
#include "proxima/config.h"
#include "test_proc.h"
#include "test_util.h"

#define out_text px_proc_out
#define err_text px_proc_err
#define run(...) px_proc_run(getenv("PX_LAUNCH"), __VA_ARGS__)

static int write_text(const char *path, const char *text) {
  return px_test_write(path, text, strlen(text));
}

static int count(const char *haystack, const char *needle) {
  int n = 0;
  for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

/* Files named like the writers' temporaries (".NAME.tmp.PID") in the working directory. */
static int temp_files_left(void) {
  int n = 0;
  DIR *d = opendir(".");
  for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

static void test_help_and_version(void) {
  CU_ASSERT_EQUAL(run("--help"), 0);
  CU_ASSERT(px_test_contains(out_text, "Usage: proxima COMMAND"));
  CU_ASSERT(px_test_contains(out_text, "data synth"));
  CU_ASSERT(px_test_contains(out_text, "data import"));
  CU_ASSERT_EQUAL(count(out_text, "Usage:"), 1);
  CU_ASSERT_EQUAL(run("data synth --help"), 0);
  CU_ASSERT(px_test_contains(out_text, "synth.flip_rate"));
  CU_ASSERT(px_test_contains(out_text, "--out DIR"));
  CU_ASSERT_EQUAL(run("data import --help"), 0);
  CU_ASSERT(px_test_contains(out_text, "--kind KIND [--tokenizer byte|DIR|CKPT] IN.jsonl OUT.h5"));
  CU_ASSERT_EQUAL(run("%s", ""), 1);
  CU_ASSERT(px_test_contains(err_text, "Usage:"));
  CU_ASSERT_EQUAL(run("--version"), 0);
  CU_ASSERT(px_test_contains(out_text, "proxima " PX_VERSION));
  CU_ASSERT(px_test_contains(out_text, "(parallel)"));
}

/* The kernel set named at start-up; on a CPU with AVX2 and FMA it must not be the generic one
 * (Debian's BLIS 0.9 falls back to it on CPUs it does not know, such as Zen 5). */
static void test_startup_log_names_blis_kernels(void) {
  CU_ASSERT_EQUAL(run("config"), 0);
  const char *k = strstr(err_text, "kernels ");
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  CU_ASSERT_EQUAL(count(err_text, "kernels "), 1);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    CU_ASSERT(strncmp(k, "kernels generic", 15) != 0);
  /* A user's choice is respected: ask for the set in use, by its number. */
  char id[16], expect[64];
  snprintf(id, sizeof id, "%d", px_blas_arch_id());
  snprintf(expect, sizeof expect, "kernels %s (chosen by BLIS_ARCH_TYPE)", px_blas_arch());
  setenv("BLIS_ARCH_TYPE", id, 1);
  CU_ASSERT_EQUAL(run("config"), 0);
  unsetenv("BLIS_ARCH_TYPE");
  CU_ASSERT(px_test_contains(err_text, expect));
}

static void test_config_lists_every_key(void) {
  CU_ASSERT_EQUAL(run("config"), 0);
  for (int i = 0; i < px_config_n_keys; i++) {
    char line[128];
    snprintf(line, sizeof line, "\n%s ", px_config_table[i].full);
    CU_ASSERT(px_test_contains(out_text, line));
  }
  CU_ASSERT_EQUAL(run("config --ini run.seed=31"), 0);
  px_config cfg;
  px_error err;
  px_config_init(&cfg);
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, out_text, "config --ini", &err), PX_OK);
  CU_ASSERT_EQUAL(cfg.run_seed, 31);
  px_config_free(&cfg);
}

static void test_config_errors(void) {
  CU_ASSERT_EQUAL(write_text("bad.ini", "[run]\nseed = 2\n[synth]\nflip_rat = 0.2\n"), 0);
  CU_ASSERT_EQUAL(run("config -c bad.ini"), 1);
  CU_ASSERT(px_test_contains(err_text, "proxima: error: bad.ini:4: unknown key 'synth.flip_rat' "
                                       "(did you mean 'synth.flip_rate'?)"));
  CU_ASSERT_EQUAL(count(err_text, "proxima: error:"), 1);
  CU_ASSERT_EQUAL(run("config synth.n_sf=3"), 1);
  CU_ASSERT(px_test_contains(err_text, "command line: unknown key 'synth.n_sf' (did you mean "
                                       "'synth.n_sft'?)"));
  CU_ASSERT_EQUAL(run("config run.seed=abc"), 1);
  CU_ASSERT(px_test_contains(err_text, "command line: run.seed = 'abc' is not an integer"));
  CU_ASSERT_EQUAL(write_text("type.ini", "[synth]\nbase_accuracy = high\n"), 0);
  CU_ASSERT_EQUAL(run("config -c type.ini"), 1);
  CU_ASSERT(px_test_contains(err_text, "type.ini:2: synth.base_accuracy = 'high' is not a "
                                       "finite number (expected a number in 0..1)"));
  CU_ASSERT_EQUAL(run("config -c no-such.ini"), 1);
  CU_ASSERT(px_test_contains(err_text, "cannot open no-such.ini"));
  /* The command line beats the file. */
  CU_ASSERT_EQUAL(write_text("ok.ini", "[run]\nseed = 2\n"), 0);
  CU_ASSERT_EQUAL(run("config --ini -c ok.ini run.seed=5"), 0);
  CU_ASSERT(px_test_contains(out_text, "\nseed = 5\n"));
}

static void test_usage_errors(void) {
  CU_ASSERT_EQUAL(run("spt"), 1);
  CU_ASSERT(px_test_contains(err_text, "unknown command 'spt'"));
  CU_ASSERT_EQUAL(run("data"), 1);
  CU_ASSERT(px_test_contains(err_text, "'data synth' or 'data import'"));
  CU_ASSERT_EQUAL(run("data synth --outt x"), 1);
  CU_ASSERT(px_test_contains(err_text, "unknown option '--outt' for 'data synth' (did you mean "
                                       "'--out'?)"));
  CU_ASSERT_EQUAL(run("data synth --out"), 1);
  CU_ASSERT(px_test_contains(err_text, "--out needs a value"));
  CU_ASSERT_EQUAL(run("data import --kind sft only-one.jsonl"), 1);
  CU_ASSERT(px_test_contains(err_text, "needs 2 arguments"));
  CU_ASSERT_EQUAL(run("data import in.jsonl out.h5"), 1);
  CU_ASSERT(px_test_contains(err_text, "needs --kind"));
  CU_ASSERT_EQUAL(run("data import --kind poems in.jsonl out.h5"), 1);
  CU_ASSERT(px_test_contains(err_text, "--kind poems is not a kind"));
  CU_ASSERT_EQUAL(run("config stray"), 1);
  CU_ASSERT(px_test_contains(err_text, "unexpected argument 'stray'"));
}

static void test_import_good_and_bad(void) {
  const char *good = "{\"prompt\":\"2+2=\",\"completion\":\"4\"}\n"
                     "{\"prompt\":\"\xE4\xBD\xA0\xE5\xA5\xBD\",\"completion\":\"hi \\u00e9\"}\n";
  const char *bad = "{\"prompt\":\"2+2=\",\"completion\":\"4\"}\n"
                    "{\"prompt\":\"3+3=\",\"completion\":6}\n";
  CU_ASSERT_EQUAL(px_test_write("good.jsonl", good, strlen(good)), 0);
  CU_ASSERT_EQUAL(px_test_write("bad.jsonl", bad, strlen(bad)), 0);
  remove("cli-sft.h5");
  remove("cli-bad.h5");
  CU_ASSERT_EQUAL(run("data import --kind sft good.jsonl cli-sft.h5"), 0);
  CU_ASSERT(px_test_contains(err_text, "wrote cli-sft.h5 (2 sft records)"));
  CU_ASSERT_EQUAL(system("cp cli-sft.h5 cli-sft.h5.orig"), 0);
  /* A malformed line: exit 1, its line named, nothing written, a good file left alone. */
  CU_ASSERT_EQUAL(run("data import --kind sft bad.jsonl cli-bad.h5"), 1);
  CU_ASSERT(px_test_contains(err_text, "bad.jsonl:2: field \"completion\" is an integer, "
                                       "expected a string"));
  CU_ASSERT_EQUAL(access("cli-bad.h5", F_OK), -1);
  CU_ASSERT_EQUAL(run("data import --kind sft bad.jsonl cli-sft.h5"), 1);
  CU_ASSERT(px_proc_same_file("cli-sft.h5", "cli-sft.h5.orig"));
  /* The wrong kind for the file's records. */
  CU_ASSERT_EQUAL(run("data import --kind prefs good.jsonl cli-bad.h5"), 1);
  CU_ASSERT(px_test_contains(err_text, "good.jsonl:1: field \"chosen\" is missing"));
  CU_ASSERT_EQUAL(temp_files_left(), 0);
  remove("cli-sft.h5.orig");
}

static void test_synth_runs(void) {
  CU_ASSERT_EQUAL(run("data synth --out cli-synth --seed 3 synth.n_sft=50 synth.n_prefs=50 "
                      "synth.n_prompts=20 synth.n_eval=10"),
                  0);
  const char *files[] = {"sft", "prefs", "prompts", "eval"};
  for (int i = 0; i < 4; i++) {
    char path[128];
    snprintf(path, sizeof path, "cli-synth/%s.h5", files[i]);
    CU_ASSERT_EQUAL(access(path, R_OK), 0);
    snprintf(path, sizeof path, "cli-synth/%s.jsonl", files[i]);
    CU_ASSERT_EQUAL(access(path, R_OK), 0);
  }
  CU_ASSERT_EQUAL(count(err_text, "data synth: wrote"), 4); /* rank 0 alone */
  CU_ASSERT_EQUAL(run("data synth --out cli-synth synth.n_eval=8100"), 1);
  CU_ASSERT(px_test_contains(err_text, "synth.n_eval = 8100 leaves no training prompts"));
}

void px_test_register(void) {
  px_proc_forget_singleton_job();
  static const CU_TestInfo tests[] = {
      {"help and version", test_help_and_version},
      {"start-up log names BLIS kernels", test_startup_log_names_blis_kernels},
      {"config lists every key", test_config_lists_every_key},
      {"config errors", test_config_errors},
      {"usage errors", test_usage_errors},
      {"import good and bad", test_import_good_and_bad},
      {"synth runs", test_synth_runs},
      CU_TEST_INFO_NULL};
  px_test_suite("cli", tests);
}
