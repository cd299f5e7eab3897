// RUN: sattn-opt %s | sattn-opt | FileCheck %s --check-prefix=ROUND
// RUN: sattn-opt %s --sattn-materialize-indices | FileCheck %s --check-prefix=PLAN
// RUN: sattn-opt %s --sattn-materialize-indices --sattn-lower-to-rvv | FileCheck %s --check-prefix=RVV
// RUN: sattn-opt %s --sattn-rvv-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: sattn-opt %s '--sattn-rvv-pipeline=scalable=true vector-width=16' | FileCheck %s --check-prefix=LLVM
// RUN: %not sattn-opt %s --sattn-rocc-pipeline 2>&1 | FileCheck %s --check-prefix=ROCC
// sattn.attention_grad: round trip, plan materialisation (constant and run-time plans), the RVV
// lowering and the whole pipeline; the RoCC pipeline refuses it.

// ROCC: error: 'sattn.block_sparse_attention_grad' op has no RoCC lowering (the accelerator computes the forward only); compile the backward with --sattn-rvv-pipeline

!q = memref<1x2x40x32xf32>
!k = memref<1x1x40x32xf32>
!l = memref<1x2x40xf32>

// ROUND-LABEL: func.func @dense
// ROUND: sattn.attention_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}}, %{{.*}}, %{{.*}} {sattn.tile = 16 : i64, spec = #sattn.dense<causal = true>}
// PLAN-LABEL: func.func @dense
// PLAN: memref.get_global @__sattn_plan0_row_ptr
// PLAN: sattn.block_sparse_attention_grad {{.*}} plan({{.*}}) into {{.*}} {block = 16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.17677669529663687 : f64}
// RVV-LABEL: func.func @dense
// RVV-NOT: sattn.
// RVV: memref.collapse_shape
// RVV: vector.reduction <add>
// RVV: math.fma
// RVV: vector.fma
// RVV: return
// LLVM-LABEL: llvm.func @dense
// LLVM-NOT: sattn.
func.func @dense(%q: !q, %k: !k, %v: !k, %o: !q, %lse: !l, %do: !q, %dq: !q, %dk: !k, %dv: !k) {
  sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv {spec = #sattn.dense<causal = true>, sattn.tile = 16 : i64}
      : !q, !k, !k, !q, !l, !q, !q, !k, !k
  return
}

// ROUND-LABEL: func.func @topk
// PLAN-LABEL: func.func @topk
// PLAN: sattn.build_plan
// PLAN: sattn.block_sparse_attention_grad {{.*}} {block = 8 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 5.000000e-01 : f64}
// RVV-LABEL: func.func @topk
// RVV: call @sattn_rt_plan_build
// LLVM-LABEL: llvm.func @topk
func.func @topk(%q: !q, %k: !k, %v: !k, %o: !q, %lse: !l, %do: !q, %dq: !q, %dk: !k, %dv: !k) {
  sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv {spec = #sattn.block_topk<block = 8, keep = 0.5>, scale = 0.5 : f64}
      : !q, !k, !k, !q, !l, !q, !q, !k, !k
  return
}
