/*
 * test_gpt2_pipeline.c — the whole pipeline on a user's JSONL data with GPT-2's tokenizer
 * (PX_GPT2_DIR): data import --tokenizer, then sft -> rm -> ppo -> eval, generate and ckpt
 * verify on a small model with random weights, under a 2-rank launch and on one rank. Checks
 * the files (which tokenizer each data set and checkpoint records, that the stored tokens decode
 * back to the JSONL's text, that the checkpoint alone rebuilds the tokenizer), that 1 and 2
 * ranks agree as they do for bytes (data import too: the same bytes from 1 and 2 ranks), and
 * that a data set made by another tokenizer is refused with exit 1 and nothing written.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "proxima/checkpoint.h"
#include "proxima/dataset.h"
#include "proxima/gpt.h"
#include "proxima/jsonl.h"
#include "proxima/tokenizer.h"
#include "test_proc.h"
#include "test_util.h"

#define MODEL                                                                                      \
  "model.tokenizer=gpt2 model.tokenizer_dir=%s model.n_layer=1 model.n_head=2 model.n_embd=32 "    \
  "model.max_seq_len=40 run.log_level=warn "
#define SFT_ARGS                                                                                   \
  "sft --data g2-data/sft.h5 --steps 6 sft.batch_size=8 sft.micro_batch=4 sft.heldout=8 "          \
  "sft.log_every=1 sft.eval_every=3 " MODEL
#define RM_ARGS                                                                                    \
  "rm --init g2-sft --data g2-data/prefs.h5 rm.epochs=0.5 rm.batch_size=8 rm.micro_batch=4 "       \
  "rm.heldout=8 rm.norm_samples=0 " MODEL
#define PPO_ARGS                                                                                   \
  "ppo --policy g2-sft --reward g2-rm --prompts g2-data/prompts.h5 --eval-prompts "                \
  "g2-data/prompts.h5 --iterations 2 ppo.batch_size=8 ppo.minibatch=8 ppo.micro_batch=4 "          \
  "ppo.eval_every=2 sample.batch=4 sample.max_new_tokens=6 " MODEL

static const char *gpt2_dir(void) {
  const char *dir = getenv("PX_GPT2_DIR");
  if (!dir || !*dir) {
    fprintf(stderr, "\n  PX_GPT2_DIR is not set: run scripts/install-deps.sh\n");
    CU_FAIL_FATAL("no GPT-2 tokenizer files");
  }
  return dir;
}

/* Varied text: words, accents, CJK, emoji, digits, contractions, runs of spaces. */
static void phrase(char *buf, size_t n, unsigned seed, int words) {
  static const char *const w[] = {"the",
                                  "cat",
                                  "sat",
                                  "on",
                                  "a",
                                  "mat",
                                  "caf\xC3\xA9",
                                  "na\xC3\xAFve",
                                  "\xE6\x9D\xB1\xE4\xBA\xAC",
                                  "\xF0\x9F\x98\x80",
                                  "it's",
                                  "we'll",
                                  "42",
                                  "3.14",
                                  "  ",
                                  "Hello",
                                  "WORLD"};
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < words && len + 32 < n; i++) {
    seed = seed * 1103515245u + 12345u;
    len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? " " : "",
                            w[(seed >> 16) % (sizeof w / sizeof w[0])]);
  }
}

static void write_jsonl(const char *path, int n, const char *const *fields, int n_fields) {
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 0; i < n; i++) {
    json_t *o = json_object();
    for (int k = 0; k < n_fields; k++) {
      char text[256];
      phrase(text, sizeof text, (unsigned)(i * 7 + k * 131 + 1), 2 + (i + k) % 4);
      json_object_set_new(o, fields[k], json_string(text));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(f, "%s\n", line);
    free(line);
    json_decref(o);
  }
  CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
}

