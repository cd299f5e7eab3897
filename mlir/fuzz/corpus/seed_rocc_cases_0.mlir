func.func @rocc_block_topk(%q: memref<1x2x128x32xf32>, %k: memref<1x1x128x32xf32>, %v: memref<1x1x128x32xf32>, %o: memref<1x2x128x32xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25, causal = true>}
      : memref<1x2x128x32xf32>, memref<1x1x128x32xf32>, memref<1x1x128x32xf32>, memref<1x2x128x32xf32>
  return
}

func.func @rocc_window(%q: memref<1x2x80x16xf32>, %k: memref<1x2x96x16xf32>, %v: memref<1x2x96x16xf32>, %o: memref<1x2x80x16xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.sliding_window<window = 20, causal = true>, sattn.tile = 16 : i64}
      : memref<1x2x80x16xf32>, memref<1x2x96x16xf32>, memref<1x2x96x16xf32>, memref<1x2x80x16xf32>
  return
}

func.func @rocc_dense(%q: memref<2x1x64x16xf32>, %k: memref<2x1x64x16xf32>, %v: memref<2x1x64x16xf32>, %o: memref<2x1x64x16xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<causal = false>}
      : memref<2x1x64x16xf32>, memref<2x1x64x16xf32>, memref<2x1x64x16xf32>, memref<2x1x64x16xf32>
  return
}
