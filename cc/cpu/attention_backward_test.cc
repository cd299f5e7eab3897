// Tests of the CPU backward against a straightforward double-precision implementation of the
// gradient formulas over the same BlockPlan (cc/cpu/attention.h), for every ISA the host supports:
// random hand-built plans (bitmaps of several densities, bits beyond Lk, broadcast and per-head
// plans, empty rows), planner plans, GQA, Lq < Lk, L = 1, D not a multiple of the lanes, dlse,
// rows dropped by lse = +inf, bit-identical results for 1..3 threads, and argument errors.
//
// The kernel and the reference read the same fp32 q, k, v, dout, dlse and the same fp32 out and
// lse (the double forward rounded to fp32). Tolerance: |g - ref| <= 2e-5 * (1 + max|ref|) per
// gradient array (fp32 accumulation over up to a few hundred keys).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/cpu/kernels.h"
#include "cc/testing/check.h"
#include "sattn/plan.h"
#include "sattn/spec.h"

namespace {

using sattn::BlockPlan;
using sattn::Shape;
using sattn::cpu::BackwardArgs;
namespace internal = sattn::cpu::internal;

std::vector<const internal::Isa*> HostIsas() {
  std::vector<const internal::Isa*> isas = {internal::IsaPortable()};
  if (internal::IsaAvx2() && internal::CpuHasAvx2()) isas.push_back(internal::IsaAvx2());
  if (internal::IsaAvx512() && internal::CpuHasAvx512()) isas.push_back(internal::IsaAvx512());
  return isas;
}

void InitPlan(const Shape& s, int block, int plan_b, int plan_h, BlockPlan* pl) {
  pl->block = block;
  pl->B = s.B, pl->Hq = s.Hq, pl->Lq = s.Lq, pl->Lk = s.Lk;
  pl->plan_b = plan_b, pl->plan_h = plan_h;
  pl->q_block_begin = (s.Lk - s.Lq) / block;
  pl->n_k_blocks = (s.Lk + block - 1) / block;
  pl->n_q_blocks = pl->n_k_blocks - pl->q_block_begin;
  pl->words_per_row = (block + 63) / 64;
  pl->row_ptr.assign(1, 0);
  pl->col_idx.clear();
  pl->mask_idx.clear();
  pl->bitmaps.clear();
}

// Each row keeps a random subset of key blocks; entries all-visible or with a random bitmap of
// density 0, ~12.5 % or ~75 % (bits beyond Lk included: they must never count).
BlockPlan RandomPlan(const Shape& s, int block, double keep, std::mt19937_64& rng) {
  BlockPlan pl;
  InitPlan(s, block, rng() % 2 ? s.B : 1, rng() % 2 ? s.Hq : 1, &pl);
  std::uniform_real_distribution<double> u01(0, 1);
  const int64_t per_mask = int64_t(block) * pl.words_per_row;
  for (int64_t row = 0; row < pl.rows(); ++row) {
    for (int c = 0; c < pl.n_k_blocks; ++c) {
      if (u01(rng) >= keep) continue;
      pl.col_idx.push_back(c);
      const double kind = u01(rng);
      if (kind < 0.5) {
        pl.mask_idx.push_back(-1);
        continue;
      }
      const int density = kind < 0.6 ? 0 : kind < 0.8 ? 1 : 2;
      const int32_t m = int32_t(pl.bitmaps.size() / size_t(per_mask));
      for (int64_t w = 0; w < per_mask; ++w)
        pl.bitmaps.push_back(density == 0 ? 0 : density == 1 ? rng() & rng() & rng() : rng() | rng());
      pl.mask_idx.push_back(m);
    }
    pl.row_ptr.push_back(int32_t(pl.col_idx.size()));
  }
  return pl;
}

// vis[(b*Hq+h)*Lq*Lk + i*Lk + j]: the plan's visible pairs.
std::vector<char> Visible(const Shape& s, const BlockPlan& pl) {
  std::vector<char> vis(size_t(s.B) * s.Hq * s.Lq * s.Lk, 0);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.Hq; ++h)
      for (int i = 0; i < s.Lq; ++i) {
        const int64_t p = int64_t(i) + s.Lk - s.Lq, a = p / pl.block;
        const int64_t row = pl.row_of(b, h, int32_t(a - pl.q_block_begin));
        for (int32_t e = pl.row_ptr[row]; e < pl.row_ptr[row + 1]; ++e) {
          const int64_t c = pl.col_idx[e];
          for (int64_t j = c * pl.block; j < std::min<int64_t>((c + 1) * pl.block, s.Lk); ++j) {
            bool visible = true;
            if (pl.mask_idx[e] >= 0) {
              const int64_t qi = p - a * pl.block, kk = j - c * pl.block;
              visible = (pl.bitmap(pl.mask_idx[e])[qi * pl.words_per_row + kk / 64] >> (kk % 64)) & 1;
            }
            vis[((size_t(b) * s.Hq + h) * s.Lq + i) * s.Lk + size_t(j)] = visible;
          }
        }
      }
  return vis;
}

