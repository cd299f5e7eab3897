// RUN: sattn-opt %s --sattn-tile --sattn-fuse-softmax --sattn-lower-to-rvv | FileCheck %s
// RUN: sattn-opt %s --sattn-tile --sattn-lower-to-rvv=vector-width=8 | FileCheck %s --check-prefix=W8
// RUN: sattn-opt %s --sattn-tile --sattn-fuse-softmax --sattn-lower-to-rvv --sattn-to-llvm | FileCheck %s --check-prefix=LLVM
// RUN: sattn-opt %s --sattn-tile --sattn-fuse-softmax "--sattn-lower-to-rvv=scalable=true vector-width=16" | FileCheck %s --check-prefix=VLA

!q = memref<1x2x96x40xf32>
!k = memref<1x1x96x40xf32>

// Fused tiles: one 64-lane vector covers D=40 (masked loads), FMAs accumulate QK and PV, the
// score row sits in a stack buffer, no sattn op is left.
// CHECK-LABEL: func.func @fused
// CHECK: memref.alloca() {alignment = 64 : i64} : memref<32xf32>
// CHECK: vector.create_mask %{{.*}} : vector<64xi1>
// CHECK: vector.maskedload %arg1
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<64xf32> into f32
// CHECK: vector.fma %{{.*}} : vector<64xf32>
// CHECK-NOT: sattn.
// CHECK-NOT: math.exp
// W8-LABEL: func.func @fused
// W8: vector.load %arg0{{.*}} : memref<1x2x96x40xf32>, vector<8xf32>
// W8: vector.fma %{{.*}} : vector<8xf32>
// W8-NOT: sattn.tile
// Scalable: chunk starts scale with vscale and every chunk is masked at run time.
// VLA-LABEL: func.func @fused
// VLA: vector.vscale
// VLA: vector.create_mask %{{.*}} : vector<[16]xi1>
// VLA: vector.maskedload %arg0{{.*}} into vector<[16]xf32>
// VLA: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<[16]xf32> into f32
// VLA-NOT: sattn.tile
// LLVM: llvm.func @fused
// LLVM: llvm.intr.masked.load
// LLVM: llvm.intr.vector.reduce.fadd
// LLVM-NOT: builtin.unrealized_conversion_cast
func.func @fused(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 32 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

// A data-dependent plan becomes calls of the shared planner at run time.
// CHECK-LABEL: func.func @runtime_plan
// CHECK: %[[H:.*]] = call @sattn_rt_plan_build(%c2_i32, {{.*}}) : (i32, i32, i32, i32, i32, i32, f64, i32, i32, i32, i32, i32, i64, i32, i32, i32, i32, i32, i32, i32, index, index, f64, i32) -> index
// CHECK: %[[N:.*]] = call @sattn_rt_plan_size(%[[H]], %c0_i32{{.*}})
// CHECK: %[[RP:.*]] = memref.alloc(%[[N]]) {alignment = 64 : i64} : memref<?xi32>
// CHECK: call @sattn_rt_plan_copy(%[[H]]
// CHECK: call @sattn_rt_plan_free(%[[H]])
// CHECK: memref.dealloc %[[RP]]
// CHECK-NEXT: memref.dealloc
// CHECK: func.func private @sattn_rt_plan_build
func.func @runtime_plan(%q: !q, %k: !k) -> memref<?xi32> {
  %p:4 = sattn.build_plan %q, %k {spec = #sattn.block_topk<block = 32>, block = 32 : i64, scale = 0.125 : f64}
      : !q, !k -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  %c0 = arith.constant 0 : index
  %n = memref.load %p#0[%c0] : memref<?xi32>
  return %p#1 : memref<?xi32>
}
