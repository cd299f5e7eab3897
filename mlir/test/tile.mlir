// RUN: sattn-opt %s --sattn-tile | FileCheck %s

!q = memref<2x4x96x32xf32>
!k = memref<2x2x128x32xf32>

// Loops over (batch, query head, query block) and the row's plan entries; scratch buffers are
// allocated once. Lk=128, Lq=96 at block 32: q_block_begin = 1, 3 query blocks.
// CHECK-LABEL: func.func @tiled
// CHECK-DAG: %[[ACC:.*]] = memref.alloc() {alignment = 64 : i64} : memref<32x32xf32>
// CHECK-DAG: %[[S:.*]] = memref.alloc() {alignment = 64 : i64} : memref<32x32xf32>
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %c2
// CHECK: scf.for %[[H:.*]] = %{{.*}} to %c4
// CHECK: %[[KVH:.*]] = arith.divui %[[H]], %c2
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %c3
// CHECK: %[[QB:.*]] = arith.addi %[[R]], %c1
// CHECK: sattn.tile_init
// CHECK: scf.for %[[E:.*]] = %{{.*}} to %{{.*}} step
// CHECK: memref.load %arg5[%[[E]]] : memref<?xi32>
// CHECK: sattn.tile_scores %arg0, %arg1, %arg7 into %[[S]] at[%[[B]], %[[H]], %[[KVH]], %[[QB]]
// CHECK-NEXT: sattn.tile_softmax %[[S]]
// CHECK-NEXT: sattn.tile_pv %[[S]], %arg2 into
// CHECK: sattn.tile_store {{.*}} into %arg3 at[%[[B]], %[[H]], %[[QB]]] {block = 32 : i64, lk = 128 : i64}
// CHECK: memref.dealloc %[[S]]
// CHECK-NOT: sattn.block_sparse_attention
func.func @tiled(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 32 : i64, plan_b = 2 : i64, plan_h = 4 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

// Negative: a spec-level op is not the tiler's business (materialise its plan first).
// CHECK-LABEL: func.func @untouched
// CHECK-NOT: scf.for
// CHECK: sattn.attention
func.func @untouched(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>} : !q, !k, !k, !q
  return
}
