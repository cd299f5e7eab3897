/* sattn RISC-V kernels: one C ABI, three builds.
 *
 * Every function here has three implementations built from the same algorithm and data layout:
 *   rvv_kernels.cc       RVV 1.0 intrinsics, vector-length agnostic (-march=rv64gcv),
 *   ../baselines/plain_kernels.c  plain C, built twice: scalar (-march=rv64gc) and left to clang's
 *                        auto-vectoriser (-march=rv64gcv -O3).
 * A runner links exactly one of them, so the driver (rvv/driver.cc, built for plain rv64gc) is
 * byte-for-byte the same code in all three runners and instruction counts compare kernels only.
 *
 * Layout conventions (docs/backends/rvv.md):
 *  - Kept key blocks of a plan row are gathered *transposed*: kt[d * ld + j] is feature d of gathered
 *    key slot j, so score and P.V loops run along keys, the long dimension (up to 512 slots), and
 *    VLEN growth shortens every loop.
 *  - Each kept block occupies exactly `block` slots; slots past Lk are zero and masked off.
 *  - Masks are little-endian bit strings, bit j (byte j/8, bit j%8) = slot j visible: the layout
 *    of an RVV mask register, so `vlm.v` loads them directly. Buffers are padded by 8 bytes.
 */
#ifndef SATTN_RVV_KERNELS_H_
#define SATTN_RVV_KERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "rvv", "scalar" or "autovec": which build this is. */
const char* sattn_kernel_variant(void);

/* Transposing gathers of `n` rows (row stride `src_ld` elements) of width D:
 * dst[d * dst_ld + j] = src[j * src_ld + d] for j < n, and 0 for n <= j < n_pad. */
void sattn_gather_t_f32(const float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                        float* dst, int64_t dst_ld);
/* Same from bfloat16 storage (upper 16 bits of an IEEE float), widened to float32 exactly. */
void sattn_gather_t_bf16(const uint16_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                         float* dst, int64_t dst_ld);
void sattn_gather_t_i8(const int8_t* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D,
                       int8_t* dst, int64_t dst_ld);
/* y[i] = float(x[i]) for bfloat16 x. */
void sattn_bf16_to_f32(const uint16_t* x, int32_t n, float* y);

/* One query row against nk gathered key slots:
 * s[j] = scale * sum_d q[d] * kt[d * kt_ld + j] where mask bit j is set, else -inf.
 * Returns max_j s[j] (-inf if no bit is set). */
float sattn_row_scores_f32(const float* q, const float* kt, int64_t kt_ld, int32_t D, int32_t nk,
                           float scale, const uint8_t* mask, float* s);
/* int8 variant: q and kt hold codes in [-127, 127] (the quantisers' range; -128 is never used, so
 * two products sum within int16); the dot products are exact int32 sums of int8*int8; then
 * s[j] = float(dot) * qscale * kscale[j] (qscale carries the softmax scale and the query block's
 * quantisation scale, kscale[j] the scale of slot j's key block). */
float sattn_row_scores_i8(const int8_t* q, const int8_t* kt, int64_t kt_ld, int32_t D, int32_t nk,
                          float qscale, const float* kscale, const uint8_t* mask, float* s);

/* Symmetric int8 quantisation of n floats: returns scale = max|x| / 127 (1 if all zero) and
 * writes x8 = clamp(round-half-even(x / scale), -127, 127). Bit-identical in every build (true
 * division and round-to-nearest-even, as rvv/driver.cc's QuantizeRowsI8). */
float sattn_quantize_i8(const float* x, int64_t n, int8_t* x8);

/* In place: s[j] = exp(s[j] - m) (0 where s[j] = -inf). Returns the sum. m must be finite. */
float sattn_row_exp_sum(float* s, int32_t nk, float m);

/* Online-softmax P.V update: acc[d] = alpha * acc[d] + sum_j p[j] * vt[d * vt_ld + j]. */
void sattn_row_pv(const float* p, const float* vt, int64_t vt_ld, int32_t D, int32_t nk,
                  float alpha, float* acc);

/* Final online-softmax normalisation of one output row: o[d] *= inv. */
void sattn_row_normalize(float* o, int32_t D, float inv);

/* y[i] = exp(x[i]) with the kernels' exp (for its error test); x[i] <= 0. */
void sattn_exp_array(const float* x, int32_t n, float* y);

