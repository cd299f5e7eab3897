// One regression case (or more) per error code of rtl/spec/commands.json, each run on the Verilated
// RTL and on the command model (rocc_cmd_model.h) over the same memory map: both must answer the
// expected code, and leave the same LAST_ERROR. Covers the attacks of issue 16: bounds that wrap near
// 2^64, unmapped pointers and overstated sizes answered OK, nnz beyond the last row pointer,
// funct7 149 acting as command 21, a status index of 2^63 reading another register, and hangs.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>

#include "cc/testing/check.h"
#include "rocc_bwd_model.h"
#include "rocc_cmd_model.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn/plan.h"
#include "sattn_rocc_driver.h"
#include "sim.h"

using namespace sattn;
using namespace sattn::rocc;

namespace {

constexpr uint64_t kTop = ~uint64_t(0) - 15;  // the last aligned beat below 2^64

Problem MakeProblem() {
  Spec spec;
  spec.causal = true;
  Shape s;
  s.B = 1; s.Hq = 2; s.Hkv = 1; s.Lq = 40; s.Lk = 40; s.D = 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(size_t(s.B) * s.Hq * s.Lq * s.D), k(size_t(s.B) * s.Hkv * s.Lk * s.D), v(k.size());
  for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = nd(rng);
  PlanOptions opt;
  opt.tile = 16;
  opt.num_threads = 1;
  BlockPlan plan;
  SATTN_CHECK(BuildPlan(spec, s, q.data(), k.data(), opt, &plan).ok());
  Problem p;
  SATTN_CHECK(Quantize(q.data(), k.data(), v.data(), s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D, 0.25, plan, &p).empty());
  return p;
}

// How a case maps the buffers: every block normally; one block left out, mapped dead or mapped
// shorter than it is.
struct Mapping {
  const void* omit = nullptr;
  const void* dead = nullptr;
  const void* shrink = nullptr;
  size_t shrink_to = 0;
};

template <typename Buffers>
void Apply(const Buffers& buf, const Mapping& m, Sim* sim) {
  sim->UnmapAll();
  for (const auto& b : buf.blocks) {
    if (b.p == m.omit) continue;
    if (b.p == m.dead) sim->MapDead(b.p, b.n);
    else if (b.p == m.shrink) sim->Map(b.p, m.shrink_to);
    else sim->Map(b.p, b.n);
  }
}

struct Tally {
  int cases = 0, rtl_ok = 0, model_ok = 0;
  std::set<int> codes;
};

// Runs one command on the RTL and the model, checks both against `expect` and each other.
void Expect(const char* what, int expect, Sim* sim, CommandModel* model, uint64_t funct7, uint64_t rs1, uint64_t rs2,
            Tally* t) {
  const uint64_t rtl = sim->Command(funct7, rs1, rs2);
  const ModelResponse mod = model->Command(sim->memory(), funct7, rs1, rs2);
  const bool status = funct7 == SATTN_ROCC_FUNCT_STATUS;
  const bool status_error = status && rs1 >= SATTN_ROCC_N_STATUS_REGS;
  const uint64_t want = status_error ? (SATTN_ROCC_STATUS_ERROR_BIT | uint64_t(expect)) : uint64_t(expect);
  ++t->cases;
  t->codes.insert(expect);
  t->rtl_ok += rtl == want;
  t->model_ok += mod.exact && mod.rd == want;
  if (rtl != want || !mod.exact || mod.rd != want)
    std::fprintf(stderr, "%s: rtl %s (%llu), model %s (%llu), want %s\n", what, sattn_rocc_err_name(int(rtl & 0xff)),
                 (unsigned long long)rtl, sattn_rocc_err_name(int(mod.rd & 0xff)), (unsigned long long)mod.rd,
                 sattn_rocc_err_name(expect));
  SATTN_CHECK_EQ(rtl, want);
  SATTN_CHECK(mod.exact);
  SATTN_CHECK_EQ(mod.rd, want);
  // Both keep the same LAST_ERROR (the harness answers funct7 > 127 itself, like the model).
  SATTN_CHECK_EQ(sim->Command(SATTN_ROCC_FUNCT_STATUS, SATTN_ROCC_STAT_LAST_ERROR, 0), uint64_t(model->last_error()));
  SATTN_CHECK_EQ(sim->assertion_failures(), 0u);
}

using Edit = std::function<void(sattn_rocc_desc_t*, DeviceBuffers*, Mapping*)>;

struct DescCase {
  const char* what;
  int expect;
  uint32_t funct7;
  Edit edit;
  bool dead = false;  // needs a fresh simulator (a dead read blocks its memory port for good)
};

void RunDescCases(const Problem& p, const MemConfig& mc, Tally* t) {
  const uint32_t F = SATTN_ROCC_FUNCT_SOFTMAX_FUSED, SD = SATTN_ROCC_FUNCT_SPDOT_BSR, SM = SATTN_ROCC_FUNCT_SPMM_BSR;
  auto nothing = [](sattn_rocc_desc_t*, DeviceBuffers*, Mapping*) {};
  const std::vector<DescCase> cases = {
      {"valid fused", SATTN_ROCC_ERR_OK, F, nothing},
      {"valid spdot", SATTN_ROCC_ERR_OK, SD, nothing},
      {"valid spmm", SATTN_ROCC_ERR_OK, SM, nothing},
      {"null q", SATTN_ROCC_ERR_NULL_PTR, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->q_ptr = 0; }},
      {"null scores (spdot)", SATTN_ROCC_ERR_NULL_PTR, SD, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->scores_ptr = 0; }},
      {"misaligned k", SATTN_ROCC_ERR_MISALIGNED, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->k_ptr += 4; }},
      {"zero D", SATTN_ROCC_ERR_ZERO_DIM, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->D = 0; }},
      {"oversize D", SATTN_ROCC_ERR_OVERSIZE_DIM, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->D = 4096; }},
      {"score_shift 64", SATTN_ROCC_ERR_OVERSIZE_DIM, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->score_shift = 64; }},
      {"D not /16", SATTN_ROCC_ERR_BAD_SHAPE, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->D = 24; }},
      {"q_block_begin + n_q_blocks wraps to n_k_blocks", SATTN_ROCC_ERR_BAD_SHAPE, F,
       [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->q_block_begin = ~uint64_t(0); x->n_q_blocks = x->n_k_blocks + 1; }},
      {"row_ptr[0] != 0", SATTN_ROCC_ERR_PLAN_RANGE, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->row_ptr[0] = 1; }},
      {"row_ptr decreasing", SATTN_ROCC_ERR_PLAN_RANGE, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->row_ptr[2] = 0; }},
      {"row_ptr beyond nnz", SATTN_ROCC_ERR_PLAN_RANGE, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->row_ptr[1] = 1 << 20; }},
      {"nnz beyond the last row pointer", SATTN_ROCC_ERR_PLAN_RANGE, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->nnz += 1; }},
      {"nnz beyond the last row pointer (spdot)", SATTN_ROCC_ERR_PLAN_RANGE, SD, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->nnz += 1; x->scores_bytes *= 2; }},
      {"row too long", SATTN_ROCC_ERR_ROW_TOO_LONG, F, [](sattn_rocc_desc_t* x, DeviceBuffers* b, Mapping*) {
         x->nnz = 100000; for (int i = 1; i < 4; ++i) b->row_ptr[i] = 100000; }},
      {"small out", SATTN_ROCC_ERR_BUFFER_SIZE, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->out_bytes = 64; }},
      {"out wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->out_ptr = kTop; }},
      {"q wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->q_ptr = kTop - 256; }},
      {"scores_bytes wraps (spdot)", SATTN_ROCC_ERR_ADDR_RANGE, SD, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->scores_bytes = ~uint64_t(0) - 15; }},
      {"col out of range", SATTN_ROCC_ERR_COL_RANGE, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->col_idx[2] = 99; }},
      {"negative col (spmm)", SATTN_ROCC_ERR_COL_RANGE, SM, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->col_idx[1] = -5; }},
      {"mask out of range", SATTN_ROCC_ERR_MASK_RANGE, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->mask_idx[0] = 1000; }},
      {"mask -2", SATTN_ROCC_ERR_MASK_RANGE, SD, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping*) { b->mask_idx[1] = -2; }},
      {"unmapped k buffer", SATTN_ROCC_ERR_DMA_READ_FAULT, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->omit = b->k; }},
      {"k pointer to nothing", SATTN_ROCC_ERR_DMA_READ_FAULT, F, [](sattn_rocc_desc_t* x, DeviceBuffers*, Mapping*) { x->k_ptr = 0x10000; }},
      {"unmapped row_ptr", SATTN_ROCC_ERR_DMA_READ_FAULT, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->omit = b->row_ptr; }},
      {"unmapped scores (spmm)", SATTN_ROCC_ERR_DMA_READ_FAULT, SM, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->omit = b->scores; }},
      {"read fault beats a later bad col", SATTN_ROCC_ERR_DMA_READ_FAULT, F, [](sattn_rocc_desc_t* x, DeviceBuffers* b, Mapping* m) {
         m->omit = b->v; b->col_idx[x->nnz - 1] = 77; }},
      {"unmapped out", SATTN_ROCC_ERR_DMA_WRITE_FAULT, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->omit = b->out; }},
      {"out_bytes overstated beyond its allocation", SATTN_ROCC_ERR_DMA_WRITE_FAULT, F, [](sattn_rocc_desc_t* x, DeviceBuffers* b, Mapping* m) {
         m->shrink = b->out; m->shrink_to = size_t(x->out_bytes / 2); }},
      {"unmapped scores (spdot)", SATTN_ROCC_ERR_DMA_WRITE_FAULT, SD, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->omit = b->scores; }},
      {"write fault loses to a later bad col", SATTN_ROCC_ERR_COL_RANGE, F, [](sattn_rocc_desc_t* x, DeviceBuffers* b, Mapping* m) {
         m->omit = b->out; b->col_idx[x->nnz - 1] = 77; }},
      {"k in a memory that never answers", SATTN_ROCC_ERR_WATCHDOG, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->dead = b->k; }, true},
      {"stats in a memory that never answers (writes land)", SATTN_ROCC_ERR_OK, F, [](sattn_rocc_desc_t*, DeviceBuffers* b, Mapping* m) { m->dead = b->stats; }, true},
  };
  Sim shared(mc);
  CommandModel shared_model;
  for (const DescCase& c : cases) {
    std::unique_ptr<Sim> own;
    CommandModel own_model;
    Sim* sim = c.dead ? (own.reset(new Sim(mc)), own.get()) : &shared;
    CommandModel* model = c.dead ? &own_model : &shared_model;
    DeviceBuffers buf(p);
    sattn_rocc_desc_t* d = static_cast<sattn_rocc_desc_t*>(buf.Alloc(sizeof(sattn_rocc_desc_t)));
    FillDescriptor(p, buf, c.funct7 != SATTN_ROCC_FUNCT_SOFTMAX_FUSED, d);
    if (c.funct7 == SATTN_ROCC_FUNCT_SPMM_BSR) {  // score tiles as SPDOT_BSR leaves them
      const std::vector<int32_t> tiles = GoldenScores(p);
      std::memcpy(buf.scores, tiles.data(), tiles.size() * 4);
    }
    Mapping m;
    c.edit(d, &buf, &m);
    Apply(buf, m, sim);
    Expect(c.what, c.expect, sim, model, c.funct7, uint64_t(reinterpret_cast<uintptr_t>(d)), 0, t);
    if (c.expect == SATTN_ROCC_ERR_OK && c.funct7 == SATTN_ROCC_FUNCT_SOFTMAX_FUSED && !c.dead) {
      const Output g = Golden(p);
      SATTN_CHECK(std::equal(g.out.begin(), g.out.end(), buf.out));
    }
  }
  // The descriptor address itself.
  {
    DeviceBuffers buf(p);
    sattn_rocc_desc_t* d = static_cast<sattn_rocc_desc_t*>(buf.Alloc(sizeof(sattn_rocc_desc_t)));
    FillDescriptor(p, buf, false, d);
    Apply(buf, Mapping(), &shared);
    const uint64_t a = uint64_t(reinterpret_cast<uintptr_t>(d));
    Expect("null descriptor", SATTN_ROCC_ERR_NULL_PTR, &shared, &shared_model, SATTN_ROCC_FUNCT_SOFTMAX_FUSED, 0, 0, t);
    Expect("misaligned descriptor", SATTN_ROCC_ERR_MISALIGNED, &shared, &shared_model, SATTN_ROCC_FUNCT_SPDOT_BSR, 8, 0, t);
    Expect("descriptor wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, &shared, &shared_model, SATTN_ROCC_FUNCT_SPMM_BSR, kTop, 0, t);
    Expect("copy descriptor wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, &shared, &shared_model, SATTN_ROCC_FUNCT_GATH2D, kTop - 32, 0, t);
    Expect("descriptor in unmapped memory", SATTN_ROCC_ERR_DMA_READ_FAULT, &shared, &shared_model, SATTN_ROCC_FUNCT_SOFTMAX_FUSED, 0x10000, 0, t);
    Expect("descriptor near 2^64 (the sim bounds check wrapped and segfaulted)", SATTN_ROCC_ERR_DMA_READ_FAULT, &shared,
           &shared_model, SATTN_ROCC_FUNCT_SOFTMAX_FUSED, kTop - 256, 0, t);
    Expect("valid after all that", SATTN_ROCC_ERR_OK, &shared, &shared_model, SATTN_ROCC_FUNCT_SOFTMAX_FUSED, a, 0, t);
  }
  // The descriptor in a memory that never answers.
  {
    Sim sim(mc);
    CommandModel model;
    DeviceBuffers buf(p);
    sattn_rocc_desc_t* d = static_cast<sattn_rocc_desc_t*>(buf.Alloc(sizeof(sattn_rocc_desc_t)));
    FillDescriptor(p, buf, false, d);
    Mapping m;
    m.dead = d;
    Apply(buf, m, &sim);
    Expect("descriptor in a dead memory", SATTN_ROCC_ERR_WATCHDOG, &sim, &model, SATTN_ROCC_FUNCT_SOFTMAX_FUSED,
           uint64_t(reinterpret_cast<uintptr_t>(d)), 0, t);
  }
}

BwdProblem MakeBwdProblem(const Problem& p) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> out(size_t(p.B) * p.Hq * p.Lq * p.D_orig), lse(size_t(p.B) * p.Hq * p.Lq), dout(out.size());
  Dequantize(p, Golden(p), out.data(), lse.data());
  for (auto& e : dout) e = nd(rng);
  BwdProblem bp;
  SATTN_CHECK(QuantizeBwd(p, out.data(), lse.data(), dout.data(), nullptr, 0.25, &bp).empty());
  return bp;
}