struct Case {
  Shape s;
  double scale;
  std::vector<float> q, k, v, out, lse, dout, dlse;
  std::vector<double> dq, dk, dv;  // reference gradients
};

// Random inputs, the double forward (rounded to fp32 as the kernel's inputs) and the double
// backward. drop: rows whose lse is set to +inf (they must contribute nothing).
Case MakeCase(const Shape& s, const BlockPlan& pl, std::mt19937_64& rng, bool with_dlse, int drop_every = 0) {
  Case c;
  c.s = s;
  c.scale = 1.0 / std::sqrt(double(s.D));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t nq = size_t(s.B) * s.Hq * s.Lq, nk = size_t(s.B) * s.Hkv * s.Lk, D = size_t(s.D);
  auto fill = [&](std::vector<float>* x, size_t n) {
    x->resize(n);
    for (auto& e : *x) e = nd(rng);
  };
  fill(&c.q, nq * D), fill(&c.k, nk * D), fill(&c.v, nk * D), fill(&c.dout, nq * D);
  if (with_dlse) fill(&c.dlse, nq);
  const std::vector<char> vis = Visible(s, pl);
  const int group = s.Hq / s.Hkv;
  const double inf = std::numeric_limits<double>::infinity();
  c.out.assign(nq * D, 0.0f), c.lse.assign(nq, -float(inf));
  c.dq.assign(nq * D, 0.0), c.dk.assign(nk * D, 0.0), c.dv.assign(nk * D, 0.0);
  std::vector<double> sc(size_t(s.Lk)), o(D);
  for (size_t row = 0; row < nq; ++row) {
    const size_t bh = row / size_t(s.Lq), b = bh / size_t(s.Hq), h = bh % size_t(s.Hq);
    const size_t kvh = b * size_t(s.Hkv) + h / size_t(group);
    const char* vr = vis.data() + row * size_t(s.Lk);
    double mx = -inf;
    for (int j = 0; j < s.Lk; ++j) {
      if (!vr[j]) continue;
      double dot = 0;
      for (size_t d = 0; d < D; ++d) dot += double(c.q[row * D + d]) * c.k[(kvh * s.Lk + j) * D + d];
      sc[j] = dot * c.scale;
      mx = std::max(mx, sc[j]);
    }
    if (mx == -inf) continue;
    double sum = 0;
    for (int j = 0; j < s.Lk; ++j)
      if (vr[j]) sum += std::exp(sc[j] - mx);
    const double lse = mx + std::log(sum);
    std::fill(o.begin(), o.end(), 0.0);
    for (int j = 0; j < s.Lk; ++j)
      if (vr[j])
        for (size_t d = 0; d < D; ++d) o[d] += std::exp(sc[j] - lse) * c.v[(kvh * s.Lk + j) * D + d];
    for (size_t d = 0; d < D; ++d) c.out[row * D + d] = float(o[d]);
    c.lse[row] = float(lse);
    if (drop_every && row % size_t(drop_every) == 0) {
      c.lse[row] = float(inf);
      continue;  // dropped: contributes nothing
    }
    // Backward from the fp32 out and lse the kernel sees.
    double delta = with_dlse ? -double(c.dlse[row]) : 0.0;
    for (size_t d = 0; d < D; ++d) delta += double(c.dout[row * D + d]) * c.out[row * D + d];
    for (int j = 0; j < s.Lk; ++j) {
      if (!vr[j]) continue;
      const double p = std::exp(sc[j] - double(c.lse[row]));
      double dp = 0;
      for (size_t d = 0; d < D; ++d) dp += double(c.dout[row * D + d]) * c.v[(kvh * s.Lk + j) * D + d];
      const double ds = p * (dp - delta);
      for (size_t d = 0; d < D; ++d) {
        c.dv[(kvh * s.Lk + j) * D + d] += p * c.dout[row * D + d];
        c.dq[row * D + d] += c.scale * ds * c.k[(kvh * s.Lk + j) * D + d];
        c.dk[(kvh * s.Lk + j) * D + d] += c.scale * ds * c.q[row * D + d];
      }
    }
  }
  return c;
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

sattn::Status Run(const Case& c, const BlockPlan& pl, const internal::Isa* isa, int threads, Grads* g) {
  g->dq.assign(c.q.size(), 777.0f), g->dk.assign(c.k.size(), 777.0f), g->dv.assign(c.v.size(), 777.0f);
  BackwardArgs a;
  a.shape = c.s, a.scale = c.scale;
  a.q = c.q.data(), a.k = c.k.data(), a.v = c.v.data(), a.out = c.out.data(), a.lse = c.lse.data();
  a.dout = c.dout.data(), a.dlse = c.dlse.empty() ? nullptr : c.dlse.data();
  a.dq = g->dq.data(), a.dk = g->dk.data(), a.dv = g->dv.data();
  a.num_threads = threads;
  return internal::AttentionBackwardWithIsa(a, pl, isa, threads > 1 ? 0 : internal::kSerialBelow);
}

bool Close(const char* what, const char* name, const std::vector<float>& got, const std::vector<double>& ref) {
  double mx = 0, worst = 0;
  size_t at = 0;
  for (double r : ref) mx = std::max(mx, std::fabs(r));
  const double tol = 2e-5 * (1.0 + mx);
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(double(got[i]) - ref[i]);
    if (!(e <= worst)) worst = e, at = i;
  }
  if (!(worst <= tol)) {
    std::fprintf(stderr, "%s: %s[%zu] = %.8g, reference %.8g (error %.3g > %.3g)\n", what, name, at, got[at],
                 ref[at], worst, tol);
    return false;
  }
  return true;
}

