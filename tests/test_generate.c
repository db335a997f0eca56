/*
 * test_generate.c — batched generation with the KV cache (src/model/kvcache.c,
 * src/rollout/sampler.c, src/rollout/generate.c), issue 3's acceptance 3:
 *  - the log-probs recorded while generating equal those of a teacher-forced px_gpt_forward +
 *    px_gpt_logprobs over the same tokens (max abs difference <= 1e-5), at temperatures 1 and
 *    0.7, with top-k and greedy, for prompts of different lengths in one batch;
 *  - B sequences generated together give the tokens each gives alone (same seed, same global
 *    index), and so do 2 ranks each generating its share (this suite also runs as a 2-rank
 *    launch);
 *  - greedy is the argmax of the teacher-forced logits; top-k 1 and a tiny top-p are greedy;
 *  - on a model whose logits are set by hand (lnf_w = 0 makes the final LayerNorm output its
 *    bias e_0, so the logits are wte's column 0 at every position): top-k and top-p never leave
 *    their set, PAD, BOS and ids >= 259 of a 320-token vocabulary are never drawn however large
 *    their logits, EOS stops a sequence, and max_new_tokens and max_seq_len cut it.
 */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxima/bpe.h"
#include "proxima/comm.h"
#include "proxima/generate.h"
#include "proxima/gpt.h"
#include "proxima/kernels.h"
#include "proxima/ppo.h"
#include "proxima/rng.h"
#include "proxima/sampler.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

enum { MAXT = 24, NP = 7 };

/* The byte tokenizer, which every model here uses. */
static px_tokenizer tok;

static px_gpt_config tiny(int vocab) {
  px_gpt_config c = {vocab, MAXT, 2, 2, 16, PX_GPT_HEAD_LM};
  return c;
}

/* A random model moved off GPT-2's near-uniform start, so that the distributions have shape. */
static void random_model(px_gpt *m, int vocab, int max_B) {
  px_gpt_config c = tiny(vocab);
  px_gpt_build(m, &c, max_B, MAXT, 0);
  px_gpt_init(m, 21);
  for (size_t i = 0; i < m->n_params; i++) {
    px_rng_ctr ctr = {{7, (uint32_t)i, 0, 3}};
    m->params[i] += (float)(0.25 * px_rng_normal(99, ctr));
  }
}

/* NP prompts, BOS then random bytes, of lengths 1..9 (not sorted). */
static const int prompt_len[NP] = {4, 1, 9, 2, 6, 3, 5};
static void prompts(int32_t *tokens, int64_t *offsets) {
  offsets[0] = 0;
  for (int i = 0; i < NP; i++) {
    offsets[i + 1] = offsets[i] + prompt_len[i];
    tokens[offsets[i]] = PX_TOK_BYTE_BOS;
    for (int t = 1; t < prompt_len[i]; t++) {
      px_rng_ctr ctr = {{(uint32_t)i, (uint32_t)t, 0, 5}};
      tokens[offsets[i] + t] = (int32_t)px_rng_below(3, ctr, 256);
    }
  }
}

static void gen(px_gpt *m, const px_sampler_config *sc, uint64_t seed, int batch, int max_new,
                const int32_t *tokens, const int64_t *offsets, int64_t n, int64_t first,
                px_generation *out) {
  px_generator g;
  px_error err;
  px_generator_build(&g, m, &tok, sc, seed, batch, max_new, 0);
  CU_ASSERT_EQUAL(px_generate(&g, tokens, offsets, n, 3, first, out, &err), PX_OK);
  px_generator_free(&g);
}

/* Teacher forcing: prompt + response of every sequence through px_gpt_forward; the log-probs
 * of the response tokens at temperature temp against those generation recorded. Also checks
 * (when greedy) that each token is the argmax of the allowed tokens' logits. Returns the
 * largest absolute difference. */
