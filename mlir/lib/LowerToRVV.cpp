// --sattn-lower-to-rvv: sattn tile ops -> scf/vector/arith/math/memref, sattn.build_plan ->
// calls of the runtime planner (mlir/runtime/sattn_rt.cc).
//
// Vectorisation is along the head dimension D in chunks of `vector-width` f32 lanes (default 64:
// one LMUL=8 register group at VLEN=256, so a D=64 row is one load and one FMA), unrolled
// statically so q, the acc row and the score accumulators stay in vector registers across the
// key loop; key-direction work (exp, row sums) runs over the score row in 16-lane chunks. exp is
// an inline polynomial (Emitter::exp), so it vectorises instead of calling libm once per key.
// Masked entries (mask >= 0) test one bitmap bit per pair; the unmasked case gets its own copy
// of the key loop so it pays nothing for masks.
// Scalable (VLA) code is specialised per vscale; where a D row would fill at most half a group,
// unmasked fused tiles work along keys instead (lowerFused, emitPVRow).
#include <algorithm>
#include <cmath>
#include <limits>

#include "Sattn/SattnPasses.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace sattn {
#define GEN_PASS_DEF_SATTNLOWERTORVV
#include "Sattn/SattnPasses.h.inc"

namespace {

// Vector shape along D: `lanes` f32 per chunk, or `lanes` x vscale when scalable (then the
// static chunk count assumes the smallest vscale, `minVscale`, and every chunk is masked at run
// time, so one binary uses all lanes of whatever VLEN it runs on).
struct VecConfig {
  int64_t lanes;
  bool scalable;
  int64_t minVscale;
  // When scalable: the vscale this copy of the code is specialised for (0: any vscale >= minVscale).
  // A specialised copy has static chunk starts and masks only on a chunk that crosses D.
  int64_t exactVscale = 0;
  // The op's head dimension. A specialised copy whose chunk (lanes x vscale) would be wider than
  // D halves `lanes` until it is not (e.g. vector<[8]xf32>, LMUL 4, for D = 64 at VLEN 512):
  // a D row is then whole registers, with no mask and no half-empty group.
  int64_t headDim = 0;
  // Set in a specialised copy where a D row would fill at most half of a `lanes` x vscale group:
  // the fused tile then computes scores along keys (lowerFused).
  bool keyDir = false;
  int64_t fullLanes = 0;  // `lanes` before the halving above
};

// vscale values (VLEN / 64) that get a specialised copy of each tile op's code: VLEN 128, 256,
// 512 and 1024. Every other VLEN runs the generic masked copy.
constexpr int64_t kSpecialisedVscales[] = {2, 4, 8, 16};

// The narrowest scalable f32 vector the halving of `lanes` below goes to: vector<[2]xf32> is one
// whole register (LMUL 1). vector<[1]xf32> (fractional LMUL) gave wrong outputs in e2e_test's
// D = 8 and D = 16 cases at VLEN 512 and 1024 (clang 19 + QEMU 7.2; which of the two is at fault
// is not isolated), so it is never used.
constexpr int64_t kMinLanes = 2;

// Builds the vector code of one tile op at the op's position.
class Emitter {
 public:
  Emitter(Operation *op, VecConfig cfg) : Emitter(OpBuilder(op), op->getLoc(), cfg) {}
  Emitter(OpBuilder builder, Location l, VecConfig cfg)
      : b(builder), loc(l), W(cfg.lanes), scalable(cfg.scalable), minVscale(cfg.minVscale),
        exact(cfg.scalable ? cfg.exactVscale : 0), keyDir(cfg.keyDir), fullLanes(cfg.fullLanes) {
    // Anchor before everything this emitter creates: hoisted chunk starts/masks go above it.
    if (scalable && !exact) top = b.create<arith::ConstantIndexOp>(loc, 0);
    f32 = b.getF32Type();
    vt = VectorType::get({W}, f32, {scalable});
  }
  int64_t numChunks(int64_t D) const {
    const int64_t per = exact ? W * exact : scalable ? W * minVscale : W;
    return (D + per - 1) / per;
  }

  Value idx(int64_t v) { return b.create<arith::ConstantIndexOp>(loc, v); }
  Value f(double v) { return b.create<arith::ConstantOp>(loc, b.getF32FloatAttr(float(v))); }
  Value negInf() { return f(-std::numeric_limits<double>::infinity()); }
  Value add(Value x, Value y) { return b.create<arith::AddIOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<arith::SubIOp>(loc, x, y); }
  Value mul(Value x, Value y) { return b.create<arith::MulIOp>(loc, x, y); }
  Value minI(Value x, Value y) { return b.create<arith::MinSIOp>(loc, x, y); }
  Value maxI(Value x, Value y) { return b.create<arith::MaxSIOp>(loc, x, y); }
  Value splat(Value s) { return b.create<vector::BroadcastOp>(loc, vt, s); }

