// AVX2+FMA build of kernel.inc: 8 lanes, 32-key chunks (half a bitmap word), 3 query rows x
// 4 key vectors = 12 ymm accumulators per register tile (16 ymm registers in all).
// Only compiled for x86-64; chosen at run time when the CPU supports AVX2 and FMA but not AVX-512.
#include "cc/cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace sattn {
namespace cpu {
namespace internal {
namespace avx2 {
namespace {

using V = __m256;
constexpr int L = 8;
#define SATTN_NVMAX 4
#define SATTN_RMAX 3
constexpr int NVMAX = SATTN_NVMAX;
constexpr int RMAX = SATTN_RMAX;
constexpr const char* kIsaName = "avx2";

inline V Zero() { return _mm256_setzero_ps(); }
inline V Load(const float* p) { return _mm256_loadu_ps(p); }
inline void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V Bcast(float x) { return _mm256_set1_ps(x); }
inline V Add(V a, V b) { return _mm256_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V Max(V a, V b) { return _mm256_max_ps(a, b); }  // NaN in a -> b
inline float HMax(V v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
inline float HSum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline V KeepBits(V s, uint32_t bits) {
  const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i hit = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits & 0xffu)), lane), lane);
  return _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), s, _mm256_castsi256_ps(hit));
}
inline V Pow2Bits(V t) {
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(127 << 23)));
}

#include "cc/cpu/kernel.inc"

#undef SATTN_NVMAX
#undef SATTN_RMAX
}  // namespace
}  // namespace avx2
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace sattn {
namespace cpu {
namespace internal {
const Isa* IsaAvx2() { return &avx2::kIsa; }
bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#else  // not x86-64

namespace sattn {
namespace cpu {
namespace internal {
const Isa* IsaAvx2() { return nullptr; }
bool CpuHasAvx2() { return false; }
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif
