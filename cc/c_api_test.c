/* The C API from a C translation unit: a causal BlockTopK call against a naive double loop, and
 * errors that name the argument. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/sattn.h"

enum { B = 1, H = 2, L = 40, D = 8 };

static float frand(unsigned* s) {
  *s = *s * 1103515245u + 12345u;
  return ((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

int main(void) {
  static float q[B * H * L * D], k[B * H * L * D], v[B * H * L * D], out[B * H * L * D], lse[B * H * L];
  unsigned seed = 1;
  for (int i = 0; i < B * H * L * D; ++i) { q[i] = frand(&seed); k[i] = frand(&seed); v[i] = frand(&seed); }
  int failures = 0;

  /* Dense causal: compare with a naive loop. */
  sattn_spec spec;
  sattn_spec_init(&spec, SATTN_DENSE);
  spec.causal = 1;
  if (sattn_attention_f32(&spec, B, H, H, L, L, D, q, k, v, out, lse, 0.0, 16, 1) != SATTN_OK) {
    fprintf(stderr, "dense call failed: %s\n", sattn_last_error());
    return 1;
  }
  double worst = 0, scale = 1.0 / sqrt(D);
  for (int h = 0; h < H; ++h)
    for (int p = 0; p < L; ++p) {
      double m = -INFINITY, s[L], z = 0;
      for (int j = 0; j <= p; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += (double)q[(h * L + p) * D + d] * k[(h * L + j) * D + d];
        s[j] = dot * scale;
        if (s[j] > m) m = s[j];
      }
      for (int j = 0; j <= p; ++j) z += exp(s[j] - m);
      for (int d = 0; d < D; ++d) {
        double o = 0;
        for (int j = 0; j <= p; ++j) o += exp(s[j] - m) / z * v[(h * L + j) * D + d];
        double e = fabs(o - out[(h * L + p) * D + d]);
        if (e > worst) worst = e;
      }
      double e = fabs(m + log(z) - lse[h * L + p]);
      if (e > worst) worst = e;
    }
  if (worst > 1e-4) { fprintf(stderr, "max error %g\n", worst); ++failures; }

  /* Every bad argument: SATTN_INVALID_ARGUMENT, a message starting with the argument's name, and
   * nothing computed (huge shapes pass the small buffers: they must be refused before any use). */
  int bad_cases = 0;
#define EXPECT_BAD(prefix, call)                                                                      \
  do {                                                                                                \
    ++bad_cases;                                                                                      \
    int rc_ = (call);                                                                                 \
    if (rc_ != SATTN_INVALID_ARGUMENT || strncmp(sattn_last_error(), prefix, strlen(prefix)) != 0) {  \
      fprintf(stderr, "line %d: expected INVALID_ARGUMENT '%s...', got %d '%s'\n", __LINE__, prefix, rc_, \
              sattn_last_error());                                                                    \
      ++failures;                                                                                     \
    }                                                                                                 \
  } while (0)
#define CALL(sp, b, hq, hkv, lq, lk, d, qq, kk, vv, oo, sc, ti, th) \
  sattn_attention_f32(sp, b, hq, hkv, lq, lk, d, qq, kk, vv, oo, NULL, sc, ti, th)
