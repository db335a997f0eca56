/*
 * test_kernels.c — every kernel of kernels.c against an independent double-precision reference:
 * the float forward agrees with the reference forward, and the float backward agrees with
 * central finite differences of the reference (in double, so the differences are accurate to
 * ~1e-9 and any disagreement is the backward's). The loss differentiated is L = sum_i w_i out_i
 * with fixed random w, so the backward runs with dout = w. The BLIS matmul agrees with its
 * naive twin; the decode product has its definition's bits. Sizes are tiny: every input element is
 * checked. The blocked non-finite search finds what its one-element-at-a-time reference finds.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/error.h"
#include "proxima/finite.h"
#include "proxima/kernels.h"
#include "proxima/rng.h"
#include "test_util.h"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */

/* Uniform in [-scale, scale), a pure function of (tag, i). */
static void fill(float *x, size_t n, uint32_t tag, float scale) {
  for (size_t i = 0; i < n; i++) {
    px_rng_ctr ctr = {{tag, (uint32_t)i, 0, 7}};
    x[i] = (float)((2.0 * px_rng_uniform(99, ctr) - 1.0) * scale);
  }
}

static double *to_double(const float *x, size_t n) {
  double *d = px_malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Whether got[i] is within atol + rtol |want[i]| of want[i] for all i; prints the worst. */
static int close_to(const char *what, const float *got, const double *want, size_t n, double rtol,
                    double atol) {
  size_t worst = 0;
  double worst_excess = -1.0, max_err = 0.0;
  for (size_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    double excess = err - (atol + rtol * fabs(want[i]));
    if (!(err <= max_err)) max_err = err;
    if (!(excess <= worst_excess)) worst_excess = excess, worst = i;
  }
  if (!(worst_excess <= 0.0) || !isfinite(worst_excess)) {
    fprintf(stderr,
            "\n  %s: element %zu is %.9g, expected %.9g (abs err %.3g, rel %.3g; "
            "tolerance %.3g + %.3g rel)\n",
            what, worst, (double)got[worst], want[worst], fabs(got[worst] - want[worst]),
            fabs(got[worst] - want[worst]) / (fabs(want[worst]) + 1e-300), atol, rtol);
    return 0;
  }
  return 1;
}

/* The loss of a double-precision reference forward, as a function of its context. */
typedef double (*loss_fn)(void *ctx);

/* Central differences of loss with respect to each x[i] (x is read by loss through ctx),
 * compared with the analytic gradient. The tolerance is relative to the largest gradient. */
static int grad_check(const char *what, double *x, size_t n, loss_fn loss, void *ctx,
                      const float *analytic) {
  double *fd = px_malloc(n * sizeof(double));
  double scale = 0.0;
  for (size_t i = 0; i < n; i++) {
    double save = x[i], h = 1e-6 * (fabs(save) > 1.0 ? fabs(save) : 1.0);
    x[i] = save + h;
    double lp = loss(ctx);
    x[i] = save - h;
    double lm = loss(ctx);
    x[i] = save;
    fd[i] = (lp - lm) / (2.0 * h);
    if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
  }
  int ok = close_to(what, analytic, fd, n, 1e-4, 1e-5 * (scale > 1e-3 ? scale : 1e-3));
  free(fd);
  return ok;
}

static double dot(const double *w, const double *y, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += w[i] * y[i];
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * Encoder
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int B, T, C;
  const int32_t *tokens, *lengths;
  double *wte, *wpe, *w, *out;
} enc_ctx;

static void ref_encoder(enc_ctx *c) {
  for (int b = 0; b < c->B; b++)
    for (int t = 0; t < c->T; t++)
      for (int i = 0; i < c->C; i++)
        c->out[(b * c->T + t) * c->C + i] =
            t < c->lengths[b] ? c->wte[c->tokens[b * c->T + t] * c->C + i] + c->wpe[t * c->C + i]
                              : 0.0;
}

static double enc_loss(void *ctx) {
  enc_ctx *c = ctx;
  ref_encoder(c);
  return dot(c->w, c->out, (size_t)c->B * c->T * c->C);
}

static void test_encoder(void) {
  enum { B = 2, T = 4, C = 5, V = 6 };
  /* token 3 appears three times: its gradient rows must add up */
  const int32_t tokens[B * T] = {3, 1, 3, 0, 3, 5, 2, 2}, lengths[B] = {4, 2};
  float wte[V * C], wpe[T * C], w[B * T * C], out[B * T * C];
  float dwte[V * C] = {0}, dwpe[T * C] = {0};
  fill(wte, V * C, 1, 1.0f), fill(wpe, T * C, 2, 1.0f), fill(w, B * T * C, 3, 1.0f);
  px_encoder_forward(out, tokens, lengths, wte, wpe, B, T, C);
  px_encoder_backward(dwte, dwpe, w, tokens, lengths, B, T, C);
  enc_ctx c = {B,
               T,
               C,
               tokens,
               lengths,
               to_double(wte, V * C),
               to_double(wpe, T * C),
               to_double(w, B * T * C),
               px_malloc(B * T * C * sizeof(double))};
  ref_encoder(&c);
  CU_ASSERT(close_to("encoder out", out, c.out, B * T * C, 1e-6, 0.0));
  CU_ASSERT(grad_check("encoder dwte", c.wte, V * C, enc_loss, &c, dwte));
  CU_ASSERT(grad_check("encoder dwpe", c.wpe, T * C, enc_loss, &c, dwpe));
  free(c.wte), free(c.wpe), free(c.w), free(c.out);
}

/* ---------------------------------------------------------------------------------------------
 * LayerNorm
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int N, C;
  double *inp, *weight, *bias, *w, *out;
} ln_ctx;

static void ref_layernorm(ln_ctx *c) {
  for (int n = 0; n < c->N; n++) {
    const double *x = c->inp + n * c->C;
    double m = 0.0, v = 0.0;
    for (int i = 0; i < c->C; i++) m += x[i];
    m /= c->C;
    for (int i = 0; i < c->C; i++) v += (x[i] - m) * (x[i] - m);
    v /= c->C;
    for (int i = 0; i < c->C; i++)
      c->out[n * c->C + i] = (x[i] - m) / sqrt(v + 1e-5) * c->weight[i] + c->bias[i];
  }
}

static double ln_loss(void *ctx) {
  ln_ctx *c = ctx;
  ref_layernorm(c);
  return dot(c->w, c->out, (size_t)c->N * c->C);
}

/* N rows of C channels against the double-precision reference and finite differences; with
 * N > 8 the kernels' groups of rows (PX_LN_ROWS) run too, and each row's outputs and input
 * gradient must be bitwise what the row gets alone. */
static void check_layernorm(int N, int C) {
  float *inp = px_malloc(sizeof(float) * N * C), *w = px_malloc(sizeof(float) * N * C);
  float *out = px_malloc(sizeof(float) * N * C), *dinp = px_calloc((size_t)N * C, sizeof(float));
  float *weight = px_malloc(sizeof(float) * C), *bias = px_malloc(sizeof(float) * C);
  float *dweight = px_calloc(C, sizeof(float)), *dbias = px_calloc(C, sizeof(float));
  float *mean = px_malloc(sizeof(float) * N), *rstd = px_malloc(sizeof(float) * N);
  fill(inp, N * C, 10, 2.0f), fill(weight, C, 11, 1.5f), fill(bias, C, 12, 1.0f);
  fill(w, N * C, 13, 1.0f);
  px_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
  px_layernorm_backward(dinp, dweight, dbias, w, inp, weight, mean, rstd, N, C);
  ln_ctx c = {N,
              C,
              to_double(inp, N * C),
              to_double(weight, C),
              to_double(bias, C),
              to_double(w, N * C),
              px_malloc((size_t)N * C * sizeof(double))};
  ref_layernorm(&c);
  CU_ASSERT(close_to("layernorm out", out, c.out, N * C, 1e-5, 1e-6));
  CU_ASSERT(grad_check("layernorm dinp", c.inp, N * C, ln_loss, &c, dinp));
  CU_ASSERT(grad_check("layernorm dweight", c.weight, C, ln_loss, &c, dweight));
  CU_ASSERT(grad_check("layernorm dbias", c.bias, C, ln_loss, &c, dbias));
  for (int n = 0; n < N; n++) {
    float o1[64], m1, r1, dx1[64] = {0}, dw1[64] = {0}, db1[64] = {0};
    CU_ASSERT_FATAL(C <= 64);
    px_layernorm_forward(o1, &m1, &r1, inp + n * C, weight, bias, 1, C);
    px_layernorm_backward(dx1, dw1, db1, w + n * C, inp + n * C, weight, &m1, &r1, 1, C);
    CU_ASSERT(memcmp(o1, out + n * C, C * sizeof(float)) == 0);
    CU_ASSERT(m1 == mean[n] && r1 == rstd[n]);
    CU_ASSERT(memcmp(dx1, dinp + n * C, C * sizeof(float)) == 0);
  }
  free(c.inp), free(c.weight), free(c.bias), free(c.w), free(c.out);
  free(inp), free(w), free(out), free(dinp), free(weight), free(bias), free(dweight), free(dbias);
  free(mean), free(rstd);
}

static void test_layernorm(void) {
  check_layernorm(5, 7);
  check_layernorm(19, 40);
}

/* ---------------------------------------------------------------------------------------------
 * Matmul: the BLIS version and the naive one, each against the reference
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int N, C, OC;
  double *inp, *weight, *bias, *w, *out;
} mm_ctx;

static void ref_matmul(mm_ctx *c) {
  for (int n = 0; n < c->N; n++)
    for (int o = 0; o < c->OC; o++) {
      double s = c->bias[o];
      for (int i = 0; i < c->C; i++) s += c->inp[n * c->C + i] * c->weight[o * c->C + i];
      c->out[n * c->OC + o] = s;
    }
}

static double mm_loss(void *ctx) {
  mm_ctx *c = ctx;
  ref_matmul(c);
  return dot(c->w, c->out, (size_t)c->N * c->OC);
}

static void check_matmul(int naive) {
  enum { N = 6, C = 5, OC = 7 };
  float inp[N * C], weight[OC * C], bias[OC], w[N * OC], out[N * OC];
  float dinp[N * C] = {0}, dweight[OC * C] = {0}, dbias[OC] = {0};
  fill(inp, N * C, 20, 1.0f), fill(weight, OC * C, 21, 1.0f), fill(bias, OC, 22, 1.0f);
  fill(w, N * OC, 23, 1.0f);
  if (naive) {
    px_matmul_forward_naive(out, inp, weight, bias, N, C, OC);
    px_matmul_backward_naive(dinp, dweight, dbias, w, inp, weight, N, C, OC);
  } else {
    px_matmul_forward(out, inp, weight, bias, N, C, OC);
    px_matmul_backward(dinp, dweight, dbias, w, inp, weight, N, C, OC);
  }
  mm_ctx c = {N,
              C,
              OC,
              to_double(inp, N * C),
              to_double(weight, OC * C),
              to_double(bias, OC),
              to_double(w, N * OC),
              px_malloc(N * OC * sizeof(double))};
  ref_matmul(&c);
  CU_ASSERT(close_to(naive ? "matmul_naive out" : "matmul out", out, c.out, N * OC, 1e-5, 1e-6));
  CU_ASSERT(grad_check("matmul dinp", c.inp, N * C, mm_loss, &c, dinp));
  CU_ASSERT(grad_check("matmul dweight", c.weight, OC * C, mm_loss, &c, dweight));
  CU_ASSERT(grad_check("matmul dbias", c.bias, OC, mm_loss, &c, dbias));
  free(c.inp), free(c.weight), free(c.bias), free(c.w), free(c.out);
}

static void test_matmul(void) { check_matmul(0); }
static void test_matmul_naive(void) { check_matmul(1); }

/* BLIS against the naive loops on shapes that are not multiples of any block size, with and
 * without a bias, and with gradients accumulated onto non-zero values. */
static void test_matmul_fast_vs_naive(void) {
  const int shapes[][3] = {{1, 1, 1}, {7, 13, 9}, {33, 17, 65}, {64, 96, 80}, {130, 48, 259}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
      float *inp = px_malloc(nx * sizeof(float)), *weight = px_malloc(nw * sizeof(float));
      float *bias = px_malloc(OC * sizeof(float)), *dout = px_malloc(ny * sizeof(float));
      float *y1 = px_malloc(ny * sizeof(float)), *y2 = px_malloc(ny * sizeof(float));
      float *dx1 = px_malloc(nx * sizeof(float)), *dx2 = px_malloc(nx * sizeof(float));
      float *dw1 = px_malloc(nw * sizeof(float)), *dw2 = px_malloc(nw * sizeof(float));
      float *db1 = px_malloc(OC * sizeof(float)), *db2 = px_malloc(OC * sizeof(float));
      fill(inp, nx, 30, 1.0f), fill(weight, nw, 31, 1.0f), fill(bias, OC, 32, 1.0f);
      fill(dout, ny, 33, 1.0f);
      fill(dx1, nx, 34, 1.0f), fill(dw1, nw, 35, 1.0f), fill(db1, OC, 36, 1.0f);
      memcpy(dx2, dx1, nx * sizeof(float)), memcpy(dw2, dw1, nw * sizeof(float));
      memcpy(db2, db1, OC * sizeof(float));
      const float *b = with_bias ? bias : NULL;
      px_matmul_forward(y1, inp, weight, b, N, C, OC);
      px_matmul_forward_naive(y2, inp, weight, b, N, C, OC);
      px_matmul_backward(dx1, dw1, with_bias ? db1 : NULL, dout, inp, weight, N, C, OC);
      px_matmul_backward_naive(dx2, dw2, with_bias ? db2 : NULL, dout, inp, weight, N, C, OC);
      double *ry = to_double(y2, ny), *rx = to_double(dx2, nx), *rw = to_double(dw2, nw);
      double *rb = to_double(db2, OC);
      char what[64];
      snprintf(what, sizeof what, "fast vs naive %dx%dx%d bias %d", N, C, OC, with_bias);
      /* float sums of up to 130 terms of size 1 in different orders */
      CU_ASSERT(close_to(what, y1, ry, ny, 1e-5, 1e-5));
      CU_ASSERT(close_to(what, dx1, rx, nx, 1e-5, 1e-5));
      CU_ASSERT(close_to(what, dw1, rw, nw, 1e-5, 1e-5));
      CU_ASSERT(close_to(what, db1, rb, OC, 1e-5, 1e-5));
      free(ry), free(rx), free(rw), free(rb);
      free(inp), free(weight), free(bias), free(dout), free(y1), free(y2);
      free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
    }
  }
}

