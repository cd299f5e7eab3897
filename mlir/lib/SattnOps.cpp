// Verifiers of the sattn ops. Problem shapes are checked with the contract's own
// sattn::ValidateShape so the diagnostics name the same arguments as the runtime errors.
#include "Sattn/SattnDialect.h"

#include <cmath>
#include <tuple>

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::sattn;

#define GET_OP_CLASSES
#include "Sattn/SattnOps.cpp.inc"

namespace {

// Generated code indexes q/k/v/out with fixed strides, so they must be static, row-major.
LogicalResult checkDense4(Operation *op, StringRef name, MemRefType t) {
  if (!t.hasStaticShape())
    return op->emitOpError() << "operand '" << name << "' must have a static shape, got " << t;
  if (!t.getLayout().isIdentity())
    return op->emitOpError() << "operand '" << name << "' must have the identity (row-major) layout, got " << t;
  return success();
}

// q (B,Hq,Lq,D) and k/v (B,Hkv,Lk,D) agree with each other and with the contract.
LogicalResult checkProblem(Operation *op, MemRefType q, MemRefType k, MemRefType v, MemRefType out) {
  if (failed(checkDense4(op, "q", q)) || failed(checkDense4(op, "k", k))) return failure();
  if (v && failed(checkDense4(op, "v", v))) return failure();
  if (out && failed(checkDense4(op, "out", out))) return failure();
  if (k.getDimSize(0) != q.getDimSize(0))
    return op->emitOpError() << "k: batch " << k.getDimSize(0) << " differs from q's " << q.getDimSize(0);
  if (k.getDimSize(3) != q.getDimSize(3))
    return op->emitOpError() << "k: head_dim " << k.getDimSize(3) << " differs from q's " << q.getDimSize(3);
  if (v && v.getShape() != k.getShape())
    return op->emitOpError() << "v: shape must equal k's (" << k << "), got " << v;
  if (out && out.getShape() != q.getShape())
    return op->emitOpError() << "out: shape must equal q's (" << q << "), got " << out;
  ::sattn::Status st = ::sattn::ValidateShape(shapeOf(q, k));
  if (!st.ok()) return op->emitOpError() << "invalid shape: " << st.message;
  return success();
}

LogicalResult checkScale(Operation *op, std::optional<APFloat> scaleAttr) {
  if (!scaleAttr) return success();
  double scale = scaleAttr->convertToDouble();
  if (!(scale > 0.0 && std::isfinite(scale)))
    return op->emitOpError() << "scale: expected a finite value > 0, got " << scale;
  return success();
}

LogicalResult checkBlock(Operation *op, int64_t block) {
  if (block < 1 || block > 4096) return op->emitOpError() << "block: expected 1..4096, got " << block;
  return success();
}

LogicalResult checkVector(Operation *op, StringRef name, MemRefType t, int64_t n) {
  if (t.getDimSize(0) != n)
    return op->emitOpError() << name << ": expected " << n << " elements (the block), got " << t;
  return success();
}

LogicalResult checkMatrix(Operation *op, StringRef name, MemRefType t, int64_t rows, int64_t cols) {
  if (t.getDimSize(0) != rows || t.getDimSize(1) != cols)
    return op->emitOpError() << name << ": expected " << rows << "x" << cols << ", got " << t;
  return success();
}

// The gradient operands of a backward op: dout and dq like q, dk and dv like k, lse (B, Hq, Lq).
LogicalResult checkGrad(Operation *op, MemRefType q, MemRefType k, MemRefType lse, MemRefType dout, MemRefType dq,
                        MemRefType dk, MemRefType dv) {
  for (auto [name, t, like] : {std::make_tuple("dout", dout, q), std::make_tuple("dq", dq, q),
                               std::make_tuple("dk", dk, k), std::make_tuple("dv", dv, k)}) {
    if (failed(checkDense4(op, name, t))) return failure();
    if (t.getShape() != like.getShape())
      return op->emitOpError() << name << ": shape must equal " << (like == q ? "q" : "k") << "'s (" << like
                               << "), got " << t;
  }
  if (!lse.hasStaticShape() || !lse.getLayout().isIdentity())
    return op->emitOpError() << "operand 'lse' must have a static shape and the identity layout, got " << lse;
  if (lse.getShape() != q.getShape().take_front(3))
    return op->emitOpError() << "lse: expected shape (B, Hq, Lq) = " << q.getDimSize(0) << "x" << q.getDimSize(1)
                             << "x" << q.getDimSize(2) << ", got " << lse;
  return success();
}

// Plan operands and attributes of an attention over a plan (forward or backward).
LogicalResult checkPlan(Operation *op, MemRefType q, MemRefType k, int64_t block, int64_t planB, int64_t planH,
                        MemRefType rowPtr, MemRefType colIdx, MemRefType maskIdx) {
  if (failed(checkBlock(op, block))) return failure();
  if (planB != 1 && planB != q.getDimSize(0))
    return op->emitOpError() << "plan_b: expected 1 or B=" << q.getDimSize(0) << ", got " << planB;
  if (planH != 1 && planH != q.getDimSize(1))
    return op->emitOpError() << "plan_h: expected 1 or Hq=" << q.getDimSize(1) << ", got " << planH;
  PlanGeometry g = planGeometry(shapeOf(q, k), block);
  int64_t rows = planB * planH * g.nQBlocks;
  int64_t n = rowPtr.getDimSize(0);
  if (!ShapedType::isDynamic(n) && n != rows + 1)
    return op->emitOpError() << "row_ptr: expected plan_b*plan_h*n_q_blocks+1 = " << rows + 1
                             << " elements, got " << n;
  auto c = colIdx.getDimSize(0), m = maskIdx.getDimSize(0);
  if (!ShapedType::isDynamic(c) && !ShapedType::isDynamic(m) && c != m)
    return op->emitOpError() << "mask_idx: expected one entry per col_idx entry (" << c << "), got " << m;
  return success();
}

}  // namespace

