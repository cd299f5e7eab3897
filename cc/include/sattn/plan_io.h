// Problem and result files: how a plan and its inputs travel to out-of-process backends
// (the RVV runner under QEMU, the RoCC simulator, MLIR-built binaries). Byte layout: docs/bsr.md.
//
// Readers validate everything (magic, version, sizes against the shape, plan consistency,
// checksum): a truncated or corrupted file is a Status error, never a crash.
#ifndef SATTN_PLAN_IO_H_
#define SATTN_PLAN_IO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sattn/plan.h"
#include "sattn/spec.h"

namespace sattn {

// A full attention problem: spec, shape, scale, float32 inputs and the plan to execute.
struct Problem {
  Spec spec;
  Shape shape;
  double scale = 0.0;          // the scale to use (already resolved, never <= 0)
  std::vector<float> q, k, v;  // (B,Hq,Lq,D), (B,Hkv,Lk,D), (B,Hkv,Lk,D)
  BlockPlan plan;
};

// What a backend computed: out (B,Hq,Lq,D) float32, lse (B,Hq,Lq) float32 (-inf for empty rows),
// and named integer counters (instructions, cycles, bytes, ...).
struct Result {
  Shape shape;
  std::vector<float> out, lse;
  std::vector<std::pair<std::string, int64_t>> counters;
};

Status WriteProblem(const std::string& path, const Problem& problem);
Status ReadProblem(const std::string& path, Problem* problem);
Status WriteResult(const std::string& path, const Result& result);
Status ReadResult(const std::string& path, Result* result);

// In-memory forms of the same bytes (used by Python bindings and tests).
std::vector<uint8_t> SerializeProblem(const Problem& problem);
Status ParseProblem(const uint8_t* data, size_t size, Problem* problem);
std::vector<uint8_t> SerializeResult(const Result& result);
Status ParseResult(const uint8_t* data, size_t size, Result* result);

}  // namespace sattn

#endif  // SATTN_PLAN_IO_H_