  // Chunk c of a D-long row starting at indices (last index = c * W); masked past D.
  // Start of chunk c along D, and its run-time mask when scalable. Both are built once, at the
  // tile op's position (outside the loops its lowering creates), and reused by every access.
  Value chunkStart(int64_t c) {
    if (!scalable) return idx(c * W);
    if (exact) return idx(c * W * exact);
    prepare(c);
    return starts[c];
  }
  Value scalableMask(Value start, int64_t D) {
    for (size_t c = 0; c < starts.size(); ++c)
      if (starts[c] == start && maskD == D) return masks[c];
    return b.create<vector::CreateMaskOp>(loc, VectorType::get({W}, b.getI1Type(), {true}),
                                          ValueRange{sub(idx(D), start)});
  }
  void prepare(int64_t c) {
    while (int64_t(starts.size()) <= c) {
      OpBuilder::InsertionGuard g(b);
      if (top) b.setInsertionPoint(top);
      int64_t k = int64_t(starts.size());
      Value st = mul(b.create<vector::VectorScaleOp>(loc), idx(k * W));
      starts.push_back(st);
      masks.push_back(b.create<vector::CreateMaskOp>(loc, VectorType::get({W}, b.getI1Type(), {true}),
                                                     ValueRange{sub(idx(maskD), st)}));
    }
  }
  SmallVector<Value> starts, masks;
  int64_t maskD = 0;
  Operation *top = nullptr;
  // A specialised scalable copy: chunk c holds W * exact lanes at a static start.
  Value exactMask(int64_t c, int64_t D) {
    return b.create<vector::CreateMaskOp>(loc, VectorType::get({W}, b.getI1Type(), {true}),
                                          ValueRange{idx(D - c * W * exact)});
  }
  Value loadChunk(Value mem, SmallVector<Value> ix, int64_t c, int64_t D) {
    if (exact) {
      ix.back() = add(ix.back(), idx(c * W * exact));
      if ((c + 1) * W * exact <= D) return b.create<vector::LoadOp>(loc, vt, mem, ix);
      return b.create<vector::MaskedLoadOp>(loc, vt, mem, ix, exactMask(c, D), splat(f(0)));
    }
    if (scalable) {
      if (maskD == 0) maskD = D;  // every access of one tile op has the same D
      Value start = chunkStart(c);
      ix.back() = add(ix.back(), start);
      return b.create<vector::MaskedLoadOp>(loc, vt, mem, ix, scalableMask(start, D), splat(f(0)));
    }
    ix.back() = add(ix.back(), idx(c * W));
    if ((c + 1) * W <= D) return b.create<vector::LoadOp>(loc, vt, mem, ix);
    Value mask = b.create<vector::CreateMaskOp>(loc, VectorType::get({W}, b.getI1Type()), ValueRange{idx(D - c * W)});
    return b.create<vector::MaskedLoadOp>(loc, vt, mem, ix, mask, splat(f(0)));
  }
  void storeChunk(Value v, Value mem, SmallVector<Value> ix, int64_t c, int64_t D) {
    if (exact) {
      ix.back() = add(ix.back(), idx(c * W * exact));
      if ((c + 1) * W * exact <= D) b.create<vector::StoreOp>(loc, v, mem, ix);
      else b.create<vector::MaskedStoreOp>(loc, mem, ix, exactMask(c, D), v);
      return;
    }
    if (scalable) {
      if (maskD == 0) maskD = D;
      Value start = chunkStart(c);
      ix.back() = add(ix.back(), start);
      b.create<vector::MaskedStoreOp>(loc, mem, ix, scalableMask(start, D), v);
      return;
    }
    ix.back() = add(ix.back(), idx(c * W));
    if ((c + 1) * W <= D) {
      b.create<vector::StoreOp>(loc, v, mem, ix);
      return;
    }
    Value mask = b.create<vector::CreateMaskOp>(loc, VectorType::get({W}, b.getI1Type()), ValueRange{idx(D - c * W)});
    b.create<vector::MaskedStoreOp>(loc, mem, ix, mask, v);
  }
  SmallVector<Value> loadRow(Value mem, SmallVector<Value> ix, int64_t D) {
    SmallVector<Value> out;
    for (int64_t c = 0; c < numChunks(D); ++c) out.push_back(loadChunk(mem, ix, c, D));
    return out;
  }
  void storeRow(ArrayRef<Value> row, Value mem, SmallVector<Value> ix, int64_t D) {
    for (int64_t c = 0; c < int64_t(row.size()); ++c) storeChunk(row[c], mem, ix, c, D);
  }
  Value reduceAdd(Value v) {
    return b.create<vector::ReductionOp>(loc, vector::CombiningKind::ADD, v, arith::FastMathFlags::reassoc);
  }
  Value dot(ArrayRef<Value> x, ArrayRef<Value> y) {
    Value acc = b.create<arith::MulFOp>(loc, x[0], y[0]);
    for (size_t c = 1; c < x.size(); ++c) acc = b.create<vector::FMAOp>(loc, x[c], y[c], acc);
    return reduceAdd(acc);
  }
  // A scalar constant, or its splat when `like` is a vector.
  Value cst(Value like, double v) {
    Value c = f(v);
    if (auto vt2 = dyn_cast<VectorType>(like.getType())) return b.create<vector::SplatOp>(loc, vt2, c);
    return c;
  }
  Value icst(Value like, int32_t v) {
    Value c = b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(v));
    if (auto vt2 = dyn_cast<VectorType>(like.getType()))
      return b.create<vector::SplatOp>(loc, VectorType::get(vt2.getShape(), b.getI32Type(), vt2.getScalableDims()),
                                       c);
    return c;
  }
  // exp(x) for f32 scalars or vectors: x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-6
  // Taylor polynomial (relative error < 2e-7), 2^n by building the exponent bits. n is rounded
  // with the 1.5*2^23 trick instead of fptosi: QEMU 7.2 crashes on vfcvt.rtz.x.f.v in some
  // translation blocks, and this form is shorter anyway. Inputs are clamped to [-87, 88].
  Value exp(Value x) {
    Type it = x.getType();
    if (auto vt2 = dyn_cast<VectorType>(it))
      it = VectorType::get(vt2.getShape(), b.getI32Type(), vt2.getScalableDims());
    else it = b.getI32Type();
    x = b.create<arith::MaxNumFOp>(loc, x, cst(x, -87.0));
    x = b.create<arith::MinNumFOp>(loc, x, cst(x, 88.0));
    Value magic = cst(x, 12582912.0);  // 1.5 * 2^23
    Value t = b.create<math::FmaOp>(loc, x, cst(x, 1.4426950408889634), magic);
    Value n = b.create<arith::SubFOp>(loc, t, magic);  // round(x / ln2) as a float
    Value r = b.create<math::FmaOp>(loc, n, cst(x, -0.693145751953125), x);
    r = b.create<math::FmaOp>(loc, n, cst(x, -1.428606765330187e-06), r);
    Value p = cst(x, 1.0 / 720);
    for (double c : {1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0}) p = b.create<math::FmaOp>(loc, p, r, cst(x, c));
    // The low mantissa bits of t hold n (+ 2^22 from the magic): bits(t) - bits(magic) = n.
    Value ni = b.create<arith::SubIOp>(loc, b.create<arith::BitcastOp>(loc, it, t),
                                       b.create<arith::BitcastOp>(loc, it, magic));
    Value e2 = b.create<arith::ShLIOp>(loc, b.create<arith::AddIOp>(loc, ni, icst(x, 127)), icst(x, 23));
    return b.create<arith::MulFOp>(loc, p, b.create<arith::BitcastOp>(loc, x.getType(), e2));
  }
  // exp(x - ref), exactly 0 where x is -inf (so fully masked rows keep l = 0).
  Value expShifted(Value x, Value ref) {
    bool vec = isa<VectorType>(x.getType());
    Value r = vec ? b.create<vector::SplatOp>(loc, cast<VectorType>(x.getType()), ref) : ref;
    Value e = exp(b.create<arith::SubFOp>(loc, x, r));
    Value isNinf = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ, x, cst(x, -INFINITY));
    Value zero = cst(x, 0.0);
    return b.create<arith::SelectOp>(loc, isNinf, zero, e);
  }
  // Is key j of the block visible to query row i under bitmap `mask` (>= 0)?
  Value bitVisible(Value bitmaps, Value mask, Value i, Value j, int64_t blk, int64_t wpr) {
    Value word = add(mul(add(mul(mask, idx(blk)), i), idx(wpr)), b.create<arith::DivUIOp>(loc, j, idx(64)));
    Value bits = b.create<memref::LoadOp>(loc, bitmaps, word);
    Value sh = b.create<arith::IndexCastOp>(loc, b.getI64Type(), b.create<arith::RemUIOp>(loc, j, idx(64)));
    Value one = b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(1));
    Value bit = b.create<arith::AndIOp>(loc, b.create<arith::ShRUIOp>(loc, bits, sh), one);
    return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, bit, b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(0)));
  }

  // Geometry of a query block: valid rows [lo, hi) of the tile, and the q row of tile row 0.
  struct Rows {
    Value lo, hi, qRow0;
  };
  Rows queryRows(Value qblock, int64_t blk, int64_t Lq, int64_t Lk) {
    Value p0 = mul(qblock, idx(blk));
    Value qFirst = idx(Lk - Lq);
    Rows r;
    r.lo = sub(maxI(p0, qFirst), p0);
    r.hi = sub(minI(add(p0, idx(blk)), idx(Lk)), p0);
    r.qRow0 = sub(p0, qFirst);  // may be negative; only rows >= lo are used
    return r;
  }
  Value keyCount(Value kblock, int64_t blk, int64_t Lk) {
    Value k0 = mul(kblock, idx(blk));
    return minI(idx(blk), sub(idx(Lk), k0));
  }

  OpBuilder b;
  Location loc;
  int64_t W;
  bool scalable;
  int64_t minVscale;
  int64_t exact;
  bool keyDir;
  int64_t fullLanes;
  Type f32;
  VectorType vt;
};

// scf.for lo..hi step 1 with iter args; body gets (builder at body, iv, iter args) and returns
// the yielded values.
scf::ForOp forLoop(Emitter &e, Value lo, Value hi, ValueRange init,
                   function_ref<SmallVector<Value>(Value, ValueRange)> body, int64_t step = 1) {
  auto loop = e.b.create<scf::ForOp>(e.loc, lo, hi, e.idx(step), init);
  OpBuilder::InsertionGuard guard(e.b);
  // Without iter args the builder already put an empty scf.yield in the body.
  if (init.empty()) e.b.setInsertionPoint(loop.getBody()->getTerminator());
  else e.b.setInsertionPointToStart(loop.getBody());
  SmallVector<Value> y = body(loop.getInductionVar(), loop.getRegionIterArgs());
  if (!init.empty()) e.b.create<scf::YieldOp>(e.loc, y);
  return loop;
}

