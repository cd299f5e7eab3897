// Downstream use of sattn's C++ targets: plan a causal sliding window and run the CPU kernel.
// With --check, compares with a naive double-precision loop and exits non-zero on mismatch.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cc/cpu/attention.h"
#include "sattn/plan.h"

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  sattn::Shape shape{1, 2, 2, 100, 100, 32};
  sattn::Spec spec;
  spec.kind = sattn::SpecKind::kSlidingWindow;
  spec.window = 17;
  spec.causal = true;
  const size_t n = size_t(shape.B) * shape.Hq * shape.Lq * shape.D;
  std::vector<float> q(n), k(n), v(n), out(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = nd(rng);
  sattn::BlockPlan plan;
  sattn::PlanOptions opt;
  opt.tile = 16;
  sattn::Status st = sattn::BuildPlan(spec, shape, nullptr, nullptr, opt, &plan);
  if (!st.ok()) { std::fprintf(stderr, "plan: %s\n", st.message.c_str()); return 1; }
  sattn::cpu::AttentionArgs args;
  args.shape = shape;
  args.scale = 1.0 / std::sqrt(double(shape.D));
  args.q = q.data();
  args.k = k.data();
  args.v = v.data();
  args.out = out.data();
  st = sattn::cpu::Attention(args, plan);
  if (!st.ok()) { std::fprintf(stderr, "attention: %s\n", st.message.c_str()); return 1; }
  std::printf("planned %lld blocks, %lld visible pairs\n", (long long)plan.nnz(), (long long)plan.VisiblePairs());
  if (!check) return 0;
  double worst = 0;
  const int L = shape.Lq, D = shape.D;
  for (int h = 0; h < shape.Hq; ++h)
    for (int p = 0; p < L; ++p) {
      std::vector<double> s;
      double m = -INFINITY;
      for (int j = 0; j < L; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(q[(h * L + p) * D + d]) * k[(h * L + j) * D + d];
        s.push_back((j <= p && p - j < spec.window) ? dot * args.scale : -INFINITY);
        m = std::max(m, s.back());
      }
      double z = 0;
      for (double x : s) z += std::exp(x - m);
      for (int d = 0; d < D; ++d) {
        double o = 0;
        for (int j = 0; j < L; ++j) o += std::exp(s[j] - m) / z * v[(h * L + j) * D + d];
        worst = std::max(worst, std::fabs(o - out[(h * L + p) * D + d]));
      }
    }
  std::printf("max |out - naive| = %.3g\n", worst);
  return worst < 1e-4 ? 0 : 1;
}
