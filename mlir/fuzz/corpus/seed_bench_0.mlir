func.func @grid_dense(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @grid_bt16(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 16, keep = 0.125>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @grid_bt32(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.125>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @grid_bt64(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 64, keep = 0.125>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @grid_bt128(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 128, keep = 0.125>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @auto(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {density = 0.125 : f64} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}


func.func @cgrid_dense(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<causal = true>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @cgrid_bt16(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 16, keep = 0.125, causal = true>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @cgrid_bt32(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.125, causal = true>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @cgrid_bt64(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 64, keep = 0.125, causal = true>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @cgrid_bt128(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 128, keep = 0.125, causal = true>} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}

func.func @cauto(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {density = 0.125 : f64, causal} : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}


func.func @hgrid_dense(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<causal = true>} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @hgrid_bt16(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 16, keep = 0.25, causal = true>} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @hgrid_bt32(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25, causal = true>} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @hgrid_bt64(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 64, keep = 0.25, causal = true>} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @hgrid_bt128(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 128, keep = 0.25, causal = true>} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @hauto(%q: memref<1x1x1024x64xf32>, %k: memref<1x1x1024x64xf32>, %v: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {density = 0.25 : f64, causal} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}

func.func @plan_bt64(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>, %o: memref<1x1x2048x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 64 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.125 : f64}
      : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x2048x64xf32>
  return
}