bool Check(const std::string& what, const Case& c, const BlockPlan& pl, int threads) {
  bool ok = true;
  for (const internal::Isa* isa : HostIsas()) {
    Grads g;
    const sattn::Status st = Run(c, pl, isa, threads, &g);
    const std::string tag = what + " [" + isa->name + "]";
    if (!st.ok()) {
      std::fprintf(stderr, "%s: status %s\n", tag.c_str(), st.message.c_str());
      return false;
    }
    ok &= Close(tag.c_str(), "dq", g.dq, c.dq);
    ok &= Close(tag.c_str(), "dk", g.dk, c.dk);
    ok &= Close(tag.c_str(), "dv", g.dv, c.dv);
  }
  return ok;
}

std::string Describe(const Shape& s, int block) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d block=%d", s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D,
                block);
  return buf;
}

void TestRandomPlans() {
  std::mt19937_64 rng(20261203);
  const int dims[] = {16, 64, 20, 32, 8, 80};
  const int blocks[] = {64, 16, 5, 32, 100, 1, 128};
  for (int iter = 0; iter < 28; ++iter) {
    Shape s;
    s.B = 1 + int(rng() % 2);
    s.Hkv = 1 + int(rng() % 2);
    s.Hq = s.Hkv * (1 + int(rng() % 3));
    s.D = dims[iter % 6];
    const int block = blocks[iter % 7];
    s.Lk = iter % 9 == 0 ? 1 : 1 + int(rng() % 150);
    s.Lq = iter % 3 == 0 ? s.Lk : 1 + int(rng() % s.Lk);
    const BlockPlan pl = RandomPlan(s, block, iter % 5 == 0 ? 1.0 : 0.5, rng);
    SATTN_CHECK(sattn::ValidatePlan(pl).ok());
    const Case c = MakeCase(s, pl, rng, iter % 2 == 0, iter % 4 == 1 ? 3 : 0);
    SATTN_CHECK(Check("random plan " + Describe(s, block), c, pl, 1 + iter % 3));
  }
}

