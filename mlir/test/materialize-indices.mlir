// RUN: sattn-opt %s --sattn-materialize-indices | FileCheck %s
// RUN: sattn-opt %s --sattn-materialize-indices=fold-constant-plans=false | FileCheck %s --check-prefix=NOFOLD

!q = memref<1x2x100x32xf32>
!k = memref<1x1x100x32xf32>

// A data-independent plan is built now, by the shared planner, and becomes constants:
// causal sliding window 16 over 100 positions at tile 64 = 2 query blocks, 3 entries, all masked.
// CHECK-LABEL: func.func @window
// CHECK: %[[RP:.*]] = memref.get_global @__sattn_plan0_row_ptr
// CHECK: %[[RPC:.*]] = memref.cast %[[RP]] : memref<3xi32> to memref<?xi32>
// CHECK: sattn.block_sparse_attention %arg0, %arg1, %arg2 plan(%[[RPC]], {{.*}}) into %arg3 {block = 64 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.17677669529663687 : f64}
// CHECK-NOT: sattn.attention
// NOFOLD-LABEL: func.func @window
// NOFOLD: sattn.build_plan %arg0, %arg1 {block = 64 : i64, scale = {{.*}}, spec = #sattn.sliding_window<window = 16, causal = true>}
// NOFOLD: plan_b = 1 : i64, plan_h = 1 : i64
func.func @window(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.sliding_window<window = 16, causal = true>} : !q, !k, !k, !q
  return
}

// Data-dependent: the plan is computed at run time, one row set per (batch, head).
// CHECK-LABEL: func.func @topk
// CHECK: sattn.build_plan %arg0, %arg1 {block = 32 : i64, scale = 5.000000e-01 : f64, spec = #sattn.block_topk<block = 32, keep = 2.500000e-01>}
// CHECK: sattn.block_sparse_attention {{.*}} {block = 32 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 5.000000e-01 : f64}
func.func @topk(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25>, scale = 0.5 : f64} : !q, !k, !k, !q
  return
}

// The tile chosen by --sattn-select-spec is honoured for specs without a block of their own.
// CHECK-LABEL: func.func @tiled_dense
// CHECK: memref.get_global @__sattn_plan1_row_ptr : memref<5xi32>
// CHECK: sattn.block_sparse_attention {{.*}} {block = 32 : i64, plan_b = 1 : i64, plan_h = 1 : i64
func.func @tiled_dense(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>, sattn.tile = 32 : i64} : !q, !k, !k, !q
  return
}

// The constants, after the functions (symbol table order):
// CHECK-DAG: memref.global "private" constant @__sattn_plan0_row_ptr : memref<3xi32> = dense<[0, 1, 3]>
// CHECK-DAG: memref.global "private" constant @__sattn_plan0_col_idx : memref<3xi32> = dense<[0, 0, 1]>
// CHECK-DAG: memref.global "private" constant @__sattn_plan0_mask_idx : memref<3xi32> = dense<[0, 1, 2]>
// CHECK-DAG: memref.global "private" constant @__sattn_plan0_bitmaps : memref<192xi64>
// CHECK-DAG: memref.global "private" constant @__sattn_plan1_mask_idx : memref<16xi32> = dense<-1>
// CHECK-DAG: memref.global "private" constant @__sattn_plan1_bitmaps : memref<0xi64> = dense<>