/* The decode product (generation's): bit for bit its definition (one px_dot16 per output, then
 * the bias), for full tiles, left-over rows and columns, several row chunks (K = 3072) and the
 * untiled K; within float tolerance of BLIS; and each row's bits the same computed alone, in the
 * batch, or on one thread. */
static void test_matmul_decode(void) {
  const int shapes[][3] = {{1, 16, 1}, {1, 32, 7},    {3, 48, 12},    {5, 64, 13},
                           {7, 13, 9}, {64, 96, 259}, {37, 3072, 14}, {9, 768, 50}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const size_t nx = (size_t)N * C, nw = (size_t)OC * C, ny = (size_t)N * OC;
      float *inp = px_malloc(nx * sizeof(float)), *weight = px_malloc(nw * sizeof(float));
      float *bias = px_malloc(OC * sizeof(float)), *fast = px_malloc(ny * sizeof(float));
      float *def = px_malloc(ny * sizeof(float)), *blis = px_malloc(ny * sizeof(float));
      float *row = px_malloc(OC * sizeof(float)), *serial = px_malloc(ny * sizeof(float));
      fill(inp, nx, 40, 1.0f), fill(weight, nw, 41, 1.0f), fill(bias, OC, 42, 1.0f);
      const float *b = with_bias ? bias : NULL;
      px_matmul_decode_forward(fast, inp, weight, b, N, C, OC);
      px_matmul_decode_forward_naive(def, inp, weight, b, N, C, OC);
      px_matmul_forward(blis, inp, weight, b, N, C, OC);
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      px_matmul_decode_forward(serial, inp, weight, b, N, C, OC);
      omp_set_num_threads(threads);
      char what[80];
      snprintf(what, sizeof what, "decode vs BLIS %dx%dx%d bias %d", N, C, OC, with_bias);
      CU_ASSERT(memcmp(fast, def, ny * sizeof(float)) == 0);
      CU_ASSERT(memcmp(fast, serial, ny * sizeof(float)) == 0);
      double *ref = to_double(blis, ny);
      CU_ASSERT(close_to(what, fast, ref, ny, 1e-5, 1e-6 * C)); /* sums of C terms of size 1 */
      int alone_same = 1;
      for (int n = 0; n < N; n++) {
        px_matmul_decode_forward(row, inp + (size_t)n * C, weight, b, 1, C, OC);
        alone_same &= memcmp(row, fast + (size_t)n * OC, OC * sizeof(float)) == 0;
      }
      CU_ASSERT(alone_same);
      free(ref), free(inp), free(weight), free(bias), free(fast), free(def), free(blis);
      free(row), free(serial);
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * Attention
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int B, T, C, NH;
  const int32_t *lengths;
  double *qkv, *w, *out;
} att_ctx;

/* Causal attention written from its definition, with an explicit key mask: a query at t attends
 * key t2 only if t2 <= t and t2 < length; padded queries give 0. */
static void ref_attention(att_ctx *c) {
  int hs = c->C / c->NH, C3 = 3 * c->C;
  double *s = px_malloc((size_t)c->T * sizeof(double));
  for (int b = 0; b < c->B; b++)
    for (int t = 0; t < c->T; t++)
      for (int h = 0; h < c->NH; h++) {
        double *o = c->out + (b * c->T + t) * c->C + h * hs;
        for (int i = 0; i < hs; i++) o[i] = 0.0;
        if (t >= c->lengths[b]) continue;
        const double *q = c->qkv + (b * c->T + t) * C3 + h * hs;
        double mx = -INFINITY, z = 0.0;
        for (int t2 = 0; t2 < c->T; t2++) {
          if (t2 > t || t2 >= c->lengths[b]) continue;
          const double *k = c->qkv + (b * c->T + t2) * C3 + c->C + h * hs;
          s[t2] = 0.0;
          for (int i = 0; i < hs; i++) s[t2] += q[i] * k[i];
          s[t2] /= sqrt((double)hs);
          if (s[t2] > mx) mx = s[t2];
        }
        for (int t2 = 0; t2 <= t; t2++) z += exp(s[t2] - mx);
        for (int t2 = 0; t2 <= t; t2++) {
          const double *v = c->qkv + (b * c->T + t2) * C3 + 2 * c->C + h * hs;
          for (int i = 0; i < hs; i++) o[i] += exp(s[t2] - mx) / z * v[i];
        }
      }
  free(s);
}

static double att_loss(void *ctx) {
  att_ctx *c = ctx;
  ref_attention(c);
  return dot(c->w, c->out, (size_t)c->B * c->T * c->C);
}

static void check_attention(int naive) {
  enum { B = 3, T = 5, C = 8, NH = 2 };
  const int32_t lengths[B] = {5, 3, 1};
  float qkv[B * T * 3 * C], w[B * T * C], out[B * T * C], att[B * NH * T * T];
  float dqkv[B * T * 3 * C] = {0};
  fill(qkv, B * T * 3 * C, 40, 2.0f), fill(w, B * T * C, 41, 1.0f);
  if (naive) {
    px_attention_forward_naive(out, att, qkv, lengths, B, T, C, NH);
    px_attention_backward_naive(dqkv, w, qkv, att, lengths, B, T, C, NH);
  } else {
    px_attention_forward(out, att, qkv, lengths, B, T, C, NH);
    px_attention_backward(dqkv, w, qkv, att, lengths, B, T, C, NH);
  }
  att_ctx c = {B,
               T,
               C,
               NH,
               lengths,
               to_double(qkv, B * T * 3 * C),
               to_double(w, B * T * C),
               px_malloc(B * T * C * sizeof(double))};
  ref_attention(&c);
  CU_ASSERT(
      close_to(naive ? "attention_naive out" : "attention out", out, c.out, B * T * C, 1e-5, 1e-6));
  CU_ASSERT(grad_check(naive ? "attention_naive dqkv" : "attention dqkv", c.qkv, B * T * 3 * C,
                       att_loss, &c, dqkv));
  /* padding: padded queries output 0, and nothing flows into padded positions */
  int clean = 1;
  for (int b = 0; b < B; b++)
    for (int t = lengths[b]; t < T; t++) {
      for (int i = 0; i < C; i++) clean &= out[(b * T + t) * C + i] == 0.0f;
      for (int i = 0; i < 3 * C; i++) clean &= dqkv[(b * T + t) * 3 * C + i] == 0.0f;
    }
  CU_ASSERT(clean);
  /* each real softmax row sums to 1 over keys 0..t and is 0 beyond */
  int rows_ok = 1;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const float *row = att + ((b * NH + h) * T + t) * T;
        double sum = 0.0;
        for (int t2 = 0; t2 < T; t2++) {
          sum += row[t2];
          if (t2 > t) rows_ok &= row[t2] == 0.0f;
        }
        rows_ok &= t < lengths[b] ? fabs(sum - 1.0) < 1e-6 : sum == 0.0;
      }
  CU_ASSERT(rows_ok);
  free(c.qkv), free(c.w), free(c.out);
}

