/*
 * test_tokenizer.c — the byte tokenizer, the text of output (util/text.c) and the Philox random
 * numbers (util/).
 */
#include <math.h>
#include <stdint.h>

#include "proxima/rng.h"
#include "proxima/text.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

static void test_utf8_round_trip(void) {
  const char text[] = "37+45=82 \xC3\xA9t\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 \0 nul";
  size_t n = sizeof text - 1; /* the embedded NUL is part of the text */
  int32_t tok[64];
  char back[65];
  CU_ASSERT_EQUAL(px_tok_encode(tok, text, n), n);
  CU_ASSERT(px_tok_all_bytes(tok, n));
  CU_ASSERT_EQUAL(tok[0], '3');
  CU_ASSERT_EQUAL(tok[9], 0xC3); /* bytes, not code points */
  CU_ASSERT_EQUAL(px_tok_decode(back, tok, n), n);
  CU_ASSERT_EQUAL(memcmp(back, text, n), 0);
}

static void test_specials(void) {
  CU_ASSERT_EQUAL(PX_TOK_PAD, 256);
  CU_ASSERT_NOT_EQUAL(PX_TOK_PAD, PX_TOK_EOS);
  CU_ASSERT_EQUAL(PX_TOK_COUNT, 259);
  int32_t tok[] = {PX_TOK_BOS, 'h', 'i', PX_TOK_EOS, PX_TOK_PAD, 999};
  char out[64];
  CU_ASSERT_FALSE(px_tok_all_bytes(tok, 6));
  CU_ASSERT_EQUAL(px_tok_decode(out, tok, 6), 2);
  CU_ASSERT_STRING_EQUAL(out, "hi");
  px_tok_render(out, sizeof out, tok, 6);
  CU_ASSERT_STRING_EQUAL(out, "<|bos|>hi<|eos|><|pad|><|999|>");
  /* A buffer too small cuts at a whole token and stays NUL-terminated. */
  px_tok_render(out, 10, tok, 6);
  CU_ASSERT_STRING_EQUAL(out, "<|bos|>hi");
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
  static const CU_TestInfo tokenizer[] = {{"UTF-8 round trip", test_utf8_round_trip},
                                          {"special tokens", test_specials},
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