void TestPlannerSpecs() {
  std::mt19937_64 rng(7);
  struct P {
    sattn::SpecKind kind;
    bool causal;
    int block;
  } specs[] = {{sattn::SpecKind::kDense, true, 16},
               {sattn::SpecKind::kSlidingWindow, false, 16},
               {sattn::SpecKind::kBlockTopK, true, 8},
               {sattn::SpecKind::kBigBird, false, 8}};
  for (const P& p : specs) {
    Shape s;
    s.B = 1, s.Hq = 4, s.Hkv = 2, s.Lq = 45, s.Lk = 61, s.D = 32;
    sattn::Spec spec;
    spec.kind = p.kind, spec.causal = p.causal, spec.block = p.block, spec.window = 9, spec.keep = 0.4;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(size_t(s.B) * s.Hq * s.Lq * s.D), k(size_t(s.B) * s.Hkv * s.Lk * s.D);
    for (auto& x : q) x = nd(rng);
    for (auto& x : k) x = nd(rng);
    sattn::PlanOptions opt;
    opt.tile = p.block;
    BlockPlan pl;
    SATTN_CHECK(sattn::BuildPlan(spec, s, q.data(), k.data(), opt, &pl).ok());
    const Case c = MakeCase(s, pl, rng, true);
    SATTN_CHECK(Check("planner spec " + std::to_string(int(p.kind)) + " " + Describe(s, p.block), c, pl, 2));
  }
}

// Every thread count gives the same bits (each output row is summed by one item in one order).
void TestThreadInvariance() {
  std::mt19937_64 rng(11);
  Shape s;
  s.B = 2, s.Hq = 4, s.Hkv = 2, s.Lq = 130, s.Lk = 130, s.D = 64;
  const BlockPlan pl = RandomPlan(s, 32, 0.6, rng);
  const Case c = MakeCase(s, pl, rng, true);
  for (const internal::Isa* isa : HostIsas()) {
    Grads g1, g;
    SATTN_CHECK(Run(c, pl, isa, 1, &g1).ok());
    for (int t : {2, 3, 7}) {
      SATTN_CHECK(Run(c, pl, isa, t, &g).ok());
      SATTN_CHECK(g.dq == g1.dq && g.dk == g1.dk && g.dv == g1.dv);
    }
  }
}

// A plan with no entries: every gradient is exactly 0.
void TestEmptyPlan() {
  std::mt19937_64 rng(3);
  Shape s;
  s.B = 1, s.Hq = 2, s.Hkv = 1, s.Lq = 20, s.Lk = 20, s.D = 16;
  BlockPlan pl;
  InitPlan(s, 8, 1, 1, &pl);
  pl.row_ptr.assign(size_t(pl.rows() + 1), 0);
  const Case c = MakeCase(s, pl, rng, true);
  for (const internal::Isa* isa : HostIsas()) {
    Grads g;
    SATTN_CHECK(Run(c, pl, isa, 2, &g).ok());
    for (float x : g.dq) SATTN_CHECK(x == 0.0f);
    for (float x : g.dk) SATTN_CHECK(x == 0.0f);
    for (float x : g.dv) SATTN_CHECK(x == 0.0f);
  }
}