// Emits `body` at `op`: once for fixed-length vectors; for scalable ones, as an scf.index_switch
// on vscale with a copy specialised for each of kSpecialisedVscales (static chunk starts, no
// masks on whole chunks, so each VLEN runs code as tight as a fixed-length build for it) and the
// generic masked copy as the default case, so one binary is right at every VLEN.
void versioned(Operation *op, VecConfig cfg, function_ref<void(Emitter &)> body) {
  if (!cfg.scalable) {
    Emitter e(op, cfg);
    body(e);
    return;
  }
  OpBuilder b(op);
  Location loc = op->getLoc();
  Value vs = b.create<vector::VectorScaleOp>(loc);
  SmallVector<int64_t> cases(std::begin(kSpecialisedVscales), std::end(kSpecialisedVscales));
  auto sw = b.create<scf::IndexSwitchOp>(loc, TypeRange{}, vs, cases, cases.size());
  auto fill = [&](Region &r, int64_t exact) {
    Block *blk = b.createBlock(&r);
    OpBuilder rb = OpBuilder::atBlockEnd(blk);
    auto y = rb.create<scf::YieldOp>(loc);
    rb.setInsertionPoint(y);
    VecConfig c = cfg;
    c.exactVscale = exact;
    c.fullLanes = c.lanes;
    c.keyDir = exact && c.headDim > 0 && c.lanes * exact >= 2 * c.headDim;
    if (exact && c.headDim > 0)
      while (c.lanes % 2 == 0 && c.lanes > kMinLanes && c.lanes * exact > c.headDim) c.lanes /= 2;
    Emitter e(rb, loc, c);
    body(e);
  };
  for (size_t i = 0; i < cases.size(); ++i) fill(sw.getCaseRegions()[i], cases[i]);
  fill(sw.getDefaultRegion(), 0);
}

void lowerInit(TileInitOp op, Emitter &e) {
  int64_t blk = op.getAcc().getType().getDimSize(0), D = op.getAcc().getType().getDimSize(1);
  forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value i, ValueRange) {
    SmallVector<Value> zeros(e.numChunks(D), e.splat(e.f(0)));
    e.storeRow(zeros, op.getAcc(), {i, e.idx(0)}, D);
    e.b.create<memref::StoreOp>(e.loc, e.negInf(), op.getM(), i);
    e.b.create<memref::StoreOp>(e.loc, e.f(0), op.getL(), i);
    return SmallVector<Value>{};
  });
}

// Scores of query row `qRow` against keys [0, nk) of key block `k0`, written to `dst[prefix.., j]`
// (-inf where hidden); returns the row max. `qv` is the scaled q row.
Value emitScoreRow(Emitter &e, ArrayRef<Value> qv, Value k, Value bitmaps, Value b, Value kvh, Value k0,
                   Value nk, Value mask, Value tileRow, int64_t blk, int64_t D, Value dst,
                   SmallVector<Value> prefix) {
  int64_t wpr = (blk + 63) / 64;
  auto body = [&](bool masked) {
    return forLoop(e, e.idx(0), nk, {e.negInf()}, [&](Value j, ValueRange it) {
      SmallVector<Value> kv = e.loadRow(k, {b, kvh, e.add(k0, j), e.idx(0)}, D);
      Value s = e.dot(qv, kv);
      if (masked)
        s = e.b.create<arith::SelectOp>(e.loc, e.bitVisible(bitmaps, mask, tileRow, j, blk, wpr), s, e.negInf());
      SmallVector<Value> ix = prefix;
      ix.push_back(j);
      e.b.create<memref::StoreOp>(e.loc, s, dst, ix);
      return SmallVector<Value>{e.b.create<arith::MaxNumFOp>(e.loc, it[0], s)};
    }).getResult(0);
  };
  Value unmasked = e.b.create<arith::CmpIOp>(e.loc, arith::CmpIPredicate::slt, mask, e.idx(0));
  auto ifOp = e.b.create<scf::IfOp>(e.loc, TypeRange{e.f32}, unmasked, /*withElse=*/true);
  {
    OpBuilder::InsertionGuard g(e.b);
    e.b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    e.b.create<scf::YieldOp>(e.loc, body(false));
    e.b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    e.b.create<scf::YieldOp>(e.loc, body(true));
  }
  // Keys past the end of Lk (ragged last block) score -inf.
  forLoop(e, nk, e.idx(blk), {}, [&](Value j, ValueRange) {
    SmallVector<Value> ix = prefix;
    ix.push_back(j);
    e.b.create<memref::StoreOp>(e.loc, e.negInf(), dst, ix);
    return SmallVector<Value>{};
  });
  return ifOp.getResult(0);
}

SmallVector<Value> scaledQ(Emitter &e, Value q, Value b, Value h, Value qRow, int64_t D, double scale) {
  SmallVector<Value> qv = e.loadRow(q, {b, h, qRow, e.idx(0)}, D);
  Value sc = e.splat(e.f(scale));
  for (Value &v : qv) v = e.b.create<arith::MulFOp>(e.loc, v, sc);
  return qv;
}

// Lanes along keys of the key-direction scores: the full group, halved while wider than a block.
int64_t keyLanes(Emitter &e, int64_t blk) {
  int64_t kw = e.fullLanes;
  while (kw % 2 == 0 && kw > kMinLanes && kw * e.exact > blk) kw /= 2;
  return kw;
}

// Online softmax of score row `row[prefix.., 0..blk)`: updates m[i], l[i], overwrites the row with
// probabilities, and returns alpha (the factor the acc row must be scaled by).
Value emitSoftmaxRow(Emitter &e, Value rowMax, Value m, Value l, Value i, Value row, SmallVector<Value> prefix,
                     int64_t blk) {
  Value mOld = e.b.create<memref::LoadOp>(e.loc, m, i);
  Value mNew = e.b.create<arith::MaxNumFOp>(e.loc, mOld, rowMax);
  // Reference point for exp: 0 while the row has seen no visible key (avoids -inf - -inf).
  Value none = e.b.create<arith::CmpFOp>(e.loc, arith::CmpFPredicate::OEQ, mNew, e.negInf());
  Value ref = e.b.create<arith::SelectOp>(e.loc, none, e.f(0), mNew);
  Value alpha = e.expShifted(mOld, ref);
  // p = exp(s - ref) over the row in chunks, plus their sum. The polynomial keeps ~6 vectors
  // live, so chunks are capped at 16 lanes (LMUL 2 at VLEN=256): wider ones spill.
  int64_t EW = std::min<int64_t>(e.W, 16);
  VectorType et = VectorType::get({EW}, e.f32);
  if (e.keyDir) {
    // Wide machines (the key-direction copies): vector<[kw]xf32> of at most LMUL 4, which the
    // polynomial's ~6 live vectors still fit, and at most a block's lanes.
    int64_t kw = std::min<int64_t>(keyLanes(e, blk), 8);
    et = VectorType::get({kw}, e.f32, {true});
    EW = kw * e.exact;
  }
  auto esplat = [&](Value x) -> Value { return e.b.create<vector::SplatOp>(e.loc, et, x); };
  int64_t full = blk / EW;
  Value vsum = esplat(e.f(0));
  if (full > 0) {
    vsum = forLoop(e, e.idx(0), e.idx(full * EW), {vsum}, [&](Value j, ValueRange it) {
      SmallVector<Value> ix = prefix;
      ix.push_back(j);
      Value s = e.b.create<vector::LoadOp>(e.loc, et, row, ix);
      Value ex = e.exp(e.b.create<arith::SubFOp>(e.loc, s, esplat(ref)));
      Value isNinf = e.b.create<arith::CmpFOp>(e.loc, arith::CmpFPredicate::OEQ, s, esplat(e.negInf()));
      Value p = e.b.create<arith::SelectOp>(e.loc, isNinf, esplat(e.f(0)), ex);
      e.b.create<vector::StoreOp>(e.loc, p, row, ix);
      return SmallVector<Value>{e.b.create<arith::AddFOp>(e.loc, it[0], p)};
    }, EW).getResult(0);
  }
  Value sum = e.reduceAdd(vsum);
  for (int64_t j = full * EW; j < blk; ++j) {  // static tail when blk % EW != 0
    SmallVector<Value> ix = prefix;
    ix.push_back(e.idx(j));
    Value p = e.expShifted(e.b.create<memref::LoadOp>(e.loc, row, ix), ref);
    e.b.create<memref::StoreOp>(e.loc, p, row, ix);
    sum = e.b.create<arith::AddFOp>(e.loc, sum, p);
  }
  Value lOld = e.b.create<memref::LoadOp>(e.loc, l, i);
  Value lNew = e.b.create<arith::AddFOp>(e.loc, e.b.create<arith::MulFOp>(e.loc, lOld, alpha), sum);
  e.b.create<memref::StoreOp>(e.loc, lNew, l, i);
  e.b.create<memref::StoreOp>(e.loc, mNew, m, i);
  return alpha;
}

