/*
 * test_gpt.c — the whole model: its parameter table, GPT-2's initialisation, finite-difference
 * gradient checks of every tensor with the LM head and with the scalar head, padding that
 * leaves the real positions' outputs unchanged, log-probs at a temperature against
 * log_softmax(logits / temperature), the masked cross-entropy, a few AdamW steps, the
 * backward's hook (each gradient element handed over once, when final), and the benchmarks'
 * profile (each part's calls counted, the arithmetic unchanged).
 *
 * The model runs in float, so the gradient checks are directional: for each tensor a direction
 * d, and L(theta + eps d) - L(theta - eps d) against the analytic g . (the actual float
 * perturbation), which averages the rounding of single elements away. Tolerance 2e-3 relative
 * (the errors seen are 1e-6 to 1e-4).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/rng.h"
#include "proxima/tokenizer.h"
#include "test_util.h"

enum { TB = 3, TT = 8 }; /* the test batch */

static px_gpt_config tiny(px_gpt_head head) {
  px_gpt_config c = {PX_TOK_BYTE_IDS, TT, 2, 2, 16, head};
  return c;
}

static double unif(uint32_t tag, uint32_t i) {
  px_rng_ctr ctr = {{tag, i, 0, 11}};
  return px_rng_uniform(5, ctr);
}

/* Moves the weights away from GPT-2's near-linear start (std 0.02) so that the checks see
 * attention that is not uniform and GELUs off their linear part. */
static void perturb(px_gpt *m, uint32_t tag, double std) {
  for (size_t i = 0; i < m->n_params; i++) {
    px_rng_ctr ctr = {{tag, (uint32_t)i, 0, 13}};
    m->params[i] += (float)(std * px_rng_normal(17, ctr));
  }
}

/* A tiny model of this head built for the test batch (with gradients when trainable),
 * initialised from init_seed and, when std > 0, perturbed with tag. */
static void tiny_model(px_gpt *m, px_gpt_head head, int trainable, uint64_t init_seed, uint32_t tag,
                       double std) {
  px_gpt_config cfg = tiny(head);
  px_gpt_build(m, &cfg, TB, TT, trainable);
  px_gpt_init(m, init_seed);
  if (std > 0) perturb(m, tag, std);
}

