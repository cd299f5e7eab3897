// sattn passes. docs/mlir.md describes the pipeline and the select-spec cost model.
#ifndef SATTN_PASSES_TD
#define SATTN_PASSES_TD

include "mlir/Pass/PassBase.td"

def SattnSelectSpec : Pass<"sattn-select-spec", "::mlir::ModuleOp"> {
  let summary = "Pick spec and parameters (block, keep) for sattn.attention ops without a spec";
  let description = [{
    For every `sattn.attention` without `spec`, evaluates a cost model (docs/mlir.md) over
    dense and block_topk with block in {16, 32, 64, 128} at the op's `density` (the kept
    fraction of key blocks the user asks for), for the target profile, and attaches the
    cheapest spec plus a `sattn.predicted_cost` attribute (model units: instructions).
  }];
  let options = [
    Option<"profile", "profile", "std::string", /*default=*/"\"rvv\"",
           "Target profile: highperf, lowpower, rvv or rocc">,
  ];
}

def SattnMaterializeIndices : Pass<"sattn-materialize-indices", "::mlir::ModuleOp"> {
  let summary = "sattn.attention -> sattn.build_plan + sattn.block_sparse_attention";
  let description = [{
    Rewrites each `sattn.attention` (which must have a spec) into a block plan computation and
    an attention over that plan. Plans that do not depend on the data (dense, sliding_window,
    bigbird) are computed now with the shared planner (//cc:planner) and emitted as
    `memref.global` constants; block_topk and topk_per_query keep a `sattn.build_plan`.
  }];
  let options = [
    Option<"tile", "tile", "int64_t", /*default=*/"64",
           "Tile edge for specs without a block of their own (dense, sliding_window, topk_per_query)">,
    Option<"foldConstantPlans", "fold-constant-plans", "bool", /*default=*/"true",
           "Fold data-independent plans into constants">,
  ];
  let dependentDialects = ["::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect"];
}

def SattnTile : Pass<"sattn-tile", "::mlir::func::FuncOp"> {
  let summary = "Tile sattn.block_sparse_attention over the plan's blocks";
  let description = [{
    Emits scf loops over (batch, query head, query block) and the plan entries of the row, with
    tile_init / tile_scores / tile_softmax / tile_pv / tile_store on block-sized scratch buffers.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

def SattnFuseSoftmax : Pass<"sattn-fuse-softmax", "::mlir::func::FuncOp"> {
  let summary = "Fuse tile_scores, tile_softmax and tile_pv into sattn.tile_fused";
  let description = [{
    Matches the three-op sequence on one score tile whose buffer has no other use, replaces it
    by `sattn.tile_fused` and drops the block x block score buffer.
  }];
}

def SattnLowerToRVV : Pass<"sattn-lower-to-rvv", "::mlir::ModuleOp"> {
  let summary = "Lower sattn tile ops and build_plan to scf/vector/arith/math/memref + runtime calls";
  let description = [{
    Tile ops become loops over fixed-length vectors along D (`vector-width` f32 lanes: the
    default 64 is one LMUL=8 register group at VLEN=256; LLVM splits wider-than-register vectors,
    so the code is correct at any VLEN >= 128), exp is an inline range-reduced polynomial so
    it vectorises (over 16-lane chunks of the score row), and the remaining `sattn.build_plan` ops
    become calls of `sattn_rt_plan_*` (mlir/runtime), which wrap the shared C++ planner. The
    result goes through the standard LLVM conversions (`--sattn-to-llvm`) and
    clang --target=riscv64-linux-gnu -march=rv64gcv_zvl256b (or rv64gcv for VLEN 128).
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"64",
           "f32 lanes per vector operation along D (64 = one LMUL=8 group at VLEN=256); "
           "with scalable=true, lanes per vscale (16 = LMUL=8)">,
    Option<"scalable", "scalable", "bool", /*default=*/"false",
           "Vector-length agnostic: vector<[vector-width]xf32> chunks; each tile op's code is "
           "specialised for vscale 2, 4, 8 and 16 (VLEN 128..1024) behind a switch on vscale, "
           "with a generic run-time-masked copy for other VLENs">,
    Option<"minVlen", "min-vlen", "int64_t", /*default=*/"128",
           "Smallest VLEN the scalable code must run on (sets the static chunk count)">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::vector::VectorDialect",
                           "::mlir::math::MathDialect", "::mlir::func::FuncDialect"];
}

def SattnLowerToRoCC : Pass<"sattn-lower-to-rocc", "::mlir::ModuleOp"> {
  let summary = "Lower sattn.block_sparse_attention and build_plan to RoCC driver calls";
  let description = [{
    Each attention over a plan becomes descriptor set-up plus commands through the RoCC
    driver's C API (`sattn_rocc_*`, see docs/mlir.md): one descriptor holding the q/k/v/out
    addresses, shape, scale and plan arrays, then `sattn_rocc_run` and `sattn_rocc_wait`.
  }];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif  // SATTN_PASSES_TD