// acc[i] = acc[i] * alpha + sum_j p[j] v[k0 + j] over keys [0, nk).
void emitPVRow(Emitter &e, Value acc, Value i, Value alpha, Value v, Value b, Value kvh, Value k0, Value nk,
               Value p, SmallVector<Value> prefix, int64_t D) {
  SmallVector<Value> a = e.loadRow(acc, {i, e.idx(0)}, D);
  if (alpha) {
    Value al = e.splat(alpha);
    for (Value &x : a) x = e.b.create<arith::MulFOp>(e.loc, x, al);
  }
  if (e.keyDir && a.size() == 1 && e.W * e.exact == D && 2 * D == e.fullLanes * e.exact) {
    // A full group holds exactly two V rows (D = 64 at VLEN 512): keys go in pairs, rows j and
    // j+1 in one load, times [p_j x D, p_j+1 x D]; the two halves of the sum fold at the end.
    VectorType wt = VectorType::get({e.fullLanes}, e.f32, {true});
    VectorType wm = VectorType::get({e.fullLanes}, e.b.getI1Type(), {true});
    auto wsplat = [&](Value x) -> Value { return e.b.create<vector::SplatOp>(e.loc, wt, x); };
    Value zero = wsplat(e.f(0));
    Value acc2 = e.b.create<vector::ScalableInsertOp>(e.loc, a[0], zero, e.b.getI64IntegerAttr(0));
    Value low = e.b.create<vector::CreateMaskOp>(e.loc, wm, ValueRange{e.idx(D)});
    auto vty = cast<MemRefType>(v.getType());
    int64_t Hkv = vty.getDimSize(1), Lk = vty.getDimSize(2);
    Value vf = e.b.create<memref::CollapseShapeOp>(e.loc, MemRefType::get({vty.getNumElements()}, e.f32), v,
                                                   ArrayRef<ReassociationIndices>{{0, 1, 2, 3}});
    Value vbase = e.mul(e.add(e.mul(e.add(e.mul(b, e.idx(Hkv)), kvh), e.idx(Lk)), k0), e.idx(D));
    auto pAt = [&](Value j) {
      SmallVector<Value> ix = prefix;
      ix.push_back(j);
      return e.b.create<memref::LoadOp>(e.loc, p, ix).getResult();
    };
    Value nEven = e.b.create<arith::AndIOp>(e.loc, nk, e.idx(~int64_t(1)));
    Value sum = forLoop(e, e.idx(0), nEven, {acc2}, [&](Value j, ValueRange it) {
      Value pp = e.b.create<arith::SelectOp>(e.loc, low, wsplat(pAt(j)), wsplat(pAt(e.add(j, e.idx(1)))));
      Value vv = e.b.create<vector::LoadOp>(e.loc, wt, vf, ValueRange{e.add(vbase, e.mul(j, e.idx(D)))});
      return SmallVector<Value>{e.b.create<vector::FMAOp>(e.loc, pp, vv, it[0])};
    }, 2).getResult(0);
    // An odd last key: its row alone, in the low half.
    Value odd = e.b.create<arith::CmpIOp>(e.loc, arith::CmpIPredicate::ne, nEven, nk);
    auto ifOp = e.b.create<scf::IfOp>(e.loc, TypeRange{wt}, odd, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g(e.b);
      e.b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      Value pp = e.b.create<arith::SelectOp>(e.loc, low, wsplat(pAt(nEven)), zero);
      Value vv = e.b.create<vector::MaskedLoadOp>(e.loc, wt, vf, ValueRange{e.add(vbase, e.mul(nEven, e.idx(D)))},
                                                  low, zero);
      e.b.create<scf::YieldOp>(e.loc, ValueRange{e.b.create<vector::FMAOp>(e.loc, pp, vv, sum)});
      e.b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      e.b.create<scf::YieldOp>(e.loc, ValueRange{sum});
    }
    Value s2 = ifOp.getResult(0);
    Value lo = e.b.create<vector::ScalableExtractOp>(e.loc, e.vt, s2, e.b.getI64IntegerAttr(0));
    Value hi = e.b.create<vector::ScalableExtractOp>(e.loc, e.vt, s2, e.b.getI64IntegerAttr(e.W));
    e.storeRow({e.b.create<arith::AddFOp>(e.loc, lo, hi)}, acc, {i, e.idx(0)}, D);
    return;
  }
  auto loop = forLoop(e, e.idx(0), nk, a, [&](Value j, ValueRange it) {
    SmallVector<Value> ix = prefix;
    ix.push_back(j);
    Value pj = e.splat(e.b.create<memref::LoadOp>(e.loc, p, ix));
    SmallVector<Value> vv = e.loadRow(v, {b, kvh, e.add(k0, j), e.idx(0)}, D);
    SmallVector<Value> out;
    for (size_t c = 0; c < vv.size(); ++c) out.push_back(e.b.create<vector::FMAOp>(e.loc, pj, vv[c], it[c]));
    return out;
  });
  e.storeRow(SmallVector<Value>(loop.getResults()), acc, {i, e.idx(0)}, D);
}

void lowerScores(TileScoresOp op, Emitter &e) {
  MemRefType qt = op.getQ().getType(), kt = op.getK().getType();
  int64_t blk = op.getBlock(), D = qt.getDimSize(3), Lq = qt.getDimSize(2), Lk = kt.getDimSize(2);
  Emitter::Rows rows = e.queryRows(op.getQblock(), blk, Lq, Lk);
  Value k0 = e.mul(op.getKblock(), e.idx(blk));
  Value nk = e.keyCount(op.getKblock(), blk, Lk);
  // Rows outside the query range score -inf everywhere (softmax then leaves them untouched).
  forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value i, ValueRange) {
    Value valid = e.b.create<arith::AndIOp>(
        e.loc, e.b.create<arith::CmpIOp>(e.loc, arith::CmpIPredicate::sge, i, rows.lo),
        e.b.create<arith::CmpIOp>(e.loc, arith::CmpIPredicate::slt, i, rows.hi));
    auto ifOp = e.b.create<scf::IfOp>(e.loc, TypeRange{}, valid, /*withElse=*/true);
    OpBuilder::InsertionGuard g(e.b);
    e.b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    SmallVector<Value> qv = scaledQ(e, op.getQ(), op.getB(), op.getH(), e.add(rows.qRow0, i), D,
                                    op.getScale().convertToDouble());
    emitScoreRow(e, qv, op.getK(), op.getBitmaps(), op.getB(), op.getKvh(), k0, nk, op.getMask(), i, blk, D,
                 op.getS(), {i});
    e.b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value j, ValueRange) {
      e.b.create<memref::StoreOp>(e.loc, e.negInf(), op.getS(), ValueRange{i, j});
      return SmallVector<Value>{};
    });
    return SmallVector<Value>{};
  });
}

void lowerSoftmax(TileSoftmaxOp op, Emitter &e) {
  int64_t blk = op.getS().getType().getDimSize(0), D = op.getAcc().getType().getDimSize(1);
  forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value i, ValueRange) {
    Value mx = forLoop(e, e.idx(0), e.idx(blk), {e.negInf()}, [&](Value j, ValueRange it) {
      Value s = e.b.create<memref::LoadOp>(e.loc, op.getS(), ValueRange{i, j});
      return SmallVector<Value>{e.b.create<arith::MaxNumFOp>(e.loc, it[0], s)};
    }).getResult(0);
    Value alpha = emitSoftmaxRow(e, mx, op.getM(), op.getL(), i, op.getS(), {i}, blk);
    SmallVector<Value> a = e.loadRow(op.getAcc(), {i, e.idx(0)}, D);
    for (Value &x : a) x = e.b.create<arith::MulFOp>(e.loc, x, e.splat(alpha));
    e.storeRow(a, op.getAcc(), {i, e.idx(0)}, D);
    return SmallVector<Value>{};
  });
}

