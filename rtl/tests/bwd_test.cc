// ATTN_BWD on the Verilated RTL through the C driver: bit-exact against the golden model (every dS
// tile and shift, dq, dk, dv) and, dequantised, against float64 gradients of masked softmax
// attention over the same plan (from the unquantised inputs: the documented total error). Cases:
// causal and not, GQA, Lq < Lk, L not a multiple of the block, L = 1, bitmaps, a random plan with
// empty rows, a slow memory, and the 8x16 build's shape parameters through the same checks.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>

#include "cc/testing/check.h"
#include "rocc_bwd_model.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn/plan.h"
#include "sim.h"

using namespace sattn;
using namespace sattn::rocc;

namespace {

struct Case {
  const char* name;
  Spec spec;
  int32_t B, Hq, Hkv, Lq, Lk, D, tile;
  bool empty_rows;  // drop the entries of the first plan row (its queries see no key)
};

struct Grads {
  std::vector<double> dq, dk, dv;
};

// float64 gradients of softmax(scale q k^T) v over the plan's visible pairs, with loss
// sum(dout * out) + sum(dlse * lse); rows with no visible key contribute nothing.
Grads Reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                const std::vector<float>& dout, const std::vector<float>& dlse, const Case& c, double scale,
                const BlockPlan& plan) {
  Grads g;
  const int32_t D = c.D, blk = plan.block, off = c.Lk - c.Lq;
  g.dq.assign(q.size(), 0.0);
  g.dk.assign(k.size(), 0.0);
  g.dv.assign(v.size(), 0.0);
  std::vector<char> vis(c.Lk);
  std::vector<double> z(c.Lk), P(c.Lk), o(D);
  for (int32_t b = 0; b < c.B; ++b)
    for (int32_t h = 0; h < c.Hq; ++h) {
      const int32_t kvh = h / (c.Hq / c.Hkv);
      for (int32_t i = 0; i < c.Lq; ++i) {
        const int32_t pos = i + off, a = pos / blk;
        std::fill(vis.begin(), vis.end(), 0);
        const int64_t row = plan.row_of(b, h, a - plan.q_block_begin);
        for (int64_t e = plan.row_ptr[row]; e < plan.row_ptr[row + 1]; ++e) {
          const int32_t cb = plan.col_idx[e], m = plan.mask_idx[e];
          for (int32_t j = 0; j < blk && int64_t(cb) * blk + j < c.Lk; ++j)
            if (m < 0 || ((plan.bitmap(m)[pos - a * blk] >> j) & 1)) vis[cb * blk + j] = 1;
        }
        const size_t qi = ((size_t(b) * c.Hq + h) * c.Lq + i) * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int32_t j = 0; j < c.Lk; ++j) {
          if (!vis[j]) continue;
          const size_t kj = ((size_t(b) * c.Hkv + kvh) * c.Lk + j) * D;
          double s = 0;
          for (int32_t d = 0; d < D; ++d) s += double(q[qi + d]) * k[kj + d];
          z[j] = s * scale;
          mx = std::max(mx, z[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;
        double den = 0;
        for (int32_t j = 0; j < c.Lk; ++j) if (vis[j]) den += std::exp(z[j] - mx);
        std::fill(o.begin(), o.end(), 0.0);
        for (int32_t j = 0; j < c.Lk; ++j) {
          if (!vis[j]) continue;
          P[j] = std::exp(z[j] - mx) / den;
          const size_t vj = ((size_t(b) * c.Hkv + kvh) * c.Lk + j) * D;
          for (int32_t d = 0; d < D; ++d) o[d] += P[j] * v[vj + d];
        }
        double delta = -double(dlse[(size_t(b) * c.Hq + h) * c.Lq + i]);
        for (int32_t d = 0; d < D; ++d) delta += double(dout[qi + d]) * o[d];
        for (int32_t j = 0; j < c.Lk; ++j) {
          if (!vis[j]) continue;
          const size_t kj = ((size_t(b) * c.Hkv + kvh) * c.Lk + j) * D;
          double dp = 0;
          for (int32_t d = 0; d < D; ++d) dp += double(dout[qi + d]) * v[kj + d];
          const double ds = P[j] * (dp - delta);
          for (int32_t d = 0; d < D; ++d) {
            g.dv[kj + d] += P[j] * dout[qi + d];
            g.dq[qi + d] += scale * ds * k[kj + d];
            g.dk[kj + d] += scale * ds * q[qi + d];
          }
        }
      }
    }
  return g;
}

double MaxAbs(const std::vector<double>& x) {
  double m = 0;
  for (double e : x) m = std::max(m, std::fabs(e));
  return m;
}

// max |got - ref| / max(max |ref|, floor): `floor` is the size of one product term
// (dq, dk: scale |dout| |v| |k|, dv: |dout|), for gradients that cancel to ~0 (a row with one key).
double RelErr(const std::vector<float>& got, const std::vector<double>& ref, double floor) {
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, std::fabs(double(got[i]) - ref[i]));
  return m / std::max(MaxAbs(ref), floor);
}

double MaxAbsF(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) m = std::max(m, std::fabs(double(e)));
  return m;
}

void DropFirstRow(BlockPlan* p) {
  const int32_t n0 = p->row_ptr[1];
  p->col_idx.erase(p->col_idx.begin(), p->col_idx.begin() + n0);
  p->mask_idx.erase(p->mask_idx.begin(), p->mask_idx.begin() + n0);
  for (auto& r : p->row_ptr) r = std::max(0, r - n0);
}