#define WITH(kind, field, value) (sattn_spec_init(&spec, kind), spec.field = (value), &spec)
#define OK_CALL(sp) CALL(sp, B, H, H, L, L, D, q, k, v, out, 0.0, 0, 1)
  EXPECT_BAD("spec:", OK_CALL(NULL));
  EXPECT_BAD("spec.kind:", OK_CALL(WITH(SATTN_DENSE, kind, 7)));
  EXPECT_BAD("spec.kind:", OK_CALL(WITH(SATTN_DENSE, kind, -1)));
  EXPECT_BAD("spec.causal:", OK_CALL(WITH(SATTN_DENSE, causal, 2)));
  EXPECT_BAD("spec.score_max:", OK_CALL(WITH(SATTN_BLOCK_TOPK, score_max, 5)));
  EXPECT_BAD("spec.keep:", OK_CALL(WITH(SATTN_BLOCK_TOPK, keep, 1.5)));
  EXPECT_BAD("spec.keep:", OK_CALL(WITH(SATTN_BLOCK_TOPK, keep, NAN)));
  EXPECT_BAD("spec.block:", OK_CALL(WITH(SATTN_BLOCK_TOPK, block, 0)));
  EXPECT_BAD("spec.block:", OK_CALL(WITH(SATTN_BIGBIRD, block, 5000)));
  EXPECT_BAD("spec.window:", OK_CALL(WITH(SATTN_SLIDING_WINDOW, window, 0)));
  EXPECT_BAD("spec.dilation:", OK_CALL(WITH(SATTN_SLIDING_WINDOW, dilation, 0)));
  EXPECT_BAD("spec.global_tokens:", OK_CALL(WITH(SATTN_SLIDING_WINDOW, global_tokens, -1)));
  EXPECT_BAD("spec.random_blocks:", OK_CALL(WITH(SATTN_BIGBIRD, random_blocks, -1)));
  EXPECT_BAD("spec.topk:", OK_CALL(WITH(SATTN_TOPK_PER_QUERY, topk, 0)));
  sattn_spec_init(&spec, SATTN_DENSE);
  EXPECT_BAD("q:", CALL(&spec, B, H, H, L, L, D, NULL, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("k:", CALL(&spec, B, H, H, L, L, D, q, NULL, v, out, 0.0, 0, 1));
  EXPECT_BAD("v:", CALL(&spec, B, H, H, L, L, D, q, k, NULL, out, 0.0, 0, 1));
  EXPECT_BAD("out:", CALL(&spec, B, H, H, L, L, D, q, k, v, NULL, 0.0, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, NAN, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, INFINITY, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, -INFINITY, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 1e300, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0x1p128, 0, 1));
  EXPECT_BAD("scale:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 1e-40, 0, 1)); /* subnormal */
  EXPECT_BAD("tile:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0.0, -1, 1));
  EXPECT_BAD("tile:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0.0, 5000, 1));
  EXPECT_BAD("threads:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0.0, 0, -1));
  EXPECT_BAD("threads:", CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0.0, 0, 1025));
  EXPECT_BAD("B:", CALL(&spec, 0, H, H, L, L, D, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Hq:", CALL(&spec, B, 3, 2, L, L, D, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Hkv:", CALL(&spec, B, H, 0, L, L, D, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Lq:", CALL(&spec, B, H, H, L + 1, L, D, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Lk:", CALL(&spec, B, H, H, L, 0, D, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("D:", CALL(&spec, B, H, H, L, L, 0, q, k, v, out, 0.0, 0, 1));
  /* Sizes past the limits (docs/contract.md, "Limits"), refused before anything is read. */
  EXPECT_BAD("Lq:", CALL(&spec, 65536, 65536, 65536, 65536, 65536, 65536, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Lk:", CALL(&spec, 1, 1, 1, 1, 1 << 30, 4, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Lk:", CALL(&spec, 1, 1, 1, 2147483584, 2147483584, 1, q, k, v, out, 0.0, 0, 1));
  EXPECT_BAD("Lk:", CALL(&spec, 1, 1, 1, 65536, 65536, 1, q, k, v, out, 0.0, 1, 1)); /* tile 1 */
  /* Values at the edges of the ranges are accepted. */
  if (CALL(&spec, B, H, H, L, L, D, q, k, v, out, 0x1p-126, 4096, 1024) != SATTN_OK ||
      CALL(&spec, B, H, H, L, L, D, q, k, v, out, 2.0, 1, 0) != SATTN_OK) {
    fprintf(stderr, "edge values refused: '%s'\n", sattn_last_error()); ++failures;
  }
  printf("c_api_test: %s (max error %.3g, %d bad-input cases)\n", failures ? "FAILED" : "ok", worst, bad_cases);
  return failures ? 1 : 0;
}
