// Microbenchmark of the CPU kernel alone (the plan is built once, outside the timing):
//   bazel run -c opt //cc/cpu:attention_bench -- [--seq_len 8192] [--heads 4] [--kv_heads 4]
//       [--dim 64] [--batch 1] [--threads 2] [--repeats 7] [--dtype f32|bf16]
//       [--spec topk|window|causal|dense|all] [--q_len Lq (default L; 1 = decode)]
//       [--key_layout auto|rows|transposed]
// Prints, per spec, the plan's density, the median wall time over the repeats, and effective
// GFLOP/s = 4 * D * (visible (query, key) pairs) / time, the FLOP count of docs/contract.md.
// The project-level comparison against torch is //tools:bench; this binary is for kernel work.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/cpu/kernels.h"
#include "sattn/plan.h"
#include "sattn/spec.h"

namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Process CPU time (all threads): on a shared machine wall time swings with other people's load,
// CPU time much less, so the two together tell kernel changes from noise.
double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
  int L = 8192, Lq = -1, H = 4, Hkv = -1, D = 64, B = 1, threads = 2, repeats = 7;
  std::string dtype = "f32", which = "all", key_layout = "auto";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const char* v = argv[i + 1];
    if (f == "--seq_len") L = std::atoi(v);
    else if (f == "--heads") H = std::atoi(v);
    else if (f == "--kv_heads") Hkv = std::atoi(v);
    else if (f == "--dim") D = std::atoi(v);
    else if (f == "--batch") B = std::atoi(v);
    else if (f == "--threads") threads = std::atoi(v);
    else if (f == "--repeats") repeats = std::atoi(v);
    else if (f == "--dtype") dtype = v;
    else if (f == "--spec") which = v;
    else if (f == "--q_len") Lq = std::atoi(v);
    else if (f == "--key_layout") key_layout = v;
    else {
      std::fprintf(stderr, "unknown flag %s (see the comment at the top of attention_bench.cc)\n", f.c_str());
      return 2;
    }
  }
  if (Hkv < 0) Hkv = H;
  if (Lq < 0) Lq = L;
  namespace internal = sattn::cpu::internal;
  const internal::KeyLayout layout = key_layout == "rows"         ? internal::KeyLayout::kRows
                                     : key_layout == "transposed" ? internal::KeyLayout::kTransposed
                                                                  : internal::KeyLayout::kAuto;
  sattn::Shape s;
  s.B = B, s.Hq = H, s.Hkv = Hkv, s.Lq = Lq, s.Lk = L, s.D = D;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(size_t(B) * H * Lq * D), k(size_t(B) * Hkv * L * D), v(k.size());
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = nd(rng);
  const bool bf16 = dtype == "bf16";
  std::vector<uint16_t> qb, kb, vb;
  if (bf16) {
    for (auto& e : q) qb.push_back(ToBf16(e));
    for (auto& e : k) kb.push_back(ToBf16(e));
    for (auto& e : v) vb.push_back(ToBf16(e));
  }
  std::vector<float> out(q.size()), lse(size_t(B) * H * Lq);
  std::vector<uint16_t> outb(bf16 ? q.size() : 0);

  struct Named {
    const char* name;
    sattn::Spec spec;
  };
  std::vector<Named> specs;
  sattn::Spec sp;
  sp.kind = sattn::SpecKind::kBlockTopK;
  sp.block = 64, sp.keep = 0.125;
  if (which == "all" || which == "topk") specs.push_back({"BlockTopK(block=64, keep=0.125)", sp});
  sp = sattn::Spec();
  sp.kind = sattn::SpecKind::kSlidingWindow;
  sp.window = 1024, sp.causal = true;
  if (which == "all" || which == "window") specs.push_back({"SlidingWindow(1024, causal=True)", sp});
  sp = sattn::Spec();
  sp.causal = true;
  if (which == "all" || which == "causal") specs.push_back({"Dense(causal=True)", sp});
  sp = sattn::Spec();
  if (which == "all" || which == "dense") specs.push_back({"Dense()", sp});

  const double scale = 1.0 / std::sqrt(double(D));
  std::printf("cpu attention_bench: B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d %s threads=%d repeats=%d isa=%s keys=%s\n",
              B, H, Hkv, Lq, L, D, dtype.c_str(), threads, repeats, internal::SelectIsa()->name, key_layout.c_str());
  for (const Named& n : specs) {
    sattn::PlanOptions opt;
    opt.tile = 64;
    opt.scale = scale;
    opt.num_threads = threads;
    sattn::BlockPlan plan;
    const double t0 = NowMs();
    sattn::Status st = sattn::BuildPlan(n.spec, s, q.data(), k.data(), opt, &plan);
    const double plan_ms = NowMs() - t0;
    if (!st.ok()) {
      std::fprintf(stderr, "BuildPlan: %s\n", st.message.c_str());
      return 1;
    }
    sattn::cpu::AttentionArgs a;
    a.shape = s, a.scale = scale, a.num_threads = threads, a.lse = lse.data();
    a.dtype = bf16 ? sattn::cpu::DType::kBF16 : sattn::cpu::DType::kF32;
    a.q = bf16 ? static_cast<const void*>(qb.data()) : q.data();
    a.k = bf16 ? static_cast<const void*>(kb.data()) : k.data();
    a.v = bf16 ? static_cast<const void*>(vb.data()) : v.data();
    a.out = bf16 ? static_cast<void*>(outb.data()) : out.data();
    std::vector<double> times, cpu_times;
    for (int r = 0; r < repeats + 1; ++r) {  // the first run warms caches and page tables
      const double t1 = NowMs(), c1 = CpuMs();
      st = internal::AttentionWithIsa(a, plan, internal::SelectIsa(), layout);
      const double t = NowMs() - t1, c = CpuMs() - c1;
      if (!st.ok()) {
        std::fprintf(stderr, "Attention: %s\n", st.message.c_str());
        return 1;
      }
      if (r > 0) times.push_back(t), cpu_times.push_back(c);
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu_times.begin(), cpu_times.end());
    const double med = times[times.size() / 2], cpu_med = cpu_times[cpu_times.size() / 2];
    const double pairs = double(plan.VisiblePairs());
    const double density = pairs / (double(B) * H * Lq * double(L));
    const double flops = 4.0 * D * pairs;
    std::printf("%-34s density %.4f  plan %.1f ms  kernel median %.2f ms (min %.2f, max %.2f)  %.1f effective GFLOP/s"
                "  | CPU time %.2f ms: %.1f effective GFLOP per CPU-second\n",
                n.name, density, plan_ms, med, times.front(), times.back(), flops / (med * 1e6), cpu_med,
                flops / (cpu_med * 1e6));
  }
  return 0;
}
