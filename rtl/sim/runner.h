// Runs a quantised problem on the simulated accelerator through the C driver, exactly as software
// on a RISC-V core would: lay out the buffers, fill a descriptor, issue the custom instruction,
// read the performance counters.
#ifndef SATTN_RTL_SIM_RUNNER_H_
#define SATTN_RTL_SIM_RUNNER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "rocc_bwd_model.h"
#include "rocc_model.h"
#include "sattn_rocc_cmds.h"
#include "sim.h"

namespace sattn {
namespace rocc {

enum class Path { kFused, kUnfused };  // SOFTMAX_FUSED, or SPDOT_BSR then SPMM_BSR

struct RunResult {
  int error = 0;                        // sattn_rocc_err_t of the first failing command
  Output output;
  std::vector<int32_t> scores;          // unfused path: the score tiles that went through memory
  std::map<std::string, uint64_t> counters;  // status registers, summed over the commands
  uint64_t sim_faults = 0;
};

// Host buffers in accelerator layout, 16-byte aligned, owned here.
class DeviceBuffers {
 public:
  explicit DeviceBuffers(const Problem& p);
  ~DeviceBuffers();
  void* Alloc(size_t bytes);   // zeroed, 16-byte aligned, mapped into `sim` by MapAll
  void MapAll(Sim* sim) const;
  struct Block { void* p; size_t n; };
  std::vector<Block> blocks;
  // the descriptor's buffers
  int8_t *q = nullptr, *k = nullptr, *v = nullptr;
  int16_t* out = nullptr;
  int32_t* stats = nullptr;
  int32_t* scores = nullptr;
  int32_t *row_ptr = nullptr, *col_idx = nullptr, *mask_idx = nullptr;
  uint64_t* bitmaps = nullptr;
  uint32_t *qmul = nullptr, *kmul = nullptr;
  size_t out_bytes = 0, stats_bytes = 0, scores_bytes = 0;
};

// The descriptor for `p` over `buf` (as the driver sees it); `scores` may be null (fused path).
void FillDescriptor(const Problem& p, const DeviceBuffers& buf, bool with_scores, sattn_rocc_desc_t* d);

RunResult Run(const Problem& p, Path path, Sim* sim);

// ATTN_BWD: the backward's buffers (the forward's q, k, v, kmul and plan, dO, row stats, the
// transposed plan, dS scratch and the int64 gradients), 16-byte aligned, owned here.
class BwdDeviceBuffers {
 public:
  explicit BwdDeviceBuffers(const BwdProblem& bp);
  ~BwdDeviceBuffers();
  void* Alloc(size_t bytes);
  void* Copy(const void* src, size_t bytes);
  void MapAll(Sim* sim) const;
  std::vector<DeviceBuffers::Block> blocks;
  int8_t *q = nullptr, *k = nullptr, *v = nullptr, *dout = nullptr;
  int32_t* rs = nullptr;
  uint32_t *emul = nullptr, *kmul = nullptr;
  int32_t *row_ptr = nullptr, *col_idx = nullptr, *t_row_ptr = nullptr, *t_ent = nullptr;
  uint64_t* bitmaps = nullptr;
  uint8_t* ds = nullptr;
  int64_t *dq = nullptr, *dk = nullptr, *dv = nullptr;
  size_t ds_bytes = 0, dq_bytes = 0, dkv_bytes = 0;
};

void FillBwdDescriptor(const BwdProblem& bp, const BwdDeviceBuffers& buf, sattn_rocc_bwd_desc_t* d);

struct BwdRunResult {
  int error = 0;
  BwdOutput output;
  std::map<std::string, uint64_t> counters;
  uint64_t sim_faults = 0;
};

// ATTN_BWD through the C driver (sattn_rocc_run_bwd).
BwdRunResult RunBwd(const BwdProblem& bp, Sim* sim);

// Names of the status registers (from the generated table), in register order.
const std::vector<std::string>& StatusNames();

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_SIM_RUNNER_H_
