func.func @tile_fused(%q: memref<1x1x64x8xf32>, %b: memref<?xi64>, %m: memref<16xf32>, %acc: memref<16x8xf32>, %i: index) {
  sattn.tile_fused %q, %q, %q, %b into %m, %m, %acc at [%i, %i, %i, %i, %i, %i] {block = 5000 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi64>, memref<16xf32>, memref<16xf32>, memref<16x8xf32>
  return
}
