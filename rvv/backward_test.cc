// Backward kernel and driver tests under qemu-riscv64 (one target per VLEN and per kernel build):
// RunAttentionBackward on the float32 forward's out and lse against a double-precision backward
// of the same masked softmax attention over the same plan (and the same bf16-rounded inputs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "rvv/driver.h"
#include "rvv/kernels/kernels.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"

namespace sattn {
namespace rvv {
namespace {

int g_failures = 0, g_checks = 0;

#define CHECK_MSG(cond, ...)                                    \
  do {                                                          \
    ++g_checks;                                                 \
    if (!(cond)) {                                              \
      ++g_failures;                                             \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                        \
      std::fprintf(stderr, "\n");                               \
    }                                                           \
  } while (0)

Shape MakeShape(int B, int Hq, int Hkv, int Lq, int Lk, int D) {
  Shape s;
  s.B = B, s.Hq = Hq, s.Hkv = Hkv, s.Lq = Lq, s.Lk = Lk, s.D = D;
  return s;
}

Spec MakeSpec(SpecKind kind, bool causal) {
  Spec s;
  s.kind = kind;
  s.causal = causal;
  return s;
}

struct Case {
  Problem pb;
  std::vector<float> dout, dlse;  // dlse empty: no gradient through lse
};

Case MakeCase(const Spec& spec, const Shape& shape, uint32_t seed, bool with_dlse, float qk_spread = 1.0f) {
  Case c;
  Problem& pb = c.pb;
  pb.spec = spec;
  pb.shape = shape;
  pb.scale = 1.0 / std::sqrt(double(shape.D));
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  pb.q.resize(size_t(shape.B) * shape.Hq * shape.Lq * shape.D);
  pb.k.resize(size_t(shape.B) * shape.Hkv * shape.Lk * shape.D);
  pb.v.resize(pb.k.size());
  for (auto& x : pb.q) x = qk_spread * nd(rng);
  for (auto& x : pb.k) x = qk_spread * nd(rng);
  for (auto& x : pb.v) x = nd(rng);
  c.dout.resize(pb.q.size());
  for (auto& x : c.dout) x = nd(rng);
  if (with_dlse) {
    c.dlse.resize(size_t(shape.B) * shape.Hq * shape.Lq);
    for (auto& x : c.dlse) x = nd(rng);
  }
  PlanOptions po;
  po.num_threads = 1;
  po.tile = 32;
  po.scale = pb.scale;
  Status st = BuildPlan(spec, shape, pb.q.data(), pb.k.data(), po, &pb.plan);
  if (!st.ok()) {
    std::fprintf(stderr, "BuildPlan failed: %s\n", st.message.c_str());
    std::exit(2);
  }
  return c;
}

// The visible keys of query row i (position i + Lk - Lq) of head (b, h) under the plan.
std::vector<int64_t> VisibleKeys(const Problem& pb, int b, int h, int64_t i) {
  const Shape& s = pb.shape;
  const BlockPlan& p = pb.plan;
  const int64_t pos = i + s.Lk - s.Lq, a = pos / p.block, rr = pos - a * p.block;
  const int64_t row = p.row_of(b, h, int32_t(a - p.q_block_begin));
  std::vector<int64_t> keys;
  for (int32_t e = p.row_ptr[row]; e < p.row_ptr[row + 1]; ++e) {
    const int64_t c = p.col_idx[e], j0 = c * p.block;
    for (int64_t cc = 0; cc < p.block && j0 + cc < s.Lk; ++cc)
      if (p.mask_idx[e] < 0 || ((p.bitmap(p.mask_idx[e])[rr * p.words_per_row + cc / 64] >> (cc % 64)) & 1))
        keys.push_back(j0 + cc);
  }
  return keys;
}

// Double-precision gradients of out = softmax(scale q k^T + mask) v (and of lse) on the given inputs.
void ReferenceBackward(const Problem& pb, const std::vector<float>& q, const std::vector<float>& k,
                       const std::vector<float>& v, const std::vector<float>& dout, const std::vector<float>& dlse,
                       std::vector<double>* dq, std::vector<double>* dk, std::vector<double>* dv) {
  const Shape& s = pb.shape;
  const int64_t D = s.D;
  dq->assign(q.size(), 0.0);
  dk->assign(k.size(), 0.0);
  dv->assign(v.size(), 0.0);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.Hq; ++h) {
      const int hk = h / (s.Hq / s.Hkv);
      for (int64_t i = 0; i < s.Lq; ++i) {
        const std::vector<int64_t> keys = VisibleKeys(pb, b, h, i);
        if (keys.empty()) continue;
        const int64_t qi = (int64_t(b) * s.Hq + h) * s.Lq + i;
        const float* qr = q.data() + qi * D;
        const float* g = dout.data() + qi * D;
        auto krow = [&](int64_t j) { return ((int64_t(b) * s.Hkv + hk) * s.Lk + j) * D; };
        std::vector<double> sc(keys.size());
        double mx = -INFINITY;
        for (size_t t = 0; t < keys.size(); ++t) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(qr[d]) * double(k[krow(keys[t]) + d]);
          sc[t] = pb.scale * dot;
          mx = std::max(mx, sc[t]);
        }
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        const double l = mx + std::log(sum);
        std::vector<double> P(keys.size()), o(D, 0.0);
        for (size_t t = 0; t < keys.size(); ++t) {
          P[t] = std::exp(sc[t] - l);
          for (int64_t d = 0; d < D; ++d) o[d] += P[t] * double(v[krow(keys[t]) + d]);
        }
        double delta = dlse.empty() ? 0.0 : -double(dlse[qi]);
        for (int64_t d = 0; d < D; ++d) delta += double(g[d]) * o[d];
        for (size_t t = 0; t < keys.size(); ++t) {
          const int64_t kr = krow(keys[t]);
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += double(g[d]) * double(v[kr + d]);
          const double dS = P[t] * (dp - delta);
          for (int64_t d = 0; d < D; ++d) {
            (*dq)[qi * D + d] += pb.scale * dS * double(k[kr + d]);
            (*dk)[kr + d] += pb.scale * dS * double(qr[d]);
            (*dv)[kr + d] += P[t] * double(g[d]);
          }
        }
      }
    }
}

double MaxErr(const std::vector<float>& x, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t t = 0; t < x.size(); ++t) {
    const double e = std::fabs(double(x[t]) - ref[t]) / (1.0 + std::fabs(ref[t]));
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

bool AllFinite(const std::vector<float>& x) {
  for (float f : x)
    if (!std::isfinite(f)) return false;
  return true;
}

// Runs the forward and the backward with the kernels and checks dq, dk, dv against double.
void CheckBackward(const std::string& name, const Case& c, DType dt, int32_t chunk_keys = 512) {
  const Problem& pb = c.pb;
  RunOptions opt;
  opt.dtype = dt;
  opt.chunk_keys = chunk_keys;
  std::vector<float> out, lse;
  Status st = RunAttention(pb, opt, &out, &lse, nullptr);
  CHECK_MSG(st.ok(), "%s: RunAttention: %s", name.c_str(), st.message.c_str());
  if (!st.ok()) return;
  BackwardInputs in;
  in.out = &out, in.lse = &lse, in.dout = &c.dout, in.dlse = c.dlse.empty() ? nullptr : &c.dlse;
  std::vector<float> dq, dk, dv, delta;
  RunStats stats;
  st = RunAttentionBackward(pb, in, opt, &dq, &dk, &dv, &delta, &stats);
  CHECK_MSG(st.ok(), "%s: RunAttentionBackward: %s", name.c_str(), st.message.c_str());
  if (!st.ok()) return;
  std::vector<float> q = pb.q, k = pb.k, v = pb.v;
  if (dt == DType::kBF16)
    for (auto* x : {&q, &k, &v})
      for (auto& f : *x) f = BF16ToFloat(FloatToBF16(f));
  std::vector<double> rq, rk, rv;
  ReferenceBackward(pb, q, k, v, c.dout, c.dlse, &rq, &rk, &rv);
  const double eq = MaxErr(dq, rq), ek = MaxErr(dk, rk), ev = MaxErr(dv, rv);
  // float32 kernels (exp ~1e-7 relative, sums of up to a few hundred terms) against float64.
  const double tol = 5e-5;
  CHECK_MSG(eq <= tol && ek <= tol && ev <= tol, "%s [%s]: max error dq %.3g dk %.3g dv %.3g > %.1g", name.c_str(),
            DTypeName(dt), eq, ek, ev, tol);
  CHECK_MSG(AllFinite(dq) && AllFinite(dk) && AllFinite(dv), "%s: finite inputs gave a non-finite gradient", name.c_str());
  // Rows that see no key have zero dq.
  const int64_t D = pb.shape.D;
  for (size_t i = 0; i < lse.size(); ++i)
    if (std::isinf(lse[i]))
      for (int64_t d = 0; d < D; ++d) CHECK_MSG(dq[i * D + d] == 0.0f, "%s: empty row %zu has dq != 0", name.c_str(), i);
  std::printf("  %-36s %-4s err dq %.2e dk %.2e dv %.2e  chunks %lld empty rows %lld\n", name.c_str(), DTypeName(dt),
              eq, ek, ev, (long long)stats.chunks, (long long)stats.empty_rows);
}

void TestAllSpecs() {
  struct Named {
    std::string name;
    Spec spec;
    Shape shape;
  };
  std::vector<Named> cases;
  cases.push_back({"dense", MakeSpec(SpecKind::kDense, false), MakeShape(1, 2, 1, 70, 70, 16)});
  cases.push_back({"dense causal Lq<Lk GQA B=2", MakeSpec(SpecKind::kDense, true), MakeShape(2, 4, 2, 37, 101, 24)});
  cases.push_back({"dense L=1", MakeSpec(SpecKind::kDense, true), MakeShape(1, 1, 1, 1, 1, 8)});
  cases.push_back({"dense decode Lq=1 GQA", MakeSpec(SpecKind::kDense, true), MakeShape(1, 4, 2, 1, 77, 16)});
  Spec sw = MakeSpec(SpecKind::kSlidingWindow, true);
  sw.window = 9, sw.dilation = 2, sw.global_tokens = 3;
  cases.push_back({"sliding dil2 global3", sw, MakeShape(1, 2, 1, 90, 90, 16)});
  Spec btk = MakeSpec(SpecKind::kBlockTopK, true);
  btk.block = 16, btk.keep = 0.25;
  cases.push_back({"blocktopk causal GQA", btk, MakeShape(1, 4, 2, 100, 100, 16)});
  Spec btk2 = MakeSpec(SpecKind::kBlockTopK, false);
  btk2.block = 32, btk2.keep = 0.3, btk2.global_blocks = 0;
  cases.push_back({"blocktopk noncausal Lq<Lk", btk2, MakeShape(2, 2, 1, 45, 130, 16)});
  Spec bb = MakeSpec(SpecKind::kBigBird, false);
  bb.block = 16, bb.window_blocks = 3, bb.global_blocks = 1, bb.random_blocks = 2, bb.seed = 7;
  cases.push_back({"bigbird", bb, MakeShape(1, 2, 2, 90, 90, 16)});
  Spec tq = MakeSpec(SpecKind::kTopKPerQuery, true);
  tq.topk = 7;
  cases.push_back({"topk-per-query causal", tq, MakeShape(1, 2, 1, 60, 60, 16)});
  Spec btk64 = MakeSpec(SpecKind::kBlockTopK, true);
  btk64.block = 64, btk64.keep = 0.25;
  cases.push_back({"blocktopk block64 D=64", btk64, MakeShape(1, 1, 1, 200, 200, 64)});
  uint32_t seed = 1;
  for (const auto& n : cases) {
    const Case c = MakeCase(n.spec, n.shape, seed, /*with_dlse=*/seed % 2 == 0);
    ++seed;
    for (DType dt : {DType::kF32, DType::kBF16}) CheckBackward(n.name + (c.dlse.empty() ? "" : " +dlse"), c, dt);
  }
  // One key block per chunk (dK/dV drained after every block, several dq updates per row) and a
  // row masked out of whole chunks.
  const Case c = MakeCase(MakeSpec(SpecKind::kDense, true), MakeShape(1, 2, 1, 97, 97, 16), 99, true);
  CheckBackward("dense causal, 1-block chunks", c, DType::kF32, 1);
  // Large score spread: probabilities near 0 and 1, gradients must stay finite and accurate.
  const Case w = MakeCase(MakeSpec(SpecKind::kDense, false), MakeShape(1, 1, 1, 40, 80, 16), 5, true, 6.0f);
  CheckBackward("dense wide scores, chunks", w, DType::kF32, 32);
}

void TestEmptyRows() {
  // A plan whose second query block has no entries: its rows get dq = 0 and add nothing to dk, dv.
  Case c = MakeCase(MakeSpec(SpecKind::kDense, false), MakeShape(1, 1, 1, 40, 40, 8), 3, true);
  BlockPlan& p = c.pb.plan;  // tile 32: 2 query blocks x 2 key blocks, all visible
  p.row_ptr = {0, 2, 2};
  p.col_idx.resize(2);
  p.mask_idx.resize(2);
  CheckBackward("plan with an empty row", c, DType::kF32);
}

void TestBadInput() {
  Case c = MakeCase(MakeSpec(SpecKind::kDense, false), MakeShape(1, 1, 1, 20, 20, 8), 4, false);
  std::vector<float> out, lse, dq, dk, dv, delta;
  Status st = RunAttention(c.pb, RunOptions{}, &out, &lse, nullptr);
  BackwardInputs in;
  in.out = &out, in.lse = &lse, in.dout = &c.dout;
  std::vector<float> short_dout(c.dout.begin(), c.dout.end() - 1);
  in.dout = &short_dout;
  st = RunAttentionBackward(c.pb, in, RunOptions{}, &dq, &dk, &dv, &delta, nullptr);
  CHECK_MSG(!st.ok() && st.message.rfind("dout:", 0) == 0, "short dout accepted or unnamed: '%s'", st.message.c_str());
  in.dout = &c.dout;
  RunOptions i8;
  i8.dtype = DType::kI8;
  st = RunAttentionBackward(c.pb, in, i8, &dq, &dk, &dv, &delta, nullptr);
  CHECK_MSG(!st.ok() && st.message.rfind("dtype:", 0) == 0, "int8 backward accepted: '%s'", st.message.c_str());
  std::vector<float> short_lse(lse.begin(), lse.end() - 1);
  in.lse = &short_lse;
  st = RunAttentionBackward(c.pb, in, RunOptions{}, &dq, &dk, &dv, &delta, nullptr);
  CHECK_MSG(!st.ok() && st.message.rfind("lse:", 0) == 0, "short lse accepted: '%s'", st.message.c_str());
  // A NaN in dout reaches that row's dq (IEEE arithmetic), and nothing crashes.
  in.lse = &lse;
  std::vector<float> nan_dout = c.dout;
  nan_dout[3 * 8 + 1] = NAN;
  in.dout = &nan_dout;
  st = RunAttentionBackward(c.pb, in, RunOptions{}, &dq, &dk, &dv, &delta, nullptr);
  CHECK_MSG(st.ok() && std::isnan(dq[3 * 8]) && std::isnan(delta[3]), "NaN in dout row 3 did not reach dq row 3");
}

}  // namespace
}  // namespace rvv
}  // namespace sattn

int main() {
  using namespace sattn::rvv;
  std::printf("kernels: %s\n", sattn_kernel_variant());
  TestAllSpecs();
  TestEmptyRows();
  TestBadInput();
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
