// The contract's non-finite input policy (docs/contract.md, "Non-finite inputs"), shared by every
// host backend: the CPU kernels, the RVV runner and (through sattn._cc) the RoCC backend.
//
// One pass over q, k, v finds the rows holding a NaN or +/-Inf and the largest finite norms. When
// nothing is non-finite (the common case) that is all. Otherwise the kernel runs on copies in
// which every non-finite element is 0, with the plan built from the original values, and
// PoisonRows then sets out = NaN, lse = NaN on every row whose q, or a visible key's k or v, was
// non-finite and whose visible set is not empty.
#ifndef SATTN_SRC_NONFINITE_H_
#define SATTN_SRC_NONFINITE_H_

#include <cstdint>
#include <vector>

#include "sattn/plan.h"
#include "sattn/spec.h"

namespace sattn {

// Element storage of q, k, v and out: float32, or bfloat16 as its uint16 bit pattern.
enum class ElemType : int32_t { kF32 = 0, kBF16 = 1 };

struct NonFiniteScan {
  int64_t bad_q_rows = 0;         // q rows (B*Hq*Lq) holding a NaN or +/-Inf
  int64_t bad_kv_rows = 0;        // key positions (B*Hkv*Lk) whose k or v row does
  std::vector<uint8_t> bad_q;     // per q row: 1 if non-finite (filled only when any() is true)
  std::vector<uint8_t> bad_kv;    // per (b, kv head, key): 1 if k or v is non-finite (same)
  double max_q_norm = 0.0;        // largest ||q_i||_2 over finite q rows
  double max_k_norm = 0.0;        // largest ||k_j||_2 over finite key rows
  double max_v_norm = 0.0;        // largest ||v_j||_2 over finite key rows
  bool any() const { return bad_q_rows + bad_kv_rows > 0; }
};

// Scans q (B,Hq,Lq,D), k and v (B,Hkv,Lk,D). threads: 0 = hardware concurrency.
Status ScanNonFinite(const Shape& shape, ElemType type, const void* q, const void* k, const void* v,
                     int threads, NonFiniteScan* scan);

// kInvalidArgument naming `scale` when float32 scores could overflow: the bound is
// max(scale, 1) * max ||q_i|| * max(max ||k_j||, 1) > FLT_MAX / 2 over the finite rows, which
// covers q.k formed before scaling (RVV), scale*q formed before the dot (CPU) and the score; and
// naming `v` when Lk * max ||v_j|| > FLT_MAX / 2 (the unnormalised output sum could overflow).
Status CheckFloat32Range(const Shape& shape, double scale, const NonFiniteScan& scan);

// Copy of n elements of src with every NaN/Inf replaced by +0.
void SanitizeCopy(ElemType type, const void* src, int64_t n, void* dst);

// Marks the rows the policy poisons: out[i] = NaN (all D elements) and lse[i] = NaN (lse may be
// null) for every q row i whose visible set under `plan` is non-empty and that is non-finite or
// sees a non-finite key. Returns the number of poisoned rows.
int64_t PoisonRows(const BlockPlan& plan, const Shape& shape, const NonFiniteScan& scan,
                   ElemType out_type, void* out, float* lse);

// The whole policy around a kernel: scan, range check, and when needed sanitised copies and the
// poison pass. `kernel(q, k, v)` runs the attention on the given inputs (the originals when all
// are finite) writing out / lse; its Status is returned unless it fails.
template <typename Kernel>
Status WithNonFinitePolicy(const Shape& shape, ElemType type, const void* q, const void* k,
                           const void* v, double scale, int threads, const BlockPlan& plan,
                           void* out, float* lse, Kernel kernel);

// ---- implementation of the template ----
namespace internal {
struct SanitizedInputs {
  std::vector<uint16_t> q16, k16, v16;
  std::vector<float> q32, k32, v32;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
};
void MakeSanitized(const Shape& shape, ElemType type, const void* q, const void* k, const void* v,
                   SanitizedInputs* s);
}  // namespace internal

template <typename Kernel>
Status WithNonFinitePolicy(const Shape& shape, ElemType type, const void* q, const void* k,
                           const void* v, double scale, int threads, const BlockPlan& plan,
                           void* out, float* lse, Kernel kernel) {
  NonFiniteScan scan;
  Status st = ScanNonFinite(shape, type, q, k, v, threads, &scan);
  if (!st.ok()) return st;
  st = CheckFloat32Range(shape, scale, scan);
  if (!st.ok()) return st;
  if (!scan.any()) return kernel(q, k, v);
  internal::SanitizedInputs s;
  internal::MakeSanitized(shape, type, q, k, v, &s);
  st = kernel(s.q, s.k, s.v);
  if (!st.ok()) return st;
  PoisonRows(plan, shape, scan, type, out, lse);
  return Status::Ok();
}

}  // namespace sattn

#endif  // SATTN_SRC_NONFINITE_H_
