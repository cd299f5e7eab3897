// libFuzzer harness for the plan part of problem files (block header, row_ptr, col_idx, mask_idx,
// bitmaps; docs/bsr.md) and ValidatePlan behind it. Input: one byte choosing a seed problem
// (cc/fuzz/corpus.cc), then the plan section. The harness wraps them into a checksum-valid problem
// file so every mutation reaches the plan checks. Invariants: never crashes; a plan the reader
// accepts runs on the CPU kernel without out-of-bounds access.
#include <cstdint>
#include <vector>

#include "cc/fuzz/corpus.h"
#include "cc/fuzz/fuzz_util.h"
#include "sattn/plan_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<sattn::Problem>* const seeds =
      new std::vector<sattn::Problem>(sattn::fuzz::SeedProblems());
  if (size < 1) return 0;
  const sattn::Problem& base = (*seeds)[data[0] % seeds->size()];
  const std::vector<uint8_t> file = sattn::fuzz::ProblemFileWithPlan(base, data + 1, size - 1);
  sattn::Problem p;
  if (!sattn::ParseProblem(file.data(), file.size(), &p).ok()) return 0;
  sattn::fuzz::Execute(p);
  return 0;
}
