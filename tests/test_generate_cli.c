/*
 * test_generate_cli.c — `proxima generate` as a user runs it, on a checkpoint this test writes
 * with px_ckpt_write: a prompt from the command line, prompts from JSONL and from a data set
 * (the same output), a run directory for --ckpt, one rank and a 2-rank launch printing the same
 * lines in prompt order, --json, and bad input (exit 1 with a message in the user's terms).
 */
#include <stdint.h>
#include <stdlib.h>

#include "proxima/checkpoint.h"
#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/gpt.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"
#include "test_proc.h"

static char first_out[1 << 16];

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* A small random policy (its answers are noise, but they are the same noise on every run). */
static void write_checkpoints(void) {
  px_gpt_config c = {PX_TOK_BYTE_IDS, 32, 2, 2, 16, PX_GPT_HEAD_LM};
  px_gpt m;
  px_gpt_build(&m, &c, 1, 1, 0);
  px_gpt_init(&m, 3);
  for (size_t i = 0; i < m.n_params; i++) {
    px_rng_ctr ctr = {{1, (uint32_t)i, 0, 9}};
    m.params[i] += (float)(0.3 * px_rng_normal(5, ctr));
  }
  px_ckpt_model cm = {"policy", &m, 0, 0, 0, 0};
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  px_error err;
  CU_ASSERT_EQUAL(px_ckpt_write("ck", &(px_ckpt){1, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err),
                  PX_OK);
  CU_ASSERT_EQUAL(px_fs_mkdirs("run/checkpoints", &err), PX_OK);
  CU_ASSERT_EQUAL(
      px_ckpt_write("run/checkpoints", &(px_ckpt){2, 0, "", &cm, 1, NULL, 0, &bytes}, 0, &err),
      PX_OK);
  px_gpt_free(&m);
}

static void test_generate_cli(void) {
  const char *dir = px_test_dir("generate-cli");
  CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
  px_proc_forget_singleton_job();
  write_checkpoints();
  const char *two = getenv("PX_LAUNCH_2");

  /* One prompt. */
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck --prompt '12+34=' --greedy "
                                    "--max-new-tokens 6"),
                  0);
  CU_ASSERT_EQUAL(count_lines(px_proc_out), 1);
  CU_ASSERT(strncmp(px_proc_out, "12+34=\t", 7) == 0);
  CU_ASSERT(px_test_contains(px_proc_err, "tokens/s"));

  /* JSONL prompts, one with a tab and a newline; and the same as a data set. */
  const char *jsonl = "{\"prompt\": \"1+1=\"}\n{\"prompt\": \"a\\tb\\nc\"}\n{\"prompt\": \"x\"}\n"
                      "{\"prompt\": \"\"}\n{\"prompt\": \"99+99=\"}\n";
  CU_ASSERT_EQUAL(px_test_write("p.jsonl", jsonl, strlen(jsonl)), 0);
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  px_dataset ds;
  px_dataset_init(&ds, PX_DATA_PROMPTS, 1, &bytes);
  const char *texts[5] = {"1+1=", "a\tb\nc", "x", "", "99+99="};
  for (int i = 0; i < 5; i++) {
    size_t len = strlen(texts[i]);
    px_dataset_append(&ds, &texts[i], &len);
  }
  px_error err;
  CU_ASSERT_EQUAL(px_dataset_write("p.h5", &ds, &err), PX_OK);
  px_dataset_free(&ds);

  const char *args = "generate --ckpt ck --prompts p.jsonl --temperature 1 --seed 3 --batch 2 "
                     "--max-new-tokens 10";
  CU_ASSERT_EQUAL(px_proc_run(NULL, "%s", args), 0);
  snprintf(first_out, sizeof first_out, "%s", px_proc_out);
  CU_ASSERT_EQUAL(count_lines(first_out), 5);
  CU_ASSERT(strncmp(first_out, "1+1=\t", 5) == 0);
  CU_ASSERT(px_test_contains(first_out, "\na\\tb\\nc\t"));
  CU_ASSERT(px_test_contains(first_out, "\nx\t"));
  CU_ASSERT(px_test_contains(first_out, "\n\t"));
  CU_ASSERT(px_test_contains(first_out, "\n99+99=\t"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck --prompts p.h5 --temperature 1 --seed 3 "
                                    "--batch 5 --max-new-tokens 10"),
                  0);
  CU_ASSERT_STRING_EQUAL(px_proc_out, first_out);
  if (two && two[0]) { /* the prompts split over 2 ranks: the same lines, once, in order */
    CU_ASSERT_EQUAL(px_proc_run(two, "%s", args), 0);
    CU_ASSERT_STRING_EQUAL(px_proc_out, first_out);
    CU_ASSERT_EQUAL(px_proc_run(two, "generate --ckpt run --prompts p.h5 --temperature 1 "
                                     "--seed 3 --max-new-tokens 10"),
                    0);
    CU_ASSERT_STRING_EQUAL(px_proc_out, first_out);
  }
  CU_ASSERT_EQUAL(px_proc_run(NULL, "%s --seed 4", args), 0);
  CU_ASSERT(strcmp(px_proc_out, first_out) != 0);

  /* JSON lines. */
  CU_ASSERT_EQUAL(px_proc_run(NULL, "%s --json", args), 0);
  CU_ASSERT_EQUAL(count_lines(px_proc_out), 5);
  CU_ASSERT(px_test_contains(px_proc_out, "{\"index\": 0, \"prompt\": \"1+1=\", \"response\": "));
  CU_ASSERT(px_test_contains(px_proc_out, "\"prompt\": \"a\\tb\\nc\""));
  CU_ASSERT(px_test_contains(px_proc_out, "{\"index\": 4,"));
  CU_ASSERT(px_test_contains(px_proc_out, "\"logprob\": "));

  /* Bad input: exit 1, a message that says what. */
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt nowhere.h5 --prompt hi"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "nowhere.h5: no such checkpoint file or directory"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt p.jsonl --prompt hi"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "p.jsonl"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "--prompt"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --prompt hi"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "--ckpt"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck --prompt "
                                    "0123456789012345678901234567890123456789"),
                  1);
  CU_ASSERT(px_test_contains(px_proc_err, "max_seq_len"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck --prompt hi --top-p 0"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "top_p"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --ckpt ck --prompts missing.jsonl"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "missing.jsonl"));
  CU_ASSERT_EQUAL(px_proc_run(NULL, "generate --help"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "sample.max_new_tokens"));
  CU_ASSERT_EQUAL(chdir(".."), 0);
}

void px_test_register(void) {
  static CU_TestInfo tests[] = {{"proxima generate", test_generate_cli}, CU_TEST_INFO_NULL};
  px_test_suite("generate cli", tests);
}
