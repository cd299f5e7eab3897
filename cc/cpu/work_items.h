// The forward's work decomposition, shared by the fp32 (attention.cc) and quantized
// (attention_quant.cc) drivers: one work item per (batch, query head, query block), its cost, the
// order items are handed to threads, and the key-split slices decode uses when items are fewer
// than threads.
#ifndef SATTN_CC_CPU_WORK_ITEMS_H_
#define SATTN_CC_CPU_WORK_ITEMS_H_

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cc/cpu/kernels.h"
#include "sattn/plan.h"

namespace sattn {
namespace cpu {
namespace internal {

struct WorkItems {
  std::vector<int64_t> row;    // plan row of each item
  std::vector<int64_t> order;  // items by decreasing cost, ties by index
  int64_t total_cost = 0;      // sum over items of entries * blk * rows + rows
  int64_t entry_rows = 0;      // sum over items of entries * rows
  int64_t max_entries = 0;     // the longest plan row
};

// Cost of an item: kept entries x valid query rows. Items go out heaviest first, so a few heavy
// rows (global blocks, dense diagonals) start early and the light ones fill the gaps at the end.
inline WorkItems ForwardWorkItems(const BlockPlan& plan, int64_t B, int64_t Hq, int64_t Lq, int64_t Lk,
                                  int64_t blk) {
  const int64_t n_items = B * Hq * plan.n_q_blocks;
  const int64_t q_first = Lk - Lq;
  WorkItems w;
  w.row.resize(size_t(n_items));
  std::vector<int64_t> item_cost(static_cast<size_t>(n_items));
  for (int64_t it = 0; it < n_items; ++it) {
    const int32_t r = int32_t(it % plan.n_q_blocks);
    const int64_t bh = it / plan.n_q_blocks;
    const int64_t row = plan.row_of(int32_t(bh / Hq), int32_t(bh % Hq), r);
    const int64_t a = r + plan.q_block_begin;
    const int64_t rows = std::min((a + 1) * blk, Lk) - std::max(a * blk, q_first);
    const int64_t entries = plan.row_ptr[row + 1] - plan.row_ptr[row];
    w.row[size_t(it)] = row;
    w.max_entries = std::max(w.max_entries, entries);
    item_cost[size_t(it)] = entries * blk * rows + rows;
    w.total_cost += item_cost[size_t(it)];
    w.entry_rows += entries * rows;
  }
  w.order.resize(size_t(n_items));
  std::iota(w.order.begin(), w.order.end(), 0);
  std::sort(w.order.begin(), w.order.end(), [&](int64_t x, int64_t y) {
    return item_cost[size_t(x)] != item_cost[size_t(y)] ? item_cost[size_t(x)] > item_cost[size_t(y)] : x < y;
  });
  return w;
}

// Key-split decode: with fewer work items than threads (decode with few heads), each item's plan
// entries are cut into this many slices, run as separate units and merged by LSE after. Results
// then depend on the thread count in the last bits (another summation order).
inline int64_t KeySplits(int threads, int64_t n_items, int64_t max_entries) {
  int64_t splits = 1;
  if (threads > 1 && n_items < threads) splits = std::min<int64_t>((2 * threads + n_items - 1) / n_items, max_entries);
  return std::max<int64_t>(splits, 1);
}

// Floats one slice's state takes: o (blk x Dp), m and l (blk each).
inline int64_t PartialFloats(int64_t blk, int64_t Dp) { return blk * Dp + 2 * blk; }

// The slices of every item over `base` (n_items * splits * PartialFloats floats), item-major.
inline std::vector<Partial> SplitPartials(const BlockPlan& plan, const std::vector<int64_t>& item_row, int64_t splits,
                                          int64_t blk, int64_t Dp, float* base) {
  const int64_t per = PartialFloats(blk, Dp), n_items = int64_t(item_row.size());
  std::vector<Partial> parts(size_t(n_items * splits));
  for (int64_t it = 0; it < n_items; ++it) {
    const int64_t row = item_row[size_t(it)];
    const int64_t e0 = plan.row_ptr[row], cnt = plan.row_ptr[row + 1] - e0;
    for (int64_t k = 0; k < splits; ++k) {
      Partial& pa = parts[size_t(it * splits + k)];
      pa.e_begin = int32_t(e0 + cnt * k / splits);
      pa.e_end = int32_t(e0 + cnt * (k + 1) / splits);
      pa.o = base + (it * splits + k) * per;
      pa.m = pa.o + blk * Dp;
      pa.l = pa.m + blk;
    }
  }
  return parts;
}

}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CC_CPU_WORK_ITEMS_H_
