/*
 * test_synth.c — src/data/synth.c, the built-in arith task: one seed writes the same bytes
 * twice and another seed different bytes; the task's stated statistics hold, computed here from
 * the written records by parsing "A+B=" independently of synth.c (the base correctness rate and
 * the preference agreement within a binomial 4-sigma band of their settings, wrong answers off
 * by 1..max_offset in the sum or, for errors = digit, in the last digit with the tens kept, no
 * ties, eval held out and complete, references the true sums); px_synth_arith_answer on good
 * and bad prompts; and an empty synth.out refused, naming the key, before anything is written
 * (px_fs_mkdirs("") is PX_EINPUT "empty path").
 */
#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/config.h"
#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/jsonl.h"
#include "proxima/synth.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

static px_error err;

/* The byte tokenizer, the built-in task's. */
static px_tokenizer tok;

static const char *const data_files[] = {"sft.h5",     "sft.jsonl",     "prefs.h5", "prefs.jsonl",
                                         "prompts.h5", "prompts.jsonl", "eval.h5",  "eval.jsonl"};
enum { N_DATA_FILES = 8 };

typedef struct px_synth_opts {
  long seed, n_sft, n_prefs, n_prompts, n_eval, max_offset;
  double base_accuracy, flip_rate;
  const char *errors; /* synth.errors: "digit" or "offset" */
} px_synth_opts;

/* Runs px_synth_run with these settings into scratch-synth-PID/name; dir gets the path. */
static px_status px_synth_into(const char *name, const px_synth_opts *o, char *dir, size_t n) {
  snprintf(dir, n, "%s/%s", px_test_dir("synth"), name);
  px_config cfg;
  px_config_init(&cfg);
  char v[64];
  px_status st = px_config_set(&cfg, "synth.out", dir, "test", &err);
#define SET(key, fmt, val)                                                                         \
  if (st == PX_OK) snprintf(v, sizeof v, fmt, val), st = px_config_set(&cfg, key, v, "test", &err)
  SET("run.seed", "%ld", o->seed);
  SET("synth.n_sft", "%ld", o->n_sft);
  SET("synth.n_prefs", "%ld", o->n_prefs);
  SET("synth.n_prompts", "%ld", o->n_prompts);
  SET("synth.n_eval", "%ld", o->n_eval);
  SET("synth.max_offset", "%ld", o->max_offset);
  SET("synth.base_accuracy", "%.17g", o->base_accuracy);
  SET("synth.flip_rate", "%.17g", o->flip_rate);
  SET("synth.errors", "%s", o->errors);
#undef SET
  CU_ASSERT_EQUAL(st, PX_OK);
  if (st == PX_OK) st = px_synth_run(&cfg, &err);
  px_config_free(&cfg);
  return st;
}

static char *px_slurp(const char *dir, const char *name, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *data = NULL;
  px_error e;
  if (px_fs_read_file(path, (size_t)1 << 30, &data, len, &e) != PX_OK) return NULL;
  return data;
}

/* 1 when the file is the same bytes in both directories, 0 when not, -1 when one is missing. */
static int px_same_file(const char *a, const char *b, const char *name) {
  size_t la = 0, lb = 0;
  char *da = px_slurp(a, name, &la), *db = px_slurp(b, name, &lb);
  int same = !da || !db ? -1 : la == lb && memcmp(da, db, la) == 0;
  free(da);
  free(db);
  return same;
}

static const px_synth_opts small = {1, 4000, 4000, 1000, 500, 3, 0.6, 0.1, "digit"};

/* Smaller still for the byte comparisons, which need three runs. */
static const px_synth_opts tiny = {1, 1000, 1000, 300, 200, 3, 0.6, 0.1, "digit"};