LogicalResult AttentionOp::verify() {
  if (failed(checkProblem(*this, getQ().getType(), getK().getType(), getV().getType(), getOut().getType())))
    return failure();
  if (failed(checkScale(*this, getScale()))) return failure();
  if (getSpec() && (getDensity() || getCausal()))
    return emitOpError() << "'density' and 'causal' ask --sattn-select-spec to choose a spec; "
                            "drop them or drop 'spec'";
  if (auto da = getDensity()) {
    double d = da->convertToDouble();
    if (!(d > 0.0 && d <= 1.0)) return emitOpError() << "density: expected a value in (0, 1], got " << d;
  }
  return success();
}

LogicalResult BuildPlanOp::verify() {
  if (failed(checkProblem(*this, getQ().getType(), getK().getType(), {}, {}))) return failure();
  if (failed(checkScale(*this, getScale())) || failed(checkBlock(*this, getBlockAttr().getInt()))) return failure();
  ::sattn::Spec spec = *specFromAttr(getSpec());
  if (planBlock(spec, getBlockAttr().getInt()) != getBlockAttr().getInt())
    return emitOpError() << "block: " << getBlockAttr().getInt() << " differs from the spec's block " << spec.block;
  return success();
}

LogicalResult BlockSparseAttentionOp::verify() {
  MemRefType q = getQ().getType(), k = getK().getType();
  if (failed(checkProblem(*this, q, k, getV().getType(), getOut().getType()))) return failure();
  if (failed(checkScale(*this, getScale()))) return failure();
  return checkPlan(*this, q, k, getBlockAttr().getInt(), getPlanBAttr().getInt(), getPlanHAttr().getInt(),
                   getRowPtr().getType(), getColIdx().getType(), getMaskIdx().getType());
}

LogicalResult AttentionGradOp::verify() {
  MemRefType q = getQ().getType(), k = getK().getType();
  if (failed(checkProblem(*this, q, k, getV().getType(), getOut().getType()))) return failure();
  if (failed(checkScale(*this, getScale()))) return failure();
  return checkGrad(*this, q, k, getLse().getType(), getDout().getType(), getDq().getType(), getDk().getType(),
                   getDv().getType());
}