void TestValidation() {
  std::mt19937_64 rng(5);
  Shape s;
  s.B = 1, s.Hq = 2, s.Hkv = 2, s.Lq = 8, s.Lk = 8, s.D = 8;
  BlockPlan pl;
  InitPlan(s, 8, 1, 1, &pl);
  pl.col_idx = {0}, pl.mask_idx = {-1}, pl.row_ptr = {0, 1};
  const Case c = MakeCase(s, pl, rng, false);
  Grads g;
  g.dq.resize(c.q.size()), g.dk.resize(c.k.size()), g.dv.resize(c.v.size());
  auto base = [&] {
    BackwardArgs a;
    a.shape = s, a.scale = c.scale;
    a.q = c.q.data(), a.k = c.k.data(), a.v = c.v.data(), a.out = c.out.data(), a.lse = c.lse.data();
    a.dout = c.dout.data(), a.dq = g.dq.data(), a.dk = g.dk.data(), a.dv = g.dv.data();
    return a;
  };
  auto expect = [&](const BackwardArgs& a, const BlockPlan& p, const char* prefix) {
    const sattn::Status st = sattn::cpu::AttentionBackward(a, p);
    SATTN_CHECK(!st.ok() && st.message.rfind(prefix, 0) == 0);
    if (st.ok() || st.message.rfind(prefix, 0) != 0)
      std::fprintf(stderr, "expected an error starting with %s, got '%s'\n", prefix, st.message.c_str());
  };
  SATTN_CHECK(sattn::cpu::AttentionBackward(base(), pl).ok());
  BackwardArgs a = base();
  a.lse = nullptr;
  expect(a, pl, "lse");
  a = base(), a.dout = nullptr;
  expect(a, pl, "dout");
  a = base(), a.dk = nullptr;
  expect(a, pl, "dk");
  a = base(), a.scale = -1;
  expect(a, pl, "scale");
  a = base(), a.num_threads = sattn::kMaxThreads + 1;
  expect(a, pl, "num_threads");
  a = base(), a.shape.Lq = 4;
  expect(a, pl, "plan.Lq");
  BlockPlan bad = pl;
  bad.col_idx = {5};
  expect(base(), bad, "plan");
}