static double teacher_forced(px_gpt *m, const px_generation *gen, const int32_t *tokens,
                             const int64_t *offsets, float temp, int greedy) {
  const int n = (int)gen->n, V = m->config.vocab_size;
  int32_t *in = px_calloc((size_t)n * MAXT, sizeof(int32_t));
  int32_t *tg = px_malloc((size_t)n * MAXT * sizeof(int32_t));
  int32_t *len = px_calloc((size_t)n, sizeof(int32_t));
  float *lp = px_calloc((size_t)n * MAXT, sizeof(float));
  for (int i = 0; i < n * MAXT; i++) tg[i] = -1;
  for (int b = 0; b < n; b++) {
    const int pl = (int)(offsets[b + 1] - offsets[b]), rl = gen->lengths[b];
    CU_ASSERT_FATAL(rl >= 1 && pl + rl <= MAXT);
    for (int t = 0; t < pl; t++) in[b * MAXT + t] = tokens[offsets[b] + t];
    for (int j = 0; j < rl; j++) {
      if (pl + j < MAXT) in[b * MAXT + pl + j] = gen->tokens[b * gen->max_new + j];
      tg[b * MAXT + pl + j - 1] = gen->tokens[b * gen->max_new + j];
    }
    len[b] = pl + rl - 1;
  }
  px_gpt_forward(m, in, len, n, MAXT);
  px_gpt_logprobs(m, lp, tg, temp);
  double worst = 0.0;
  int argmax_ok = 1;
  for (int b = 0; b < n; b++) {
    const int pl = (int)(offsets[b + 1] - offsets[b]);
    for (int j = 0; j < gen->lengths[b]; j++) {
      const int t = pl + j - 1;
      worst = fmax(worst, fabs(lp[b * MAXT + t] - gen->logprobs[b * gen->max_new + j]));
      if (!greedy) continue;
      const float *z = m->logits + ((size_t)b * MAXT + t) * V;
      int best = -1;
      for (int v = 0; v < PX_TOK_BYTE_IDS; v++)
        if (px_tokenizer_sampleable(&tok, v) && (best < 0 || z[v] > z[best])) best = v;
      argmax_ok &= best == gen->tokens[b * gen->max_new + j];
    }
  }
  CU_ASSERT(argmax_ok);
  free(in);
  free(tg);
  free(len);
  free(lp);
  return worst;
}

/* The invariants of any generation: lengths, EOS only last and flagged, PAD after, allowed
 * tokens, the sequence within max_seq_len. */
static void check_shape(const px_generation *g, const int64_t *offsets, int max_new) {
  for (int64_t i = 0; i < g->n; i++) {
    const int rl = g->lengths[i], pl = (int)(offsets[i + 1] - offsets[i]);
    CU_ASSERT(rl >= 1 && rl <= max_new && pl + rl <= MAXT);
    for (int j = 0; j < rl; j++) {
      int32_t y = g->tokens[i * g->max_new + j];
      CU_ASSERT(px_tokenizer_sampleable(&tok, y));
      if (y == PX_TOK_BYTE_EOS) CU_ASSERT(j == rl - 1);
    }
    CU_ASSERT_EQUAL(g->eos[i], g->tokens[i * g->max_new + rl - 1] == PX_TOK_BYTE_EOS);
    CU_ASSERT(g->eos[i] || rl == max_new || pl + rl == MAXT);
    for (int j = rl; j < g->max_new; j++) {
      CU_ASSERT_EQUAL(g->tokens[i * g->max_new + j], PX_TOK_BYTE_PAD);
      CU_ASSERT_EQUAL(g->logprobs[i * g->max_new + j], 0.0f);
    }
  }
}

static void test_logprobs_teacher_forced(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, NP);
  int32_t tokens[64];
  int64_t offsets[NP + 1];
  prompts(tokens, offsets);
  const px_sampler_config cases[] = {
      {1.0f, 0, 1.0f, 0}, {0.7f, 0, 1.0f, 0}, {0.7f, 20, 0.9f, 0}, {0.0f, 0, 1.0f, 0}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    for (int batch = 3; batch <= NP; batch += NP - 3) { /* waves of 3, and all at once */
      px_generation g;
      gen(&m, &cases[k], 11, batch, 14, tokens, offsets, NP, 0, &g);
      check_shape(&g, offsets, 14);
      const int greedy = cases[k].temperature == 0.0f;
      double worst =
          teacher_forced(&m, &g, tokens, offsets, greedy ? 1.0f : cases[k].temperature, greedy);
      if (!(worst <= 1e-5))
        fprintf(stderr, "\n  temperature %g batch %d: log-prob difference %.3g\n",
                (double)cases[k].temperature, batch, worst);
      CU_ASSERT(worst <= 1e-5);
      px_generation_free(&g);
    }
  }
  px_gpt_free(&m);
}

