// Instruction-count region markers for the QEMU plugin (rvv/plugin/insn_count.c): the HINT
// encodings `addi x0, x0, 0x7e1` (begin) and `0x7e2` (end), no-ops on any RISC-V core, so a
// binary with markers runs unchanged on a board. Header-only: anything can mark a region.
#ifndef SATTN_RVV_REGION_H_
#define SATTN_RVV_REGION_H_

namespace sattn {
namespace rvv {

inline void RegionBegin() {
#if defined(__riscv)
  asm volatile(".insn i 0x13, 0, x0, x0, 0x7e1" ::: "memory");
#endif
}

inline void RegionEnd() {
#if defined(__riscv)
  asm volatile(".insn i 0x13, 0, x0, x0, 0x7e2" ::: "memory");
#endif
}

}  // namespace rvv
}  // namespace sattn

#endif  // SATTN_RVV_REGION_H_
