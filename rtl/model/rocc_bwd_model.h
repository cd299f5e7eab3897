// The accelerator's backward pass (ATTN_BWD): what the host prepares (int8 dO with one scale per
// query block, per-row y-domain LSE and delta, per-query-block multipliers, the transposed plan),
// the bit-exact golden model of the command's int64 outputs, and their conversion to float.
// The RTL must match GoldenBwd() bit for bit; docs/backends/rocc.md ("Backward") describes the
// formats and the measured error against float64 autograd.
#ifndef SATTN_RTL_MODEL_ROCC_BWD_MODEL_H_
#define SATTN_RTL_MODEL_ROCC_BWD_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "rocc_model.h"

namespace sattn {
namespace rocc {

// |dP - delta| is clamped to this many int units before it multiplies P (the host keeps delta
// within 2^22 units by coarsening a query block's dO scale, so only a saturated row reaches it).
constexpr int32_t kBwdDiffMax = (1 << 23) - 1;

struct BwdProblem {
  Problem fwd;                        // the forward's quantised q, k, v, multipliers and plan
  std::vector<int8_t> dout;           // [B][Hq][head_rows][D], like q
  std::vector<int32_t> rs;            // [B][Hq][head_rows][2]: (L, delta)
  std::vector<uint32_t> emul;         // [B][Hq][n_k_blocks][4]: (qmul, dkmul, dvmul, 0)
  std::vector<int32_t> t_row_ptr;     // [B*Hkv*n_k_blocks + 1]
  std::vector<int32_t> t_ent;         // [t_nnz][4]: (query head, query block, mask_idx, ds tile)
  std::vector<double> do_scale;       // [B][Hq][n_k_blocks]
  double scale = 0;                   // the attention's score scale
  double sdo_max = 0, dk_max = 0, sk_max = 0;  // references of dvmul, dkmul and kmul

  int64_t t_nnz() const { return int64_t(t_ent.size() / 4); }
  int64_t n_ds_tiles() const { return fwd.replicas() * fwd.plan.nnz(); }
  int64_t ds_tile_bytes() const { return 2 * int64_t(fwd.block) * fwd.block + 16; }
  int64_t dq_elems() const { return fwd.out_elems(); }
  int64_t dkv_elems() const { return int64_t(fwd.B) * fwd.Hkv * fwd.head_rows() * fwd.D; }
};

struct BwdOutput {
  std::vector<int16_t> ds;            // [tiles][block*block] 9-bit mantissas
  std::vector<int32_t> ds_shift;      // [tiles]
  std::vector<int64_t> dq, dk, dv;    // accumulators in the descriptor's layouts
};

// Builds the backward problem from the forward's `fwd` (Quantize of the same q, k, v and plan),
// the forward's float outputs out (B,Hq,Lq,D0) and lse (B,Hq,Lq), and dout (B,Hq,Lq,D0), dlse
// (B,Hq,Lq, or null). Returns "" or an error naming the argument.
std::string QuantizeBwd(const Problem& fwd, const float* out, const float* lse, const float* dout,
                        const float* dlse, double scale, BwdProblem* bp);

// The transposed plan of `fwd.plan` expanded over (b, kv head): for each key block c of
// (b, g), the entries (query head h of g's group, query block a, mask_idx, replica*nnz + e).
void TransposePlan(const Problem& fwd, std::vector<int32_t>* t_row_ptr, std::vector<int32_t>* t_ent);

// ATTN_BWD's bit-exact outputs.
BwdOutput GoldenBwd(const BwdProblem& bp);

// Accumulators -> float32 dq (B,Hq,Lq,D0), dk and dv (B,Hkv,Lk,D0).
void DequantizeBwd(const BwdProblem& bp, const BwdOutput& o, float* dq, float* dk, float* dv);

// Saturating int64 addition (the accumulators' rule in the RTL).
int64_t SatAdd(int64_t a, int64_t b);

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_MODEL_ROCC_BWD_MODEL_H_
