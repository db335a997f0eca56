/*
 * test_config.c — the configuration table, INI parsing, overrides and their error messages.
 */
#include <math.h>
#include <stdlib.h>

#include "proxima/config.h"
#include "test_util.h"

static px_config cfg;
static px_error err;

static void reset(void) {
  px_config_free(&cfg);
  px_config_init(&cfg);
  err.msg[0] = '\0';
}

static void test_defaults_match_table(void) {
  reset();
  /* Every default is valid for its own type and limits, and formats back to itself. */
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    char buf[256];
    px_config_format(&cfg, k, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, k->def);
    CU_ASSERT_PTR_EQUAL(px_config_find(k->full), k);
  }
  CU_ASSERT_EQUAL(cfg.run_seed, 1);
  CU_ASSERT_DOUBLE_EQUAL(cfg.synth_base_accuracy, 0.6, 0);
  CU_ASSERT_STRING_EQUAL(cfg.synth_task, "arith");
}

static void test_ini_sets_typed_values(void) {
  reset();
  const char *ini = "; a comment\n# another\n[run]\nseed = 42\ndir = /tmp/x y\n\n"
                    "[synth]\nflip_rate = 0.25 ; inline comment\nn_sft=7\n";
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, ini, "t.ini", &err), PX_OK);
  CU_ASSERT_EQUAL(cfg.run_seed, 42);
  CU_ASSERT_STRING_EQUAL(cfg.run_dir, "/tmp/x y");
  CU_ASSERT_DOUBLE_EQUAL(cfg.synth_flip_rate, 0.25, 0);
  CU_ASSERT_EQUAL(cfg.synth_n_sft, 7);
}

static void test_override_beats_file(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[run]\nseed = 5\n", "t.ini", &err), PX_OK);
  CU_ASSERT_EQUAL(px_config_override(&cfg, "run.seed=9", &err), PX_OK);
  CU_ASSERT_EQUAL(cfg.run_seed, 9);
  CU_ASSERT_EQUAL(px_config_override(&cfg, "run.dir=a=b", &err), PX_OK); /* first '=' splits */
  CU_ASSERT_STRING_EQUAL(cfg.run_dir, "a=b");
}

static void test_misspelt_key_in_file(void) {
  reset();
  const char *ini = "[run]\nseed = 3\n\n[synth]\nflip_rat = 0.2\n";
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, ini, "my.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "my.ini:5"));
  CU_ASSERT(px_test_contains(err.msg, "'synth.flip_rat'"));
  CU_ASSERT(px_test_contains(err.msg, "did you mean 'synth.flip_rate'"));
}

static void test_right_name_wrong_section(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[synth]\nseed = 3\n", "s.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "s.ini:2"));
  CU_ASSERT(px_test_contains(err.msg, "did you mean 'run.seed'"));
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "seed = 3\n", "s.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "s.ini:1: unknown key 'seed'"));
}

static void test_misspelt_override(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_override(&cfg, "synth.n_sf=3", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "command line"));
  CU_ASSERT(px_test_contains(err.msg, "did you mean 'synth.n_sft'"));
  CU_ASSERT_EQUAL(px_config_override(&cfg, "novalue", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "section.key=value"));
}

static void test_wrong_types_and_ranges(void) {
  struct {
    const char *arg, *expect;
  } cases[] = {
      {"run.seed=abc", "is not an integer (expected an integer in 0..)"},
      {"run.seed=1.5", "is not an integer"},
      {"run.seed=-1", "is out of range"},
      {"run.seed=99999999999999999999999", "is not an integer"},
      {"synth.flip_rate=0.7", "is out of range (expected a number in 0..0.5)"},
      {"synth.flip_rate=nan", "is not a finite number"},
      {"synth.flip_rate=", "is not a finite number"},
      {"synth.task=poetry", "is not allowed (expected one of arith)"},
      {"run.log_level=loud", "expected one of debug|info|warn|quiet"},
      {"synth.max_offset=0", "expected an integer in 1..9"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    reset();
    CU_ASSERT_EQUAL(px_config_override(&cfg, cases[i].arg, &err), PX_EINPUT);
    CU_ASSERT(px_test_contains(err.msg, cases[i].expect));
    CU_ASSERT(px_test_contains(err.msg, "command line"));
  }
  /* A refused value leaves the previous one in place. */
  reset();
  CU_ASSERT_EQUAL(px_config_override(&cfg, "run.seed=x", &err), PX_EINPUT);
  CU_ASSERT_EQUAL(cfg.run_seed, 1);
}

static void test_bad_value_in_file_names_line(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[synth]\n\nn_eval = many\n", "v.ini", &err),
                  PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "v.ini:3: synth.n_eval = 'many' is not an integer"));
}

