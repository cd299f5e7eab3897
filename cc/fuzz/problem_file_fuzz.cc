// libFuzzer harness for the problem-file reader (sattn::ParseProblem, docs/bsr.md).
// Invariants: never crashes; an accepted file serialises back to the same bytes; the problem it
// describes executes on the CPU kernel without out-of-bounds access.
#include <cstdint>
#include <vector>

#include "cc/fuzz/fuzz_util.h"
#include "sattn/plan_io.h"

namespace {

void Check(const std::vector<uint8_t>& bytes) {
  sattn::Problem p;
  if (!sattn::ParseProblem(bytes.data(), bytes.size(), &p).ok()) return;
  if (sattn::SerializeProblem(p) != bytes) sattn::fuzz::Die("problem round trip changed the bytes");
  sattn::fuzz::Execute(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The raw bytes (envelope checks included), then with size and checksum repaired so mutations
  // of the payload reach the field parsers instead of stopping at the checksum.
  std::vector<uint8_t> bytes(data, data + size);
  Check(bytes);
  if (sattn::fuzz::RepairEnvelope(&bytes)) Check(bytes);
  return 0;
}
