/* Plain C implementation of rvv/kernels/kernels.h: the same algorithm, loop order and data layout
 * as the RVV intrinsics, written as ordinary loops. Built twice (rvv/BUILD): `scalar` with
 * -march=rv64gc and `autovec` with -march=rv64gcv -O3 for clang's loop vectoriser. The loops run
 * along gathered keys (stride 1), the form the vectoriser handles best. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rvv/kernels/kernels.h"

#ifndef SATTN_VARIANT_NAME
#error "build with -DSATTN_VARIANT_NAME=\"scalar\" or \"autovec\""
#endif

const char* sattn_kernel_variant(void) { return SATTN_VARIANT_NAME; }

void sattn_gather_t_f32(const float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                        float* dst, int64_t dst_ld) {
  for (int32_t d = 0; d < D; ++d) {
    float* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n; ++j) out[j] = src[j * src_ld + d];
    for (int32_t j = n; j < n_pad; ++j) out[j] = 0.0f;
  }
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

void sattn_gather_t_bf16(const uint16_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                         float* dst, int64_t dst_ld) {
  for (int32_t d = 0; d < D; ++d) {
    float* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n; ++j) out[j] = bf16_to_f32(src[j * src_ld + d]);
    for (int32_t j = n; j < n_pad; ++j) out[j] = 0.0f;
  }
}

void sattn_gather_t_i8(const int8_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                       int8_t* dst, int64_t dst_ld) {
  for (int32_t d = 0; d < D; ++d) {
    int8_t* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n; ++j) out[j] = src[j * src_ld + d];
    for (int32_t j = n; j < n_pad; ++j) out[j] = 0;
  }
}

void sattn_bf16_to_f32(const uint16_t* x, int32_t n, float* y) {
  for (int32_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}

static inline int mask_bit(const uint8_t* mask, int32_t j) { return (mask[j >> 3] >> (j & 7)) & 1; }

float sattn_row_scores_f32(const float* q, const float* kt, int64_t kt_ld, int32_t D, int32_t nk,
                           float scale, const uint8_t* mask, float* s) {
  for (int32_t j = 0; j < nk; ++j) s[j] = 0.0f;
  for (int32_t d = 0; d < D; ++d) {
    const float qd = q[d];
    const float* row = kt + d * kt_ld;
    for (int32_t j = 0; j < nk; ++j) s[j] += qd * row[j];
  }
  float m = -INFINITY;
  for (int32_t j = 0; j < nk; ++j) {
    const float x = mask_bit(mask, j) ? s[j] * scale : -INFINITY;
    s[j] = x;
    m = x > m ? x : m;
  }
  return m;
}

float sattn_row_scores_i8(const int8_t* q, const int8_t* kt, int64_t kt_ld, int32_t D, int32_t nk,
                          float qscale, const float* kscale, const uint8_t* mask, float* s) {
  /* int32 accumulators live in s's storage (same size as float). */
  int32_t* acc = (int32_t*)s;
  for (int32_t j = 0; j < nk; ++j) acc[j] = 0;
  for (int32_t d = 0; d < D; ++d) {
    const int16_t qd = q[d];
    const int8_t* row = kt + d * kt_ld;
    for (int32_t j = 0; j < nk; ++j) acc[j] += (int32_t)(int16_t)(qd * (int16_t)row[j]);
  }
  float m = -INFINITY;
  for (int32_t j = 0; j < nk; ++j) {
    const float x = mask_bit(mask, j) ? ((float)acc[j] * qscale) * kscale[j] : -INFINITY;
    s[j] = x;
    m = x > m ? x : m;
  }
  return m;
}

/* An integral float in [-2^22, 2^22] to int32 without a float->int conversion instruction: a
 * vectorised C cast becomes a round-toward-zero vfcvt.rtz.*, which aborts QEMU 7.2's translator
 * (docs/backends/rvv.md). Adding 1.5 * 2^23 puts the integer in the low mantissa bits. */
static inline int32_t float_to_small_int(float f) {
  const float t = f + 12582912.0f;
  uint32_t bits;
  memcpy(&bits, &t, sizeof bits);
  return (int32_t)(bits - 0x4B400000u);
}

float sattn_quantize_i8(const float* x, int64_t n, int8_t* x8) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = fmaxf(amax, fabsf(x[i]));
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int64_t i = 0; i < n; ++i) {
    float r = nearbyintf(x[i] / scale);
    r = r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r);
    x8[i] = (int8_t)float_to_small_int(r);
  }
  return scale;
}

/* The kernels' exp, same constants and steps as the RVV version (rvv_kernels.cc). */
static inline float kexp(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float nf = nearbyintf(xc * 1.44269504088896341f);
  const int32_t n = float_to_small_int(nf);
  float r = xc - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits;
  memcpy(&bits, &p, sizeof bits);
  bits += (uint32_t)n << 23;
  memcpy(&p, &bits, sizeof p);
  return x < -87.0f ? 0.0f : p;
}

float sattn_row_exp_sum(float* s, int32_t nk, float m) {
  float sum = 0.0f;
  for (int32_t j = 0; j < nk; ++j) {
    const float p = kexp(s[j] - m);
    s[j] = p;
    sum += p;
  }
  return sum;
}

void sattn_row_pv(const float* p, const float* vt, int64_t vt_ld, int32_t D, int32_t nk,
                  float alpha, float* acc) {
  for (int32_t d = 0; d < D; ++d) {
    const float* row = vt + d * vt_ld;
    float sum = 0.0f;
    for (int32_t j = 0; j < nk; ++j) sum += p[j] * row[j];
    acc[d] = alpha * acc[d] + sum;
  }
}

void sattn_row_normalize(float* o, int32_t D, float inv) {
  for (int32_t d = 0; d < D; ++d) o[d] *= inv;
}

