// RUN: sattn-opt %s --sattn-materialize-indices -split-input-file -verify-diagnostics

func.func @nospec(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{has no spec; run --sattn-select-spec first or give 'spec'}}
  sattn.attention %q, %q, %q, %q : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}

// -----
func.func @badtile(%q: memref<1x1x8x8xf32>) {
  // expected-error @+1 {{tile: expected 1..4096, got 0}}
  sattn.attention %q, %q, %q, %q {spec = #sattn.dense<>, sattn.tile = 0 : i64} : memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>, memref<1x1x8x8xf32>
  return
}