/* A batch of TB sequences with lengths 8, 5 and 3: random tokens, garbage in the padding. */
static void batch(int32_t *tokens, int32_t *lengths, int32_t *targets, float *weights) {
  const int32_t len[TB] = {8, 5, 3};
  for (int b = 0; b < TB; b++) {
    lengths[b] = len[b];
    for (int t = 0; t < TT; t++) {
      int i = b * TT + t;
      tokens[i] = t < len[b] ? (int32_t)(unif(1, i) * PX_TOK_BYTE_IDS) : PX_TOK_BYTE_PAD;
      if (t == 0 && tokens[i] != PX_TOK_BYTE_PAD) tokens[i] = PX_TOK_BYTE_BOS;
    }
    for (int t = 0; t < TT; t++) {
      int i = b * TT + t;
      targets[i] = t + 1 < len[b] ? tokens[i + 1] : (t + 1 == len[b] ? PX_TOK_BYTE_EOS : -1);
      weights[i] = t < 2 ? 0.0f : (float)(0.5 + unif(2, i)); /* no loss on the "prompt" */
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * The parameter table and the initialisation
 * ------------------------------------------------------------------------------------------- */

static void test_table(void) {
  const char *names[] = {"wte",       "wpe",       "ln1_w", "ln1_b", "qkv_w",  "qkv_b",
                         "attproj_w", "attproj_b", "ln2_w", "ln2_b", "fc_w",   "fc_b",
                         "fcproj_w",  "fcproj_b",  "lnf_w", "lnf_b", "head_w", "head_b"};
  const size_t V = PX_TOK_BYTE_IDS, T = TT, L = 2, C = 16;
  const size_t shapes[18][3] = {
      {V, C, 0},     {T, C, 0}, {L, C, 0}, {L, C, 0}, {L, 3 * C, C}, {L, 3 * C, 0},
      {L, C, C},     {L, C, 0}, {L, C, 0}, {L, C, 0}, {L, 4 * C, C}, {L, 4 * C, 0},
      {L, C, 4 * C}, {L, C, 0}, {C, 0, 0}, {C, 0, 0}, {1, C, 0},     {1, 0, 0}};
  for (int head = 0; head < 2; head++) {
    px_gpt_config cfg = tiny(head ? PX_GPT_HEAD_SCALAR : PX_GPT_HEAD_LM);
    px_gpt m;
    px_gpt_build(&m, &cfg, 1, TT, 0);
    CU_ASSERT_EQUAL(m.n_tensors, head ? 18 : 16);
    size_t off = 0;
    for (int i = 0; i < m.n_tensors; i++) {
      const px_gpt_tensor *t = &m.tensors[i];
      CU_ASSERT_STRING_EQUAL(t->name, names[i]);
      size_t count = 1;
      for (int d = 0; d < t->ndim; d++) {
        CU_ASSERT_EQUAL(t->shape[d], shapes[i][d]);
        count *= t->shape[d];
      }
      CU_ASSERT(t->ndim == 3 || shapes[i][t->ndim] == 0);
      CU_ASSERT_EQUAL(t->count, count);
      CU_ASSERT_EQUAL(t->offset, off); /* contiguous, in order */
      off += t->count;
      CU_ASSERT(px_gpt_find_tensor(&m, names[i]) == t);
    }
    CU_ASSERT_EQUAL(m.n_params, off);
    CU_ASSERT(m.p.qkv_w == m.params + px_gpt_find_tensor(&m, "qkv_w")->offset);
    CU_ASSERT(head ? m.p.head_b == m.params + off - 1 : m.p.head_w == NULL);
    CU_ASSERT(px_gpt_find_tensor(&m, "nope") == NULL);
    CU_ASSERT(m.grads == NULL && m.m == NULL); /* built frozen */
    px_gpt_free(&m);
  }
  px_gpt_config bad = tiny(PX_GPT_HEAD_LM);
  bad.n_head = 3;
  px_error err;
  CU_ASSERT_EQUAL(px_gpt_config_check(&bad, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "n_head"));
  /* The model knows no tokenizer: any vocab_size from 2 is a model; whether the byte
   * tokenizer's ids fit is px_tokenizer_check_vocab's to say. */
  bad = tiny(PX_GPT_HEAD_LM);
  bad.vocab_size = 1;
  CU_ASSERT_EQUAL(px_gpt_config_check(&bad, &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "vocab_size"));
  bad.vocab_size = PX_TOK_BYTE_IDS - 1;
  CU_ASSERT_EQUAL(px_gpt_config_check(&bad, &err), PX_OK);
  px_tokenizer bytes;
  px_tokenizer_byte(&bytes);
  CU_ASSERT_EQUAL(px_tokenizer_check_vocab(&bytes, bad.vocab_size, "the model", &err), PX_EINPUT);
  CU_ASSERT(px_test_contains(err.msg, "expected model.vocab_size >= 259"));
  CU_ASSERT_EQUAL(px_tokenizer_check_vocab(&bytes, PX_TOK_BYTE_IDS, "the model", &err), PX_OK);
}

static double tensor_std(const px_gpt *m, const char *name, double *mean_out) {
  const px_gpt_tensor *t = px_gpt_find_tensor(m, name);
  double s = 0.0, s2 = 0.0;
  for (size_t i = 0; i < t->count; i++) {
    double x = m->params[t->offset + i];
    s += x, s2 += x * x;
  }
  *mean_out = s / t->count;
  return sqrt(s2 / t->count - *mean_out * *mean_out);
}

static void test_init(void) {
  px_gpt_config cfg = tiny(PX_GPT_HEAD_SCALAR);
  px_gpt a, b, c;
  px_gpt_build(&a, &cfg, 1, TT, 0);
  px_gpt_build(&b, &cfg, 2, 4, 0);
  px_gpt_build(&c, &cfg, 1, TT, 0);
  px_gpt_init(&a, 42);
  px_gpt_init(&b, 42);
  px_gpt_init(&c, 43);
  CU_ASSERT(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0); /* a function of seed */
  CU_ASSERT(memcmp(a.params, c.params, a.n_params * sizeof(float)) != 0);
  double mean, sd;
  sd = tensor_std(&a, "wte", &mean); /* 4144 draws: the std within a few percent */
  CU_ASSERT(fabs(sd - 0.02) < 0.002 && fabs(mean) < 0.002);
  sd = tensor_std(&a, "fc_w", &mean);
  CU_ASSERT(fabs(sd - 0.02) < 0.002);
  sd = tensor_std(&a, "attproj_w", &mean); /* 0.02 / sqrt(2 n_layer) = 0.01 */
  CU_ASSERT(fabs(sd - 0.01) < 0.001);
  sd = tensor_std(&a, "fcproj_w", &mean);
  CU_ASSERT(fabs(sd - 0.01) < 0.001);
  sd = tensor_std(&a, "head_w", &mean); /* 1/sqrt(17) = 0.2425 from 16 draws: loose */
  CU_ASSERT(sd > 0.1 && sd < 0.45);
  int ones = 1, zeros = 1;
  for (int i = 0; i < a.n_tensors; i++) {
    const px_gpt_tensor *t = &a.tensors[i];
    size_t len = strlen(t->name);
    for (size_t k = 0; k < t->count; k++) {
      float x = a.params[t->offset + k];
      if (strcmp(t->name + len - 2, "_b") == 0) zeros &= x == 0.0f;
      if (strncmp(t->name, "ln", 2) == 0 && t->name[len - 1] == 'w') ones &= x == 1.0f;
    }
  }
  CU_ASSERT(ones && zeros);
  px_gpt_free(&a), px_gpt_free(&b), px_gpt_free(&c);
}

/* ---------------------------------------------------------------------------------------------
 * Gradient checks of the whole model
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  px_gpt *m;
  const int32_t *tokens, *lengths, *targets;
  const float *coef; /* L = sum coef[b,t] * out[b,t] */
  float temperature; /* LM head: out = log-probs at this temperature; 0: the cross-entropy */
  const float *weights;
  float *out;
} model_loss;

static double loss_of(model_loss *s) {
  px_gpt_forward(s->m, s->tokens, s->lengths, TB, TT);
  if (s->m->config.head == PX_GPT_HEAD_SCALAR)
    memcpy(s->out, s->m->values, TB * TT * sizeof(float));
  else if (s->temperature > 0.0f)
    px_gpt_logprobs(s->m, s->out, s->targets, s->temperature);
  else
    return px_gpt_crossentropy(s->m, NULL, s->targets, s->weights);
  double L = 0.0;
  for (int i = 0; i < TB * TT; i++) L += (double)s->coef[i] * s->out[i];
  return L;
}

/* The analytic gradient of loss_of, into m->grads. */
static void grad_of(model_loss *s) {
  float dout[TB * TT];
  loss_of(s);
  if (s->m->config.head == PX_GPT_HEAD_LM && s->temperature <= 0.0f)
    px_gpt_crossentropy(s->m, dout, s->targets, s->weights);
  else
    memcpy(dout, s->coef, sizeof dout);
  px_gpt_zero_grad(s->m);
  px_gpt_backward(s->m, dout);
}

/* Directional checks, one per tensor (see the top of the file). */
static int check_model_grads(const char *what, model_loss *s) {
  px_gpt *m = s->m;
  grad_of(s);
  float *g = px_malloc(m->n_params * sizeof(float));
  memcpy(g, m->grads, m->n_params * sizeof(float));
  float *saved = px_malloc(m->n_params * sizeof(float));
  memcpy(saved, m->params, m->n_params * sizeof(float));
  int ok = 1;
  for (int ti = 0; ti < m->n_tensors; ti++) {
    const px_gpt_tensor *t = &m->tensors[ti];
    float *p = m->params + t->offset;
    /* d = g/|g| + r/|r|: mostly along the gradient, so g . d is not a sum that cancels, plus
     * a random part that would show a gradient pointing the wrong way */
    double *dir = px_malloc(t->count * sizeof(double)), rnorm = 0.0, gnorm = 0.0;
    for (size_t i = 0; i < t->count; i++) {
      px_rng_ctr ctr = {{(uint32_t)ti, (uint32_t)i, 0, 19}};
      dir[i] = px_rng_normal(23, ctr);
      rnorm += dir[i] * dir[i];
      gnorm += (double)g[t->offset + i] * g[t->offset + i];
    }
    rnorm = sqrt(rnorm), gnorm = sqrt(gnorm);
    for (size_t i = 0; i < t->count; i++)
      dir[i] = 0.5 * dir[i] / rnorm + (gnorm > 0.0 ? g[t->offset + i] / gnorm : 0.0);
    /* about 2.5e-4 per element: the O(eps^2) truncation error of the central difference (seen
     * to fall 4x per halving) stays near 1e-4 relative, above float's rounding of the loss */
    const double eps = 2.5e-4 * sqrt((double)t->count);
    double predicted = 0.0;
    for (size_t i = 0; i < t->count; i++) {
      float plus = (float)(saved[t->offset + i] + eps * dir[i]);
      float minus = (float)(saved[t->offset + i] - eps * dir[i]);
      predicted += (double)g[t->offset + i] * ((double)plus - minus);
      p[i] = plus;
    }
    double lp = loss_of(s);
    for (size_t i = 0; i < t->count; i++) p[i] = (float)(saved[t->offset + i] - eps * dir[i]);
    double lm = loss_of(s);
    memcpy(p, saved + t->offset, t->count * sizeof(float));
    double fd = lp - lm;
    double tol = 2e-3 * fabs(predicted) + 2e-6;
    if (getenv("PX_TEST_VERBOSE"))
      fprintf(stderr, "\n  %s: %-9s fd %.6g analytic %.6g rel err %.2g", what, t->name, fd,
              predicted, fabs(fd - predicted) / (fabs(predicted) + 1e-30));
    if (!(fabs(fd - predicted) <= tol)) {
      fprintf(stderr,
              "\n  %s: tensor %s: finite difference %.6g, analytic %.6g (rel err %.3g, "
              "|grad| %.3g)\n",
              what, t->name, fd, predicted, fabs(fd - predicted) / (fabs(predicted) + 1e-30),
              gnorm);
      ok = 0;
    }
    free(dir);
  }
  free(g), free(saved);
  return ok;
}

static void test_grad_lm(void) {
  px_gpt m;
  tiny_model(&m, PX_GPT_HEAD_LM, 1, 7, 1, 0.15);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], coef[TB * TT], out[TB * TT];
  batch(tokens, lengths, targets, weights);
  for (int i = 0; i < TB * TT; i++) coef[i] = (float)(2.0 * unif(3, i) - 1.0);
  model_loss s = {&m, tokens, lengths, targets, coef, 0.8f, weights, out};
  CU_ASSERT(check_model_grads("LM head, log-probs at temperature 0.8", &s));
  s.temperature = 0.0f;
  CU_ASSERT(check_model_grads("LM head, masked cross-entropy", &s));
  px_gpt_free(&m);
}

static void test_grad_scalar(void) {
  px_gpt m;
  tiny_model(&m, PX_GPT_HEAD_SCALAR, 1, 8, 2, 0.15);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], coef[TB * TT], out[TB * TT];
  batch(tokens, lengths, targets, weights);
  for (int i = 0; i < TB * TT; i++) coef[i] = (float)(2.0 * unif(4, i) - 1.0);
  model_loss s = {&m, tokens, lengths, targets, coef, 1.0f, weights, out};
  CU_ASSERT(check_model_grads("scalar head", &s));
  /* the reward model's use: a gradient only at each sequence's last real token */
  memset(coef, 0, sizeof coef);
  for (int b = 0; b < TB; b++) coef[b * TT + lengths[b] - 1] = b == 0 ? 1.0f : -1.0f;
  CU_ASSERT(check_model_grads("scalar head at the EOS positions", &s));
  px_gpt_free(&m);
}

