// libFuzzer harness for what `sattn-opt` does with untrusted MLIR text: parse it with the sattn
// dialect (and the upstream dialects sattn-opt registers) loaded, verify it, and run one of the
// sattn pipelines on what verifies. Invariants: nothing crashes, and every pass that succeeds
// leaves IR that verifies (a pass producing invalid IR aborts: that is a bug in the pass).
//
// The pipeline is chosen by a hash of the input, so one corpus file always takes the same path
// (a crash reproduces) while the corpus as a whole covers the four lowerings sattn-opt offers:
// fused 64-lane RVV, unfused 8-lane RVV with run-time plans, vector-length-agnostic RVV and RoCC,
// each followed by --sattn-to-llvm.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "Sattn/SattnDialect.h"
#include "Sattn/SattnPasses.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassInstrumentation.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace {

// The same pipelines a user reaches through sattn-opt's command line (on the module).
constexpr const char *kPipelines[] = {
    "sattn-rvv-pipeline",
    "sattn-select-spec{profile=lowpower},sattn-materialize-indices{fold-constant-plans=false},"
    "func.func(sattn-tile),sattn-lower-to-rvv{vector-width=8},sattn-to-llvm",
    "sattn-rvv-pipeline{scalable=true vector-width=16}",
    "sattn-rocc-pipeline",
};

// After every pass that reports success, the IR must verify.
struct VerifyAfterEachPass : mlir::PassInstrumentation {
  void runAfterPass(mlir::Pass *pass, mlir::Operation *op) override {
    if (mlir::failed(mlir::verify(op))) {
      std::fprintf(stderr, "sattn_opt_fuzz: pass '%s' succeeded but left IR that does not verify\n",
                   pass->getArgument().str().c_str());
      std::abort();
    }
  }
};

mlir::DialectRegistry *registry = nullptr;

}  // namespace

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
// LLVM's BumpPtrAllocator (header code, so instantiated in our sanitised objects as well as in
// libMLIR) poisons each new slab and unpoisons each allocation, but only where it was compiled
// with ASan: a slab our copy started and libMLIR's uninstrumented copy then allocates from stays
// poisoned, and libMLIR's next memcpy of it reports a use-after-poison that is no bug. Manual
// poisoning is therefore off in this mixed process; ASan's own redzones stay on.
extern "C" const char *__asan_default_options() { return "allow_user_poisoning=0"; }
#endif
#endif

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  // The upstream passes the sattn pipelines run (not all of InitAllPasses.h, which alone takes
  // minutes to compile).
  mlir::registerTransformsPasses();
  mlir::registerConversionPasses();
  mlir::memref::registerMemRefPasses();
  mlir::sattn::registerSattnPasses();
  mlir::sattn::registerSattnPipelines();
  registry = new mlir::DialectRegistry();
  registry->insert<mlir::sattn::SattnDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect,
                   mlir::memref::MemRefDialect, mlir::scf::SCFDialect, mlir::vector::VectorDialect,
                   mlir::math::MathDialect, mlir::cf::ControlFlowDialect, mlir::LLVM::LLVMDialect>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!registry) LLVMFuzzerInitialize(nullptr, nullptr);
  // The MLIR lexer relies on a NUL after the buffer; std::string provides one.
  const std::string text(reinterpret_cast<const char *>(data), size);
  // A fresh context per input: nothing carries over between inputs (attributes are uniqued in
  // the context and would otherwise grow without bound).
  mlir::MLIRContext ctx(*registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();
  // Diagnostics are expected (most mutations do not parse): swallow them.
  mlir::ScopedDiagnosticHandler quiet(&ctx, [](mlir::Diagnostic &) { return mlir::success(); });

  mlir::ParserConfig config(&ctx);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceString<mlir::ModuleOp>(text, config);
  if (!module) return 0;
  if (mlir::failed(mlir::verify(*module))) return 0;

  uint32_t h = 2166136261u;  // FNV-1a
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
  mlir::PassManager pm(&ctx);
  pm.enableVerifier(false);  // the instrumentation verifies, and aborts instead of failing
  pm.addInstrumentation(std::make_unique<VerifyAfterEachPass>());
  if (mlir::failed(mlir::parsePassPipeline(kPipelines[h % 4], pm))) {
    std::fprintf(stderr, "sattn_opt_fuzz: built-in pipeline %u does not parse\n", h % 4);
    std::abort();
  }
  (void)pm.run(*module);  // a pass may reject the input; it must not crash
  return 0;
}
