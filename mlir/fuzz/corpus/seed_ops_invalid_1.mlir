func.func @layout(%q: memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, %k: memref<1x1x8x8xf32>, %o: memref<1x1x8x8xf32>) {
  sattn.attention %q, %k, %k, %o : memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