static void test_attention(void) { check_attention(0); }
static void test_attention_naive(void) { check_attention(1); }

/* The BLIS attention against the loops on a larger padded batch, gradients accumulated onto
 * non-zero values. */
static void test_attention_fast_vs_naive(void) {
  /* Lengths across the query blocks of the fast version (128 rows): several blocks and a short
   * last one, one row past a block, exactly one block, a single row. */
  enum { B = 4, T = 290, C = 48, NH = 3 };
  const int32_t lengths[B] = {290, 129, 128, 1};
  const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
  float *qkv = px_malloc(nq * sizeof(float)), *dout = px_malloc(no * sizeof(float));
  float *o1 = px_malloc(no * sizeof(float)), *o2 = px_malloc(no * sizeof(float));
  float *a1 = px_malloc(na * sizeof(float)), *a2 = px_malloc(na * sizeof(float));
  float *d1 = px_malloc(nq * sizeof(float)), *d2 = px_malloc(nq * sizeof(float));
  fill(qkv, nq, 42, 1.5f), fill(dout, no, 43, 1.0f), fill(d1, nq, 44, 1.0f);
  memcpy(d2, d1, nq * sizeof(float));
  px_attention_forward(o1, a1, qkv, lengths, B, T, C, NH);
  px_attention_forward_naive(o2, a2, qkv, lengths, B, T, C, NH);
  px_attention_backward(d1, dout, qkv, a1, lengths, B, T, C, NH);
  px_attention_backward_naive(d2, dout, qkv, a2, lengths, B, T, C, NH);
  double *r_o = to_double(o2, no), *r_a = to_double(a2, na), *r_d = to_double(d2, nq);
  CU_ASSERT(close_to("attention fast vs naive out", o1, r_o, no, 1e-5, 1e-6));
  CU_ASSERT(close_to("attention fast vs naive att", a1, r_a, na, 1e-5, 1e-7));
  CU_ASSERT(close_to("attention fast vs naive dqkv", d1, r_d, nq, 1e-4, 1e-5));
  free(r_o), free(r_a), free(r_d);
  free(qkv), free(dout), free(o1), free(o2), free(a1), free(a2), free(d1), free(d2);
}