/* ---------------------------------------------------------------------------------------------
 * Padding, temperature, the cross-entropy
 * ------------------------------------------------------------------------------------------- */

/* Sequence 1 of the batch (length 5) alone in a batch of one, T = 5, against the same
 * sequence in the padded batch of three with longer ones: the same values at its real
 * positions, bit for bit; garbage in the padding changes nothing. */
static void check_padding(px_gpt_head head) {
  px_gpt m;
  tiny_model(&m, head, 1, 9, 3, 0.1);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT];
  batch(tokens, lengths, targets, weights);
  const int len = lengths[1], V = m.config.vocab_size;
  const int OC = head == PX_GPT_HEAD_LM ? V : 1;
  float *batched = px_malloc((size_t)TB * TT * OC * sizeof(float));
  float lp_batched[TB * TT], lp_alone[TT], d[TB * TT];

  px_gpt_forward(&m, tokens, lengths, TB, TT);
  const float *out = head == PX_GPT_HEAD_LM ? m.logits : m.values;
  memcpy(batched, out, (size_t)TB * TT * OC * sizeof(float));
  int pad_zero = 1;
  for (int b = 0; b < TB; b++)
    for (size_t k = (size_t)(b * TT + lengths[b]) * OC; k < (size_t)(b + 1) * TT * OC; k++)
      pad_zero &= out[k] == 0.0f;
  CU_ASSERT(pad_zero);
  if (head == PX_GPT_HEAD_LM) px_gpt_logprobs(&m, lp_batched, targets, 0.9f);
  /* the gradient of sequence 1 alone, through the batch (other sequences' dout is 0) */
  for (int i = 0; i < TB * TT; i++) d[i] = i / TT == 1 ? (float)unif(6, i) : 0.0f;
  px_gpt_zero_grad(&m);
  px_gpt_backward(&m, d);
  float *g_batched = px_malloc(m.n_params * sizeof(float));
  memcpy(g_batched, m.grads, m.n_params * sizeof(float));

  /* alone, T = len: no padding at all */
  int32_t one_len[1] = {len};
  px_gpt_forward(&m, tokens + TT, one_len, 1, len);
  out = head == PX_GPT_HEAD_LM ? m.logits : m.values;
  CU_ASSERT(memcmp(out, batched + (size_t)TT * OC, (size_t)len * OC * sizeof(float)) == 0);
  if (head == PX_GPT_HEAD_LM) {
    px_gpt_logprobs(&m, lp_alone, targets + TT, 0.9f);
    CU_ASSERT(memcmp(lp_alone, lp_batched + TT, (size_t)len * sizeof(float)) == 0);
  }
  px_gpt_zero_grad(&m);
  px_gpt_backward(&m, d + TT);
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < m.n_params; i++) {
    worst = fmax(worst, fabs((double)m.grads[i] - g_batched[i]));
    scale = fmax(scale, fabs((double)g_batched[i]));
  }
  if (!(worst <= 1e-6 * scale))
    fprintf(stderr, "\n  padding: gradients alone and batched differ by %.3g (max |g| %.3g)\n",
            worst, scale);
  CU_ASSERT(worst <= 1e-6 * scale); /* sums in another order: equal up to rounding */

  /* other tokens in the padding, and a longer padded batch: still the same values */
  int32_t tokens2[TB * TT];
  memcpy(tokens2, tokens, sizeof tokens2);
  for (int b = 0; b < TB; b++)
    for (int t = lengths[b]; t < TT; t++) tokens2[b * TT + t] = (b * 31 + t * 7) % V;
  px_gpt_forward(&m, tokens2, lengths, TB, TT);
  out = head == PX_GPT_HEAD_LM ? m.logits : m.values;
  CU_ASSERT(memcmp(out, batched, (size_t)TB * TT * OC * sizeof(float)) == 0);
  free(batched), free(g_batched);
  px_gpt_free(&m);
}