static void test_import(void) {
  px_proc_forget_singleton_job();
  const char *dir = gpt2_dir(), *launch = getenv("PX_LAUNCH_2");
  CU_ASSERT_EQUAL_FATAL(system("rm -rf g2-* && mkdir g2-data"), 0);
  const char *sft[] = {"prompt", "completion"}, *prefs[] = {"prompt", "chosen", "rejected"},
             *prompts[] = {"prompt"};
  write_jsonl("g2-data/sft.jsonl", 48, sft, 2);
  write_jsonl("g2-data/prefs.jsonl", 48, prefs, 3);
  write_jsonl("g2-data/prompts.jsonl", 24, prompts, 1);
  const char *kinds[] = {"sft", "prefs", "prompts"};
  for (int k = 0; k < 3; k++)
    CU_ASSERT_EQUAL_FATAL(px_proc_run(launch,
                                      "data import --kind %s --tokenizer %s g2-data/%s.jsonl "
                                      "g2-data/%s.h5",
                                      kinds[k], dir, kinds[k], kinds[k]),
                          0);
  /* The data set records the tokenizer, and its tokens decode to the JSONL's text. */
  px_tokenizer tok;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_tokenizer_load_dir(&tok, dir, &err), PX_OK);
  px_dataset ds, js;
  CU_ASSERT_EQUAL_FATAL(
      px_dataset_read("g2-data/prefs.h5", PX_IO_ALONE, 0, 1, PX_DATA_PREFS, &tok, &ds, &err),
      PX_OK);
  CU_ASSERT_STRING_EQUAL(ds.tokenizer, "gpt2");
  CU_ASSERT_STRING_EQUAL(ds.tokenizer_hash, tok.hash);
  CU_ASSERT_EQUAL(ds.tokenizer_n_vocab, 50257);
  CU_ASSERT_EQUAL_FATAL(px_jsonl_read("g2-data/prefs.jsonl", PX_DATA_PREFS, &tok, &js, &err),
                        PX_OK);
  CU_ASSERT_EQUAL_FATAL(ds.n, js.n);
  int64_t fewer = 0; /* BPE merges bytes: fewer tokens than bytes */
  for (int64_t i = 0; i < ds.n; i++)
    for (int f = 0; f < 3; f++) {
      int64_t a, b;
      const int32_t *ta = px_dataset_row(&ds, f, i, &a), *tb = px_dataset_row(&js, f, i, &b);
      CU_ASSERT_EQUAL(a, b);
      CU_ASSERT(a == b && memcmp(ta, tb, (size_t)a * sizeof *ta) == 0);
      px_text text = {0};
      px_tokenizer_decode(&tok, &text, ta, (size_t)a);
      char want[256];
      phrase(want, sizeof want, (unsigned)(i * 7 + f * 131 + 1), 2 + (int)((i + f) % 4));
      CU_ASSERT_STRING_EQUAL(text.p, want);
      fewer += a < (int64_t)strlen(want);
      px_text_free(&text);
    }
  CU_ASSERT(fewer > ds.n);
  px_dataset_free(&ds);
  px_dataset_free(&js);
  px_tokenizer_free(&tok);
}

static void test_pipeline_two_ranks(void) {
  const char *dir = gpt2_dir(), *launch = getenv("PX_LAUNCH_2");
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch, SFT_ARGS "--run g2-sft", dir), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch, RM_ARGS "--run g2-rm", dir), 0);
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch, PPO_ARGS "--run g2-ppo", dir), 0);
  /* Every checkpoint stores the tokenizer whole: it rebuilds to the directory's. */
  px_tokenizer want, have;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_tokenizer_load_dir(&want, dir, &err), PX_OK);
  const char *runs[] = {"g2-sft", "g2-rm", "g2-ppo"};
  for (int r = 0; r < 3; r++) {
    CU_ASSERT_EQUAL_FATAL(px_ckpt_read_tokenizer(runs[r], &have, &err), PX_OK);
    CU_ASSERT(px_tokenizer_same(&have, &want));
    CU_ASSERT_EQUAL(have.vocab_len, want.vocab_len);
    CU_ASSERT(have.vocab_len == want.vocab_len && !memcmp(have.vocab, want.vocab, want.vocab_len));
    px_tokenizer_free(&have);
    CU_ASSERT_EQUAL(px_proc_run("", "ckpt verify %s", runs[r]), 0);
  }
  /* The embedding's padding rows (PAD 50257 and the ids up to 50304) take no part in the
   * softmax: no gradient ever reached them, so their Adam moments are still zero. */
  char path[4300];
  CU_ASSERT_EQUAL_FATAL(px_ckpt_resolve("g2-sft", path, sizeof path, &err), PX_OK);
  px_gpt_config mc;
  CU_ASSERT_EQUAL_FATAL(px_ckpt_read_config(path, "policy", &mc, &err), PX_OK);
  CU_ASSERT_EQUAL(mc.vocab_size, 50304);
  px_gpt m;
  px_gpt_build(&m, &mc, 1, 1, 1);
  px_ckpt_model cm = {.group = "policy", .model = &m, .optim = 1};
  CU_ASSERT_EQUAL_FATAL(px_ckpt_read_model(path, &cm, &err), PX_OK);
  const px_gpt_tensor *wte = px_gpt_find_tensor(&m, "wte");
  const size_t C = (size_t)mc.n_embd;
  int padding_zero = 1, text_moved = 0;
  for (size_t i = 0; i < 50304 * C; i++) {
    const float v = m.v[wte->offset + i];
    if (i >= 50257 * C)
      padding_zero &= v == 0.0f;
    else
      text_moved |= v != 0.0f;
  }
  CU_ASSERT(padding_zero);
  CU_ASSERT(text_moved);
  px_gpt_free(&m);
  CU_ASSERT_EQUAL(px_proc_run("", "ckpt info g2-ppo"), 0);
  CU_ASSERT(px_test_contains(px_proc_out, "tokenizer  gpt2: 50257 tokens"));
  CU_ASSERT(px_test_contains(px_proc_out, "vocab 50304"));
  px_tokenizer_free(&want);
}

