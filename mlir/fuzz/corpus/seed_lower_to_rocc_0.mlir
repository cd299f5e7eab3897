!q = memref<1x2x128x64xf32>
!k = memref<1x1x128x64xf32>

func.func @rocc(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 64 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

func.func @rocc_spec(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25>} : !q, !k, !k, !q
  return
}