void lowerPV(TilePVOp op, Emitter &e) {
  int64_t blk = op.getBlock(), D = op.getV().getType().getDimSize(3), Lk = op.getV().getType().getDimSize(2);
  Value k0 = e.mul(op.getKblock(), e.idx(blk));
  Value nk = e.keyCount(op.getKblock(), blk, Lk);
  forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value i, ValueRange) {
    emitPVRow(e, op.getAcc(), i, Value(), op.getV(), op.getB(), op.getKvh(), k0, nk, op.getP(), {i}, D);
    return SmallVector<Value>{};
  });
}

void lowerStore(TileStoreOp op, Emitter &e) {
  MemRefType ot = op.getOut().getType();
  int64_t blk = op.getBlock(), D = ot.getDimSize(3), Lq = ot.getDimSize(2), Lk = op.getLk();
  Emitter::Rows rows = e.queryRows(op.getQblock(), blk, Lq, Lk);
  forLoop(e, rows.lo, rows.hi, {}, [&](Value i, ValueRange) {
    Value l = e.b.create<memref::LoadOp>(e.loc, op.getL(), i);
    Value pos = e.b.create<arith::CmpFOp>(e.loc, arith::CmpFPredicate::OGT, l, e.f(0));
    Value inv = e.b.create<arith::SelectOp>(e.loc, pos, e.b.create<arith::DivFOp>(e.loc, e.f(1), l), e.f(0));
    SmallVector<Value> a = e.loadRow(op.getAcc(), {i, e.idx(0)}, D);
    for (Value &x : a) x = e.b.create<arith::MulFOp>(e.loc, x, e.splat(inv));
    e.storeRow(a, op.getOut(), {op.getB(), op.getH(), e.add(rows.qRow0, i), e.idx(0)}, D);
    return SmallVector<Value>{};
  });
}

// Key-direction scores for an unmasked tile: kt[d][j] = k[k0 + j][d] (strided gathers, once per
// tile), then per query row s[j] = scale * sum_d q[d] kt[d][j] with vectors along keys, so a
// register group holds as many keys as it has lanes instead of a half-empty D row.
struct KeyTile {
  int64_t kw, lanes, chunks;
  VectorType vt, mt;
  SmallVector<Value> masks;  // per chunk: lanes < nk
};

KeyTile emitKeyTranspose(Emitter &e, Value k, Value b, Value kvh, Value k0, Value nk, Value kt, int64_t blk,
                         int64_t D) {
  KeyTile t;
  t.kw = keyLanes(e, blk);
  t.lanes = t.kw * e.exact;
  t.chunks = (blk + t.lanes - 1) / t.lanes;
  t.vt = VectorType::get({t.kw}, e.f32, {true});
  t.mt = VectorType::get({t.kw}, e.b.getI1Type(), {true});
  auto kty = cast<MemRefType>(k.getType());
  int64_t Hkv = kty.getDimSize(1), Lk = kty.getDimSize(2), n = kty.getNumElements();
  Value kf = e.b.create<memref::CollapseShapeOp>(e.loc, MemRefType::get({n}, e.f32), k,
                                                 ArrayRef<ReassociationIndices>{{0, 1, 2, 3}});
  VectorType it = VectorType::get({t.kw}, e.b.getI32Type(), {true});
  Value step = e.b.create<arith::IndexCastOp>(
      e.loc, it, e.b.create<vector::StepOp>(e.loc, VectorType::get({t.kw}, e.b.getIndexType(), {true})));
  Value dv = e.b.create<vector::SplatOp>(
      e.loc, it, e.b.create<arith::ConstantOp>(e.loc, e.b.getI32IntegerAttr(int32_t(D))));
  // min(lane, nk): the same gathers (lanes >= nk are masked off), but the offsets depend on the
  // tile, so LLVM does not hoist them above the vscale switch, where their register group would
  // stay live (and cause spills) in every other VLEN's copy.
  Value nkv = e.b.create<vector::SplatOp>(e.loc, it, e.b.create<arith::IndexCastOp>(e.loc, e.b.getI32Type(), nk));
  Value offs = e.b.create<arith::MulIOp>(e.loc, e.b.create<arith::MinSIOp>(e.loc, step, nkv), dv);
  Value base = e.mul(e.add(e.mul(e.add(e.mul(b, e.idx(Hkv)), kvh), e.idx(Lk)), k0), e.idx(D));
  Value zero = e.b.create<vector::SplatOp>(e.loc, t.vt, e.f(0));
  for (int64_t c = 0; c < t.chunks; ++c) {
    t.masks.push_back(e.b.create<vector::CreateMaskOp>(e.loc, t.mt, ValueRange{e.sub(nk, e.idx(c * t.lanes))}));
    Value cbase = e.add(base, e.idx(c * t.lanes * D));
    forLoop(e, e.idx(0), e.idx(D), {}, [&](Value d, ValueRange) {
      Value g = e.b.create<vector::GatherOp>(e.loc, t.vt, kf, ValueRange{e.add(cbase, d)}, offs, t.masks[c], zero);
      e.b.create<vector::StoreOp>(e.loc, g, kt, ValueRange{d, e.idx(c * t.lanes)});
      return SmallVector<Value>{};
    });
  }
  return t;
}

// Scores of query row qRow from the transposed tile into srow[0, blk) (-inf past nk); the row max.
Value emitKeyScoreRow(Emitter &e, const KeyTile &t, Value q, Value b, Value h, Value qRow, Value kt, Value srow,
                      int64_t blk, int64_t D, double scale) {
  Value mx = e.negInf();
  Value ninf = e.b.create<vector::SplatOp>(e.loc, t.vt, e.negInf());
  for (int64_t c = 0; c < t.chunks; ++c) {
    Value acc = e.b.create<vector::SplatOp>(e.loc, t.vt, e.f(0));
    for (int64_t d = 0; d < D; ++d) {
      Value qd = e.b.create<memref::LoadOp>(e.loc, q, ValueRange{b, h, qRow, e.idx(d)});
      Value kr = e.b.create<vector::LoadOp>(e.loc, t.vt, kt, ValueRange{e.idx(d), e.idx(c * t.lanes)});
      acc = e.b.create<vector::FMAOp>(e.loc, e.b.create<vector::SplatOp>(e.loc, t.vt, qd), kr, acc);
    }
    Value sv = e.b.create<arith::MulFOp>(e.loc, acc, e.b.create<vector::SplatOp>(e.loc, t.vt, e.f(scale)));
    sv = e.b.create<arith::SelectOp>(e.loc, t.masks[c], sv, ninf);
    if ((c + 1) * t.lanes <= blk) {
      e.b.create<vector::StoreOp>(e.loc, sv, srow, ValueRange{e.idx(c * t.lanes)});
    } else {
      Value m = e.b.create<vector::CreateMaskOp>(e.loc, t.mt, ValueRange{e.idx(blk - c * t.lanes)});
      e.b.create<vector::MaskedStoreOp>(e.loc, srow, ValueRange{e.idx(c * t.lanes)}, m, sv);
    }
    Value cm = e.b.create<vector::ReductionOp>(e.loc, vector::CombiningKind::MAXNUMF, sv);
    mx = e.b.create<arith::MaxNumFOp>(e.loc, mx, cm);
  }
  return mx;
}