/* The checkpoint alone is enough: generate and eval read no tokenizer directory. */
static void test_generate_and_eval(void) {
  const char *launch = getenv("PX_LAUNCH_2");
  CU_ASSERT_EQUAL_FATAL(px_proc_run(launch,
                                    "generate --ckpt g2-ppo --prompts g2-data/prompts.jsonl --json "
                                    "--max-new-tokens 5 run.log_level=warn"),
                        0);
  int lines = 0;
  for (char *line = strtok(px_proc_out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
    json_t *o = json_loads(line, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(o);
    CU_ASSERT(o && json_is_string(json_object_get(o, "response")));
    CU_ASSERT(o && json_integer_value(json_object_get(o, "tokens")) >= 1);
    json_decref(o);
  }
  CU_ASSERT_EQUAL(lines, 24);
  CU_ASSERT_EQUAL(px_proc_run("", "generate --ckpt g2-ppo --prompt 'Hello world' --greedy "
                                  "run.log_level=warn"),
                  0);
  CU_ASSERT(px_test_contains(px_proc_out, "Hello world\t"));
  CU_ASSERT_EQUAL(px_proc_run(launch, "eval --policy g2-ppo --prompts g2-data/prompts.h5 --out "
                                      "g2-eval.json run.log_level=warn"),
                  0);
  json_t *e = json_load_file("g2-eval.json", 0, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "n_prompts")), 24);
  json_decref(e);
}

/* One rank against two, as for the byte tokenizer: the same losses up to float rounding. */
static void test_one_and_two_ranks(void) {
  const char *dir = gpt2_dir();
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", SFT_ARGS "--run g2-sft-one", dir), 0);
  double a[16], b[16];
  int n = px_proc_metric("g2-sft", "sft", "loss", a, 16);
  CU_ASSERT_EQUAL_FATAL(n, 6);
  CU_ASSERT_EQUAL_FATAL(px_proc_metric("g2-sft-one", "sft", "loss", b, 16), n);
  double worst = 0;
  for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / fabs(b[i]));
  printf("\n    sft loss, 1 rank vs 2: largest relative difference %.2e\n", worst);
  CU_ASSERT(worst < 1e-4);
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", PPO_ARGS "--run g2-ppo-one", dir), 0);
  const char *exact[] = {"response_length", "eos_rate"};
  for (int k = 0; k < 2; k++) {
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("g2-ppo", "ppo", exact[k], a, 16), 2);
    CU_ASSERT_EQUAL_FATAL(px_proc_metric("g2-ppo-one", "ppo", exact[k], b, 16), 2);
    CU_ASSERT_DOUBLE_EQUAL(a[0], b[0], 0);
  }
}

