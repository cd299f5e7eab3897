func.func @tile_scores(%q: memref<1x1x64x8xf32>, %b: memref<?xi64>, %s: memref<16x8xf32>, %i: index) {
  sattn.tile_scores %q, %q, %b into %s at [%i, %i, %i, %i, %i, %i] {block = 16 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi64>, memref<16x8xf32>
  return
}