void lowerFused(TileFusedOp op, Emitter &e, Value srow, Value kt) {
  MemRefType qt = op.getQ().getType(), kty = op.getK().getType();
  int64_t blk = op.getBlock(), D = qt.getDimSize(3), Lq = qt.getDimSize(2), Lk = kty.getDimSize(2);
  Emitter::Rows rows = e.queryRows(op.getQblock(), blk, Lq, Lk);
  Value k0 = e.mul(op.getKblock(), e.idx(blk));
  Value nk = e.keyCount(op.getKblock(), blk, Lk);
  const double scale = op.getScale().convertToDouble();
  auto rowLoop = [&](const KeyTile *t) {
    forLoop(e, rows.lo, rows.hi, {}, [&](Value i, ValueRange) {
      Value qRow = e.add(rows.qRow0, i);
      Value mx;
      if (t) {
        mx = emitKeyScoreRow(e, *t, op.getQ(), op.getB(), op.getH(), qRow, kt, srow, blk, D, scale);
      } else {
        SmallVector<Value> qv = scaledQ(e, op.getQ(), op.getB(), op.getH(), qRow, D, scale);
        mx = emitScoreRow(e, qv, op.getK(), op.getBitmaps(), op.getB(), op.getKvh(), k0, nk, op.getMask(), i, blk,
                          D, srow, {});
      }
      Value alpha = emitSoftmaxRow(e, mx, op.getM(), op.getL(), i, srow, {}, blk);
      emitPVRow(e, op.getAcc(), i, alpha, op.getV(), op.getB(), op.getKvh(), k0, nk, srow, {}, D);
      return SmallVector<Value>{};
    });
  };
  if (!e.keyDir || !kt) {
    rowLoop(nullptr);
    return;
  }
  // Masked tiles keep the D-direction scores (their bitmap test is per key).
  Value unmasked = e.b.create<arith::CmpIOp>(e.loc, arith::CmpIPredicate::slt, op.getMask(), e.idx(0));
  auto ifOp = e.b.create<scf::IfOp>(e.loc, TypeRange{}, unmasked, /*withElse=*/true);
  OpBuilder::InsertionGuard g(e.b);
  e.b.setInsertionPoint(ifOp.getThenRegion().front().getTerminator());
  KeyTile t = emitKeyTranspose(e, op.getK(), op.getB(), op.getKvh(), k0, nk, kt, blk, D);
  rowLoop(&t);
  e.b.setInsertionPoint(ifOp.getElseRegion().front().getTerminator());
  rowLoop(nullptr);
}

// ---- Backward: sattn.block_sparse_attention_grad, lowered directly (no tile-level ops) ----

// dst (an identity-layout static 4-D memref) = 0, as one loop over its rows.
void zeroTensor(Emitter &e, Value mem) {
  auto t = cast<MemRefType>(mem.getType());
  int64_t rows = t.getDimSize(0) * t.getDimSize(1) * t.getDimSize(2), D = t.getDimSize(3);
  Value flat = e.b.create<memref::CollapseShapeOp>(e.loc, mem, ArrayRef<ReassociationIndices>{{0, 1, 2}, {3}});
  forLoop(e, e.idx(0), e.idx(rows), {}, [&](Value r, ValueRange) {
    SmallVector<Value> zeros(e.numChunks(D), e.splat(e.f(0)));
    e.storeRow(zeros, flat, {r, e.idx(0)}, D);
    return SmallVector<Value>{};
  });
}

// One (query block, key block) tile of the backward. Rows i in [lo, hi) of the tile are query
// rows qRow0 + i; keys j < nk are keys k0 + j. P and dS (block x block scratch) get, for each row:
//   P[i][j] = exp(s_ij - lse_i) (0 where hidden), dS[i][j] = scale * P[i][j] * (dout_i . v_j - delta_i)
// (both 0 on rows with lse = -inf); then dq_i += sum_j dS[i][j] k_j (dq row in registers) and,
// per key, dk_j += sum_i dS[i][j] q_i and dv_j += sum_i P[i][j] dout_i (dk, dv rows in registers).
void emitGradTile(Emitter &e, BlockSparseAttentionGradOp op, Value bi, Value hi, Value kvh, Emitter::Rows rows,
                  Value k0, Value nk, Value mask, Value P, Value dS, Value delta, int64_t blk, int64_t D) {
  const double scale = op.getScale().convertToDouble();
  Value q = op.getQ(), k = op.getK(), v = op.getV(), dout = op.getDout(), lse = op.getLse();
  const int64_t EW = std::min<int64_t>(e.W, 16);
  VectorType et = VectorType::get({EW}, e.f32);
  auto esplat = [&](Value x) -> Value { return e.b.create<vector::SplatOp>(e.loc, et, x); };
  forLoop(e, rows.lo, rows.hi, {}, [&](Value i, ValueRange) {
    Value qRow = e.add(rows.qRow0, i);
    Value l = e.b.create<memref::LoadOp>(e.loc, lse, ValueRange{bi, hi, qRow});
    Value seen = e.b.create<arith::CmpFOp>(e.loc, arith::CmpFPredicate::UNE, l, e.negInf());
    auto ifOp = e.b.create<scf::IfOp>(e.loc, TypeRange{}, seen, /*withElse=*/true);
    OpBuilder::InsertionGuard g(e.b);
    e.b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    {
      // Scores (-inf where hidden) into P's row, dout . v into dS's row: two loops, so each keeps
      // only its own two rows in registers.
      SmallVector<Value> qv = scaledQ(e, q, bi, hi, qRow, D, scale);
      emitScoreRow(e, qv, k, op.getBitmaps(), bi, kvh, k0, nk, mask, i, blk, D, P, {i});
      SmallVector<Value> gv = e.loadRow(dout, {bi, hi, qRow, e.idx(0)}, D);
      forLoop(e, e.idx(0), nk, {}, [&](Value j, ValueRange) {
        SmallVector<Value> vv = e.loadRow(v, {bi, kvh, e.add(k0, j), e.idx(0)}, D);
        e.b.create<memref::StoreOp>(e.loc, e.dot(gv, vv), dS, ValueRange{i, j});
        return SmallVector<Value>{};
      });
      forLoop(e, nk, e.idx(blk), {}, [&](Value j, ValueRange) {
        e.b.create<memref::StoreOp>(e.loc, e.f(0), dS, ValueRange{i, j});
        return SmallVector<Value>{};
      });
      // P = exp(s - lse), dS = scale * P * (dp - delta) over the row in EW-lane chunks.
      Value di = e.b.create<memref::LoadOp>(e.loc, delta, i);
      Value sc = e.f(scale);
      int64_t full = blk / EW;
      if (full > 0) {
        forLoop(e, e.idx(0), e.idx(full * EW), {}, [&](Value j, ValueRange) {
          Value s = e.b.create<vector::LoadOp>(e.loc, et, P, ValueRange{i, j});
          Value dp = e.b.create<vector::LoadOp>(e.loc, et, dS, ValueRange{i, j});
          Value ex = e.exp(e.b.create<arith::SubFOp>(e.loc, s, esplat(l)));
          Value isNinf = e.b.create<arith::CmpFOp>(e.loc, arith::CmpFPredicate::OEQ, s, esplat(e.negInf()));
          Value p = e.b.create<arith::SelectOp>(e.loc, isNinf, esplat(e.f(0)), ex);
          Value ds = e.b.create<arith::MulFOp>(
              e.loc, e.b.create<arith::MulFOp>(e.loc, p, esplat(sc)),
              e.b.create<arith::SubFOp>(e.loc, dp, esplat(di)));
          e.b.create<vector::StoreOp>(e.loc, p, P, ValueRange{i, j});
          e.b.create<vector::StoreOp>(e.loc, ds, dS, ValueRange{i, j});
          return SmallVector<Value>{};
        }, EW);
      }
      for (int64_t j = full * EW; j < blk; ++j) {  // static tail when blk % EW != 0
        Value jj = e.idx(j);
        Value p = e.expShifted(e.b.create<memref::LoadOp>(e.loc, P, ValueRange{i, jj}), l);
        Value dp = e.b.create<memref::LoadOp>(e.loc, dS, ValueRange{i, jj});
        Value ds = e.b.create<arith::MulFOp>(e.loc, e.b.create<arith::MulFOp>(e.loc, p, sc),
                                             e.b.create<arith::SubFOp>(e.loc, dp, di));
        e.b.create<memref::StoreOp>(e.loc, p, P, ValueRange{i, jj});
        e.b.create<memref::StoreOp>(e.loc, ds, dS, ValueRange{i, jj});
      }
    }
    e.b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    forLoop(e, e.idx(0), e.idx(blk), {}, [&](Value j, ValueRange) {
      e.b.create<memref::StoreOp>(e.loc, e.f(0), P, ValueRange{i, j});
      e.b.create<memref::StoreOp>(e.loc, e.f(0), dS, ValueRange{i, j});
      return SmallVector<Value>{};
    });
    return SmallVector<Value>{};
  });
  // dq_i += sum_j dS[i][j] k_j.
  forLoop(e, rows.lo, rows.hi, {}, [&](Value i, ValueRange) {
    SmallVector<Value> at = {bi, hi, e.add(rows.qRow0, i), e.idx(0)};
    SmallVector<Value> acc = e.loadRow(op.getDq(), at, D);
    auto loop = forLoop(e, e.idx(0), nk, acc, [&](Value j, ValueRange it) {
      Value ds = e.splat(e.b.create<memref::LoadOp>(e.loc, dS, ValueRange{i, j}));
      SmallVector<Value> kv = e.loadRow(k, {bi, kvh, e.add(k0, j), e.idx(0)}, D);
      SmallVector<Value> out;
      for (size_t c = 0; c < kv.size(); ++c) out.push_back(e.b.create<vector::FMAOp>(e.loc, ds, kv[c], it[c]));
      return out;
    });
    e.storeRow(SmallVector<Value>(loop.getResults()), op.getDq(), at, D);
    return SmallVector<Value>{};
  });
  // dk_j += sum_i dS[i][j] q_i, dv_j += sum_i P[i][j] dout_i.
  forLoop(e, e.idx(0), nk, {}, [&](Value j, ValueRange) {
    SmallVector<Value> at = {bi, kvh, e.add(k0, j), e.idx(0)};
    SmallVector<Value> acc = e.loadRow(op.getDk(), at, D);
    size_t n = acc.size();
    acc.append(e.loadRow(op.getDv(), at, D));
    auto loop = forLoop(e, rows.lo, rows.hi, acc, [&](Value i, ValueRange it) {
      Value qRow = e.add(rows.qRow0, i);
      Value ds = e.splat(e.b.create<memref::LoadOp>(e.loc, dS, ValueRange{i, j}));
      Value p = e.splat(e.b.create<memref::LoadOp>(e.loc, P, ValueRange{i, j}));
      SmallVector<Value> qv = e.loadRow(q, {bi, hi, qRow, e.idx(0)}, D);
      SmallVector<Value> gv = e.loadRow(dout, {bi, hi, qRow, e.idx(0)}, D);
      SmallVector<Value> out;
      for (size_t c = 0; c < n; ++c) out.push_back(e.b.create<vector::FMAOp>(e.loc, ds, qv[c], it[c]));
      for (size_t c = 0; c < n; ++c) out.push_back(e.b.create<vector::FMAOp>(e.loc, p, gv[c], it[n + c]));
      return out;
    });
    SmallVector<Value> res(loop.getResults());
    e.storeRow(ArrayRef<Value>(res).take_front(n), op.getDk(), at, D);
    e.storeRow(ArrayRef<Value>(res).drop_front(n), op.getDv(), at, D);
    return SmallVector<Value>{};
  });
}

