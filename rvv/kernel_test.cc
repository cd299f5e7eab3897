// Kernel and driver tests, run under qemu-riscv64 (one target per VLEN, and once per kernel
// build: RVV, scalar, auto-vectorised). Plans come from the shared C++ planner in-process; every
// output is checked against a straightforward double-precision attention over the same plan and
// the same (bf16-rounded / int8-dequantised) inputs, and the vector block top-k selection is
// checked to reproduce the planner's choice exactly.
#include <chrono>
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

#define CHECK_MSG(cond, ...)                              \
  do {                                                    \
    ++g_checks;                                           \
    if (!(cond)) {                                        \
      ++g_failures;                                       \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                  \
      std::fprintf(stderr, "\n");                         \
    }                                                     \
  } while (0)

Problem MakeProblem(const Spec& spec, const Shape& shape, uint32_t seed, float qk_spread = 1.0f) {
  Problem pb;
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
  PlanOptions po;
  po.num_threads = 1;
  po.tile = 32;
  po.scale = pb.scale;
  Status st = BuildPlan(spec, shape, pb.q.data(), pb.k.data(), po, &pb.plan);
  if (!st.ok()) {
    std::fprintf(stderr, "BuildPlan failed: %s\n", st.message.c_str());
    std::exit(2);
  }
  return pb;
}

// Double-precision attention over the plan's visible pairs, on the given (already rounded) inputs.
void ReferenceAttention(const Problem& pb, const std::vector<float>& q, const std::vector<float>& k,
                        const std::vector<float>& v, std::vector<double>* out, std::vector<double>* lse) {
  const Shape& s = pb.shape;
  const BlockPlan& p = pb.plan;
  const int64_t qf = int64_t(s.Lk) - s.Lq, D = s.D;
  out->assign(size_t(s.B) * s.Hq * s.Lq * D, 0.0);
  lse->assign(size_t(s.B) * s.Hq * s.Lq, -INFINITY);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.Hq; ++h) {
      const int hk = h / (s.Hq / s.Hkv);
      for (int64_t i = 0; i < s.Lq; ++i) {
        const int64_t pos = i + qf, a = pos / p.block, rr = pos - a * p.block;
        const int64_t row = p.row_of(b, h, int32_t(a - p.q_block_begin));
        std::vector<int64_t> keys;
        for (int32_t e = p.row_ptr[row]; e < p.row_ptr[row + 1]; ++e) {
          const int64_t c = p.col_idx[e], j0 = c * p.block;
          for (int64_t cc = 0; cc < p.block && j0 + cc < s.Lk; ++cc) {
            bool vis = p.mask_idx[e] < 0 ||
                       ((p.bitmap(p.mask_idx[e])[rr * p.words_per_row + cc / 64] >> (cc % 64)) & 1);
            if (vis) keys.push_back(j0 + cc);
          }
        }
        if (keys.empty()) continue;
        const float* qi = q.data() + ((int64_t(b) * s.Hq + h) * s.Lq + i) * D;
        std::vector<double> sc(keys.size());
        double mx = -INFINITY;
        for (size_t t = 0; t < keys.size(); ++t) {
          const float* kj = k.data() + ((int64_t(b) * s.Hkv + hk) * s.Lk + keys[t]) * D;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += double(qi[d]) * double(kj[d]);
          sc[t] = pb.scale * dot;
          mx = std::max(mx, sc[t]);
        }
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        double* o = out->data() + ((int64_t(b) * s.Hq + h) * s.Lq + i) * D;
        for (size_t t = 0; t < keys.size(); ++t) {
          const float* vj = v.data() + ((int64_t(b) * s.Hkv + hk) * s.Lk + keys[t]) * D;
          for (int64_t d = 0; d < D; ++d) o[d] += sc[t] / sum * double(vj[d]);
        }
        (*lse)[(int64_t(b) * s.Hq + h) * s.Lq + i] = mx + std::log(sum);
      }
    }
}

