// Portable build of kernel.inc with GCC/Clang vector extensions (4 lanes): SSE2 on any x86-64,
// scalar or auto-vectorised code elsewhere (riscv64). 16-key chunks, 3 rows x 4 vectors.
#include <cstdint>
#include <cstring>

#include "cc/cpu/kernels.h"

// Without a vector unit (riscv64 rv64gc) Clang lowers the 4-lane vectors to scalars before it
// gets to the register-tile loops and then reports that it could not fully unroll them; the
// code is correct either way (this path is the portable fallback, not the fast one).
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

namespace sattn {
namespace cpu {
namespace internal {
namespace portable {
namespace {

typedef float V __attribute__((vector_size(16)));
typedef uint32_t VU __attribute__((vector_size(16)));
constexpr int L = 4;
#define SATTN_NVMAX 4
#define SATTN_RMAX 3
constexpr int NVMAX = SATTN_NVMAX;
constexpr int RMAX = SATTN_RMAX;
constexpr const char* kIsaName = "portable";

inline V Zero() { return V{0.0f, 0.0f, 0.0f, 0.0f}; }
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
inline V Bcast(float x) { return V{x, x, x, x}; }
inline V Add(V a, V b) { return a + b; }
inline V Sub(V a, V b) { return a - b; }
inline V Mul(V a, V b) { return a * b; }
inline V Div(V a, V b) { return a / b; }
inline V Fma(V a, V b, V c) { return a * b + c; }
inline V Select(VU m, V a, V b) { return (V)(((VU)a & m) | ((VU)b & ~m)); }  // m ? a : b
inline V Max(V a, V b) { return Select((VU)(a > b), a, b); }                  // NaN in a -> b
inline float HMax(V v) {
  float m = v[0];
  for (int i = 1; i < L; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
inline float HSum(V v) { return (v[0] + v[1]) + (v[2] + v[3]); }
inline V KeepBits(V s, uint32_t bits) {
  const VU lane = {1u, 2u, 4u, 8u};
  const VU b = VU{bits, bits, bits, bits} & lane;
  return Select((VU)(b != VU{0u, 0u, 0u, 0u}), s, Bcast(-__builtin_inff()));
}
inline V Pow2Bits(V t) {
  const uint32_t k = 127u << 23;
  return (V)((((VU)t) << 23) + VU{k, k, k, k});
}

#include "cc/cpu/kernel.inc"

// The quantized kernel (kernel_int8.inc) on 4 int32 lanes; the byte products in plain C++.
#define SATTN_QUANT_TARGET
#define SATTN_BF16_PAIRS 0
typedef int32_t VI __attribute__((vector_size(16)));
constexpr int32_t kQOffset = 0;
constexpr const char* kQuantIsaName = "portable";
inline VI IZero() { return VI{0, 0, 0, 0}; }
inline VI LoadI(const void* p) {
  VI v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline VI BcastI(int32_t x) { return VI{x, x, x, x}; }
inline VI SubI(VI a, VI b) { return a - b; }
inline V ToFloat(VI a) { return __builtin_convertvector(a, V); }
inline VI DotQ(VI acc, VI qb, VI k) {
  int8_t a[16], b[16];
  std::memcpy(a, &qb, 16);
  std::memcpy(b, &k, 16);
  for (int i = 0; i < 4; ++i)
    for (int t = 0; t < 4; ++t) acc[i] += int32_t(a[4 * i + t]) * int32_t(b[4 * i + t]);
  return acc;
}
inline V RoundBf16(V p) {
  const VU u = (VU)p;
  const VU r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  return (V)r;
}

#include "cc/cpu/kernel_int8.inc"

#undef SATTN_QUANT_TARGET
#undef SATTN_BF16_PAIRS
#undef SATTN_NVMAX
#undef SATTN_RMAX
}  // namespace
}  // namespace portable

const Isa* IsaPortable() { return &portable::kIsa; }
const QuantIsa* QuantIsaPortable() { return &portable::kQuantIsa; }

}  // namespace internal
}  // namespace cpu
}  // namespace sattn