/* px_attention_backward_set writes dqkv whole, whatever it held (NaN here), padded positions
 * included, with the bits px_attention_backward gives on a zeroed dqkv: over several query
 * blocks (keys shared between blocks add in the same order), a short last block, padding. */
static void test_attention_backward_set(void) {
  enum { B = 3, T = 290, C = 48, NH = 3 };
  const int32_t lengths[B] = {290, 200, 5};
  const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
  float *qkv = px_malloc(nq * sizeof(float)), *dout = px_malloc(no * sizeof(float));
  float *out = px_malloc(no * sizeof(float)), *att = px_malloc(na * sizeof(float));
  float *d_add = px_calloc(nq, sizeof(float)), *d_set = px_malloc(nq * sizeof(float));
  fill(qkv, nq, 45, 1.5f), fill(dout, no, 46, 1.0f);
  for (size_t i = 0; i < nq; i++) d_set[i] = NAN;
  px_attention_forward(out, att, qkv, lengths, B, T, C, NH);
  px_attention_backward(d_add, dout, qkv, att, lengths, B, T, C, NH);
  px_attention_backward_set(d_set, dout, qkv, att, lengths, B, T, C, NH);
  CU_ASSERT(memcmp(d_add, d_set, nq * sizeof(float)) == 0);
  free(qkv), free(dout), free(out), free(att), free(d_add), free(d_set);
}

