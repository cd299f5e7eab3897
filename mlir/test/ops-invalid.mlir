// RUN: sattn-opt %s -split-input-file -verify-diagnostics
// One case per verifier rule of every op.

func.func @dynamic(%q: memref<1x1x?x8xf32>, %k: memref<1x1x8x8xf32>, %o: memref<1x1x?x8xf32>) {
  // expected-error @+1 {{operand 'q' must have a static shape}}
  sattn.attention %q, %k, %k, %o : memref<1x1x?x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x?x8xf32>
  return
}

// -----
func.func @layout(%q: memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, %k: memref<1x1x8x8xf32>, %o: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{operand 'q' must have the identity (row-major) layout}}
  sattn.attention %q, %k, %k, %o : memref<1x1x8x8xf32, strided<[128, 128, 16, 1]>>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @gqa(%q: memref<1x3x8x8xf32>, %k: memref<1x2x8x8xf32>) {
  // expected-error @+1 {{invalid shape: Hq: expected a multiple of Hkv=2, got 3}}
  sattn.attention %q, %k, %k, %q : memref<1x3x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x3x8x8xf32>
  return
}

// -----
func.func @lq(%q: memref<1x1x9x8xf32>, %k: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{invalid shape: Lq: expected 1 <= Lq <= Lk=8, got 9}}
  sattn.attention %q, %k, %k, %q : memref<1x1x9x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x9x8xf32>
  return
}

