// RVV 1.0 intrinsic implementation of kernels.h. Vector-length agnostic: every loop strip-mines
// with vsetvl, so the same binary runs at any VLEN and longer vectors mean fewer instructions.
//
// Register grouping: float32 work uses LMUL=8 (one vector instruction covers VLEN/4 floats), the
// largest group, because loops run along the gathered keys (up to 512 per chunk). Masks are
// loaded straight from memory with vlm.v (the plan bitmaps' bit order is the mask layout).
#include <riscv_vector.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "rvv/kernels/kernels.h"

namespace {

// Polynomial exp for x <= 0 (see docs/backends/rvv.md, "exp"): x = n*ln2 + r with n = rint(x/ln2),
// |r| <= ln2/2, ln2 split in two (Cody-Waite) so r is exact to ~1e-10; exp(r) by its degree-7
// Taylor polynomial (truncation < 1.4e-8 relative) in Horner form; 2^n added to the exponent.
// Inputs below -87 give 0 (exp(-87) = 1.6e-38 is below anything a softmax sum can notice).
inline vfloat32m8_t ExpNonPositive(vfloat32m8_t x, size_t vl) {
  const vfloat32m8_t xc = __riscv_vfmax_vf_f32m8(x, -87.0f, vl);
  const vint32m8_t n = __riscv_vfcvt_x_f_v_i32m8(__riscv_vfmul_vf_f32m8(xc, 1.44269504088896341f, vl), vl);
  const vfloat32m8_t nf = __riscv_vfcvt_f_x_v_f32m8(n, vl);
  vfloat32m8_t r = __riscv_vfnmsac_vf_f32m8(xc, 0.693359375f, nf, vl);
  r = __riscv_vfnmsac_vf_f32m8(r, -2.12194440e-4f, nf, vl);
  vfloat32m8_t p = __riscv_vfmv_v_f_f32m8(1.0f / 5040.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 720.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 120.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 24.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 6.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 0.5f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f, vl);
  const vint32m8_t bits = __riscv_vadd_vv_i32m8(__riscv_vreinterpret_v_f32m8_i32m8(p),
                                                __riscv_vsll_vx_i32m8(n, 23, vl), vl);
  const vfloat32m8_t e = __riscv_vreinterpret_v_i32m8_f32m8(bits);
  const vbool4_t live = __riscv_vmfge_vf_f32m8_b4(x, -87.0f, vl);
  return __riscv_vmerge_vvm_f32m8(__riscv_vfmv_v_f_f32m8(0.0f, vl), e, live, vl);
}

// The backward's probabilities exp(x) for x = s - lse: the forward's polynomial on x clamped to
// [-87, 0] (x <= 0 up to the rounding of lse), 0 where x < -87 or x is NaN (vfmax returns -87 for
// a NaN and the vmfge mask is false), so a masked slot (s = -inf) and a NaN score both give 0 and
// the result is never above 1.
inline vfloat32m8_t ExpProb(vfloat32m8_t x, size_t vl) {
  const vfloat32m8_t xc = __riscv_vfmin_vf_f32m8(__riscv_vfmax_vf_f32m8(x, -87.0f, vl), 0.0f, vl);
  const vint32m8_t n = __riscv_vfcvt_x_f_v_i32m8(__riscv_vfmul_vf_f32m8(xc, 1.44269504088896341f, vl), vl);
  const vfloat32m8_t nf = __riscv_vfcvt_f_x_v_f32m8(n, vl);
  vfloat32m8_t r = __riscv_vfnmsac_vf_f32m8(xc, 0.693359375f, nf, vl);
  r = __riscv_vfnmsac_vf_f32m8(r, -2.12194440e-4f, nf, vl);
  vfloat32m8_t p = __riscv_vfmv_v_f_f32m8(1.0f / 5040.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 720.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 120.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 24.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f / 6.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 0.5f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f, vl);
  p = __riscv_vfadd_vf_f32m8(__riscv_vfmul_vv_f32m8(p, r, vl), 1.0f, vl);
  const vint32m8_t bits = __riscv_vadd_vv_i32m8(__riscv_vreinterpret_v_f32m8_i32m8(p),
                                                __riscv_vsll_vx_i32m8(n, 23, vl), vl);
  const vbool4_t live = __riscv_vmfge_vf_f32m8_b4(x, -87.0f, vl);
  return __riscv_vmerge_vvm_f32m8(__riscv_vfmv_v_f_f32m8(0.0f, vl), __riscv_vreinterpret_v_i32m8_f32m8(bits), live, vl);
}

// Folds rows of dot products (nrows rows of nk, row stride nk) into the key blocks' maxima.
void FoldBlockMaxima(const double* tmp, int32_t nrows, int32_t nk, int32_t blk, double* bmax) {
  for (int32_t c = 0, j0 = 0; j0 < nk; ++c, j0 += blk) {
    const int32_t j1 = std::min(j0 + blk, nk);
    vfloat64m1_t m = __riscv_vfmv_v_f_f64m1(bmax[c], 1);
    for (int32_t r = 0; r < nrows; ++r)
      for (int32_t j = j0; j < j1;) {
        const size_t vl = __riscv_vsetvl_e64m8(size_t(j1 - j));
        m = __riscv_vfredmax_vs_f64m8_f64m1(__riscv_vle64_v_f64m8(tmp + int64_t(r) * nk + j, vl), m, vl);
        j += int32_t(vl);
      }
    bmax[c] = __riscv_vfmv_f_s_f64m1_f64(m);
  }
}

}  // namespace

