// The shared block planner (docs/contract.md, docs/bsr.md): spec + shape (+ q, k for
// data-dependent specs) -> BlockPlan. Portable C++17; linked by the CPU, RVV and RoCC targets.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "sattn/plan.h"
#include "sattn/spec.h"
#include "cc/src/parallel.h"

namespace sattn {
namespace {

using internal::ParallelFor;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How the token rule treats a (query block, key block) pair.
enum class Cover { kNone, kAll, kPartial };

// Geometry of one plan: block ranges in absolute positions, clipped to the problem.
struct Geometry {
  int64_t block, Lq, Lk, q_first;  // q_first = Lk - Lq: position of query row 0
  int64_t p0(int64_t a) const { return std::max(a * block, q_first); }
  int64_t p1(int64_t a) const { return std::min((a + 1) * block, Lk) - 1; }
  int64_t j0(int64_t b) const { return b * block; }
  int64_t j1(int64_t b) const { return std::min((b + 1) * block, Lk) - 1; }
};

// Closed-form classification of a block pair under the token rule; kPartial may turn out to be
// all or nothing once the bitmap is computed exactly.
Cover ClassifyTokenRule(const Spec& s, const Geometry& g, int64_t a, int64_t b) {
  const int64_t p0 = g.p0(a), p1 = g.p1(a), j0 = g.j0(b), j1 = g.j1(b);
  if (s.causal && j0 > p1) return Cover::kNone;
  const bool causal_all = !s.causal || j1 <= p0;
  if (s.kind != SpecKind::kSlidingWindow) return causal_all ? Cover::kAll : Cover::kPartial;
  const int64_t gt = s.global_tokens;
  const int64_t span = int64_t(s.window) * s.dilation;
  const bool global_all = j1 < gt || p1 < gt;
  const bool window_all = s.dilation == 1 && p1 - j0 < span && j1 - p0 < span;
  if (causal_all && (global_all || window_all)) return Cover::kAll;
  const int64_t min_dist = std::max<int64_t>({0, j0 - p1, p0 - j1});
  const bool global_none = j0 >= gt && p0 >= gt;
  if (global_none && min_dist >= span) return Cover::kNone;
  return Cover::kPartial;
}

// Accumulates rows of the plan and deduplicates identical bitmaps.
class PlanBuilder {
 public:
  explicit PlanBuilder(BlockPlan* plan) : plan_(plan) {
    words_ = plan->words_per_row;
    per_mask_ = int64_t(plan->block) * words_;
  }

  // Stores `bits` (block * words_per_row words) and returns its mask index; -1 if all in-range
  // pairs are visible; -2 if none is.
  int32_t Intern(const std::vector<uint64_t>& bits, const Geometry& g, int64_t a, int64_t b) {
    const int64_t rows_lo = g.p0(a) - a * g.block, rows_hi = g.p1(a) - a * g.block;
    const int64_t cols = g.j1(b) - g.j0(b) + 1;
    bool any = false, all = true;
    for (int64_t r = rows_lo; r <= rows_hi; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const bool bit = (bits[r * words_ + c / 64] >> (c % 64)) & 1;
        any |= bit;
        all &= bit;
      }
    }
    if (!any) return -2;
    if (all) return -1;
    auto it = index_.find(bits);
    if (it != index_.end()) return it->second;
    const int32_t m = int32_t(index_.size());
    index_.emplace(bits, m);
    plan_->bitmaps.insert(plan_->bitmaps.end(), bits.begin(), bits.end());
    return m;
  }

  // Bitmap of a block pair from the closed-form token rule (rows/cols outside range stay 0).
  std::vector<uint64_t> TokenBitmap(const Spec& s, const Geometry& g, int64_t a, int64_t b) const {
    std::vector<uint64_t> bits(per_mask_, 0);
    for (int64_t p = g.p0(a); p <= g.p1(a); ++p) {
      for (int64_t j = g.j0(b); j <= g.j1(b); ++j) {
        if (TokenRuleVisible(s, p, j)) {
          const int64_t r = p - a * g.block, c = j - g.j0(b);
          bits[r * words_ + c / 64] |= uint64_t(1) << (c % 64);
        }
      }
    }
    return bits;
  }

