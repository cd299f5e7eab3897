func.func @nospec(%q: memref<1x1x8x8xf32>) {
  sattn.attention %q, %q, %q, %q : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
