// End-to-end programs for mlir/e2e/e2e_test.py (which holds the same specs and shapes).
// Each function is compiled by sattn-opt --sattn-rvv-pipeline, mlir-translate and clang for
// riscv64, run under QEMU by mlir_runner and compared with the float64 reference.

func.func @dense_causal_gqa(%q: memref<1x4x100x32xf32>, %k: memref<1x2x100x32xf32>, %v: memref<1x2x100x32xf32>, %o: memref<1x4x100x32xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<causal = true>}
      : memref<1x4x100x32xf32>, memref<1x2x100x32xf32>, memref<1x2x100x32xf32>, memref<1x4x100x32xf32>
  return
}

func.func @sliding_ragged(%q: memref<1x2x80x36xf32>, %k: memref<1x1x130x36xf32>, %v: memref<1x1x130x36xf32>, %o: memref<1x2x80x36xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.sliding_window<window = 16, causal = true, dilation = 2, global_tokens = 3>}
      : memref<1x2x80x36xf32>, memref<1x1x130x36xf32>, memref<1x1x130x36xf32>, memref<1x2x80x36xf32>
  return
}

func.func @block_topk_causal(%q: memref<2x2x251x64xf32>, %k: memref<2x1x251x64xf32>, %v: memref<2x1x251x64xf32>, %o: memref<2x2x251x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25, causal = true>}
      : memref<2x2x251x64xf32>, memref<2x1x251x64xf32>, memref<2x1x251x64xf32>, memref<2x2x251x64xf32>
  return
}

func.func @bigbird(%q: memref<1x2x96x16xf32>, %k: memref<1x2x96x16xf32>, %v: memref<1x2x96x16xf32>, %o: memref<1x2x96x16xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.bigbird<block = 16, window_blocks = 3, global_blocks = 1, random_blocks = 2, seed = 7>}
      : memref<1x2x96x16xf32>, memref<1x2x96x16xf32>, memref<1x2x96x16xf32>, memref<1x2x96x16xf32>
  return
}

func.func @topk_per_query(%q: memref<1x1x64x16xf32>, %k: memref<1x1x64x16xf32>, %v: memref<1x1x64x16xf32>, %o: memref<1x1x64x16xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.topk_per_query<k = 8>, sattn.tile = 16 : i64}
      : memref<1x1x64x16xf32>, memref<1x1x64x16xf32>, memref<1x1x64x16xf32>, memref<1x1x64x16xf32>
  return
}

func.func @decode_dense(%q: memref<1x2x1x8xf32>, %k: memref<1x1x77x8xf32>, %v: memref<1x1x77x8xf32>, %o: memref<1x2x1x8xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<causal = false>, scale = 0.5 : f64}
      : memref<1x2x1x8xf32>, memref<1x1x77x8xf32>, memref<1x1x77x8xf32>, memref<1x2x1x8xf32>
  return
}

// Attention over a plan passed in by the caller (block_topk block=64 keep=0.25 causal).
func.func @plan_block_topk(%q: memref<1x2x192x64xf32>, %k: memref<1x1x192x64xf32>, %v: memref<1x1x192x64xf32>, %rp: memref<?xi32>, %ci: memref<?xi32>, %mi: memref<?xi32>, %bm: memref<?xi64>, %o: memref<1x2x192x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.block_sparse_attention %q, %k, %v plan(%rp, %ci, %mi, %bm) into %o {block = 64 : i64, plan_b = 1 : i64, plan_h = 2 : i64, scale = 0.125 : f64}
      : memref<1x2x192x64xf32>, memref<1x1x192x64xf32>, memref<1x1x192x64xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x2x192x64xf32>
  return
}
