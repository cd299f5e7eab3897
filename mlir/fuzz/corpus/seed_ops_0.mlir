!q = memref<2x4x96x32xf32>
!k = memref<2x2x128x32xf32>

func.func @spec_level(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, causal = true>} : !q, !k, !k, !q
  sattn.attention %q, %k, %v, %o {density = 0.25 : f64, causal} : !q, !k, !k, !q
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>, scale = 0.5 : f64} : !q, !k, !k, !q
  return
}

func.func @plan_level(%q: !q, %k: !k, %v: !k, %o: !q) {
  %p:4 = sattn.build_plan %q, %k {spec = #sattn.block_topk<block = 32>, block = 32 : i64, scale = 0.125 : f64}
      : !q, !k -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  sattn.block_sparse_attention %q, %k, %v plan(%p#0, %p#1, %p#2, %p#3) into %o
      {block = 32 : i64, plan_b = 2 : i64, plan_h = 4 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

func.func @tile_level(%q: !q, %k: !k, %v: !k, %o: !q, %bits: memref<?xi64>, %i: index) {
  %acc = memref.alloc() : memref<32x32xf32>
  %m = memref.alloc() : memref<32xf32>
  %l = memref.alloc() : memref<32xf32>
  %s = memref.alloc() : memref<32x32xf32>
  sattn.tile_init %acc, %m, %l : memref<32x32xf32>, memref<32xf32>, memref<32xf32>
  sattn.tile_scores %q, %k, %bits into %s at [%i, %i, %i, %i, %i, %i] {block = 32 : i64, scale = 0.125 : f64}
      : !q, !k, memref<?xi64>, memref<32x32xf32>
  sattn.tile_softmax %s, %m, %l, %acc : memref<32x32xf32>, memref<32xf32>, memref<32xf32>, memref<32x32xf32>
  sattn.tile_pv %s, %v into %acc at [%i, %i, %i] {block = 32 : i64} : memref<32x32xf32>, !k, memref<32x32xf32>
  sattn.tile_fused %q, %k, %v, %bits into %m, %l, %acc at [%i, %i, %i, %i, %i, %i] {block = 32 : i64, scale = 0.125 : f64}
      : !q, !k, !k, memref<?xi64>, memref<32xf32>, memref<32xf32>, memref<32x32xf32>
  sattn.tile_store %acc, %l into %o at [%i, %i, %i] {block = 32 : i64, lk = 128 : i64} : memref<32x32xf32>, memref<32xf32>, !q
  return
}
