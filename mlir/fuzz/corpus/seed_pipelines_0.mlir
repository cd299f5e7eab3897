func.func @auto(%q: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %q, %q, %o {density = 0.125 : f64} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}
