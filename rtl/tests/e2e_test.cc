// End-to-end tests of the Verilated accelerator through the C driver: bit-exact against the golden
// model (fused and unfused paths, every plan feature), error against a float64 reference, the fused
// path moving fewer bytes, and bad descriptors answered with their error code and no stray writes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "rocc_model.h"
#include "runner.h"
#include "sattn/plan.h"
#include "sattn_rocc_driver.h"
#include "sim.h"
#include "cc/testing/check.h"

using namespace sattn;
using namespace sattn::rocc;

namespace {

struct Case {
  const char* name;
  Spec spec;
  int32_t B, Hq, Hkv, Lq, Lk, D, tile;
};

struct Data {
  std::vector<float> q, k, v;
};

Data RandomData(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  Data d;
  d.q.resize(size_t(c.B) * c.Hq * c.Lq * c.D);
  d.k.resize(size_t(c.B) * c.Hkv * c.Lk * c.D);
  d.v.resize(d.k.size());
  for (auto& x : d.q) x = n(rng);
  for (auto& x : d.k) x = n(rng);
  for (auto& x : d.v) x = n(rng);
  return d;
}

bool MakeProblem(const Case& c, const Data& d, Problem* p, BlockPlan* plan) {
  Shape s;
  s.B = c.B; s.Hq = c.Hq; s.Hkv = c.Hkv; s.Lq = c.Lq; s.Lk = c.Lk; s.D = c.D;
  PlanOptions opt;
  opt.tile = c.tile;
  opt.num_threads = 1;
  Status st = BuildPlan(c.spec, s, d.q.data(), d.k.data(), opt, plan);
  if (!st.ok()) {
    std::fprintf(stderr, "%s: BuildPlan failed: %s\n", c.name, st.message.c_str());
    return false;
  }
  const std::string err = Quantize(d.q.data(), d.k.data(), d.v.data(), c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D,
                                   1.0 / std::sqrt(double(c.D)), *plan, p);
  if (!err.empty()) {
    std::fprintf(stderr, "%s: Quantize: %s\n", c.name, err.c_str());
    return false;
  }
  return true;
}

// A random plan straight in the BlockPlan format (not from the planner): per-head rows, random
// ascending key blocks, random bitmaps (including all-zero rows, i.e. queries with no key).
BlockPlan RandomPlan(int32_t B, int32_t Hq, int32_t Lq, int32_t Lk, int32_t blk, std::mt19937* rng) {
  BlockPlan p;
  p.block = blk;
  p.B = B; p.Hq = Hq; p.Lq = Lq; p.Lk = Lk;
  p.plan_b = B; p.plan_h = Hq;
  p.n_k_blocks = (Lk + blk - 1) / blk;
  p.q_block_begin = (Lk - Lq) / blk;
  p.n_q_blocks = p.n_k_blocks - p.q_block_begin;
  p.words_per_row = 1;
  p.row_ptr.push_back(0);
  std::uniform_int_distribution<int> coin(0, 3);
  for (int64_t row = 0; row < p.rows(); ++row) {
    for (int32_t c = 0; c < p.n_k_blocks; ++c) {
      if (coin(*rng) == 0) continue;
      p.col_idx.push_back(c);
      if (coin(*rng) < 2) {
        p.mask_idx.push_back(-1);
      } else {
        p.mask_idx.push_back(int32_t(p.bitmaps.size() / blk));
        for (int32_t i = 0; i < blk; ++i) {
          uint64_t w = (uint64_t((*rng)()) << 32) | (*rng)();
          if (coin(*rng) == 0) w = 0;
          if (blk < 64) w &= (uint64_t(1) << blk) - 1;
          p.bitmaps.push_back(w);
        }
      }
    }
    p.row_ptr.push_back(int32_t(p.col_idx.size()));
  }
  return p;
}

int CountDiff(const std::vector<int16_t>& a, const std::vector<int16_t>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) n += a[i] != b[i];
  return n + int(a.size() != b.size());
}