static int same_tokens(const px_generation *a, int64_t ia, const px_generation *b, int64_t ib) {
  if (a->lengths[ia] != b->lengths[ib] || a->eos[ia] != b->eos[ib]) return 0;
  for (int j = 0; j < a->lengths[ia]; j++)
    if (a->tokens[ia * a->max_new + j] != b->tokens[ib * b->max_new + j]) return 0;
  return 1;
}

static void test_batch_invariance(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, 1);
  int32_t tokens[64];
  int64_t offsets[NP + 1];
  prompts(tokens, offsets);
  const px_sampler_config sc = {0.9f, 0, 1.0f, 0};
  px_generation all, waves;
  gen(&m, &sc, 5, NP, 16, tokens, offsets, NP, 100, &all);
  gen(&m, &sc, 5, 2, 16, tokens, offsets, NP, 100, &waves);
  int eos = 0;
  for (int i = 0; i < NP; i++) {
    px_generation one;
    int64_t off1[2] = {0, offsets[i + 1] - offsets[i]};
    gen(&m, &sc, 5, 1, 16, tokens + offsets[i], off1, 1, 100 + i, &one);
    CU_ASSERT(same_tokens(&all, i, &one, 0));
    CU_ASSERT(same_tokens(&all, i, &waves, i));
    for (int j = 0; j < one.lengths[0]; j++)
      CU_ASSERT(fabs(one.logprobs[j] - all.logprobs[i * all.max_new + j]) <= 1e-5);
    eos += all.eos[i];
    px_generation_free(&one);
  }
  /* Another global index or seed gives another sample. */
  px_generation shifted;
  gen(&m, &sc, 5, NP, 16, tokens, offsets, NP, 101, &shifted);
  int differ = 0;
  for (int i = 0; i < NP; i++) differ += !same_tokens(&all, i, &shifted, i);
  CU_ASSERT(differ > 0);
  px_generation_free(&shifted);
  px_generation_free(&all);
  px_generation_free(&waves);
  px_gpt_free(&m);
}

/* A cache of just the positions the longest prompt and max_new_tokens need
 * (px_ppo_positions) draws the same samples, bit for bit, as one of max_seq_len; with fewer, a
 * sequence stops when it fills them. */
static void test_positions(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, 1);
  int32_t tokens[64];
  int64_t offsets[NP + 1];
  prompts(tokens, offsets);
  const px_sampler_config sc = {1.0f, 0, 1.0f, 0};
  enum { R = 8 };
  int longest = 0; /* without BOS, as a data set holds it */
  for (int i = 0; i < NP; i++) longest = prompt_len[i] - 1 > longest ? prompt_len[i] - 1 : longest;
  const int need = px_ppo_positions(MAXT, longest, R);
  CU_ASSERT_EQUAL(need, longest + R + 2);
  CU_ASSERT(need < MAXT);
  CU_ASSERT_EQUAL(px_ppo_positions(MAXT, longest, 1000), MAXT);
  px_generation g[3];
  const int positions[3] = {0, need, 12};
  for (int k = 0; k < 3; k++) {
    px_generator gr;
    px_error err;
    px_generator_build(&gr, &m, &tok, &sc, 4, NP, R, positions[k]);
    CU_ASSERT_EQUAL(gr.kv.max_T, positions[k] ? positions[k] : MAXT);
    CU_ASSERT_EQUAL(px_generate(&gr, tokens, offsets, NP, 3, 0, &g[k], &err), PX_OK);
    px_generator_free(&gr);
  }
  for (int i = 0; i < NP; i++) {
    CU_ASSERT(same_tokens(&g[0], i, &g[1], i));
    CU_ASSERT(memcmp(g[0].logprobs + i * R, g[1].logprobs + i * R, R * sizeof(float)) == 0);
    /* 12 positions: a prompt of P leaves 12 - P; the tokens drawn are the first of the others */
    const int room = 12 - prompt_len[i], want = g[0].lengths[i] < room ? g[0].lengths[i] : room;
    CU_ASSERT_EQUAL(g[2].lengths[i], want);
    CU_ASSERT(memcmp(g[2].tokens + i * R, g[0].tokens + i * R, (size_t)want * sizeof(int32_t)) ==
              0);
  }
  for (int k = 0; k < 3; k++) px_generation_free(&g[k]);
  px_gpt_free(&m);
}

static void test_greedy_family(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, NP);
  int32_t tokens[64];
  int64_t offsets[NP + 1];
  prompts(tokens, offsets);
  const px_sampler_config greedy = {0.0f, 0, 1.0f, 0}, flag = {0.8f, 0, 1.0f, 1},
                          top1 = {0.8f, 1, 1.0f, 0}, tiny_p = {1.3f, 0, 1e-6f, 0};
  px_generation g, a, b, c;
  gen(&m, &greedy, 1, NP, 12, tokens, offsets, NP, 0, &g);
  CU_ASSERT(teacher_forced(&m, &g, tokens, offsets, 1.0f, 1) <= 1e-5);
  gen(&m, &flag, 2, NP, 12, tokens, offsets, NP, 0, &a);
  gen(&m, &top1, 3, 4, 12, tokens, offsets, NP, 0, &b);
  gen(&m, &tiny_p, 4, 2, 12, tokens, offsets, NP, 0, &c);
  for (int i = 0; i < NP; i++) {
    CU_ASSERT(same_tokens(&g, i, &a, i));
    CU_ASSERT(same_tokens(&g, i, &b, i));
    CU_ASSERT(same_tokens(&g, i, &c, i));
  }
  /* the greedy flag's log-probs are at temperature 1; top-k's at its temperature */
  CU_ASSERT(teacher_forced(&m, &a, tokens, offsets, 1.0f, 1) <= 1e-5);
  CU_ASSERT(teacher_forced(&m, &b, tokens, offsets, 0.8f, 1) <= 1e-5);
  px_generation_free(&g);
  px_generation_free(&a);
  px_generation_free(&b);
  px_generation_free(&c);
  px_gpt_free(&m);
}

/* ---------------------------------------------------------------------------------------------
 * A model whose logits are set by hand
 * ------------------------------------------------------------------------------------------- */

enum { VBIG = 320 };

/* logits[v] = z[v] at every position: lnf_w = 0, lnf_b = e_0, wte[:,0] = z. */
static void controlled_model(px_gpt *m, const float *z) {
  px_gpt_config c = tiny(VBIG);
  px_gpt_build(m, &c, 1, MAXT, 0);
  px_gpt_init(m, 4);
  for (int i = 0; i < c.n_embd; i++) m->p.lnf_w[i] = 0.0f, m->p.lnf_b[i] = i == 0 ? 1.0f : 0.0f;
  for (int v = 0; v < VBIG; v++) m->p.wte[(size_t)v * c.n_embd] = z[v];
}

/* Forbidden tokens (PAD, BOS, >= 259) at logit 50; 'a' 3, 'b' 2.5, 'c' 2, EOS eos, the other
 * bytes -3. Over the allowed tokens: p(a) ~ 0.38, p(a) + p(b) ~ 0.62, + p(c) ~ 0.76; after
 * top-k 3 (renormalised over a, b, c): p(a) ~ 0.506, p(a) + p(b) ~ 0.81. */
static void hand_logits(float *z, float eos) {
  for (int v = 0; v < VBIG; v++) z[v] = px_tokenizer_sampleable(&tok, v) ? -3.0f : 50.0f;
  z['a'] = 3.0f, z['b'] = 2.5f, z['c'] = 2.0f, z[PX_TOK_BYTE_EOS] = eos;
}

static void count_tokens(const px_generation *g, int *counts) {
  memset(counts, 0, VBIG * sizeof(int));
  for (int64_t i = 0; i < g->n; i++)
    for (int j = 0; j < g->lengths[i]; j++) counts[g->tokens[i * g->max_new + j]]++;
}

