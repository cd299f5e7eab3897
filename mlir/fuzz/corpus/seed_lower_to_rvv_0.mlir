!q = memref<1x2x96x40xf32>
!k = memref<1x1x96x40xf32>

func.func @fused(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 32 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

func.func @runtime_plan(%q: !q, %k: !k) -> memref<?xi32> {
  %p:4 = sattn.build_plan %q, %k {spec = #sattn.block_topk<block = 32>, block = 32 : i64, scale = 0.125 : f64}
      : !q, !k -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  %c0 = arith.constant 0 : index
  %n = memref.load %p#0[%c0] : memref<?xi32>
  return %p#1 : memref<?xi32>
}
