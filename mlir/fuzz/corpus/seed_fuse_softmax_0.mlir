!q = memref<1x2x64x8xf32>
!k = memref<1x1x64x8xf32>

func.func @fused(%q: !q, %k: !k, %v: !k, %o: !q, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>) {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.25 : f64}
      : !q, !k, !k, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, !q
  return
}

func.func @shared_tile(%q: !q, %k: !k, %v: !k, %bm: memref<?xi64>, %i: index) -> f32 {
  %acc = memref.alloc() : memref<16x8xf32>
  %m = memref.alloc() : memref<16xf32>
  %l = memref.alloc() : memref<16xf32>
  %s = memref.alloc() : memref<16x16xf32>
  sattn.tile_scores %q, %k, %bm into %s at [%i, %i, %i, %i, %i, %i] {block = 16 : i64, scale = 0.25 : f64} : !q, !k, memref<?xi64>, memref<16x16xf32>
  sattn.tile_softmax %s, %m, %l, %acc : memref<16x16xf32>, memref<16xf32>, memref<16xf32>, memref<16x8xf32>
  sattn.tile_pv %s, %v into %acc at [%i, %i, %i] {block = 16 : i64} : memref<16x16xf32>, !k, memref<16x8xf32>
  %p = memref.load %s[%i, %i] : memref<16x16xf32>
  return %p : f32
}

func.func @other_acc(%q: !q, %k: !k, %v: !k, %bm: memref<?xi64>, %i: index) {
  %acc = memref.alloc() : memref<16x8xf32>
  %acc2 = memref.alloc() : memref<16x8xf32>
  %m = memref.alloc() : memref<16xf32>
  %l = memref.alloc() : memref<16xf32>
  %s = memref.alloc() : memref<16x16xf32>
  sattn.tile_scores %q, %k, %bm into %s at [%i, %i, %i, %i, %i, %i] {block = 16 : i64, scale = 0.25 : f64} : !q, !k, memref<?xi64>, memref<16x16xf32>
  sattn.tile_softmax %s, %m, %l, %acc : memref<16x16xf32>, memref<16xf32>, memref<16xf32>, memref<16x8xf32>
  sattn.tile_pv %s, %v into %acc2 at [%i, %i, %i] {block = 16 : i64} : memref<16x16xf32>, !k, memref<16x8xf32>
  return
}