using BwdEdit = std::function<void(sattn_rocc_bwd_desc_t*, BwdDeviceBuffers*, Mapping*)>;

// ATTN_BWD: one case or more per fault path of the backward descriptor and its two walks.
void RunBwdCases(const BwdProblem& bp, const MemConfig& mc, Tally* t) {
  using X = sattn_rocc_bwd_desc_t;
  using Bf = BwdDeviceBuffers;
  struct C { const char* what; int expect; BwdEdit edit; bool dead = false; };
  const C cases[] = {
      {"bwd valid", SATTN_ROCC_ERR_OK, [](X*, Bf*, Mapping*) {}},
      {"bwd null dO", SATTN_ROCC_ERR_NULL_PTR, [](X* x, Bf*, Mapping*) { x->do_ptr = 0; }},
      {"bwd null t_ent", SATTN_ROCC_ERR_NULL_PTR, [](X* x, Bf*, Mapping*) { x->t_ent_ptr = 0; }},
      {"bwd misaligned rs", SATTN_ROCC_ERR_MISALIGNED, [](X* x, Bf*, Mapping*) { x->rs_ptr += 4; }},
      {"bwd zero Hkv", SATTN_ROCC_ERR_ZERO_DIM, [](X* x, Bf*, Mapping*) { x->Hkv = 0; }},
      {"bwd t_nnz 2^24", SATTN_ROCC_ERR_OVERSIZE_DIM, [](X* x, Bf*, Mapping*) { x->t_nnz = 1 << 24; }},
      {"bwd block 24", SATTN_ROCC_ERR_BAD_SHAPE, [](X* x, Bf*, Mapping*) { x->block = 24; }},
      {"bwd small ds", SATTN_ROCC_ERR_BUFFER_SIZE, [](X* x, Bf*, Mapping*) { x->ds_bytes -= 16; }},
      {"bwd small dk", SATTN_ROCC_ERR_BUFFER_SIZE, [](X* x, Bf*, Mapping*) { x->dk_bytes = 8; }},
      {"bwd t_ent wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, [](X* x, Bf*, Mapping*) { x->t_ent_ptr = kTop - 16; }},
      {"bwd dq_bytes wraps", SATTN_ROCC_ERR_ADDR_RANGE, [](X* x, Bf*, Mapping*) { x->dq_bytes = ~uint64_t(0) - 15; }},
      {"bwd t_row_ptr[0] != 0", SATTN_ROCC_ERR_PLAN_RANGE, [](X*, Bf* b, Mapping*) { b->t_row_ptr[0] = 1; }},
      {"bwd t_nnz beyond the last pointer", SATTN_ROCC_ERR_PLAN_RANGE, [](X* x, Bf*, Mapping*) { x->t_nnz += 1; }},
      {"bwd forward row_ptr decreasing (phase 2)", SATTN_ROCC_ERR_PLAN_RANGE, [](X*, Bf* b, Mapping*) { b->row_ptr[2] = 0; }},
      {"bwd entry head outside the group", SATTN_ROCC_ERR_ENTRY_RANGE, [](X*, Bf* b, Mapping*) { b->t_ent[0] = 7; }},
      {"bwd entry query block negative", SATTN_ROCC_ERR_ENTRY_RANGE, [](X*, Bf* b, Mapping*) { b->t_ent[5] = -1; }},
      {"bwd entry ds tile past the tiles", SATTN_ROCC_ERR_ENTRY_RANGE, [](X*, Bf* b, Mapping*) { b->t_ent[7] = 1 << 20; }},
      {"bwd entry mask out of range", SATTN_ROCC_ERR_MASK_RANGE, [](X*, Bf* b, Mapping*) { b->t_ent[2] = 1000; }},
      {"bwd col out of range (phase 2)", SATTN_ROCC_ERR_COL_RANGE, [](X*, Bf* b, Mapping*) { b->col_idx[1] = 99; }},
      {"bwd unmapped dO", SATTN_ROCC_ERR_DMA_READ_FAULT, [](X*, Bf* b, Mapping* m) { m->omit = b->dout; }},
      {"bwd unmapped emul", SATTN_ROCC_ERR_DMA_READ_FAULT, [](X*, Bf* b, Mapping* m) { m->omit = b->emul; }},
      {"bwd unmapped dS (phase 2 read beats phase 1 writes)", SATTN_ROCC_ERR_DMA_READ_FAULT,
       [](X*, Bf* b, Mapping* m) { m->omit = b->ds; }},
      {"bwd unmapped dq", SATTN_ROCC_ERR_DMA_WRITE_FAULT, [](X*, Bf* b, Mapping* m) { m->omit = b->dq; }},
      {"bwd dv overstated beyond its allocation", SATTN_ROCC_ERR_DMA_WRITE_FAULT,
       [](X* x, Bf* b, Mapping* m) { m->shrink = b->dv; m->shrink_to = size_t(x->dv_bytes / 2); }},
      {"bwd write fault loses to a later bad col", SATTN_ROCC_ERR_COL_RANGE,
       [](X* x, Bf* b, Mapping* m) { m->omit = b->dk; b->col_idx[x->nnz - 1] = 77; }},
      {"bwd dO in a memory that never answers", SATTN_ROCC_ERR_WATCHDOG, [](X*, Bf* b, Mapping* m) { m->dead = b->dout; }, true},
  };
  Sim shared(mc);
  CommandModel shared_model;
  const BwdOutput gold = GoldenBwd(bp);
  for (const C& c : cases) {
    std::unique_ptr<Sim> own;
    CommandModel own_model;
    Sim* sim = c.dead ? (own.reset(new Sim(mc)), own.get()) : &shared;
    CommandModel* model = c.dead ? &own_model : &shared_model;
    BwdDeviceBuffers buf(bp);
    X* d = static_cast<X*>(buf.Alloc(sizeof(X)));
    FillBwdDescriptor(bp, buf, d);
    Mapping m;
    c.edit(d, &buf, &m);
    Apply(buf, m, sim);
    Expect(c.what, c.expect, sim, model, SATTN_ROCC_FUNCT_ATTN_BWD, uint64_t(reinterpret_cast<uintptr_t>(d)), 0, t);
    if (c.expect == SATTN_ROCC_ERR_OK) SATTN_CHECK(std::equal(gold.dq.begin(), gold.dq.end(), buf.dq));
  }
  BwdDeviceBuffers buf(bp);
  X* d = static_cast<X*>(buf.Alloc(sizeof(X)));
  FillBwdDescriptor(bp, buf, d);
  Apply(buf, Mapping(), &shared);
  Expect("bwd null descriptor", SATTN_ROCC_ERR_NULL_PTR, &shared, &shared_model, SATTN_ROCC_FUNCT_ATTN_BWD, 0, 0, t);
  Expect("bwd descriptor wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, &shared, &shared_model, SATTN_ROCC_FUNCT_ATTN_BWD,
         kTop - 128, 0, t);
  Expect("bwd descriptor in unmapped memory", SATTN_ROCC_ERR_DMA_READ_FAULT, &shared, &shared_model,
         SATTN_ROCC_FUNCT_ATTN_BWD, 0x10000, 0, t);
  // Over the watchdog on a live, slow memory (RTL only: the model has no timing), then bit-exact.
  MemConfig slow;
  slow.latency = 3000;
  slow.watchdog_cycles = 500;
  Sim sim(slow);
  SATTN_CHECK_EQ(RunBwd(bp, &sim).error, int(SATTN_ROCC_ERR_WATCHDOG));
  MemConfig live = slow;
  live.watchdog_cycles = 50000000;
  sim.set_config(live);
  const BwdRunResult ok = RunBwd(bp, &sim);
  SATTN_CHECK_EQ(ok.error, 0);
  SATTN_CHECK(ok.output.dq == gold.dq && ok.output.dk == gold.dk && ok.output.dv == gold.dv);
  SATTN_CHECK_EQ(sim.assertion_failures(), 0u);
  ++t->cases;
  t->rtl_ok += ok.error == 0;
}

void RunCommandCases(const MemConfig& mc, Tally* t) {
  Sim sim(mc);
  CommandModel model;
  Expect("BLK_REDUCE", SATTN_ROCC_ERR_UNSUPPORTED, &sim, &model, SATTN_ROCC_FUNCT_BLK_REDUCE, 0, 0, t);
  Expect("TOPK_IDX", SATTN_ROCC_ERR_UNSUPPORTED, &sim, &model, SATTN_ROCC_FUNCT_TOPK_IDX, 0, 0, t);
  for (uint64_t f : {uint64_t(0), uint64_t(3), uint64_t(24), uint64_t(0x55), uint64_t(0x7f), uint64_t(128), uint64_t(149),
                     uint64_t(1) << 40})
    Expect(("funct7 " + std::to_string(f)).c_str(), SATTN_ROCC_ERR_BAD_FUNCT, &sim, &model, f, 0, 0, t);
  for (uint64_t i : {uint64_t(SATTN_ROCC_N_STATUS_REGS), uint64_t(31), uint64_t(32), uint64_t(1) << 32, uint64_t(1) << 63,
                     ~uint64_t(0)})
    Expect(("status index " + std::to_string(i)).c_str(), SATTN_ROCC_ERR_BAD_STATUS_INDEX, &sim, &model,
           SATTN_ROCC_FUNCT_STATUS, i, 0, t);
  Expect("status LAST_ERROR", SATTN_ROCC_ERR_BAD_STATUS_INDEX, &sim, &model, SATTN_ROCC_FUNCT_STATUS, SATTN_ROCC_STAT_LAST_ERROR, 0, t);
  SATTN_CHECK_EQ(sim.Command(SATTN_ROCC_FUNCT_STATUS, SATTN_ROCC_STAT_PARAM_MAX_BLK, 0), uint64_t(SATTN_ROCC_MAX_BLK));
  Expect("CONFIGURE reserved bit", SATTN_ROCC_ERR_BAD_ARG, &sim, &model, SATTN_ROCC_FUNCT_CONFIGURE, 4, 0, t);
  Expect("CONFIGURE bit 63", SATTN_ROCC_ERR_BAD_ARG, &sim, &model, SATTN_ROCC_FUNCT_CONFIGURE, uint64_t(1) << 63, 0, t);
  Expect("CONFIGURE clear + watchdog", SATTN_ROCC_ERR_OK, &sim, &model, SATTN_ROCC_FUNCT_CONFIGURE, 3, mc.watchdog_cycles, t);
  // Through the driver: the fault by name.
  sattn_rocc_set_host_transport(&SimTransport, &sim);
  uint64_t v = 0;
  SATTN_CHECK_EQ(sattn_rocc_read_status(uint64_t(1) << 63, &v), int(SATTN_ROCC_ERR_BAD_STATUS_INDEX));
  SATTN_CHECK_EQ(sattn_rocc_read_status(SATTN_ROCC_STAT_PARAM_MAC_ROWS, &v), int(SATTN_ROCC_ERR_OK));
  SATTN_CHECK_EQ(v, uint64_t(SATTN_ROCC_MAC_ROWS));
  SATTN_CHECK_EQ(sattn_rocc_issue(149, 0, 0), uint64_t(SATTN_ROCC_ERR_BAD_FUNCT));
  SATTN_CHECK(std::string(sattn_rocc_err_name(SATTN_ROCC_ERR_WATCHDOG)) == "WATCHDOG");
  SATTN_CHECK(std::string(sattn_rocc_err_doc(SATTN_ROCC_ERR_DMA_WRITE_FAULT)).find("write") != std::string::npos);
  sattn_rocc_set_host_transport(nullptr, nullptr);
}

void RunCopyCases(const MemConfig& mc, Tally* t) {
  Sim sim(mc);
  CommandModel model;
  const int n_src = 20, row_bytes = 64, stride = 64, n = 8;
  std::vector<uint8_t> pool(n_src * stride * 2 + 4096);
  auto align = [](uint8_t* p) { return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 15) & ~uintptr_t(15)); };
  uint8_t* src = align(pool.data());
  uint8_t* dst = align(src + n_src * stride);
  int32_t* idx = reinterpret_cast<int32_t*>(align(dst + n_src * stride));
  sattn_rocc_copy_desc_t* d = reinterpret_cast<sattn_rocc_copy_desc_t*>(align(reinterpret_cast<uint8_t*>(idx + n_src)));
  auto reset = [&]() {
    for (int r = 0; r < n; ++r) idx[r] = (r * 7) % n_src;
    std::memset(d, 0, sizeof(*d));
    d->src_ptr = uint64_t(reinterpret_cast<uintptr_t>(src));
    d->dst_ptr = uint64_t(reinterpret_cast<uintptr_t>(dst));
    d->idx_ptr = uint64_t(reinterpret_cast<uintptr_t>(idx));
    d->n_rows = n; d->row_bytes = row_bytes; d->src_stride = stride; d->dst_stride = stride;
    d->src_rows = n_src; d->dst_rows = n_src; d->dst_bytes = size_t(n_src) * stride;
    sim.UnmapAll();
    sim.Map(pool.data(), pool.size());
  };
  const uint64_t a = uint64_t(reinterpret_cast<uintptr_t>(d));
  const uint32_t G = SATTN_ROCC_FUNCT_GATH2D, S = SATTN_ROCC_FUNCT_SCAT2D;
  struct C { const char* what; int expect; uint32_t f; std::function<void()> edit; };
  const C cases[] = {
      {"gather", SATTN_ROCC_ERR_OK, G, [] {}},
      {"scatter", SATTN_ROCC_ERR_OK, S, [] {}},
      {"index past src_rows", SATTN_ROCC_ERR_INDEX_RANGE, G, [&] { idx[3] = n_src; }},
      {"negative index", SATTN_ROCC_ERR_INDEX_RANGE, S, [&] { idx[5] = -1; }},
      {"null src", SATTN_ROCC_ERR_NULL_PTR, G, [&] { d->src_ptr = 0; }},
      {"odd stride", SATTN_ROCC_ERR_MISALIGNED, G, [&] { d->src_stride = 24; }},
      {"zero row", SATTN_ROCC_ERR_ZERO_DIM, G, [&] { d->row_bytes = 0; }},
      {"huge n_rows", SATTN_ROCC_ERR_OVERSIZE_DIM, G, [&] { d->n_rows = 1 << 24; }},
      {"row not /16", SATTN_ROCC_ERR_BAD_SHAPE, S, [&] { d->row_bytes = 40; }},
      {"small dst", SATTN_ROCC_ERR_BUFFER_SIZE, G, [&] { d->dst_bytes = 100; }},
      {"dst wraps past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, G, [&] { d->dst_ptr = kTop; }},
      {"src rows wrap past 2^64", SATTN_ROCC_ERR_ADDR_RANGE, G, [&] { d->src_ptr = kTop - 64 * 4; }},
      {"idx unmapped", SATTN_ROCC_ERR_DMA_READ_FAULT, G, [&] { d->idx_ptr = 0x20000; }},
      {"src unmapped", SATTN_ROCC_ERR_DMA_READ_FAULT, S, [&] { d->src_ptr = 0x20000; }},
      {"dst unmapped", SATTN_ROCC_ERR_DMA_WRITE_FAULT, G, [&] { d->dst_ptr = 0x20000; }},
      {"dst overstated", SATTN_ROCC_ERR_DMA_WRITE_FAULT, S, [&] { d->dst_ptr = uint64_t(reinterpret_cast<uintptr_t>(align(pool.data() + pool.size() - 256))); }},
      {"index error beats an earlier write fault", SATTN_ROCC_ERR_INDEX_RANGE, G, [&] { d->dst_ptr = 0x20000; idx[6] = -3; }},
  };
  for (const C& c : cases) {
    reset();
    c.edit();
    Expect(c.what, c.expect, &sim, &model, c.f, a, 0, t);
  }
}

