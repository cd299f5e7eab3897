// The non-finite input policy (docs/contract.md, "Non-finite inputs"): the planner's selection
// order with NaN / Inf scores, the scan, the poison set and the float32 range check, through the
// CPU backend's entry point (which applies the policy).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/src/nonfinite.h"
#include "cc/testing/check.h"
#include "sattn/plan.h"

namespace {

using sattn::BlockPlan;
using sattn::Shape;
using sattn::Spec;
using sattn::SpecKind;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Kept key blocks of plan row r.
std::vector<int32_t> Row(const BlockPlan& p, int64_t r) {
  return std::vector<int32_t>(p.col_idx.begin() + p.row_ptr[r], p.col_idx.begin() + p.row_ptr[r + 1]);
}

// BlockTopK, D = 1, block 1, one query: the block scores are q * k_c, so k decides the order.
std::vector<int32_t> KeptBlocks(const std::vector<float>& k, int32_t keep_n, bool max_score) {
  Spec s;
  s.kind = SpecKind::kBlockTopK;
  s.block = 1;
  s.keep = double(keep_n) / double(k.size());
  s.global_blocks = 0;
  s.local_blocks = 0;
  s.score = max_score ? sattn::BlockScore::kMax : sattn::BlockScore::kMean;
  const int32_t L = int32_t(k.size());
  Shape sh{1, 1, 1, 1, L, 1};
  const std::vector<float> q = {1.0f};
  sattn::PlanOptions o;
  o.scale = 1.0;
  BlockPlan p;
  SATTN_CHECK(sattn::BuildPlan(s, sh, q.data(), k.data(), o, &p).ok());
  return Row(p, p.rows() - 1);
}

void TestBlockTopKRanksNaNBelowMinusInf() {
  // scores: [NaN, -inf, 2, NaN, +inf, 2]: order +inf(4), 2(2), 2(5), -inf(1), NaN(0), NaN(3).
  const std::vector<float> k = {kNaN, -kInf, 2.0f, kNaN, kInf, 2.0f};
  for (bool mx : {false, true}) {
    SATTN_CHECK(KeptBlocks(k, 1, mx) == (std::vector<int32_t>{4}));
    SATTN_CHECK(KeptBlocks(k, 3, mx) == (std::vector<int32_t>{2, 4, 5}));
    SATTN_CHECK(KeptBlocks(k, 4, mx) == (std::vector<int32_t>{1, 2, 4, 5}));
    SATTN_CHECK(KeptBlocks(k, 5, mx) == (std::vector<int32_t>{0, 1, 2, 4, 5}));  // NaN ties: lower
  }
  // Every score NaN: the lowest blocks.
  SATTN_CHECK(KeptBlocks({kNaN, kNaN, kNaN, kNaN}, 2, false) == (std::vector<int32_t>{0, 1}));
}

void TestMaxScoreIgnoresNaNProducts() {
  // score="max", block 2, D = 1, q = 1: block 0 holds {NaN, 1}, block 1 {0.5, 0.5}, block 2
  // {NaN, NaN}. Max under the selection order: 1, 0.5, NaN -> keeps block 0 first, block 2 last.
  Spec s;
  s.kind = SpecKind::kBlockTopK;
  s.block = 2;
  s.global_blocks = 0;
  s.local_blocks = 0;
  s.score = sattn::BlockScore::kMax;
  const std::vector<float> q = {1.0f}, k = {kNaN, 1.0f, 0.5f, 0.5f, kNaN, kNaN};
  Shape sh{1, 1, 1, 1, 6, 1};
  sattn::PlanOptions o;
  o.scale = 1.0;
  for (int n : {1, 2}) {
    s.keep = n / 3.0;
    BlockPlan p;
    SATTN_CHECK(sattn::BuildPlan(s, sh, q.data(), k.data(), o, &p).ok());
    SATTN_CHECK(Row(p, p.rows() - 1) == (n == 1 ? std::vector<int32_t>{0} : std::vector<int32_t>{0, 1}));
  }
}

void TestTopKPerQueryRanksNaNLast() {
  Spec s;
  s.kind = SpecKind::kTopKPerQuery;
  s.topk = 3;
  // D = 1, q = 1: scores = k = [NaN, 1, NaN, -inf, 3]: top 3 = {4, 1, 3}; with 4: + NaN at 0.
  const std::vector<float> q = {1.0f}, k = {kNaN, 1.0f, kNaN, -kInf, 3.0f};
  Shape sh{1, 1, 1, 1, 5, 1};
  sattn::PlanOptions o;
  o.tile = 8;
  for (int32_t kk : {3, 4}) {
    s.topk = kk;
    BlockPlan p;
    SATTN_CHECK(sattn::BuildPlan(s, sh, q.data(), k.data(), o, &p).ok());
    SATTN_CHECK_EQ(p.nnz(), 1);
    const uint64_t bits = p.mask_idx[0] < 0 ? 0x1f : p.bitmap(p.mask_idx[0])[4];  // query row 4
    SATTN_CHECK_EQ(bits, kk == 3 ? 0x1aull : 0x1bull);
  }
}

struct Problem {
  Shape sh;
  std::vector<float> q, k, v;
};

Problem MakeProblem(Shape sh) {
  Problem pr{sh, {}, {}, {}};
  pr.q.resize(size_t(sh.B) * sh.Hq * sh.Lq * sh.D);
  pr.k.resize(size_t(sh.B) * sh.Hkv * sh.Lk * sh.D);
  pr.v.resize(pr.k.size());
  uint32_t x = 12345;
  auto rnd = [&] { x = x * 1664525u + 1013904223u; return float(int32_t(x >> 8) % 2001 - 1000) / 1000.0f; };
  for (auto* vec : {&pr.q, &pr.k, &pr.v})
    for (auto& e : *vec) e = rnd();
  return pr;
}

sattn::Status RunCpu(const Problem& pr, const BlockPlan& plan, std::vector<float>* out, std::vector<float>* lse) {
  sattn::cpu::AttentionArgs a;
  a.shape = pr.sh;
  a.scale = 0.25;
  a.q = pr.q.data(), a.k = pr.k.data(), a.v = pr.v.data();
  out->assign(pr.q.size(), -1.0f);
  lse->assign(size_t(pr.sh.B) * pr.sh.Hq * pr.sh.Lq, -1.0f);
  a.out = out->data(), a.lse = lse->data();
  a.num_threads = 2;
  return sattn::cpu::Attention(a, plan);
}

bool SameBits(float x, float y) { return std::memcmp(&x, &y, 4) == 0; }

void TestCpuPoisonsExactlyTheRowsThatSeeANonFinite() {
  // Causal sliding window 3, L = 12 (Lq = 10 < Lk), GQA 2:1, D = 5: NaN in q row 3 of head 0,
  // +Inf in k at key 6 of kv head 0, -Inf in v at key 11 of kv head 0 (visible only to the last
  // query), and a NaN at key 0 of kv head 1.
  Shape sh{1, 2, 1, 10, 12, 5};
  sh.Hkv = 1;
  Spec s;
  s.kind = SpecKind::kSlidingWindow;
  s.window = 3;
  s.causal = true;
  Problem pr = MakeProblem(sh);
  Problem clean = pr;
  const int D = sh.D;
  pr.q[(0 * 10 + 3) * D + 1] = kNaN;
  pr.k[6 * D + 2] = kInf;
  pr.v[11 * D + 0] = -kInf;
  for (Problem* x : {&clean}) {
    x->q[(0 * 10 + 3) * D + 1] = 0.0f;
    x->k[6 * D + 2] = 0.0f;
    x->v[11 * D + 0] = 0.0f;
  }
  sattn::PlanOptions o;
  o.tile = 4;
  BlockPlan plan;
  SATTN_CHECK(sattn::BuildPlan(s, sh, nullptr, nullptr, o, &plan).ok());
  std::vector<float> out, lse, out0, lse0;
  SATTN_CHECK(RunCpu(pr, plan, &out, &lse).ok());
  SATTN_CHECK(RunCpu(clean, plan, &out0, &lse0).ok());
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 10; ++i) {
      const int p = i + 2;  // position
      // Key 6 is visible to positions 6, 7, 8; key 11 to position 11; q row 3 is head 0's.
      const bool poisoned = (h == 0 && i == 3) || (p >= 6 && p <= 8) || p == 11;
      const int64_t row = int64_t(h) * 10 + i;
      for (int d = 0; d < D; ++d) {
        if (poisoned) SATTN_CHECK(std::isnan(out[size_t(row * D + d)]));
        else SATTN_CHECK(SameBits(out[size_t(row * D + d)], out0[size_t(row * D + d)]));
      }
      if (poisoned) SATTN_CHECK(std::isnan(lse[size_t(row)]));
      else SATTN_CHECK(SameBits(lse[size_t(row)], lse0[size_t(row)]));
    }
}

