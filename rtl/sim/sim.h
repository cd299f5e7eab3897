// Cycle-level harness around the Verilated accelerator: a RoCC command port driven one command at
// a time, and a memory model with configurable latency and bandwidth in front of host memory
// regions the caller maps. A watchdog turns a hung design into an error instead of a hang.
#ifndef SATTN_RTL_SIM_SIM_H_
#define SATTN_RTL_SIM_SIM_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace sattn {
namespace rocc {

struct MemConfig {
  int latency = 40;                 // cycles from an accepted read to its response
  double bytes_per_cycle = 16.0;    // sustained bandwidth shared by reads and writes (<= 16)
  uint64_t watchdog_cycles = 200000000;  // per command
};

class Sim {
 public:
  explicit Sim(const MemConfig& cfg = MemConfig());
  ~Sim();
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  // Host memory the accelerator may touch. Accesses outside every mapped region are counted as
  // faults: reads return zeros and writes are dropped.
  void Map(const void* base, size_t bytes);
  void UnmapAll();

  // Issues one RoCC command and clocks the design until its response. Throws std::runtime_error
  // on a watchdog timeout.
  uint64_t Command(uint32_t funct7, uint64_t rs1, uint64_t rs2);

  // Test hook: drive one memory response nobody asked for (the design's input-protocol assertion
  // must catch it; see e2e_test).
  void InjectSpuriousResponse();

  uint64_t cycles() const { return cycle_; }   // since construction
  uint64_t faults() const { return faults_; }
  uint64_t assertion_failures() const;
  const MemConfig& config() const { return cfg_; }
  void set_config(const MemConfig& cfg) { cfg_ = cfg; }

 private:
  struct Impl;
  bool InRegion(uint64_t addr, size_t n, bool write) const;
  void Tick();
  std::unique_ptr<Impl> impl_;
  MemConfig cfg_;
  struct Region { uint64_t base, bytes; };
  std::vector<Region> regions_;
  struct Pending { uint64_t ready; uint64_t addr; };
  std::deque<Pending> reads_;
  double tokens_ = 0;
  uint64_t cycle_ = 0;
  uint64_t faults_ = 0;
  bool inject_resp_ = false;
};

// The C driver's host transport (sattn_rocc_set_host_transport) for a Sim.
uint64_t SimTransport(void* sim, uint32_t funct7, uint64_t rs1, uint64_t rs2);

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_SIM_SIM_H_
