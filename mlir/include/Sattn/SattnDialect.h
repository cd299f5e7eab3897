// The sattn dialect, its spec attributes and ops (generated from the .td files beside this).
#ifndef SATTN_SATTNDIALECT_H
#define SATTN_SATTNDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "sattn/spec.h"

#include "Sattn/SattnDialect.h.inc"

namespace mlir {
namespace sattn {
// Field parsers used by the generated attribute parsers (SattnAttrs.td).
FailureOr<bool> parseBoolKeyword(AsmParser &parser);
FailureOr<llvm::APFloat> parseDoubleLiteral(AsmParser &parser);
}  // namespace sattn
}  // namespace mlir

#define GET_ATTRDEF_CLASSES
#include "Sattn/SattnAttrs.h.inc"

#define GET_OP_CLASSES
#include "Sattn/SattnOps.h.inc"

namespace mlir {
namespace sattn {

// The C++ spec (cc/include/sattn/spec.h) of a spec attribute; failure if `attr` is not one.
FailureOr<::sattn::Spec> specFromAttr(Attribute attr);
// The spec attribute of a C++ spec.
Attribute attrFromSpec(MLIRContext *ctx, const ::sattn::Spec &spec);
// True for specs whose plan reads q and k (block_topk, topk_per_query).
bool isDataDependent(const ::sattn::Spec &spec);
// The plan's tile edge for `spec`: its own block, else `tile`.
int64_t planBlock(const ::sattn::Spec &spec, int64_t tile);

// Shape of an attention problem from q and k memref types (B, Hq, Hkv, Lq, Lk, D).
::sattn::Shape shapeOf(MemRefType q, MemRefType k);

// Plan geometry (plan.h) for a shape and tile edge.
struct PlanGeometry {
  int64_t block, qBlockBegin, nQBlocks, nKBlocks, wordsPerRow;
};
PlanGeometry planGeometry(const ::sattn::Shape &shape, int64_t block);

}  // namespace sattn
}  // namespace mlir

#endif  // SATTN_SATTNDIALECT_H
