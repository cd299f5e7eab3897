func.func @batch(%q: memref<2x1x8x8xf32>, %k: memref<1x1x8x8xf32>) {
  sattn.attention %q, %k, %k, %q : memref<2x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<2x1x8x8xf32>
  return
}