static void test_allowed_sets(void) {
  float z[VBIG];
  hand_logits(z, -2.0f);
  px_gpt m;
  controlled_model(&m, z);
  enum { N = 16 };
  int32_t tokens[N];
  int64_t offsets[N + 1];
  for (int i = 0; i <= N; i++) offsets[i] = i;
  for (int i = 0; i < N; i++) tokens[i] = PX_TOK_BYTE_BOS;
  int counts[VBIG];
  struct {
    px_sampler_config sc;
    const char *set; /* allowed tokens besides EOS-free bytes; NULL: any allowed */
  } cases[] = {{{1.0f, 0, 1.0f, 0}, NULL},  {{1.0f, 3, 1.0f, 0}, "abc"}, {{1.0f, 2, 1.0f, 0}, "ab"},
               {{1.0f, 0, 0.7f, 0}, "abc"}, {{1.0f, 0, 0.5f, 0}, "ab"},  {{1.0f, 3, 0.6f, 0}, "ab"},
               {{1.0f, 3, 0.5f, 0}, "a"},   {{2.0f, 0, 1.0f, 0}, NULL}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    px_generation g;
    gen(&m, &cases[k].sc, 8, 5, 20, tokens, offsets, N, 0, &g);
    int offsets_ok = 1;
    for (int i = 0; i < N; i++) offsets_ok &= g.lengths[i] >= 1;
    CU_ASSERT(offsets_ok);
    count_tokens(&g, counts);
    int outside = 0, total = 0;
    for (int v = 0; v < VBIG; v++) {
      total += counts[v];
      if (!px_tokenizer_sampleable(&tok, v) ||
          (cases[k].set && (v > 255 || !strchr(cases[k].set, v))))
        outside += counts[v];
    }
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT(total > 50);
    if (cases[k].set)
      for (const char *p = cases[k].set; *p; p++) CU_ASSERT(counts[(int)*p] > 0);
    px_generation_free(&g);
  }
  /* The sampler alone, over many coins: the same sets. */
  px_sampler s;
  px_sampler_candidate scratch[PX_TOK_BYTE_IDS];
  const px_sampler_config topk2 = {1.0f, 2, 1.0f, 0};
  px_sampler_build(&s, &topk2, &tok, 1, VBIG, 1);
  int seen_a = 0, seen_b = 0, bad = 0;
  for (int i = 0; i < 4000; i++) {
    int32_t y = px_sampler_sample(&s, z, (i + 0.5) / 4000.0, scratch);
    seen_a += y == 'a', seen_b += y == 'b', bad += y != 'a' && y != 'b';
  }
  /* p(a | {a, b}) = 1 / (1 + e^-0.5) = 0.6225: the coins are evenly spread, so ~2490 */
  CU_ASSERT(bad == 0 && abs(seen_a - 2490) < 10 && seen_a + seen_b == 4000);
  px_sampler_free(&s);
  px_gpt_free(&m);
}

/* A GPT-2 kind of tokenizer (the 256 bytes, "ab", <|endoftext|> at 257; PAD 258) in a model
 * padded to VBIG logits: PAD and the padding ids are never drawn, however large their logits,
 * and EOS (<|endoftext|>, also BOS) is; the candidates span the tokenizer's ids only. */
