#include "cc/cpu/qk_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace sattn {
namespace cpu {
namespace qk_int8 {
namespace {

int32_t Quads(int32_t D) { return (D + 3) / 4; }

// q rows copied to whole 4-byte words per channel quad (zero padded), read as one int32 each.
std::vector<int32_t> QuadRows(const int8_t* q, int64_t q_ld, int32_t rows, int32_t D) {
  const int32_t nq = Quads(D);
  std::vector<int32_t> out(size_t(rows) * nq, 0);
  for (int32_t r = 0; r < rows; ++r) std::memcpy(out.data() + size_t(r) * nq, q + r * q_ld, size_t(D));
  return out;
}

#if defined(__x86_64__)
// R query rows x one 16-key group. vpmaddubsw multiplies unsigned by signed bytes, so |q| goes
// unsigned and q's sign moves onto k (vpsignb); with codes in [-127, 127] a pair of products is
// at most 2 * 127 * 127 = 32258 and the int16 sums never saturate.
template <int R>
__attribute__((target("avx2"))) void GroupAvx2(const int32_t* qw, int32_t nq, const int8_t* kg, int32_t* s,
                                               int64_t s_ld, int32_t keys) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int32_t t = 0; t < nq; ++t) {
    const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kg + t * 64));
    const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kg + t * 64 + 32));
    for (int r = 0; r < R; ++r) {
      const __m256i b = _mm256_set1_epi32(qw[r * nq + t]);
      const __m256i a = _mm256_sign_epi8(b, b);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(k0, b)), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(k1, b)), ones));
    }
  }
  for (int r = 0; r < R; ++r) {
    if (keys == kKeyGroup) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + r * s_ld), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + r * s_ld + 8), acc[r][1]);
    } else {
      alignas(32) int32_t tmp[kKeyGroup];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[r][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[r][1]);
      std::memcpy(s + r * s_ld, tmp, sizeof(int32_t) * size_t(keys));
    }
  }
}

void ScoresAvx2(const int8_t* q, int64_t q_ld, int32_t rows, const int8_t* packed, int32_t n, int32_t D,
                int32_t* s, int64_t s_ld) {
  const int32_t nq = Quads(D);
  const std::vector<int32_t> qw = QuadRows(q, q_ld, rows, D);
  const int64_t gbytes = int64_t(nq) * 64;
  for (int32_t g = 0; g * kKeyGroup < n; ++g) {
    const int32_t keys = std::min(kKeyGroup, n - g * kKeyGroup);
    const int8_t* kg = packed + g * gbytes;
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) GroupAvx2<4>(qw.data() + size_t(r) * nq, nq, kg, s + r * s_ld + g * kKeyGroup, s_ld, keys);
    for (; r < rows; ++r) GroupAvx2<1>(qw.data() + size_t(r) * nq, nq, kg, s + r * s_ld + g * kKeyGroup, s_ld, keys);
  }
}

bool CpuHasAvx2() { return __builtin_cpu_supports("avx2"); }
#else
bool CpuHasAvx2() { return false; }
#endif

bool UseAvx2() {
  static const bool use = [] {
    const char* env = std::getenv("SATTN_CPU_ISA");
    return CpuHasAvx2() && !(env != nullptr && std::string(env) == "portable");
  }();
  return use;
}

}  // namespace

int64_t PackedSize(int32_t n, int32_t D) {
  return int64_t((n + kKeyGroup - 1) / kKeyGroup) * Quads(D) * 64;
}

void PackKeys(const int8_t* k, int64_t ld, int32_t n, int32_t D, int8_t* packed) {
  const int32_t nq = Quads(D);
  std::memset(packed, 0, size_t(PackedSize(n, D)));
  for (int32_t j = 0; j < n; ++j) {
    int8_t* g = packed + int64_t(j / kKeyGroup) * nq * 64 + (j % kKeyGroup) * 4;
    for (int32_t d = 0; d < D; ++d) g[(d / 4) * 64 + d % 4] = k[j * ld + d];
  }
}

void ScoresInt8Portable(const int8_t* q, int64_t q_ld, int32_t rows, const int8_t* packed, int32_t n, int32_t D,
                        int32_t* s, int64_t s_ld) {
  const int32_t nq = Quads(D);
  const std::vector<int32_t> qw = QuadRows(q, q_ld, rows, D);
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t* qb = reinterpret_cast<const int8_t*>(qw.data() + size_t(r) * nq);
    for (int32_t g = 0; g * kKeyGroup < n; ++g) {
      const int8_t* kg = packed + int64_t(g) * nq * 64;
      int32_t acc[kKeyGroup] = {};
      for (int32_t t = 0; t < nq; ++t)
        for (int32_t key = 0; key < kKeyGroup; ++key)
          for (int32_t i = 0; i < 4; ++i) acc[key] += int32_t(qb[4 * t + i]) * int32_t(kg[t * 64 + key * 4 + i]);
      const int32_t keys = std::min(kKeyGroup, n - g * kKeyGroup);
      std::memcpy(s + r * s_ld + g * kKeyGroup, acc, sizeof(int32_t) * size_t(keys));
    }
  }
}

void ScoresInt8(const int8_t* q, int64_t q_ld, int32_t rows, const int8_t* packed, int32_t n, int32_t D,
                int32_t* s, int64_t s_ld) {
#if defined(__x86_64__)
  if (UseAvx2()) return ScoresAvx2(q, q_ld, rows, packed, n, D, s, s_ld);
#endif
  ScoresInt8Portable(q, q_ld, rows, packed, n, D, s, s_ld);
}

const char* ScoresInt8Isa() { return UseAvx2() ? "avx2" : "portable"; }

double QuantizeGroup(const float* x, int64_t n, int8_t* codes) {
  double amax = 0.0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(double(x[i])));
  const double scale = amax > 0.0 ? amax / 127.0 : 1.0;
  for (int64_t i = 0; i < n; ++i) {
    const double c = std::nearbyint(double(x[i]) / scale);  // default rounding mode: ties to even
    codes[i] = int8_t(std::min(127.0, std::max(-127.0, c)));
  }
  return scale;
}

}  // namespace qk_int8
}  // namespace cpu
}  // namespace sattn
