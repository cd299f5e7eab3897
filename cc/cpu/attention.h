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
};

// Computes out = softmax(scale * q k^T restricted to the plan's visible pairs) v.
// Rows with no visible key get zeros and lse = -inf. The plan must match args.shape
// (B, Hq, Lq, Lk); mismatches are kInvalidArgument naming the field.
Status Attention(const AttentionArgs& args, const BlockPlan& plan);

}  // namespace cpu
}  // namespace sattn

#endif  // SATTN_CPU_ATTENTION_H_