void TestEmptyRowsStayEmpty() {
  // BigBird-free way to get an empty row: Lq = Lk = 4, SlidingWindow 1 non-causal keeps the
  // diagonal only; a plan with row 0's entries removed leaves queries 0..1 with no key.
  Shape sh{1, 1, 1, 4, 4, 2};
  Problem pr = MakeProblem(sh);
  pr.q[0] = kNaN;  // query 0: non-finite but nothing visible
  pr.k[1 * 2] = kNaN;  // key 1: visible to query 1 only, which is also emptied below
  Spec s;
  s.kind = SpecKind::kSlidingWindow;
  s.window = 1;
  sattn::PlanOptions o;
  o.tile = 2;
  BlockPlan plan;
  SATTN_CHECK(sattn::BuildPlan(s, sh, nullptr, nullptr, o, &plan).ok());
  // Drop the entries of query block 0.
  const int32_t drop = plan.row_ptr[1];
  plan.col_idx.erase(plan.col_idx.begin(), plan.col_idx.begin() + drop);
  plan.mask_idx.erase(plan.mask_idx.begin(), plan.mask_idx.begin() + drop);
  for (auto& rp : plan.row_ptr) rp = std::max(0, rp - drop);
  std::vector<float> out, lse;
  SATTN_CHECK(RunCpu(pr, plan, &out, &lse).ok());
  for (int i = 0; i < 2; ++i) {
    SATTN_CHECK(std::isinf(lse[size_t(i)]) && lse[size_t(i)] < 0);
    SATTN_CHECK(out[size_t(i * 2)] == 0.0f && out[size_t(i * 2 + 1)] == 0.0f);
  }
  SATTN_CHECK(std::isfinite(lse[2]) && std::isfinite(lse[3]));
}

void TestScoreOverflowIsRejectedNamingScale() {
  Shape sh{1, 1, 1, 2, 2, 2};
  Problem pr = MakeProblem(sh);
  for (auto& e : pr.q) e = 1e20f;
  for (auto& e : pr.k) e = 1e20f;
  Spec s;
  s.kind = SpecKind::kDense;
  BlockPlan plan;
  SATTN_CHECK(sattn::BuildPlan(s, sh, nullptr, nullptr, sattn::PlanOptions{}, &plan).ok());
  std::vector<float> out, lse;
  const sattn::Status st = RunCpu(pr, plan, &out, &lse);
  SATTN_CHECK(!st.ok() && st.message.rfind("scale:", 0) == 0);
  // Non-finite rows do not count towards the bound.
  Problem ok = MakeProblem(sh);
  ok.k[0] = kInf;
  SATTN_CHECK(RunCpu(ok, plan, &out, &lse).ok());
  // Huge v: the output sums would overflow.
  Problem bigv = MakeProblem(sh);
  bigv.v[0] = 3e38f;
  const sattn::Status stv = RunCpu(bigv, plan, &out, &lse);
  SATTN_CHECK(!stv.ok() && stv.message.rfind("v:", 0) == 0);
}

void TestScanFindsEveryNonFiniteKind() {
  Shape sh{1, 1, 1, 3, 3, 2};
  const std::vector<float> q = {1, 2, kNaN, 0, 0, 0}, k = {0, kInf, 3, 4, 0, 0}, v = {0, 0, 0, 0, 0, -kInf};
  sattn::NonFiniteScan sc;
  SATTN_CHECK(sattn::ScanNonFinite(sh, sattn::ElemType::kF32, q.data(), k.data(), v.data(), 1, &sc).ok());
  SATTN_CHECK_EQ(sc.bad_q_rows, 1);
  SATTN_CHECK_EQ(sc.bad_kv_rows, 2);
  SATTN_CHECK(sc.bad_q == (std::vector<uint8_t>{0, 1, 0}));
  SATTN_CHECK(sc.bad_kv == (std::vector<uint8_t>{1, 0, 1}));
  SATTN_CHECK(std::fabs(sc.max_q_norm - std::sqrt(5.0)) < 1e-12 && sc.max_k_norm == 5.0);
  // bf16: 0x7f80 = +inf, 0xffc0 = NaN, 0x3f80 = 1.
  const std::vector<uint16_t> q16 = {0x3f80, 0x3f80, 0x3f80, 0x7f80, 0, 0}, k16 = {0, 0, 0xffc0, 0, 0, 0},
                              v16(6, 0);
  SATTN_CHECK(sattn::ScanNonFinite(sh, sattn::ElemType::kBF16, q16.data(), k16.data(), v16.data(), 1, &sc).ok());
  SATTN_CHECK(sc.bad_q == (std::vector<uint8_t>{0, 1, 0}));
  SATTN_CHECK(sc.bad_kv == (std::vector<uint8_t>{0, 1, 0}));
  // All finite: no per-row flags are kept.
  const std::vector<float> z(6, 0.5f);
  SATTN_CHECK(sattn::ScanNonFinite(sh, sattn::ElemType::kF32, z.data(), z.data(), z.data(), 1, &sc).ok());
  SATTN_CHECK(!sc.any() && sc.bad_q.empty() && sc.bad_kv.empty());
}

}  // namespace

int main() {
  TestBlockTopKRanksNaNBelowMinusInf();
  TestMaxScoreIgnoresNaNProducts();
  TestTopKPerQueryRanksNaNLast();
  TestCpuPoisonsExactlyTheRowsThatSeeANonFinite();
  TestEmptyRowsStayEmpty();
  TestScoreOverflowIsRejectedNamingScale();
  TestScanFindsEveryNonFiniteKind();
  return sattn_testing::Finish("nonfinite_test");
}
