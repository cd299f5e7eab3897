// sattn passes (SattnPasses.td) and the pipelines sattn-opt registers.
#ifndef SATTN_SATTNPASSES_H
#define SATTN_SATTNPASSES_H

#include "Sattn/SattnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
namespace sattn {

#define GEN_PASS_DECL
#include "Sattn/SattnPasses.h.inc"

#define GEN_PASS_REGISTRATION
#include "Sattn/SattnPasses.h.inc"

// Registers --sattn-to-llvm (upstream conversions to the LLVM dialect) and the end-to-end
// pipelines --sattn-rvv-pipeline and --sattn-rocc-pipeline (docs/mlir.md).
void registerSattnPipelines();

}  // namespace sattn
}  // namespace mlir

#endif  // SATTN_SATTNPASSES_H