extern "C" {

const char* sattn_kernel_variant(void) { return "rvv"; }

void sattn_gather_t_f32(const float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                        float* dst, int64_t dst_ld) {
  // Strided loads walk one feature down the block's rows: the transpose costs one load and one
  // store per VLEN/4 keys.
  const ptrdiff_t stride = ptrdiff_t(src_ld) * sizeof(float);
  for (int32_t d = 0; d < D; ++d) {
    float* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n - j));
      __riscv_vse32_v_f32m8(out + j, __riscv_vlse32_v_f32m8(src + j * src_ld + d, stride, vl), vl);
      j += int32_t(vl);
    }
    for (int32_t j = n; j < n_pad;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n_pad - j));
      __riscv_vse32_v_f32m8(out + j, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
      j += int32_t(vl);
    }
  }
}

void sattn_gather_t_bf16(const uint16_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                         float* dst, int64_t dst_ld) {
  // bf16 -> f32 is exact: zero-extend to 32 bits and shift into the upper half.
  const ptrdiff_t stride = ptrdiff_t(src_ld) * sizeof(uint16_t);
  for (int32_t d = 0; d < D; ++d) {
    float* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n - j));
      const vuint16m4_t h = __riscv_vlse16_v_u16m4(src + j * src_ld + d, stride, vl);
      const vuint32m8_t w = __riscv_vsll_vx_u32m8(__riscv_vzext_vf2_u32m8(h, vl), 16, vl);
      __riscv_vse32_v_f32m8(out + j, __riscv_vreinterpret_v_u32m8_f32m8(w), vl);
      j += int32_t(vl);
    }
    for (int32_t j = n; j < n_pad;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n_pad - j));
      __riscv_vse32_v_f32m8(out + j, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
      j += int32_t(vl);
    }
  }
}

void sattn_gather_t_i8(const int8_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                       int8_t* dst, int64_t dst_ld) {
  const ptrdiff_t stride = ptrdiff_t(src_ld);
  for (int32_t d = 0; d < D; ++d) {
    int8_t* out = dst + d * dst_ld;
    for (int32_t j = 0; j < n;) {
      const size_t vl = __riscv_vsetvl_e8m8(size_t(n - j));
      __riscv_vse8_v_i8m8(out + j, __riscv_vlse8_v_i8m8(src + j * src_ld + d, stride, vl), vl);
      j += int32_t(vl);
    }
    for (int32_t j = n; j < n_pad;) {
      const size_t vl = __riscv_vsetvl_e8m8(size_t(n_pad - j));
      __riscv_vse8_v_i8m8(out + j, __riscv_vmv_v_x_i8m8(0, vl), vl);
      j += int32_t(vl);
    }
  }
}

void sattn_bf16_to_f32(const uint16_t* x, int32_t n, float* y) {
  for (int32_t i = 0; i < n;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(n - i));
    const vuint32m8_t w = __riscv_vsll_vx_u32m8(__riscv_vzext_vf2_u32m8(__riscv_vle16_v_u16m4(x + i, vl), vl), 16, vl);
    __riscv_vse32_v_f32m8(y + i, __riscv_vreinterpret_v_u32m8_f32m8(w), vl);
    i += int32_t(vl);
  }
}

