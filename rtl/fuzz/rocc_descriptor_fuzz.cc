// libFuzzer harness for the RoCC command port: a fuzzed stream of up to four commands, each either a
// descriptor command (SPDOT_BSR, SOFTMAX_FUSED, SPMM_BSR, GATH2D, SCAT2D) over a valid small
// problem whose descriptor words, plan arrays, copy indices and memory map the input edits, or a raw
// (funct7, rs1, rs2). Each command runs on the Verilated RTL and on the command model over the same
// memory map; both must answer the same code, and it must be a code of the table. The only answer
// the untimed model cannot predict (the RTL's watchdog on a live memory, bound 60000 cycles here)
// is checked to be WATCHDOG and then skipped.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "rocc_cmd_model.h"
#include "rocc_model.h"
#include "runner.h"
#include "sattn/plan.h"
#include "sim.h"

using namespace sattn;
using namespace sattn::rocc;

namespace {

constexpr uint64_t kWatchdog = 60000;
constexpr uint64_t kTop = ~uint64_t(0) - 15;

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool done() const { return i_ >= n_; }
  uint64_t Bytes(int k) {
    uint64_t v = 0;
    for (int j = 0; j < k; ++j) v |= uint64_t(i_ < n_ ? d_[i_++] : 0) << (8 * j);
    return v;
  }
  uint8_t Byte() { return uint8_t(Bytes(1)); }

 private:
  const uint8_t* d_;
  size_t n_, i_ = 0;
};

const Problem& BaseProblem() {
  static const Problem p = [] {
    Spec spec;
    spec.kind = SpecKind::kSlidingWindow;
    spec.window = 12;
    spec.causal = true;
    Shape s;
    s.B = 1; s.Hq = 2; s.Hkv = 1; s.Lq = 40; s.Lk = 48; s.D = 16;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> q(size_t(s.Hq) * s.Lq * s.D), k(size_t(s.Lk) * s.D), v(k.size());
    for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = nd(rng);
    PlanOptions opt;
    opt.tile = 16;
    opt.num_threads = 1;
    BlockPlan plan;
    if (!BuildPlan(spec, s, q.data(), k.data(), opt, &plan).ok()) std::abort();
    Problem p;
    if (!Quantize(q.data(), k.data(), v.data(), s.B, s.Hq, s.Hkv, s.Lq, s.Lk, s.D, 0.25, plan, &p).empty()) std::abort();
    return p;
  }();
  return p;
}

Sim& TheSim() {
  static Sim* sim = [] {
    MemConfig mc;
    mc.latency = 8;
    mc.watchdog_cycles = kWatchdog;
    return new Sim(mc);
  }();
  return *sim;
}

void Fail(const char* what, uint64_t f, uint64_t rtl, uint64_t model) {
  std::fprintf(stderr, "rocc_descriptor_fuzz: %s: funct7 %llu: rtl %llu (%s), model %llu (%s)\n", what,
               (unsigned long long)f, (unsigned long long)rtl, sattn_rocc_err_name(int(rtl & 0xff)),
               (unsigned long long)model, sattn_rocc_err_name(int(model & 0xff)));
  std::abort();
}

bool IsCode(uint64_t rd) { return rd < SATTN_ROCC_N_ERRORS; }

// One command: run it on both, compare.
void Compare(Sim& sim, CommandModel& model, uint64_t f, uint64_t rs1, uint64_t rs2) {
  const uint64_t rtl = sim.Command(f, rs1, rs2);
  const ModelResponse m = model.Command(sim.memory(), f, rs1, rs2, 4096);
  if (sim.assertion_failures() != 0) Fail("RTL assertion", f, rtl, m.rd);
  if (f == SATTN_ROCC_FUNCT_STATUS && rs1 < SATTN_ROCC_N_STATUS_REGS) {
    if (m.exact && rtl != m.rd) Fail("status register", f, rtl, m.rd);
    return;
  }
  const uint64_t code = (f == SATTN_ROCC_FUNCT_STATUS) ? (rtl & ~SATTN_ROCC_STATUS_ERROR_BIT) : rtl;
  if (!IsCode(code)) Fail("not an error code", f, rtl, m.rd);
  if (rtl == SATTN_ROCC_ERR_WATCHDOG && !(m.exact && m.rd == SATTN_ROCC_ERR_WATCHDOG)) {
    model.set_last_error(SATTN_ROCC_ERR_WATCHDOG);  // timing: the model has none
    return;
  }
  if (!m.exact) {  // the walk was longer than the model's bound: only the RTL's code is checked
    model.set_last_error(uint8_t(rtl));
    return;
  }
  if (rtl != m.rd) Fail("codes differ", f, rtl, m.rd);
}