  // Appends entry (b, mask) for a kept block pair under the token rule; skips invisible pairs.
  void AddTokenRuleEntry(const Spec& s, const Geometry& g, int64_t a, int64_t b,
                         std::vector<std::pair<int32_t, int32_t>>* row) {
    const Cover c = ClassifyTokenRule(s, g, a, b);
    if (c == Cover::kNone) return;
    int32_t m = -1;
    if (c == Cover::kPartial) {
      const auto key = std::make_pair(a, b);
      auto it = pair_cache_.find(key);
      if (it == pair_cache_.end()) it = pair_cache_.emplace(key, Intern(TokenBitmap(s, g, a, b), g, a, b)).first;
      m = it->second;
    }
    if (m == -2) return;
    row->emplace_back(int32_t(b), m);
  }

  void EndRow(std::vector<std::pair<int32_t, int32_t>>* row) {
    std::sort(row->begin(), row->end());
    for (auto& e : *row) {
      plan_->col_idx.push_back(e.first);
      plan_->mask_idx.push_back(e.second);
    }
    plan_->row_ptr.push_back(int32_t(plan_->col_idx.size()));
    row->clear();
  }

 private:
  BlockPlan* plan_;
  int64_t words_, per_mask_;
  std::map<std::vector<uint64_t>, int32_t> index_;
  std::map<std::pair<int64_t, int64_t>, int32_t> pair_cache_;
};

// Candidate key blocks of query block a for the rule-based specs (a superset of the visible ones),
// so planning a sliding window costs O(L) rather than O(L^2).
std::vector<int64_t> CandidateBlocks(const Spec& s, const Geometry& g, int64_t a, int64_t nkb) {
  std::vector<int64_t> out;
  if (s.kind != SpecKind::kSlidingWindow || g.p0(a) < s.global_tokens) {
    out.resize(nkb);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  const int64_t span = int64_t(s.window) * s.dilation;
  const int64_t lo = std::max<int64_t>(0, (g.p0(a) - span + 1) / g.block);
  const int64_t hi = std::min<int64_t>(nkb - 1, (g.p1(a) + span - 1) / g.block);
  const int64_t gb = std::min<int64_t>(CeilDiv(s.global_tokens, g.block), nkb);
  for (int64_t b = 0; b < std::min(gb, lo); ++b) out.push_back(b);
  for (int64_t b = lo; b <= hi; ++b) out.push_back(b);
  return out;
}

// BigBird: the random blocks of query block a (docs/contract.md, "BigBird random blocks").
std::vector<int64_t> BigBirdRandom(const Spec& s, int64_t a, int64_t nkb,
                                   const std::vector<char>& already) {
  std::vector<int64_t> avail;
  const int64_t last = s.causal ? std::min(a, nkb - 1) : nkb - 1;
  for (int64_t b = 0; b <= last; ++b)
    if (!already[b]) avail.push_back(b);
  const int64_t n = std::min<int64_t>(s.random_blocks, int64_t(avail.size()));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t left = uint64_t(avail.size()) - uint64_t(i);
    const int64_t j = i + int64_t(BigBirdMix(s.seed, uint64_t(a), uint64_t(i)) % left);
    std::swap(avail[i], avail[j]);
  }
  avail.resize(n);
  return avail;
}

void PlanStatic(const Spec& s, const Geometry& g, BlockPlan* plan) {
  PlanBuilder builder(plan);
  std::vector<std::pair<int32_t, int32_t>> row;
  const int64_t nkb = plan->n_k_blocks;
  std::vector<char> kept(nkb);
  for (int64_t r = 0; r < plan->n_q_blocks; ++r) {
    const int64_t a = r + plan->q_block_begin;
    if (s.kind == SpecKind::kBigBird) {
      std::fill(kept.begin(), kept.end(), 0);
      for (int64_t b = 0; b < nkb; ++b)
        kept[b] = std::llabs(a - b) <= s.window_blocks / 2 || b < s.global_blocks || a < s.global_blocks;
      for (int64_t b : BigBirdRandom(s, a, nkb, kept)) kept[b] = 1;
      for (int64_t b = 0; b < nkb; ++b)
        if (kept[b]) builder.AddTokenRuleEntry(s, g, a, b, &row);
    } else {
      for (int64_t b : CandidateBlocks(s, g, a, nkb)) builder.AddTokenRuleEntry(s, g, a, b, &row);
    }
    builder.EndRow(&row);
  }
}

// Mean-pooled rows [lo, hi] of a (L, D) float matrix, in float64, summed in row order.
std::vector<double> MeanPool(const float* x, int64_t D, int64_t lo, int64_t hi) {
  std::vector<double> m(D, 0.0);
  for (int64_t i = lo; i <= hi; ++i)
    for (int64_t d = 0; d < D; ++d) m[d] += double(x[i * D + d]);
  const double n = double(hi - lo + 1);
  for (auto& v : m) v /= n;
  return m;
}

double Dot(const double* x, const double* y, int64_t D) {
  double acc = 0.0;
  for (int64_t d = 0; d < D; ++d) acc += x[d] * y[d];
  return acc;
}

// The selection order (docs/contract.md, "Non-finite inputs"): higher scores first, a NaN below
// every number (-inf included), equal scores (NaN with NaN too) to the lower index. A strict
// total order, so std::sort and friends stay well defined whatever the scores hold.
bool Outranks(double sx, int64_t x, double sy, int64_t y) {
  const bool nx = std::isnan(sx), ny = std::isnan(sy);
  if (nx || ny) return nx == ny ? x < y : ny;
  return sx > sy || (sx == sy && x < y);
}

// The maximum under that order: NaN only when every value is NaN (IEEE maximumNumber).
double MaxNumber(double best, double x) { return std::isnan(best) || x > best ? x : best; }

double DotF(const float* x, const float* y, int64_t D) {
  double acc = 0.0;
  for (int64_t d = 0; d < D; ++d) acc += double(x[d]) * double(y[d]);
  return acc;
}

// BlockTopK selection for one (batch, query head): returns, per query block row, the kept key
// blocks ascending.
std::vector<std::vector<int32_t>> SelectBlockTopK(const Spec& s, const Shape& sh, const Geometry& g,
                                                  const BlockPlan& plan, const float* q,
                                                  const float* k, double scale) {
  const int64_t D = sh.D, nkb = plan.n_k_blocks;
  std::vector<std::vector<double>> kmean;
  if (s.score == BlockScore::kMean)
    for (int64_t b = 0; b < nkb; ++b) kmean.push_back(MeanPool(k, D, g.j0(b), g.j1(b)));
  const int64_t budget_keep = int64_t(std::ceil(s.keep * double(nkb)));
  std::vector<std::vector<int32_t>> rows(plan.n_q_blocks);
  std::vector<double> score(nkb);
  std::vector<int64_t> order;
  for (int64_t r = 0; r < plan.n_q_blocks; ++r) {
    const int64_t a = r + plan.q_block_begin;
    const int64_t q_lo = g.p0(a) - g.q_first, q_hi = g.p1(a) - g.q_first;  // query row indices
    const int64_t last = s.causal ? std::min(a, nkb - 1) : nkb - 1;     // eligible: b <= last
    std::vector<double> qmean;
    if (s.score == BlockScore::kMean) qmean = MeanPool(q, D, q_lo, q_hi);
    std::vector<char> forced(nkb, 0);
    int64_t n_forced = 0;
    for (int64_t b = 0; b <= last; ++b) {
      const int64_t d = a - b;
      const bool local = s.causal ? (d >= 0 && d < s.local_blocks) : std::llabs(d) < s.local_blocks;
      if (b < s.global_blocks || local) { forced[b] = 1; ++n_forced; }
    }
    const int64_t n_eligible = last + 1;
    const int64_t n = std::min(n_eligible, std::max(n_forced, budget_keep));
    order.clear();
    for (int64_t b = 0; b <= last; ++b) {
      if (forced[b]) continue;
      if (s.score == BlockScore::kMean) {
        score[b] = scale * Dot(qmean.data(), kmean[b].data(), D);
      } else {
        double best = NAN;
        for (int64_t i = q_lo; i <= q_hi; ++i)
          for (int64_t j = g.j0(b); j <= g.j1(b); ++j) best = MaxNumber(best, DotF(q + i * D, k + j * D, D));
        score[b] = scale * best;
      }
      order.push_back(b);
    }
    const int64_t extra = n - n_forced;
    auto better = [&](int64_t x, int64_t y) { return Outranks(score[x], x, score[y], y); };
    if (extra < int64_t(order.size()))
      std::partial_sort(order.begin(), order.begin() + extra, order.end(), better);
    auto& kept = rows[r];
    for (int64_t b = 0; b < nkb; ++b)
      if (forced[b]) kept.push_back(int32_t(b));
    for (int64_t i = 0; i < extra; ++i) kept.push_back(int32_t(order[i]));
    std::sort(kept.begin(), kept.end());
  }
  return rows;
}

// TopKPerQuery selection for one (batch, query head): per query block row, map key block ->
// bitmap of the selected keys.
std::vector<std::map<int32_t, std::vector<uint64_t>>> SelectTopKPerQuery(
    const Spec& s, const Shape& sh, const Geometry& g, const BlockPlan& plan, const float* q,
    const float* k) {
  const int64_t D = sh.D, words = plan.words_per_row;
  std::vector<std::map<int32_t, std::vector<uint64_t>>> rows(plan.n_q_blocks);
  std::vector<double> score(sh.Lk);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < sh.Lq; ++i) {
    const int64_t p = i + g.q_first;
    const int64_t last = s.causal ? p : sh.Lk - 1;
    idx.resize(last + 1);
    std::iota(idx.begin(), idx.end(), 0);
    for (int64_t j = 0; j <= last; ++j) score[j] = DotF(q + i * D, k + j * D, D);
    const int64_t n = std::min<int64_t>(s.topk, last + 1);
    auto better = [&](int64_t x, int64_t y) { return Outranks(score[x], x, score[y], y); };
    if (n < int64_t(idx.size())) std::nth_element(idx.begin(), idx.begin() + n, idx.end(), better);
    const int64_t a = p / g.block;
    auto& row = rows[a - plan.q_block_begin];
    const int64_t rr = p - a * g.block;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t j = idx[t], b = j / g.block, c = j - b * g.block;
      auto& bits = row[int32_t(b)];
      if (bits.empty()) bits.assign(size_t(g.block * words), 0);
      bits[rr * words + c / 64] |= uint64_t(1) << (c % 64);
    }
  }
  return rows;
}

