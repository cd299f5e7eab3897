// --sattn-tile and --sattn-fuse-softmax.
//
// Tiling turns sattn.block_sparse_attention into loops over (batch, query head, query block)
// and the CSR entries of that block's plan row; each entry is one key-block tile processed by
// tile_scores -> tile_softmax (online softmax) -> tile_pv on block-sized scratch buffers.
// Fusion merges that three-op sequence into sattn.tile_fused, whose lowering keeps one score
// row instead of a block x block tile and keeps q and the acc row in registers.
#include "Sattn/SattnPasses.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace sattn {
#define GEN_PASS_DEF_SATTNTILE
#define GEN_PASS_DEF_SATTNFUSESOFTMAX
#include "Sattn/SattnPasses.h.inc"

namespace {

Value cIdx(OpBuilder &b, Location loc, int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }

Value loadIndex(OpBuilder &b, Location loc, Value mem, Value i) {
  Value x = b.create<memref::LoadOp>(loc, mem, i);
  return b.create<arith::IndexCastOp>(loc, b.getIndexType(), x);  // sign-extends: -1 stays -1
}

struct TilePass : impl::SattnTileBase<TilePass> {
  void runOnOperation() override {
    SmallVector<BlockSparseAttentionOp> ops;
    getOperation().walk([&](BlockSparseAttentionOp op) { ops.push_back(op); });
    for (auto op : ops) tile(op);
  }

  void tile(BlockSparseAttentionOp op) {
    OpBuilder b(op);
    Location loc = op.getLoc();
    MemRefType qt = op.getQ().getType(), kt = op.getK().getType();
    ::sattn::Shape sh = shapeOf(qt, kt);
    const int64_t blk = op.getBlock();
    PlanGeometry g = planGeometry(sh, blk);
    Type f32 = b.getF32Type();
    // Scratch on the heap: a block x block f32 tile can be larger than a thread's stack.
    auto align = b.getI64IntegerAttr(64);
    Value acc = b.create<memref::AllocOp>(loc, MemRefType::get({blk, sh.D}, f32), align);
    Value m = b.create<memref::AllocOp>(loc, MemRefType::get({blk}, f32), align);
    Value l = b.create<memref::AllocOp>(loc, MemRefType::get({blk}, f32), align);
    Value s = b.create<memref::AllocOp>(loc, MemRefType::get({blk, blk}, f32), align);
    Value c0 = cIdx(b, loc, 0), c1 = cIdx(b, loc, 1);
    const int64_t group = sh.Hq / sh.Hkv;
    auto blockAttr = op.getBlockAttr();
    auto bLoop = b.create<scf::ForOp>(loc, c0, cIdx(b, loc, sh.B), c1);
    b.setInsertionPointToStart(bLoop.getBody());
    Value bi = bLoop.getInductionVar();
    auto hLoop = b.create<scf::ForOp>(loc, c0, cIdx(b, loc, sh.Hq), c1);
    b.setInsertionPointToStart(hLoop.getBody());
    Value hi = hLoop.getInductionVar();
    Value kvh = b.create<arith::DivUIOp>(loc, hi, cIdx(b, loc, group));
    // First plan row of (b, h): ((plan_b == 1 ? 0 : b) * plan_h + (plan_h == 1 ? 0 : h)) * n_q.
    Value pb = op.getPlanB() == 1 ? c0 : bi;
    Value ph = op.getPlanH() == 1 ? c0 : hi;
    Value rowBase = b.create<arith::MulIOp>(
        loc, b.create<arith::AddIOp>(loc, b.create<arith::MulIOp>(loc, pb, cIdx(b, loc, op.getPlanH())), ph),
        cIdx(b, loc, g.nQBlocks));
    auto rLoop = b.create<scf::ForOp>(loc, c0, cIdx(b, loc, g.nQBlocks), c1);
    b.setInsertionPointToStart(rLoop.getBody());
    Value r = rLoop.getInductionVar();
    Value qblock = b.create<arith::AddIOp>(loc, r, cIdx(b, loc, g.qBlockBegin));
    Value row = b.create<arith::AddIOp>(loc, rowBase, r);
    b.create<TileInitOp>(loc, acc, m, l);
    Value start = loadIndex(b, loc, op.getRowPtr(), row);
    Value end = loadIndex(b, loc, op.getRowPtr(), b.create<arith::AddIOp>(loc, row, c1));
    auto eLoop = b.create<scf::ForOp>(loc, start, end, c1);
    b.setInsertionPointToStart(eLoop.getBody());
    Value e = eLoop.getInductionVar();
    Value kblock = loadIndex(b, loc, op.getColIdx(), e);
    Value mask = loadIndex(b, loc, op.getMaskIdx(), e);
    b.create<TileScoresOp>(loc, op.getQ(), op.getK(), op.getBitmaps(), s, bi, hi, kvh, qblock, kblock, mask,
                           blockAttr, op.getScaleAttr());
    b.create<TileSoftmaxOp>(loc, s, m, l, acc);
    b.create<TilePVOp>(loc, s, op.getV(), acc, bi, kvh, kblock, blockAttr);
    b.setInsertionPointAfter(eLoop);
    b.create<TileStoreOp>(loc, acc, l, op.getOut(), bi, hi, qblock, blockAttr, b.getI64IntegerAttr(sh.Lk));
    b.setInsertionPointAfter(bLoop);
    for (Value buf : {acc, m, l, s}) b.create<memref::DeallocOp>(loc, buf);
    op.erase();
  }
};

struct FuseSoftmaxPass : impl::SattnFuseSoftmaxBase<FuseSoftmaxPass> {
  void runOnOperation() override {
    SmallVector<TileScoresOp> candidates;
    getOperation().walk([&](TileScoresOp op) { candidates.push_back(op); });
    for (TileScoresOp scores : candidates) {
      auto softmax = dyn_cast_or_null<TileSoftmaxOp>(scores->getNextNode());
      if (!softmax || softmax.getS() != scores.getS()) continue;
      auto pv = dyn_cast_or_null<TilePVOp>(softmax->getNextNode());
      if (!pv || pv.getP() != scores.getS() || pv.getAcc() != softmax.getAcc()) continue;
      if (pv.getBlock() != scores.getBlock()) continue;
      // The score tile must be private to this sequence (plus its alloc/dealloc): otherwise
      // someone reads the probabilities the fused op no longer writes.
      Value s = scores.getS();
      bool privateTile = llvm::all_of(s.getUsers(), [&](Operation *u) {
        return u == scores || u == softmax || u == pv || isa<memref::DeallocOp>(u);
      });
      if (!privateTile) continue;
      OpBuilder b(scores);
      b.create<TileFusedOp>(scores.getLoc(), scores.getQ(), scores.getK(), pv.getV(), scores.getBitmaps(),
                            softmax.getM(), softmax.getL(), softmax.getAcc(), scores.getB(), scores.getH(),
                            scores.getKvh(), scores.getQblock(), scores.getKblock(), scores.getMask(),
                            scores.getBlockAttr(), scores.getScaleAttr());
      pv.erase();
      softmax.erase();
      scores.erase();
      // Drop the block x block buffer when nothing but its dealloc is left.
      if (auto alloc = s.getDefiningOp<memref::AllocOp>()) {
        if (llvm::all_of(s.getUsers(), [](Operation *u) { return isa<memref::DeallocOp>(u); })) {
          for (Operation *u : llvm::make_early_inc_range(s.getUsers())) u->erase();
          alloc.erase();
        }
      }
    }
  }
};

}  // namespace
}  // namespace sattn
}  // namespace mlir
