// ScoresInt8 (both code paths) equals the exact integer Q K^T for every shape edge (D not a
// multiple of 4, ragged key groups, row counts around the 4-row tile, extreme codes), and
// QuantizeGroup reproduces sattn.quant's int8 codes (ties to even, clamping, zero groups).
#include "cc/cpu/qk_int8.h"

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cc/testing/check.h"

namespace {

using namespace sattn::cpu::qk_int8;

void CheckShape(int rows, int n, int D, std::mt19937* g, bool extremes) {
  std::uniform_int_distribution<int> code(-127, 127);
  std::vector<int8_t> q(size_t(rows) * D), k(size_t(n) * D);
  for (auto& x : q) x = int8_t(extremes ? ((*g)() & 1 ? 127 : -127) : code(*g));
  for (auto& x : k) x = int8_t(extremes ? ((*g)() & 1 ? 127 : -127) : code(*g));
  std::vector<int8_t> packed(size_t(PackedSize(n, D)));
  PackKeys(k.data(), D, n, D, packed.data());
  const int64_t s_ld = n + 3;  // a row stride wider than n: nothing past n is written
  std::vector<int32_t> fast(size_t(rows) * s_ld, 7), port(size_t(rows) * s_ld, 7);
  ScoresInt8(q.data(), D, rows, packed.data(), n, D, fast.data(), s_ld);
  ScoresInt8Portable(q.data(), D, rows, packed.data(), n, D, port.data(), s_ld);
  int bad = 0;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < s_ld; ++j) {
      int64_t want = 7;
      if (j < n) {
        want = 0;
        for (int d = 0; d < D; ++d) want += int64_t(q[size_t(r) * D + d]) * k[size_t(j) * D + d];
      }
      bad += fast[r * s_ld + j] != want;
      bad += port[r * s_ld + j] != want;
    }
  }
  if (bad) std::fprintf(stderr, "rows=%d n=%d D=%d extremes=%d: %d wrong scores\n", rows, n, D, extremes, bad);
  SATTN_CHECK_EQ(bad, 0);
}

void TestScores() {
  std::mt19937 g(3);
  for (int D : {1, 3, 4, 5, 64, 100, 128})
    for (int n : {1, 15, 16, 17, 64, 100})
      for (int rows : {1, 3, 4, 5, 9}) CheckShape(rows, n, D, &g, false);
  CheckShape(8, 48, 128, &g, true);  // every product +-127*127: the int16 pair sums' worst case
}

void TestQuantize() {
  // amax 127 -> scale 1: codes are rint(x), ties to even, then clamped
  const float x[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -127.0f, 3.49f};
  int8_t c[8];
  SATTN_CHECK(QuantizeGroup(x, 8, c) == 1.0);
  const int want[] = {127, 0, 2, 2, 0, -2, -127, 3};
  for (int i = 0; i < 8; ++i) SATTN_CHECK_EQ(int(c[i]), want[i]);
  const float z[] = {0.0f, 0.0f};
  int8_t cz[2] = {5, 5};
  SATTN_CHECK(QuantizeGroup(z, 2, cz) == 1.0);
  SATTN_CHECK_EQ(int(cz[0]), 0);
  const float y[] = {-3.0f, 1.0f, 0.25f};
  int8_t cy[3];
  SATTN_CHECK(QuantizeGroup(y, 3, cy) == 3.0 / 127.0);
  SATTN_CHECK_EQ(int(cy[0]), -127);
  SATTN_CHECK_EQ(int(cy[1]), 42);   // 1 / (3/127) = 42.33
  SATTN_CHECK_EQ(int(cy[2]), 11);   // 10.58
}

}  // namespace

int main() {
  std::printf("ScoresInt8 path: %s\n", ScoresInt8Isa());
  TestScores();
  TestQuantize();
  return sattn_testing::Finish("qk_int8_test");
}