static void test_padded_gpt2_vocabulary(void) {
  px_text vocab = {0}, sp = {0};
  px_text_str(&vocab, "{");
  char num[32];
  for (int b = 0; b < 256; b++) {
    const char c = (char)b;
    sp.n = 0;
    px_bpe_spell(&sp, &c, 1);
    px_text_str(&vocab, b ? ", \"" : "\"");
    if (sp.p[0] == '"' || sp.p[0] == '\\') px_text_str(&vocab, "\\");
    px_text_put(&vocab, sp.p, sp.n);
    snprintf(num, sizeof num, "\": %d", b);
    px_text_str(&vocab, num);
  }
  px_text_str(&vocab, ", \"ab\": 256, \"<|endoftext|>\": 257}");
  const char merges[] = "#version: 0.2\na b\n";
  px_tokenizer g2;
  px_error err;
  CU_ASSERT_EQUAL_FATAL(px_tokenizer_gpt2(&g2, vocab.p, vocab.n, "vocab.json", merges,
                                          sizeof merges - 1, "merges.txt", &err),
                        PX_OK);
  CU_ASSERT_EQUAL(g2.eos, 257);
  CU_ASSERT_EQUAL(g2.bos, 257);
  CU_ASSERT_EQUAL(g2.pad, 258);
  CU_ASSERT_EQUAL(px_tokenizer_softmax_span(&g2), 258);
  float z[VBIG];
  for (int v = 0; v < VBIG; v++) z[v] = -4.0f;
  z[g2.pad] = 60.0f, z[VBIG - 1] = 70.0f, z[259] = 65.0f; /* PAD and padding: never */
  z[256] = 1.0f, z[g2.eos] = 1.5f, z['x'] = 0.5f;
  px_sampler s;
  px_sampler_candidate *scratch = px_malloc((size_t)g2.n_ids * sizeof *scratch);
  const px_sampler_config any = {1.0f, 0, 1.0f, 0}, greedy = {0.0f, 0, 1.0f, 1};
  px_sampler_build(&s, &any, &g2, 1, VBIG, 1);
  int bad = 0, eos = 0, ab = 0;
  for (int i = 0; i < 4000; i++) {
    int32_t y = px_sampler_sample(&s, z, (i + 0.5) / 4000.0, scratch);
    bad += y < 0 || y >= 258, eos += y == 257, ab += y == 256;
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(eos > 500 && ab > 300); /* p(EOS) ~ 0.21, p("ab") ~ 0.13 */
  px_sampler_free(&s);
  px_sampler_build(&s, &greedy, &g2, 1, VBIG, 1);
  CU_ASSERT_EQUAL(px_sampler_sample(&s, z, 0.5, scratch), 257);
  px_sampler_free(&s);
  free(scratch);
  px_text_free(&vocab);
  px_text_free(&sp);
  px_tokenizer_free(&g2);
}

/* The sampler's reference: every allowed candidate sorted (logit down, id up), the top k, the
 * weights and their total in id order (top-p) or in sorted order (top-k), the nucleus by the
 * cumulative weight in sorted order, the coin inverted: what the selection must reproduce. */
static int cand_cmp(const void *a, const void *b) {
  const px_sampler_candidate *x = a, *y = b;
  if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

static int32_t ref_sample(const px_tokenizer *t, const float *z, float temp, int k, double top_p,
                          double coin, px_sampler_candidate *c) {
  int n = 0;
  float best = -INFINITY;
  for (int32_t v = 0; v < t->n_ids; v++)
    if (px_tokenizer_sampleable(t, v)) {
      c[n].logit = z[v], c[n].index = v, n++;
      best = fmaxf(best, z[v]);
    }
  double total = 0;
  if (k > 0 && k < n) {
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    n = k;
    for (int i = 0; i < n; i++) total += c[i].weight = exp(((double)c[i].logit - best) / temp);
  } else {
    for (int i = 0; i < n; i++) total += c[i].weight = exp(((double)c[i].logit - best) / temp);
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
  }
  if (top_p < 1.0) {
    double cum = 0;
    int keep = n;
    for (int i = 0; i < n; i++)
      if ((cum += c[i].weight) >= top_p * total) {
        keep = i + 1;
        break;
      }
    n = keep, total = cum;
  }
  double cum = 0, r = coin * total;
  for (int i = 0; i < n; i++)
    if (r < (cum += c[i].weight)) return c[i].index;
  return c[n - 1].index;
}

/* GPT-2's 50257 tokens: top-k and top-p by selection give exactly what sorting every
 * candidate gives, for peaked and flat rows. */
static void test_top_k_top_p_at_gpt2_size(void) {
  const px_tokenizer t = {.kind = PX_TOK_GPT2,
                          .n_vocab = 50257,
                          .pad = 50257,
                          .bos = 50256,
                          .eos = 50256,
                          .n_ids = 50258};
  enum { V = 50304 };
  float *z = px_malloc(V * sizeof *z);
  px_sampler_candidate *scratch = px_malloc((size_t)t.n_ids * sizeof *scratch),
                       *ref = px_malloc((size_t)t.n_ids * sizeof *ref);
  const struct {
    int k;
    float p, temp, spread;
  } cases[] = {{50, 1.0f, 1.0f, 4.0f}, {0, 0.9f, 1.0f, 4.0f},  {40, 0.95f, 0.7f, 4.0f},
               {0, 0.5f, 1.0f, 0.05f}, {0, 0.99f, 2.0f, 8.0f}, {1000, 0.3f, 1.0f, 1.0f}};
  int mismatches = 0, draws = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const px_sampler_config sc = {cases[c].temp, cases[c].k, cases[c].p, 0};
    px_sampler s;
    px_sampler_build(&s, &sc, &t, 7, V, 1);
    for (int row = 0; row < 4; row++) {
      for (int v = 0; v < V; v++) {
        px_rng_ctr ctr = {{(uint32_t)c, (uint32_t)row, (uint32_t)v, 5}};
        z[v] = cases[c].spread * (float)px_rng_normal(3, ctr);
      }
      for (int i = 0; i < 50; i++, draws++) {
        const double coin = (i + 0.37) / 50.0;
        mismatches += px_sampler_sample(&s, z, coin, scratch) !=
                      ref_sample(&t, z, cases[c].temp, cases[c].k, cases[c].p, coin, ref);
      }
    }
    px_sampler_free(&s);
  }
  CU_ASSERT_EQUAL(mismatches, 0);
  CU_ASSERT_EQUAL(draws, 6 * 4 * 50);
  free(z), free(scratch), free(ref);
}

static void test_stops(void) {
  float z[VBIG];
  int32_t tokens[MAXT];
  for (int t = 0; t < MAXT; t++) tokens[t] = t == 0 ? PX_TOK_BYTE_BOS : 'x';
  const px_sampler_config sc = {1.0f, 0, 1.0f, 0};

  /* EOS far the likeliest: every response is EOS alone. */
  hand_logits(z, 20.0f);
  px_gpt m;
  controlled_model(&m, z);
  int64_t offsets[3] = {0, 1, 6};
  px_generation g;
  gen(&m, &sc, 2, 2, 10, tokens, offsets, 2, 0, &g);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(g.lengths[i], 1);
    CU_ASSERT_EQUAL(g.tokens[i * g.max_new], PX_TOK_BYTE_EOS);
    CU_ASSERT(g.eos[i]);
  }
  px_generation_free(&g);
  px_gpt_free(&m);

  /* EOS impossible: max_new_tokens cuts one, max_seq_len the other (prompt MAXT-3). */
  hand_logits(z, -1000.0f);
  controlled_model(&m, z);
  int64_t off2[3] = {0, 2, 2 + MAXT - 3};
  gen(&m, &sc, 2, 2, 10, tokens, off2, 2, 0, &g);
  CU_ASSERT_EQUAL(g.lengths[0], 10);
  CU_ASSERT_EQUAL(g.lengths[1], 3);
  CU_ASSERT(!g.eos[0] && !g.eos[1]);
  check_shape(&g, off2, 10);
  px_generation_free(&g);

  /* A prompt that fills max_seq_len, or is empty, or holds a token outside the vocabulary. */
  px_generator gr;
  px_error err;
  px_generator_build(&gr, &m, &tok, &sc, 1, 2, 4, 0);
  int64_t full[2] = {0, MAXT}, empty[2] = {0, 0}, one[2] = {0, 1};
  int32_t bad_tok[1] = {VBIG};
  CU_ASSERT_EQUAL(px_generate(&gr, tokens, full, 1, 0, 41, &g, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "prompt 41"));
  CU_ASSERT(px_test_contains(err.msg, "max_seq_len"));
  CU_ASSERT_EQUAL(px_generate(&gr, tokens, empty, 1, 0, 0, &g, &err), PX_EINPUT);
  CU_ASSERT_EQUAL(px_generate(&gr, bad_tok, one, 1, 0, 0, &g, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "vocabulary"));
  px_generation_free(&g);
  px_generator_free(&gr);
  px_gpt_free(&m);
}

