func.func @oshape(%q: memref<1x1x8x8xf32>, %k: memref<1x1x8x8xf32>, %o: memref<1x1x4x8xf32>) {
  sattn.attention %q, %k, %k, %o : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x4x8xf32>
  return
}
