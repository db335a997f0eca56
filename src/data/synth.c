/*
 * synth.c — the built-in arith task; synth.h says what it is.
 */
#include "proxima/synth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/dataset.h"
#include "proxima/fsutil.h"
#include "proxima/jsonl.h"
#include "proxima/log.h"
#include "proxima/rng.h"

/* Philox streams: the first counter word keeps the uses apart. */
enum { PX_STREAM_SPLIT = 1, PX_STREAM_SFT = 2, PX_STREAM_PREFS = 3, PX_STREAM_PROMPTS = 4 };

typedef struct px_arith {
  uint64_t seed;
  double base_accuracy;
  int max_offset;
  bool digit_errors; /* synth.errors = digit: the offset moves the last digit only */
} px_arith;

static int px_arith_a(int p) { return 10 + p / 90; }
static int px_arith_b(int p) { return 10 + p % 90; }

/* A base-model answer to prompt p: right with probability base_accuracy, else off by a nonzero
 * offset in [-max_offset, max_offset]: added to the sum (errors = offset), or to its last digit
 * modulo 10 (errors = digit: 80 becomes 81..83 or 87..89, never 79). Draws (stream, record,
 * draw).
 *
 * Why digit is the default: with offsets, the answers that cross a ten (79 for 80) are 8% of the
 * base's answers at the defaults, yet every preference pair is then explained by the last digit
 * alone, so a reward model learns nothing about the tens digit and PPO cannot correct it (it
 * turns 79 into 70). The preference data must contrast every kind of error the base makes. */
static int px_arith_base_answer(const px_arith *t, int p, uint32_t stream, uint32_t record,
                                uint32_t draw) {
  int sum = px_arith_a(p) + px_arith_b(p);
  px_rng_ctr c = {{stream, record, draw, 0}};
  if (px_rng_uniform(t->seed, c) < t->base_accuracy) return sum;
  c.w[3] = 1;
  int k = (int)px_rng_below(t->seed, c, 2 * (uint64_t)t->max_offset);
  int offset = k < t->max_offset ? k - t->max_offset : k - t->max_offset + 1;
  if (!t->digit_errors) return sum + offset;
  return sum - sum % 10 + (sum % 10 + offset + 10) % 10;
}

static size_t px_arith_prompt(char *buf, size_t n, int p) {
  return (size_t)snprintf(buf, n, "%d+%d=", px_arith_a(p), px_arith_b(p));
}

/* Strictly "A+B=", A and B of 1 to 9 decimal digits: sscanf("%d") would also take spaces and
 * signs (" 3+-4="), and overflow int on long numbers, which is undefined behaviour. */
int px_synth_arith_answer(const char *prompt, size_t len, char *buf, size_t n) {
  long term[2] = {0, 0};
  size_t i = 0;
  for (int t = 0; t < 2; t++) {
    size_t start = i;
    while (i < len && i - start < 10 && prompt[i] >= '0' && prompt[i] <= '9')
      term[t] = 10 * term[t] + (prompt[i++] - '0');
    if (i == start || i - start > 9 || i >= len || prompt[i++] != "+="[t]) return -1;
  }
  if (i != len) return -1;
  return snprintf(buf, n, "%ld", term[0] + term[1]);
}

/* Writes ds as DIR/NAME.jsonl, then imports that file into DIR/NAME.h5. */
static px_status px_synth_emit(const char *dir, const char *name, const px_dataset *ds,
                               px_error *err) {
  char jsonl[4096], h5[4096];
  snprintf(jsonl, sizeof jsonl, "%s/%s.jsonl", dir, name);
  snprintf(h5, sizeof h5, "%s/%s.h5", dir, name);
  PX_TRY(px_jsonl_write(jsonl, ds, ds->tok, err));
  PX_TRY(px_jsonl_import(jsonl, ds->kind, ds->tok, h5, err));
  px_log_info("data synth: wrote %s and %s (%lld records)", jsonl, h5, (long long)ds->n);
  return PX_OK;
}

