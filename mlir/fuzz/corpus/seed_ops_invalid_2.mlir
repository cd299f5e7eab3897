func.func @gqa(%q: memref<1x3x8x8xf32>, %k: memref<1x2x8x8xf32>) {
  sattn.attention %q, %k, %k, %q : memref<1x3x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x3x8x8xf32>
  return
}
