func.func @negative_block(%q: memref<1x1x64x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  sattn.block_sparse_attention %q, %q, %q plan(%r, %r, %r, %b) into %q {block = -16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x64x8xf32>
  return
}
