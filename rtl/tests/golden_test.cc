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
    plan.block = 24;
    Problem p;
    float x = 0;
    std::string e = Quantize(&x, &x, &x, 1, 1, 1, 1, 1, 1, 0.5, plan, &p);
    SATTN_CHECK(e.find("plan.block") == 0);
    e = Quantize(&x, &x, &x, 1, 1, 1, 1, 1, 1, -1.0, plan, &p);
    SATTN_CHECK(e.find("scale") == 0);
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
