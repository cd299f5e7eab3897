// RUN: sattn-opt %s --sattn-select-spec | FileCheck %s --check-prefix=RVV
// RUN: sattn-opt %s --sattn-select-spec=profile=lowpower | FileCheck %s --check-prefix=RVV
// RUN: sattn-opt %s --sattn-select-spec=profile=rocc | FileCheck %s --check-prefix=ROCC
// RUN: %not sattn-opt %s --sattn-select-spec=profile=gpu 2>&1 | FileCheck %s --check-prefix=BAD

!long = memref<1x4x2048x64xf32>
!short = memref<1x1x64x64xf32>

// Long sequence at density 1/8: on RVV the planner's selection cost is paid back, and big
// blocks amortise the per-row work best (docs/mlir.md, measured grid). On RoCC the host-side
// selection costs more than the accelerator's dense tiles.
// RVV-LABEL: func.func @long
// RVV: sattn.attention {{.*}}{sattn.predicted_insns = {{[0-9]+}} : i64, sattn.profile = "{{rvv|lowpower}}", sattn.tile = 128 : i64, spec = #sattn.block_topk<block = 128>}
// ROCC-LABEL: func.func @long
// ROCC: sattn.attention {{.*}}sattn.profile = "rocc", sattn.tile = 64 : i64, spec = #sattn.dense<>}
func.func @long(%q: !long) {
  sattn.attention %q, %q, %q, %q {density = 0.125 : f64} : !long, !long, !long, !long
  return
}

// One block: there is nothing to skip, dense (keeping causality) wins everywhere.
// RVV-LABEL: func.func @short
// RVV: spec = #sattn.dense<causal = true>
// ROCC-LABEL: func.func @short
// ROCC: spec = #sattn.dense<causal = true>
func.func @short(%q: !short) {
  sattn.attention %q, %q, %q, %q {density = 0.125 : f64, causal} : !short, !short, !short, !short
  return
}

// No density: dense.
// RVV-LABEL: func.func @nodensity
// RVV: spec = #sattn.dense<>
func.func @nodensity(%q: !short) {
  sattn.attention %q, %q, %q, %q : !short, !short, !short, !short
  return
}

// A spec given by the user is left alone.
// RVV-LABEL: func.func @given
// RVV: sattn.attention {{.*}} {spec = #sattn.bigbird<block = 16>}
// RVV-NOT: sattn.predicted_insns
func.func @given(%q: !short) {
  sattn.attention %q, %q, %q, %q {spec = #sattn.bigbird<block = 16>} : !short, !short, !short, !short
  return
}

// BAD: --sattn-select-spec: unknown profile 'gpu' (expected highperf, lowpower, rvv or rocc)
