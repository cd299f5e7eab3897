// sattn spec contract in C++: the five attention specs of docs/contract.md.
//
// The spec fields, their defaults and ranges come from spec/schema.json (tools/spec_schema.py
// generates sattn/spec_fields.h and the checks of ValidateSpec); docs/contract.md says what each
// field means. Portable C++17, no host assumptions: the CPU, RVV and RoCC targets all compile it.
#ifndef SATTN_SPEC_H_
#define SATTN_SPEC_H_

#include <cstdint>
#include <string>

#include "sattn/spec_fields.h"

namespace sattn {

// SpecKind, BlockScore, struct Spec (every field with the contract's default) and the field list
// SATTN_SPEC_FIELDS, generated from spec/schema.json (the one place a field is declared).

// Problem shape: q is (B, Hq, Lq, D); k and v are (B, Hkv, Lk, D), all row-major contiguous.
// Query row i sits at absolute position i + Lk - Lq.
struct Shape {
  int32_t B = 1, Hq = 1, Hkv = 1, Lq = 1, Lk = 1, D = 1;
};

// Error status: code 0 is success; `message` names the offending argument and what was expected.
enum class ErrorCode : int32_t {
  kOk = 0,
  kInvalidArgument = 1,  // bad spec field or shape
  kInternal = 2,
};

struct Status {
  ErrorCode code = ErrorCode::kOk;
  std::string message;
  bool ok() const { return code == ErrorCode::kOk; }
  static Status Ok() { return {}; }
  static Status Invalid(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
};

// Size limits (docs/contract.md, "Limits"), the one place they are defined. Checked before any
// allocation or planning work, so an oversized call fails at once naming the dimension.
// Every tensor (q, k, v, out; lse is smaller) has at most this many elements, so an element index
// fits int32 in every kernel and a byte offset (x4) fits int64 everywhere.
constexpr int64_t kMaxTensorElements = 2147483647;  // 2^31 - 1
// The planner's worst case, plan rows x key blocks, is at most this: row_ptr and col_idx are int32.
// Bitmap word offsets (mask index x block x words_per_row) are int64: < 2^31 * 4096 * 64.
constexpr int64_t kMaxPlanEntries = 2147483647;  // 2^31 - 1
// Worker threads one call may ask for (0 means the hardware's count, capped at this).
constexpr int32_t kMaxThreads = 1024;

// Validates spec fields (the ranges of spec/schema.json) and shape (Hq % Hkv == 0, 1 <= Lq <= Lk, D >= 1, element counts <= kMaxTensorElements, ...). Returns the
// first problem found.
Status ValidateSpec(const Spec& spec);
Status ValidateShape(const Shape& shape);

// The plan a shape needs with tile edge `block` stays within kMaxPlanEntries; `per_head`: one plan
// row set per (batch, query head) (the data-dependent specs) instead of one broadcast set.
Status ValidatePlanSize(const Shape& shape, int32_t block, bool per_head);

// A thread count argument named `name`: 0 (all cores) .. kMaxThreads.
Status ValidateThreads(int64_t threads, const std::string& name);

// True iff key position j is visible from query position p under the closed-form token rules
// (causal, and for SlidingWindow the window/dilation/global rule). Block-level selection
// (BlockTopK, BigBird, TopKPerQuery) is the planner's job, not this function's.
bool TokenRuleVisible(const Spec& spec, int64_t p, int64_t j);

// BigBird's counter-based generator (docs/contract.md, "BigBird random blocks"): a 64-bit
// splitmix64 finalizer over (seed, query block, draw index). RVV and RTL reproduce it bit for bit.
uint64_t BigBirdMix(uint64_t seed, uint64_t row, uint64_t draw);

}  // namespace sattn

#endif  // SATTN_SPEC_H_
