func.func @density(%q: memref<1x1x8x8xf32>) {
  sattn.attention %q, %q, %q, %q {density = 0.0 : f64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
