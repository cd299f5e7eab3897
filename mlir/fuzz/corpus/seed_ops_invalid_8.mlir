func.func @f16(%q: memref<1x1x8x8xf16>) {
  sattn.attention %q, %q, %q, %q : memref<1x1x8x8xf16>, memref<1x1x8x8xf16>, memref<1x1x8x8xf16>, memref<1x1x8x8xf16>
  return
}
