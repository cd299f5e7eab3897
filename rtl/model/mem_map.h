// The accelerator's view of memory as a list of mapped host regions, shared by the simulator's
// memory model (rtl/sim) and the command model (rocc_cmd_model.h) so both refuse the same beats.
// Every range test is written without forming a sum that could wrap past 2^64.
#ifndef SATTN_RTL_MODEL_MEM_MAP_H_
#define SATTN_RTL_MODEL_MEM_MAP_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sattn {
namespace rocc {

// [addr, addr + n) lies inside [base, base + bytes).
inline bool RangeInside(uint64_t addr, uint64_t n, uint64_t base, uint64_t bytes) {
  return n <= bytes && addr >= base && addr - base <= bytes - n;
}

// What the memory does with one access.
enum class Access {
  kOk,     // mapped: reads return the bytes, writes land
  kFault,  // nothing mapped there: the memory answers with a bus error
  kDead,   // mapped to a memory that never answers reads (writes are accepted and land)
};

class MemoryMap {
 public:
  void Map(const void* base, size_t bytes) { regions_.push_back({Addr(base), bytes, false}); }
  // A region whose reads are never answered (a hung device): commands touching it hit the watchdog.
  void MapDead(const void* base, size_t bytes) { regions_.push_back({Addr(base), bytes, true}); }
  void Clear() { regions_.clear(); }
  bool empty() const { return regions_.empty(); }

  // The first region holding the whole access decides.
  Access Classify(uint64_t addr, uint64_t n) const {
    for (const Region& r : regions_)
      if (RangeInside(addr, n, r.base, r.bytes)) return r.dead ? Access::kDead : Access::kOk;
    return Access::kFault;
  }

 private:
  static uint64_t Addr(const void* p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); }
  struct Region {
    uint64_t base, bytes;
    bool dead;
  };
  std::vector<Region> regions_;
};

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_MODEL_MEM_MAP_H_
