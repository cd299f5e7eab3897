// RUN: sattn-opt %s --sattn-lower-to-rocc --canonicalize | FileCheck %s
// RUN: sattn-opt %s --sattn-rocc-pipeline | FileCheck %s --check-prefix=LLVM

!q = memref<1x2x128x64xf32>
!k = memref<1x1x128x64xf32>

// Descriptor (29 words, 16-byte aligned) with the plan pointers and geometry filled in by the
// generated code, then one driver call; a non-zero error code reaches sattn_rocc_abort.
// CHECK-LABEL: func.func @rocc
// CHECK: %[[D:.*]] = memref.alloca() {alignment = 16 : i64} : memref<29xi64>
// CHECK: %[[RPP:.*]] = memref.extract_aligned_pointer_as_index %arg4
// CHECK: %[[RPI:.*]] = arith.index_cast %[[RPP]] : index to i64
// CHECK: memref.store %[[RPI]], %[[D]][%c6]
// B, Hq, Hkv, D, block, n_k_blocks, plan_b, plan_h = 1, 2, 1, 64, 64, 2, 1, 2 (words 12..19):
// CHECK: memref.store %c1_i64, %[[D]][%c12]
// CHECK: memref.store %c2_i64, %[[D]][%c13]
// CHECK: memref.store %c64_i64, %[[D]][%c16]
// CHECK: memref.store %c2_i64, %[[D]][%c19]
// nnz = row_ptr[plan_b * plan_h * n_q_blocks] = row_ptr[4]:
// CHECK: %[[NNZ:.*]] = memref.load %arg4[%c4]
// CHECK: %[[CODE:.*]] = call @sattn_rocc_attention_f32(
// CHECK: scf.if
// CHECK: call @sattn_rocc_abort(%[[CODE]])
// CHECK-NOT: sattn.block_sparse_attention
// LLVM: llvm.call @sattn_rocc_attention_f32
func.func @rocc(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 64 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

// Through the whole RoCC pipeline a data-dependent spec plans on the host core first.
// LLVM-LABEL: llvm.func @rocc_spec
// LLVM: llvm.call @sattn_rt_plan_build
// LLVM: llvm.call @sattn_rocc_attention_f32
func.func @rocc_spec(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25>} : !q, !k, !k, !q
  return
}
