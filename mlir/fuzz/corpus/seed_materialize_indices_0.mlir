!q = memref<1x2x100x32xf32>
!k = memref<1x1x100x32xf32>

func.func @window(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.sliding_window<window = 16, causal = true>} : !q, !k, !k, !q
  return
}

func.func @topk(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.block_topk<block = 32, keep = 0.25>, scale = 0.5 : f64} : !q, !k, !k, !q
  return
}

func.func @tiled_dense(%q: !q, %k: !k, %v: !k, %o: !q) {
  sattn.attention %q, %k, %v, %o {spec = #sattn.dense<>, sattn.tile = 32 : i64} : !q, !k, !k, !q
  return
}
