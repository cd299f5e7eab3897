#include "cc/fuzz/corpus.h"

#include <cmath>

#include "cc/fuzz/fuzz_util.h"
#include "sattn/plan.h"

namespace sattn {
namespace fuzz {
namespace {

Problem Make(Spec spec, Shape shape, int32_t tile, uint32_t seed) {
  Problem p;
  p.spec = spec;
  p.shape = shape;
  p.scale = 1.0 / std::sqrt(double(shape.D));
  const size_t nq = size_t(shape.B) * shape.Hq * shape.Lq * shape.D;
  const size_t nk = size_t(shape.B) * shape.Hkv * shape.Lk * shape.D;
  uint32_t s = seed;
  auto next = [&s] {
    s = s * 1103515245u + 12345u;
    return float((s >> 8) & 0xffff) / 32768.0f - 1.0f;
  };
  for (size_t i = 0; i < nq; ++i) p.q.push_back(next());
  for (size_t i = 0; i < nk; ++i) p.k.push_back(next());
  for (size_t i = 0; i < nk; ++i) p.v.push_back(next());
  PlanOptions opt;
  opt.tile = tile;
  opt.scale = p.scale;
  opt.num_threads = 1;
  const Status st = BuildPlan(p.spec, p.shape, p.q.data(), p.k.data(), opt, &p.plan);
  if (!st.ok()) Die(st.message.c_str());
  return p;
}

// Payload bytes of a problem file that precede the plan section: everything but the 11 plan
// header int32s and the 4 counted arrays.
size_t PrefixBytes(const Problem& p) {
  Problem empty = p;
  empty.plan = BlockPlan{};
  return SerializeProblem(empty).size() - kHeaderBytes - kTrailerBytes - (11 * 4 + 4 * 8);
}

}  // namespace

std::vector<Problem> SeedProblems() {
  std::vector<Problem> out;
  Spec dense;
  dense.causal = true;
  out.push_back(Make(dense, Shape{1, 2, 1, 40, 40, 8}, 16, 1));
  Spec sw;
  sw.kind = SpecKind::kSlidingWindow;
  sw.window = 5;
  sw.dilation = 2;
  sw.global_tokens = 1;
  out.push_back(Make(sw, Shape{1, 1, 1, 24, 40, 4}, 8, 2));
  Spec topk;
  topk.kind = SpecKind::kBlockTopK;
  topk.block = 8;
  topk.keep = 0.5;
  topk.causal = true;
  out.push_back(Make(topk, Shape{2, 2, 2, 32, 32, 4}, 64, 3));
  Spec bigbird;
  bigbird.kind = SpecKind::kBigBird;
  bigbird.block = 8;
  bigbird.seed = 7;
  out.push_back(Make(bigbird, Shape{1, 2, 2, 48, 48, 2}, 64, 4));
  Spec perq;
  perq.kind = SpecKind::kTopKPerQuery;
  perq.topk = 5;
  out.push_back(Make(perq, Shape{1, 2, 1, 33, 33, 4}, 16, 5));
  Spec wide;
  wide.kind = SpecKind::kBlockTopK;
  wide.block = 70;
  wide.keep = 0.5;
  wide.causal = true;
  out.push_back(Make(wide, Shape{1, 1, 1, 100, 150, 2}, 64, 6));
  return out;
}

Result SeedResult(const Problem& p) {
  Result r;
  r.shape = p.shape;
  r.out.assign(p.q.size(), 0.25f);
  r.lse.assign(size_t(p.shape.B) * p.shape.Hq * p.shape.Lq, -INFINITY);
  r.counters = {{"instructions", 12345}, {"cycles", -1}};
  return r;
}

std::vector<uint8_t> PlanSection(const Problem& p) {
  const std::vector<uint8_t> file = SerializeProblem(p);
  const size_t from = kHeaderBytes + PrefixBytes(p);
  return std::vector<uint8_t>(file.begin() + long(from), file.end() - long(kTrailerBytes));
}

std::vector<uint8_t> ProblemFileWithPlan(const Problem& base, const uint8_t* plan_section, size_t size) {
  const std::vector<uint8_t> file = SerializeProblem(base);
  std::vector<uint8_t> payload(file.begin() + long(kHeaderBytes),
                               file.begin() + long(kHeaderBytes + PrefixBytes(base)));
  payload.insert(payload.end(), plan_section, plan_section + size);
  return Envelope("SATTNPRB", payload);
}

}  // namespace fuzz
}  // namespace sattn
