func.func @badtile(%q: memref<1x1x8x8xf32>) {
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>, sattn.tile = 0 : i64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
