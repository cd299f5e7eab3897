func.func @vshape(%q: memref<1x1x8x8xf32>, %k: memref<1x1x8x8xf32>, %v: memref<1x1x4x8xf32>) {
  sattn.attention %q, %k, %v, %q : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x4x8xf32>, memref<1x1x8x8xf32>
  return
}