// -----
func.func @batch(%q: memref<2x1x8x8xf32>, %k: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{k: batch 1 differs from q's 2}}
  sattn.attention %q, %k, %k, %q : memref<2x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<2x1x8x8xf32>
  return
}

// -----
func.func @headdim(%q: memref<1x1x8x8xf32>, %k: memref<1x1x8x4xf32>) {
  // expected-error @+1 {{k: head_dim 4 differs from q's 8}}
  sattn.attention %q, %k, %k, %q : memref<1x1x8x8xf32>, memref<1x1x8x4xf32>, memref<1x1x8x4xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @vshape(%q: memref<1x1x8x8xf32>, %k: memref<1x1x8x8xf32>, %v: memref<1x1x4x8xf32>) {
  // expected-error @+1 {{v: shape must equal k's}}
  sattn.attention %q, %k, %v, %q : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x4x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @oshape(%q: memref<1x1x8x8xf32>, %k: memref<1x1x8x8xf32>, %o: memref<1x1x4x8xf32>) {
  // expected-error @+1 {{out: shape must equal q's}}
  sattn.attention %q, %k, %k, %o : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x4x8xf32>
  return
}

// -----
func.func @f16(%q: memref<1x1x8x8xf16>) {
  // expected-error @+1 {{operand #0 must be 4D memref of 32-bit float values}}
  sattn.attention %q, %q, %q, %q : memref<1x1x8x8xf16>, memref<1x1x8x8xf16>, memref<1x1x8x8xf16>, memref<1x1x8x8xf16>
  return
}

// -----
func.func @scale(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{scale: expected a finite value > 0, got -1}}
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>, scale = -1.0 : f64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @density(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{density: expected a value in (0, 1], got 0}}
  sattn.attention %q, %q, %q, %q {density = 0.0 : f64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @both(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{'density' and 'causal' ask --sattn-select-spec to choose a spec}}
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>, causal} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @notspec(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{attribute 'spec' failed to satisfy constraint: sattn spec attribute}}
  sattn.attention %q, %q, %q, %q {spec = 3 : i64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @plan_block(%q: memref<1x1x64x8xf32>) {
  // expected-error @+1 {{block: 16 differs from the spec's block 32}}
  %p:4 = sattn.build_plan %q, %q {spec = #sattn.block_topk<block = 32>, block = 16 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32> -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  return
}

// -----
func.func @plan_block_range(%q: memref<1x1x64x8xf32>) {
  // expected-error @+1 {{block: expected 1..4096, got 0}}
  %p:4 = sattn.build_plan %q, %q {spec = #sattn.dense<>, block = 0 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32> -> memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>
  return
}

// -----
func.func @plan_b(%q: memref<2x1x64x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{plan_b: expected 1 or B=2, got 3}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %r, %r, %b) into %q {block = 16 : i64, plan_b = 3 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<2x1x64x8xf32>, memref<2x1x64x8xf32>, memref<2x1x64x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<2x1x64x8xf32>
  return
}

// -----
func.func @plan_h(%q: memref<1x2x64x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{plan_h: expected 1 or Hq=2, got 4}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %r, %r, %b) into %q {block = 16 : i64, plan_b = 1 : i64, plan_h = 4 : i64, scale = 1.0 : f64}
      : memref<1x2x64x8xf32>, memref<1x2x64x8xf32>, memref<1x2x64x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x2x64x8xf32>
  return
}

// -----
func.func @row_ptr(%q: memref<1x1x64x8xf32>, %r: memref<4xi32>, %c: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{row_ptr: expected plan_b*plan_h*n_q_blocks+1 = 5 elements, got 4}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %c, %c, %b) into %q {block = 16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<4xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x64x8xf32>
  return
}

// -----
func.func @mask_idx(%q: memref<1x1x64x8xf32>, %r: memref<?xi32>, %c: memref<3xi32>, %m: memref<2xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{mask_idx: expected one entry per col_idx entry (3), got 2}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %c, %m, %b) into %q {block = 16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi32>, memref<3xi32>, memref<2xi32>, memref<?xi64>, memref<1x1x64x8xf32>
  return
}

// -----
func.func @tile_init(%acc: memref<16x8xf32>, %m: memref<8xf32>) {
  // expected-error @+1 {{m: expected 16 elements (the block)}}
  sattn.tile_init %acc, %m, %m : memref<16x8xf32>, memref<8xf32>, memref<8xf32>
  return
}

// -----
func.func @tile_scores(%q: memref<1x1x64x8xf32>, %b: memref<?xi64>, %s: memref<16x8xf32>, %i: index) {
  // expected-error @+1 {{s: expected 16x16}}
  sattn.tile_scores %q, %q, %b into %s at [%i, %i, %i, %i, %i, %i] {block = 16 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi64>, memref<16x8xf32>
  return
}

// -----
func.func @tile_softmax(%s: memref<16x16xf32>, %m: memref<16xf32>, %acc: memref<8x8xf32>) {
  // expected-error @+1 {{acc: expected 16 rows}}
  sattn.tile_softmax %s, %m, %m, %acc : memref<16x16xf32>, memref<16xf32>, memref<16xf32>, memref<8x8xf32>
  return
}

// -----
func.func @tile_pv(%p: memref<16x16xf32>, %v: memref<1x1x64x8xf32>, %acc: memref<16x4xf32>, %i: index) {
  // expected-error @+1 {{acc: expected 16x8}}
  sattn.tile_pv %p, %v into %acc at [%i, %i, %i] {block = 16 : i64} : memref<16x16xf32>, memref<1x1x64x8xf32>, memref<16x4xf32>
  return
}

// -----
func.func @tile_store(%acc: memref<16x8xf32>, %l: memref<16xf32>, %o: memref<1x1x64x8xf32>, %i: index) {
  // expected-error @+1 {{lk: expected >= Lq=64, got 32}}
  sattn.tile_store %acc, %l into %o at [%i, %i, %i] {block = 16 : i64, lk = 32 : i64} : memref<16x8xf32>, memref<16xf32>, memref<1x1x64x8xf32>
  return
}

// -----
func.func @tile_fused(%q: memref<1x1x64x8xf32>, %b: memref<?xi64>, %m: memref<16xf32>, %acc: memref<16x8xf32>, %i: index) {
  // expected-error @+1 {{block: expected 1..4096, got 5000}}
  sattn.tile_fused %q, %q, %q, %b into %m, %m, %acc at [%i, %i, %i, %i, %i, %i] {block = 5000 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi64>, memref<16xf32>, memref<16xf32>, memref<16x8xf32>
  return
}

// -----
func.func @negative_block(%q: memref<1x1x64x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{block: expected 1..4096, got -16}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %r, %r, %b) into %q {block = -16 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<1x1x64x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x64x8xf32>
  return
}