static void test_padding_lm(void) { check_padding(PX_GPT_HEAD_LM); }
static void test_padding_scalar(void) { check_padding(PX_GPT_HEAD_SCALAR); }

static void test_temperature(void) {
  px_gpt m;
  tiny_model(&m, PX_GPT_HEAD_LM, 0, 10, 4, 0.2);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], lp[TB * TT];
  batch(tokens, lengths, targets, weights);
  px_gpt_forward(&m, tokens, lengths, TB, TT);
  const int V = m.config.vocab_size;
  const float temps[] = {1.0f, 0.7f, 1.6f, 0.05f};
  for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) {
    px_gpt_logprobs(&m, lp, targets, temps[k]);
    double worst = 0.0;
    int masked = 1;
    for (int b = 0; b < TB; b++)
      for (int t = 0; t < TT; t++) {
        int i = b * TT + t;
        if (targets[i] < 0 || t >= lengths[b]) {
          masked &= lp[i] == 0.0f;
          continue;
        }
        const float *z = m.logits + (size_t)i * V;
        double mx = -INFINITY, s = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v] / (double)temps[k]);
        for (int v = 0; v < V; v++) s += exp(z[v] / (double)temps[k] - mx);
        double want = z[targets[i]] / (double)temps[k] - mx - log(s); /* log_softmax(z/tau) */
        worst = fmax(worst, fabs(lp[i] - want) / fmax(1.0, fabs(want)));
      }
    if (!(worst < 2e-6))
      fprintf(stderr, "\n  log-probs at temperature %g: worst error %.3g\n", (double)temps[k],
              worst);
    CU_ASSERT(worst < 2e-6);
    CU_ASSERT(masked);
  }
  px_gpt_free(&m);
}

