// Size limits (spec.h, docs/contract.md "Limits") are checked before any work: shapes whose
// element counts or plan would overflow fail at once naming the dimension, and files whose
// shape products wrap around 2^64 are rejected instead of accepted with empty arrays.
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "cc/testing/check.h"
#include "sattn/plan.h"
#include "sattn/plan_io.h"
#include "sattn/spec.h"

namespace {

using sattn::Shape;
using sattn::Status;

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

void TestElementLimits() {
  // 2^16 in every dimension: B*Hq*Lq*D = 2^64, which int64 arithmetic wraps to 0.
  Shape wrap{65536, 65536, 65536, 65536, 65536, 65536};
  Status st = sattn::ValidateShape(wrap);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "Lq:") && st.message.find("2147483647") != std::string::npos);
  Shape kv_big{1, 1, 1, 1, 1 << 30, 4};  // q is tiny, k/v have 2^32 elements
  st = sattn::ValidateShape(kv_big);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "Lk:"));
  Shape at_limit{1, 1, 1, 1, 2147483647, 1};
  SATTN_CHECK(sattn::ValidateShape(at_limit).ok());
}

void TestPlanSizeFailsFast() {
  // L = 2^31 - 64 used to start planning 2^25 x 2^25 blocks and run for minutes.
  sattn::Spec dense;
  const Shape sh{1, 1, 1, 2147483584, 2147483584, 1};
  sattn::PlanOptions opt;
  sattn::BlockPlan plan;
  const auto t0 = std::chrono::steady_clock::now();
  const Status st = sattn::BuildPlan(dense, sh, nullptr, nullptr, opt, &plan);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "Lk:") && st.message.find("block 64") != std::string::npos);
  SATTN_CHECK(s < 0.5);
  SATTN_CHECK(sattn::ValidatePlanSize(Shape{1, 1, 1, 65536, 65536, 1}, 64, false).ok());
  // Per-head plans multiply by B*Hq.
  SATTN_CHECK(!sattn::ValidatePlanSize(Shape{1024, 1024, 1, 65536, 65536, 1}, 64, true).ok());
  opt.num_threads = 4096;
  const Status threads = sattn::BuildPlan(dense, Shape{1, 1, 1, 8, 8, 1}, nullptr, nullptr, opt, &plan);
  SATTN_CHECK(!threads.ok() && StartsWith(threads.message, "num_threads:"));
}

// A dense plan for `sh` with one block edge `block` (no masks), built by hand: BuildPlan rightly
// refuses the shapes these tests need.
sattn::BlockPlan DensePlan(const Shape& sh, int32_t block) {
  sattn::BlockPlan p;
  p.block = block;
  p.B = sh.B, p.Hq = sh.Hq, p.Lq = sh.Lq, p.Lk = sh.Lk;
  p.n_k_blocks = (sh.Lk + block - 1) / block;
  p.q_block_begin = (sh.Lk - sh.Lq) / block;
  p.n_q_blocks = p.n_k_blocks - p.q_block_begin;
  p.words_per_row = (block + 63) / 64;
  p.row_ptr.push_back(0);
  for (int32_t r = 0; r < p.n_q_blocks; ++r) {
    for (int32_t c = 0; c < p.n_k_blocks; ++c) p.col_idx.push_back(c), p.mask_idx.push_back(-1);
    p.row_ptr.push_back(int32_t(p.col_idx.size()));
  }
  return p;
}

void TestProblemFileWithWrappingShape() {
  // Checksum-valid, empty q/k/v: the shape's products wrap to 0 elements, so the counts "match".
  sattn::Problem pr;
  pr.shape = Shape{65536, 65536, 65536, 65536, 65536, 65536};
  pr.scale = 1.0;
  pr.plan = DensePlan(pr.shape, 4096);
  const std::vector<uint8_t> file = sattn::SerializeProblem(pr);
  sattn::Problem back;
  const Status st = sattn::ParseProblem(file.data(), file.size(), &back);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "problem.shape.Lq:"));
}

void TestResultFileWithWrappingShape() {
  // B*Hq*Lq = 2^64 (and so is B*Hq*Lq*D): out and lse both "expect" 0 elements.
  sattn::Result res;
  res.shape = Shape{1 << 22, 1 << 21, 1, 1 << 21, 1 << 21, 1};
  const std::vector<uint8_t> file = sattn::SerializeResult(res);
  sattn::Result back;
  const Status st = sattn::ParseResult(file.data(), file.size(), &back);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "result.shape.Lq:"));
}

void TestReservedFieldChecked() {
  sattn::Result res;
  res.out = {1.0f};
  res.lse = {0.0f};
  std::vector<uint8_t> file = sattn::SerializeResult(res);
  file[12] = 1;  // uint32 reserved = 0 (docs/bsr.md); not covered by the checksum
  sattn::Result back;
  const Status st = sattn::ParseResult(file.data(), file.size(), &back);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "result: reserved"));
}

void TestPlanRowPtrPastNnz() {
  // row_ptr = [0, 100, 5]: non-decreasing only from row 1 on; row 0 claims 100 entries of 5.
  sattn::BlockPlan p = DensePlan(Shape{1, 1, 1, 16, 16, 1}, 8);  // 2 rows x 2 key blocks
  p.row_ptr = {0, 100, 4};
  const Status st = sattn::ValidatePlan(p);
  SATTN_CHECK(!st.ok() && StartsWith(st.message, "plan.row_ptr:"));
}

}  // namespace

int main() {
  TestElementLimits();
  TestPlanSizeFailsFast();
  TestProblemFileWithWrappingShape();
  TestResultFileWithWrappingShape();
  TestReservedFieldChecked();
  TestPlanRowPtrPastNnz();
  return sattn_testing::Finish("limits_test");
}