Value loadIndex(Emitter &e, Value mem, Value i) {
  Value x = e.b.create<memref::LoadOp>(e.loc, mem, i);
  return e.b.create<arith::IndexCastOp>(e.loc, e.b.getIndexType(), x);  // sign-extends: -1 stays -1
}

// The loop nest of the forward's --sattn-tile over the same plan: (b, h, query block), then the
// row's CSR entries; delta_i = dout_i . out_i once per query block.
void lowerGrad(BlockSparseAttentionGradOp op, Emitter &e) {
  MemRefType qt = op.getQ().getType(), kt = op.getK().getType();
  ::sattn::Shape sh = shapeOf(qt, kt);
  const int64_t blk = op.getBlock(), D = sh.D;
  PlanGeometry g = planGeometry(sh, blk);
  for (Value t : {op.getDq(), op.getDk(), op.getDv()}) zeroTensor(e, t);
  auto align = e.b.getI64IntegerAttr(64);
  Value P = e.b.create<memref::AllocOp>(e.loc, MemRefType::get({blk, blk}, e.f32), align);
  Value dS = e.b.create<memref::AllocOp>(e.loc, MemRefType::get({blk, blk}, e.f32), align);
  Value delta = e.b.create<memref::AllocOp>(e.loc, MemRefType::get({blk}, e.f32), align);
  const int64_t group = sh.Hq / sh.Hkv;
  forLoop(e, e.idx(0), e.idx(sh.B), {}, [&](Value bi, ValueRange) {
    forLoop(e, e.idx(0), e.idx(sh.Hq), {}, [&](Value hi, ValueRange) {
      Value kvh = e.b.create<arith::DivUIOp>(e.loc, hi, e.idx(group));
      Value pb = op.getPlanB() == 1 ? e.idx(0) : bi;
      Value ph = op.getPlanH() == 1 ? e.idx(0) : hi;
      Value rowBase = e.mul(e.add(e.mul(pb, e.idx(op.getPlanH())), ph), e.idx(g.nQBlocks));
      forLoop(e, e.idx(0), e.idx(g.nQBlocks), {}, [&](Value r, ValueRange) {
        Value qblock = e.add(r, e.idx(g.qBlockBegin));
        Value row = e.add(rowBase, r);
        Emitter::Rows rows = e.queryRows(qblock, blk, sh.Lq, sh.Lk);
        forLoop(e, rows.lo, rows.hi, {}, [&](Value i, ValueRange) {
          SmallVector<Value> at = {bi, hi, e.add(rows.qRow0, i), e.idx(0)};
          Value d = e.dot(e.loadRow(op.getDout(), at, D), e.loadRow(op.getOut(), at, D));
          e.b.create<memref::StoreOp>(e.loc, d, delta, i);
          return SmallVector<Value>{};
        });
        Value start = loadIndex(e, op.getRowPtr(), row);
        Value end = loadIndex(e, op.getRowPtr(), e.add(row, e.idx(1)));
        forLoop(e, start, end, {}, [&](Value ent, ValueRange) {
          Value kblock = loadIndex(e, op.getColIdx(), ent);
          Value mask = loadIndex(e, op.getMaskIdx(), ent);
          Value k0 = e.mul(kblock, e.idx(blk));
          Value nk = e.keyCount(kblock, blk, sh.Lk);
          emitGradTile(e, op, bi, hi, kvh, rows, k0, nk, mask, P, dS, delta, blk, D);
          return SmallVector<Value>{};
        });
        return SmallVector<Value>{};
      });
      return SmallVector<Value>{};
    });
    return SmallVector<Value>{};
  });
  for (Value buf : {P, dS, delta}) e.b.create<memref::DeallocOp>(e.loc, buf);
}

// sattn.build_plan -> sattn_rt_plan_build / _size / _copy / _free (mlir/runtime/sattn_rt.h).
LogicalResult lowerBuildPlan(BuildPlanOp op, ModuleOp module) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  Type i32 = b.getI32Type(), i64 = b.getI64Type(), f64 = b.getF64Type(), ix = b.getIndexType();
  auto declare = [&](StringRef name, TypeRange args, TypeRange results) {
    if (module.lookupSymbol<func::FuncOp>(name)) return;
    OpBuilder mb(ctx);
    mb.setInsertionPointToEnd(module.getBody());
    auto fn = mb.create<func::FuncOp>(loc, name, FunctionType::get(ctx, args, results));
    fn.setPrivate();
  };
  SmallVector<Type> buildArgs(14, i32);
  buildArgs[6] = f64;   // keep
  buildArgs[12] = i64;  // seed
  for (int i = 0; i < 6; ++i) buildArgs.push_back(i32);  // B Hq Hkv Lq Lk D
  buildArgs.append({ix, ix, f64, i32});                   // q, k, scale, tile
  declare("sattn_rt_plan_build", buildArgs, {ix});
  declare("sattn_rt_plan_size", {ix, i32}, {ix});
  declare("sattn_rt_plan_copy", {ix, i32, ix}, {});
  declare("sattn_rt_plan_free", {ix}, {});

  ::sattn::Spec s = *specFromAttr(op.getSpec());
  ::sattn::Shape sh = shapeOf(op.getQ().getType(), op.getK().getType());
  auto ci = [&](int64_t v) -> Value { return b.create<arith::ConstantOp>(loc, b.getI32IntegerAttr(int32_t(v))); };
  auto cf = [&](double v) -> Value { return b.create<arith::ConstantOp>(loc, b.getF64FloatAttr(v)); };
  // sattn_rt_plan_build takes the spec fields in SATTN_SPEC_FIELDS order after kind and causal.
