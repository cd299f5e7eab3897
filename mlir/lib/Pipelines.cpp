// Named pipelines of sattn-opt (docs/mlir.md):
//   --sattn-to-llvm        the upstream conversions from scf/vector/math/memref/arith/func to
//                          the LLVM dialect, ready for mlir-translate --mlir-to-llvmir;
//   --sattn-rvv-pipeline   sattn.attention -> LLVM dialect through the RVV lowering;
//   --sattn-rocc-pipeline  sattn.attention -> LLVM dialect through RoCC driver calls.
#include "Sattn/SattnPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

namespace mlir {
namespace sattn {
namespace {

constexpr const char *kToLLVM =
    "canonicalize,cse,convert-scf-to-cf,convert-vector-to-llvm,convert-math-to-llvm,"
    "expand-strided-metadata,finalize-memref-to-llvm,convert-arith-to-llvm,convert-func-to-llvm,"
    "convert-cf-to-llvm,reconcile-unrealized-casts";

struct PipelineOptions : public PassPipelineOptions<PipelineOptions> {
  Option<std::string> profile{*this, "profile", llvm::cl::desc("select-spec profile"), llvm::cl::init("rvv")};
  Option<int64_t> vectorWidth{*this, "vector-width", llvm::cl::desc("f32 lanes along D"), llvm::cl::init(64)};
  Option<bool> fuse{*this, "fuse", llvm::cl::desc("run --sattn-fuse-softmax"), llvm::cl::init(true)};
  Option<bool> scalable{*this, "scalable", llvm::cl::desc("scalable (VLA) vectors along D"), llvm::cl::init(false)};
  Option<int64_t> minVlen{*this, "min-vlen", llvm::cl::desc("smallest VLEN for scalable code"), llvm::cl::init(128)};
};

void addToLLVM(OpPassManager &pm) {
  if (failed(parsePassPipeline(kToLLVM, pm))) llvm::report_fatal_error("sattn: bad built-in pipeline");
}

}  // namespace

void registerSattnPipelines() {
  PassPipelineRegistration<>("sattn-to-llvm", "Upstream conversions to the LLVM dialect", addToLLVM);
  PassPipelineRegistration<PipelineOptions>(
      "sattn-rvv-pipeline", "sattn.attention to LLVM dialect through the RVV lowering",
      [](OpPassManager &pm, const PipelineOptions &o) {
        pm.addPass(createSattnSelectSpec(SattnSelectSpecOptions{o.profile}));
        pm.addPass(createSattnMaterializeIndices());
        pm.addNestedPass<func::FuncOp>(createSattnTile());
        if (o.fuse) pm.addNestedPass<func::FuncOp>(createSattnFuseSoftmax());
        pm.addPass(createSattnLowerToRVV(SattnLowerToRVVOptions{o.vectorWidth, o.scalable, o.minVlen}));
        addToLLVM(pm);
      });
  PassPipelineRegistration<PipelineOptions>(
      "sattn-rocc-pipeline", "sattn.attention to LLVM dialect through RoCC driver calls",
      [](OpPassManager &pm, const PipelineOptions &o) {
        pm.addPass(createSattnSelectSpec(SattnSelectSpecOptions{"rocc"}));
        pm.addPass(createSattnMaterializeIndices());
        pm.addPass(createSattnLowerToRoCC());
        pm.addPass(createSattnLowerToRVV(SattnLowerToRVVOptions{o.vectorWidth}));  // build_plan calls
        addToLLVM(pm);
      });
}

}  // namespace sattn
}  // namespace mlir