float sattn_row_scores_f32(const float* q, const float* kt, int64_t kt_ld, int32_t D, int32_t nk,
                           float scale, const uint8_t* mask, float* s) {
  // The accumulator strip stays in registers for the whole D loop: per feature one scalar load,
  // one vector load and one vfmacc cover VLEN/4 keys.
  const size_t vlmax = __riscv_vsetvlmax_e32m1();
  vfloat32m1_t vmax = __riscv_vfmv_v_f_f32m1(-INFINITY, vlmax);
  for (int32_t j = 0; j < nk;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(nk - j));
    const float* col = kt + j;
    vfloat32m8_t acc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
    int32_t d = 0;
    for (; d + 4 <= D; d += 4) {
      acc = __riscv_vfmacc_vf_f32m8(acc, q[d], __riscv_vle32_v_f32m8(col + (d + 0) * kt_ld, vl), vl);
      acc = __riscv_vfmacc_vf_f32m8(acc, q[d + 1], __riscv_vle32_v_f32m8(col + (d + 1) * kt_ld, vl), vl);
      acc = __riscv_vfmacc_vf_f32m8(acc, q[d + 2], __riscv_vle32_v_f32m8(col + (d + 2) * kt_ld, vl), vl);
      acc = __riscv_vfmacc_vf_f32m8(acc, q[d + 3], __riscv_vle32_v_f32m8(col + (d + 3) * kt_ld, vl), vl);
    }
    for (; d < D; ++d)
      acc = __riscv_vfmacc_vf_f32m8(acc, q[d], __riscv_vle32_v_f32m8(col + d * kt_ld, vl), vl);
    acc = __riscv_vfmul_vf_f32m8(acc, scale, vl);
    const vbool4_t m = __riscv_vlm_v_b4(mask + (j >> 3), vl);
    acc = __riscv_vmerge_vvm_f32m8(__riscv_vfmv_v_f_f32m8(-INFINITY, vl), acc, m, vl);
    __riscv_vse32_v_f32m8(s + j, acc, vl);
    vmax = __riscv_vfredmax_vs_f32m8_f32m1(acc, vmax, vl);
    j += int32_t(vl);
  }
  return __riscv_vfmv_f_s_f32m1_f32(vmax);
}

float sattn_row_scores_i8(const int8_t* q, const int8_t* kt, int64_t kt_ld, int32_t D, int32_t nk,
                          float qscale, const float* kscale, const uint8_t* mask, float* s) {
  // Codes lie in [-127, 127], so one product is at most 16129 and two fit int16 (32258 < 2^15):
  // per pair of features vwmul.vx + vwmacc.vx build the pair's sum in int16, and one vwadd.wv adds
  // it to the int32 accumulators (exact for D up to 131071).
  const size_t vlmax = __riscv_vsetvlmax_e32m1();
  vfloat32m1_t vmax = __riscv_vfmv_v_f_f32m1(-INFINITY, vlmax);
  for (int32_t j = 0; j < nk;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(nk - j));
    const int8_t* col = kt + j;
    vint32m8_t acc = __riscv_vmv_v_x_i32m8(0, vl);
    int32_t d = 0;
    for (; d + 4 <= D; d += 4) {
      vint16m4_t p0 = __riscv_vwmul_vx_i16m4(__riscv_vle8_v_i8m2(col + (d + 0) * kt_ld, vl), q[d + 0], vl);
      p0 = __riscv_vwmacc_vx_i16m4(p0, q[d + 1], __riscv_vle8_v_i8m2(col + (d + 1) * kt_ld, vl), vl);
      acc = __riscv_vwadd_wv_i32m8(acc, p0, vl);
      vint16m4_t p1 = __riscv_vwmul_vx_i16m4(__riscv_vle8_v_i8m2(col + (d + 2) * kt_ld, vl), q[d + 2], vl);
      p1 = __riscv_vwmacc_vx_i16m4(p1, q[d + 3], __riscv_vle8_v_i8m2(col + (d + 3) * kt_ld, vl), vl);
      acc = __riscv_vwadd_wv_i32m8(acc, p1, vl);
    }
    for (; d < D; ++d) {
      const vint16m4_t prod = __riscv_vwmul_vx_i16m4(__riscv_vle8_v_i8m2(col + d * kt_ld, vl), q[d], vl);
      acc = __riscv_vwadd_wv_i32m8(acc, prod, vl);
    }
    vfloat32m8_t f = __riscv_vfmul_vf_f32m8(__riscv_vfcvt_f_x_v_f32m8(acc, vl), qscale, vl);
    f = __riscv_vfmul_vv_f32m8(f, __riscv_vle32_v_f32m8(kscale + j, vl), vl);
    const vbool4_t m = __riscv_vlm_v_b4(mask + (j >> 3), vl);
    f = __riscv_vmerge_vvm_f32m8(__riscv_vfmv_v_f_f32m8(-INFINITY, vl), f, m, vl);
    __riscv_vse32_v_f32m8(s + j, f, vl);
    vmax = __riscv_vfredmax_vs_f32m8_f32m1(f, vmax, vl);
    j += int32_t(vl);
  }
  return __riscv_vfmv_f_s_f32m1_f32(vmax);
}

