// Microbenchmark of the int8 score tile (cc/cpu/qk_int8.h) against an fp32 FMA score tile of
// the same shape and loop structure (16-key groups, 4-row register tiles, K pre-packed), on the
// tile the CPU backend runs per plan entry: a 64-query block against a 64-key block, K hot in
// cache. One JSON row on stdout.
//   bazel run -c opt //cc/cpu:qk_int8_bench -- [--D 128] [--reps 20000]
// It measures Q K^T only, not attention: softmax and P V are outside it.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cc/cpu/qk_int8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

constexpr int kBlock = 64;

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void ScoresF32Avx2(const float* q, int rows, const float* kt, int n, int D,
                                                       float* s) {
  for (int g = 0; g * 16 < n; ++g) {
    const float* kg = kt + size_t(g) * D * 16;
    for (int r = 0; r < rows; r += 4) {
      __m256 a[4][2];
      for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = _mm256_setzero_ps();
      for (int d = 0; d < D; ++d) {
        const __m256 k0 = _mm256_loadu_ps(kg + d * 16), k1 = _mm256_loadu_ps(kg + d * 16 + 8);
        for (int i = 0; i < 4; ++i) {
          const __m256 b = _mm256_set1_ps(q[(r + i) * D + d]);
          a[i][0] = _mm256_fmadd_ps(b, k0, a[i][0]);
          a[i][1] = _mm256_fmadd_ps(b, k1, a[i][1]);
        }
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(s + (r + i) * n + g * 16, a[i][0]);
        _mm256_storeu_ps(s + (r + i) * n + g * 16 + 8, a[i][1]);
      }
    }
  }
}
#endif

bool F32Avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// fp32 peer: kt holds groups of 16 keys as D rows of 16 floats.
void ScoresF32(const float* q, int rows, const float* kt, int n, int D, float* s) {
#if defined(__x86_64__)
  if (F32Avx2()) return ScoresF32Avx2(q, rows, kt, n, D, s);
#endif
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < n; ++j) {
      float acc = 0;
      for (int d = 0; d < D; ++d) acc += q[r * D + d] * kt[(j / 16) * D * 16 + d * 16 + j % 16];
      s[r * n + j] = acc;
    }
}

template <class F>
double Best(F f, int reps) {
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int D = 128, reps = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--D")) D = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else { std::fprintf(stderr, "usage: %s [--D n] [--reps n]\n", argv[0]); return 2; }
  }
  if (D < 1 || D > 1024 || reps < 1) { std::fprintf(stderr, "--D in [1, 1024], --reps >= 1\n"); return 2; }
  std::mt19937 g(1);
  std::uniform_int_distribution<int> code(-127, 127);
  std::vector<int8_t> q8(size_t(kBlock) * D), k8(size_t(kBlock) * D);
  for (auto& x : q8) x = int8_t(code(g));
  for (auto& x : k8) x = int8_t(code(g));
  std::vector<int8_t> packed(size_t(sattn::cpu::qk_int8::PackedSize(kBlock, D)));
  sattn::cpu::qk_int8::PackKeys(k8.data(), D, kBlock, D, packed.data());
  std::vector<float> qf(q8.begin(), q8.end()), kt(size_t(kBlock) * D);
  for (int j = 0; j < kBlock; ++j)
    for (int d = 0; d < D; ++d) kt[(j / 16) * D * 16 + d * 16 + j % 16] = k8[size_t(j) * D + d];
  std::vector<int32_t> si(kBlock * kBlock);
  std::vector<float> sf(kBlock * kBlock);
  const double t8 = Best([&] { sattn::cpu::qk_int8::ScoresInt8(q8.data(), D, kBlock, packed.data(), kBlock, D,
                                                               si.data(), kBlock); }, reps);
  const double t32 = Best([&] { ScoresF32(qf.data(), kBlock, kt.data(), kBlock, D, sf.data()); }, reps);
  int mismatch = 0;  // both are exact here (integer values, |sum| < 2^24)
  for (int i = 0; i < kBlock * kBlock; ++i) mismatch += float(si[i]) != sf[i];
  const double macs = double(kBlock) * kBlock * D;
  std::printf("{\"bench\": \"qk_int8_tile\", \"isa\": \"%s\", \"fp32_isa\": \"%s\", \"rows\": %d, \"keys\": %d, \"D\": %d, "
              "\"int8_us\": %.3f, \"fp32_us\": %.3f, \"int8_gmacs\": %.2f, \"fp32_gmacs\": %.2f, "
              "\"speedup\": %.2f, \"mismatches\": %d}\n",
              sattn::cpu::qk_int8::ScoresInt8Isa(), F32Avx2() ? "avx2" : "portable", kBlock, kBlock, D, t8 * 1e6, t32 * 1e6, macs / t8 / 1e9,
              macs / t32 / 1e9, t32 / t8, mismatch);
  return mismatch ? 1 : 0;
}