void DescriptorCommand(Reader& in, uint32_t f, Sim& sim, CommandModel& model) {
  const Problem& p = BaseProblem();
  DeviceBuffers buf(p);
  const bool copy = f == SATTN_ROCC_FUNCT_GATH2D || f == SATTN_ROCC_FUNCT_SCAT2D;
  uint64_t* d = static_cast<uint64_t*>(buf.Alloc(SATTN_ROCC_DESC_WORDS * 8));
  int32_t* idx = static_cast<int32_t*>(buf.Alloc(64 * 4));
  if (copy) {
    // Copy between the q and out buffers, rows of 16 bytes.
    sattn_rocc_copy_desc_t* c = reinterpret_cast<sattn_rocc_copy_desc_t*>(d);
    for (int r = 0; r < 64; ++r) idx[r] = (r * 5) % 64;
    c->src_ptr = uint64_t(reinterpret_cast<uintptr_t>(buf.q));
    c->dst_ptr = uint64_t(reinterpret_cast<uintptr_t>(buf.out));
    c->idx_ptr = uint64_t(reinterpret_cast<uintptr_t>(idx));
    c->n_rows = 16; c->row_bytes = 16; c->src_stride = 16; c->dst_stride = 16;
    c->src_rows = 64; c->dst_rows = 64; c->dst_bytes = 64 * 16;
  } else {
    FillDescriptor(p, buf, f != SATTN_ROCC_FUNCT_SOFTMAX_FUSED, reinterpret_cast<sattn_rocc_desc_t*>(d));
  }
  const int words = copy ? SATTN_ROCC_CDESC_WORDS : SATTN_ROCC_DESC_WORDS;
  const void* omit = nullptr;
  const void* shrink = nullptr;
  size_t shrink_to = 0;
  const int n_ops = in.Byte() % 8;
  for (int op = 0; op < n_ops && !in.done(); ++op) {
    const uint8_t kind = in.Byte() % 7;
    const uint8_t sel = in.Byte();
    switch (kind) {
      case 0: d[sel % words] = in.Bytes(8); break;
      case 1: d[sel % words] += uint64_t(int64_t(int8_t(in.Byte()))); break;
      case 2: d[sel % words] = kTop - 16 * uint64_t(in.Byte()); break;
      case 3: {  // a plan (or index) entry
        int32_t* arr[] = {buf.row_ptr, buf.col_idx, buf.mask_idx, idx};
        const size_t len[] = {p.plan.row_ptr.size(), p.plan.col_idx.size(), p.plan.mask_idx.size(), 64};
        const int a = sel % 4;
        const uint8_t at = in.Byte();
        const int32_t v = int32_t(in.Bytes(4));
        if (len[a]) arr[a][at % len[a]] = v;
        break;
      }
      case 4: omit = buf.blocks[sel % buf.blocks.size()].p; break;
      case 5:
        shrink = buf.blocks[sel % buf.blocks.size()].p;
        shrink_to = size_t(in.Bytes(2));
        break;
      default: d[sel % words] = in.Bytes(2); break;  // a small value (dimension-sized)
    }
  }
  sim.UnmapAll();
  for (const auto& b : buf.blocks) {
    if (b.p == omit) continue;
    sim.Map(b.p, b.p == shrink ? std::min(shrink_to, b.n) : b.n);
  }
  Compare(sim, model, f, uint64_t(reinterpret_cast<uintptr_t>(d)), 0);
  sim.UnmapAll();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Sim& sim = TheSim();
  CommandModel model;
  model.set_last_error(uint8_t(sim.Command(SATTN_ROCC_FUNCT_STATUS, SATTN_ROCC_STAT_LAST_ERROR, 0)));
  Reader in(data, size);
  static const uint32_t kCmds[] = {SATTN_ROCC_FUNCT_SOFTMAX_FUSED, SATTN_ROCC_FUNCT_SPDOT_BSR, SATTN_ROCC_FUNCT_SPMM_BSR,
                                   SATTN_ROCC_FUNCT_GATH2D, SATTN_ROCC_FUNCT_SCAT2D};
  for (int c = 0; c < 4 && !in.done(); ++c) {
    const uint8_t sel = in.Byte();
    if (sel % 8 < 5) {
      DescriptorCommand(in, kCmds[sel % 8], sim, model);
    } else {
      uint64_t f = in.Bytes(1) | (sel % 8 == 7 ? in.Bytes(4) << 8 : 0);
      const uint64_t rs1 = in.Bytes(8), rs2 = in.Bytes(8);
      // Keep the watchdog bound: a fuzzed CONFIGURE must not let a command run for 2^64 cycles.
      if (f == SATTN_ROCC_FUNCT_CONFIGURE && (rs1 & 2)) continue;
      sim.UnmapAll();
      Compare(sim, model, f, rs1, rs2);
    }
  }
  return 0;
}
