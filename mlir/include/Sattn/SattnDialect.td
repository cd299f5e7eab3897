// The sattn dialect: sparse attention as a first-class operation, with one attribute per
// attention spec of docs/contract.md, and the tile-level ops that the passes lower it through.
#ifndef SATTN_DIALECT_TD
#define SATTN_DIALECT_TD

include "mlir/IR/OpBase.td"

def Sattn_Dialect : Dialect {
  let name = "sattn";
  let cppNamespace = "::mlir::sattn";
  let summary = "Sparse attention specs, block plans and their lowering to RVV and RoCC";
  let description = [{
    `sattn.attention` carries a spec attribute (`#sattn.dense`, `#sattn.sliding_window`,
    `#sattn.block_topk`, `#sattn.bigbird`, `#sattn.topk_per_query`). The passes pick a spec
    (`--sattn-select-spec`), compute its block plan (`--sattn-materialize-indices`), tile the
    attention over the plan (`--sattn-tile`), fuse scores/softmax/PV (`--sattn-fuse-softmax`)
    and lower to vector code or RoCC driver calls. See docs/mlir.md.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

class Sattn_Op<string mnemonic, list<Trait> traits = []> :
    Op<Sattn_Dialect, mnemonic, traits>;

#endif  // SATTN_DIALECT_TD