static void test_crossentropy(void) {
  px_gpt m;
  tiny_model(&m, PX_GPT_HEAD_LM, 0, 11, 0, 0);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], lp[TB * TT], d[TB * TT];
  batch(tokens, lengths, targets, weights);
  px_gpt_forward(&m, tokens, lengths, TB, TT);
  px_gpt_logprobs(&m, lp, targets, 1.0f);
  double wsum = 0.0, lsum = 0.0;
  for (int i = 0; i < TB * TT; i++)
    if (targets[i] >= 0) wsum += weights[i], lsum -= weights[i] * (double)lp[i];
  float loss = px_gpt_crossentropy(&m, d, targets, weights);
  CU_ASSERT_DOUBLE_EQUAL(loss, lsum / wsum, 1e-6);
  CU_ASSERT(fabs(loss - log(PX_TOK_BYTE_IDS)) < 0.05); /* GPT-2's init: near uniform */
  int ok = 1;
  for (int i = 0; i < TB * TT; i++)
    ok &= fabs(d[i] - (targets[i] >= 0 ? -weights[i] / wsum : 0.0)) < 1e-7;
  CU_ASSERT(ok);
  /* unweighted: the plain mean over real positions with targets */
  double n = 0.0, s = 0.0;
  for (int i = 0; i < TB * TT; i++)
    if (targets[i] >= 0) n += 1.0, s -= lp[i];
  CU_ASSERT_DOUBLE_EQUAL(px_gpt_crossentropy(&m, NULL, targets, NULL), s / n, 1e-6);
  /* no weight anywhere: 0 and no gradient */
  float zero[TB * TT] = {0};
  CU_ASSERT_EQUAL(px_gpt_crossentropy(&m, d, targets, zero), 0.0f);
  ok = 1;
  for (int i = 0; i < TB * TT; i++) ok &= d[i] == 0.0f;
  CU_ASSERT(ok);
  px_gpt_free(&m);
}