void TestCase(const Case& c, Sim* sim, uint32_t seed, bool random_plan = false) {
  const Data d = RandomData(c, seed);
  Problem p;
  BlockPlan plan;
  if (random_plan) {
    std::mt19937 rng(seed);
    plan = RandomPlan(c.B, c.Hq, c.Lq, c.Lk, c.tile, &rng);
    SATTN_CHECK(ValidatePlan(plan).ok());
    const std::string err = Quantize(d.q.data(), d.k.data(), d.v.data(), c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D,
                                     1.0 / std::sqrt(double(c.D)), plan, &p);
    SATTN_CHECK(err.empty());
  } else if (!MakeProblem(c, d, &p, &plan)) {
    SATTN_CHECK(false);
    return;
  }
  const Output gold = Golden(p);
  const RunResult fused = Run(p, Path::kFused, sim);
  SATTN_CHECK_EQ(fused.error, 0);
  SATTN_CHECK_EQ(fused.sim_faults, 0u);
  SATTN_CHECK_EQ(CountDiff(fused.output.out, gold.out), 0);
  SATTN_CHECK(fused.output.stats == gold.stats);

  const RunResult unfused = Run(p, Path::kUnfused, sim);
  SATTN_CHECK_EQ(unfused.error, 0);
  SATTN_CHECK(unfused.scores == GoldenScores(p));
  SATTN_CHECK_EQ(CountDiff(unfused.output.out, gold.out), 0);
  SATTN_CHECK(unfused.output.stats == gold.stats);
  const uint64_t fb = fused.counters.at("dma_rd_bytes") + fused.counters.at("dma_wr_bytes");
  const uint64_t ub = unfused.counters.at("dma_rd_bytes") + unfused.counters.at("dma_wr_bytes");
  if (plan.nnz() > 0) SATTN_CHECK(fb < ub);

  // Against the float64 reference over the same plan: the documented int8 error bound.
  std::vector<float> out(size_t(c.B) * c.Hq * c.Lq * c.D), lse(size_t(c.B) * c.Hq * c.Lq);
  Dequantize(p, fused.output, out.data(), lse.data());
  std::vector<double> rout, rlse;
  ReferenceAttention(d.q.data(), d.k.data(), d.v.data(), c.B, c.Hq, c.Hkv, c.Lq, c.Lk, c.D,
                     1.0 / std::sqrt(double(c.D)), plan, &rout, &rlse);
  double max_err = 0, max_lse = 0;
  for (size_t i = 0; i < out.size(); ++i) max_err = std::max(max_err, std::fabs(out[i] - rout[i]));
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(rlse[i])) {
      SATTN_CHECK(std::isinf(lse[i]) && lse[i] < 0);
      continue;
    }
    max_lse = std::max(max_lse, std::fabs(lse[i] - rlse[i]));
  }
  std::printf("[lat %3d, %4.1f B/c] %-26s nnz=%-5lld cycles=%-8llu mac_util(spdot)=%.3f fused_bytes=%llu unfused_bytes=%llu "
              "max|out-ref|=%.4f max|lse-ref|=%.4f\n",
              sim->config().latency, sim->config().bytes_per_cycle, c.name, (long long)plan.nnz(), (unsigned long long)fused.counters.at("cycles"),
              fused.counters.at("spdot_cycles") ? double(fused.counters.at("spdot_mac_busy")) / fused.counters.at("spdot_cycles") : 0.0,
              (unsigned long long)fb, (unsigned long long)ub, max_err, max_lse);
  // Unit-variance inputs: see docs/backends/rocc.md for the bound's derivation and measurements.
  SATTN_CHECK(max_err < 0.08);
  SATTN_CHECK(max_lse < 0.08);
}

// Every bad-descriptor class answers its error code, leaves the unit idle (a valid command right
// after succeeds) and writes nothing.
void TestBadDescriptors(Sim* sim) {
  Case c{"bad", Spec(), 1, 2, 1, 40, 40, 16, 16};
  c.spec.causal = true;
  const Data d = RandomData(c, 7);
  Problem p;
  BlockPlan plan;
  if (!MakeProblem(c, d, &p, &plan)) { SATTN_CHECK(false); return; }
  sattn_rocc_set_host_transport(&SimTransport, sim);
  struct Bad { const char* what; int expect; void (*edit)(sattn_rocc_desc_t*, DeviceBuffers*); };
  const Bad bads[] = {
      {"null q", SATTN_ROCC_ERR_NULL_PTR, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->q_ptr = 0; }},
      {"null out", SATTN_ROCC_ERR_NULL_PTR, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->out_ptr = 0; }},
      {"misaligned k", SATTN_ROCC_ERR_MISALIGNED, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->k_ptr += 4; }},
      {"zero D", SATTN_ROCC_ERR_ZERO_DIM, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->D = 0; }},
      {"zero B", SATTN_ROCC_ERR_ZERO_DIM, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->B = 0; }},
      {"oversize D", SATTN_ROCC_ERR_OVERSIZE_DIM, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->D = 4096; }},
      {"oversize block", SATTN_ROCC_ERR_OVERSIZE_DIM, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->block = 128; }},
      {"D not /16", SATTN_ROCC_ERR_BAD_SHAPE, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->D = 24; }},
      {"Hq % Hkv", SATTN_ROCC_ERR_BAD_SHAPE, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->Hkv = 3; }},
      {"Lk beyond blocks", SATTN_ROCC_ERR_BAD_SHAPE, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->Lk = 1000; }},
      {"small out", SATTN_ROCC_ERR_BUFFER_SIZE, [](sattn_rocc_desc_t* x, DeviceBuffers*) { x->out_bytes = 64; }},
      {"col out of range", SATTN_ROCC_ERR_COL_RANGE, [](sattn_rocc_desc_t*, DeviceBuffers* b) { b->col_idx[2] = 99; }},
      {"negative col", SATTN_ROCC_ERR_COL_RANGE, [](sattn_rocc_desc_t*, DeviceBuffers* b) { b->col_idx[1] = -5; }},
      {"mask out of range", SATTN_ROCC_ERR_MASK_RANGE, [](sattn_rocc_desc_t*, DeviceBuffers* b) { b->mask_idx[0] = 1000; }},
      {"row_ptr beyond nnz", SATTN_ROCC_ERR_PLAN_RANGE, [](sattn_rocc_desc_t*, DeviceBuffers* b) { b->row_ptr[1] = 1 << 20; }},
      {"row_ptr decreasing", SATTN_ROCC_ERR_PLAN_RANGE, [](sattn_rocc_desc_t*, DeviceBuffers* b) { b->row_ptr[2] = 0; }},
      {"row too long", SATTN_ROCC_ERR_ROW_TOO_LONG, [](sattn_rocc_desc_t* x, DeviceBuffers* b) {
         b->row_ptr[0] = 0; x->nnz = 100000; for (int i = 1; i < 4; ++i) b->row_ptr[i] = 100000; }},
      // Found at the last entry while the compute engine is still busy with earlier rows: the
      // abort must leave no stale state behind for the valid run that follows.
      {"late bad col", SATTN_ROCC_ERR_COL_RANGE, [](sattn_rocc_desc_t* x, DeviceBuffers* b) { b->col_idx[x->nnz - 1] = 77; }},
  };
  for (const Bad& bad : bads) {
    DeviceBuffers buf(p);
    sattn_rocc_desc_t* desc = static_cast<sattn_rocc_desc_t*>(buf.Alloc(sizeof(sattn_rocc_desc_t)));
    FillDescriptor(p, buf, false, desc);
    bad.edit(desc, &buf);
    sim->UnmapAll();
    buf.MapAll(sim);
    const uint64_t faults0 = sim->faults();
    const int got = sattn_rocc_run(desc, SATTN_ROCC_FUNCT_SOFTMAX_FUSED);
    if (got != bad.expect) std::fprintf(stderr, "bad descriptor '%s': got %s, want %s\n", bad.what,
                                        sattn_rocc_err_name(got), sattn_rocc_err_name(bad.expect));
    SATTN_CHECK_EQ(got, bad.expect);
    SATTN_CHECK_EQ(sattn_rocc_status(SATTN_ROCC_STAT_LAST_ERROR), uint64_t(bad.expect));
    SATTN_CHECK_EQ(sim->faults() - faults0, 0u);
    // Errors found before execution (everything but plan contents) write nothing at all.
    if (bad.expect != SATTN_ROCC_ERR_PLAN_RANGE && bad.expect != SATTN_ROCC_ERR_ROW_TOO_LONG &&
        bad.expect != SATTN_ROCC_ERR_COL_RANGE && bad.expect != SATTN_ROCC_ERR_MASK_RANGE) {
      bool untouched = true;
      for (size_t i = 0; i < buf.out_bytes / 2; ++i) untouched &= buf.out[i] == 0;
      SATTN_CHECK(untouched);
    }
  }
  // Descriptor address itself, and reserved commands.
  SATTN_CHECK_EQ(sattn_rocc_run(nullptr, SATTN_ROCC_FUNCT_SOFTMAX_FUSED), int(SATTN_ROCC_ERR_NULL_PTR));
  SATTN_CHECK_EQ(sattn_rocc_issue(SATTN_ROCC_FUNCT_SPDOT_BSR, 8, 0), uint64_t(SATTN_ROCC_ERR_MISALIGNED));
  SATTN_CHECK_EQ(sattn_rocc_issue(SATTN_ROCC_FUNCT_TOPK_IDX, 0, 0), uint64_t(SATTN_ROCC_ERR_UNSUPPORTED));
  SATTN_CHECK_EQ(sattn_rocc_issue(SATTN_ROCC_FUNCT_BLK_REDUCE, 0, 0), uint64_t(SATTN_ROCC_ERR_UNSUPPORTED));
  SATTN_CHECK_EQ(sattn_rocc_issue(0x7f, 0, 0), uint64_t(SATTN_ROCC_ERR_BAD_FUNCT));
  // Build parameters are readable.
  SATTN_CHECK_EQ(sattn_rocc_status(SATTN_ROCC_STAT_PARAM_MAC_ROWS), uint64_t(SATTN_ROCC_MAC_ROWS));
  SATTN_CHECK_EQ(sattn_rocc_status(SATTN_ROCC_STAT_PARAM_MAX_BLK), uint64_t(SATTN_ROCC_MAX_BLK));
  // Still idle and correct after all that.
  const RunResult ok = Run(p, Path::kFused, sim);
  SATTN_CHECK_EQ(ok.error, 0);
  SATTN_CHECK(ok.output.out == Golden(p).out);
  sattn_rocc_set_host_transport(nullptr, nullptr);
}