// The sigmoid and relu2 normalizers (attention.h), forward and backward, on every ISA against
// a double implementation of their formulas over random plans: weights w(s) = sigmoid(s - log Lk)
// or relu(s)^2 / Lk on visible pairs, out = sum w v (lse 0 on rows with a key, -inf without),
// dv = sum w dout, dS = w'(s) dout.v; rows with lse = +inf contribute nothing; dlse is ignored.
void TestNormalizers() {
  std::mt19937_64 rng(22);
  using sattn::cpu::Normalizer;
  const double inf = std::numeric_limits<double>::infinity();
  for (int iter = 0; iter < 12; ++iter) {
    const Normalizer nz = iter % 2 == 0 ? Normalizer::kSigmoid : Normalizer::kRelu2;
    Shape s;
    s.B = 1 + iter % 2, s.Hkv = 1 + (iter / 2) % 2, s.Hq = s.Hkv * (1 + iter % 3);
    s.D = (const int[]){16, 20, 64, 8}[iter % 4];
    s.Lk = 1 + int(rng() % 140);
    s.Lq = iter % 3 == 2 ? 1 : 1 + int(rng() % s.Lk);
    const int block = (const int[]){16, 64, 5, 32}[iter % 4];
    const BlockPlan pl = RandomPlan(s, block, iter % 5 == 0 ? 1.0 : 0.5, rng);
    Case c = MakeCase(s, pl, rng, true, iter % 4 == 1 ? 3 : 0);
    const std::vector<char> vis = Visible(s, pl);
    const size_t nq = size_t(s.B) * s.Hq * s.Lq, D = size_t(s.D);
    const int group = s.Hq / s.Hkv;
    std::vector<double> out(nq * D, 0.0);
    std::vector<float> marker(nq, -float(inf));
    std::fill(c.dq.begin(), c.dq.end(), 0.0), std::fill(c.dk.begin(), c.dk.end(), 0.0);
    std::fill(c.dv.begin(), c.dv.end(), 0.0);
    for (size_t row = 0; row < nq; ++row) {
      const size_t bh = row / size_t(s.Lq), b = bh / size_t(s.Hq), h = bh % size_t(s.Hq);
      const size_t kvh = b * size_t(s.Hkv) + h / size_t(group);
      const bool dropped = std::isinf(c.lse[row]) && c.lse[row] > 0;
      for (int j = 0; j < s.Lk; ++j) {
        if (!vis[row * size_t(s.Lk) + j]) continue;
        marker[row] = 0.0f;
        double dot = 0, dp = 0;
        for (size_t d = 0; d < D; ++d) {
          dot += double(c.q[row * D + d]) * c.k[(kvh * s.Lk + j) * D + d];
          dp += double(c.dout[row * D + d]) * c.v[(kvh * s.Lk + j) * D + d];
        }
        const double sc = dot * c.scale;
        double w, dw;
        if (nz == Normalizer::kSigmoid) {
          w = 1.0 / (1.0 + std::exp(-(sc - std::log(double(s.Lk)))));
          dw = w * (1.0 - w);
        } else {
          w = sc > 0 ? sc * sc / s.Lk : 0.0;
          dw = sc > 0 ? 2.0 * sc / s.Lk : 0.0;
        }
        for (size_t d = 0; d < D; ++d) out[row * D + d] += w * c.v[(kvh * s.Lk + j) * D + d];
        if (dropped) continue;
        for (size_t d = 0; d < D; ++d) {
          c.dv[(kvh * s.Lk + j) * D + d] += w * c.dout[row * D + d];
          c.dq[row * D + d] += c.scale * dw * dp * c.k[(kvh * s.Lk + j) * D + d];
          c.dk[(kvh * s.Lk + j) * D + d] += c.scale * dw * dp * c.q[row * D + d];
        }
      }
      if (!dropped) c.lse[row] = marker[row];
    }
    const std::string what = std::string(nz == Normalizer::kSigmoid ? "sigmoid " : "relu2 ") + Describe(s, block);
    for (const internal::Isa* isa : HostIsas()) {
      std::vector<float> got(nq * D, 777.0f), lse(nq, 777.0f);
      sattn::cpu::AttentionArgs a;
      a.shape = s, a.scale = c.scale, a.q = c.q.data(), a.k = c.k.data(), a.v = c.v.data();
      a.out = got.data(), a.lse = lse.data(), a.normalizer = nz, a.num_threads = 1 + iter % 3;
      SATTN_CHECK(internal::AttentionWithIsa(a, pl, isa, internal::KeyLayout::kAuto, 0).ok());
      SATTN_CHECK(Close((what + " [" + isa->name + "] forward").c_str(), "out", got, out));
      SATTN_CHECK(lse == marker);
      Grads g;
      g.dq.assign(c.q.size(), 777.0f), g.dk.assign(c.k.size(), 777.0f), g.dv.assign(c.v.size(), 777.0f);
      BackwardArgs b;
      b.shape = s, b.scale = c.scale, b.normalizer = nz;
      b.q = c.q.data(), b.k = c.k.data(), b.v = c.v.data(), b.out = got.data(), b.lse = c.lse.data();
      b.dout = c.dout.data(), b.dlse = c.dlse.data();
      b.dq = g.dq.data(), b.dk = g.dk.data(), b.dv = g.dv.data(), b.num_threads = 1 + iter % 3;
      SATTN_CHECK(internal::AttentionBackwardWithIsa(b, pl, isa, 0).ok());
      const std::string tag = what + " [" + isa->name + "] backward";
      SATTN_CHECK(Close(tag.c_str(), "dq", g.dq, c.dq) && Close(tag.c_str(), "dk", g.dk, c.dk) &&
                  Close(tag.c_str(), "dv", g.dv, c.dv));
    }
  }
}

}  // namespace

int main() {
  TestRandomPlans();
  TestPlannerSpecs();
  TestThreadInvariance();
  TestEmptyPlan();
  TestValidation();
  TestNormalizers();
  return sattn_testing::Finish("attention_backward_test");
}