#define SATTN_ARG_I32(name) ci(s.name),
#define SATTN_ARG_F64(name) cf(s.name),
#define SATTN_ARG_U64(name) b.create<arith::ConstantOp>(loc, b.getI64IntegerAttr(int64_t(s.name))),
#define SATTN_ARG_SCORE(name) ci(int(s.name)),
  SmallVector<Value> args = {ci(int(s.kind)), ci(s.causal),
                             SATTN_SPEC_FIELDS(SATTN_ARG_I32, SATTN_ARG_F64, SATTN_ARG_U64, SATTN_ARG_SCORE)
                             ci(sh.B), ci(sh.Hq), ci(sh.Hkv), ci(sh.Lq), ci(sh.Lk), ci(sh.D),
                             b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, op.getQ()),
                             b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, op.getK()),
                             cf(op.getScale().convertToDouble()), ci(op.getBlock())};
#undef SATTN_ARG_SCORE
#undef SATTN_ARG_U64
#undef SATTN_ARG_F64
#undef SATTN_ARG_I32
  Value handle = b.create<func::CallOp>(loc, "sattn_rt_plan_build", TypeRange{ix}, args).getResult(0);
  SmallVector<Value> arrays;
  for (int which = 0; which < 4; ++which) {
    Value w = ci(which);
    Value n = b.create<func::CallOp>(loc, "sattn_rt_plan_size", TypeRange{ix}, ValueRange{handle, w}).getResult(0);
    auto type = cast<MemRefType>(op.getResult(which).getType());
    Value mem = b.create<memref::AllocOp>(loc, type, ValueRange{n}, b.getI64IntegerAttr(64));
    Value ptr = b.create<memref::ExtractAlignedPointerAsIndexOp>(loc, mem);
    b.create<func::CallOp>(loc, "sattn_rt_plan_copy", TypeRange{}, ValueRange{handle, w, ptr});
    arrays.push_back(mem);
  }
  b.create<func::CallOp>(loc, "sattn_rt_plan_free", TypeRange{}, ValueRange{handle});
  // Free the plan arrays when the block ends (after every user).
  Block *block = op->getBlock();
  OpBuilder eb(block->getTerminator());
  for (Value a : arrays) eb.create<memref::DeallocOp>(loc, a);
  op->replaceAllUsesWith(arrays);
  op.erase();
  return success();
}

// D of a tile op: the last dimension of its first rank-4 operand (q, k, v or out), else of its
// last rank-2 one (acc, in tile_init and tile_softmax).
int64_t headDimOf(Operation *op) {
  int64_t d = 0;
  for (Value v : op->getOperands())
    if (auto t = dyn_cast<MemRefType>(v.getType())) {
      if (t.getRank() == 4) return t.getDimSize(3);
      if (t.getRank() == 2) d = t.getDimSize(1);
    }
  return d;
}

struct LowerToRVVPass : impl::SattnLowerToRVVBase<LowerToRVVPass> {
  using SattnLowerToRVVBase::SattnLowerToRVVBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (vectorWidth < 1 || vectorWidth > 256) {
      module.emitError() << "--sattn-lower-to-rvv: vector-width must be 1..256, got " << int64_t(vectorWidth);
      return signalPassFailure();
    }
    bool failedAny = false;
    module.walk([&](Operation *op) {
      if (isa<AttentionOp, AttentionGradOp, BlockSparseAttentionOp>(op)) {
        op->emitOpError() << "must be tiled before --sattn-lower-to-rvv (run --sattn-materialize-indices "
                             "and --sattn-tile first)";
        failedAny = true;
      }
    });
    if (failedAny) return signalPassFailure();
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<BuildPlanOp, TileInitOp, TileScoresOp, TileSoftmaxOp, TilePVOp, TileStoreOp, TileFusedOp,
              BlockSparseAttentionGradOp>(op))
        ops.push_back(op);
    });
    // One score-row buffer per function for the fused tiles.
    DenseMap<Operation *, Value> srows, kts;
    for (Operation *op : ops) {
      if (auto x = dyn_cast<BuildPlanOp>(op)) {
        if (failed(lowerBuildPlan(x, module))) return signalPassFailure();
        continue;
      }
      VecConfig W{vectorWidth, scalable, std::max<int64_t>(1, minVlen / 64)};
      W.headDim = headDimOf(op);
      if (auto x = dyn_cast<TileInitOp>(op)) versioned(op, W, [&](Emitter &e) { lowerInit(x, e); });
      else if (auto x = dyn_cast<TileScoresOp>(op)) versioned(op, W, [&](Emitter &e) { lowerScores(x, e); });
      else if (auto x = dyn_cast<TileSoftmaxOp>(op)) versioned(op, W, [&](Emitter &e) { lowerSoftmax(x, e); });
      else if (auto x = dyn_cast<TilePVOp>(op)) versioned(op, W, [&](Emitter &e) { lowerPV(x, e); });
      else if (auto x = dyn_cast<TileStoreOp>(op)) versioned(op, W, [&](Emitter &e) { lowerStore(x, e); });
      else if (auto x = dyn_cast<BlockSparseAttentionGradOp>(op))
        versioned(op, W, [&](Emitter &e) { lowerGrad(x, e); });
      else if (auto x = dyn_cast<TileFusedOp>(op)) {
        auto fn = x->getParentOfType<func::FuncOp>();
        int64_t blk = x.getBlock();
        Value &srow = srows[fn];
        if (!srow || cast<MemRefType>(srow.getType()).getDimSize(0) < blk) {
          OpBuilder fb(&fn.getBody().front(), fn.getBody().front().begin());
          srow = fb.create<memref::AllocaOp>(x.getLoc(), MemRefType::get({blk}, fb.getF32Type()),
                                             fb.getI64IntegerAttr(64));
        }
        // The key-direction copies' transposed K tile: D x blk, padded to whole key vectors of
        // every specialised copy (keyLanes' widths).
        Value kt;
        if (scalable) {
          int64_t D = x.getQ().getType().getDimSize(3), width = blk;
          for (int64_t v : kSpecialisedVscales) {
            int64_t kw = vectorWidth;
            while (kw % 2 == 0 && kw > kMinLanes && kw * v > blk) kw /= 2;
            width = std::max(width, (blk + kw * v - 1) / (kw * v) * (kw * v));
          }
          // On the heap: D x blk floats on the stack would push the score row's frame offset past
          // the 12-bit immediate, costing an address computation per access in every copy.
          Value &buf = kts[fn];
          if (!buf || cast<MemRefType>(buf.getType()) != MemRefType::get({D, width}, Float32Type::get(fn.getContext()))) {
            OpBuilder fb(&fn.getBody().front(), fn.getBody().front().begin());
            buf = fb.create<memref::AllocOp>(x.getLoc(), MemRefType::get({D, width}, fb.getF32Type()),
                                             fb.getI64IntegerAttr(64));
            fn.walk([&](func::ReturnOp r) { OpBuilder(r).create<memref::DeallocOp>(x.getLoc(), buf); });
          }
          kt = buf;
        }
        versioned(op, W, [&](Emitter &e) { lowerFused(x, e, srow, kt); });
      }
      op->erase();
    }
  }
};

}  // namespace
}  // namespace sattn
}  // namespace mlir
