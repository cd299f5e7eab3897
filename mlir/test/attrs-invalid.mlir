// RUN: sattn-opt %s -split-input-file -verify-diagnostics
// Bad spec parameters are rejected by the contract's own validator, at the attribute.

// expected-error @+1 {{invalid #sattn.sliding_window: window: expected an integer >= 1, got 0}}
func.func @f() attributes {a = #sattn.sliding_window<window = 0>} { return }

// -----
// expected-error @+1 {{invalid #sattn.sliding_window: dilation: expected an integer >= 1, got 0}}
func.func @f() attributes {a = #sattn.sliding_window<window = 4, dilation = 0>} { return }

// -----
// expected-error @+1 {{invalid #sattn.block_topk: keep: expected a value in (0, 1], got 1.500000}}
func.func @f() attributes {a = #sattn.block_topk<keep = 1.5>} { return }

// -----
// expected-error @+1 {{invalid #sattn.block_topk: block: expected 1..4096, got 5000}}
func.func @f() attributes {a = #sattn.block_topk<block = 5000>} { return }

// -----
// expected-error @+1 {{invalid #sattn.block_topk: score: expected "mean" or "max", got "median"}}
func.func @f() attributes {a = #sattn.block_topk<score = "median">} { return }

// -----
// expected-error @+1 {{invalid #sattn.block_topk: local_blocks: expected an integer >= 0, got -1}}
func.func @f() attributes {a = #sattn.block_topk<local_blocks = -1>} { return }

// -----
// expected-error @+1 {{block: expected a 32-bit integer, got 4294967296}}
func.func @f() attributes {a = #sattn.block_topk<block = 4294967296>} { return }

// -----
// expected-error @+1 {{invalid #sattn.bigbird: seed: expected an integer >= 0, got -3}}
func.func @f() attributes {a = #sattn.bigbird<seed = -3>} { return }

// -----
// expected-error @+1 {{invalid #sattn.bigbird: random_blocks: expected an integer >= 0, got -2}}
func.func @f() attributes {a = #sattn.bigbird<random_blocks = -2>} { return }

// -----
// expected-error @+1 {{invalid #sattn.topk_per_query: k: expected an integer >= 1, got 0}}
func.func @f() attributes {a = #sattn.topk_per_query<k = 0>} { return }

// -----
// expected-error @+2 {{expected 'true' or 'false'}}
// expected-error @+1 {{failed to parse Sattn_DenseSpecAttr parameter 'causal'}}
func.func @f() attributes {a = #sattn.dense<causal = 1>} { return }