/* A few AdamW steps on one batch drive its loss down: forward, backward and update fit. */
static void test_training_steps(void) {
  px_gpt m;
  tiny_model(&m, PX_GPT_HEAD_LM, 1, 12, 0, 0);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], d[TB * TT];
  batch(tokens, lengths, targets, weights);
  px_adamw_config adam = {0.9f, 0.95f, 1e-8f, 0.1f};
  float first = 0.0f, last = 0.0f;
  for (int step = 1; step <= 20; step++) {
    px_gpt_forward(&m, tokens, lengths, TB, TT);
    last = px_gpt_crossentropy(&m, d, targets, weights);
    if (step == 1) first = last;
    px_gpt_zero_grad(&m);
    px_gpt_backward(&m, d);
    px_gpt_update(&m, &adam, 1e-2f, step);
  }
  CU_ASSERT(last < 0.5f * first);
  px_gpt_free(&m);
}

/* ---------------------------------------------------------------------------------------------
 * The backward's hook (px_gpt_backward_ex), what the overlapped allreduce relies on
 * ------------------------------------------------------------------------------------------- */

typedef struct hook_seen {
  const px_gpt *m;
  float *snapshot;  /* each span's gradient at the moment it was handed over */
  int *times;       /* how often each element was handed over */
  int calls, lasts; /* calls, and calls with last set */
  int last_was_final;
} hook_seen;