// The exact inputs the kernels compute with for a dtype (see driver.h).
void KernelInputs(const Problem& pb, DType dt, std::vector<float>* q, std::vector<float>* k,
                  std::vector<float>* v) {
  *q = pb.q, *k = pb.k, *v = pb.v;
  if (dt == DType::kBF16) {
    for (auto* x : {q, k, v})
      for (auto& f : *x) f = BF16ToFloat(FloatToBF16(f));
  } else if (dt == DType::kI8) {
    const Shape& s = pb.shape;
    const int32_t blk = pb.plan.block, D = s.D;
    std::vector<int8_t> tmp(size_t(blk) * D);
    auto dequant = [&](float* x, int64_t n) {
      const float sc = QuantizeRowsI8(x, n, D, tmp.data());
      for (int64_t t = 0; t < n * D; ++t) x[t] = float(tmp[t]) * sc;
    };
    for (int64_t bh = 0; bh < int64_t(s.B) * s.Hkv; ++bh)
      for (int64_t j0 = 0; j0 < s.Lk; j0 += blk)
        dequant(k->data() + (bh * s.Lk + j0) * D, std::min<int64_t>(blk, s.Lk - j0));
    const int64_t qf = int64_t(s.Lk) - s.Lq;
    for (int64_t bh = 0; bh < int64_t(s.B) * s.Hq; ++bh)
      for (int32_t r = 0; r < pb.plan.n_q_blocks; ++r) {
        const int64_t a = r + pb.plan.q_block_begin;
        const int64_t p0 = std::max<int64_t>(a * blk, qf), p1 = std::min<int64_t>((a + 1) * blk, s.Lk) - 1;
        dequant(q->data() + (bh * s.Lq + p0 - qf) * D, p1 - p0 + 1);
      }
  }
}

void CheckAttention(const std::string& name, const Problem& pb, DType dt, int32_t chunk_keys = 512) {
  std::vector<float> out, lse;
  RunOptions opt;
  opt.dtype = dt;
  opt.chunk_keys = chunk_keys;
  RunStats stats;
  Status st = RunAttention(pb, opt, &out, &lse, &stats);
  CHECK_MSG(st.ok(), "%s: RunAttention: %s", name.c_str(), st.message.c_str());
  if (!st.ok()) return;
  std::vector<float> q, k, v;
  KernelInputs(pb, dt, &q, &k, &v);
  std::vector<double> ro, rl;
  ReferenceAttention(pb, q, k, v, &ro, &rl);
  // int8 scores differ from the dequantised double ones only by float32 rounding of the
  // rescaling; every kernel computes in float32 with a ~1 ulp exp, so one bound fits all.
  const double tol = 2e-5;
  double worst = 0, worst_lse = 0;
  for (size_t t = 0; t < out.size(); ++t) worst = std::max(worst, std::fabs(double(out[t]) - ro[t]) / (1.0 + std::fabs(ro[t])));
  for (size_t t = 0; t < lse.size(); ++t) {
    if (std::isinf(rl[t])) {
      CHECK_MSG(std::isinf(lse[t]) && lse[t] < 0, "%s: row %zu should be empty (lse -inf), got %g", name.c_str(), t, lse[t]);
      for (int d = 0; d < pb.shape.D; ++d) CHECK_MSG(out[t * pb.shape.D + d] == 0.0f, "%s: empty row %zu not zero", name.c_str(), t);
      continue;
    }
    worst_lse = std::max(worst_lse, std::fabs(double(lse[t]) - rl[t]) / (1.0 + std::fabs(rl[t])));
  }
  CHECK_MSG(worst <= tol && worst_lse <= tol, "%s [%s]: max error out %.3g lse %.3g > %.1g", name.c_str(),
            DTypeName(dt), worst, worst_lse, tol);
  std::printf("  %-34s %-5s out err %.2e  lse err %.2e  chunks %lld\n", name.c_str(), DTypeName(dt), worst,
              worst_lse, (long long)stats.chunks);
}

Spec MakeSpec(SpecKind kind, bool causal) {
  Spec s;
  s.kind = kind;
  s.causal = causal;
  return s;
}

void TestAttentionAllSpecs() {
  struct Case {
    std::string name;
    Spec spec;
    Shape shape;
  };
  std::vector<Case> cases;
  auto shape = [](int B, int Hq, int Hkv, int Lq, int Lk, int D) {
    Shape s;
    s.B = B, s.Hq = Hq, s.Hkv = Hkv, s.Lq = Lq, s.Lk = Lk, s.D = D;
    return s;
  };
  cases.push_back({"dense", MakeSpec(SpecKind::kDense, false), shape(1, 2, 1, 70, 70, 16)});
  cases.push_back({"dense causal Lq<Lk", MakeSpec(SpecKind::kDense, true), shape(2, 2, 2, 37, 101, 24)});
  cases.push_back({"dense L=1", MakeSpec(SpecKind::kDense, true), shape(1, 1, 1, 1, 1, 8)});
  cases.push_back({"dense decode Lq=1", MakeSpec(SpecKind::kDense, true), shape(1, 4, 2, 1, 77, 16)});
  Spec sw = MakeSpec(SpecKind::kSlidingWindow, true);
  sw.window = 9, sw.dilation = 2, sw.global_tokens = 3;
  cases.push_back({"sliding dil2 global3", sw, shape(1, 2, 1, 90, 90, 16)});
  Spec sw2 = MakeSpec(SpecKind::kSlidingWindow, false);
  sw2.window = 5;
  cases.push_back({"sliding noncausal", sw2, shape(1, 1, 1, 50, 66, 8)});
  Spec btk = MakeSpec(SpecKind::kBlockTopK, true);
  btk.block = 16, btk.keep = 0.25;
  cases.push_back({"blocktopk causal GQA", btk, shape(1, 4, 2, 100, 100, 16)});
  Spec btk2 = MakeSpec(SpecKind::kBlockTopK, false);
  btk2.block = 32, btk2.keep = 0.3, btk2.global_blocks = 0;
  cases.push_back({"blocktopk noncausal Lq<Lk", btk2, shape(2, 2, 1, 45, 130, 16)});
  Spec bb = MakeSpec(SpecKind::kBigBird, false);
  bb.block = 16, bb.window_blocks = 3, bb.global_blocks = 1, bb.random_blocks = 2, bb.seed = 7;
  cases.push_back({"bigbird", bb, shape(1, 2, 2, 90, 90, 16)});
  Spec bbc = bb;
  bbc.causal = true, bbc.block = 24;
  cases.push_back({"bigbird causal block24", bbc, shape(1, 1, 1, 75, 75, 8)});
  Spec tq = MakeSpec(SpecKind::kTopKPerQuery, true);
  tq.topk = 7;
  cases.push_back({"topk-per-query causal", tq, shape(1, 2, 1, 60, 60, 16)});
  Spec btk64 = MakeSpec(SpecKind::kBlockTopK, true);
  btk64.block = 64, btk64.keep = 0.125;
  cases.push_back({"blocktopk block64", btk64, shape(1, 1, 1, 300, 300, 32)});
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const Problem pb = MakeProblem(c.spec, c.shape, seed++);
    for (DType dt : {DType::kF32, DType::kBF16, DType::kI8}) CheckAttention(c.name, pb, dt);
  }
  // Several online-softmax chunks per row (chunk of one block), and a row fully masked in a chunk.
  const Problem pb = MakeProblem(MakeSpec(SpecKind::kDense, true), shape(1, 1, 1, 97, 97, 16), 99);
  CheckAttention("dense causal, 1-block chunks", pb, DType::kF32, 1);
  // Large score spread: the online rescaling must not overflow.
  const Problem pw = MakeProblem(MakeSpec(SpecKind::kDense, false), shape(1, 1, 1, 40, 80, 16), 5, 6.0f);
  CheckAttention("dense wide scores, chunks", pw, DType::kF32, 16);
}

void TestEmptyRows() {
  // A hand-made plan whose second query block has no entries: its rows output 0 and lse -inf.
  Problem pb = MakeProblem(MakeSpec(SpecKind::kDense, false), [] {
    Shape s;
    s.Lq = s.Lk = 40, s.D = 8;
    return s;
  }(), 3);
  BlockPlan& p = pb.plan;  // tile 32: 2 query blocks x 2 key blocks, all visible
  p.row_ptr = {0, 2, 2};
  p.col_idx.resize(2);
  p.mask_idx.resize(2);
  CheckAttention("plan with an empty row", pb, DType::kF32);
}

void TestBadInput() {
  Problem pb = MakeProblem(MakeSpec(SpecKind::kDense, false), Shape{}, 4);
  pb.q.pop_back();
  std::vector<float> out, lse;
  Status st = RunAttention(pb, RunOptions{}, &out, &lse, nullptr);
  CHECK_MSG(!st.ok() && st.message.rfind("q:", 0) == 0, "short q accepted or unnamed: '%s'", st.message.c_str());
  pb = MakeProblem(MakeSpec(SpecKind::kDense, false), Shape{}, 4);
  pb.plan.col_idx[0] = 99;
  st = RunAttention(pb, RunOptions{}, &out, &lse, nullptr);
  CHECK_MSG(!st.ok() && st.message.find("col_idx") != std::string::npos, "bad plan accepted: '%s'", st.message.c_str());
}

void TestSelectionMatchesPlanner() {
  int rows = 0;
  for (int t = 0; t < 12; ++t) {
    Spec s = MakeSpec(SpecKind::kBlockTopK, t % 2 == 0);
    s.score = t >= 9 ? BlockScore::kMax : BlockScore::kMean;   // the last three: score="max"
    s.block = (t % 3 == 0) ? 16 : (t % 3 == 1 ? 8 : 32);
    s.keep = 0.1 + 0.07 * t;
    s.global_blocks = t % 3;
    s.local_blocks = 1 + t % 2;
    Shape sh;
    sh.B = 1 + t % 2, sh.Hq = 2, sh.Hkv = 1 + t % 2, sh.D = 8 + 8 * (t % 3);
    sh.Lk = 40 + 23 * t, sh.Lq = (t % 4 == 3) ? sh.Lk / 3 : sh.Lk;
    const Problem pb = MakeProblem(s, sh, 100 + t);
    Status st;
    const int64_t bad = CountSelectionMismatches(pb, &st);
    CHECK_MSG(st.ok() && bad == 0, "selection case %d: %lld rows differ from the planner (%s)", t, (long long)bad,
              st.message.c_str());
    rows += pb.plan.rows();
  }
  std::printf("  block top-k selection (score mean and max): %d plan rows identical to the C++ planner\n", rows);
}

