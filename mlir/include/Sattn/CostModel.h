// The --sattn-select-spec cost model: predicted dynamic instructions of one attention call
// through this compiler path, per target profile. docs/mlir.md derives every term.
//
// The model mirrors the code the passes emit, so it can rank configurations:
//  * attention: for every plan entry (query block x key block) and every query row of the
//    block, a row set-up (reload q, rescale acc, one exp for alpha) plus, per key of the block,
//    a score (D/W loads + D/W FMAs + a reduction), an exp (vectorised over W keys) and a PV
//    update (D/W loads + D/W FMAs);
//  * selection (block_topk only, in the shared C++ planner, scalar float64 code): mean pooling
//    of q and k, one D-long dot product per (query block, key block), a partial sort per row;
//  * masked entries (causal diagonal, ragged ends) add a bitmap test per pair.
// For the rocc profile the PV/QK work goes to the accelerator (one command per plan entry, an
// A x A systolic array), so the host side is selection plus per-command overhead.
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
  int64_t lanes;          // f32 lanes per vector op (VLEN/32 at LMUL=1)
  double row_setup;       // instructions per (entry, query row) besides the D/W terms
  double per_pair;        // instructions per (query, key) pair besides the D/W terms
  double exp_cost;        // instructions of one vectorised exp (polynomial approximation)
  double mask_test;       // extra instructions per pair of a bitmap-masked entry
  double scalar_mac;      // instructions per float64 multiply-add in the planner
  double sort_cost;       // instructions per compare of the per-row partial sort
  double entry_cost;      // instructions per plan entry (CSR walk, tile bookkeeping)
  int64_t rocc_array;     // 0: no accelerator; else the systolic array edge A
  double rocc_command;    // host instructions per RoCC command (descriptor + issue + wait)
};

// Profiles. rvv = QEMU rv64gcv VLEN=256 (the measured target); highperf = a wider RVV core
// (VLEN=512); lowpower = VLEN=128 with costlier scalar code paths; rocc = rvv host + accelerator.
inline bool GetProfile(const std::string& name, Profile* p) {
  if (name == "rvv") { *p = {"rvv", 8, 14, 7, 22, 6, 4, 3, 40, 0, 0}; return true; }
  if (name == "highperf") { *p = {"highperf", 16, 14, 7, 22, 6, 4, 3, 40, 0, 0}; return true; }
  if (name == "lowpower") { *p = {"lowpower", 4, 18, 9, 22, 8, 6, 4, 50, 0, 0}; return true; }
  if (name == "rocc") { *p = {"rocc", 8, 14, 7, 22, 6, 4, 3, 40, 8, 120}; return true; }
  return false;
}

struct Problem {
  int64_t B, Hq, Hkv, Lq, Lk, D;
  bool causal;
};

struct Candidate {
  bool dense;       // Dense(causal) at tile `block`, else BlockTopK(block, keep)
  int64_t block;
  double keep;
};

struct Breakdown {
  double attention = 0, selection = 0, total = 0;
  double entries = 0;  // plan entries over all heads
};

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Predicted instructions of one call. Counts entries per row as the planner does: the kept
// budget max(forced, ceil(keep * n_k)) capped by the causally eligible blocks.
inline Breakdown Predict(const Profile& p, const Problem& pr, const Candidate& c) {
  Breakdown out;
  const int64_t b = c.block;
  const int64_t nk = CeilDiv(pr.Lk, b);
  const int64_t qbegin = (pr.Lk - pr.Lq) / b;
  const int64_t heads = pr.B * pr.Hq;
  const double chunks = double(CeilDiv(pr.D, p.lanes));
  double entries_per_head = 0, masked_per_head = 0;
  for (int64_t a = qbegin; a < nk; ++a) {
    const int64_t eligible = pr.causal ? std::min(a + 1, nk) : nk;
    int64_t kept = eligible;
    if (!c.dense) {
      const int64_t forced = std::min<int64_t>(eligible, 1 + 1);  // global_blocks=1, local_blocks=1
      kept = std::min(eligible, std::max(forced, int64_t(std::ceil(c.keep * double(nk)))));
    }
    entries_per_head += double(kept);
    // Masked entries: the causal diagonal, the ragged last key block and ragged first query row.
    masked_per_head += (pr.causal ? 1 : 0) + ((pr.Lk % b) ? 1 : 0);
  }
  out.entries = entries_per_head * double(heads);
  const double rows = double(b);
  const double row_cost = p.row_setup + 4 * chunks;            // q reload, acc load/scale/store
  const double pair_cost = p.per_pair + 4 * chunks + p.exp_cost / double(p.lanes);
  if (p.rocc_array > 0) {
    // Accelerator: QK and PV tiles run on the A x A array; the host pays per command.
    const double tile_cycles = 2.0 * double(b) * double(b) * double(pr.D) / double(p.rocc_array * p.rocc_array);
    out.attention = out.entries * (p.rocc_command + 0.05 * tile_cycles);
  } else {
    out.attention = out.entries * (p.entry_cost + rows * (row_cost + double(b) * pair_cost)) +
                    masked_per_head * double(heads) * double(b) * double(b) * p.mask_test;
  }
  if (!c.dense) {
    const double nq = double(nk - qbegin);
    const double pool = double(heads) * (double(pr.Lq) + double(pr.Lk)) * double(pr.D) * p.scalar_mac;
    const double score = double(heads) * nq * double(nk) * double(pr.D) * p.scalar_mac;
    const double sort = double(heads) * nq * double(nk) * std::log2(std::max<double>(2.0, double(nk))) * p.sort_cost;
    out.selection = pool + score + sort + out.entries * p.entry_cost;
  }
  out.total = out.attention + out.selection;
  return out;
}

// The grid select-spec searches: dense, and block_topk at the requested density with these blocks.
inline std::vector<Candidate> Grid(double keep) {
  std::vector<Candidate> g;
  if (keep >= 1.0) {
    g.push_back({true, 64, 1.0});
    return g;
  }
  g.push_back({true, 64, 1.0});
  for (int64_t b : {16, 32, 64, 128}) g.push_back({false, b, keep});
  return g;
}

}  // namespace cost
}  // namespace sattn

#endif  // SATTN_COSTMODEL_H
