// Validation and token rules of the spec contract (docs/contract.md).
#include "sattn/spec.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace sattn {
namespace {

Status Bad(const std::string& field, const std::string& expected, const std::string& got) {
  return Status::Invalid(field + ": expected " + expected + ", got " + got);
}

}  // namespace

Status ValidateSpec(const Spec& s) {
  switch (s.kind) {
#include "spec_validate.inc"  // generated from spec/schema.json: one range check per field
  }
  return Bad("kind", "one of Dense, SlidingWindow, BlockTopK, BigBird, TopKPerQuery",
             std::to_string(int(s.kind)));
}

Status ValidateShape(const Shape& sh) {
  if (sh.B < 1) return Bad("B", "batch >= 1", std::to_string(sh.B));
  if (sh.Hq < 1) return Bad("Hq", "query heads >= 1", std::to_string(sh.Hq));
  if (sh.Hkv < 1) return Bad("Hkv", "kv heads >= 1", std::to_string(sh.Hkv));
  if (sh.Hq % sh.Hkv != 0)
    return Bad("Hq", "a multiple of Hkv=" + std::to_string(sh.Hkv), std::to_string(sh.Hq));
  if (sh.Lk < 1) return Bad("Lk", "key length >= 1", std::to_string(sh.Lk));
  if (sh.Lq < 1 || sh.Lq > sh.Lk)
    return Bad("Lq", "1 <= Lq <= Lk=" + std::to_string(sh.Lk), std::to_string(sh.Lq));
  if (sh.D < 1) return Bad("D", "head_dim >= 1", std::to_string(sh.D));
  // Each factor is < 2^31, so a product of two is exact in int64; a product of more is checked
  // step by step against the limit before it can overflow.
  const int64_t limit = kMaxTensorElements;
  const int64_t q_heads = int64_t(sh.B) * sh.Hq, kv_heads = int64_t(sh.B) * sh.Hkv;
  if (q_heads > limit / sh.Lq || q_heads * sh.Lq > limit / sh.D)
    return Bad("Lq", "B*Hq*Lq*D <= " + std::to_string(limit) + " elements (the q and out limit)",
               "B=" + std::to_string(sh.B) + ", Hq=" + std::to_string(sh.Hq) + ", Lq=" +
                   std::to_string(sh.Lq) + ", D=" + std::to_string(sh.D));
  if (kv_heads > limit / sh.Lk || kv_heads * sh.Lk > limit / sh.D)
    return Bad("Lk", "B*Hkv*Lk*D <= " + std::to_string(limit) + " elements (the k and v limit)",
               "B=" + std::to_string(sh.B) + ", Hkv=" + std::to_string(sh.Hkv) + ", Lk=" +
                   std::to_string(sh.Lk) + ", D=" + std::to_string(sh.D));
  return Status::Ok();
}

Status ValidatePlanSize(const Shape& sh, int32_t block, bool per_head) {
  if (block < 1) return Bad("block", "an integer >= 1", std::to_string(block));
  const int64_t n_k_blocks = (int64_t(sh.Lk) + block - 1) / block;
  const int64_t n_q_blocks = n_k_blocks - (int64_t(sh.Lk) - sh.Lq) / block;
  const int64_t heads = per_head ? int64_t(sh.B) * sh.Hq : 1;  // < 2^62
  const int64_t limit = kMaxPlanEntries;
  if (n_q_blocks > limit / n_k_blocks || heads > limit / (n_q_blocks * n_k_blocks))
    return Bad("Lk",
               "plan rows x key blocks <= " + std::to_string(limit) + " (" +
                   (per_head ? "B*Hq*" : std::string()) + "ceil(Lq/block) x ceil(Lk/block) with block " +
                   std::to_string(block) + "; use a larger block or tile)",
               "Lq=" + std::to_string(sh.Lq) + ", Lk=" + std::to_string(sh.Lk) +
                   (per_head ? ", B*Hq=" + std::to_string(heads) : std::string()));
  return Status::Ok();
}

Status ValidateThreads(int64_t threads, const std::string& name) {
  if (threads < 0 || threads > kMaxThreads)
    return Bad(name, "0 (all cores) .. " + std::to_string(kMaxThreads), std::to_string(threads));
  return Status::Ok();
}

bool TokenRuleVisible(const Spec& s, int64_t p, int64_t j) {
  if (s.causal && j > p) return false;
  if (s.kind != SpecKind::kSlidingWindow) return true;
  if (j < s.global_tokens || p < s.global_tokens) return true;
  const int64_t d = p - j;
  const int64_t span = int64_t(s.window) * s.dilation;
  return std::llabs(d) < span && d % s.dilation == 0;
}

uint64_t BigBirdMix(uint64_t seed, uint64_t row, uint64_t draw) {
  // splitmix64 finalizer of a counter made from (seed, row, draw): no state, so any target can
  // draw row a's numbers independently and in any order.
  uint64_t z = seed ^ (row << 32) ^ draw;
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace sattn