/* The KV cache's prefill split over calls (a prompt longer than the row limit) gives the logits
 * of one whole forward. */
static void test_kv_chunks(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, 1);
  int32_t tokens[MAXT], len[1] = {MAXT};
  for (int t = 0; t < MAXT; t++) tokens[t] = t == 0 ? PX_TOK_BYTE_BOS : 'a' + t;
  px_gpt_forward(&m, tokens, len, 1, MAXT);
  px_gpt_kv kv;
  px_gpt_kv_build(&kv, &m, 2, MAXT, 5);
  int slot = 1;
  double worst = 0.0;
  for (int t = 0; t < MAXT; t += 5) {
    int32_t n = MAXT - t < 5 ? MAXT - t : 5;
    px_gpt_kv_extend(&m, &kv, 1, &slot, &n, tokens + t);
    const float *want = m.logits + (size_t)(t + n - 1) * PX_TOK_BYTE_IDS;
    for (int v = 0; v < PX_TOK_BYTE_IDS; v++) worst = fmax(worst, fabs(kv.logits[v] - want[v]));
  }
  CU_ASSERT_EQUAL(kv.pos[1], MAXT);
  CU_ASSERT(worst < 1e-5);
  px_gpt_kv_free(&kv);
  px_gpt_free(&m);
}

/* Ranks each generate their contiguous share with its global indices; rank 0 compares with all
 * the prompts generated alone. One rank: the same check, trivially split. Collective. */
