// A riscv64 program with a known instruction mix between the plugin's region markers, for
// rvv/plugin_test.py: every counter of the region is checked exactly.
#include <cstdint>
#include <cstdio>


int main() {
  alignas(16) static float buf[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  alignas(8) static int64_t word = 5;
  float* p = buf;
  int64_t* w = &word;
  // 4 scalar ALU, 2 scalar memory (8 + 8 bytes), 1 branch (jal over nothing), 1 vsetvli,
  // 1 unit-stride vle32 + 1 vse32 of 8 floats (32 + 32 bytes, LMUL=2), 2 vector arithmetic ops
  // (LMUL=2 each), 1 strided vlse32 of 8 floats (32 bytes).
  // The markers are inside the asm block (same encodings as rvv/region.h), so the compiler
  // cannot move address arithmetic into the region.
  asm volatile(
      ".insn i 0x13, 0, x0, x0, 0x7e1\n"
      "addi t0, zero, 8\n"
      "addi t1, zero, 1\n"
      "add t1, t1, t0\n"
      "ld t2, 0(%1)\n"
      "sd t2, 0(%1)\n"
      "slli t2, t2, 1\n"
      "jal zero, 1f\n"
      "1:\n"
      ".option push\n.option arch, +v\n"
      "vsetvli t3, t0, e32, m2, ta, ma\n"
      "vle32.v v2, (%0)\n"
      "vfadd.vv v4, v2, v2\n"
      "vfmul.vv v4, v4, v2\n"
      "vse32.v v4, (%0)\n"
      "li t4, 8\n"
      "vlse32.v v6, (%0), t4\n"
      ".option pop\n"
      ".insn i 0x13, 0, x0, x0, 0x7e2\n"
      :
      : "r"(p), "r"(w)
      : "t0", "t1", "t2", "t3", "t4", "memory");
  std::printf("%g\n", double(buf[1]));
  return 0;
}