/* px_zero clears every element, over several of its chunks and a partial last one, and
 * nothing past the end; N = 0 touches nothing. */
static void test_zero(void) {
  const size_t n = 2 * (1 << 18) + 5;
  float *x = px_malloc((n + 1) * sizeof(float));
  for (size_t i = 0; i <= n; i++) x[i] = NAN;
  px_zero(x, n);
  size_t zeros = 0;
  for (size_t i = 0; i < n; i++) zeros += x[i] == 0.0f && !signbit(x[i]);
  CU_ASSERT_EQUAL(zeros, n);
  CU_ASSERT(isnan(x[n]));
  px_zero(x + n, 0);
  CU_ASSERT(isnan(x[n]));
  free(x);
}

/* The _set variants write dinp whole, whatever it held (NaN included), with the bits the
 * accumulating versions give on a zeroed dinp; dweight and dbias accumulate as before. */
static void test_backward_set(void) {
  enum { N = 7, C = 20, OC = 33 };
  float inp[N * C], weight[OC * C], dout[N * OC], big_in[N * OC];
  fill(inp, N * C, 80, 1.0f), fill(weight, OC * C, 81, 1.0f), fill(dout, N * OC, 82, 1.0f);
  fill(big_in, N * OC, 83, 4.0f);
  float dx1[N * C] = {0}, dx2[N * C], dw1[OC * C], dw2[OC * C], db1[OC], db2[OC];
  fill(dw1, OC * C, 84, 1.0f), fill(db1, OC, 85, 1.0f);
  memcpy(dw2, dw1, sizeof dw1), memcpy(db2, db1, sizeof db1);
  for (int i = 0; i < N * C; i++) dx2[i] = i % 3 ? NAN : 1e30f;
  px_matmul_backward(dx1, dw1, db1, dout, inp, weight, N, C, OC);
  px_matmul_backward_set(dx2, dw2, db2, dout, inp, weight, N, C, OC);
  CU_ASSERT(memcmp(dx1, dx2, sizeof dx1) == 0);
  CU_ASSERT(memcmp(dw1, dw2, sizeof dw1) == 0 && memcmp(db1, db2, sizeof db1) == 0);
  float g1[N * OC] = {0}, g2[N * OC];
  for (int i = 0; i < N * OC; i++) g2[i] = NAN;
  px_gelu_backward(g1, big_in, dout, N * OC);
  px_gelu_backward_set(g2, big_in, dout, N * OC);
  CU_ASSERT(memcmp(g1, g2, sizeof g1) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * The vectorisable exp, sum and maximum
 * ------------------------------------------------------------------------------------------- */

/* Distance in units in the last place between two finite floats of the same sign. */
static int64_t ulps(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, sizeof ia), memcpy(&ib, &b, sizeof ib);
  return llabs((int64_t)ia - (int64_t)ib);
}

static void test_expf(void) {
  /* Every 61st float from -87 to 88 (about 37 million, every exponent and mantissa pattern
   * mixed): within 2 ulp of glibc's expf, whose results are normal floats throughout. */
  int64_t worst = 0;
  float worst_x = 0.0f;
  uint32_t lo, hi;
  const float from = -87.0f, to = 88.0f;
  memcpy(&lo, &from, sizeof lo), memcpy(&hi, &to, sizeof hi);
  for (uint32_t b = lo; b >= 0x80000000u; b -= 61) { /* negative floats: bits fall toward -0 */
    float x;
    memcpy(&x, &b, sizeof x);
    int64_t u = ulps(px_expf(x), expf(x));
    if (u > worst) worst = u, worst_x = x;
  }
  for (uint32_t b = 0; b <= hi; b += 61) {
    float x;
    memcpy(&x, &b, sizeof x);
    int64_t u = ulps(px_expf(x), expf(x));
    if (u > worst) worst = u, worst_x = x;
  }
  printf("\n      px_expf: worst %lld ulp from expf, at x = %.9g\n", (long long)worst,
         (double)worst_x);
  CU_ASSERT(worst <= 2);
  /* The ends of the range and the special values, as IEEE arithmetic has them. */
  CU_ASSERT(px_expf(0.0f) == 1.0f && px_expf(-0.0f) == 1.0f);
  CU_ASSERT(isinf(px_expf(88.73f)) && isinf(px_expf(1e30f)) && isinf(px_expf(INFINITY)));
  CU_ASSERT(px_expf(-1e30f) == 0.0f && px_expf(-INFINITY) == 0.0f && px_expf(-104.0f) == 0.0f);
  CU_ASSERT(isnan(px_expf(NAN)));
  CU_ASSERT(px_expf(88.72f) == expf(88.72f) || ulps(px_expf(88.72f), expf(88.72f)) <= 2);
  float sub = px_expf(-100.0f); /* subnormal: 2^-144.27, within one subnormal step */
  CU_ASSERT(sub > 0.0f && fabsf(sub - expf(-100.0f)) <= 1.5e-45f);
}

static void test_sum16_max16(void) {
  /* Integers: every partial sum is exact in float, so any order gives n (n + 1) / 2. */
  float x[100];
  for (int n = 0; n <= 100; n++) {
    for (int i = 0; i < n; i++) x[i] = (float)(i + 1);
    CU_ASSERT_EQUAL(px_sum16(x, n), (float)(n * (n + 1) / 2));
  }
  /* The fixed order: lane l sums elements l, l+16, ...; then lanes l and l+8, l+4, ... A sum
   * whose rounding depends on the order shows it: 1, then 2^-24 twice, all in lane 0, where each
   * addition rounds back to 1 (a tie, to even); the small ones added first would give 1 + 2^-23. */
  float y[33] = {0};
  for (int i = 0; i < 33; i += 16) y[i] = i == 0 ? 1.0f : 0x1p-24f;
  CU_ASSERT_EQUAL(px_sum16(y, 33), 1.0f); /* lane 0: (1 + 2^-24) + 2^-24, each rounding to 1 */
  fill(x, 100, 70, 5.0f);
  for (int n = 1; n <= 100; n++) {
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    CU_ASSERT_EQUAL(px_max16(x, n), m);
  }
}

/* ---------------------------------------------------------------------------------------------
 * GELU and residual
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int N;
  double *inp, *inp2, *w, *out;
} ew_ctx;

static double ref_gelu(double x) {
  return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double gelu_loss(void *ctx) {
  ew_ctx *c = ctx;
  for (int i = 0; i < c->N; i++) c->out[i] = ref_gelu(c->inp[i]);
  return dot(c->w, c->out, (size_t)c->N);
}

static void test_gelu(void) {
  enum { R = 2, C = 20, N = R * C };
  float inp[N], w[N], out[N], dinp[N] = {0}, bias[C], pre[N];
  fill(inp, N, 50, 4.0f), fill(w, N, 51, 1.0f), fill(bias, C, 52, 1.0f);
  inp[0] = 30.0f, inp[1] = -30.0f, inp[2] = 0.0f; /* far tails: finite, GELU = x or 0 there */
  bias[0] = bias[1] = bias[2] = 0.0f;
  /* with a bias: pre becomes inp + bias, in place, and out GELU of it */
  memcpy(pre, inp, sizeof pre);
  px_gelu_forward(out, pre, bias, R, C);
  for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(pre[i], inp[i] + bias[i % C]);
  float out_nobias[N];
  px_gelu_forward(out_nobias, pre, NULL, R, C); /* no bias: pre unchanged */
  CU_ASSERT(memcmp(out, out_nobias, sizeof out) == 0);
  memcpy(inp, pre, sizeof inp);
  px_gelu_backward(dinp, inp, w, N);
  ew_ctx c = {N, to_double(inp, N), NULL, to_double(w, N), px_malloc(N * sizeof(double))};
  gelu_loss(&c);
  CU_ASSERT(close_to("gelu out", out, c.out, N, 1e-6, 1e-7));
  CU_ASSERT(grad_check("gelu dinp", c.inp, N, gelu_loss, &c, dinp));
  CU_ASSERT(isfinite(dinp[0]) && isfinite(dinp[1]));
  free(c.inp), free(c.w), free(c.out);
}

