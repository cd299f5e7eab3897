// The RoCC accelerator's number formats, defined once: int8 quantisation of Q/K/V, the fixed-point
// score/softmax/output datapath as a bit-exact golden model, and the conversion of accelerator
// outputs back to float. The RTL (rtl/hw) must match Golden() bit for bit; docs/backends/rocc.md
// describes the formats and the measured error against the float64 reference.
#ifndef SATTN_RTL_MODEL_ROCC_MODEL_H_
#define SATTN_RTL_MODEL_ROCC_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sattn/plan.h"

namespace sattn {
namespace rocc {

// Everything an attention descriptor points at, in the accelerator's memory layout. Buffers are
// indexed by absolute position (row p of a head is position p), padded to n_k_blocks*block rows
// and to D (a multiple of 16) columns; padding is zero.
struct Problem {
  int32_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0;
  int32_t D = 0;        // padded head dimension (multiple of 16)
  int32_t D_orig = 0;   // caller's head dimension
  int32_t block = 0, n_k_blocks = 0;
  BlockPlan plan;
  std::vector<int8_t> q, k, v;        // [B][H][n_k_blocks*block][D]
  std::vector<uint32_t> qmul;         // [B][Hq][n_k_blocks]
  std::vector<uint32_t> kmul;         // [B][Hkv][n_k_blocks]
  uint32_t score_shift = 0;
  std::vector<double> q_scale;        // [B][Hq][n_k_blocks]: Q = q_int * q_scale of its block
  std::vector<double> k_scale;        // [B][Hkv][n_k_blocks]
  std::vector<double> v_scale;        // [B][Hkv]: V = v_int * v_scale

  // The int8 inputs mapped back to float in the caller's layout (B,H,L,D_orig): what the
  // fixed-point datapath actually computes attention of (tests split quantisation error from
  // datapath error with these).
  void DequantizedInputs(std::vector<float>* q, std::vector<float>* k, std::vector<float>* v) const;

  int64_t head_rows() const { return int64_t(n_k_blocks) * block; }
  int64_t n_bitmaps() const { return int64_t(plan.bitmaps.size()) / (int64_t(block) * plan.words_per_row); }
  // Score-tile replicas: a broadcast plan row is used by several heads, each with its own scores.
  int64_t replicas() const {
    return int64_t(plan.plan_b == 1 ? B : 1) * (plan.plan_h == 1 ? Hq : 1);
  }
  int64_t out_elems() const { return int64_t(B) * Hq * head_rows() * D; }
  int64_t stats_elems() const { return int64_t(B) * Hq * head_rows() * 2; }
  int64_t score_elems() const { return replicas() * plan.nnz() * block * block; }
};

// What the accelerator writes: int16 output (Q8 of the V quantum) and per-row (max y, sum P).
struct Output {
  std::vector<int16_t> out;     // [B][Hq][head_rows][D]
  std::vector<int32_t> stats;   // [B][Hq][head_rows][2]
};

// The same visibility re-expressed with tile edge T (a multiple of 16, at most 64) for plans whose
// block the accelerator cannot take (e.g. BlockTopK(block=8) or block=128). A layout conversion
// only: the selection is the planner's, pair for pair.
BlockPlan RetilePlan(const BlockPlan& plan, int32_t T);

// The tile edge the accelerator runs `block` at: block itself when it is a multiple of 16 up to
// MAX_BLK, else the nearest such edge.
int32_t AcceleratorTile(int32_t block);

// Static scales (the clips of a sattn.calibrate scales object): one clip per head, q[Hq],
// k[Hkv], v[Hkv]; every block of a head gets scale clip / 127 and values beyond the clip
// saturate at +-127. A null pointer keeps that tensor's dynamic scales (amax of each group).
struct StaticClips {
  const double* q = nullptr;
  const double* k = nullptr;
  const double* v = nullptr;
};

// Quantises float32 q (B,Hq,Lq,D0), k and v (B,Hkv,Lk,D0) for `plan` (retiled first when its
// block is not AcceleratorTile(block)), with dynamic scales or the given static clips. Returns
// "" or an error naming the argument.
std::string Quantize(const float* q, const float* k, const float* v, int32_t B, int32_t Hq,
                     int32_t Hkv, int32_t Lq, int32_t Lk, int32_t D0, double scale,
                     const BlockPlan& plan, Problem* prob, const StaticClips& clips = StaticClips());

// The fixed-point primitives the RTL implements (exposed for the per-module unit tests).
int32_t ScaleScore(int32_t s, uint32_t kq, uint32_t shift);  // clamp((s * kq) >>> shift)
uint8_t ExpWeight(int64_t d);                                 // 2^(-d/256) as 8-bit P, d >= 0
uint64_t Reciprocal(uint32_t sum);                            // floor(2^32 / sum), 0 for 0
int16_t Normalise(int32_t acc, uint64_t rc);                  // sat16((acc*rc + 2^23) >> 24)

// SOFTMAX_FUSED (and SPDOT_BSR followed by SPMM_BSR): bit-exact accelerator outputs.
Output Golden(const Problem& prob);
// SPDOT_BSR: the int32 score tiles [replica][nnz][block][block] (masked = INT32_MIN).
std::vector<int32_t> GoldenScores(const Problem& prob);

// Accelerator outputs -> float32 out (B,Hq,Lq,D_orig) and natural-log lse (B,Hq,Lq).
void Dequantize(const Problem& prob, const Output& o, float* out, float* lse);

// Straightforward float64 attention over the same plan (for tests of this module without the
// Python reference): out (B,Hq,Lq,D0), lse (B,Hq,Lq).
void ReferenceAttention(const float* q, const float* k, const float* v, int32_t B, int32_t Hq,
                        int32_t Hkv, int32_t Lq, int32_t Lk, int32_t D0, double scale,
                        const BlockPlan& plan, std::vector<double>* out, std::vector<double>* lse);

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_MODEL_ROCC_MODEL_H_
