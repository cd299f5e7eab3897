// The --sattn-select-spec cost model: predicted dynamic instructions of one attention call
// through this compiler path (QEMU rv64gcv, rvv/plugin's count), per target profile.
// docs/mlir.md derives every term and lists the calibration run.
//
// The model mirrors the code --sattn-lower-to-rvv emits (fused tiles):
//   attention = entries * (entry + b * row(D) + b^2 * pair(D))
//     entries: plan entries (query block x key block) over all heads, counted as the planner
//              counts them: per row max(forced, ceil(keep * n_k)) capped by eligible blocks;
//     row(D):  per query row of an entry: q load and scale, one scalar exp for alpha, acc
//              rescale and store, m/l updates;
//     pair(D): per (query, key): K-row load + FMA + reduction, select/store/max, the
//              vectorised exp share, V-row load + FMA, loop overhead;
//     chunks = ceil(D / lanes) multiplies the per-chunk terms (lanes = 8 * VLEN / 32: LMUL=8);
//   selection (block_topk only, the shared planner in scalar float64 C++):
//     mac * (pooling (Lq + Lk) * D + scoring E * D) + sort * E * log2(n_k), per head, where E
//     counts the eligible (query block, key block) pairs (about half of them when causal),
//     plus `plan_mask` per pair of every masked entry: the planner builds those bitmaps pair by
//     pair from the token rule at run time (constant plans pay this at compile time instead);
//   masked entries (causal diagonal, ragged ends) add `mask` per pair to the attention.
// Constants were fitted (least squares, entry and sort fixed) to the six programs measured by
// //mlir/e2e:bench_insn on 2026-11-25 (docs/mlir.md): pair 14.7+4/chunk, row 60.6+5/chunk,
// entry 40, mac 8.5, sort 10 reproduce all six within 0.4%. The per-chunk split is read off
// the generated loops (K and V row loads and FMAs), as is the mask term (6 per pair).
// The mask term (6 per pair) is read off the generated loop, not fitted.
//
// rocc: QK and PV of each entry run on the accelerator's 16 x 16 MAC array
// (rtl/spec/commands.json): 2 * b^2 * D / 256 cycles per entry plus a per-entry command cost;
// the host still plans (same selection term) and quantises q/k/v (3 instructions per element).
#ifndef SATTN_COSTMODEL_H
#define SATTN_COSTMODEL_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sattn {
namespace cost {

struct Profile {
  std::string name;
  int64_t vlen;           // bits; lanes = 8 * vlen / 32 (LMUL=8 groups of f32)
  double pair_fixed = 14.7, pair_chunk = 4;
  double row_fixed = 60.6, row_chunk = 5;
  double entry = 40, mac = 8.5, sort = 10, mask = 6, plan_mask = 40;
  int64_t rocc_macs = 0;  // MACs per accelerator cycle (0: no accelerator)
  double rocc_entry = 0;  // per-entry command/descriptor overhead on the accelerator
  int64_t max_block = 4096;
  int64_t lanes() const { return 8 * vlen / 32; }
};

// rvv: the measured target (QEMU, VLEN=256). highperf: VLEN=512. lowpower: VLEN=128.
// rocc: rvv host + the RoCC accelerator (block <= 64, multiple of 16).
inline bool GetProfile(const std::string& name, Profile* p) {
  *p = Profile();
  p->name = name;
  if (name == "rvv") { p->vlen = 256; return true; }
  if (name == "highperf") { p->vlen = 512; return true; }
  if (name == "lowpower") { p->vlen = 128; return true; }
  if (name == "rocc") {
    p->vlen = 256;
    p->rocc_macs = 16 * 16;
    p->rocc_entry = 64;
    p->max_block = 64;
    return true;
  }
  return false;
}

struct Problem {
  int64_t B, Hq, Hkv, Lq, Lk, D;
  bool causal;
};

struct Candidate {
  bool dense;  // Dense(causal) planned at tile `block`, else BlockTopK(block, keep)
  int64_t block;
  double keep;
};

struct Breakdown {
  double attention = 0, selection = 0, total = 0;
  double entries = 0;  // plan entries over all heads
};

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline Breakdown Predict(const Profile& p, const Problem& pr, const Candidate& c) {
  Breakdown out;
  const int64_t b = c.block;
  const int64_t nk = CeilDiv(pr.Lk, b);
  const int64_t qbegin = (pr.Lk - pr.Lq) / b;
  const double heads = double(pr.B * pr.Hq);
  const double chunks = double(CeilDiv(pr.D, p.lanes()));
  double entries = 0, masked = 0, eligiblePairs = 0;
  for (int64_t a = qbegin; a < nk; ++a) {
    const int64_t eligible = pr.causal ? std::min(a + 1, nk) : nk;
    eligiblePairs += double(eligible);
    int64_t kept = eligible;
    if (!c.dense) {
      const int64_t forced = std::min<int64_t>(eligible, 2);  // global_blocks = local_blocks = 1
      kept = std::min(eligible, std::max(forced, int64_t(std::ceil(c.keep * double(nk)))));
    }
    entries += double(kept);
    masked += (pr.causal ? 1 : 0) + ((pr.Lk % b) ? 1 : 0) + (((pr.Lk - pr.Lq) % b) ? 1 : 0);
  }
  out.entries = entries * heads;
  const double bb = double(b);
  if (p.rocc_macs > 0) {
    const double cycles = 2.0 * bb * bb * double(pr.D) / double(p.rocc_macs);
    const double quantise = 3.0 * double(pr.D) * (heads * double(pr.Lq) + 2.0 * double(pr.B * pr.Hkv) * double(pr.Lk));
    out.attention = out.entries * (p.rocc_entry + cycles) + quantise;
  } else {
    const double pair = p.pair_fixed + p.pair_chunk * chunks;
    const double row = p.row_fixed + p.row_chunk * chunks;
    out.attention = out.entries * (p.entry + bb * row + bb * bb * pair) + masked * heads * bb * bb * p.mask;
  }
  if (!c.dense) {
    const double macs = (double(pr.Lq) + double(pr.Lk)) * double(pr.D) + eligiblePairs * double(pr.D);
    const double sorts = eligiblePairs * std::log2(std::max<double>(2.0, double(nk)));
    out.selection = heads * (p.mac * macs + p.sort * sorts + p.plan_mask * masked * bb * bb);
  }
  out.total = out.attention + out.selection;
  return out;
}

// The grid select-spec searches: dense (tile 64), and block_topk at the requested density with
// block 16, 32, 64, 128 (those the profile allows and that fit in Lk).
inline std::vector<Candidate> Grid(const Profile& p, const Problem& pr, double keep) {
  std::vector<Candidate> g;
  g.push_back({true, std::min<int64_t>(64, p.max_block), 1.0});
  if (keep >= 1.0) return g;
  for (int64_t b : {16, 32, 64, 128})
    if (b <= p.max_block && b <= pr.Lk) g.push_back({false, b, keep});
  return g;
}

}  // namespace cost
}  // namespace sattn

#endif  // SATTN_COSTMODEL_H
