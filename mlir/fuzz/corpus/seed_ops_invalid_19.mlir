func.func @tile_init(%acc: memref<16x8xf32>, %m: memref<8xf32>) {
  sattn.tile_init %acc, %m, %m : memref<16x8xf32>, memref<8xf32>, memref<8xf32>
  return
}
