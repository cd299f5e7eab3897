// Tests of the CPU backend against a straightforward double-precision implementation of the
// same BlockPlan semantics, for every ISA the host supports (AVX-512, AVX2, portable).
//
// Tolerances (vs the float64 computation on the same inputs):
//   fp32: |out - ref| <= 2e-5 + 2e-5*|ref| and the same for LSE.
//   bf16: inputs are bf16 (the reference reads the same bf16 values in double); the output is
//         rounded to bf16 once, so |out - ref| <= 2^-8*|ref| + 1e-4 (one bf16 rounding is at
//         most 2^-9 relative, plus the fp32 accumulation error).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
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
using sattn::cpu::AttentionArgs;
using sattn::cpu::DType;
namespace internal = sattn::cpu::internal;

std::vector<const internal::Isa*> HostIsas() {
  std::vector<const internal::Isa*> isas = {internal::IsaPortable()};
  if (internal::IsaAvx2() && internal::CpuHasAvx2()) isas.push_back(internal::IsaAvx2());
  if (internal::IsaAvx512() && internal::CpuHasAvx512()) isas.push_back(internal::IsaAvx512());
  return isas;
}

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float FromBf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Is key j visible to query position p under the plan (the contract of plan.h, written out)?
bool PlanVisible(const BlockPlan& pl, int b, int h, int64_t p, int64_t j) {
  if (j >= pl.Lk) return false;
  const int64_t a = p / pl.block, c = j / pl.block;
  const int64_t row = pl.row_of(b, h, int32_t(a - pl.q_block_begin));
  for (int32_t e = pl.row_ptr[row]; e < pl.row_ptr[row + 1]; ++e) {
    if (pl.col_idx[e] != c) continue;
    if (pl.mask_idx[e] < 0) return true;
    const uint64_t* bm = pl.bitmap(pl.mask_idx[e]);
    const int64_t i = p - a * pl.block, k = j - c * pl.block;
    return (bm[i * pl.words_per_row + k / 64] >> (k % 64)) & 1;
  }
  return false;
}

// Double-precision attention over the plan: out (B,Hq,Lq,D), lse (B,Hq,Lq).
void Reference(const Shape& s, const BlockPlan& pl, double scale, const std::vector<float>& q,
               const std::vector<float>& k, const std::vector<float>& v, std::vector<double>* out,
               std::vector<double>* lse) {
  const int D = s.D, group = s.Hq / s.Hkv;
  out->assign(size_t(s.B) * s.Hq * s.Lq * D, 0.0);
  lse->assign(size_t(s.B) * s.Hq * s.Lq, -std::numeric_limits<double>::infinity());
  std::vector<double> sc(size_t(s.Lk));
  std::vector<char> vis;
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.Hq; ++h) {
      // Visibility of this head, by walking the plan's entries once (PlanVisible per pair is
      // the same rule, but linear in the row's entries).
      vis.assign(size_t(s.Lq) * s.Lk, 0);
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
            vis[size_t(i) * s.Lk + j] = visible;
          }
        }
      }
      for (int i = 0; i < s.Lq; ++i) {
        const size_t qo = ((size_t(b) * s.Hq + h) * s.Lq + i);
        const size_t kvh = size_t(b) * s.Hkv + h / group;
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < s.Lk; ++j) {
          sc[j] = -std::numeric_limits<double>::infinity();
          if (!vis[size_t(i) * s.Lk + j]) continue;
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[qo * D + d]) * k[(kvh * s.Lk + j) * D + d];
          sc[j] = dot * scale;
          mx = std::max(mx, sc[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;
        double sum = 0;
        for (int j = 0; j < s.Lk; ++j) sum += std::exp(sc[j] - mx);
        for (int j = 0; j < s.Lk; ++j) {
          const double w = std::exp(sc[j] - mx) / sum;
          if (w == 0) continue;
          for (int d = 0; d < D; ++d) (*out)[qo * D + d] += w * v[(kvh * s.Lk + j) * D + d];
        }
        (*lse)[qo] = mx + std::log(sum);
      }
    }
}

