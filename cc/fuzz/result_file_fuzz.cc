// libFuzzer harness for the result-file reader (sattn::ParseResult, docs/bsr.md).
// Invariants: never crashes or over-allocates; an accepted file serialises back to the same bytes
// and its arrays have the sizes its shape implies.
#include <cstdint>
#include <vector>

#include "cc/fuzz/fuzz_util.h"
#include "sattn/plan_io.h"

namespace {

void Check(const std::vector<uint8_t>& bytes) {
  sattn::Result r;
  if (!sattn::ParseResult(bytes.data(), bytes.size(), &r).ok()) return;
  const sattn::Shape& s = r.shape;
  if (r.out.size() != size_t(s.B) * s.Hq * s.Lq * s.D) sattn::fuzz::Die("result.out size");
  if (r.lse.size() != size_t(s.B) * s.Hq * s.Lq) sattn::fuzz::Die("result.lse size");
  if (sattn::SerializeResult(r) != bytes) sattn::fuzz::Die("result round trip changed the bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  Check(bytes);
  if (sattn::fuzz::RepairEnvelope(&bytes)) Check(bytes);
  return 0;
}