float sattn_quantize_i8(const float* x, int64_t n, int8_t* x8) {
  const size_t vl1 = __riscv_vsetvlmax_e32m1();
  vfloat32m1_t vmax = __riscv_vfmv_v_f_f32m1(0.0f, vl1);
  for (int64_t i = 0; i < n;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(n - i));
    vmax = __riscv_vfredmax_vs_f32m8_f32m1(__riscv_vfabs_v_f32m8(__riscv_vle32_v_f32m8(x + i, vl), vl), vmax, vl);
    i += int64_t(vl);
  }
  const float amax = __riscv_vfmv_f_s_f32m1_f32(vmax);
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int64_t i = 0; i < n;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(n - i));
    // vfcvt.x.f rounds with the dynamic rounding mode: round-to-nearest-even, like nearbyint.
    vint32m8_t r = __riscv_vfcvt_x_f_v_i32m8(__riscv_vfdiv_vf_f32m8(__riscv_vle32_v_f32m8(x + i, vl), scale, vl), vl);
    r = __riscv_vmin_vx_i32m8(__riscv_vmax_vx_i32m8(r, -127, vl), 127, vl);
    __riscv_vse8_v_i8m2(x8 + i, __riscv_vncvt_x_x_w_i8m2(__riscv_vncvt_x_x_w_i16m4(r, vl), vl), vl);
    i += int64_t(vl);
  }
  return scale;
}

float sattn_row_exp_sum(float* s, int32_t nk, float m) {
  const size_t vlmax = __riscv_vsetvlmax_e32m1();
  vfloat32m1_t vsum = __riscv_vfmv_v_f_f32m1(0.0f, vlmax);
  for (int32_t j = 0; j < nk;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(nk - j));
    const vfloat32m8_t x = __riscv_vfsub_vf_f32m8(__riscv_vle32_v_f32m8(s + j, vl), m, vl);
    const vfloat32m8_t p = ExpNonPositive(x, vl);
    __riscv_vse32_v_f32m8(s + j, p, vl);
    vsum = __riscv_vfredusum_vs_f32m8_f32m1(p, vsum, vl);
    j += int32_t(vl);
  }
  return __riscv_vfmv_f_s_f32m1_f32(vsum);
}