// GATH2D / SCAT2D against memcpy, their bad descriptors, and no write past dst_bytes.
void TestCopy2D(Sim* sim) {
  sattn_rocc_set_host_transport(&SimTransport, sim);
  std::mt19937 rng(42);
  const int n_src = 37, row_bytes = 96, src_stride = 112, dst_stride = 128, n = 20;
  std::vector<uint8_t> pool((n_src + 64) * 256 + 4096);
  auto align = [](uint8_t* p) { return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 15) & ~uintptr_t(15)); };
  uint8_t* src = align(pool.data());
  uint8_t* dst = align(src + n_src * src_stride + 64);
  const size_t dst_bytes = size_t(n_src) * dst_stride;
  int32_t* idx = reinterpret_cast<int32_t*>(align(dst + dst_bytes + 256));
  sattn_rocc_copy_desc_t* d = reinterpret_cast<sattn_rocc_copy_desc_t*>(align(reinterpret_cast<uint8_t*>(idx + n_src)));
  sim->UnmapAll();
  sim->Map(pool.data(), pool.size());
  for (int i = 0; i < n_src * src_stride; ++i) src[i] = uint8_t(rng());
  for (int r = 0; r < n; ++r) idx[r] = int32_t(rng() % n_src);
  auto reset = [&]() {
    std::memset(dst, 0xab, dst_bytes + 64);  // 64 guard bytes past dst_bytes
    std::memset(d, 0, sizeof(*d));
    d->src_ptr = uint64_t(reinterpret_cast<uintptr_t>(src));
    d->dst_ptr = uint64_t(reinterpret_cast<uintptr_t>(dst));
    d->idx_ptr = uint64_t(reinterpret_cast<uintptr_t>(idx));
    d->n_rows = n; d->row_bytes = row_bytes; d->src_stride = src_stride; d->dst_stride = dst_stride;
    d->src_rows = n_src; d->dst_rows = n_src; d->dst_bytes = dst_bytes;
  };
  auto guard_ok = [&]() {
    bool ok = true;
    for (int i = 0; i < 64; ++i) ok &= dst[dst_bytes + i] == 0xab;
    return ok;
  };
  // Gather: dst row r <- src row idx[r].
  reset();
  sattn_rocc_clear_counters();
  SATTN_CHECK_EQ(sattn_rocc_copy2d(d, SATTN_ROCC_FUNCT_GATH2D), 0);
  int bad = 0;
  for (int r = 0; r < n; ++r) bad += std::memcmp(dst + r * dst_stride, src + idx[r] * src_stride, row_bytes) != 0;
  SATTN_CHECK_EQ(bad, 0);
  SATTN_CHECK(guard_ok());
  SATTN_CHECK_EQ(sattn_rocc_status(SATTN_ROCC_STAT_DMA_WR_BYTES), uint64_t(n * row_bytes));
  // Scatter: dst row idx[r] <- src row r (later rows win on repeated indices, in order).
  reset();
  SATTN_CHECK_EQ(sattn_rocc_copy2d(d, SATTN_ROCC_FUNCT_SCAT2D), 0);
  std::vector<int> last(n_src, -1);
  for (int r = 0; r < n; ++r) last[idx[r]] = r;
  bad = 0;
  for (int i = 0; i < n_src; ++i) {
    if (last[i] >= 0) bad += std::memcmp(dst + i * dst_stride, src + last[i] * src_stride, row_bytes) != 0;
    else for (int b = 0; b < row_bytes; ++b) bad += dst[i * dst_stride + b] != 0xab;
  }
  SATTN_CHECK_EQ(bad, 0);
  SATTN_CHECK(guard_ok());
  // Bad copy descriptors.
  struct Bad { const char* what; int expect; uint32_t f; void (*edit)(sattn_rocc_copy_desc_t*, int32_t*); };
  const Bad bads[] = {
      {"index past src_rows", SATTN_ROCC_ERR_INDEX_RANGE, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t*, int32_t* ix) { ix[7] = 37; }},
      {"negative index", SATTN_ROCC_ERR_INDEX_RANGE, SATTN_ROCC_FUNCT_SCAT2D, [](sattn_rocc_copy_desc_t*, int32_t* ix) { ix[3] = -1; }},
      {"scatter past dst_rows", SATTN_ROCC_ERR_INDEX_RANGE, SATTN_ROCC_FUNCT_SCAT2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->dst_rows = 2; x->dst_bytes = 256; }},
      {"null idx", SATTN_ROCC_ERR_NULL_PTR, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->idx_ptr = 0; }},
      {"odd stride", SATTN_ROCC_ERR_MISALIGNED, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->dst_stride = 120; }},
      {"zero row", SATTN_ROCC_ERR_ZERO_DIM, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->row_bytes = 0; }},
      {"huge row", SATTN_ROCC_ERR_OVERSIZE_DIM, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->row_bytes = 1 << 20; }},
      {"row not /16", SATTN_ROCC_ERR_BAD_SHAPE, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->row_bytes = 40; }},
      {"small dst", SATTN_ROCC_ERR_BUFFER_SIZE, SATTN_ROCC_FUNCT_GATH2D, [](sattn_rocc_copy_desc_t* x, int32_t*) { x->dst_bytes = 1000; }},
  };
  for (const Bad& b : bads) {
    reset();
    std::vector<int32_t> saved(idx, idx + n);
    b.edit(d, idx);
    const int got = sattn_rocc_copy2d(d, b.f);
    if (got != b.expect) std::fprintf(stderr, "bad copy descriptor '%s': got %s, want %s\n", b.what,
                                      sattn_rocc_err_name(got), sattn_rocc_err_name(b.expect));
    SATTN_CHECK_EQ(got, b.expect);
    SATTN_CHECK(guard_ok());
    std::copy(saved.begin(), saved.end(), idx);
  }
  // Zero rows is a valid no-op.
  reset();
  d->n_rows = 0;
  SATTN_CHECK_EQ(sattn_rocc_copy2d(d, SATTN_ROCC_FUNCT_GATH2D), 0);
  sim->UnmapAll();
  sattn_rocc_set_host_transport(nullptr, nullptr);
}

}  // namespace