// Fills the geometry fields of a plan for the shape and block.
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

// A hand-built plan: each row keeps a random subset of key blocks (density `keep`), and each
// kept entry is all-visible or carries a random bitmap (some all-zero, some sparse, some with
// bits set beyond Lk, which must never count).
BlockPlan RandomPlan(const Shape& s, int block, double keep, std::mt19937_64& rng) {
  BlockPlan pl;
  std::uniform_int_distribution<int> coin(0, 1);
  InitPlan(s, block, coin(rng) ? s.B : 1, coin(rng) ? s.Hq : 1, &pl);
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
      // Bit densities 0 %, ~12.5 % (AND of three random words) and ~75 % (OR of two).
      const int density = kind < 0.6 ? 0 : kind < 0.8 ? 1 : 2;
      const int32_t m = int32_t(pl.bitmaps.size() / size_t(per_mask));
      for (int64_t w = 0; w < per_mask; ++w) {
        const uint64_t word = density == 0 ? 0 : density == 1 ? rng() & rng() & rng() : rng() | rng();
        pl.bitmaps.push_back(word);
      }
      pl.mask_idx.push_back(m);
    }
    pl.row_ptr.push_back(int32_t(pl.col_idx.size()));
  }
  return pl;
}

struct Data {
  std::vector<float> q, k, v;            // values the reference sees
  std::vector<uint16_t> qb, kb, vb;      // bf16 bit patterns (bf16 runs only)
};

Data RandomData(const Shape& s, bool bf16, std::mt19937_64& rng, float k_scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Data x;
  auto fill = [&](std::vector<float>* f, std::vector<uint16_t>* hb, size_t n, float mul) {
    f->resize(n);
    for (auto& e : *f) e = nd(rng) * mul;
    if (bf16) {
      hb->resize(n);
      for (size_t i = 0; i < n; ++i) {
        (*hb)[i] = ToBf16((*f)[i]);
        (*f)[i] = FromBf16((*hb)[i]);
      }
    }
  };
  fill(&x.q, &x.qb, size_t(s.B) * s.Hq * s.Lq * s.D, 1.0f);
  fill(&x.k, &x.kb, size_t(s.B) * s.Hkv * s.Lk * s.D, k_scale);
  fill(&x.v, &x.vb, size_t(s.B) * s.Hkv * s.Lk * s.D, 1.0f);
  return x;
}

// Runs one case on one ISA and compares with the reference; returns false on mismatch.
bool RunCase(const char* what, const Shape& s, const BlockPlan& pl, const Data& x, bool bf16,
             const internal::Isa* isa, int threads, double scale = 0.0,
             internal::KeyLayout layout = internal::KeyLayout::kAuto) {
  if (scale == 0.0) scale = 1.0 / std::sqrt(double(s.D));
  const size_t n_out = size_t(s.B) * s.Hq * s.Lq * s.D, n_lse = size_t(s.B) * s.Hq * s.Lq;
  std::vector<float> out(n_out, 12345.0f), lse(n_lse, 12345.0f);
  std::vector<uint16_t> outb(n_out, 0x4000);
  AttentionArgs a;
  a.shape = s;
  a.scale = scale;
  a.dtype = bf16 ? DType::kBF16 : DType::kF32;
  a.q = bf16 ? static_cast<const void*>(x.qb.data()) : x.q.data();
  a.k = bf16 ? static_cast<const void*>(x.kb.data()) : x.k.data();
  a.v = bf16 ? static_cast<const void*>(x.vb.data()) : x.v.data();
  a.out = bf16 ? static_cast<void*>(outb.data()) : out.data();
  a.lse = lse.data();
  a.num_threads = threads;
  const sattn::Status st = internal::AttentionWithIsa(a, pl, isa, layout, threads > 1 ? 0 : internal::kSerialBelow);
  const char* layout_name = layout == internal::KeyLayout::kRows         ? "rows"
                            : layout == internal::KeyLayout::kTransposed ? "transposed"
                                                                         : "auto";
  char tag[64];
  std::snprintf(tag, sizeof tag, "%s, %s keys", isa->name, layout_name);
  if (!st.ok()) {
    std::fprintf(stderr, "%s [%s]: status %s\n", what, tag, st.message.c_str());
    return false;
  }
  std::vector<double> ref, ref_lse;
  Reference(s, pl, scale, x.q, x.k, x.v, &ref, &ref_lse);
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < n_out; ++i) {
    const double got = bf16 ? FromBf16(outb[i]) : out[i];
    const double tol = bf16 ? 1.0 / 256 * std::fabs(ref[i]) + 1e-4 : 2e-5 + 2e-5 * std::fabs(ref[i]);
    const double excess = std::fabs(got - ref[i]) / tol;
    if (!(excess <= worst)) worst = excess, worst_i = i;
  }
  for (size_t i = 0; i < n_lse; ++i) {
    const bool ref_inf = std::isinf(ref_lse[i]);
    if (ref_inf != std::isinf(lse[i]) || (ref_inf && lse[i] > 0)) {
      std::fprintf(stderr, "%s [%s]: lse[%zu] = %g, reference %g\n", what, tag, i, lse[i], ref_lse[i]);
      return false;
    }
    if (ref_inf) {
      // Empty row: the output row must be exactly zero.
      for (int d = 0; d < s.D; ++d) {
        const double got = bf16 ? FromBf16(outb[i * s.D + d]) : out[i * s.D + d];
        if (got != 0.0) {
          std::fprintf(stderr, "%s [%s]: empty row %zu has out %g\n", what, tag, i, got);
          return false;
        }
      }
      continue;
    }
    const double excess = std::fabs(lse[i] - ref_lse[i]) / (2e-5 + 2e-5 * std::fabs(ref_lse[i]));
    if (!(excess <= 1.0)) {
      std::fprintf(stderr, "%s [%s]: lse[%zu] = %.8g, reference %.8g\n", what, tag, i, lse[i], ref_lse[i]);
      return false;
    }
  }
  if (!(worst <= 1.0)) {
    const double got = bf16 ? FromBf16(outb[worst_i]) : out[worst_i];
    std::fprintf(stderr, "%s [%s]: out[%zu] = %.8g, reference %.8g (%.2fx the tolerance)\n", what,
                 tag, worst_i, got, ref[worst_i], worst);
    return false;
  }
  return true;
}

std::string Describe(const Shape& s, int block, bool bf16) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "B=%d Hq=%d Hkv=%d Lq=%d Lk=%d D=%d block=%d %s", s.B, s.Hq, s.Hkv,
                s.Lq, s.Lk, s.D, block, bf16 ? "bf16" : "fp32");
  return buf;
}

// Both key layouts are run explicitly (kAuto picks one by the plan's shape).
constexpr internal::KeyLayout kLayouts[] = {internal::KeyLayout::kTransposed, internal::KeyLayout::kRows};

// Random shapes x random hand-built plans, fp32 and bf16, every ISA, both key layouts.
void TestRandomPlans() {
  std::mt19937_64 rng(20261125);
  const int dims[] = {16, 32, 64, 80, 128, 8, 20};
  const int blocks[] = {64, 16, 100, 128, 5, 32, 4096, 1};
  for (int iter = 0; iter < 48; ++iter) {
    Shape s;
    s.B = 1 + int(rng() % 2);
    s.Hkv = 1 + int(rng() % 2);
    s.Hq = s.Hkv * (1 + int(rng() % 3));
    s.D = dims[iter % 7];
    const int block = blocks[iter % 8];
    s.Lk = iter % 11 == 0 ? 1 : 1 + int(rng() % 260);
    s.Lq = iter % 3 == 0 ? s.Lk : 1 + int(rng() % s.Lk);
    const bool bf16 = iter % 4 == 3;
    const double keep = iter % 5 == 0 ? 1.0 : 0.5;
    const BlockPlan pl = RandomPlan(s, block, keep, rng);
    SATTN_CHECK(sattn::ValidatePlan(pl).ok());
    const Data x = RandomData(s, bf16, rng);
    for (const internal::Isa* isa : HostIsas()) {
      const std::string what = "random plan " + Describe(s, block, bf16);
      for (auto layout : kLayouts) SATTN_CHECK(RunCase(what.c_str(), s, pl, x, bf16, isa, 1 + iter % 3, 0.0, layout));
    }
  }
}