static void test_same_seed_same_bytes(void) {
  char a[512], b[512], c[512];
  CU_ASSERT_EQUAL_FATAL(px_synth_into("seed1-a", &tiny, a, sizeof a), PX_OK);
  CU_ASSERT_EQUAL_FATAL(px_synth_into("seed1-b", &tiny, b, sizeof b), PX_OK);
  px_synth_opts other = tiny;
  other.seed = 2;
  CU_ASSERT_EQUAL_FATAL(px_synth_into("seed2", &other, c, sizeof c), PX_OK);
  /* Every file the run wrote, but the config (which names its own directory). */
  DIR *d = opendir(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  int compared = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "synth-config.ini") == 0) continue;
    compared++;
    int same = px_same_file(a, b, e->d_name);
    CU_ASSERT_EQUAL(same, 1);
    if (same != 1) fprintf(stderr, "\n  %s differs between two runs of one seed\n", e->d_name);
    same = px_same_file(a, c, e->d_name);
    CU_ASSERT_EQUAL(same, 0);
    if (same != 0) fprintf(stderr, "\n  %s is the same for seeds 1 and 2\n", e->d_name);
  }
  closedir(d);
  CU_ASSERT_EQUAL(compared, N_DATA_FILES);
  /* The 8 files named in synth.h and the config, nothing else (no temporary files). */
  for (int i = 0; i < N_DATA_FILES; i++) CU_ASSERT_EQUAL(px_same_file(a, b, data_files[i]), 1);
  CU_ASSERT_EQUAL(px_count_entries(a), N_DATA_FILES + 1);
  CU_ASSERT_EQUAL(px_count_entries(c), N_DATA_FILES + 1);
  /* The resolved config is written too; it names its own out directory, so it differs. */
  size_t len = 0;
  char *ini = px_slurp(a, "synth-config.ini", &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ini);
  CU_ASSERT(px_test_contains(ini, "seed1-a"));
  CU_ASSERT(px_test_contains(ini, "n_sft = 1000"));
  free(ini);
}

/* ---------------------------------------------------------------------------------------------
 * The task's statistics, from the records.
 * --------------------------------------------------------------------------------------------- */

/* "A+B=" with A and B two-digit numbers (10..99); returns 1 and sets *sum, else 0. */
static int px_parse_prompt(const char *s, size_t n, int *a, int *b) {
  if (n != 6 || s[2] != '+' || s[5] != '=') return 0;
  for (int i = 0; i < 5; i++)
    if (i != 2 && (s[i] < '0' || s[i] > '9')) return 0;
  *a = (s[0] - '0') * 10 + (s[1] - '0');
  *b = (s[3] - '0') * 10 + (s[4] - '0');
  return *a >= 10 && *b >= 10;
}

