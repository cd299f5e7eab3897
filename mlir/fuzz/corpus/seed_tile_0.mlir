!q = memref<2x4x96x32xf32>
!k = memref<2x2x128x32xf32>

func.func @tiled(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 32 : i64, plan_b = 2 : i64, plan_h = 4 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

func.func @untouched(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>} : !q, !k, !k, !q
  return
}
