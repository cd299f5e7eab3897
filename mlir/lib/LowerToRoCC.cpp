// --sattn-lower-to-rocc: sattn.block_sparse_attention -> RoCC driver calls.
//
// The accelerator (rtl/, interface in rtl/spec/commands.json) reads a 29-word descriptor:
// data pointers, plan arrays, shape and plan geometry. The generated code fills the plan and
// geometry words itself (everything the compiler knows), then hands the descriptor and the
// float32 buffers to the driver, which quantises q/k/v to int8, fills the data-pointer and
// scale words, issues SOFTMAX_FUSED and dequantises the output:
//
//   int32_t sattn_rocc_attention_f32(uint64_t *desc, const float *q, const float *k,
//                                    const float *v, float *out, int32_t Lq, double scale);
//
// A non-zero return (an ERR_* code of commands.json) reaches sattn_rocc_abort(code).
// Plans that are still sattn.build_plan are lowered by --sattn-lower-to-rvv's planner call, so
// the RoCC pipeline runs both passes (see --sattn-rocc-pipeline).
#include "Sattn/SattnPasses.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace sattn {
#define GEN_PASS_DEF_SATTNLOWERTOROCC
#include "Sattn/SattnPasses.h.inc"

namespace {

// Descriptor word indices, in the order of rtl/spec/commands.json "descriptor".
enum DescWord : int64_t {
  kRowPtr = 6, kColIdx = 7, kMaskIdx = 8, kBitmaps = 9,
  kB = 12, kHq = 13, kHkv = 14, kD = 15, kBlock = 16, kNKBlocks = 17, kPlanB = 18, kPlanH = 19,
  kQBlockBegin = 20, kNQBlocks = 21, kNnz = 22, kNBitmaps = 23, kLk = 24,
  kDescWords = 29,
};

constexpr int64_t kRoccMaxBlock = 64;  // MAX_BLK of commands.json; also a multiple of 16

struct LowerToRoCCPass : impl::SattnLowerToRoCCBase<LowerToRoCCPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The accelerator's command set has no backward; lowering it to host loops here would
    // silently run it off the accelerator.
    WalkResult grad = module.walk([&](BlockSparseAttentionGradOp op) {
      op.emitOpError() << "has no RoCC lowering (the accelerator computes the forward only); "
                          "compile the backward with --sattn-rvv-pipeline";
      return WalkResult::interrupt();
    });
    if (grad.wasInterrupted()) return signalPassFailure();
    SmallVector<BlockSparseAttentionOp> ops;
    module.walk([&](BlockSparseAttentionOp op) { ops.push_back(op); });
    for (auto op : ops)
      if (failed(lower(op, module))) return signalPassFailure();
  }

  void declare(ModuleOp module, StringRef name, FunctionType type) {
    if (module.lookupSymbol<func::FuncOp>(name)) return;
    OpBuilder mb(module.getContext());
    mb.setInsertionPointToEnd(module.getBody());
    mb.create<func::FuncOp>(module.getLoc(), name, type).setPrivate();
  }

  LogicalResult lower(BlockSparseAttentionOp op, ModuleOp module) {
    MemRefType qt = op.getQ().getType(), kt = op.getK().getType();
    ::sattn::Shape sh = shapeOf(qt, kt);
    const int64_t blk = op.getBlock();
    // The accelerator's limits, reported at compile time instead of as a run-time error code.
    if (blk % 16 != 0 || blk > kRoccMaxBlock)
      return op.emitOpError() << "block " << blk << " does not fit the RoCC accelerator (multiple of 16, <= "
                              << kRoccMaxBlock << ")";
    if (sh.D % 16 != 0 || sh.D > 128)
      return op.emitOpError() << "head_dim " << sh.D << " does not fit the RoCC accelerator (multiple of 16, <= 128)";
    PlanGeometry g = planGeometry(sh, blk);
    MLIRContext *ctx = op.getContext();
    OpBuilder b(op);
    Location loc = op.getLoc();
    Type i32 = b.getI32Type(), i64 = b.getI64Type(), ix = b.getIndexType(), f64 = b.getF64Type();
    declare(module, "sattn_rocc_attention_f32", FunctionType::get(ctx, {ix, ix, ix, ix, ix, i32, f64}, {i32}));
    declare(module, "sattn_rocc_abort", FunctionType::get(ctx, {i32}, {}));

    // 16-byte aligned descriptor (BUS_BYTES), zero-initialised.
    auto descType = MemRefType::get({kDescWords}, i64);
    Value desc = b.create<memref::AllocaOp>(loc, descType, b.getI64IntegerAttr(16));
    auto word = [&](int64_t i, Value v) {
      b.create<memref::StoreOp>(loc, v, desc, ValueRange{b.create<arith::ConstantIndexOp>(loc, i)});
    };
    auto c64 = [&](int64_t v) -> Value { return b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(v)); };
    auto ptr = [&](Value mem) -> Value {
      Value p = b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, mem);
      return b.create<arith::IndexCastOp>(loc, i64, p);
    };
    for (int64_t i = 0; i < kDescWords; ++i) word(i, c64(0));
    word(kRowPtr, ptr(op.getRowPtr()));
    word(kColIdx, ptr(op.getColIdx()));
    word(kMaskIdx, ptr(op.getMaskIdx()));
    word(kBitmaps, ptr(op.getBitmaps()));
    word(kB, c64(sh.B));
    word(kHq, c64(sh.Hq));
    word(kHkv, c64(sh.Hkv));
    word(kD, c64(sh.D));
    word(kBlock, c64(blk));
    word(kNKBlocks, c64(g.nKBlocks));
    word(kPlanB, c64(op.getPlanB()));
    word(kPlanH, c64(op.getPlanH()));
    word(kQBlockBegin, c64(g.qBlockBegin));
    word(kNQBlocks, c64(g.nQBlocks));
    // nnz = row_ptr[rows]; n_bitmaps = |bitmaps| / block (words_per_row is 1 for block <= 64).
    Value rows = b.create<arith::ConstantIndexOp>(loc, op.getPlanB() * op.getPlanH() * g.nQBlocks);
    Value nnz = b.create<memref::LoadOp>(loc, op.getRowPtr(), rows);
    word(kNnz, b.create<arith::ExtSIOp>(loc, i64, nnz));
    Value nbits = b.create<memref::DimOp>(loc, op.getBitmaps(), 0);
    nbits = b.create<arith::DivUIOp>(loc, nbits, b.create<arith::ConstantIndexOp>(loc, blk));
    word(kNBitmaps, b.create<arith::IndexCastOp>(loc, i64, nbits));
    word(kLk, c64(sh.Lk));

    auto idxPtr = [&](Value mem) -> Value { return b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, mem); };
    Value code = b.create<func::CallOp>(
                      loc, "sattn_rocc_attention_f32", TypeRange{i32},
                      ValueRange{idxPtr(desc), idxPtr(op.getQ()), idxPtr(op.getK()), idxPtr(op.getV()),
                                 idxPtr(op.getOut()),
                                 b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(sh.Lq)),
                                 b.create<arith::ConstantOp>(loc, b.getF64FloatAttr(op.getScale().convertToDouble()))})
                     .getResult(0);
    Value bad = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, code,
                                        b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(0)));
    auto ifOp = b.create<scf::IfOp>(loc, TypeRange{}, bad, /*withElse=*/false);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    b.create<func::CallOp>(loc, "sattn_rocc_abort", TypeRange{}, ValueRange{code});
    op.erase();
    return success();
  }
};

}  // namespace
}  // namespace sattn
}  // namespace mlir
