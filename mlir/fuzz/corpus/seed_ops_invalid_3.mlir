func.func @lq(%q: memref<1x1x9x8xf32>, %k: memref<1x1x8x8xf32>) {
  sattn.attention %q, %k, %k, %q : memref<1x1x9x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x9x8xf32>
  return
}