static void hook_record(void *ctx, const px_gpt_span *spans, int n, int last) {
  hook_seen *h = ctx;
  h->calls++;
  h->lasts += last;
  h->last_was_final = last;
  for (int i = 0; i < n; i++)
    for (size_t k = spans[i].offset; k < spans[i].offset + spans[i].count; k++) {
      h->times[k]++;
      h->snapshot[k] = h->m->grads[k];
    }
}

/* Every gradient element is handed over exactly once, already holding its final value, the
 * last call says so, and the gradient is bitwise px_gpt_backward's. */
static void check_hook(px_gpt_head head) {
  px_gpt m;
  tiny_model(&m, head, 1, 9, 3, 0.1);
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], d[TB * TT];
  batch(tokens, lengths, targets, weights);
  for (int i = 0; i < TB * TT; i++) d[i] = (float)unif(6, i) - 0.5f;
  px_gpt_forward(&m, tokens, lengths, TB, TT);
  if (head == PX_GPT_HEAD_LM) px_gpt_logprobs(&m, NULL, targets, 1.0f);
  px_gpt_zero_grad(&m);
  px_gpt_backward(&m, d);
  float *plain = px_malloc(m.n_params * sizeof(float));
  memcpy(plain, m.grads, m.n_params * sizeof(float));

  hook_seen h = {&m, px_calloc(m.n_params, sizeof(float)), px_calloc(m.n_params, sizeof(int)), 0, 0,
                 0};
  const px_gpt_grad_hook hook = {hook_record, &h};
  px_gpt_zero_grad(&m);
  px_gpt_backward_ex(&m, d, &hook);
  size_t once = 0, final = 0;
  for (size_t k = 0; k < m.n_params; k++) {
    once += h.times[k] == 1;
    final += memcmp(&h.snapshot[k], &m.grads[k], sizeof(float)) == 0;
  }
  CU_ASSERT_EQUAL(once, m.n_params);
  CU_ASSERT_EQUAL(final, m.n_params);
  CU_ASSERT_EQUAL(h.calls, 2 * m.config.n_layer + 1);
  CU_ASSERT_EQUAL(h.lasts, 1);
  CU_ASSERT(h.last_was_final);
  CU_ASSERT(memcmp(plain, m.grads, m.n_params * sizeof(float)) == 0);
  free(plain);
  free(h.snapshot);
  free(h.times);
  px_gpt_free(&m);
}

static void test_hook_lm(void) { check_hook(PX_GPT_HEAD_LM); }
static void test_hook_scalar(void) { check_hook(PX_GPT_HEAD_SCALAR); }

/* ---------------------------------------------------------------------------------------------
 * The benchmarks' timers (px_gpt_profile)
 * ------------------------------------------------------------------------------------------- */