static double res_loss(void *ctx) {
  ew_ctx *c = ctx;
  for (int i = 0; i < c->N; i++) c->out[i] = c->inp[i] + c->inp2[i];
  return dot(c->w, c->out, (size_t)c->N);
}

static void test_residual(void) {
  enum { N = 17 };
  float a[N], b[N], w[N], out[N], da[N], db[N];
  fill(a, N, 60, 1.0f), fill(b, N, 61, 1.0f), fill(w, N, 62, 1.0f);
  fill(da, N, 63, 1.0f), fill(db, N, 64, 1.0f); /* accumulates onto what is there */
  float da0[N], db0[N];
  memcpy(da0, da, sizeof da), memcpy(db0, db, sizeof db);
  /* with the bias of b's projection, 3 rows of 5 channels: out = a + (b + bias) ... */
  enum { R = 3, C = 5 };
  float bias[C], with_bias[R * C];
  fill(bias, C, 65, 1.0f);
  px_residual_forward(with_bias, a, b, bias, R, C);
  for (int i = 0; i < R * C; i++) CU_ASSERT_EQUAL(with_bias[i], a[i] + (b[i] + bias[i % C]));
  /* ... and without, as one row of N */
  px_residual_forward(out, a, b, NULL, 1, N);
  px_residual_backward(da, db, w, N);
  for (int i = 0; i < N; i++) da[i] -= da0[i], db[i] -= db0[i];
  ew_ctx c = {N, to_double(a, N), to_double(b, N), to_double(w, N), px_malloc(N * sizeof(double))};
  res_loss(&c);
  CU_ASSERT(close_to("residual out", out, c.out, N, 1e-7, 0.0));
  CU_ASSERT(grad_check("residual da", c.inp, N, res_loss, &c, da));
  CU_ASSERT(grad_check("residual db", c.inp2, N, res_loss, &c, db));
  free(c.inp), free(c.inp2), free(c.w), free(c.out);
}

