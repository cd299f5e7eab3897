// RUN: sattn-opt %s --sattn-lower-to-rvv -split-input-file -verify-diagnostics
// RUN: %not sattn-opt %s --sattn-lower-to-rvv=vector-width=0 2>&1 | FileCheck %s

// CHECK: --sattn-lower-to-rvv: vector-width must be 1..256, got 0

func.func @untiled(%q: memref<1x1x8x8xf32>, %r: memref<?xi32>, %b: memref<?xi64>) {
  // expected-error @+1 {{must be tiled before --sattn-lower-to-rvv}}
  sattn.block_sparse_attention %q, %q, %q plan(%r, %r, %r, %b) into %q {block = 8 : i64, plan_b = 1 : i64, plan_h = 1 : i64, scale = 1.0 : f64}
      : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<?xi32>, memref<?xi32>, memref<?xi32>, memref<?xi64>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @spec_level(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{must be tiled before --sattn-lower-to-rvv}}
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
