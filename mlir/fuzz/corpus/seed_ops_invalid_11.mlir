func.func @both(%q: memref<1x1x8x8xf32>) {
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>, causal} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