/* ---------------------------------------------------------------------------------------------
 * Softmax + cross-entropy at a temperature
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  int N, V, Vs; /* rows, row length, the logits the softmax spans */
  double temperature;
  const int32_t *targets;
  double *logits, *w, *losses;
} xent_ctx;

static void ref_xent(xent_ctx *c) {
  for (int n = 0; n < c->N; n++) {
    if (c->targets[n] < 0) {
      c->losses[n] = 0.0;
      continue;
    }
    const double *z = c->logits + n * c->V;
    double mx = -INFINITY, s = 0.0;
    for (int v = 0; v < c->Vs; v++) mx = fmax(mx, z[v] / c->temperature);
    for (int v = 0; v < c->Vs; v++) s += exp(z[v] / c->temperature - mx);
    c->losses[n] = log(s) + mx - z[c->targets[n]] / c->temperature;
  }
}

static double xent_loss(void *ctx) {
  xent_ctx *c = ctx;
  ref_xent(c);
  return dot(c->w, c->losses, (size_t)c->N);
}

/* Over the whole row, and over its first Vs logits (a padded vocabulary: the padding columns
 * take no part, whatever their values, and get no gradient). */
static void test_crossentropy(void) {
  enum { N = 5, V = 11 };
  const int32_t targets[2][N] = {{3, 0, -1, 10, 7}, {3, 0, -1, 7, 5}};
  const int spans[2] = {V, 8};
  const float temps[] = {1.0f, 0.7f, 2.5f};
  for (int sp = 0; sp < 2; sp++)
    for (size_t k = 0; k < sizeof temps / sizeof temps[0]; k++) {
      const int Vs = spans[sp];
      float logits[N * V], probs[N * V], w[N], losses[N], dlogits[N * V] = {0};
      fill(logits, N * V, 70, 5.0f), fill(w, N, 71, 1.0f);
      logits[V + 4] = 80.0f; /* a dominant logit: no overflow, tiny probs stay finite */
      logits[V + 9] = 90.0f; /* the largest, in the padding when Vs = 8 */
      px_crossentropy_forward(losses, probs, logits, targets[sp], temps[k], N, V, Vs);
      px_crossentropy_backward(dlogits, w, probs, targets[sp], temps[k], N, V, Vs);
      xent_ctx c = {N,
                    V,
                    Vs,
                    temps[k],
                    targets[sp],
                    to_double(logits, N * V),
                    to_double(w, N),
                    px_malloc(N * sizeof(double))};
      ref_xent(&c);
      char what[80];
      snprintf(what, sizeof what, "crossentropy over %d of %d at temperature %g", Vs, V,
               (double)temps[k]);
      CU_ASSERT(close_to(what, losses, c.losses, N, 1e-5, 1e-5));
      CU_ASSERT(grad_check(what, c.logits, N * V, xent_loss, &c, dlogits));
      int ok = losses[2] == 0.0f;
      for (int v = 0; v < V; v++) ok &= dlogits[2 * V + v] == 0.0f;
      for (int n = 0; n < N; n++) {
        if (targets[sp][n] < 0) continue;
        double s = 0.0;
        for (int v = 0; v < Vs; v++) s += probs[n * V + v];
        ok &= fabs(s - 1.0) < 1e-5;
        for (int v = Vs; v < V; v++) ok &= dlogits[n * V + v] == 0.0f;
      }
      CU_ASSERT(ok);
      free(c.logits), free(c.w), free(c.losses);
    }
}

