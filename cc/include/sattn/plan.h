// The block plan: the block-sparse (BSR/CSR) layout every compiled backend consumes.
// Byte-level layout and file format: docs/bsr.md (the single source of truth).
#ifndef SATTN_PLAN_H_
#define SATTN_PLAN_H_

#include <cstdint>
#include <vector>

#include "sattn/spec.h"

namespace sattn {

// Rows of the plan are (plan_b, plan_h, query block); specs whose mask does not depend on the
// data (Dense, SlidingWindow, BigBird) are planned once (plan_b = plan_h = 1) and broadcast;
// data-dependent specs (BlockTopK, TopKPerQuery) have plan_b = B, plan_h = Hq.
//
// Query block a covers absolute positions [a*block, (a+1)*block) intersected with the query
// positions [Lk-Lq, Lk); row index r = a - q_block_begin. Key block c covers [c*block, ...) ∩ [0, Lk).
struct BlockPlan {
  int32_t block = 64;          // tile edge, both for queries and keys
  int32_t B = 0, Hq = 0, Lq = 0, Lk = 0;
  int32_t plan_b = 1, plan_h = 1;
  int32_t q_block_begin = 0;   // (Lk - Lq) / block
  int32_t n_q_blocks = 0;      // ceil(Lk / block) - q_block_begin
  int32_t n_k_blocks = 0;      // ceil(Lk / block)
  int32_t words_per_row = 1;   // ceil(block / 64): uint64 words per bitmap row
  // CSR over rows (plan_b, plan_h, r) in row-major order: entries row_ptr[row] .. row_ptr[row+1].
  std::vector<int32_t> row_ptr;   // plan_b*plan_h*n_q_blocks + 1
  std::vector<int32_t> col_idx;   // key block of each entry, ascending within a row
  // -1: every in-range (query, key) pair of the block is visible.
  // m >= 0: bitmaps[m*block*words_per_row ...] holds block rows of words_per_row words; bit c of
  // row i (word c/64, bit c%64) says whether key c of the block is visible to query i.
  std::vector<int32_t> mask_idx;
  std::vector<uint64_t> bitmaps;

  int64_t rows() const { return int64_t(plan_b) * plan_h * n_q_blocks; }
  int64_t nnz() const { return int64_t(col_idx.size()); }
  int64_t row_of(int32_t b, int32_t h, int32_t r) const {
    return (int64_t(plan_b == 1 ? 0 : b) * plan_h + (plan_h == 1 ? 0 : h)) * n_q_blocks + r;
  }
  const uint64_t* bitmap(int32_t m) const {
    return bitmaps.data() + int64_t(m) * block * words_per_row;
  }
  // Number of visible (query, key) pairs over all B*Hq heads: the "kept entries" of the FLOP count.
  int64_t VisiblePairs() const;
};

struct PlanOptions {
  // Tile edge for specs that have no block of their own (Dense, SlidingWindow, TopKPerQuery).
  // BlockTopK and BigBird always use spec.block.
  int32_t tile = 64;
  // Softmax scale used by data-dependent selection; <= 0 means 1/sqrt(D).
  double scale = 0.0;
  int32_t num_threads = 0;  // 0: hardware concurrency
};

// Builds the plan. q and k are float32, shaped as in `shape`; they are read only by
// data-dependent specs (BlockTopK scores, TopKPerQuery) and may be null otherwise.
// Scores are computed in float64 (docs/contract.md), so every target selects the same blocks.
Status BuildPlan(const Spec& spec, const Shape& shape, const float* q, const float* k,
                 const PlanOptions& options, BlockPlan* plan);

// Checks a plan's internal consistency (sizes, ascending in-range indices, mask indices).
// Every consumer that reads a plan from outside (files, descriptors) calls this first.
Status ValidatePlan(const BlockPlan& plan);

}  // namespace sattn

#endif  // SATTN_PLAN_H_
