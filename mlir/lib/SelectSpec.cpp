// --sattn-select-spec: picks a spec for sattn.attention ops that have none, by the cost model
// of Sattn/CostModel.h (docs/mlir.md), for the target profile given as a pass option.
#include "Sattn/CostModel.h"
#include "Sattn/SattnPasses.h"

#include <cmath>

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace sattn {
#define GEN_PASS_DEF_SATTNSELECTSPEC
#include "Sattn/SattnPasses.h.inc"

namespace {

struct SelectSpecPass : impl::SattnSelectSpecBase<SelectSpecPass> {
  using SattnSelectSpecBase::SattnSelectSpecBase;

  void runOnOperation() override {
    ::sattn::cost::Profile prof;
    if (!::sattn::cost::GetProfile(profile, &prof)) {
      getOperation().emitError() << "--sattn-select-spec: unknown profile '" << profile
                                 << "' (expected highperf, lowpower, rvv or rocc)";
      return signalPassFailure();
    }
    getOperation().walk([&](AttentionOp op) {
      if (op.getSpec()) return;  // the user's choice stands
      ::sattn::Shape sh = shapeOf(op.getQ().getType(), op.getK().getType());
      ::sattn::cost::Problem pr{sh.B, sh.Hq, sh.Hkv, sh.Lq, sh.Lk, sh.D, op.getCausal()};
      double keep = op.getDensity() ? op.getDensity()->convertToDouble() : 1.0;
      ::sattn::cost::Candidate best{};
      ::sattn::cost::Breakdown bestCost;
      bool have = false;
      for (const auto &c : ::sattn::cost::Grid(prof, pr, keep)) {
        ::sattn::cost::Breakdown b = ::sattn::cost::Predict(prof, pr, c);
        if (!have || b.total < bestCost.total) {
          best = c;
          bestCost = b;
          have = true;
        }
      }
      MLIRContext *ctx = op.getContext();
      ::sattn::Spec spec;
      spec.causal = op.getCausal();
      if (best.dense) {
        spec.kind = ::sattn::SpecKind::kDense;
      } else {
        spec.kind = ::sattn::SpecKind::kBlockTopK;
        spec.block = int32_t(best.block);
        spec.keep = best.keep;
      }
      OpBuilder b(ctx);
      op.setSpecAttr(attrFromSpec(ctx, spec));
      op->removeAttr(op.getDensityAttrName());
      op->removeAttr(op.getCausalAttrName());
      // The tile edge a dense spec should be planned with, and the prediction, for inspection.
      op->setAttr("sattn.tile", b.getI64IntegerAttr(best.block));
      op->setAttr("sattn.predicted_insns", b.getI64IntegerAttr(int64_t(std::llround(bestCost.total))));
      op->setAttr("sattn.profile", b.getStringAttr(prof.name));
    });
  }
};

}  // namespace
}  // namespace sattn
}  // namespace mlir
