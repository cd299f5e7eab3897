func.func @specs() attributes {
  a = #sattn.dense<causal = true>,
  b = #sattn.sliding_window<window = 128, dilation = 2, global_tokens = 4>,
  c = #sattn.block_topk<>,
  d = #sattn.bigbird<block = 32, seed = 9, causal = true>,
  e = #sattn.topk_per_query<k = 16>,
  f = #sattn.block_topk<score = "max", causal = true, block = 16, keep = 0.5, global_blocks = 0, local_blocks = 2>,
  g = #sattn.dense<causal = false>
} {
  return
}
