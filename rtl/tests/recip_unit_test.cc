// Unit test of hw/recip_unit.sv under Verilator: floor(2^32 / s) for edge and random divisors,
// the zero-sum shortcut, and the latency the compute engine relies on.
#include <cstdint>
#include <random>

#include "Vrecip_unit.h"
#include "rocc_model.h"
#include "cc/testing/check.h"
#include "verilated.h"

namespace {
void Tick(Vrecip_unit* r) {
  r->clk = 0;
  r->eval();
  r->clk = 1;
  r->eval();
}
}  // namespace

int main() {
  VerilatedContext ctx;
  Vrecip_unit r(&ctx);
  r.rst = 1;
  r.start = 0;
  Tick(&r);
  Tick(&r);
  r.rst = 0;
  std::mt19937 rng(3);
  std::vector<uint32_t> divisors = {0, 1, 2, 3, 255, 256, 257, 65535, 0x7fffffffu, 0x80000000u, 0xffffffffu};
  for (int i = 0; i < 300; ++i) divisors.push_back(rng() >> (rng() % 32));
  int bad = 0, max_latency = 0;
  for (uint32_t s : divisors) {
    r.s = s;
    r.start = 1;
    Tick(&r);
    r.start = 0;
    int cycles = 1;
    while (!r.done && cycles < 100) { Tick(&r); ++cycles; }
    max_latency = std::max(max_latency, cycles);
    bad += uint64_t(r.q) != sattn::rocc::Reciprocal(s);
    Tick(&r);
  }
  SATTN_CHECK_EQ(bad, 0);
  SATTN_CHECK(max_latency <= 35);
  r.final();
  return sattn_testing::Finish("recip_unit_test");
}
