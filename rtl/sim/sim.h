// Cycle-level harness around the Verilated accelerator: a RoCC command port driven one command at
// a time, and a memory model with configurable latency and bandwidth in front of host memory
// regions the caller maps. The memory answers accesses outside every mapped region with a bus error
// (the unit turns it into DMA_READ_FAULT / DMA_WRITE_FAULT); the unit's own watchdog is set to
// watchdog_cycles at reset, and a harness backstop turns a hung design into an exception.
#ifndef SATTN_RTL_SIM_SIM_H_
#define SATTN_RTL_SIM_SIM_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "mem_map.h"

namespace sattn {
namespace rocc {

struct MemConfig {
  int latency = 40;                 // cycles from an accepted read to its response
  double bytes_per_cycle = 16.0;    // sustained bandwidth shared by reads and writes (<= 16)
  // The unit's watchdog bound (CONFIGURE at reset): a command busy longer answers WATCHDOG.
  uint64_t watchdog_cycles = 200000000;
};

class Sim {
 public:
  explicit Sim(const MemConfig& cfg = MemConfig());
  ~Sim();
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  // Host memory the accelerator may touch. Accesses outside every mapped region are counted as
  // faults and answered with a bus error: reads return zeros with mem_resp_err, writes are dropped
  // with mem_wr_err. MapDead maps memory whose reads are never answered (a hung device).
  // UnmapAll ends a map: reads still in flight from it (a watchdog-aborted command's) are answered
  // with a bus error without touching memory, and count as stale_reads, not as faults, so the
  // next command's fault count depends neither on the old command nor on where the allocator
  // puts the new buffers.
  void Map(const void* base, size_t bytes);
  void MapDead(const void* base, size_t bytes);
  void UnmapAll();
  const MemoryMap& memory() const { return mem_; }

  // Issues one RoCC command and clocks the design until its response. A funct7 that does not fit
  // the instruction's 7 bits answers BAD_FUNCT without reaching the design. Throws
  // std::runtime_error when the design does not answer within the backstop (twice the unit's
  // watchdog plus slack: the unit's own watchdog failed) or an RTL assertion fails.
  uint64_t Command(uint64_t funct7, uint64_t rs1, uint64_t rs2);

  // Test hook: drive one memory response nobody asked for (the design's input-protocol assertion
  // must catch it; see e2e_test).
  void InjectSpuriousResponse();

  uint64_t cycles() const { return cycle_; }   // since construction
  uint64_t faults() const { return faults_; }
  uint64_t stale_reads() const { return stale_reads_; }
  uint64_t assertion_failures() const;
  const MemConfig& config() const { return cfg_; }
  void set_config(const MemConfig& cfg);

 private:
  struct Impl;
  void Tick();
  std::unique_ptr<Impl> impl_;
  MemConfig cfg_;
  MemoryMap mem_;
  struct Pending { uint64_t ready; uint64_t addr; uint64_t map_epoch; };
  std::deque<Pending> reads_;
  double tokens_ = 0;
  uint64_t cycle_ = 0;
  uint64_t faults_ = 0;
  uint64_t stale_reads_ = 0;
  uint64_t map_epoch_ = 0;
  bool inject_resp_ = false;
};

// The C driver's host transport (sattn_rocc_set_host_transport) for a Sim.
uint64_t SimTransport(void* sim, uint32_t funct7, uint64_t rs1, uint64_t rs2);

// The unit's watchdog for a harness watchdog setting (CONFIGURE rs1 = 2, rs2 = cycles).
void ConfigureWatchdog(Sim* sim, uint64_t cycles);

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_SIM_SIM_H_
