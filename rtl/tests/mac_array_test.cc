// Unit test of hw/mac_array.sv under Verilator: random int8 (and unsigned 8-bit) operand streams,
// back-to-back tiles with `first` restarting accumulation, checked against plain integer math.
#include <cstdint>
#include <random>
#include <vector>

#include "Vmac_array.h"
#include "cc/testing/check.h"
#include "verilated.h"

int main() {
  VerilatedContext ctx;
  Vmac_array m(&ctx);
  constexpr int R = 16, C = 16;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> s8(-128, 127), u8(0, 255), klen(1, 70);
  m.clk = 0;
  m.en = 0;
  m.eval();
  for (int tile = 0; tile < 40; ++tile) {
    const bool unsigned_a = tile % 2 == 1;  // P.V mode: zero-extended 8-bit weights
    const int K = klen(rng);
    std::vector<int64_t> ref(R * C, 0);
    for (int k = 0; k < K; ++k) {
      int a[R], b[C];
      for (int r = 0; r < R; ++r) a[r] = unsigned_a ? u8(rng) : s8(rng);
      for (int c = 0; c < C; ++c) b[c] = s8(rng);
      for (int r = 0; r < R; ++r) m.a[r] = uint32_t(a[r]) & 0x1ff;
      for (int c = 0; c < C; ++c) m.b[c] = uint32_t(b[c]) & 0xff;
      m.en = 1;
      m.first = k == 0;
      m.clk = 0;
      m.eval();
      m.clk = 1;
      m.eval();
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) ref[r * C + c] += int64_t(a[r]) * b[c];
    }
    // Idle cycles must hold the accumulators.
    m.en = 0;
    for (int i = 0; i < 2; ++i) { m.clk = 0; m.eval(); m.clk = 1; m.eval(); }
    int bad = 0;
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) bad += int32_t(m.acc[r][c]) != int32_t(ref[r * C + c]);
    SATTN_CHECK_EQ(bad, 0);
  }
  m.final();
  return sattn_testing::Finish("mac_array_test");
}
