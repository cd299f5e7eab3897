// RUN: sattn-opt %s | FileCheck %s
// RUN: sattn-opt %s | sattn-opt | FileCheck %s
// Every spec attribute parses (parameters in any order), prints with defaults elided, round-trips.

// CHECK-LABEL: @specs
// CHECK-SAME: a = #sattn.dense<causal = true>
// CHECK-SAME: b = #sattn.sliding_window<window = 128, dilation = 2, global_tokens = 4>
// CHECK-SAME: c = #sattn.block_topk<>
// CHECK-SAME: d = #sattn.bigbird<block = 32, seed = 9, causal = true>
// CHECK-SAME: e = #sattn.topk_per_query<k = 16>
// CHECK-SAME: f = #sattn.block_topk<block = 16, keep = 5.000000e-01, global_blocks = 0, local_blocks = 2, causal = true, score = "max">
// CHECK-SAME: g = #sattn.dense<>
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
