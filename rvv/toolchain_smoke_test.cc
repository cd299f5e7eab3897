// Checks the riscv64 toolchain end to end: RVV intrinsics compile, the shared C++17 planner links
// and runs on target, and QEMU's VLEN (from rvv_qemu_test) is the one the vector unit reports.
#include <riscv_vector.h>

#include <cstdio>
#include <cstdlib>

#include "sattn/plan.h"

int main() {
  const char* want = std::getenv("SATTN_RVV_VLEN");
  const long vlen_bits = long(__riscv_vsetvlmax_e8m1()) * 8;
  if (want == nullptr || std::atol(want) != vlen_bits) {
    std::fprintf(stderr, "VLEN mismatch: env %s, hardware %ld\n", want ? want : "(unset)", vlen_bits);
    return 1;
  }
  sattn::Spec spec;
  spec.kind = sattn::SpecKind::kDense;
  spec.causal = true;
  sattn::Shape shape;
  shape.Lq = shape.Lk = 130;
  shape.D = 8;
  sattn::BlockPlan plan;
  sattn::PlanOptions opt;
  opt.num_threads = 1;
  sattn::Status st = sattn::BuildPlan(spec, shape, nullptr, nullptr, opt, &plan);
  if (!st.ok()) {
    std::fprintf(stderr, "BuildPlan: %s\n", st.message.c_str());
    return 1;
  }
  // Causal 130x130: 130*131/2 visible pairs.
  if (plan.VisiblePairs() != 130 * 131 / 2) {
    std::fprintf(stderr, "VisiblePairs %lld\n", (long long)plan.VisiblePairs());
    return 1;
  }
  std::printf("ok: VLEN=%ld, %lld plan entries\n", vlen_bits, (long long)plan.nnz());
  return 0;
}