/* The prompts split: a seeded Fisher–Yates shuffle of 0..PX_SYNTH_ARITH_PROMPTS-1 whose first
 * n_eval are held out (eval) and the rest train. */
typedef struct px_arith_split {
  int order[PX_SYNTH_ARITH_PROMPTS];
  const int *train, *eval;
  int n_train, n_eval;
} px_arith_split;

static void px_arith_split_build(px_arith_split *s, uint64_t seed, int n_eval) {
  for (int i = 0; i < PX_SYNTH_ARITH_PROMPTS; i++) s->order[i] = i;
  for (int i = PX_SYNTH_ARITH_PROMPTS - 1; i > 0; i--) {
    px_rng_ctr c = {{PX_STREAM_SPLIT, (uint32_t)i, 0, 0}};
    int j = (int)px_rng_below(seed, c, (uint64_t)i + 1);
    int tmp = s->order[i];
    s->order[i] = s->order[j];
    s->order[j] = tmp;
  }
  s->n_eval = n_eval;
  s->n_train = PX_SYNTH_ARITH_PROMPTS - n_eval;
  s->eval = s->order;
  s->train = s->order + n_eval;
}

/* sft: n training prompts, each with one base completion. */
static px_status px_synth_sft(const px_arith *t, const px_arith_split *s, int64_t n,
                              const char *dir, px_error *err) {
  char prompt[32], a1[16];
  const char *texts[2];
  size_t lens[2];
  px_dataset ds;
  px_tokenizer bytes; /* the built-in task is the byte tokenizer's */
  px_tokenizer_byte(&bytes);
  px_dataset_init(&ds, PX_DATA_SFT, 2, &bytes);
  for (int64_t i = 0; i < n; i++) {
    px_rng_ctr c = {{PX_STREAM_SFT, (uint32_t)i, 0, 7}};
    int p = s->train[px_rng_below(t->seed, c, (uint64_t)s->n_train)];
    lens[0] = px_arith_prompt(prompt, sizeof prompt, p);
    lens[1] = (size_t)snprintf(a1, sizeof a1, "%d",
                               px_arith_base_answer(t, p, PX_STREAM_SFT, (uint32_t)i, 1));
    texts[0] = prompt, texts[1] = a1;
    px_dataset_append(&ds, texts, lens);
  }
  px_status st = px_synth_emit(dir, "sft", &ds, err);
  px_dataset_free(&ds);
  return st;
}

/* prefs: n draws of two base completions; the closer to the sum is chosen, ties dropped, a
 * flip_rate share flipped. */
static px_status px_synth_prefs(const px_arith *t, const px_arith_split *s, int64_t n,
                                double flip_rate, const char *dir, px_error *err) {
  char prompt[32], a1[16], a2[16];
  const char *texts[3];
  size_t lens[3];
  px_dataset ds;
  px_tokenizer bytes; /* the built-in task is the byte tokenizer's */
  px_tokenizer_byte(&bytes);
  px_dataset_init(&ds, PX_DATA_PREFS, 3, &bytes);
  for (int64_t i = 0; i < n; i++) {
    px_rng_ctr c = {{PX_STREAM_PREFS, (uint32_t)i, 0, 7}};
    int p = s->train[px_rng_below(t->seed, c, (uint64_t)s->n_train)];
    int sum = px_arith_a(p) + px_arith_b(p);
    int y1 = px_arith_base_answer(t, p, PX_STREAM_PREFS, (uint32_t)i, 1);
    int y2 = px_arith_base_answer(t, p, PX_STREAM_PREFS, (uint32_t)i, 2);
    int d1 = abs(y1 - sum), d2 = abs(y2 - sum);
    if (d1 == d2) continue;
    int chosen = d1 < d2 ? y1 : y2, rejected = d1 < d2 ? y2 : y1;
    c.w[2] = 3;
    if (px_rng_uniform(t->seed, c) < flip_rate) {
      int tmp = chosen;
      chosen = rejected;
      rejected = tmp;
    }
    lens[0] = px_arith_prompt(prompt, sizeof prompt, p);
    lens[1] = (size_t)snprintf(a1, sizeof a1, "%d", chosen);
    lens[2] = (size_t)snprintf(a2, sizeof a2, "%d", rejected);
    texts[0] = prompt, texts[1] = a1, texts[2] = a2;
    px_dataset_append(&ds, texts, lens);
  }
  if (ds.n == 0) {
    px_dataset_free(&ds);
    return px_error_set(err, PX_EINPUT,
                        "synth: every preference pair was a tie (raise "
                        "synth.n_prefs or lower synth.base_accuracy)");
  }
  px_status st = px_synth_emit(dir, "prefs", &ds, err);
  px_dataset_free(&ds);
  return st;
}