static void test_ranks(void) {
  px_gpt m;
  random_model(&m, PX_TOK_BYTE_IDS, 1);
  int32_t tokens[64];
  int64_t offsets[NP + 1], lo, hi;
  prompts(tokens, offsets);
  px_comm_share(NP, px_comm_rank(), px_comm_size(), &lo, &hi);
  const px_sampler_config sc = {1.0f, 0, 0.95f, 0};
  enum { R = 12 };
  px_generation mine, all;
  int64_t off[NP + 1];
  for (int64_t i = lo; i <= hi; i++) off[i - lo] = offsets[i] - offsets[lo];
  gen(&m, &sc, 9, 3, R, tokens + offsets[lo], off, hi - lo, lo, &mine);
  char *got = NULL;
  size_t got_n = 0;
  px_comm_gather_bytes(mine.tokens, (size_t)(hi - lo) * R * sizeof(int32_t), &got, &got_n);
  if (px_comm_rank() == 0) {
    gen(&m, &sc, 9, NP, R, tokens, offsets, NP, 0, &all);
    CU_ASSERT_EQUAL(got_n, (size_t)NP * R * sizeof(int32_t));
    if (got_n == (size_t)NP * R * sizeof(int32_t)) CU_ASSERT(memcmp(got, all.tokens, got_n) == 0);
    px_generation_free(&all);
  }
  free(got);
  px_generation_free(&mine);
  px_gpt_free(&m);
}

/* glibc's count of the bytes in use on the heap, chunk headers and mmap rounding included. */
static double px_heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (double)mi.uordblks + (double)mi.hblkhd;
}

/* px_generator_bytes (and px_gpt_kv_bytes in it) against what px_generator_build takes from the
 * heap, at two batch sizes and two cache lengths: within 1% plus 32 KB of allocator overhead
 * above, and as far below as the huge-page alignment slack of the two cache arrays, which the
 * estimate counts in full (px_calloc_large_bytes) and glibc does not take when it carves an
 * aligned block out of its heap rather than mapping a new one (after a free of a larger block
 * its mmap threshold rises). */
static void test_generator_bytes(void) {
#ifdef __SANITIZE_ADDRESS__
  printf("\n    SKIP: under AddressSanitizer the heap is not glibc's");
  return;
#endif
  px_gpt m;
  px_gpt_config c = {PX_TOK_BYTE_IDS, 64, 2, 2, 32, PX_GPT_HEAD_LM};
  px_gpt_build(&m, &c, 1, 64, 0);
  const px_sampler_config sc = {1.0f, 0, 1.0f, 0};
  for (int batch = 1; batch <= 1600; batch += 1599)
    for (int positions = 0; positions <= 20; positions += 20) {
      const double before = px_heap_bytes();
      px_generator g;
      px_generator_build(&g, &m, &tok, &sc, 1, batch, 8, positions);
      const double used = px_heap_bytes() - before;
      const double est = px_generator_bytes(&c, batch, positions);
      px_generator_free(&g);
      printf("\n    batch %d, positions %d: estimate %.0f bytes, heap grew %.0f", batch, positions,
             est, used);
      CU_ASSERT(used <= est + 0.01 * est + 32768);
      CU_ASSERT(used >= est - 0.01 * est - 32768 - 2 * 2097152.0);
    }
  px_gpt_free(&m);
}

void px_test_register(void) {
  px_tokenizer_byte(&tok);
  static CU_TestInfo tests[] = {
      {"log-probs equal a teacher-forced forward", test_logprobs_teacher_forced},
      {"batch, waves and alone give the same samples", test_batch_invariance},
      {"a cache of the positions needed: the same samples", test_positions},
      {"greedy, top-k 1 and tiny top-p are the argmax", test_greedy_family},
      {"top-k, top-p and forbidden tokens", test_allowed_sets},
      {"a padded GPT-2 vocabulary: PAD and padding never drawn", test_padded_gpt2_vocabulary},
      {"top-k and top-p over 50257 tokens: selection as sorting", test_top_k_top_p_at_gpt2_size},
      {"EOS, max_new_tokens and max_seq_len stop", test_stops},
      {"prefill split over calls", test_kv_chunks},
      {"ranks generate their shares", test_ranks},
      {"px_generator_bytes is what the build allocates", test_generator_bytes},
      CU_TEST_INFO_NULL};
  px_test_suite("generate", tests);
}
