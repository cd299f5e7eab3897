// int8 Q K^T: the integer score tile of the CPU backend's quantized path (docs/contract.md,
// "Quantization"). Codes are symmetric int8 in [-127, 127] (what sattn.quant produces), the dot
// products exact int32. AVX2 (vpsignb + vpmaddubsw + vpmaddwd) is chosen at run time when the
// CPU has it, else portable C++ (SATTN_CPU_ISA=portable forces it, as for the fp32 kernels).
#ifndef SATTN_CPU_QK_INT8_H_
#define SATTN_CPU_QK_INT8_H_

#include <cstdint>

namespace sattn {
namespace cpu {
namespace qk_int8 {

constexpr int kKeyGroup = 16;  // keys per packed group (two 8-key ymm vectors of int32 scores)

// Bytes of PackKeys' output for n keys of D channels: ceil(n/16) groups of ceil(D/4)*64.
int64_t PackedSize(int32_t n, int32_t D);

// Packs n key rows (D int8 codes each, row stride ld) into the kernel's layout: per group of 16
// keys and per 4 channels d..d+3, 16 keys x 4 bytes (key-major); missing keys and channels are 0.
void PackKeys(const int8_t* k, int64_t ld, int32_t n, int32_t D, int8_t* packed);

// s[r*s_ld + j] = sum_d q[r*q_ld + d] * k[j][d] for r < rows, j < n (k as packed by PackKeys).
// Every code must lie in [-127, 127].
void ScoresInt8(const int8_t* q, int64_t q_ld, int32_t rows, const int8_t* packed, int32_t n, int32_t D,
                int32_t* s, int64_t s_ld);

// The same with the portable code path (the tests compare both).
void ScoresInt8Portable(const int8_t* q, int64_t q_ld, int32_t rows, const int8_t* packed, int32_t n,
                        int32_t D, int32_t* s, int64_t s_ld);

// "avx2" or "portable": the path ScoresInt8 takes on this CPU.
const char* ScoresInt8Isa();

// Symmetric int8 codes of one scale group, exactly as sattn.quant: scale = amax / 127 (1 when
// amax is 0), code = rint(x / scale) (ties to even) clamped to [-127, 127], in double precision.
// Returns the scale.
double QuantizeGroup(const float* x, int64_t n, int8_t* codes);

}  // namespace qk_int8
}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CPU_QK_INT8_H_
