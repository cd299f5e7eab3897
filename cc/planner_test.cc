// Planner tests: every plan, expanded to a dense mask, equals a brute-force mask written straight
// from docs/contract.md; plus validation errors and the BigBird generator's fixed values.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "cc/testing/check.h"
#include "sattn/plan.h"
#include "sattn/spec.h"

namespace sattn {
namespace {

using Mask = std::vector<char>;  // (B, Hq, Lq, Lk)

Mask Expand(const BlockPlan& p, const Shape& sh) {
  Mask m(size_t(sh.B) * sh.Hq * sh.Lq * sh.Lk, 0);
  const int64_t q_first = sh.Lk - sh.Lq;
  for (int b = 0; b < sh.B; ++b)
    for (int h = 0; h < sh.Hq; ++h)
      for (int r = 0; r < p.n_q_blocks; ++r) {
        const int64_t row = p.row_of(b, h, r), a = r + p.q_block_begin;
        for (int e = p.row_ptr[row]; e < p.row_ptr[row + 1]; ++e) {
          const int64_t kb = p.col_idx[e];
          for (int64_t i = 0; i < p.block; ++i)
            for (int64_t c = 0; c < p.block; ++c) {
              const int64_t pos = a * p.block + i, j = kb * p.block + c;
              if (pos < q_first || pos >= sh.Lk || j >= sh.Lk) continue;
              bool vis = p.mask_idx[e] < 0 ||
                         ((p.bitmap(p.mask_idx[e])[i * p.words_per_row + c / 64] >> (c % 64)) & 1);
              m[((size_t(b) * sh.Hq + h) * sh.Lq + (pos - q_first)) * sh.Lk + j] = vis;
            }
        }
      }
  return m;
}

// Brute force from the contract, per spec.
Mask Brute(const Spec& s, const Shape& sh, const std::vector<float>& q, const std::vector<float>& k,
           int32_t tile) {
  Mask m(size_t(sh.B) * sh.Hq * sh.Lq * sh.Lk, 0);
  const int64_t q_first = sh.Lk - sh.Lq, D = sh.D, g = sh.Hq / sh.Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  const int64_t blk = (s.kind == SpecKind::kBlockTopK || s.kind == SpecKind::kBigBird) ? s.block : tile;
  const int64_t nkb = (sh.Lk + blk - 1) / blk;
  for (int b = 0; b < sh.B; ++b)
    for (int h = 0; h < sh.Hq; ++h) {
      const float* qh = q.data() + (size_t(b) * sh.Hq + h) * sh.Lq * D;
      const float* kh = k.data() + (size_t(b) * sh.Hkv + h / g) * sh.Lk * D;
      auto dot = [&](int64_t i, int64_t j) {
        double acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += double(qh[i * D + d]) * double(kh[j * D + d]);
        return acc;
      };
      for (int64_t i = 0; i < sh.Lq; ++i) {
        const int64_t p = i + q_first, a = p / blk;
        std::vector<char> vis(sh.Lk, 0);
        if (s.kind == SpecKind::kDense || s.kind == SpecKind::kSlidingWindow) {
          for (int64_t j = 0; j < sh.Lk; ++j) vis[j] = TokenRuleVisible(s, p, j);
        } else if (s.kind == SpecKind::kTopKPerQuery) {
          std::vector<int64_t> js;
          for (int64_t j = 0; j < sh.Lk; ++j)
            if (!s.causal || j <= p) js.push_back(j);
          std::stable_sort(js.begin(), js.end(), [&](int64_t x, int64_t y) { return dot(i, x) > dot(i, y); });
          for (size_t t = 0; t < js.size() && int64_t(t) < s.topk; ++t) vis[js[t]] = 1;
        } else if (s.kind == SpecKind::kBigBird) {
          std::vector<char> kept(nkb, 0);
          for (int64_t c = 0; c < nkb; ++c)
            kept[c] = std::llabs(a - c) <= s.window_blocks / 2 || c < s.global_blocks || a < s.global_blocks;
          std::vector<int64_t> avail;
          for (int64_t c = 0; c < nkb; ++c)
            if (!kept[c] && (!s.causal || c <= a)) avail.push_back(c);
          for (int64_t t = 0; t < s.random_blocks && t < int64_t(avail.size()); ++t) {
            const int64_t pick = t + int64_t(BigBirdMix(s.seed, a, t) % uint64_t(avail.size() - t));
            std::swap(avail[t], avail[pick]);
            kept[avail[t]] = 1;
          }
          for (int64_t j = 0; j < sh.Lk; ++j) vis[j] = kept[j / blk] && (!s.causal || j <= p);
        } else {  // BlockTopK, mean score
          const int64_t qa0 = std::max(a * blk, q_first) - q_first, qa1 = std::min((a + 1) * blk, int64_t(sh.Lk)) - 1 - q_first;
          std::vector<double> qm(D, 0);
          for (int64_t r = qa0; r <= qa1; ++r)
            for (int64_t d = 0; d < D; ++d) qm[d] += qh[r * D + d] / double(qa1 - qa0 + 1);
          std::vector<int64_t> forced, rest;
          const int64_t last = s.causal ? a : nkb - 1;
          std::vector<double> score(nkb);
          for (int64_t c = 0; c <= last; ++c) {
            const bool local = s.causal ? (a - c >= 0 && a - c < s.local_blocks) : std::llabs(a - c) < s.local_blocks;
            if (c < s.global_blocks || local) { forced.push_back(c); continue; }
            const int64_t k0 = c * blk, k1 = std::min((c + 1) * blk, int64_t(sh.Lk)) - 1;
            double sc = 0;
            for (int64_t d = 0; d < D; ++d) {
              double km = 0;
              for (int64_t j = k0; j <= k1; ++j) km += kh[j * D + d];
              sc += qm[d] * km / double(k1 - k0 + 1);
            }
            score[c] = scale * sc;
            rest.push_back(c);
          }
          std::stable_sort(rest.begin(), rest.end(), [&](int64_t x, int64_t y) { return score[x] > score[y]; });
          const int64_t n = std::min<int64_t>(last + 1, std::max<int64_t>(forced.size(), int64_t(std::ceil(s.keep * nkb))));
          std::vector<char> kept(nkb, 0);
          for (int64_t c : forced) kept[c] = 1;
          for (int64_t t = 0; t < n - int64_t(forced.size()); ++t) kept[rest[t]] = 1;
          for (int64_t j = 0; j < sh.Lk; ++j) vis[j] = kept[j / blk] && (!s.causal || j <= p);
        }
        std::copy(vis.begin(), vis.end(), m.begin() + ((size_t(b) * sh.Hq + h) * sh.Lq + i) * sh.Lk);
      }
    }
  return m;
}

int64_t Count(const Mask& m) { return std::accumulate(m.begin(), m.end(), int64_t(0)); }

void CheckSpec(const Spec& s, const Shape& sh, int32_t tile, std::mt19937* rng) {
  std::normal_distribution<float> nd;
  std::vector<float> q(size_t(sh.B) * sh.Hq * sh.Lq * sh.D), k(size_t(sh.B) * sh.Hkv * sh.Lk * sh.D);
  for (auto& x : q) x = nd(*rng);
  for (auto& x : k) x = nd(*rng);
  BlockPlan plan;
  PlanOptions opt;
  opt.tile = tile;
  Status st = BuildPlan(s, sh, q.data(), k.data(), opt, &plan);
  SATTN_CHECK(st.ok());
  if (!st.ok()) { std::fprintf(stderr, "  %s\n", st.message.c_str()); return; }
  SATTN_CHECK(ValidatePlan(plan).ok());
  const Mask got = Expand(plan, sh), want = Brute(s, sh, q, k, tile);
  if (got != want)
    std::fprintf(stderr, "  spec kind=%d causal=%d L=%d/%d block=%d: mask mismatch\n", int(s.kind), s.causal, sh.Lq, sh.Lk, plan.block);
  SATTN_CHECK(got == want);
  SATTN_CHECK_EQ(plan.VisiblePairs(), Count(want));
}

void TestAllSpecsAgainstBruteForce() {
  std::mt19937 rng(7);
  const Shape shapes[] = {{1, 2, 2, 37, 37, 8}, {2, 4, 2, 5, 50, 16}, {1, 1, 1, 1, 1, 4}, {1, 2, 1, 64, 64, 8}, {1, 1, 1, 13, 100, 4}};
  for (const Shape& sh : shapes)
    for (bool causal : {false, true}) {
      Spec d; d.causal = causal;
      CheckSpec(d, sh, 16, &rng);
      Spec w; w.kind = SpecKind::kSlidingWindow; w.causal = causal; w.window = 5;
      CheckSpec(w, sh, 8, &rng);
      w.dilation = 3; w.global_tokens = 2;
      CheckSpec(w, sh, 8, &rng);
      Spec t; t.kind = SpecKind::kBlockTopK; t.causal = causal; t.block = 8; t.keep = 0.25;
      CheckSpec(t, sh, 0, &rng);
      t.global_blocks = 0; t.local_blocks = 2; t.keep = 0.6;
      CheckSpec(t, sh, 0, &rng);
      Spec bb; bb.kind = SpecKind::kBigBird; bb.causal = causal; bb.block = 4; bb.seed = 42;
      CheckSpec(bb, sh, 0, &rng);
      Spec pq; pq.kind = SpecKind::kTopKPerQuery; pq.causal = causal; pq.topk = 7;
      CheckSpec(pq, sh, 16, &rng);
    }
}

void TestValidationNamesTheArgument() {
  Spec s; s.kind = SpecKind::kBlockTopK; s.keep = 0.0;
  Status st = ValidateSpec(s);
  SATTN_CHECK(!st.ok() && st.message.rfind("keep", 0) == 0);
  s.keep = 0.5; s.block = 5000;
  SATTN_CHECK(ValidateSpec(s).message.rfind("block", 0) == 0);
  Shape sh{1, 3, 2, 4, 4, 8};
  SATTN_CHECK(ValidateShape(sh).message.rfind("Hq", 0) == 0);
  sh = {1, 2, 2, 5, 4, 8};
  SATTN_CHECK(ValidateShape(sh).message.rfind("Lq", 0) == 0);
  Spec w; w.kind = SpecKind::kSlidingWindow; w.window = 0;
  SATTN_CHECK(ValidateSpec(w).message.rfind("window", 0) == 0);
  BlockPlan plan;
  Spec t; t.kind = SpecKind::kBlockTopK;
  Shape ok{1, 1, 1, 8, 8, 4};
  SATTN_CHECK(BuildPlan(t, ok, nullptr, nullptr, PlanOptions{}, &plan).message.rfind("q", 0) == 0);
}

void TestBigBirdMixFixedValues() {
  // Pinned outputs: C, RVV and RTL implementations must reproduce these bit for bit.
  SATTN_CHECK(BigBirdMix(0, 0, 0) == 0xe220a8397b1dcdafull);
  SATTN_CHECK(BigBirdMix(42, 3, 1) == BigBirdMix(42, 3, 1));
  SATTN_CHECK(BigBirdMix(42, 3, 1) != BigBirdMix(42, 3, 2));
}

void TestPlanValidationCatchesCorruption() {
  Spec d;
  Shape sh{1, 1, 1, 40, 40, 4};
  BlockPlan plan;
  PlanOptions opt; opt.tile = 16;
  SATTN_CHECK(BuildPlan(d, sh, nullptr, nullptr, opt, &plan).ok());
  BlockPlan bad = plan;
  bad.col_idx[0] = 99;
  SATTN_CHECK(ValidatePlan(bad).message.find("col_idx") != std::string::npos);
  bad = plan;
  bad.row_ptr.pop_back();
  SATTN_CHECK(ValidatePlan(bad).message.find("row_ptr") != std::string::npos);
  bad = plan;
  bad.mask_idx[0] = 5;
  SATTN_CHECK(ValidatePlan(bad).message.find("mask_idx") != std::string::npos);
}

}  // namespace
}  // namespace sattn

int main() {
  sattn::TestAllSpecsAgainstBruteForce();
  sattn::TestValidationNamesTheArgument();
  sattn::TestBigBirdMixFixedValues();
  sattn::TestPlanValidationCatchesCorruption();
  return sattn_testing::Finish("planner_test");
}
