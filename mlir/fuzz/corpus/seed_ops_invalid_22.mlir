func.func @tile_pv(%p: memref<16x16xf32>, %v: memref<1x1x64x8xf32>, %acc: memref<16x4xf32>, %i: index) {
  sattn.tile_pv %p, %v into %acc at [%i, %i, %i] {block = 16 : i64} : memref<16x16xf32>, memref<1x1x64x8xf32>, memref<16x4xf32>
  return
}
