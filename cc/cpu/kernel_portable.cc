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

#undef SATTN_NVMAX
#undef SATTN_RMAX
}  // namespace
}  // namespace portable

const Isa* IsaPortable() { return &portable::kIsa; }

}  // namespace internal
}  // namespace cpu
}  // namespace sattn