// Plans from the shared planner for the token-rule and data-dependent specs.
void TestPlannerSpecs() {
  std::mt19937_64 rng(7);
  struct Case {
    sattn::Spec spec;
    Shape s;
    int tile;
  };
  std::vector<Case> cases;
  auto sw = [](int window, bool causal, int dilation, int global) {
    sattn::Spec sp;
    sp.kind = sattn::SpecKind::kSlidingWindow;
    sp.window = window, sp.causal = causal, sp.dilation = dilation, sp.global_tokens = global;
    return sp;
  };
  auto shape = [](int B, int Hq, int Hkv, int Lq, int Lk, int D) {
    Shape s;
    s.B = B, s.Hq = Hq, s.Hkv = Hkv, s.Lq = Lq, s.Lk = Lk, s.D = D;
    return s;
  };
  sattn::Spec dense;
  dense.kind = sattn::SpecKind::kDense;
  sattn::Spec causal = dense;
  causal.causal = true;
  sattn::Spec topk;
  topk.kind = sattn::SpecKind::kBlockTopK;
  topk.block = 32, topk.keep = 0.25;
  sattn::Spec topk_causal = topk;
  topk_causal.causal = true;
  cases.push_back({dense, shape(1, 2, 1, 200, 200, 64), 64});
  cases.push_back({causal, shape(2, 4, 2, 131, 131, 32), 64});
  cases.push_back({causal, shape(1, 3, 1, 1, 300, 64), 64});   // decode
  cases.push_back({causal, shape(1, 2, 2, 37, 190, 80), 16});  // Lq < Lk
  cases.push_back({sw(24, true, 1, 0), shape(1, 2, 1, 250, 250, 64), 64});
  cases.push_back({sw(10, false, 3, 5), shape(1, 1, 1, 150, 180, 16), 32});
  cases.push_back({topk, shape(2, 2, 1, 160, 160, 64), 0});
  cases.push_back({topk_causal, shape(1, 4, 2, 100, 150, 128), 0});
  for (const Case& c : cases) {
    for (bool bf16 : {false, true}) {
      const Data x = RandomData(c.s, bf16, rng);
      sattn::PlanOptions opt;
      if (c.tile) opt.tile = c.tile;
      BlockPlan pl;
      const sattn::Status st = sattn::BuildPlan(c.spec, c.s, x.q.data(), x.k.data(), opt, &pl);
      SATTN_CHECK(st.ok());
      if (!st.ok()) continue;
      for (const internal::Isa* isa : HostIsas()) {
        const std::string what = "planner spec " + std::to_string(int(c.spec.kind)) + " " +
                                 Describe(c.s, pl.block, bf16);
        for (auto layout : kLayouts) SATTN_CHECK(RunCase(what.c_str(), c.s, pl, x, bf16, isa, 2, 0.0, layout));
        // The plan's own semantics agree with the token rule for the closed-form specs.
        if (c.spec.kind == sattn::SpecKind::kSlidingWindow || c.spec.kind == sattn::SpecKind::kDense) {
          int bad = 0;
          for (int i = 0; i < c.s.Lq; ++i)
            for (int j = 0; j < c.s.Lk; ++j) {
              const int64_t p = int64_t(i) + c.s.Lk - c.s.Lq;
              bad += PlanVisible(pl, 0, 0, p, j) != sattn::TokenRuleVisible(c.spec, p, j);
            }
          SATTN_CHECK_EQ(bad, 0);
        }
      }
    }
  }
}

