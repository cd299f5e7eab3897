#include "sim.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "sattn_rocc_cmds.h"

#include "Vsattn_rocc.h"
#include "verilated.h"

namespace sattn {
namespace rocc {

struct Sim::Impl {
  VerilatedContext ctx;
  std::unique_ptr<Vsattn_rocc> top;
  Impl() {
    ctx.fatalOnError(false);  // a failed assertion is reported, counted and fails the command
    top = std::make_unique<Vsattn_rocc>(&ctx, "sattn_rocc");
  }
};

Sim::Sim(const MemConfig& cfg) : impl_(new Impl), cfg_(cfg) {
  Vsattn_rocc* t = impl_->top.get();
  t->rst = 1;
  t->clk = 0;
  t->cmd_valid = 0;
  t->resp_ready = 0;
  t->mem_req_ready = 0;
  t->mem_resp_valid = 0;
  t->mem_resp_err = 0;
  t->mem_wr_err = 0;
  for (int i = 0; i < 4; ++i) Tick();
  t->rst = 0;
  Tick();
  ConfigureWatchdog(this, cfg_.watchdog_cycles);
}

void Sim::set_config(const MemConfig& cfg) {
  cfg_ = cfg;
  ConfigureWatchdog(this, cfg_.watchdog_cycles);
}

Sim::~Sim() {
  // Verilator 5.006 unregisters a model's scopes through the calling thread's *current* context,
  // which is whichever model last ran on this thread (possibly one already destroyed). Point it
  // at this model's own context first, or destroying several models deadlocks on a freed mutex.
  Verilated::threadContextp(&impl_->ctx);
  impl_->top->final();
  impl_->top.reset();
}

uint64_t Sim::assertion_failures() const { return impl_->ctx.errorCount(); }

void Sim::Map(const void* base, size_t bytes) { mem_.Map(base, bytes); }
void Sim::MapDead(const void* base, size_t bytes) { mem_.MapDead(base, bytes); }
void Sim::UnmapAll() {
  mem_.Clear();
  ++map_epoch_;
}

// One clock cycle: drive inputs from the memory model, sample the design's outputs as they stand
// at the rising edge, clock it, then update the memory model with what was transferred.
void Sim::Tick() {
  Vsattn_rocc* t = impl_->top.get();
  // Bandwidth: a token bucket refilled at bytes_per_cycle, one 16-byte beat per accepted request.
  tokens_ = std::min(tokens_ + cfg_.bytes_per_cycle, 32.0);
  t->mem_req_ready = tokens_ >= 16.0;
  // In-order responses: a read of a dead region is never answered and holds back every later one.
  // A read issued under an earlier map (a watchdog-aborted command's, its buffers since freed) is
  // a bus error whatever the current map holds at that address.
  const bool stale = !reads_.empty() && reads_.front().map_epoch != map_epoch_;
  const Access front = reads_.empty() || stale ? Access::kFault
                                               : mem_.Classify(reads_.front().addr, 16);
  const bool resp = !reads_.empty() && reads_.front().ready <= cycle_ && front != Access::kDead;
  t->mem_resp_valid = resp || inject_resp_;
  t->mem_resp_err = 0;
  if (inject_resp_ && !resp)
    for (int i = 0; i < 4; ++i) t->mem_resp_rdata[i] = 0;
  inject_resp_ = false;
  if (resp) {
    const Pending& r = reads_.front();
    uint32_t w[4] = {0, 0, 0, 0};
    if (front == Access::kOk) {
      std::memcpy(w, reinterpret_cast<const void*>(uintptr_t(r.addr)), 16);
    } else {
      ++(stale ? stale_reads_ : faults_);
      t->mem_resp_err = 1;
    }
    for (int i = 0; i < 4; ++i) t->mem_resp_rdata[i] = w[i];
  }
  t->mem_wr_err = 0;
  t->clk = 0;
  t->eval();
  const bool fire = t->mem_req_valid && t->mem_req_ready;
  const uint64_t addr = t->mem_req_addr;
  const bool write = t->mem_req_write;
  uint32_t wdata[4];
  for (int i = 0; i < 4; ++i) wdata[i] = t->mem_req_wdata[i];
  const uint32_t strb = t->mem_req_wstrb;
  // A write is refused in the cycle it is accepted (the design samples mem_wr_err at this edge).
  const bool wr_refused = fire && write && strb != 0 && mem_.Classify(addr, 16) == Access::kFault;
  if (wr_refused) {
    t->mem_wr_err = 1;
    t->eval();
  }
  t->clk = 1;
  t->eval();
  impl_->ctx.timeInc(1);
  if (resp) reads_.pop_front();
  if (fire) {
    tokens_ -= 16.0;
    if (write) {
      if (wr_refused) {
        ++faults_;
      } else if (strb != 0) {
        uint8_t* dst = reinterpret_cast<uint8_t*>(uintptr_t(addr));
        const uint8_t* src = reinterpret_cast<const uint8_t*>(wdata);
        for (int i = 0; i < 16; ++i)
          if (strb & (1u << i)) dst[i] = src[i];
      }
    } else {
      reads_.push_back({cycle_ + uint64_t(cfg_.latency), addr, map_epoch_});
    }
  }
  ++cycle_;
}

void Sim::InjectSpuriousResponse() {
  Verilated::threadContextp(&impl_->ctx);
  inject_resp_ = true;
  Tick();
}

uint64_t Sim::Command(uint64_t funct7, uint64_t rs1, uint64_t rs2) {
  // The instruction has 7 bits of funct7: a wider value is no instruction at all, never a
  // truncated one (149 is not command 21).
  if (funct7 > 127) return SATTN_ROCC_ERR_BAD_FUNCT;
  // Assertion failures are counted in the thread's current context (Verilator 5.006): make that
  // this model's, since several simulators may live in one process.
  Verilated::threadContextp(&impl_->ctx);
  Vsattn_rocc* t = impl_->top.get();
  const uint64_t start = cycle_;
  const uint64_t errors0 = impl_->ctx.errorCount();
  t->cmd_valid = 1;
  t->cmd_funct7 = funct7;
  t->cmd_rs1 = rs1;
  t->cmd_rs2 = rs2;
  t->cmd_rd = 10;
  t->resp_ready = 1;
  bool sent = false;
  const uint64_t backstop =
      cfg_.watchdog_cycles > (uint64_t(1) << 61) ? ~uint64_t(0) : 2 * cfg_.watchdog_cycles + 10000;
  for (;;) {
    if (cycle_ - start > backstop)
      throw std::runtime_error("sattn rocc sim: backstop: the unit's watchdog did not answer funct7 " +
                               std::to_string(funct7) + " within " + std::to_string(backstop) + " cycles");
    t->clk = 0;
    t->eval();
    const bool accepted = t->cmd_valid && t->cmd_ready;
    const bool got = t->resp_valid && t->resp_ready;
    const uint64_t data = t->resp_data;
    Tick();
    if (accepted && !sent) {
      sent = true;
      t->cmd_valid = 0;
    }
    if (got) {
      t->resp_ready = 0;
      if (uint64_t(impl_->ctx.errorCount()) != errors0)
        throw std::runtime_error("sattn rocc sim: RTL assertion failed during funct7 " + std::to_string(funct7));
      return data;
    }
  }
}

uint64_t SimTransport(void* sim, uint32_t funct7, uint64_t rs1, uint64_t rs2) {
  return static_cast<Sim*>(sim)->Command(funct7, rs1, rs2);
}

void ConfigureWatchdog(Sim* sim, uint64_t cycles) {
  const uint64_t rd = sim->Command(SATTN_ROCC_FUNCT_CONFIGURE, 2, cycles);
  if (rd != SATTN_ROCC_ERR_OK) throw std::runtime_error("sattn rocc sim: CONFIGURE of the watchdog answered " + std::to_string(rd));
}

}  // namespace rocc
}  // namespace sattn