// A command over its bound on a live but slow memory: WATCHDOG, the reads still in flight are
// discarded as they arrive, and the next command runs bit-exact. The model has no timing, so this
// case is the RTL's alone (documented in docs/backends/rocc.md).
void RunWatchdogRecovery(const Problem& p, Tally* t) {
  MemConfig slow;
  slow.latency = 3000;
  slow.watchdog_cycles = 500;
  Sim sim(slow);
  const RunResult r = Run(p, Path::kFused, &sim);
  SATTN_CHECK_EQ(r.error, int(SATTN_ROCC_ERR_WATCHDOG));
  ++t->cases;
  t->rtl_ok += r.error == SATTN_ROCC_ERR_WATCHDOG;
  MemConfig live = slow;
  live.watchdog_cycles = 50000000;
  sim.set_config(live);
  const RunResult ok = Run(p, Path::kFused, &sim);
  SATTN_CHECK_EQ(ok.error, 0);
  SATTN_CHECK(ok.output.out == Golden(p).out);
  SATTN_CHECK(ok.output.stats == Golden(p).stats);
  SATTN_CHECK_EQ(ok.sim_faults, 0u);
  SATTN_CHECK(sim.stale_reads() > 0);  // the aborted command's reads did arrive, and were dropped
  SATTN_CHECK_EQ(sim.assertion_failures(), 0u);
}

}  // namespace

int main() {
  const Problem p = MakeProblem();
  MemConfig mc;
  mc.latency = 20;
  mc.watchdog_cycles = 100000;
  Tally t;
  RunCommandCases(mc, &t);
  RunDescCases(p, mc, &t);
  RunCopyCases(mc, &t);
  RunWatchdogRecovery(p, &t);
  RunBwdCases(MakeBwdProblem(p), mc, &t);
  // Every code of the table has a case.
  for (int code = 0; code < SATTN_ROCC_N_ERRORS; ++code) {
    if (!t.codes.count(code)) std::fprintf(stderr, "no case for %s\n", sattn_rocc_err_name(code));
    SATTN_CHECK(t.codes.count(code) == 1);
  }
  std::printf("%d cases over %zu codes: RTL right on %d, model right and agreeing on %d\n", t.cases, t.codes.size(),
              t.rtl_ok, t.model_ok);
  return sattn_testing::Finish("rocc_errors_test");
}