static void test_syntax_errors(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[run]\nseed 3\n", "x.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "x.ini:2: cannot parse this line"));
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[run\nseed = 3\n", "x.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "x.ini:1"));
  /* The first error wins: a syntax error on line 2 before a bad key on line 3. */
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[run]\n???\nsed = 1\n", "x.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "x.ini:2"));
  reset();
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, "[run]\nsed = 1\n???\n", "x.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "x.ini:2: unknown key 'run.sed'"));
}

static void test_long_line_is_refused(void) {
  reset();
  char *ini = malloc(1000);
  int n = snprintf(ini, 1000, "[run]\ndir = ");
  memset(ini + n, 'a', 600);
  strcpy(ini + n + 600, "\nseed = 2\n");
  CU_ASSERT_EQUAL(px_config_parse_ini(&cfg, ini, "l.ini", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "l.ini:2: line is longer than"));
  free(ini);
}

static void test_written_ini_reads_back(void) {
  reset();
  CU_ASSERT_EQUAL(px_config_override(&cfg, "synth.flip_rate=0.123456789", &err), PX_OK);
  CU_ASSERT_EQUAL(px_config_override(&cfg, "run.seed=77", &err), PX_OK);
  CU_ASSERT_EQUAL(px_config_override(&cfg, "run.dir=somewhere/else", &err), PX_OK);
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  px_config_write_ini(&cfg, mem);
  fclose(mem);
  px_config back;
  px_config_init(&back);
  CU_ASSERT_EQUAL(px_config_parse_ini(&back, text, "written.ini", &err), PX_OK);
  for (int i = 0; i < px_config_n_keys; i++) {
    char a[256], b[256];
    const px_config_key *k = &px_config_table[i];
    CU_ASSERT_STRING_EQUAL(px_config_format(&cfg, k, a, sizeof a),
                           px_config_format(&back, k, b, sizeof b));
  }
  CU_ASSERT_DOUBLE_EQUAL(back.synth_flip_rate, 0.123456789, 0);
  px_config_free(&back);
  free(text);
}

static void test_nearest_and_distance(void) {
  CU_ASSERT_EQUAL(px_edit_distance("kitten", "sitting"), 3);
  CU_ASSERT_EQUAL(px_edit_distance("", "abc"), 3);
  CU_ASSERT_EQUAL(px_edit_distance("Run.Seed", "run.seed"), 0);
  CU_ASSERT_STRING_EQUAL(px_config_nearest("synth.nsft"), "synth.n_sft");
  CU_ASSERT_STRING_EQUAL(px_config_nearest("log_level"), "run.log_level");
}

static int cleanup(void) {
  px_config_free(&cfg);
  return 0;
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"defaults match the table", test_defaults_match_table},
      {"INI sets typed values", test_ini_sets_typed_values},
      {"override beats file", test_override_beats_file},
      {"misspelt key in a file", test_misspelt_key_in_file},
      {"right name, wrong section", test_right_name_wrong_section},
      {"misspelt override", test_misspelt_override},
      {"wrong types and ranges", test_wrong_types_and_ranges},
      {"bad value in a file names its line", test_bad_value_in_file_names_line},
      {"syntax errors", test_syntax_errors},
      {"long line refused", test_long_line_is_refused},
      {"written INI reads back", test_written_ini_reads_back},
      {"nearest key and edit distance", test_nearest_and_distance},
      CU_TEST_INFO_NULL};
  CU_pSuite s = px_test_suite("config", tests);
  CU_set_suite_cleanupfunc(s, cleanup);
}
