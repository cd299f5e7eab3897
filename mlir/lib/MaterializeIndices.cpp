// --sattn-materialize-indices: sattn.attention -> block plan + sattn.block_sparse_attention, and
// sattn.attention_grad -> the same plan + sattn.block_sparse_attention_grad.
//
// Data-independent plans (dense, sliding_window, bigbird) are built here, at compile time, by
// the same shared planner every backend uses (//cc:planner), and emitted as constant globals:
// the generated code then carries no selection logic at all. Data-dependent plans stay as
// sattn.build_plan, which lowers to a run-time call of that planner.
#include <cmath>

#include "Sattn/SattnPasses.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "sattn/plan.h"

namespace mlir {
namespace sattn {
#define GEN_PASS_DEF_SATTNMATERIALIZEINDICES
#include "Sattn/SattnPasses.h.inc"

namespace {

// A private constant memref.global holding `values`, read back as memref<?xT>.
// (A module pass: it adds globals to the module.)
template <typename T>
Value constantArray(OpBuilder &b, Location loc, SymbolTable &symbols, const std::string &name, Type elem,
                    ArrayRef<T> values) {
  auto type = MemRefType::get({int64_t(values.size())}, elem);
  auto tensorType = RankedTensorType::get({int64_t(values.size())}, elem);
  DenseElementsAttr init = DenseElementsAttr::get(tensorType, values);
  OpBuilder mb(b.getContext());  // detached: the symbol table inserts it, renaming on collision
  auto global = mb.create<memref::GlobalOp>(loc, name, mb.getStringAttr("private"), type, init,
                                            /*constant=*/true, mb.getI64IntegerAttr(64));
  symbols.insert(global);
  Value v = b.create<memref::GetGlobalOp>(loc, type, global.getSymName());
  return b.create<memref::CastOp>(loc, MemRefType::get({ShapedType::kDynamic}, elem), v);
}

struct MaterializeIndicesPass : impl::SattnMaterializeIndicesBase<MaterializeIndicesPass> {
  using SattnMaterializeIndicesBase::SattnMaterializeIndicesBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    planCount = 0;
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<AttentionOp, AttentionGradOp>(op)) ops.push_back(op);
    });
    for (Operation *op : ops) {
      LogicalResult r = isa<AttentionOp>(op) ? rewrite(cast<AttentionOp>(op), symbols)
                                             : rewrite(cast<AttentionGradOp>(op), symbols);
      if (failed(r)) return signalPassFailure();
    }
  }

  int64_t planCount = 0;

  // The plan of an attention op (forward or backward: the backward walks the forward's plan).
  struct Plan {
    Value rowPtr, colIdx, maskIdx, bitmaps;
    int64_t planB = 1, planH = 1, block = 0;
    double scale = 0;
  };

  LogicalResult rewrite(AttentionOp op, SymbolTable &symbols) {
    if (!op.getSpec())
      return op.emitOpError() << "has no spec; run --sattn-select-spec first or give 'spec'";
    Plan p;
    if (failed(plan(op, *op.getSpec(), op.getScale(), op.getQ(), op.getK(), symbols, &p))) return failure();
    OpBuilder b(op);
    b.create<BlockSparseAttentionOp>(op.getLoc(), op.getQ(), op.getK(), op.getV(), p.rowPtr, p.colIdx, p.maskIdx,
                                     p.bitmaps, op.getOut(), b.getI64IntegerAttr(p.block),
                                     b.getI64IntegerAttr(p.planB), b.getI64IntegerAttr(p.planH),
                                     b.getF64FloatAttr(p.scale));
    op.erase();
    return success();
  }

  LogicalResult rewrite(AttentionGradOp op, SymbolTable &symbols) {
    Plan p;
    if (failed(plan(op, op.getSpec(), op.getScale(), op.getQ(), op.getK(), symbols, &p))) return failure();
    OpBuilder b(op);
    b.create<BlockSparseAttentionGradOp>(op.getLoc(), op.getQ(), op.getK(), op.getV(), op.getOut(), op.getLse(),
                                         op.getDout(), p.rowPtr, p.colIdx, p.maskIdx, p.bitmaps, op.getDq(),
                                         op.getDk(), op.getDv(), b.getI64IntegerAttr(p.block),
                                         b.getI64IntegerAttr(p.planB), b.getI64IntegerAttr(p.planH),
                                         b.getF64FloatAttr(p.scale));
    op.erase();
    return success();
  }

  LogicalResult plan(Operation *op, Attribute specAttr, std::optional<APFloat> scaleAttr, Value q, Value k,
                     SymbolTable &symbols, Plan *out) {
    ::sattn::Spec spec = *specFromAttr(specAttr);
    MemRefType qt = cast<MemRefType>(q.getType()), kt = cast<MemRefType>(k.getType());
    ::sattn::Shape shape = shapeOf(qt, kt);
    int64_t t = tile;
    if (auto a = op->getAttrOfType<IntegerAttr>("sattn.tile")) t = a.getInt();
    if (t < 1 || t > 4096) return op->emitOpError() << "tile: expected 1..4096, got " << t;
    const int64_t block = planBlock(spec, t);
    const double scale = scaleAttr ? scaleAttr->convertToDouble() : 1.0 / std::sqrt(double(shape.D));
    out->block = block;
    out->scale = scale;

    OpBuilder b(op);
    Location loc = op->getLoc();
    if (isDataDependent(spec) || !foldConstantPlans) {
      auto i32v = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
      auto i64v = MemRefType::get({ShapedType::kDynamic}, b.getI64Type());
      auto plan = b.create<BuildPlanOp>(loc, TypeRange{i32v, i32v, i32v, i64v}, q, k, specAttr,
                                        b.getI64IntegerAttr(block), b.getF64FloatAttr(scale));
      out->rowPtr = plan.getRowPtr();
      out->colIdx = plan.getColIdx();
      out->maskIdx = plan.getMaskIdx();
      out->bitmaps = plan.getBitmaps();
      if (isDataDependent(spec)) {
        out->planB = shape.B;
        out->planH = shape.Hq;
      }
    } else {
      ::sattn::PlanOptions opts;
      opts.tile = int32_t(t);
      opts.scale = scale;
      opts.num_threads = 1;
      ::sattn::BlockPlan plan;
      ::sattn::Status st = ::sattn::BuildPlan(spec, shape, nullptr, nullptr, opts, &plan);
      if (!st.ok()) return op->emitOpError() << "planner: " << st.message;
      out->planB = plan.plan_b;
      out->planH = plan.plan_h;
      std::vector<int64_t> bits(plan.bitmaps.begin(), plan.bitmaps.end());
      std::string base = "__sattn_plan" + std::to_string(planCount++) + "_";
      out->rowPtr = constantArray<int32_t>(b, loc, symbols, base + "row_ptr", b.getI32Type(), plan.row_ptr);
      out->colIdx = constantArray<int32_t>(b, loc, symbols, base + "col_idx", b.getI32Type(), plan.col_idx);
      out->maskIdx = constantArray<int32_t>(b, loc, symbols, base + "mask_idx", b.getI32Type(), plan.mask_idx);
      out->bitmaps = constantArray<int64_t>(b, loc, symbols, base + "bitmaps", b.getI64Type(), bits);
    }
    return success();
  }
};

}  // namespace
}  // namespace sattn
}  // namespace mlir
