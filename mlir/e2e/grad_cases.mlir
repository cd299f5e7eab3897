// End-to-end backward programs for mlir/e2e/grad_e2e_test.py (which holds the same specs and
// shapes): sattn.attention_grad through --sattn-rvv-pipeline, run under QEMU by mlir_runner and
// compared with a float64 backward of the masked softmax.

// Dense causal with GQA (2 query heads per kv head) and a ragged last block (L = 40, tile 16).
func.func @grad_dense_causal_gqa(%q: memref<1x4x40x32xf32>, %k: memref<1x2x40x32xf32>, %v: memref<1x2x40x32xf32>,
                                 %o: memref<1x4x40x32xf32>, %lse: memref<1x4x40xf32>, %do: memref<1x4x40x32xf32>,
                                 %dq: memref<1x4x40x32xf32>, %dk: memref<1x2x40x32xf32>, %dv: memref<1x2x40x32xf32>)
    attributes {llvm.emit_c_interface} {
  sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv {spec = #sattn.dense<causal = true>, sattn.tile = 16 : i64}
      : memref<1x4x40x32xf32>, memref<1x2x40x32xf32>, memref<1x2x40x32xf32>, memref<1x4x40x32xf32>,
        memref<1x4x40xf32>, memref<1x4x40x32xf32>, memref<1x4x40x32xf32>, memref<1x2x40x32xf32>,
        memref<1x2x40x32xf32>
  return
}

// Sliding window with dilation and global tokens, Lq = 24 < Lk = 50, D = 20 (masked D tail).
func.func @grad_sliding_ragged(%q: memref<1x2x24x20xf32>, %k: memref<1x1x50x20xf32>, %v: memref<1x1x50x20xf32>,
                               %o: memref<1x2x24x20xf32>, %lse: memref<1x2x24xf32>, %do: memref<1x2x24x20xf32>,
                               %dq: memref<1x2x24x20xf32>, %dk: memref<1x1x50x20xf32>, %dv: memref<1x1x50x20xf32>)
    attributes {llvm.emit_c_interface} {
  sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv
      {spec = #sattn.sliding_window<window = 8, causal = true, dilation = 2, global_tokens = 2>, sattn.tile = 16 : i64}
      : memref<1x2x24x20xf32>, memref<1x1x50x20xf32>, memref<1x1x50x20xf32>, memref<1x2x24x20xf32>,
        memref<1x2x24xf32>, memref<1x2x24x20xf32>, memref<1x2x24x20xf32>, memref<1x1x50x20xf32>,
        memref<1x1x50x20xf32>
  return
}

// Block top-k (a run-time plan from the shared planner), causal, B = 2, explicit scale.
func.func @grad_block_topk(%q: memref<2x2x96x64xf32>, %k: memref<2x1x96x64xf32>, %v: memref<2x1x96x64xf32>,
                           %o: memref<2x2x96x64xf32>, %lse: memref<2x2x96xf32>, %do: memref<2x2x96x64xf32>,
                           %dq: memref<2x2x96x64xf32>, %dk: memref<2x1x96x64xf32>, %dv: memref<2x1x96x64xf32>)
    attributes {llvm.emit_c_interface} {
  sattn.attention_grad %q, %k, %v, %o, %lse, %do into %dq, %dk, %dv
      {spec = #sattn.block_topk<block = 32, keep = 0.34, causal = true>, scale = 0.2 : f64}
      : memref<2x2x96x64xf32>, memref<2x1x96x64xf32>, memref<2x1x96x64xf32>, memref<2x2x96x64xf32>,
        memref<2x2x96xf32>, memref<2x2x96x64xf32>, memref<2x2x96x64xf32>, memref<2x1x96x64xf32>,
        memref<2x1x96x64xf32>
  return
}

// The plan as arguments (the file's plan, possibly edited to have rows with no key).
func.func @grad_plan_block_topk(%q: memref<1x2x128x64xf32>, %k: memref<1x1x128x64xf32>, %v: memref<1x1x128x64xf32>,
                                %o: memref<1x2x128x64xf32>, %lse: memref<1x2x128xf32>, %do: memref<1x2x128x64xf32>,
                                %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>,
                                %dq: memref<1x2x128x64xf32>, %dk: memref<1x1x128x64xf32>, %dv: memref<1x1x128x64xf32>)
    attributes {llvm.emit_c_interface} {
  sattn.block_sparse_attention_grad %q, %k, %v, %o, %lse, %do plan(%rp, %ci, %mi, %bm) into %dq, %dk, %dv
      {block = 32 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 0.125 : f64}
      : memref<1x2x128x64xf32>, memref<1x1x128x64xf32>, memref<1x1x128x64xf32>, memref<1x2x128x64xf32>,
        memref<1x2x128xf32>, memref<1x2x128x64xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>,
        memref<1x2x128x64xf32>, memref<1x1x128x64xf32>, memref<1x1x128x64xf32>
  return
}