void PlanDynamic(const Spec& s, const Shape& sh, const Geometry& g, const float* q, const float* k,
                 double scale, int threads, BlockPlan* plan) {
  const int64_t heads = int64_t(sh.B) * sh.Hq;
  const int64_t group = sh.Hq / sh.Hkv;
  // Selection per (batch, head) in parallel; assembly (bitmap interning) is sequential.
  std::vector<std::vector<std::vector<int32_t>>> topk(s.kind == SpecKind::kBlockTopK ? heads : 0);
  std::vector<std::vector<std::map<int32_t, std::vector<uint64_t>>>> perq(
      s.kind == SpecKind::kTopKPerQuery ? heads : 0);
  ParallelFor(heads, threads, [&](int64_t bh) {
    const int64_t b = bh / sh.Hq, h = bh % sh.Hq, hk = h / group;
    const float* qh = q + (b * sh.Hq + h) * int64_t(sh.Lq) * sh.D;
    const float* kh = k + (b * sh.Hkv + hk) * int64_t(sh.Lk) * sh.D;
    if (s.kind == SpecKind::kBlockTopK)
      topk[bh] = SelectBlockTopK(s, sh, g, *plan, qh, kh, scale);
    else
      perq[bh] = SelectTopKPerQuery(s, sh, g, *plan, qh, kh);
  });
  PlanBuilder builder(plan);
  std::vector<std::pair<int32_t, int32_t>> row;
  for (int64_t bh = 0; bh < heads; ++bh) {
    for (int64_t r = 0; r < plan->n_q_blocks; ++r) {
      const int64_t a = r + plan->q_block_begin;
      if (s.kind == SpecKind::kBlockTopK) {
        for (int32_t b : topk[bh][r]) builder.AddTokenRuleEntry(s, g, a, b, &row);
      } else {
        for (auto& [b, bits] : perq[bh][r]) {
          const int32_t m = builder.Intern(bits, g, a, b);
          if (m != -2) row.emplace_back(b, m);
        }
      }
      builder.EndRow(&row);
    }
    topk.empty() ? perq[bh].clear() : topk[bh].clear();
  }
}

}  // namespace