// Large score ranges (online-softmax rescaling across many chunks) and a tiny scale.
void TestScoreRange() {
  std::mt19937_64 rng(99);
  Shape s;
  s.B = 1, s.Hq = 2, s.Hkv = 1, s.Lq = 90, s.Lk = 300, s.D = 32;
  BlockPlan pl = RandomPlan(s, 64, 1.0, rng);
  const Data x = RandomData(s, false, rng, 6.0f);  // scores of tens: softmax nearly one-hot
  for (const internal::Isa* isa : HostIsas()) {
    for (auto layout : kLayouts) SATTN_CHECK(RunCase("large scores", s, pl, x, false, isa, 2, 0.0, layout));
    SATTN_CHECK(RunCase("tiny scale", s, pl, x, false, isa, 1, 1e-6));
  }
}

// A plan with no entries at all: every row is empty.
void TestEmptyPlan() {
  Shape s;
  s.B = 2, s.Hq = 2, s.Hkv = 1, s.Lq = 70, s.Lk = 70, s.D = 16;
  BlockPlan pl;
  InitPlan(s, 64, 1, 1, &pl);
  for (int64_t r = 0; r < pl.rows(); ++r) pl.row_ptr.push_back(0);
  std::mt19937_64 rng(3);
  const Data x = RandomData(s, false, rng);
  for (const internal::Isa* isa : HostIsas()) SATTN_CHECK(RunCase("empty plan", s, pl, x, false, isa, 2));
}

// Key-split decode: fewer work items than threads cuts each item's entries into slices merged by
// LSE (empty slices, rows no slice sees, bitmaps, GQA, bf16), against the float64 reference.
void TestSplitDecode() {
  std::mt19937_64 rng(11);
  struct Case {
    int B, Hq, Hkv, Lq, Lk, D, block;
    double keep;
  };
  const Case cases[] = {
      {1, 1, 1, 1, 300, 64, 64, 1.0},    // 5 entries over up to 8 slices
      {1, 1, 1, 1, 4000, 64, 64, 0.5},   // many entries, partial blocks
      {1, 2, 1, 1, 700, 32, 32, 0.7},    // GQA: 2 items
      {1, 1, 1, 3, 200, 16, 64, 0.8},    // 3 query rows in one block, bitmaps
      {1, 1, 1, 1, 130, 64, 64, 0.0},    // an empty row
  };
  for (const Case& c : cases) {
    Shape s;
    s.B = c.B, s.Hq = c.Hq, s.Hkv = c.Hkv, s.Lq = c.Lq, s.Lk = c.Lk, s.D = c.D;
    const BlockPlan pl = RandomPlan(s, c.block, c.keep, rng);
    for (bool bf16 : {false, true}) {
      const Data x = RandomData(s, bf16, rng);
      for (const internal::Isa* isa : HostIsas())
        for (int threads : {3, 4})
          SATTN_CHECK(RunCase(("split decode " + Describe(s, c.block, bf16)).c_str(), s, pl, x, bf16, isa, threads));
    }
  }
}

// Results do not depend on the number of threads when there are at least as many work items as
// threads (each row is computed by one thread in a fixed order), bit for bit. (Decode with fewer
// items than threads splits keys: see TestSplitDecode.)
void TestThreadInvariance() {
  std::mt19937_64 rng(5);
  Shape s;
  s.B = 2, s.Hq = 4, s.Hkv = 2, s.Lq = 300, s.Lk = 300, s.D = 64;
  const BlockPlan pl = RandomPlan(s, 64, 0.6, rng);
  const Data x = RandomData(s, false, rng);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    std::vector<float> out(x.q.size()), lse(size_t(s.B) * s.Hq * s.Lq);
    AttentionArgs a;
    a.shape = s, a.scale = 0.125, a.q = x.q.data(), a.k = x.k.data(), a.v = x.v.data();
    a.out = out.data(), a.lse = lse.data(), a.num_threads = threads;
    SATTN_CHECK(sattn::cpu::Attention(a, pl).ok());
    outs.push_back(out);
  }
  SATTN_CHECK(outs[0] == outs[1]);
  SATTN_CHECK(outs[0] == outs[2]);
}