/* A completion: a decimal number of 1..4 digits, no sign, no leading zero. -1 if not. */
static int px_parse_answer(const char *s, size_t n) {
  if (n < 1 || n > 4 || (n > 1 && s[0] == '0')) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Field f of record i as text in buf (room for 64 bytes); returns its length. */
static size_t px_field(const px_dataset *ds, int f, int64_t i, char *buf) {
  int64_t n;
  const int32_t *t = px_dataset_row(ds, f, i, &n);
  if (n > 63) n = 63;
  px_text text = {0};
  size_t len = px_tokenizer_decode(&tok, &text, t, (size_t)n);
  if (len) memcpy(buf, text.p, len);
  px_text_free(&text);
  return len;
}

/* |x - p| within 4 binomial standard deviations of n draws. */
static int px_within_4sigma(double x, double p, int64_t n) {
  double tol = 4 * sqrt(p * (1 - p) / (double)n);
  if (fabs(x - p) <= tol) return 1;
  fprintf(stderr, "\n  rate %.5f is not within 4 sigma (%.5f) of %.5f over %lld draws\n", x, tol, p,
          (long long)n);
  return 0;
}

/* Reads DIR/NAME.h5 whole into ds; with check_jsonl, checks that it holds the records of
 * DIR/NAME.jsonl (done for one run only: parsing JSON is slow under the sanitizers). */
static void px_load(const char *dir, const char *name, px_data_kind kind, int check_jsonl,
                    px_dataset *ds) {
  char h5[1024], jl[1024];
  snprintf(h5, sizeof h5, "%s/%s.h5", dir, name);
  snprintf(jl, sizeof jl, "%s/%s.jsonl", dir, name);
  CU_ASSERT_EQUAL_FATAL(px_dataset_read(h5, PX_IO_ALONE, 0, 1, (int)kind, &tok, ds, &err), PX_OK);
  if (!check_jsonl) return;
  px_dataset js;
  CU_ASSERT_EQUAL_FATAL(px_jsonl_read(jl, kind, &tok, &js, &err), PX_OK);
  CU_ASSERT_EQUAL_FATAL(js.n, ds->n);
  CU_ASSERT_EQUAL_FATAL(js.n_fields, ds->n_fields);
  int64_t differ = 0;
  for (int f = 0; f < ds->n_fields; f++)
    for (int64_t i = 0; i < ds->n; i++) {
      int64_t la, lb;
      const int32_t *ta = px_dataset_row(ds, f, i, &la), *tb = px_dataset_row(&js, f, i, &lb);
      differ += la != lb || memcmp(ta, tb, (size_t)la * sizeof *ta) != 0;
    }
  CU_ASSERT_EQUAL(differ, 0);
  px_dataset_free(&js);
}

/* The offset that makes y from sum: y - sum, or for digit errors the last digit's offset
 * modulo 10 in -m..m (m <= 4, so that it is unique), with the tens unchanged. 99 if neither. */
static int px_offset(int y, int sum, int m, int digit) {
  if (!digit) return y - sum;
  if (y < 0 || y / 10 != sum / 10) return 99;
  int d = (y % 10 - sum % 10 + 10) % 10;
  return d <= m ? d : d - 10;
}

/* A base completion y of a prompt with this sum: right, or off by 1..m. Counts the offsets
 * (index offset + m of wrong[0 .. 2m]). Returns 1 when right. */
static int px_base_completion(int y, int sum, int m, int digit, int64_t *wrong) {
  int d = px_offset(y, sum, m, digit);
  CU_ASSERT(y >= 0 && abs(d) <= m);
  if (y >= 0 && abs(d) <= m) wrong[d + m]++;
  return d == 0;
}

/* Probability that two wrong completions are equally far from the sum (a tie), for a sum
 * whose last digit is uniform (it is, over the task's prompts): the 2m offsets are equally
 * likely, and two tie when |y - sum| is the same. */
static double px_wrong_tie_rate(int m, int digit) {
  double p = 0;
  for (int u = 0; u < 10; u++) {
    int sum = 50 + u;
    for (int i = -m; i <= m; i++)
      for (int j = -m; j <= m; j++) {
        if (i == 0 || j == 0) continue;
        int yi = digit ? sum - u + (u + i + 10) % 10 : sum + i;
        int yj = digit ? sum - u + (u + j + 10) % 10 : sum + j;
        p += abs(yi - sum) == abs(yj - sum);
      }
  }
  return p / (10.0 * 4 * m * m);
}

/* Checks the statistics of a synth run with settings o written to dir. */
static void px_check_task(const char *dir, const px_synth_opts *o, int check_jsonl) {
  int m = (int)o->max_offset, digit = strcmp(o->errors, "digit") == 0;
  unsigned char train[100][100] = {{0}}; /* train[a][b]: "a+b=" seen in sft, prefs or prompts */
  char p[64], x[64], y[64];
  int a = 0, b = 0;

  /* SFT: the completion is right with probability base_accuracy, else off by 1..m, each of
   * the 2m offsets equally likely. */
  px_dataset ds;
  px_load(dir, "sft", PX_DATA_SFT, check_jsonl, &ds);
  CU_ASSERT_EQUAL(ds.n, o->n_sft);
  int64_t right = 0, wrong[19] = {0};
  for (int64_t i = 0; i < ds.n; i++) {
    size_t pl = px_field(&ds, 0, i, p), cl = px_field(&ds, 1, i, x);
    CU_ASSERT_FATAL(px_parse_prompt(p, pl, &a, &b));
    train[a][b] = 1;
    right += px_base_completion(px_parse_answer(x, cl), a + b, m, digit, wrong);
  }
  CU_ASSERT_EQUAL(wrong[m], right);
  CU_ASSERT(px_within_4sigma((double)right / (double)ds.n, o->base_accuracy, ds.n));
  int64_t n_wrong = ds.n - right;
  for (int d = -m; d <= m; d++)
    if (d != 0 && n_wrong > 0)
      CU_ASSERT(px_within_4sigma((double)wrong[d + m] / (double)n_wrong, 1.0 / (2 * m), n_wrong));
  px_dataset_free(&ds);

  /* Prefs: two base completions, never a tie, the chosen one closer to the sum except for a
   * fraction flip_rate. Kept pairs: a pair ties when both are right (acc^2) or both wrong by
   * the same distance (for offsets (1-acc)^2 / m). */
  px_load(dir, "prefs", PX_DATA_PREFS, check_jsonl, &ds);
  double acc = o->base_accuracy;
  double p_tie = acc * acc + (1 - acc) * (1 - acc) * px_wrong_tie_rate(m, digit);
  if (!digit) CU_ASSERT_DOUBLE_EQUAL(px_wrong_tie_rate(m, 0), 1.0 / m, 1e-12);
  CU_ASSERT(px_within_4sigma((double)ds.n / (double)o->n_prefs, 1 - p_tie, o->n_prefs));
  int64_t agree = 0, ties = 0, wrong2[19] = {0};
  for (int64_t i = 0; i < ds.n; i++) {
    size_t pl = px_field(&ds, 0, i, p), cl = px_field(&ds, 1, i, x), rl = px_field(&ds, 2, i, y);
    CU_ASSERT_FATAL(px_parse_prompt(p, pl, &a, &b));
    train[a][b] = 1;
    int c = px_parse_answer(x, cl), r = px_parse_answer(y, rl), sum = a + b;
    px_base_completion(c, sum, m, digit, wrong2);
    px_base_completion(r, sum, m, digit, wrong2);
    ties += abs(c - sum) == abs(r - sum);
    agree += abs(c - sum) < abs(r - sum);
  }
  CU_ASSERT_EQUAL(ties, 0);
  CU_ASSERT(ds.n > 0);
  if (o->flip_rate == 0) {
    CU_ASSERT_EQUAL(agree, ds.n);
  } else {
    CU_ASSERT(px_within_4sigma((double)agree / (double)ds.n, 1 - o->flip_rate, ds.n));
  }
  px_dataset_free(&ds);

  /* Prompts: training prompts with the true sum as reference. */
  px_load(dir, "prompts", PX_DATA_PROMPTS, check_jsonl, &ds);
  CU_ASSERT_EQUAL(ds.n, o->n_prompts);
  CU_ASSERT_EQUAL_FATAL(ds.n_fields, 2);
  for (int64_t i = 0; i < ds.n; i++) {
    size_t pl = px_field(&ds, 0, i, p), rl = px_field(&ds, 1, i, x);
    CU_ASSERT_FATAL(px_parse_prompt(p, pl, &a, &b));
    train[a][b] = 1;
    CU_ASSERT_EQUAL(px_parse_answer(x, rl), a + b);
  }
  px_dataset_free(&ds);

  /* Eval: exactly n_eval distinct prompts, none of them seen in training, references right. */
  px_load(dir, "eval", PX_DATA_PROMPTS, check_jsonl, &ds);
  CU_ASSERT_EQUAL(ds.n, o->n_eval);
  CU_ASSERT_EQUAL_FATAL(ds.n_fields, 2);
  unsigned char seen[100][100] = {{0}};
  int64_t dup = 0, leaked = 0;
  for (int64_t i = 0; i < ds.n; i++) {
    size_t pl = px_field(&ds, 0, i, p), rl = px_field(&ds, 1, i, x);
    CU_ASSERT_FATAL(px_parse_prompt(p, pl, &a, &b));
    dup += seen[a][b];
    seen[a][b] = 1;
    leaked += train[a][b];
    CU_ASSERT_EQUAL(px_parse_answer(x, rl), a + b);
  }
  CU_ASSERT_EQUAL(dup, 0);
  CU_ASSERT_EQUAL(leaked, 0);
  px_dataset_free(&ds);
}

static void test_stats_defaults(void) {
  char dir[512];
  CU_ASSERT_EQUAL_FATAL(px_synth_into("stats-0.6", &small, dir, sizeof dir), PX_OK);
  px_check_task(dir, &small, 1);
}

static void test_stats_low_accuracy_no_flips(void) {
  px_synth_opts o = {7, 4000, 4000, 500, 1000, 5, 0.3, 0.0, "offset"};
  char dir[512];
  CU_ASSERT_EQUAL_FATAL(px_synth_into("stats-0.3", &o, dir, sizeof dir), PX_OK);
  px_check_task(dir, &o, 0);
}

/* One training prompt left: everything trains on it and eval holds the other 8099. */
static void test_one_training_prompt(void) {
  px_synth_opts o = {3, 200, 400, 50, PX_SYNTH_ARITH_PROMPTS - 1, 2, 0.5, 0.2, "offset"};
  char dir[512];
  CU_ASSERT_EQUAL_FATAL(px_synth_into("one-train", &o, dir, sizeof dir), PX_OK);
  px_check_task(dir, &o, 0);
}

static void test_n_eval_too_large(void) {
  for (long n_eval = PX_SYNTH_ARITH_PROMPTS; n_eval <= PX_SYNTH_ARITH_PROMPTS + 900;
       n_eval += 900) {
    px_synth_opts o = small;
    o.n_eval = n_eval;
    char dir[512], want[64];
    err.msg[0] = '\0';
    CU_ASSERT_EQUAL(px_synth_into(n_eval == PX_SYNTH_ARITH_PROMPTS ? "eval-8100" : "eval-9000", &o,
                                  dir, sizeof dir),
                    PX_EINPUT);
    snprintf(want, sizeof want, "synth.n_eval = %ld", n_eval);
    CU_ASSERT(px_test_contains(err.msg, want));
    CU_ASSERT(px_test_contains(err.msg, "8100"));
    CU_ASSERT_FALSE(px_fs_exists(dir)); /* refused before anything is written */
  }
}

/* synth.out = "" names no directory: refused, naming the key, with nothing written (run from an
 * empty directory, which stays empty). Beneath it px_fs_mkdirs("") says "empty path" instead of
 * reading past the end of the string. */
static void test_empty_out(void) {
  char dir[512], back[4096];
  snprintf(dir, sizeof dir, "%s/empty-out", px_test_dir("synth"));
  CU_ASSERT_EQUAL_FATAL(px_fs_mkdirs(dir, &err), PX_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(back, sizeof back));
  CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
  px_config cfg;
  px_config_init(&cfg);
  px_status st = px_config_set(&cfg, "synth.out", "", "test", &err);
  CU_ASSERT_EQUAL(st, PX_OK);
  err.msg[0] = '\0';
  if (st == PX_OK) CU_ASSERT_EQUAL(px_synth_run(&cfg, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "synth.out is empty"));
  px_config_free(&cfg);
  err.msg[0] = '\0';
  CU_ASSERT_EQUAL(px_fs_mkdirs("", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "empty path"));
  CU_ASSERT_EQUAL(px_count_entries("."), 0);
  CU_ASSERT_EQUAL_FATAL(chdir(back), 0);
}

/* ---------------------------------------------------------------------------------------------
 * px_synth_arith_answer
 * --------------------------------------------------------------------------------------------- */

static void test_arith_answer(void) {
  static const struct {
    const char *prompt, *answer;
  } good[] = {{"37+45=", "82"},
              {"10+10=", "20"},
              {"99+99=", "198"},
              {"50+49=", "99"},
              {"0+0=", "0"},
              {"7+12=", "19"},
              {"999999999+999999999=", "1999999998"}};
  char buf[32];
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    memset(buf, 'x', sizeof buf);
    int n = px_synth_arith_answer(good[i].prompt, strlen(good[i].prompt), buf, sizeof buf);
    CU_ASSERT_EQUAL(n, (int)strlen(good[i].answer));
    CU_ASSERT_STRING_EQUAL(buf, good[i].answer);
  }
  /* Only the first len bytes are the prompt: "37+45=" followed by more text. */
  CU_ASSERT_EQUAL(px_synth_arith_answer("37+45=82", 6, buf, sizeof buf), 2);
  CU_ASSERT_STRING_EQUAL(buf, "82");

  static const char *const bad[] = {"",
                                    "37+45",
                                    "37+45=82",
                                    "37+45==",
                                    "37-45=",
                                    "+45=",
                                    "37+=",
                                    "=",
                                    "abc",
                                    "37*45=",
                                    "x37+45=",
                                    "37+45=x",
                                    " 37+45=",
                                    "37+ 45=",
                                    "-3+4=",
                                    "+3+4=",
                                    "37 +45=",
                                    "2147483647+1=",
                                    "1000000000+1=",
                                    "1+99999999999=",
                                    "37+45=                                   "};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int n = px_synth_arith_answer(bad[i], strlen(bad[i]), buf, sizeof buf);
    if (n != -1) fprintf(stderr, "\n  \"%s\" was accepted (answer %d chars)\n", bad[i], n);
    CU_ASSERT_EQUAL(n, -1);
  }
  /* The prompt's bytes past len are not read: a prompt cut before its '=' is refused. */
  CU_ASSERT_EQUAL(px_synth_arith_answer("37+45=", 5, buf, sizeof buf), -1);
}

void px_test_register(void) {
  px_tokenizer_byte(&tok);
  static const CU_TestInfo tests[] = {
      {"one seed, same bytes; another seed, other bytes", test_same_seed_same_bytes},
      {"statistics: accuracy 0.6, flip 0.1, digit errors 3", test_stats_defaults},
      {"statistics: accuracy 0.3, flip 0, offset errors 5, 1000 eval",
       test_stats_low_accuracy_no_flips},
      {"one training prompt left", test_one_training_prompt},
      {"n_eval >= 8100 refused", test_n_eval_too_large},
      {"an empty synth.out refused", test_empty_out},
      {"px_synth_arith_answer", test_arith_answer},
      CU_TEST_INFO_NULL,
  };
  px_test_suite("data synth (arith)", tests);
}