int main() {
  MemConfig mc;
  mc.latency = 24;
  mc.bytes_per_cycle = 16;
  mc.watchdog_cycles = 20000000;
  Sim sim(mc);
  std::vector<Case> cases;
  {
    Case c{"dense", Spec(), 1, 2, 1, 48, 48, 32, 16};
    cases.push_back(c);
    c = Case{"dense causal Lq<Lk gqa", Spec(), 2, 4, 2, 37, 80, 24, 16};
    c.spec.causal = true;
    cases.push_back(c);
    c = Case{"sliding dilated global", Spec(), 1, 2, 2, 70, 70, 16, 32};
    c.spec.kind = SpecKind::kSlidingWindow; c.spec.window = 9; c.spec.dilation = 2; c.spec.global_tokens = 3;
    c.spec.causal = true;
    cases.push_back(c);
    c = Case{"blocktopk L=1", Spec(), 1, 1, 1, 1, 1, 16, 16};
    c.spec.kind = SpecKind::kBlockTopK; c.spec.block = 16; c.spec.keep = 0.5;
    cases.push_back(c);
    c = Case{"blocktopk b=32 causal", Spec(), 2, 2, 1, 100, 100, 32, 32};
    c.spec.kind = SpecKind::kBlockTopK; c.spec.block = 32; c.spec.keep = 0.4; c.spec.causal = true;
    cases.push_back(c);
    c = Case{"bigbird b=16", Spec(), 1, 2, 1, 96, 96, 16, 16};
    c.spec.kind = SpecKind::kBigBird; c.spec.block = 16; c.spec.window_blocks = 3; c.spec.global_blocks = 1;
    c.spec.random_blocks = 1; c.spec.seed = 3;
    cases.push_back(c);
    c = Case{"topk-per-query D=64", Spec(), 1, 1, 1, 64, 64, 64, 64};
    c.spec.kind = SpecKind::kTopKPerQuery; c.spec.topk = 7; c.spec.causal = true;
    cases.push_back(c);
  }
  uint32_t seed = 1;
  for (const Case& c : cases) TestCase(c, &sim, seed++);
  // Plans straight in the BSR format: every bitmap pattern, empty query rows, per-head rows.
  for (uint32_t s = 0; s < 3; ++s) {
    Case c{"random plan", Spec(), 2, 2, 1, 50 + 13 * int32_t(s), 77, 16 * int32_t(s + 1), 16 * int32_t(s + 1)};
    TestCase(c, &sim, 100 + s, /*random_plan=*/true);
  }
  TestBadDescriptors(&sim);
  TestCopy2D(&sim);
  SATTN_CHECK_EQ(sim.assertion_failures(), 0u);

  // A slow, high-latency memory: refused requests, write backpressure and long read queues must
  // not change a single bit (and the protocol assertions watch the handshakes meanwhile).
  MemConfig slow;
  slow.latency = 150;
  slow.bytes_per_cycle = 3;
  slow.watchdog_cycles = 50000000;
  Sim slow_sim(slow);
  TestCase(cases[1], &slow_sim, 2);
  TestCase(cases[4], &slow_sim, 5);
  TestCase(Case{"random plan slow", Spec(), 1, 2, 2, 40, 64, 16, 32}, &slow_sim, 200, true);
  TestBadDescriptors(&slow_sim);
  TestCopy2D(&slow_sim);
  SATTN_CHECK_EQ(slow_sim.assertion_failures(), 0u);

  // The protocol assertions are compiled in (--assert) and live: a memory response with no read
  // in flight is reported.
  {
    const uint64_t before = sim.assertion_failures();
    sim.InjectSpuriousResponse();
    SATTN_CHECK(sim.assertion_failures() > before);
  }

  // The unit's watchdog turns a memory that never answers into an error code instead of a hang.
  MemConfig dead;
  dead.latency = 1 << 30;
  dead.watchdog_cycles = 20000;
  Sim dead_sim(dead);
  {
    Problem p;
    BlockPlan plan;
    const Data d = RandomData(cases[0], 1);
    SATTN_CHECK(MakeProblem(cases[0], d, &p, &plan));
    const uint64_t c0 = dead_sim.cycles();
    const RunResult r = Run(p, Path::kFused, &dead_sim);
    SATTN_CHECK_EQ(r.error, int(SATTN_ROCC_ERR_WATCHDOG));
    SATTN_CHECK(dead_sim.cycles() - c0 < 2 * dead.watchdog_cycles);
    SATTN_CHECK_EQ(dead_sim.assertion_failures(), 0u);
  }
  return sattn_testing::Finish("rocc_e2e_test");
}
