func.func @tile_softmax(%s: memref<16x16xf32>, %m: memref<16xf32>, %acc: memref<8x8xf32>) {
  sattn.tile_softmax %s, %m, %m, %acc : memref<16x16xf32>, memref<16xf32>, memref<16xf32>, memref<8x8xf32>
  return
}
