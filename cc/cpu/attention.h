// Fast CPU backend: fused online-softmax attention over a BlockPlan.
//
// Never materialises an Lq x Lk matrix; tiles over the plan's kept blocks; vectorised for the
// host (AVX-512 / AVX2 chosen at run time, portable fallback); multithreaded over
// (B, Hq, query block) rows with balanced work; GQA reads kv head h / (Hq/Hkv) without copies.
#ifndef SATTN_CPU_ATTENTION_H_
#define SATTN_CPU_ATTENTION_H_

#include <cstdint>

#include "sattn/plan.h"
#include "sattn/spec.h"

namespace sattn {
namespace cpu {

enum class DType : int32_t { kF32 = 0, kBF16 = 1 };  // bf16: uint16 storage, fp32 accumulation

// How scores become weights (docs/contract.md, "Normalizers"): softmax over the visible keys;
// sigmoid(s - log Lk); relu(s)^2 / Lk. The last two have no lse: Attention() writes lse = 0 for
// rows that see a key (-inf for rows that see none) as a row marker, and AttentionBackward reads
// it the same way.
enum class Normalizer : int32_t { kSoftmax = 0, kSigmoid = 1, kRelu2 = 2 };

struct AttentionArgs {
  Shape shape;          // q (B,Hq,Lq,D); k, v (B,Hkv,Lk,D); out (B,Hq,Lq,D); all contiguous
  double scale = 0.0;   // resolved softmax scale (> 0)
  DType dtype = DType::kF32;  // dtype of q, k, v and out
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;       // optional (B,Hq,Lq) natural-log LSE; -inf for rows with no key
  int32_t num_threads = 0;    // 0: hardware concurrency
  Normalizer normalizer = Normalizer::kSoftmax;
};

// Computes out = softmax(scale * q k^T restricted to the plan's visible pairs) v.
// Rows with no visible key get zeros and lse = -inf. The plan must match args.shape
// (B, Hq, Lq, Lk); mismatches are kInvalidArgument naming the field.
Status Attention(const AttentionArgs& args, const BlockPlan& plan);

struct BackwardArgs {
  Shape shape;          // as AttentionArgs; every array contiguous fp32
  double scale = 0.0;   // the forward's resolved scale
  const float* q = nullptr;     // (B,Hq,Lq,D)
  const float* k = nullptr;     // (B,Hkv,Lk,D)
  const float* v = nullptr;
  const float* out = nullptr;   // the forward's output (B,Hq,Lq,D)
  const float* lse = nullptr;   // the forward's natural-log LSE (B,Hq,Lq)
  const float* dout = nullptr;  // (B,Hq,Lq,D)
  const float* dlse = nullptr;  // optional (B,Hq,Lq): gradient reaching lse
  float* dq = nullptr;          // (B,Hq,Lq,D)
  float* dk = nullptr;          // (B,Hkv,Lk,D), summed over each query group
  float* dv = nullptr;
  int32_t num_threads = 0;      // 0: hardware concurrency (capped at kMaxThreads)
  Normalizer normalizer = Normalizer::kSoftmax;  // the forward's; dlse is ignored unless softmax
};

// Gradients of Attention() over the same plan (docs/contract.md, "Gradients"): with
// P = exp(scale q.k - lse) on the visible pairs and delta = rowsum(dout * out) - dlse,
// dv = P^T dout, dS = P (dout v^T - delta), dq = scale dS k, dk = scale dS^T q.
// Deterministic for any thread count: dq by (b, h, query block), dk/dv by (b, kv head, key block)
// over the transposed plan, no atomics; no Lq x Lk buffer (staging is O(B*(Hq*Lq + Hkv*Lk)*D)).
// Inputs must be finite; a row whose lse is not finite (-inf: no visible key; +inf: the caller's
// way to drop a row) contributes nothing. Errors as Attention().
Status AttentionBackward(const BackwardArgs& args, const BlockPlan& plan);

// Quantized attention (docs/contract.md, "Quantization"; sattn.quant is its float64 model):
// int8 Q K^T with exact int32 dot products, softmax in fp32, P V in fp32 or bf16.
enum class QuantGranularity : int32_t { kBlock = 0, kToken = 1, kChannel = 2 };
enum class PvFormat : int32_t { kF32 = 0, kBF16 = 1 };

struct QuantArgs {
  Shape shape;                // as AttentionArgs; q, k, v fp32, out fp32
  double scale = 0.0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;       // optional; the lse of the unsmoothed scores
  int32_t num_threads = 0;
  QuantGranularity granularity = QuantGranularity::kBlock;
  int32_t block = 64;         // tokens per scale group under kBlock
  bool smooth_k = true;       // subtract K's mean over tokens before quantizing it
  PvFormat pv = PvFormat::kBF16;
  int32_t v_qmax = 0;         // V stored as integer codes in [-v_qmax, v_qmax] (127: int8, 7: int4); 0: not
  // Static clips (scale = clip / qmax; values beyond saturate), or null for per-call amax:
  // clip_q (Hq); clip_k and clip_v (Hkv), (Hkv, D) under kChannel. clip_v only with v_qmax.
  const double* clip_q = nullptr;
  const double* clip_k = nullptr;
  const double* clip_v = nullptr;
  // The kernel set: null for the best this CPU runs, else "avx512_vnni", "avx2" or "portable"
  // (tests run each; one this CPU cannot run is Invalid naming isa).
  const char* isa = nullptr;
};

// Errors as Attention(), plus Invalid naming q, k or v when it holds NaN or Inf (a scale over
// them is meaningless) and naming the quantization field that is out of range.
Status AttentionQuant(const QuantArgs& args, const BlockPlan& plan);

// The quantized kernel's ISA on this CPU: "avx512_vnni", "avx2" or "portable".
const char* QuantIsaName();

}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CPU_ATTENTION_H_
