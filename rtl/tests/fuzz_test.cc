// Randomised RTL-vs-golden fuzzing: random specs, shapes (GQA, Lq < Lk, ragged L, D padding),
// plan blocks 16..64 and memory latency/bandwidth, every result bit-exact against the golden
// model on both paths. `fuzz_test N SEED [ROWS COLS]` runs N cases (default 12 in CI; run more by
// hand) on a model whose MAC array must be ROWS x COLS (default: the table's).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "cc/testing/check.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn_rocc_cmds.h"
#include "sattn/plan.h"

using namespace sattn;
using namespace sattn::rocc;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 12;
  std::mt19937 rng(argc > 2 ? uint32_t(std::atoi(argv[2])) : 2026u);
  const uint64_t rows = argc > 4 ? uint64_t(std::atoi(argv[3])) : SATTN_ROCC_MAC_ROWS;
  const uint64_t cols = argc > 4 ? uint64_t(std::atoi(argv[4])) : SATTN_ROCC_MAC_COLS;
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int ran = 0;
  for (int t = 0; t < n; ++t) {
    Spec spec;
    spec.kind = SpecKind(pick(0, 4));
    spec.causal = pick(0, 1);
    const int blk = 16 * pick(1, 4);
    spec.block = blk;
    spec.keep = 0.1 * pick(1, 9);
    spec.window = pick(1, 40);
    spec.dilation = pick(1, 3);
    spec.global_tokens = pick(0, 3);
    spec.window_blocks = pick(1, 3);
    spec.global_blocks = pick(0, 1);
    spec.local_blocks = pick(0, 2);
    spec.random_blocks = pick(0, 2);
    spec.seed = uint64_t(pick(0, 1000));
    spec.topk = pick(1, 20);
    Shape s;
    s.Hkv = pick(1, 2);
    s.Hq = s.Hkv * pick(1, 2);
    s.B = pick(1, 2);
    s.Lk = pick(1, 160);
    s.Lq = pick(0, 2) == 0 ? pick(1, s.Lk) : s.Lk;
    s.D = pick(1, 128);
    const float amp = 0.25f * pick(1, 8);
    std::normal_distribution<float> nd(0.f, amp);
    std::vector<float> q(size_t(s.B) * s.Hq * s.Lq * s.D), k(size_t(s.B) * s.Hkv * s.Lk * s.D), v(k.size());
    for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = nd(rng);
    PlanOptions opt;
    opt.tile = blk;
    opt.num_threads = 1;
    BlockPlan plan;
    Status st = BuildPlan(spec, s, q.data(), k.data(), opt, &plan);
    if (!st.ok()) continue;  // a random spec the contract rejects (e.g. block larger than L)
    Problem p;
    const std::string err = Quantize(q.data(), k.data(), v.data(), s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D,
                                     1.0 / std::sqrt(double(s.D)), plan, &p);
    SATTN_CHECK(err.empty());
    if (!err.empty()) continue;
    ++ran;
    MemConfig mc;
    mc.latency = pick(1, 120);
    mc.bytes_per_cycle = double(pick(1, 16));
    Sim sim(mc);
    const Output gold = Golden(p);
    const RunResult f = Run(p, Path::kFused, &sim);
    const RunResult u = Run(p, Path::kUnfused, &sim);
    const bool ok = f.error == 0 && u.error == 0 && f.output.out == gold.out && f.output.stats == gold.stats &&
                    u.output.out == gold.out && u.output.stats == gold.stats && u.scores == GoldenScores(p) &&
                    f.sim_faults == 0 && u.sim_faults == 0 && sim.assertion_failures() == 0;
    SATTN_CHECK_EQ(f.counters.at("param_mac_rows"), rows);
    SATTN_CHECK_EQ(f.counters.at("param_mac_cols"), cols);
    SATTN_CHECK_EQ(f.counters.at("macs"), f.counters.at("mac_busy") * rows * cols);
    if (!ok)
      std::fprintf(stderr, "case %d: kind=%d causal=%d blk=%d B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d lat=%d bw=%.0f "
                   "err=%d/%d\n", t, int(spec.kind), int(spec.causal), blk, s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D,
                   mc.latency, mc.bytes_per_cycle, f.error, u.error);
    SATTN_CHECK(ok);
  }
  std::printf("%d of %d random cases were valid specs and ran bit-exact checks\n", ran, n);
  SATTN_CHECK(ran * 2 >= n);
  return sattn_testing::Finish("rocc_fuzz_test");
}