void sattn_row_pv(const float* p, const float* vt, int64_t vt_ld, int32_t D, int32_t nk,
                  float alpha, float* acc) {
  // Along keys: per feature d, products accumulate in a VLMAX-wide register group and one
  // reduction folds them. The reductions start from 0 and land in `sums`; the online-softmax
  // rescale acc = alpha * acc + sums is then one vector pass over D instead of scalar work per d.
  // When P fits in one or two register groups (nk <= 2 * VLMAX) it is loaded once for all D
  // features: longer vectors then also remove the reloads, not only shorten the loops.
  const size_t vlmax = __riscv_vsetvlmax_e32m8();
  const size_t n = size_t(nk);
  constexpr int32_t kTile = 64;
  float sums[kTile];
  const vfloat32m1_t zero = __riscv_vfmv_v_f_f32m1(0.0f, __riscv_vsetvlmax_e32m1());
  for (int32_t d0 = 0; d0 < D; d0 += kTile) {
    const int32_t dn = D - d0 < kTile ? D - d0 : kTile;
    const float* rows = vt + int64_t(d0) * vt_ld;
    if (n <= vlmax) {
      const vfloat32m8_t p0 = __riscv_vle32_v_f32m8(p, n);
      for (int32_t d = 0; d < dn; ++d, rows += vt_ld) {
        const vfloat32m8_t prod = __riscv_vfmul_vv_f32m8(p0, __riscv_vle32_v_f32m8(rows, n), n);
        sums[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(prod, zero, n));
      }
    } else if (n == 2 * vlmax) {
      // Two full groups (e.g. 4 blocks of 64 keys at VLEN=512): one vl, no tail handling.
      const vfloat32m8_t p0 = __riscv_vle32_v_f32m8(p, vlmax);
      const vfloat32m8_t p1 = __riscv_vle32_v_f32m8(p + vlmax, vlmax);
      for (int32_t d = 0; d < dn; ++d, rows += vt_ld) {
        vfloat32m8_t part = __riscv_vfmul_vv_f32m8(p0, __riscv_vle32_v_f32m8(rows, vlmax), vlmax);
        part = __riscv_vfmacc_vv_f32m8(part, p1, __riscv_vle32_v_f32m8(rows + vlmax, vlmax), vlmax);
        sums[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(part, zero, vlmax));
      }
    } else if (n < 2 * vlmax) {
      const size_t n1 = n - vlmax;
      const vfloat32m8_t p0 = __riscv_vle32_v_f32m8(p, vlmax);
      const vfloat32m8_t p1 = __riscv_vle32_v_f32m8(p + vlmax, n1);
      for (int32_t d = 0; d < dn; ++d, rows += vt_ld) {
        vfloat32m8_t part = __riscv_vfmul_vv_f32m8(p0, __riscv_vle32_v_f32m8(rows, vlmax), vlmax);
        part = __riscv_vfmacc_vv_f32m8_tu(part, p1, __riscv_vle32_v_f32m8(rows + vlmax, n1), n1);
        sums[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(part, zero, vlmax));
      }
    } else {
      const size_t full = n / vlmax * vlmax, tail = n - full;
      for (int32_t d = 0; d < dn; ++d, rows += vt_ld) {
        vfloat32m8_t part = __riscv_vfmul_vv_f32m8(__riscv_vle32_v_f32m8(p, vlmax),
                                                   __riscv_vle32_v_f32m8(rows, vlmax), vlmax);
        const float* pp = p + vlmax;
        const float* rr = rows + vlmax;
        for (size_t j = vlmax; j < full; j += vlmax, pp += vlmax, rr += vlmax)
          part = __riscv_vfmacc_vv_f32m8(part, __riscv_vle32_v_f32m8(pp, vlmax), __riscv_vle32_v_f32m8(rr, vlmax), vlmax);
        if (tail)
          part = __riscv_vfmacc_vv_f32m8_tu(part, __riscv_vle32_v_f32m8(pp, tail), __riscv_vle32_v_f32m8(rr, tail), tail);
        sums[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(part, zero, vlmax));
      }
    }
    for (int32_t d = 0; d < dn;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(dn - d));
      const vfloat32m8_t a = __riscv_vle32_v_f32m8(acc + d0 + d, vl);
      __riscv_vse32_v_f32m8(acc + d0 + d, __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(sums + d, vl), alpha, a, vl), vl);
      d += int32_t(vl);
    }
  }
}

void sattn_row_normalize(float* o, int32_t D, float inv) {
  for (int32_t d = 0; d < D;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(D - d));
    __riscv_vse32_v_f32m8(o + d, __riscv_vfmul_vf_f32m8(__riscv_vle32_v_f32m8(o + d, vl), inv, vl), vl);
    d += int32_t(vl);
  }
}

void sattn_exp_array(const float* x, int32_t n, float* y) {
  for (int32_t i = 0; i < n;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(n - i));
    __riscv_vse32_v_f32m8(y + i, ExpNonPositive(__riscv_vle32_v_f32m8(x + i, vl), vl), vl);
    i += int32_t(vl);
  }
}

void sattn_mean_pool_f64(const float* x, int64_t ld, int32_t n, int32_t D, double* out,
                         int64_t out_ld) {
  // Along features, rows added in order with vfwadd.wv (float widened exactly, one rounding per
  // add): the same sums, in the same order, as the planner's scalar double loop.
  for (int32_t d = 0; d < D;) {
    const size_t vl = __riscv_vsetvl_e64m8(size_t(D - d));
    vfloat64m8_t acc = __riscv_vfmv_v_f_f64m8(0.0, vl);
    for (int32_t i = 0; i < n; ++i)
      acc = __riscv_vfwadd_wv_f64m8(acc, __riscv_vle32_v_f32m4(x + i * ld + d, vl), vl);
    acc = __riscv_vfdiv_vf_f64m8(acc, double(n), vl);
    __riscv_vsse64_v_f64m8(out + d * out_ld, ptrdiff_t(out_ld) * sizeof(double), acc, vl);
    d += int32_t(vl);
  }
}

