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
