func.func @tile_store(%acc: memref<16x8xf32>, %l: memref<16xf32>, %o: memref<1x1x64x8xf32>, %i: index) {
  sattn.tile_store %acc, %l into %o at [%i, %i, %i] {block = 16 : i64, lk = 32 : i64} : memref<16x8xf32>, memref<16xf32>, memref<1x1x64x8xf32>
  return
}