LogicalResult BlockSparseAttentionGradOp::verify() {
  MemRefType q = getQ().getType(), k = getK().getType();
  if (failed(checkProblem(*this, q, k, getV().getType(), getOut().getType()))) return failure();
  if (failed(checkScale(*this, getScale()))) return failure();
  if (failed(checkGrad(*this, q, k, getLse().getType(), getDout().getType(), getDq().getType(),
                       getDk().getType(), getDv().getType())))
    return failure();
  return checkPlan(*this, q, k, getBlockAttr().getInt(), getPlanBAttr().getInt(), getPlanHAttr().getInt(),
                   getRowPtr().getType(), getColIdx().getType(), getMaskIdx().getType());
}

LogicalResult TileInitOp::verify() {
  MemRefType acc = getAcc().getType();
  if (failed(checkVector(*this, "m", getM().getType(), acc.getDimSize(0))) ||
      failed(checkVector(*this, "l", getL().getType(), acc.getDimSize(0))))
    return failure();
  return success();
}

LogicalResult TileScoresOp::verify() {
  if (failed(checkProblem(*this, getQ().getType(), getK().getType(), {}, {})) ||
      failed(checkScale(*this, getScale())) || failed(checkBlock(*this, getBlockAttr().getInt())))
    return failure();
  return checkMatrix(*this, "s", getS().getType(), getBlockAttr().getInt(), getBlockAttr().getInt());
}

LogicalResult TileSoftmaxOp::verify() {
  MemRefType s = getS().getType();
  int64_t blk = s.getDimSize(0);
  if (failed(checkMatrix(*this, "s", s, blk, blk)) || failed(checkVector(*this, "m", getM().getType(), blk)) ||
      failed(checkVector(*this, "l", getL().getType(), blk)))
    return failure();
  if (getAcc().getType().getDimSize(0) != blk)
    return emitOpError() << "acc: expected " << blk << " rows, got " << getAcc().getType();
  return success();
}

LogicalResult TilePVOp::verify() {
  if (failed(checkBlock(*this, getBlockAttr().getInt())) || failed(checkDense4(*this, "v", getV().getType()))) return failure();
  int64_t d = getV().getType().getDimSize(3);
  if (failed(checkMatrix(*this, "p", getP().getType(), getBlockAttr().getInt(), getBlockAttr().getInt())) ||
      failed(checkMatrix(*this, "acc", getAcc().getType(), getBlockAttr().getInt(), d)))
    return failure();
  return success();
}

LogicalResult TileStoreOp::verify() {
  MemRefType out = getOut().getType();
  if (failed(checkBlock(*this, getBlockAttr().getInt())) || failed(checkDense4(*this, "out", out))) return failure();
  if (getLkAttr().getInt() < out.getDimSize(2))
    return emitOpError() << "lk: expected >= Lq=" << out.getDimSize(2) << ", got " << getLkAttr().getInt();
  if (failed(checkMatrix(*this, "acc", getAcc().getType(), getBlockAttr().getInt(), out.getDimSize(3))) ||
      failed(checkVector(*this, "l", getL().getType(), getBlockAttr().getInt())))
    return failure();
  return success();
}

LogicalResult TileFusedOp::verify() {
  if (failed(checkProblem(*this, getQ().getType(), getK().getType(), getV().getType(), {})) ||
      failed(checkScale(*this, getScale())) || failed(checkBlock(*this, getBlockAttr().getInt())))
    return failure();
  int64_t d = getQ().getType().getDimSize(3);
  if (failed(checkMatrix(*this, "acc", getAcc().getType(), getBlockAttr().getInt(), d)) ||
      failed(checkVector(*this, "m", getM().getType(), getBlockAttr().getInt())) ||
      failed(checkVector(*this, "l", getL().getType(), getBlockAttr().getInt())))
    return failure();
  return success();
}
