// Tests of the golden model alone (no RTL): quantisation round trip, the score scaling, and the
// golden attention's error against a float64 reference on shapes larger than the RTL tests use.
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "rocc_model.h"
#include "sattn_rocc_cmds.h"
#include "sattn/plan.h"
#include "cc/testing/check.h"

using namespace sattn;
using namespace sattn::rocc;

int main() {
  // Score scaling: arithmetic shift and clamp.
  SATTN_CHECK_EQ(ScaleScore(-3, 1, 1), -2);
  SATTN_CHECK_EQ(ScaleScore(1 << 20, 1u << 31, 0), SATTN_ROCC_Y_MAX);
  SATTN_CHECK_EQ(ScaleScore(-(1 << 20), 1u << 31, 0), -SATTN_ROCC_Y_MAX - 1);
  SATTN_CHECK_EQ(Normalise(1 << 30, uint64_t(1) << 32), 32767);
  SATTN_CHECK_EQ(Normalise(-(1 << 30), uint64_t(1) << 32), -32768);
  SATTN_CHECK_EQ(int(ExpWeight(0)), 255);
  SATTN_CHECK_EQ(int(ExpWeight(256)), 128);
  SATTN_CHECK_EQ(int(ExpWeight(16 * 256)), 0);

  // Bad arguments are named.
  {
    BlockPlan plan;
    Problem p;
    float x = 0;
    std::string e = Quantize(&x, &x, &x, 1, 1, 1, 1, 1, 1, -1.0, plan, &p);
    SATTN_CHECK(e.find("scale") == 0);
    e = Quantize(&x, &x, &x, 1, 1, 1, 1, 1, 1, 0.5, plan, &p);
    SATTN_CHECK(e.find("plan") == 0);
  }

  // Retiling keeps every visible pair and adds none (fine blocks 8 and 128, causal and random).
  for (int32_t fine : {8, 24, 128}) {
    Spec spec;
    spec.kind = SpecKind::kBigBird;
    spec.block = fine;
    spec.window_blocks = 3;
    spec.random_blocks = 1;
    spec.seed = 9;
    spec.causal = true;
    Shape s;
    s.B = 1; s.Hq = 2; s.Hkv = 1; s.Lq = 150; s.Lk = 300; s.D = 16;
    BlockPlan f;
    SATTN_CHECK(BuildPlan(spec, s, nullptr, nullptr, PlanOptions(), &f).ok());
    const int32_t T = AcceleratorTile(fine);
    BlockPlan c = RetilePlan(f, T);
    SATTN_CHECK(ValidatePlan(c).ok());
    SATTN_CHECK_EQ(c.block, T);
    auto visible = [](const BlockPlan& pl, int32_t h, int32_t pos, int32_t key) {
      const int32_t a = pos / pl.block, i = pos - a * pl.block;
      const int64_t row = pl.row_of(0, h, a - pl.q_block_begin);
      for (int64_t e = pl.row_ptr[row]; e < pl.row_ptr[row + 1]; ++e) {
        if (pl.col_idx[e] != key / pl.block) continue;
        const int32_t j = key - pl.col_idx[e] * pl.block;
        return pl.mask_idx[e] < 0 || ((pl.bitmap(pl.mask_idx[e])[int64_t(i) * pl.words_per_row + j / 64] >> (j % 64)) & 1) != 0;
      }
      return false;
    };
    int64_t diff = 0, vis = 0;
    for (int32_t h = 0; h < s.Hq; ++h)
      for (int32_t pos = s.Lk - s.Lq; pos < s.Lk; ++pos)
        for (int32_t key = 0; key < s.Lk; ++key) {
          const bool v = visible(f, h, pos, key);
          vis += v;
          diff += v != visible(c, h, pos, key);
        }
    SATTN_CHECK(vis > 0);
    SATTN_CHECK_EQ(diff, 0);
    SATTN_CHECK_EQ(c.VisiblePairs(), f.VisiblePairs());
  }

  // Golden attention vs float64 over a real plan, several scales of input.
  for (float amp : {0.1f, 1.0f, 4.0f}) {
    const int B = 1, H = 2, L = 300, D = 40;
    std::mt19937 rng(11);
    std::normal_distribution<float> n(0.f, amp);
    std::vector<float> q(size_t(B) * H * L * D), k(q.size()), v(q.size());
    for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = n(rng);
    Spec spec;
    spec.kind = SpecKind::kBlockTopK;
    spec.block = 64;
    spec.keep = 0.5;
    spec.causal = true;
    Shape s;
    s.B = B; s.Hq = H; s.Hkv = H; s.Lq = L; s.Lk = L; s.D = D;
    BlockPlan plan;
    Status st = BuildPlan(spec, s, q.data(), k.data(), PlanOptions(), &plan);
    SATTN_CHECK(st.ok());
    Problem p;
    const double scale = 1.0 / std::sqrt(double(D));
    SATTN_CHECK(Quantize(q.data(), k.data(), v.data(), B, H, H, L, L, D, scale, plan, &p).empty());
    Output o = Golden(p);
    std::vector<float> out(q.size()), lse(size_t(B) * H * L);
    Dequantize(p, o, out.data(), lse.data());
    double vmax = 0;
    for (float x : v) vmax = std::max(vmax, double(std::fabs(x)));
    auto compare = [&](const std::vector<double>& rout, const std::vector<double>& rlse, double* err, double* lerr) {
      *err = 0;
      *lerr = 0;
      for (size_t i = 0; i < out.size(); ++i) *err = std::max(*err, std::fabs(out[i] - rout[i]) / vmax);
      for (size_t i = 0; i < lse.size(); ++i) *lerr = std::max(*lerr, std::fabs(lse[i] - rlse[i]));
    };
    // (1) Datapath error: attention of the dequantised int8 inputs in float64 vs the golden model.
    std::vector<float> dq, dk, dv;
    p.DequantizedInputs(&dq, &dk, &dv);
    std::vector<double> rout, rlse;
    ReferenceAttention(dq.data(), dk.data(), dv.data(), B, H, H, L, L, D, scale, plan, &rout, &rlse);
    double dp_err, dp_lerr;
    compare(rout, rlse, &dp_err, &dp_lerr);
    // (2) Total error against the float inputs (adds int8 input quantisation, which grows with
    // the score magnitude).
    ReferenceAttention(q.data(), k.data(), v.data(), B, H, H, L, L, D, scale, plan, &rout, &rlse);
    double err, lerr;
    compare(rout, rlse, &err, &lerr);
    std::printf("amp=%.1f datapath: max|out-ref|/max|v|=%.4f max|lse-ref|=%.4f   total: %.4f %.4f\n", amp,
                dp_err, dp_lerr, err, lerr);
    SATTN_CHECK(dp_err < 0.01);
    SATTN_CHECK(dp_lerr < 0.02);
    if (amp <= 1.0f) {
      SATTN_CHECK(err < 0.02);
      SATTN_CHECK(lerr < 0.03);
    }
  }
  return sattn_testing::Finish("rocc_golden_test");
}