/* A data set of another tokenizer: exit 1 naming both, no checkpoint written. */
static void test_mismatch_refused(void) {
  const char *dir = gpt2_dir();
  CU_ASSERT_EQUAL_FATAL(px_proc_run("", "data import --kind sft --tokenizer byte "
                                        "g2-data/sft.jsonl g2-data/sft-byte.h5 run.log_level=warn"),
                        0);
  CU_ASSERT_EQUAL(px_proc_run("", SFT_ARGS "--run g2-bad --data g2-data/sft-byte.h5", dir), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "g2-data/sft-byte.h5 was tokenized with byte"));
  CU_ASSERT(px_test_contains(px_proc_err, "the model's tokenizer is gpt2"));
  CU_ASSERT(px_count_entries("g2-bad/checkpoints") <= 0);
  /* A byte model with gpt2 data, the other way round. */
  CU_ASSERT_EQUAL(px_proc_run("", "sft --data g2-data/sft.h5 --run g2-bad2 --steps 1 "
                                  "sft.batch_size=8 sft.micro_batch=8 run.log_level=warn"),
                  1);
  CU_ASSERT(px_test_contains(px_proc_err, "was tokenized with gpt2"));
  CU_ASSERT(px_count_entries("g2-bad2/checkpoints") <= 0);
  /* PPO's five allocations together (each model alone fits) against the node's memory: refused
   * at the start, not killed by the system halfway. */
  CU_ASSERT_EQUAL(px_proc_run("", PPO_ARGS "--run g2-big ppo.micro_batch=20000", dir), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "ppo: the four models"));
  CU_ASSERT(px_test_contains(px_proc_err, "lower ppo.micro_batch"));
  CU_ASSERT(px_count_entries("g2-big/checkpoints") <= 0);
  /* ppo's prompts, eval's prompts and rm's pairs are checked the same way. */
  CU_ASSERT_EQUAL(px_proc_run("", "eval --policy g2-ppo --prompts g2-data/sft-byte.h5"), 1);
  CU_ASSERT(px_test_contains(px_proc_err, "was tokenized with byte"));
  /* A bad line in the second rank's half is named by its line in the whole file. */
  FILE *f = fopen("g2-data/bad.jsonl", "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  for (int i = 1; i <= 40; i++)
    fprintf(f, i == 33 ? "{\"prompt\": [1]}\n" : "{\"prompt\": \"line %d\"}\n\n", i);
  CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
  CU_ASSERT_EQUAL(px_proc_run(getenv("PX_LAUNCH_2"), "data import --kind prompts g2-data/bad.jsonl "
                                                     "g2-data/bad.h5"),
                  1);
  CU_ASSERT(px_test_contains(px_proc_err, "g2-data/bad.jsonl:65: field \"prompt\" is an array"));
  CU_ASSERT_EQUAL(px_test_file_size("g2-data/bad.h5"), -1);
  /* The tokenizer taken from a checkpoint, on one rank, tokenizes as the directory's did on two:
   * the same file, byte for byte. */
  CU_ASSERT_EQUAL(px_proc_run("", "data import --kind sft --tokenizer g2-sft g2-data/sft.jsonl "
                                  "g2-data/sft-ckpt.h5 run.log_level=warn"),
                  0);
  CU_ASSERT(px_proc_same_file("g2-data/sft-ckpt.h5", "g2-data/sft.h5"));
  /* A tokenizer that is neither: exit 1, no file. */
  CU_ASSERT_EQUAL(px_proc_run("", "data import --kind sft --tokenizer g2-data g2-data/sft.jsonl "
                                  "g2-data/none.h5"),
                  1);
  CU_ASSERT(px_test_contains(px_proc_err, "--tokenizer g2-data is not byte"));
  CU_ASSERT_EQUAL(px_test_file_size("g2-data/none.h5"), -1);
}

void px_test_register(void) {
  static const CU_TestInfo tests[] = {
      {"data import --tokenizer", test_import},
      {"sft, rm, ppo on 2 ranks", test_pipeline_two_ranks},
      {"generate and eval from the checkpoint alone", test_generate_and_eval},
      {"1 and 2 ranks", test_one_and_two_ranks},
      {"another tokenizer's data set", test_mismatch_refused},
      CU_TEST_INFO_NULL};
  px_test_suite("gpt2 pipeline", tests);
}
