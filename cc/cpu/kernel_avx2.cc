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
inline V Div(V a, V b) { return _mm256_div_ps(a, b); }
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

// The quantized kernel (kernel_int8.inc). No unsigned x signed byte dot with int32 sums here:
// vpmaddubsw takes |q| (unsigned) and k with q's sign (vpsignb), its int16 pair sums are at
// most 2 * 127 * 127 and never saturate, vpmaddwd widens them. P V runs in fp32.
#define SATTN_QUANT_TARGET
#define SATTN_BF16_PAIRS 0
using VI = __m256i;
constexpr int32_t kQOffset = 0;
constexpr const char* kQuantIsaName = "avx2";
inline VI IZero() { return _mm256_setzero_si256(); }
inline VI LoadI(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline VI BcastI(int32_t x) { return _mm256_set1_epi32(x); }
inline VI SubI(VI a, VI b) { return _mm256_sub_epi32(a, b); }
inline V ToFloat(VI a) { return _mm256_cvtepi32_ps(a); }
inline VI DotQ(VI acc, VI qb, VI k) {
  const __m256i prod = _mm256_maddubs_epi16(_mm256_sign_epi8(qb, qb), _mm256_sign_epi8(k, qb));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(prod, _mm256_set1_epi16(1)));
}
inline V RoundBf16(V p) {
  const __m256i u = _mm256_castps_si256(p);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
  return _mm256_castsi256_ps(_mm256_and_si256(r, _mm256_set1_epi32(int(0xffff0000u))));
}

#include "cc/cpu/kernel_int8.inc"

#undef SATTN_QUANT_TARGET
#undef SATTN_BF16_PAIRS
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
const QuantIsa* QuantIsaAvx2() { return &avx2::kQuantIsa; }
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
const QuantIsa* QuantIsaAvx2() { return nullptr; }
bool CpuHasAvx2() { return false; }
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif
