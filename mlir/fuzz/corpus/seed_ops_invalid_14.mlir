func.func @plan_block_range(%q: memref<1x1x64x8xf32>) {
  %p:4 = sattn.build_plan %q, %q {spec = #sattn.dense<>, block = 0 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32> -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  return
}