double worst = 0;

void Run(const Case& c, Sim* sim, uint32_t seed, double tol) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(size_t(c.B) * c.Hq * c.Lq * c.D), k(size_t(c.B) * c.Hkv * c.Lk * c.D), v(k.size());
  std::vector<float> dout(q.size()), dlse(size_t(c.B) * c.Hq * c.Lq);
  for (auto* x : {&q, &k, &v, &dout, &dlse}) for (auto& e : *x) e = nd(rng);
  Shape s;
  s.B = c.B; s.Hq = c.Hq; s.Hkv = c.Hkv; s.Lq = c.Lq; s.Lk = c.Lk; s.D = c.D;
  PlanOptions opt;
  opt.tile = c.tile;
  opt.num_threads = 1;
  BlockPlan plan;
  SATTN_CHECK(BuildPlan(c.spec, s, q.data(), k.data(), opt, &plan).ok());
  if (c.empty_rows) DropFirstRow(&plan);
  SATTN_CHECK(ValidatePlan(plan).ok());
  const double scale = 1.0 / std::sqrt(double(c.D));
  Problem p;
  SATTN_CHECK(Quantize(q.data(), k.data(), v.data(), c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D, scale, plan, &p).empty());
  std::vector<float> out(q.size()), lse(dlse.size());
  Dequantize(p, Golden(p), out.data(), lse.data());
  BwdProblem bp;
  SATTN_CHECK(QuantizeBwd(p, out.data(), lse.data(), dout.data(), dlse.data(), scale, &bp).empty());
  const BwdOutput gold = GoldenBwd(bp);
  const BwdRunResult r = RunBwd(bp, sim);
  SATTN_CHECK_EQ(r.error, 0);
  SATTN_CHECK_EQ(r.sim_faults, 0u);
  SATTN_CHECK(r.output.ds == gold.ds);
  SATTN_CHECK(r.output.ds_shift == gold.ds_shift);
  SATTN_CHECK(r.output.dq == gold.dq);
  SATTN_CHECK(r.output.dk == gold.dk);
  SATTN_CHECK(r.output.dv == gold.dv);
  // Every MAC of the five products is counted once: 5 tiles of block^2 * D per plan entry.
  const uint64_t entries = uint64_t(bp.t_nnz());
  SATTN_CHECK_EQ(r.counters.at("macs"), 5 * entries * uint64_t(p.block) * p.block * p.D);
  SATTN_CHECK_EQ(r.counters.at("entries"), entries);
  std::vector<float> dq(q.size()), dk(k.size()), dv(k.size());
  DequantizeBwd(bp, r.output, dq.data(), dk.data(), dv.data());
  const Grads g = Reference(q, k, v, dout, dlse, c, scale, plan);
  const double term = scale * MaxAbsF(dout) * MaxAbsF(v) * std::max(MaxAbsF(k), MaxAbsF(q));
  const double eq = RelErr(dq, g.dq, term), ek = RelErr(dk, g.dk, term);
  const double ev = RelErr(dv, g.dv, MaxAbsF(dout));
  std::printf("%-28s nnz %5lld cycles %9llu mac util %.3f  err dq %.4f dk %.4f dv %.4f\n", c.name,
              (long long)entries, (unsigned long long)r.counters.at("cycles"),
              double(r.counters.at("mac_busy")) / double(std::max<uint64_t>(1, r.counters.at("cycles"))), eq, ek, ev);
  worst = std::max({worst, eq, ek, ev});
  SATTN_CHECK(eq <= tol && ek <= tol && ev <= tol);
  if (c.empty_rows) {
    // Queries of the dropped row see no key: zero dq.
    for (int32_t i = 0; i < std::min(c.Lq, plan.block - (c.Lk - c.Lq) % plan.block); ++i)
      for (int32_t d = 0; d < c.D; ++d) SATTN_CHECK(dq[size_t(i) * c.D + d] == 0.f);
  }
}

}  // namespace

int main() {
  Spec causal;
  causal.causal = true;
  Spec dense;
  Spec window;
  window.kind = SpecKind::kSlidingWindow;
  window.window = 9;
  window.causal = true;
  Spec topk;
  topk.kind = SpecKind::kBlockTopK;
  topk.block = 32;
  topk.keep = 0.4;
  topk.causal = true;
  const Case cases[] = {
      {"dense causal", causal, 1, 1, 1, 48, 48, 16, 16, false},
      {"dense, GQA, Lq<Lk, ragged", dense, 1, 4, 2, 21, 37, 24, 16, false},
      {"sliding window (bitmaps)", window, 2, 2, 1, 40, 40, 16, 16, false},
      {"blocktopk block 32", topk, 1, 2, 2, 70, 70, 32, 32, false},
      {"L=1", causal, 1, 1, 1, 1, 1, 8, 16, false},
      {"empty first row", causal, 1, 2, 1, 40, 40, 16, 16, true},
  };
  Sim sim;
  uint32_t seed = 11;
  for (const Case& c : cases) Run(c, &sim, seed++, 0.06);
  MemConfig slow;
  slow.latency = 150;
  slow.bytes_per_cycle = 3;
  Sim slow_sim(slow);
  Run(cases[1], &slow_sim, 99, 0.06);
  std::printf("worst relative error %.4f\n", worst);
  return sattn_testing::Finish("rocc_bwd_test");
}