/* Block top-k selection (docs/contract.md, BlockTopK, score="mean"), float64 like the planner:
 * mean pooling: out[d * out_ld] = (sum_{i<n} double(x[i * ld + d])) / n, rows summed in order. */
void sattn_mean_pool_f64(const float* x, int64_t ld, int32_t n, int32_t D, double* out,
                         int64_t out_ld);
/* score[b] = scale * sum_d (qm[d] * kmt[d * kmt_ld + b]) for b < n, products and sums rounded
 * separately in d order (bit-identical to the C++ planner). */
void sattn_block_scores_f64(const double* qm, const double* kmt, int64_t kmt_ld, int32_t D,
                            int32_t n, double scale, double* score);
/* score="max": for each key block c (keys [c * blk, min((c + 1) * blk, nk))),
 * bmax[c] = max(bmax[c], max_{i < nq, j} sum_d double(q[i * q_ld + d]) * double(kt[d * kt_ld + j]))
 * where max is IEEE maximumNumber (NaN dot products are ignored; NaN only if all are NaN, the
 * contract's order with NaN below every number)
 * over nq query rows: every product exact in float64, sums in d order, bit-identical to the
 * planner's float64 dot products. tmp: 2 * nk doubles of scratch (dot products of up to two rows;
 * the RVV build takes query rows in pairs, so each key vector it loads serves two rows). */
void sattn_block_max_dots_f64(const float* q, int64_t q_ld, int32_t nq, const float* kt, int64_t kt_ld,
                              int32_t D, int32_t nk, int32_t blk, double* tmp, double* bmax);
/* Marks in chosen[] the `extra` highest score[b] among b < n with cand[b] != 0, NaN below every
 * number, ties (NaN with NaN too) to the lower b (the planner's order). chosen[] must be zero on
 * entry. */
void sattn_topk_select(const double* score, const uint8_t* cand, int32_t n, int32_t extra,
                       uint8_t* chosen);

/* ---- Backward (docs/backends/rvv.md, "Backward"). With P = exp(S - lse) over the visible
 * slots of one query row i against a chunk of gathered key slots (kt, vt as above, nk slots) and
 * delta_i = dout_i . out_i - dlse_i:
 *   ds_j = scale * P_j * (dout_i . v_j - delta_i),  dq_i += sum_j ds_j k_j,
 *   dvt[:, j] += P_j dout_i,  dkt[:, j] += ds_j q_i   (chunk accumulators, transposed like kt). */

/* sum_{i<n} a[i] * b[i] in float32 (order unspecified). */
float sattn_dot_f32(const float* a, const float* b, int32_t n);

/* In place over scores from sattn_row_scores_f32: s[j] = exp(min(s[j] - lse, 0)), and 0 where
 * s[j] - lse < -87 or is NaN (masked slots, s = -inf, give 0). lse must be finite. */
void sattn_row_probs(float* s, int32_t nk, float lse);

/* ds[j] = scale * p[j] * (sum_d g[d] * vt[d * vt_ld + j] - delta) and
 * dvt[d * dvt_ld + j] += g[d] * p[j] for j < nk, d < D (g: the row's dout). */
void sattn_row_dscores_dv(const float* p, const float* g, const float* vt, int64_t vt_ld, int32_t D,
                          int32_t nk, float delta, float scale, float* ds, float* dvt, int64_t dvt_ld);

/* dq[d] += sum_j ds[j] * kt[d * kt_ld + j] and dkt[d * dkt_ld + j] += q[d] * ds[j]. */
void sattn_row_dq_dk(const float* ds, const float* q, const float* kt, int64_t kt_ld, int32_t D,
                     int32_t nk, float* dq, float* dkt, int64_t dkt_ld);

/* Empties a chunk accumulator into a transposed gradient: for d < D,
 * dst[d * dst_ld + j] += src[d * src_ld + j] for j < n, then src[d * src_ld + j] = 0 for j < n_pad. */
void sattn_drain_f32(float* src, int64_t src_ld, int32_t n, int32_t n_pad, int32_t D, float* dst,
                     int64_t dst_ld);

#ifdef __cplusplus
}
#endif

#endif /* SATTN_RVV_KERNELS_H_ */
