// Cycle benchmark of the simulated accelerator on BlockTopK(block, keep): prints the counters, the
// roofline bound (max of compute and memory bound) and the fused-vs-unfused byte counts; then the
// backward (ATTN_BWD) of the same attention with a random dout: its counters and roofline.
// Usage: rocc_bench [L=2048] [D=64] [H=1] [keep=0.125] [bytes_per_cycle=16] [latency=40]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "rocc_bwd_model.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn/plan.h"

using namespace sattn;
using namespace sattn::rocc;

int main(int argc, char** argv) {
  const int L = argc > 1 ? std::atoi(argv[1]) : 2048;
  const int D = argc > 2 ? std::atoi(argv[2]) : 64;
  const int H = argc > 3 ? std::atoi(argv[3]) : 1;
  const double keep = argc > 4 ? std::atof(argv[4]) : 0.125;
  MemConfig mc;
  mc.bytes_per_cycle = argc > 5 ? std::atof(argv[5]) : 16.0;
  mc.latency = argc > 6 ? std::atoi(argv[6]) : 40;
  Spec spec;
  spec.kind = SpecKind::kBlockTopK;
  spec.block = 64;
  spec.keep = keep;
  Shape s;
  s.B = 1; s.Hq = H; s.Hkv = H; s.Lq = L; s.Lk = L; s.D = D;
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> q(size_t(H) * L * D), k(q.size()), v(q.size());
  for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = n(rng);
  BlockPlan plan;
  PlanOptions opt;
  Status st = BuildPlan(spec, s, q.data(), k.data(), opt, &plan);
  if (!st.ok()) { std::fprintf(stderr, "BuildPlan: %s\n", st.message.c_str()); return 1; }
  Problem p;
  std::string err = Quantize(q.data(), k.data(), v.data(), 1, H, H, L, L, D, 1.0 / std::sqrt(double(D)), plan, &p);
  if (!err.empty()) { std::fprintf(stderr, "%s\n", err.c_str()); return 1; }
  Sim sim(mc);
  auto t0 = std::chrono::steady_clock::now();
  RunResult f = Run(p, Path::kFused, &sim);
  auto t1 = std::chrono::steady_clock::now();
  RunResult u = Run(p, Path::kUnfused, &sim);
  if (f.error || u.error) { std::fprintf(stderr, "error %d %d\n", f.error, u.error); return 1; }
  const double cyc = double(f.counters["cycles"]);
  const double macs = double(f.counters["macs"]);
  const double peak = double(f.counters["param_mac_rows"] * f.counters["param_mac_cols"]);
  const double bytes = double(f.counters["dma_rd_bytes"] + f.counters["dma_wr_bytes"]);
  const double cb = macs / peak, mb = bytes / mc.bytes_per_cycle, roof = std::max(cb, mb);
  std::printf("L=%d D=%d H=%d keep=%.3f nnz=%lld bw=%.1fB/c lat=%d\n", L, D, H, keep, (long long)plan.nnz(),
              mc.bytes_per_cycle, mc.latency);
  for (auto& kv : f.counters) std::printf("  %-22s %llu\n", kv.first.c_str(), (unsigned long long)kv.second);
  std::printf("mac_util_total=%.3f mac_util_spdot=%.3f compute_bound=%.0f memory_bound=%.0f roofline=%.0f "
              "cycles/roofline=%.3f fused_bytes=%.0f unfused_bytes=%llu sim_wall_s=%.2f cycles_per_s=%.0f\n",
              macs / peak / cyc, double(f.counters["spdot_mac_busy"]) / f.counters["spdot_cycles"], cb, mb, roof,
              cyc / roof, bytes, (unsigned long long)(u.counters["dma_rd_bytes"] + u.counters["dma_wr_bytes"]),
              std::chrono::duration<double>(t1 - t0).count(), cyc / std::chrono::duration<double>(t1 - t0).count());
  // Backward: dout ~ N(0, 1), no gradient through lse.
  std::vector<float> out(q.size()), lse(size_t(H) * L), dout(q.size()), dlse(lse.size(), 0.f);
  Dequantize(p, f.output, out.data(), lse.data());
  for (auto& e : dout) e = n(rng);
  BwdProblem bp;
  err = QuantizeBwd(p, out.data(), lse.data(), dout.data(), dlse.data(), 1.0 / std::sqrt(double(D)), &bp);
  if (!err.empty()) { std::fprintf(stderr, "%s\n", err.c_str()); return 1; }
  auto t2 = std::chrono::steady_clock::now();
  BwdRunResult b = RunBwd(bp, &sim);
  auto t3 = std::chrono::steady_clock::now();
  if (b.error) { std::fprintf(stderr, "backward error %d\n", b.error); return 1; }
  const double bcyc = double(b.counters["cycles"]), bmacs = double(b.counters["macs"]);
  const double bbytes = double(b.counters["dma_rd_bytes"] + b.counters["dma_wr_bytes"]);
  const double bcb = bmacs / peak, bmb = bbytes / mc.bytes_per_cycle, broof = std::max(bcb, bmb);
  std::printf("backward (ATTN_BWD): t_nnz=%lld\n", (long long)bp.t_nnz());
  for (auto& kv : b.counters) std::printf("  %-22s %llu\n", kv.first.c_str(), (unsigned long long)kv.second);
  std::printf("bwd_mac_util=%.3f bwd_compute_bound=%.0f bwd_memory_bound=%.0f bwd_roofline=%.0f "
              "bwd_cycles/roofline=%.3f bwd_bytes=%.0f bwd_sim_wall_s=%.2f\n",
              bmacs / peak / bcyc, bcb, bmb, broof, bcyc / broof, bbytes, std::chrono::duration<double>(t3 - t2).count());
  return 0;
}
