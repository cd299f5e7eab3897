// Shared helpers of the cc/fuzz harnesses.
#ifndef SATTN_CC_FUZZ_FUZZ_UTIL_H_
#define SATTN_CC_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cc/cpu/attention.h"
#include "sattn/plan_io.h"

namespace sattn {
namespace fuzz {

// The envelope of docs/bsr.md: magic(8) version(4) reserved(4) payload_size(8) payload checksum(8).
constexpr size_t kHeaderBytes = 24;
constexpr size_t kTrailerBytes = 8;

inline uint64_t Fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// Rewrites payload size and checksum so that a mutated file gets past the envelope checks and the
// fuzzer's mutations reach the field parsers. Returns false if too short to hold an envelope.
inline bool RepairEnvelope(std::vector<uint8_t>* b) {
  if (b->size() < kHeaderBytes + kTrailerBytes) return false;
  const uint64_t n = b->size() - kHeaderBytes - kTrailerBytes;
  std::memcpy(b->data() + 16, &n, 8);
  const uint64_t sum = Fnv1a64(b->data() + kHeaderBytes, n);
  std::memcpy(b->data() + kHeaderBytes + n, &sum, 8);
  return true;
}

// Wraps a payload into a valid envelope with the given magic.
inline std::vector<uint8_t> Envelope(const char (&magic)[9], const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b(kHeaderBytes + payload.size() + kTrailerBytes, 0);
  std::memcpy(b.data(), magic, 8);
  const uint32_t version = 1;
  std::memcpy(b.data() + 8, &version, 4);
  if (!payload.empty()) std::memcpy(b.data() + kHeaderBytes, payload.data(), payload.size());
  RepairEnvelope(&b);
  return b;
}

[[noreturn]] inline void Die(const char* what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

inline bool IsStructuralError(const std::string& message) {
  for (const char* field : {"plan", "B:", "Hq:", "Hkv:", "Lq:", "Lk:", "D:", "num_threads", "dtype"})
    if (message.rfind(field, 0) == 0) return true;
  return false;
}

// A parsed problem is safe to execute: runs the CPU kernel on it (one thread), which reads q, k, v
// and the bitmaps exactly where the plan points. Validation is what makes that memory-safe.
inline void Execute(const Problem& p) {
  const Shape& s = p.shape;
  std::vector<float> out(size_t(s.B) * s.Hq * s.Lq * s.D), lse(size_t(s.B) * s.Hq * s.Lq);
  cpu::AttentionArgs a;
  a.shape = s;
  a.scale = p.scale;
  a.q = p.q.data();
  a.k = p.k.data();
  a.v = p.v.data();
  a.out = out.data();
  a.lse = lse.data();
  a.num_threads = 1;
  const Status st = cpu::Attention(a, p.plan);
  // The kernel may refuse the values (scores or sums that would overflow float32: errors naming
  // scale, q, k or v); it must never find the plan or shape inconsistent once the reader accepted
  // them.
  if (!st.ok() && IsStructuralError(st.message)) {
    std::fprintf(stderr, "kernel rejected a problem the reader accepted: %s\n", st.message.c_str());
    Die("ParseProblem accepted a problem that the CPU kernel rejects");
  }
}

}  // namespace fuzz
}  // namespace sattn

#endif  // SATTN_CC_FUZZ_FUZZ_UTIL_H_
