// The RISC-V attention driver: walks a BlockPlan and calls the kernels of kernels.h (whichever
// build is linked: RVV, scalar or auto-vectorised). Portable C++17, built for plain rv64gc so it
// is the same code in every runner; only the kernels differ.
#ifndef SATTN_RVV_DRIVER_H_
#define SATTN_RVV_DRIVER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "rvv/region.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"
#include "sattn/spec.h"

namespace sattn {
namespace rvv {

// Storage type of q, k, v inside the kernel (compute is always float32, scores int32 for int8).
enum class DType { kF32 = 0, kBF16 = 1, kI8 = 2 };
bool ParseDType(const std::string& name, DType* out);
const char* DTypeName(DType t);

struct RunOptions {
  DType dtype = DType::kF32;
  // Most gathered key slots one online-softmax step handles (rounded to whole blocks, at least
  // one block): bounds scratch memory independently of L.
  int32_t chunk_keys = 512;
  // Execute the QEMU plugin's region markers (region.h) around the compute only: after scratch
  // allocation and bf16/int8 storage conversion, before returning.
  bool mark_region = false;
};

// What the driver did, for the result file's counters (the QEMU plugin counts instructions).
struct RunStats {
  int64_t visible_pairs = 0;    // (query, key) pairs with a set mask bit, over all heads
  int64_t computed_slots = 0;   // (query, key slot) scores computed, padding and masked included
  int64_t chunks = 0;           // online-softmax steps (per query block and head)
  int64_t gathered_bytes = 0;   // K and V bytes read by the transposing gathers
  int64_t empty_rows = 0;       // query rows with no visible key (output 0, lse -inf)
};

// Runs attention over problem.plan. out (B,Hq,Lq,D) and lse (B,Hq,Lq) are resized.
// For kI8, k is quantised per key block (QuantizeRowsI8 over rows [c*block, ...) of each kv head)
// and q per plan query block (rows of positions [a*block, (a+1)*block) ∩ [Lk-Lq, Lk)); v stays
// float32. For kBF16, q, k, v are rounded with FloatToBF16. Tests apply the same functions to get
// the exact kernel inputs for their double-precision check.
Status RunAttention(const Problem& problem, const RunOptions& options, std::vector<float>* out,
                    std::vector<float>* lse, RunStats* stats);

// The backward of RunAttention over the same plan (docs/backends/rvv.md, "Backward"): with
// P_ij = exp(S_ij - lse_i) on the visible pairs and delta_i = dout_i . out_i - dlse_i,
//   dv_j = sum_i P_ij dout_i,  dS_ij = P_ij (dout_i . v_j - delta_i),
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,
// dk, dv summed over each query group (GQA). Query blocks are walked as in the forward (chunks of
// kept key blocks, gathered transposed once per chunk); each chunk's dK/dV contributions collect
// in transposed scratch and are added to per-(batch, kv head) transposed accumulators in a fixed
// order, so the result is deterministic. Rows whose lse is not finite (-inf: no visible key; NaN:
// a poisoned forward row) contribute nothing.
struct BackwardInputs {
  const std::vector<float>* out = nullptr;   // (B,Hq,Lq,D), the forward's output
  const std::vector<float>* lse = nullptr;   // (B,Hq,Lq), the forward's lse
  const std::vector<float>* dout = nullptr;  // (B,Hq,Lq,D)
  const std::vector<float>* dlse = nullptr;  // (B,Hq,Lq), or null: no gradient through lse
};

// dq (B,Hq,Lq,D), dk and dv (B,Hkv,Lk,D) and delta (B,Hq,Lq) are resized. options.dtype: kF32 or
// kBF16 (q, k, v rounded with FloatToBF16 as in the forward; out, dout, dlse stay float32);
// options.mark_region puts the region markers around the backward compute only.
Status RunAttentionBackward(const Problem& problem, const BackwardInputs& in, const RunOptions& options,
                            std::vector<float>* dq, std::vector<float>* dk, std::vector<float>* dv,
                            std::vector<float>* delta, RunStats* stats);

// bfloat16 storage: round-to-nearest-even of the upper 16 bits (NaN kept quiet).
uint16_t FloatToBF16(float x);
float BF16ToFloat(uint16_t h);

// Symmetric int8 quantisation of n rows of width D (row stride D): returns
// scale = max|x| / 127 (1 if all zero) and writes x8 = round-half-even(x / scale).
float QuantizeRowsI8(const float* x, int64_t n, int32_t D, int8_t* x8);

// The block top-k selection of the plan row (b, h, r) computed with the kernels (mean pooling,
// block scores, top-k) instead of the C++ planner: kept[b][h][r] = ascending key blocks.
// Must equal BuildPlan's selection (tested in rvv/selection_test.cc).
Status SelectBlockTopK(const Spec& spec, const Shape& shape, const float* q, const float* k,
                       double scale, int32_t q_block_begin, int32_t n_q_blocks,
                       std::vector<std::vector<int32_t>>* kept_per_row);

// Compares the kernels' selection with the plan's key blocks, row by row. Returns the number of
// plan rows that differ. mark_region: the selection of every (batch, head) runs between the
// instruction-count region markers (the comparison after them), so the plugin counts the block
// top-k selection on its own (the runner's --region selection).
int64_t CountSelectionMismatches(const Problem& problem, Status* status, bool mark_region = false);

}  // namespace rvv
}  // namespace sattn

#endif  // SATTN_RVV_DRIVER_H_
