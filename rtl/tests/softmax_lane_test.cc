// Unit test of hw/softmax_lane.sv under Verilator: every distance d below the row maximum that can
// give a non-zero weight (and a sample beyond) matches the golden model's ExpWeight bit for bit,
// and the weight is within the documented error of 256 * 2^(-d/256).
#include <cmath>
#include <cstdint>

#include "Vsoftmax_lane.h"
#include "rocc_model.h"
#include "cc/testing/check.h"
#include "verilated.h"

int main() {
  VerilatedContext ctx;
  Vsoftmax_lane lane(&ctx);
  int mismatches = 0;
  double worst = 0;
  auto check = [&](int64_t d) {
    lane.valid = 1;
    lane.d = uint64_t(d);
    lane.eval();
    const uint8_t want = sattn::rocc::ExpWeight(d);
    mismatches += lane.p != want;
    const double exact = std::min(255.0, 256.0 * std::exp2(-double(d) / 256.0));
    worst = std::max(worst, std::fabs(double(lane.p) - exact));
  };
  for (int64_t d = 0; d < 16 * 256 + 300; ++d) check(d);
  for (int64_t d = 1; d < (int64_t(1) << 32); d = d * 3 + 7) check(d);
  lane.valid = 0;
  lane.d = 0;
  lane.eval();
  SATTN_CHECK_EQ(int(lane.p), 0);  // masked lanes contribute nothing
  SATTN_CHECK_EQ(mismatches, 0);
  // Rounding to 8 bits: at most half a unit plus the table's Q16 rounding.
  SATTN_CHECK(worst <= 0.51);
  std::printf("softmax lane: max |p - 256*2^(-d/256)| = %.4f\n", worst);
  lane.final();
  return sattn_testing::Finish("softmax_lane_test");
}
