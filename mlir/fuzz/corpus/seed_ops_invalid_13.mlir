func.func @plan_block(%q: memref<1x1x64x8xf32>) {
  %p:4 = sattn.build_plan %q, %q {spec = #sattn.block_topk<block = 32>, block = 16 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32> -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  return
}