// Every argument error is reported with the field's name, before any work.
void TestValidation() {
  Shape s;
  s.B = 1, s.Hq = 2, s.Hkv = 1, s.Lq = 10, s.Lk = 10, s.D = 8;
  BlockPlan pl;
  InitPlan(s, 64, 1, 1, &pl);
  pl.row_ptr.push_back(1);
  pl.col_idx.push_back(0);
  pl.mask_idx.push_back(-1);
  std::vector<float> q(160, 0.5f), k(80, 0.5f), v(80, 0.5f), out(160);
  auto base = [&] {
    AttentionArgs a;
    a.shape = s, a.scale = 0.3, a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = out.data();
    return a;
  };
  SATTN_CHECK(sattn::cpu::Attention(base(), pl).ok());
  auto expect = [&](AttentionArgs a, const BlockPlan& p, const char* field) {
    const sattn::Status st = sattn::cpu::Attention(a, p);
    const bool named = st.code == sattn::ErrorCode::kInvalidArgument && st.message.find(field) != std::string::npos;
    if (!named) std::fprintf(stderr, "expected an error naming '%s', got '%s'\n", field, st.message.c_str());
    SATTN_CHECK(named);
  };
  AttentionArgs a = base();
  a.q = nullptr;
  expect(a, pl, "q");
  a = base(), a.k = nullptr;
  expect(a, pl, "k");
  a = base(), a.v = nullptr;
  expect(a, pl, "v");
  a = base(), a.out = nullptr;
  expect(a, pl, "out");
  a = base(), a.scale = 0.0;
  expect(a, pl, "scale");
  a = base(), a.scale = std::nan("");
  expect(a, pl, "scale");
  a = base(), a.scale = std::numeric_limits<double>::infinity();
  expect(a, pl, "scale");
  a = base(), a.num_threads = -1;
  expect(a, pl, "num_threads");
  a = base(), a.dtype = DType(7);
  expect(a, pl, "dtype");
  a = base(), a.shape.B = 2;
  expect(a, pl, "B");
  a = base(), a.shape.Hq = 4;
  expect(a, pl, "Hq");
  a = base(), a.shape.Hq = 3;  // not a multiple of Hkv: the shape check names it
  expect(a, pl, "H");
  a = base(), a.shape.Lq = 9;
  expect(a, pl, "Lq");
  BlockPlan broken = pl;
  broken.col_idx[0] = 5;  // out of range key block
  expect(base(), broken, "plan");
}

// The kernels' exp2 against the libm value on [-126, 0]; the measured bound is printed and
// quoted in docs/backends/cpu.md.
void TestExp2Accuracy() {
  for (const internal::Isa* isa : HostIsas()) {
    double worst = 0;
    for (int i = 0; i <= 1260000; ++i) {
      const float x = -126.0f * float(i) / 1260000.0f;
      const double want = std::exp2(double(x));
      worst = std::max(worst, std::fabs(isa->exp2(x) - want) / want);
    }
    std::printf("exp2 [%s]: max relative error %.3g on [-126, 0]\n", isa->name, worst);
    SATTN_CHECK(worst < 3e-7);
    SATTN_CHECK(isa->exp2(-std::numeric_limits<float>::infinity()) == 0.0f);
    SATTN_CHECK(isa->exp2(-127.0f) == 0.0f);
    SATTN_CHECK(isa->exp2(0.0f) == 1.0f);
  }
}

}  // namespace

int main() {
  for (const internal::Isa* isa : HostIsas()) std::printf("testing ISA %s\n", isa->name);
  std::printf("Attention() uses %s\n", internal::SelectIsa()->name);
  auto timed = [](const char* name, void (*fn)()) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    std::printf("%s: %.2f s\n", name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  timed("exp2 accuracy", TestExp2Accuracy);
  timed("validation", TestValidation);
  timed("empty plan", TestEmptyPlan);
  timed("thread invariance", TestThreadInvariance);
  timed("split decode", TestSplitDecode);
  timed("score range", TestScoreRange);
  timed("random plans", TestRandomPlans);
  timed("planner specs", TestPlannerSpecs);
  return sattn_testing::Finish("cpu attention_test");
}
