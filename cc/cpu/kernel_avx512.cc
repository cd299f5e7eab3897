// AVX-512F build of kernel.inc: 16 lanes, 64-key chunks (one bitmap word = one __mmask16 per
// vector), 6 query rows x 4 key vectors = 24 zmm accumulators per register tile.
// Only compiled for x86-64; chosen at run time when the CPU and OS support AVX-512F. Its
// quantized kernel (kernel_int8.inc) needs AVX-512 VNNI and BF16 as well.
#include "cc/cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
// GCC 12's AVX-512 headers build casts and extracts from self-initialised "undefined" vectors,
// which -Wmaybe-uninitialized reports once per inlined use; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace sattn {
namespace cpu {
namespace internal {
namespace avx512 {
namespace {

using V = __m512;
constexpr int L = 16;
#define SATTN_NVMAX 4
#define SATTN_RMAX 6
constexpr int NVMAX = SATTN_NVMAX;
constexpr int RMAX = SATTN_RMAX;
constexpr const char* kIsaName = "avx512";

inline V Zero() { return _mm512_setzero_ps(); }
inline V Load(const float* p) { return _mm512_loadu_ps(p); }
inline void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V Bcast(float x) { return _mm512_set1_ps(x); }
inline V Add(V a, V b) { return _mm512_add_ps(a, b); }
inline V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V Mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V Div(V a, V b) { return _mm512_div_ps(a, b); }
inline V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V Max(V a, V b) { return _mm512_max_ps(a, b); }  // NaN in a -> b
// Reductions by folding halves inside the zmm register (GCC 12's _mm512_reduce_* go through
// _mm256_undefined_pd and warn about uninitialised values).
inline float HMax(V v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));
  __m128 m = _mm512_castps512_ps128(v);
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
inline float HSum(V v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline V KeepBits(V s, uint32_t bits) {
  return _mm512_mask_blend_ps(__mmask16(bits & 0xffffu), _mm512_set1_ps(-__builtin_inff()), s);
}
inline V Pow2Bits(V t) {
  const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(t), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(e, _mm512_set1_epi32(127 << 23)));
}

#include "cc/cpu/kernel.inc"

// The quantized kernel (kernel_int8.inc): vpdpbusd for Q K^T (q codes + 128 as unsigned bytes,
// k signed), vdpbf16ps for a bf16 P V. Only its functions carry VNNI and BF16, so the fp32
// kernel above runs on every AVX-512F CPU.
#define SATTN_QUANT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,avx2,fma")))
#define SATTN_BF16_PAIRS 1
using VI = __m512i;
constexpr int32_t kQOffset = 128;
constexpr const char* kQuantIsaName = "avx512_vnni";
SATTN_QUANT_TARGET inline VI IZero() { return _mm512_setzero_si512(); }
SATTN_QUANT_TARGET inline VI LoadI(const void* p) { return _mm512_loadu_si512(p); }
SATTN_QUANT_TARGET inline VI BcastI(int32_t x) { return _mm512_set1_epi32(x); }
SATTN_QUANT_TARGET inline VI SubI(VI a, VI b) { return _mm512_sub_epi32(a, b); }
SATTN_QUANT_TARGET inline V ToFloat(VI a) { return _mm512_cvtepi32_ps(a); }
SATTN_QUANT_TARGET inline VI DotQ(VI acc, VI qb, VI k) { return _mm512_dpbusd_epi32(acc, qb, k); }
SATTN_QUANT_TARGET inline void StorePBf16(uint16_t* dst, V p) {
  const __m256bh h = _mm512_cvtneps_pbh(p);  // round to nearest even
  std::memcpy(dst, &h, sizeof h);
}
SATTN_QUANT_TARGET inline V DotPair(V acc, uint32_t pw, const uint16_t* v) {
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32(int(pw)), (__m512bh)_mm512_loadu_si512(v));
}

#include "cc/cpu/kernel_int8.inc"

#undef SATTN_QUANT_TARGET
#undef SATTN_BF16_PAIRS
#undef SATTN_NVMAX
#undef SATTN_RMAX
}  // namespace
}  // namespace avx512
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace sattn {
namespace cpu {
namespace internal {
const Isa* IsaAvx512() { return &avx512::kIsa; }
const QuantIsa* QuantIsaAvx512() { return &avx512::kQuantIsa; }
bool CpuHasAvx512Vnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("fma");
}
bool CpuHasAvx512() {
  __builtin_cpu_init();  // harmless if done; needed if called from another static initialiser
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#else  // not x86-64

namespace sattn {
namespace cpu {
namespace internal {
const Isa* IsaAvx512() { return nullptr; }
const QuantIsa* QuantIsaAvx512() { return nullptr; }
bool CpuHasAvx512Vnni() { return false; }
bool CpuHasAvx512() { return false; }
}  // namespace internal
}  // namespace cpu
}  // namespace sattn

#endif