int64_t BlockPlan::VisiblePairs() const {
  const int64_t q_first = int64_t(Lk) - Lq;
  const Geometry g{block, Lq, Lk, q_first};
  int64_t total = 0;
  for (int64_t row = 0; row < rows(); ++row) {
    const int64_t a = row % n_q_blocks + q_block_begin;
    const int64_t rows_lo = g.p0(a) - a * block, rows_hi = g.p1(a) - a * block;
    for (int64_t e = row_ptr[row]; e < row_ptr[row + 1]; ++e) {
      const int64_t b = col_idx[e], cols = g.j1(b) - g.j0(b) + 1;
      if (mask_idx[e] < 0) {
        total += (rows_hi - rows_lo + 1) * cols;
        continue;
      }
      const uint64_t* bits = bitmap(mask_idx[e]);
      for (int64_t r = rows_lo; r <= rows_hi; ++r)
        for (int64_t c = 0; c < cols; ++c) total += (bits[r * words_per_row + c / 64] >> (c % 64)) & 1;
    }
  }
  return total * (int64_t(B) / plan_b) * (int64_t(Hq) / plan_h);
}

Status ValidatePlan(const BlockPlan& p) {
  auto bad = [](const std::string& field, const std::string& what) {
    return Status::Invalid("plan." + field + ": " + what);
  };
  if (p.block < 1 || p.block > 4096) return bad("block", "expected 1..4096, got " + std::to_string(p.block));
  if (p.B < 1 || p.Hq < 1 || p.Lq < 1 || p.Lk < p.Lq) return bad("shape", "expected B, Hq >= 1 and 1 <= Lq <= Lk");
  if (p.plan_b != 1 && p.plan_b != p.B) return bad("plan_b", "expected 1 or B");
  if (p.plan_h != 1 && p.plan_h != p.Hq) return bad("plan_h", "expected 1 or Hq");
  if (p.n_k_blocks != CeilDiv(p.Lk, p.block)) return bad("n_k_blocks", "expected ceil(Lk / block)");
  if (p.q_block_begin != (p.Lk - p.Lq) / p.block) return bad("q_block_begin", "expected (Lk - Lq) / block");
  if (p.n_q_blocks != p.n_k_blocks - p.q_block_begin) return bad("n_q_blocks", "expected n_k_blocks - q_block_begin");
  if (p.words_per_row != CeilDiv(p.block, 64)) return bad("words_per_row", "expected ceil(block / 64)");
  if (int64_t(p.row_ptr.size()) != p.rows() + 1) return bad("row_ptr", "expected rows + 1 entries");
  if (p.row_ptr[0] != 0) return bad("row_ptr", "expected row_ptr[0] == 0");
  if (p.mask_idx.size() != p.col_idx.size()) return bad("mask_idx", "expected one entry per col_idx entry");
  if (p.row_ptr.back() != int64_t(p.col_idx.size())) return bad("row_ptr", "last entry must equal nnz");
  const int64_t per_mask = int64_t(p.block) * p.words_per_row;
  if (p.bitmaps.size() % per_mask != 0) return bad("bitmaps", "size must be a multiple of block * words_per_row");
  const int64_t n_masks = int64_t(p.bitmaps.size()) / per_mask;
  for (int64_t r = 0; r < p.rows(); ++r) {
    if (p.row_ptr[r + 1] < p.row_ptr[r]) return bad("row_ptr", "must be non-decreasing");
    if (p.row_ptr[r + 1] > p.row_ptr.back()) return bad("row_ptr", "entries must not exceed nnz");
    for (int64_t e = p.row_ptr[r]; e < p.row_ptr[r + 1]; ++e) {
      if (p.col_idx[e] < 0 || p.col_idx[e] >= p.n_k_blocks)
        return bad("col_idx", "entry " + std::to_string(e) + " out of range [0, n_k_blocks)");
      if (e > p.row_ptr[r] && p.col_idx[e] <= p.col_idx[e - 1])
        return bad("col_idx", "must be strictly ascending within a row (entry " + std::to_string(e) + ")");
      if (p.mask_idx[e] < -1 || p.mask_idx[e] >= n_masks)
        return bad("mask_idx", "entry " + std::to_string(e) + " must be -1 or a bitmap index");
    }
  }
  return Status::Ok();
}

Status BuildPlan(const Spec& spec, const Shape& shape, const float* q, const float* k,
                 const PlanOptions& options, BlockPlan* plan) {
  if (plan == nullptr) return Status::Invalid("plan: expected a non-null output pointer");
  Status st = ValidateSpec(spec);
  if (!st.ok()) return st;
  st = ValidateShape(shape);
  if (!st.ok()) return st;
  const bool has_block = spec.kind == SpecKind::kBlockTopK || spec.kind == SpecKind::kBigBird;
  const int32_t block = has_block ? spec.block : options.tile;
  if (block < 1 || block > 4096) return Status::Invalid("tile: expected 1..4096, got " + std::to_string(block));
  const bool dynamic = spec.kind == SpecKind::kBlockTopK || spec.kind == SpecKind::kTopKPerQuery;
  st = ValidatePlanSize(shape, block, dynamic);
  if (!st.ok()) return st;
  st = ValidateThreads(options.num_threads, "num_threads");
  if (!st.ok()) return st;
  if (dynamic && (q == nullptr || k == nullptr))
    return Status::Invalid(std::string(q == nullptr ? "q" : "k") + ": required by data-dependent specs");
  if (!(std::isfinite(options.scale)))
    return Status::Invalid("scale: expected a finite number, got " + std::to_string(options.scale));
  const double scale = options.scale > 0 ? options.scale : 1.0 / std::sqrt(double(shape.D));

  *plan = BlockPlan{};
  plan->block = block;
  plan->B = shape.B;
  plan->Hq = shape.Hq;
  plan->Lq = shape.Lq;
  plan->Lk = shape.Lk;
  plan->plan_b = dynamic ? shape.B : 1;
  plan->plan_h = dynamic ? shape.Hq : 1;
  plan->n_k_blocks = int32_t(CeilDiv(shape.Lk, block));
  plan->q_block_begin = (shape.Lk - shape.Lq) / block;
  plan->n_q_blocks = plan->n_k_blocks - plan->q_block_begin;
  plan->words_per_row = int32_t(CeilDiv(block, 64));
  plan->row_ptr.reserve(plan->rows() + 1);
  plan->row_ptr.push_back(0);
  const Geometry g{block, shape.Lq, shape.Lk, int64_t(shape.Lk) - shape.Lq};
  if (dynamic)
    PlanDynamic(spec, shape, g, q, k, scale, options.num_threads, plan);
  else
    PlanStatic(spec, g, plan);
  return Status::Ok();
}

}  // namespace sattn
