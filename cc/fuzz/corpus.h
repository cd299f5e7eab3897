// The seed problems of the cc/fuzz corpora: small, valid, one per planner feature (every spec
// kind, causal and not, Lq < Lk, GQA, a block wider than 64 keys so bitmap rows take two words).
#ifndef SATTN_CC_FUZZ_CORPUS_H_
#define SATTN_CC_FUZZ_CORPUS_H_

#include <cstdint>
#include <vector>

#include "sattn/plan_io.h"

namespace sattn {
namespace fuzz {

// Base problems with their plans built by BuildPlan; deterministic.
std::vector<Problem> SeedProblems();

// A result file's content for seed problem i (arrays of the right sizes, two counters).
Result SeedResult(const Problem& problem);

// The plan section of a problem file's payload (docs/bsr.md): what plan_file_fuzz mutates.
std::vector<uint8_t> PlanSection(const Problem& problem);

// The problem file made of seed problem `base`'s spec, shape, scale and inputs, followed by
// `plan_section` as its plan (not validated: the reader is what is under test).
std::vector<uint8_t> ProblemFileWithPlan(const Problem& base, const uint8_t* plan_section, size_t size);

}  // namespace fuzz
}  // namespace sattn

#endif  // SATTN_CC_FUZZ_CORPUS_H_