void sattn_block_scores_f64(const double* qm, const double* kmt, int64_t kmt_ld, int32_t D,
                            int32_t n, double scale, double* score) {
  // Along key blocks; separate vfmul and vfadd (never vfmacc) to round exactly like the planner.
  for (int32_t b = 0; b < n;) {
    const size_t vl = __riscv_vsetvl_e64m8(size_t(n - b));
    vfloat64m8_t acc = __riscv_vfmv_v_f_f64m8(0.0, vl);
    for (int32_t d = 0; d < D; ++d)
      acc = __riscv_vfadd_vv_f64m8(acc, __riscv_vfmul_vf_f64m8(__riscv_vle64_v_f64m8(kmt + d * kmt_ld + b, vl), qm[d], vl), vl);
    __riscv_vse64_v_f64m8(score + b, __riscv_vfmul_vf_f64m8(acc, scale, vl), vl);
    b += int32_t(vl);
  }
}

void sattn_block_max_dots_f64(const float* q, int64_t q_ld, int32_t nq, const float* kt, int64_t kt_ld,
                              int32_t D, int32_t nk, int32_t blk, double* tmp, double* bmax) {
  // Along keys, one vfwmacc per feature in d order: it widens both float32 factors and adds their
  // product to the float64 accumulator with one rounding. The product of two floats is exact in
  // float64 (24 + 24 significant bits), so that rounding is the planner's rounding of the sum:
  // bit-identical to a separate multiply and add, one instruction instead of two. Query rows go
  // in pairs, so each float32 key vector loaded serves two accumulators (2 x m8 accumulators +
  // m4 keys = 20 of the 32 vector registers); an odd last row runs alone.
  int32_t i = 0;
  for (; i + 1 < nq; i += 2) {
    const float* qa = q + int64_t(i) * q_ld;
    const float* qb = qa + q_ld;
    for (int32_t j = 0; j < nk;) {
      const size_t vl = __riscv_vsetvl_e64m8(size_t(nk - j));
      vfloat64m8_t acc_a = __riscv_vfmv_v_f_f64m8(0.0, vl);
      vfloat64m8_t acc_b = __riscv_vfmv_v_f_f64m8(0.0, vl);
      // Four features (rows of kt) per trip: the loop's vsetvli, pointer bumps and branch are
      // paid once per four instead of per feature; each accumulator still adds in d order.
      int32_t d = 0;
      for (; d + 4 <= D; d += 4) {
        const float* kp = kt + d * kt_ld + j;
        for (int32_t u = 0; u < 4; ++u) {
          const vfloat32m4_t kv = __riscv_vle32_v_f32m4(kp + u * kt_ld, vl);
          acc_a = __riscv_vfwmacc_vf_f64m8(acc_a, qa[d + u], kv, vl);
          acc_b = __riscv_vfwmacc_vf_f64m8(acc_b, qb[d + u], kv, vl);
        }
      }
      for (; d < D; ++d) {
        const vfloat32m4_t kv = __riscv_vle32_v_f32m4(kt + d * kt_ld + j, vl);
        acc_a = __riscv_vfwmacc_vf_f64m8(acc_a, qa[d], kv, vl);
        acc_b = __riscv_vfwmacc_vf_f64m8(acc_b, qb[d], kv, vl);
      }
      __riscv_vse64_v_f64m8(tmp + j, acc_a, vl);
      __riscv_vse64_v_f64m8(tmp + nk + j, acc_b, vl);
      j += int32_t(vl);
    }
    FoldBlockMaxima(tmp, 2, nk, blk, bmax);
  }
  if (i < nq) {
    const float* qa = q + int64_t(i) * q_ld;
    for (int32_t j = 0; j < nk;) {
      const size_t vl = __riscv_vsetvl_e64m8(size_t(nk - j));
      vfloat64m8_t acc = __riscv_vfmv_v_f_f64m8(0.0, vl);
      for (int32_t d = 0; d < D; ++d)
        acc = __riscv_vfwmacc_vf_f64m8(acc, qa[d], __riscv_vle32_v_f32m4(kt + d * kt_ld + j, vl), vl);
      __riscv_vse64_v_f64m8(tmp + j, acc, vl);
      j += int32_t(vl);
    }
    FoldBlockMaxima(tmp, 1, nk, blk, bmax);
  }
}