/* prompts (n_prompts drawn from the training prompts) and eval (every held-out prompt), each
 * with its gold answer as the reference. */
static px_status px_synth_prompts(const px_arith *t, const px_arith_split *s, int64_t n_prompts,
                                  const char *dir, px_error *err) {
  char prompt[32], a1[16];
  const char *texts[2];
  size_t lens[2];
  px_dataset ds;
  px_tokenizer bytes; /* the built-in task is the byte tokenizer's */
  px_tokenizer_byte(&bytes);
  px_status st = PX_OK;
  for (int which = 0; which < 2 && st == PX_OK; which++) {
    int64_t n = which == 0 ? n_prompts : s->n_eval;
    px_dataset_init(&ds, PX_DATA_PROMPTS, 2, &bytes);
    for (int64_t i = 0; i < n; i++) {
      px_rng_ctr c = {{PX_STREAM_PROMPTS, (uint32_t)i, 0, 7}};
      int p = which == 0 ? s->train[px_rng_below(t->seed, c, (uint64_t)s->n_train)] : s->eval[i];
      lens[0] = px_arith_prompt(prompt, sizeof prompt, p);
      lens[1] = (size_t)snprintf(a1, sizeof a1, "%d", px_arith_a(p) + px_arith_b(p));
      texts[0] = prompt, texts[1] = a1;
      px_dataset_append(&ds, texts, lens);
    }
    st = px_synth_emit(dir, which == 0 ? "prompts" : "eval", &ds, err);
    px_dataset_free(&ds);
  }
  return st;
}

px_status px_synth_run(const px_config *cfg, px_error *err) {
  if (!cfg->synth_out[0])
    return px_error_set(err, PX_EINPUT,
                        "synth.out is empty: data synth needs a directory to write to (--out DIR)");
  if (cfg->synth_n_eval >= PX_SYNTH_ARITH_PROMPTS)
    return px_error_set(err, PX_EINPUT,
                        "synth.n_eval = %lld leaves no training prompts (the arith task has %d "
                        "distinct prompts)",
                        (long long)cfg->synth_n_eval, PX_SYNTH_ARITH_PROMPTS);
  const char *dir = cfg->synth_out;
  PX_TRY(px_fs_mkdirs(dir, err));
  px_arith t = {(uint64_t)cfg->run_seed, cfg->synth_base_accuracy, (int)cfg->synth_max_offset,
                !strcmp(cfg->synth_errors, "digit")};
  px_arith_split s;
  px_arith_split_build(&s, t.seed, (int)cfg->synth_n_eval);

  PX_TRY(px_synth_sft(&t, &s, cfg->synth_n_sft, dir, err));
  PX_TRY(px_synth_prefs(&t, &s, cfg->synth_n_prefs, cfg->synth_flip_rate, dir, err));
  PX_TRY(px_synth_prompts(&t, &s, cfg->synth_n_prompts, dir, err));

  /* The resolved config beside the data, so the files say how they were made. */
  char path[4096];
  snprintf(path, sizeof path, "%s/synth-config.ini", dir);
  char *text = px_config_to_text(cfg);
  px_status st = px_fs_write_atomic(path, NULL, text, strlen(text), err);
  free(text);
  return st;
}
