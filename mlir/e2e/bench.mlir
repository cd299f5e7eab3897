// Instruction-count benchmark programs (mlir/e2e/bench_insn.py, docs/mlir.md): BlockTopK at
// L=2048, D=64, B=H=1, fp32. `grid_*` plan inside the call (the select-spec grid);
// `auto` lets --sattn-select-spec choose at density 0.125; `plan_bt64` runs on the caller's plan
// (the hand-written RVV kernel's setting: rvv/runner also gets the plan from the problem file).

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

// Causal variants: the mask term of the cost model (diagonal entries) is not fitted, so the
// select-spec check is repeated here.

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

// Held-out check of the cost model (not used to fit it): causal, L=1024, keep 0.25.

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

// The backward over the same plan (rvv/runner --mode backward executes the same problem file's
// plan): dq, dk, dv from the forward's out and lse and an upstream dout.
func.func @grad_plan_bt64(%q: memref<1x1x2048x64xf32>, %k: memref<1x1x2048x64xf32>, %v: memref<1x1x2048x64xf32>,
                          %o: memref<1x1x2048x64xf32>, %lse: memref<1x1x2048xf32>, %do: memref<1x1x2048x64xf32>,
                          %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>,
                          %dq: memref<1x1x2048x64xf32>, %dk: memref<1x1x2048x64xf32>, %dv: memref<1x1x2048x64xf32>)
    attributes {llvm.emit_c_interface} {
  sattn.block_sparse_attention_grad %q, %k, %v, %o, %lse, %do plan(%rp, %ci, %mi, %bm) into %dq, %dk, %dv
      {block = 64 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 0.125 : f64}
      : memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>,
        memref<1x1x2048xf32>, memref<1x1x2048x64xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>,
        memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>, memref<1x1x2048x64xf32>
  return
}
