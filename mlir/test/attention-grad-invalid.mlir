// RUN: sattn-opt %s -split-input-file -verify-diagnostics
// Every verifier rule of the backward ops.

func.func @lse_shape(%q: memref<1x2x8x8xf32>, %k: memref<1x1x8x8xf32>, %l: memref<1x1x8xf32>) {
  // expected-error @+1 {{lse: expected shape (B, Hq, Lq) = 1x2x8, got 'memref<1x1x8xf32>'}}
  sattn.attention_grad %q, %k, %k, %q, %l, %q into %q, %k, %k {spec = #sattn.dense<>}
      : memref<1x2x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x2x8x8xf32>, memref<1x1x8xf32>,
        memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @lse_dynamic(%q: memref<1x1x8x8xf32>, %l: memref<1x1x?xf32>) {
  // expected-error @+1 {{operand 'lse' must have a static shape and the identity layout}}
  sattn.attention_grad %q, %q, %q, %q, %l, %q into %q, %q, %q {spec = #sattn.dense<>}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x?xf32>,
        memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @dk_shape(%q: memref<1x2x8x8xf32>, %k: memref<1x1x8x8xf32>, %l: memref<1x2x8xf32>) {
  // expected-error @+1 {{dk: shape must equal k's ('memref<1x1x8x8xf32>'), got 'memref<1x2x8x8xf32>'}}
  sattn.attention_grad %q, %k, %k, %q, %l, %q into %q, %q, %k {spec = #sattn.dense<>}
      : memref<1x2x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8xf32>,
        memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @dout_layout(%q: memref<1x1x8x8xf32>, %d: memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, %l: memref<1x1x8xf32>) {
  // expected-error @+1 {{operand 'dout' must have the identity (row-major) layout}}
  sattn.attention_grad %q, %q, %q, %q, %l, %d into %q, %q, %q {spec = #sattn.dense<>}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8xf32>,
        memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @scale(%q: memref<1x1x8x8xf32>, %l: memref<1x1x8xf32>) {
  // expected-error @+1 {{scale: expected a finite value > 0, got -1}}
  sattn.attention_grad %q, %q, %q, %q, %l, %q into %q, %q, %q {spec = #sattn.dense<>, scale = -1.0 : f64}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8xf32>,
        memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @plan_h(%q: memref<1x1x8x8xf32>, %l: memref<1x1x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{plan_h: expected 1 or Hq=1, got 3}}
  sattn.block_sparse_attention_grad %q, %q, %q, %q, %l, %q plan(%r, %r, %r, %b) into %q, %q, %q
      {block = 8 : i64, plan_b = 1 : i64, plan_h = 3 : i64, scale = 1.0 : f64}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8xf32>,
        memref<1x1x8x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x8x8xf32>,
        memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @row_ptr(%q: memref<1x1x8x8xf32>, %l: memref<1x1x8xf32>, %r: memref<5xi32>, %c: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{row_ptr: expected plan_b*plan_h*n_q_blocks+1 = 2 elements, got 5}}
  sattn.block_sparse_attention_grad %q, %q, %q, %q, %l, %q plan(%r, %c, %c, %b) into %q, %q, %q
      {block = 8 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8xf32>,
        memref<1x1x8x8xf32>, memref<5xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x8x8xf32>,
        memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