void sattn_exp_array(const float* x, int32_t n, float* y) {
  for (int32_t i = 0; i < n; ++i) y[i] = kexp(x[i]);
}

void sattn_mean_pool_f64(const float* x, int64_t ld, int32_t n, int32_t D, double* out,
                         int64_t out_ld) {
  for (int32_t d = 0; d < D; ++d) {
    double acc = 0.0;
    for (int32_t i = 0; i < n; ++i) acc += (double)x[i * ld + d];
    out[d * out_ld] = acc / (double)n;
  }
}

void sattn_block_max_dots_f64(const float* q, int64_t q_ld, int32_t nq, const float* kt, int64_t kt_ld,
                              int32_t D, int32_t nk, int32_t blk, double* tmp, double* bmax) {
  /* One query row at a time. Products of two widened floats are exact in double, so contraction
   * cannot change a bit. */
  for (int32_t i = 0; i < nq; ++i) {
    for (int32_t j = 0; j < nk; ++j) tmp[j] = 0.0;
    for (int32_t d = 0; d < D; ++d) {
      const double x = (double)q[i * q_ld + d];
      const float* row = kt + d * kt_ld;
      for (int32_t j = 0; j < nk; ++j) tmp[j] = tmp[j] + x * (double)row[j];
    }
    for (int32_t c = 0, j0 = 0; j0 < nk; ++c, j0 += blk) {
      const int32_t j1 = j0 + blk < nk ? j0 + blk : nk;
      /* maximumNumber: a NaN maximum so far gives way to any value (kernels.h). */
      for (int32_t j = j0; j < j1; ++j)
        if (bmax[c] != bmax[c] || tmp[j] > bmax[c]) bmax[c] = tmp[j];
    }
  }
}

void sattn_block_scores_f64(const double* qm, const double* kmt, int64_t kmt_ld, int32_t D,
                            int32_t n, double scale, double* score) {
  /* Bit-identical to the planner: no fused multiply-add here, whatever the build's -ffp-contract. */
#pragma STDC FP_CONTRACT OFF
  for (int32_t b = 0; b < n; ++b) score[b] = 0.0;
  for (int32_t d = 0; d < D; ++d) {
    const double x = qm[d];
    const double* row = kmt + d * kmt_ld;
    for (int32_t b = 0; b < n; ++b) {
      const double prod = x * row[b];
      score[b] = score[b] + prod;
    }
  }
  for (int32_t b = 0; b < n; ++b) score[b] = scale * score[b];
}

void sattn_topk_select(const double* score, const uint8_t* cand, int32_t n, int32_t extra,
                       uint8_t* chosen) {
  for (int32_t t = 0; t < extra; ++t) {
    int32_t best = -1;
    for (int32_t b = 0; b < n; ++b) {
      if (!cand[b] || chosen[b]) continue;
      /* NaN ranks below every number; equal scores keep the lower b. */
      if (best < 0 || (score[b] == score[b] && (score[best] != score[best] || score[b] > score[best]))) best = b;
    }
    if (best < 0) return;
    chosen[best] = 1;
  }
}

/* ---- Backward: the same loops as the RVV kernels, along keys. ---- */
float sattn_dot_f32(const float* a, const float* b, int32_t n) {
  float s = 0.0f;
  for (int32_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

/* The kernels' exp on x clamped to [-87, 0]; 0 below -87 and for NaN (as rvv_kernels.cc's
 * ExpProb). */
static inline float kexp_prob(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 0.0f ? 0.0f : x);
  const float p = kexp(xc == xc ? xc : -87.0f);
  return x >= -87.0f ? p : 0.0f;
}

void sattn_row_probs(float* s, int32_t nk, float lse) {
  for (int32_t j = 0; j < nk; ++j) s[j] = kexp_prob(s[j] - lse);
}

void sattn_row_dscores_dv(const float* p, const float* g, const float* vt, int64_t vt_ld, int32_t D,
                          int32_t nk, float delta, float scale, float* ds, float* dvt, int64_t dvt_ld) {
  /* ds accumulates the dot products dout . v_j along keys, one feature at a time. */
  for (int32_t j = 0; j < nk; ++j) ds[j] = 0.0f;
  for (int32_t d = 0; d < D; ++d) {
    const float gd = g[d];
    const float* vr = vt + d * vt_ld;
    float* dr = dvt + d * dvt_ld;
    for (int32_t j = 0; j < nk; ++j) {
      ds[j] += gd * vr[j];
      dr[j] += gd * p[j];
    }
  }
  for (int32_t j = 0; j < nk; ++j) ds[j] = ((ds[j] - delta) * p[j]) * scale;
}

void sattn_row_dq_dk(const float* ds, const float* q, const float* kt, int64_t kt_ld, int32_t D,
                     int32_t nk, float* dq, float* dkt, int64_t dkt_ld) {
  for (int32_t d = 0; d < D; ++d) {
    const float qd = q[d];
    const float* kr = kt + d * kt_ld;
    float* dr = dkt + d * dkt_ld;
    float sum = 0.0f;
    for (int32_t j = 0; j < nk; ++j) {
      sum += ds[j] * kr[j];
      dr[j] += qd * ds[j];
    }
    dq[d] += sum;
  }
}

void sattn_drain_f32(float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D, float* dst,
                     int64_t dst_ld) {
  for (int32_t d = 0; d < D; ++d) {
    float* s = src + d * src_ld;
    float* o = dst + d * dst_ld;
    for (int32_t j = 0; j < n; ++j) {
      o[j] += s[j];
      s[j] = 0.0f;
    }
    for (int32_t j = n; j < n_pad; ++j) s[j] = 0.0f;
  }
}