void sattn_topk_select(const double* score, const uint8_t* cand, int32_t n, int32_t extra,
                       uint8_t* chosen) {
  // Repeated arg-max: a max reduction, then vmfeq + vfirst for the lowest block holding it.
  // Blocks not eligible (or already chosen) are hidden behind a mask.
  const size_t vl1 = __riscv_vsetvlmax_e64m1();
  for (int32_t t = 0; t < extra; ++t) {
    vfloat64m1_t vmax = __riscv_vfmv_v_f_f64m1(-INFINITY, vl1);
    bool any = false;
    for (int32_t b = 0; b < n;) {
      const size_t vl = __riscv_vsetvl_e64m8(size_t(n - b));
      const vbool8_t live = __riscv_vmand_mm_b8(
          __riscv_vmsne_vx_u8m1_b8(__riscv_vle8_v_u8m1(cand + b, vl), 0, vl),
          __riscv_vmseq_vx_u8m1_b8(__riscv_vle8_v_u8m1(chosen + b, vl), 0, vl), vl);
      any = any || __riscv_vcpop_m_b8(live, vl) > 0;
      vmax = __riscv_vfredmax_vs_f64m8_f64m1_m(live, __riscv_vle64_v_f64m8(score + b, vl), vmax, vl);
      b += int32_t(vl);
    }
    if (!any) return;
    const double best = __riscv_vfmv_f_s_f64m1_f64(vmax);
    int32_t b = 0;
    for (; b < n;) {
      const size_t vl = __riscv_vsetvl_e64m8(size_t(n - b));
      const vbool8_t live = __riscv_vmand_mm_b8(
          __riscv_vmsne_vx_u8m1_b8(__riscv_vle8_v_u8m1(cand + b, vl), 0, vl),
          __riscv_vmseq_vx_u8m1_b8(__riscv_vle8_v_u8m1(chosen + b, vl), 0, vl), vl);
      const vbool8_t hit = __riscv_vmand_mm_b8(
          live, __riscv_vmfeq_vf_f64m8_b8(__riscv_vle64_v_f64m8(score + b, vl), best, vl), vl);
      const long first = __riscv_vfirst_m_b8(hit, vl);
      if (first >= 0) {
        chosen[b + first] = 1;
        break;
      }
      b += int32_t(vl);
    }
    if (b < n) continue;
    // No live score equals the maximum: vfredmax skips NaNs, so every live score is NaN (they
    // rank below -inf) and the lowest live block is next.
    for (b = 0; b < n; ++b)
      if (cand[b] != 0 && chosen[b] == 0) {
        chosen[b] = 1;
        break;
      }
  }
}

float sattn_dot_f32(const float* a, const float* b, int32_t n) {
  const size_t vlmax = __riscv_vsetvlmax_e32m8();
  vfloat32m8_t acc = __riscv_vfmv_v_f_f32m8(0.0f, vlmax);
  for (int32_t i = 0; i < n;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(n - i));
    acc = __riscv_vfmacc_vv_f32m8_tu(acc, __riscv_vle32_v_f32m8(a + i, vl), __riscv_vle32_v_f32m8(b + i, vl), vl);
    i += int32_t(vl);
  }
  const vfloat32m1_t zero = __riscv_vfmv_v_f_f32m1(0.0f, __riscv_vsetvlmax_e32m1());
  return __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(acc, zero, vlmax));
}

void sattn_row_probs(float* s, int32_t nk, float lse) {
  for (int32_t j = 0; j < nk;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(nk - j));
    const vfloat32m8_t x = __riscv_vfsub_vf_f32m8(__riscv_vle32_v_f32m8(s + j, vl), lse, vl);
    __riscv_vse32_v_f32m8(s + j, ExpProb(x, vl), vl);
    j += int32_t(vl);
  }
}

void sattn_row_dscores_dv(const float* p, const float* g, const float* vt, int64_t vt_ld, int32_t D,
                          int32_t nk, float delta, float scale, float* ds, float* dvt, int64_t dvt_ld) {
  // One pass over a key strip serves both products with v: the strip of P stays in registers for
  // the rank-1 update of dV, the dot products dout . v_j accumulate in a second group, and each
  // feature's dout[d] is loaded once for both. Two features per trip halve the loop overhead.
  for (int32_t j = 0; j < nk;) {
    const size_t vl = __riscv_vsetvl_e32m8(size_t(nk - j));
    const vfloat32m8_t pv = __riscv_vle32_v_f32m8(p + j, vl);
    vfloat32m8_t acc = __riscv_vfmv_v_f_f32m8(0.0f, vl);
    const float* vc = vt + j;
    float* dc = dvt + j;
    int32_t d = 0;
    for (; d + 2 <= D; d += 2) {
      const float g0 = g[d], g1 = g[d + 1];
      acc = __riscv_vfmacc_vf_f32m8(acc, g0, __riscv_vle32_v_f32m8(vc + d * vt_ld, vl), vl);
      __riscv_vse32_v_f32m8(dc + d * dvt_ld, __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(dc + d * dvt_ld, vl), g0, pv, vl), vl);
      acc = __riscv_vfmacc_vf_f32m8(acc, g1, __riscv_vle32_v_f32m8(vc + (d + 1) * vt_ld, vl), vl);
      __riscv_vse32_v_f32m8(dc + (d + 1) * dvt_ld,
                            __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(dc + (d + 1) * dvt_ld, vl), g1, pv, vl), vl);
    }
    for (; d < D; ++d) {
      acc = __riscv_vfmacc_vf_f32m8(acc, g[d], __riscv_vle32_v_f32m8(vc + d * vt_ld, vl), vl);
      __riscv_vse32_v_f32m8(dc + d * dvt_ld, __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(dc + d * dvt_ld, vl), g[d], pv, vl), vl);
    }
    const vfloat32m8_t t = __riscv_vfmul_vv_f32m8(__riscv_vfsub_vf_f32m8(acc, delta, vl), pv, vl);
    __riscv_vse32_v_f32m8(ds + j, __riscv_vfmul_vf_f32m8(t, scale, vl), vl);
    j += int32_t(vl);
  }
}

