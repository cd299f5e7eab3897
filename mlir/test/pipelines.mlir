// RUN: sattn-opt %s --sattn-rvv-pipeline | FileCheck %s
// RUN: sattn-opt %s --sattn-rvv-pipeline="profile=rvv fuse=false vector-width=16" | FileCheck %s --check-prefix=UNFUSED

// The whole RVV pipeline: select a spec, materialise its plan, tile, fuse, lower, LLVM dialect.
// CHECK-LABEL: llvm.func @auto
// CHECK: llvm.call @sattn_rt_plan_build
// CHECK: llvm.intr.vector.reduce.fadd
// CHECK: llvm.func @_mlir_ciface_auto
// CHECK-NOT: sattn.
// UNFUSED-LABEL: llvm.func @auto
// UNFUSED: vector<16xf32>
func.func @auto(%q: memref<1x1x1024x64xf32>, %o: memref<1x1x1024x64xf32>) attributes {llvm.emit_c_interface} {
  sattn.attention %q, %q, %q, %o {density = 0.125 : f64} : memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>, memref<1x1x1024x64xf32>
  return
}
