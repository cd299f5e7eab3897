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

  /* Errors name the argument. */
  sattn_spec_init(&spec, SATTN_BLOCK_TOPK);
  spec.keep = 1.5;
  if (sattn_attention_f32(&spec, B, H, H, L, L, D, q, k, v, out, NULL, 0.0, 0, 1) != SATTN_INVALID_ARGUMENT ||
      strncmp(sattn_last_error(), "keep", 4) != 0) {
    fprintf(stderr, "keep error not reported: '%s'\n", sattn_last_error()); ++failures;
  }
  sattn_spec_init(&spec, SATTN_DENSE);
  if (sattn_attention_f32(&spec, B, 3, 2, L, L, D, q, k, v, out, NULL, 0.0, 0, 1) != SATTN_INVALID_ARGUMENT ||
      strncmp(sattn_last_error(), "Hq", 2) != 0) {
    fprintf(stderr, "Hq error not reported: '%s'\n", sattn_last_error()); ++failures;
  }
  if (sattn_attention_f32(&spec, B, H, H, L, L, D, NULL, k, v, out, NULL, 0.0, 0, 1) != SATTN_INVALID_ARGUMENT ||
      strncmp(sattn_last_error(), "q:", 2) != 0) {
    fprintf(stderr, "null q not reported: '%s'\n", sattn_last_error()); ++failures;
  }
  printf("c_api_test: %s (max error %.3g)\n", failures ? "FAILED" : "ok", worst);
  return failures ? 1 : 0;
}