void sattn_row_dq_dk(const float* ds, const float* q, const float* kt, int64_t kt_ld, int32_t D,
                     int32_t nk, float* dq, float* dkt, int64_t dkt_ld) {
  // Per feature d: the products ds * kt[d] accumulate along keys in one register group and one
  // reduction (started from dq[d]) folds them; the same loaded strip of ds feeds the rank-1 update
  // of dK. When ds fits one group (nk <= VLMAX) it is loaded once for all features.
  const size_t vlmax = __riscv_vsetvlmax_e32m8();
  const size_t n = size_t(nk);
  if (n <= vlmax) {
    const vfloat32m8_t dsv = __riscv_vle32_v_f32m8(ds, n);
    for (int32_t d = 0; d < D; ++d) {
      const vfloat32m8_t prod = __riscv_vfmul_vv_f32m8(dsv, __riscv_vle32_v_f32m8(kt + d * kt_ld, n), n);
      const vfloat32m1_t start = __riscv_vfmv_s_f_f32m1(dq[d], 1);
      dq[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(prod, start, n));
      float* dk = dkt + d * dkt_ld;
      __riscv_vse32_v_f32m8(dk, __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(dk, n), q[d], dsv, n), n);
    }
    return;
  }
  for (int32_t d = 0; d < D; ++d) {
    const float qd = q[d];
    const float* kr = kt + d * kt_ld;
    float* dk = dkt + d * dkt_ld;
    vfloat32m8_t part = __riscv_vfmv_v_f_f32m8(0.0f, vlmax);
    for (size_t j = 0; j < n;) {
      const size_t vl = __riscv_vsetvl_e32m8(n - j);
      const vfloat32m8_t dsv = __riscv_vle32_v_f32m8(ds + j, vl);
      part = __riscv_vfmacc_vv_f32m8_tu(part, dsv, __riscv_vle32_v_f32m8(kr + j, vl), vl);
      __riscv_vse32_v_f32m8(dk + j, __riscv_vfmacc_vf_f32m8(__riscv_vle32_v_f32m8(dk + j, vl), qd, dsv, vl), vl);
      j += vl;
    }
    const vfloat32m1_t start = __riscv_vfmv_s_f_f32m1(dq[d], 1);
    dq[d] = __riscv_vfmv_f_s_f32m1_f32(__riscv_vfredusum_vs_f32m8_f32m1(part, start, vlmax));
  }
}

void sattn_drain_f32(float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D, float* dst,
                     int64_t dst_ld) {
  for (int32_t d = 0; d < D; ++d) {
    float* s = src + d * src_ld;
    float* o = dst + d * dst_ld;
    for (int32_t j = 0; j < n;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n - j));
      __riscv_vse32_v_f32m8(o + j, __riscv_vfadd_vv_f32m8(__riscv_vle32_v_f32m8(o + j, vl), __riscv_vle32_v_f32m8(s + j, vl), vl), vl);
      __riscv_vse32_v_f32m8(s + j, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
      j += int32_t(vl);
    }
    for (int32_t j = n; j < n_pad;) {
      const size_t vl = __riscv_vsetvl_e32m8(size_t(n_pad - j));
      __riscv_vse32_v_f32m8(s + j, __riscv_vfmv_v_f_f32m8(0.0f, vl), vl);
      j += int32_t(vl);
    }
  }
}

}  // extern "C"