// NaN and +/-Inf in q and k: the kernels' selection ranks NaN scores below every number, ties
// (NaN with NaN too) to the lower block, and score="max" ignores NaN products, as the planner does
// (docs/contract.md, "Non-finite inputs").
void TestSelectionWithNonFiniteMatchesPlanner() {
  const float specials[3] = {NAN, INFINITY, -INFINITY};
  int rows = 0;
  for (int t = 0; t < 8; ++t) {
    Spec s = MakeSpec(SpecKind::kBlockTopK, t % 2 == 0);
    s.score = t >= 4 ? BlockScore::kMax : BlockScore::kMean;
    s.block = t % 3 == 0 ? 4 : 8;
    s.keep = 0.5 + 0.05 * t;
    s.global_blocks = t % 2;
    s.local_blocks = t % 3 == 0 ? 0 : 1;
    Shape sh;
    sh.B = 1, sh.Hq = 2, sh.Hkv = 1 + t % 2, sh.D = 4;
    sh.Lk = 37 + 5 * t, sh.Lq = t % 4 == 3 ? sh.Lk / 2 : sh.Lk;
    Problem pb = MakeProblem(s, sh, 200 + t);
    // A few specials in q and k, a whole block of NaN keys, and one all-NaN query row.
    std::mt19937 rng(300 + t);
    for (int n = 0; n < 6; ++n) {
      std::vector<float>& x = n % 2 ? pb.k : pb.q;
      x[rng() % x.size()] = specials[n % 3];
    }
    for (int i = 0; i < s.block * sh.D && i < int(pb.k.size()); ++i) pb.k[s.block * sh.D + i] = NAN;
    for (int d = 0; d < sh.D; ++d) pb.q[d] = NAN;
    PlanOptions po;
    po.num_threads = 1;
    po.scale = pb.scale;
    Status st = BuildPlan(s, sh, pb.q.data(), pb.k.data(), po, &pb.plan);
    CHECK_MSG(st.ok(), "non-finite selection case %d: planning failed (%s)", t, st.message.c_str());
    const int64_t bad = CountSelectionMismatches(pb, &st);
    CHECK_MSG(st.ok() && bad == 0, "non-finite selection case %d: %lld rows differ from the planner (%s)", t,
              (long long)bad, st.message.c_str());
    rows += pb.plan.rows();
  }
  std::printf("  block top-k selection with NaN/Inf inputs: %d plan rows identical to the C++ planner\n", rows);
}

void TestQuantize() {
  // The kernels' quantiser must equal the driver's scalar one bit for bit (tests dequantise with
  // QuantizeRowsI8 to build the reference inputs). Ties (x/scale = k + 0.5) included.
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int n : {1, 7, 64, 1000}) {
    std::vector<float> x(n);
    for (auto& f : x) f = nd(rng);
    if (n > 2) x[0] = 127.0f, x[1] = 0.5f, x[2] = -2.5f;  // scale 1: exact halves
    std::vector<int8_t> a(n), b(n);
    const float sa = QuantizeRowsI8(x.data(), n, 1, a.data());
    const float sb = sattn_quantize_i8(x.data(), n, b.data());
    CHECK_MSG(sa == sb && a == b, "quantize n=%d differs from QuantizeRowsI8", n);
  }
  std::vector<float> zeros(5, 0.0f);
  std::vector<int8_t> z(5, 1);
  CHECK_MSG(sattn_quantize_i8(zeros.data(), 5, z.data()) == 1.0f && z == std::vector<int8_t>(5, 0), "all-zero block");
}

void TestExp() {
  // Relative error of the kernels' exp over [-87, 0] against double exp (docs/backends/rvv.md).
  const int n = 20001;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[i] = -87.0f * float(i) / float(n - 1);
  sattn_exp_array(x.data(), n, y.data());
  double worst = 0;
  for (int i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(y[i]) - std::exp(double(x[i]))) / std::exp(double(x[i])));
  float below[3] = {-88.0f, -1000.0f, -INFINITY}, out3[3];
  sattn_exp_array(below, 3, out3);
  CHECK_MSG(out3[0] == 0 && out3[1] == 0 && out3[2] == 0, "exp below -87 not 0");
  CHECK_MSG(worst < 4e-7, "exp max relative error %.3g", worst);
  std::printf("  exp: max relative error %.3g over [-87, 0] (%d points)\n", worst, n);
}

}  // namespace
}  // namespace rvv
}  // namespace sattn

int main() {
  using namespace sattn::rvv;
  std::printf("kernels: %s\n", sattn_kernel_variant());
  // Wall time per section (host time under QEMU: only to keep the test small, not a metric).
  auto timed = [](const char* name, void (*fn)()) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    std::printf("  [%s: %.2f s]\n", name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  timed("exp", TestExp);
  timed("quantize", TestQuantize);
  timed("selection", TestSelectionMatchesPlanner);
  timed("selection, non-finite", TestSelectionWithNonFiniteMatchesPlanner);
  timed("attention", TestAttentionAllSpecs);
  timed("empty rows", TestEmptyRows);
  timed("bad input", TestBadInput);
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
