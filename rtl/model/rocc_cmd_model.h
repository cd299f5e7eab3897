// The accelerator's command semantics without its timing: funct7 decoding, the descriptor fetch and
// checks, the plan walk in the loader's order, bus errors and the error code each command answers.
// The RTL must answer every command with the code CommandModel gives (rtl/tests/errors_test.cc and
// the rocc_descriptor_fuzz harness check it); the numbers an OK command writes are Golden()'s
// (rocc_model.h). Performance counters depend on timing and are not modelled.
#ifndef SATTN_RTL_MODEL_ROCC_CMD_MODEL_H_
#define SATTN_RTL_MODEL_ROCC_CMD_MODEL_H_

#include <cstdint>

#include "mem_map.h"
#include "sattn_rocc_cmds.h"

namespace sattn {
namespace rocc {

struct ModelResponse {
  uint64_t rd = 0;
  // false when rd is a timing-dependent counter value the model does not know (STATUS of a
  // counter), or when the walk stopped at max_steps before reaching an answer.
  bool exact = true;
};

class CommandModel {
 public:
  // rows x cols: the MAC array shape of the build being modelled (reported by STATUS).
  explicit CommandModel(uint32_t rows = SATTN_ROCC_MAC_ROWS, uint32_t cols = SATTN_ROCC_MAC_COLS)
      : rows_(rows), cols_(cols) {}

  // One RoCC command over `mem`. A funct7 that does not fit in 7 bits cannot be encoded: it answers
  // BAD_FUNCT without reaching the unit (LAST_ERROR unchanged). `max_steps` bounds the plan rows
  // and copy rows walked (a fuzzed descriptor may describe 2^40 rows); past it the answer is
  // inexact.
  ModelResponse Command(const MemoryMap& mem, uint64_t funct7, uint64_t rs1, uint64_t rs2,
                        uint64_t max_steps = ~uint64_t(0));

  uint8_t last_error() const { return last_error_; }
  // After an answer the model cannot predict (a watchdog on a live memory), take the unit's.
  void set_last_error(uint8_t code) { last_error_ = code; }
  uint64_t watchdog() const { return watchdog_; }

 private:
  uint32_t rows_, cols_;
  uint8_t last_error_ = SATTN_ROCC_ERR_OK;
  uint64_t watchdog_ = SATTN_ROCC_WATCHDOG_DEFAULT;
};

// The static descriptor checks, in the RTL's order (exposed for the fuzz harness and tests).
// `mode_funct7` is SPDOT_BSR, SOFTMAX_FUSED or SPMM_BSR; d holds DESC_WORDS words.
int CheckDescriptor(const uint64_t* d, uint32_t mode_funct7, uint32_t mac_rows, uint32_t mac_cols);
// ATTN_BWD: d holds BDESC_WORDS words.
int CheckBwdDescriptor(const uint64_t* d, uint32_t mac_rows, uint32_t mac_cols);
// GATH2D / SCAT2D: d holds CDESC_WORDS words.
int CheckCopyDescriptor(const uint64_t* d, bool gather);

}  // namespace rocc
}  // namespace sattn

#endif  // SATTN_RTL_MODEL_ROCC_CMD_MODEL_H_