/* NaN, +-infinity and the largest finite values at every kind of place (block edges, the tail
 * after the last whole block, two at once): the blocked search finds what the reference finds. */
static void test_first_nonfinite(void) {
  enum { N = 3 * 256 + 77 };
  float *x = malloc(N * sizeof *x);
  CU_ASSERT_FATAL(x != NULL);
  const size_t at[] = {0, 1, 255, 256, 257, 511, 512, 767, 768, 800, N - 1};
  const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
  int differ = 0;
  for (size_t n = 0; n <= N; n += n < 600 ? 1 : 37) {
    for (size_t i = 0; i < N; i++) x[i] = (i % 3 ? FLT_MAX : -FLT_MAX) * (i % 5 ? 1.0f : 1e-40f);
    differ += px_first_nonfinite(x, n) != n || px_first_nonfinite_ref(x, n) != n;
    for (size_t a = 0; a < sizeof at / sizeof at[0]; a++)
      for (size_t b = 0; b < 4; b++) {
        x[at[a]] = bad[b];
        x[N - 1 - at[a] / 2] = bad[3 - b]; /* a second one, later or earlier */
        differ += px_first_nonfinite(x, n) != px_first_nonfinite_ref(x, n);
        x[at[a]] = 1.0f, x[N - 1 - at[a] / 2] = 1.0f;
      }
  }
  CU_ASSERT_EQUAL(differ, 0);
  x[300] = NAN;
  CU_ASSERT_EQUAL(px_first_nonfinite(x, N), 300);
  CU_ASSERT_EQUAL(px_first_nonfinite(x, 300), 300);
  free(x);
}

void px_test_register(void) {
  static CU_TestInfo tests[] = {
      {"encoder forward and backward", test_encoder},
      {"first non-finite element", test_first_nonfinite},
      {"layernorm forward and backward", test_layernorm},
      {"matmul (BLIS) forward and backward", test_matmul},
      {"matmul (naive) forward and backward", test_matmul_naive},
      {"matmul BLIS agrees with naive", test_matmul_fast_vs_naive},
      {"decode product: its definition's bits, BLIS's values", test_matmul_decode},
      {"attention (BLIS) over a padded batch", test_attention},
      {"attention (naive) over a padded batch", test_attention_naive},
      {"attention BLIS agrees with naive", test_attention_fast_vs_naive},
      {"backward _set variants overwrite dinp", test_backward_set},
      {"attention backward _set overwrites dqkv", test_attention_backward_set},
      {"px_zero clears in parallel chunks", test_zero},
      {"px_expf within 2 ulp of expf", test_expf},
      {"px_sum16 and px_max16", test_sum16_max16},
      {"gelu forward and backward", test_gelu},
      {"residual forward and backward", test_residual},
      {"softmax cross-entropy at temperatures", test_crossentropy},
      CU_TEST_INFO_NULL};
  px_test_suite("kernels", tests);
}