/* One training step (forward, log-probs, backward, AdamW) on the tiny LM; returns the loss. */
static float profiled_step(px_gpt *m) {
  int32_t tokens[TB * TT], lengths[TB], targets[TB * TT];
  float weights[TB * TT], d[TB * TT];
  batch(tokens, lengths, targets, weights);
  const px_adamw_config adam = {0.9f, 0.95f, 1e-8f, 0.1f};
  px_gpt_forward(m, tokens, lengths, TB, TT);
  float loss = px_gpt_crossentropy(m, d, targets, weights);
  px_gpt_zero_grad(m);
  px_gpt_backward(m, d);
  px_gpt_update(m, &adam, 1e-2f, 1);
  return loss;
}

/* With a profile set, each part counts its calls (the forward's and the backward's products,
 * the attention of every layer both ways, AdamW per tensor, and a KV-cache extend's), its
 * seconds are finite and not negative, and the arithmetic is the same bit for bit. */
static void test_profile(void) {
  px_gpt plain, timed;
  tiny_model(&plain, PX_GPT_HEAD_LM, 1, 14, 5, 0.1);
  tiny_model(&timed, PX_GPT_HEAD_LM, 1, 14, 5, 0.1);
  CU_ASSERT_PTR_NULL(plain.profile); /* px_gpt_build's default: nothing timed */
  px_gpt_profile prof = {{0}, {0}};
  timed.profile = &prof;
  const float loss_plain = profiled_step(&plain), loss_timed = profiled_step(&timed);
  CU_ASSERT(memcmp(&loss_plain, &loss_timed, sizeof(float)) == 0);
  CU_ASSERT(memcmp(plain.params, timed.params, plain.n_params * sizeof(float)) == 0);
  CU_ASSERT(memcmp(plain.grads, timed.grads, plain.n_params * sizeof(float)) == 0);
  const int L = timed.config.n_layer;
  CU_ASSERT_EQUAL(prof.calls[PX_GPT_MATMUL], 2 * (4 * L + 1)); /* 4 per block and the head */
  CU_ASSERT_EQUAL(prof.calls[PX_GPT_ATTENTION], 2 * L);
  CU_ASSERT_EQUAL(prof.calls[PX_GPT_OPTIMIZER], timed.n_tensors);
  for (int i = 0; i < PX_GPT_PARTS; i++)
    CU_ASSERT(isfinite(prof.seconds[i]) && prof.seconds[i] >= 0.0);

  px_gpt_kv kv;
  px_gpt_kv_build(&kv, &timed, 1, TT, TT);
  const int slot = 0;
  const int32_t n_new = 3, prompt[3] = {PX_TOK_BYTE_BOS, 'h', 'i'};
  px_gpt_profile kv_prof = {{0}, {0}};
  timed.profile = &kv_prof;
  px_gpt_kv_extend(&timed, &kv, 1, &slot, &n_new, prompt);
  CU_ASSERT_EQUAL(kv_prof.calls[PX_GPT_MATMUL], 4 * L + 1);
  CU_ASSERT_EQUAL(kv_prof.calls[PX_GPT_ATTENTION], L);
  CU_ASSERT_EQUAL(kv_prof.calls[PX_GPT_OPTIMIZER], 0);
  timed.profile = NULL;
  px_gpt_kv_free(&kv);
  px_gpt_free(&plain);
  px_gpt_free(&timed);
}

void px_test_register(void) {
  static CU_TestInfo tests[] = {{"parameter table", test_table},
                                {"GPT-2 initialisation", test_init},
                                {"gradient check, LM head", test_grad_lm},
                                {"gradient check, scalar head", test_grad_scalar},
                                {"padding, LM head", test_padding_lm},
                                {"padding, scalar head", test_padding_scalar},
                                {"log-probs at a temperature", test_temperature},
                                {"masked cross-entropy", test_crossentropy},
                                {"AdamW steps lower the loss", test_training_steps},
                                {"backward hook, LM head", test_hook_lm},
                                {"backward hook, scalar head", test_hook_scalar},
                                {"profile: parts counted, bits unchanged", test_profile},
                                CU_TEST_INFO_NULL};
  px_test_suite("gpt", tests);
}
