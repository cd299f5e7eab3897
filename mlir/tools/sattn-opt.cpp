// sattn-opt: mlir-opt with the sattn dialect and passes, plus the upstream dialects and
// passes the sattn pipelines lower through.
#include "Sattn/SattnDialect.h"
#include "Sattn/SattnPasses.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  // Every upstream pass, so lit tests and users can mix sattn passes with any of them.
  mlir::registerAllPasses();
  mlir::sattn::registerSattnPasses();
  mlir::sattn::registerSattnPipelines();

  mlir::DialectRegistry registry;
  registry.insert<mlir::sattn::SattnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                  mlir::memref::MemRefDialect, mlir::scf::SCFDialect, mlir::vector::VectorDialect,
                  mlir::math::MathDialect, mlir::cf::ControlFlowDialect, mlir::LLVM::LLVMDialect>();
  return mlir::asMainReturnCode(mlir::MlirOptMain(argc, argv, "sattn optimizer driver\n", registry));
}
