// The sattn dialect and its spec attributes. Attribute verifiers delegate to the contract's
// own validator (sattn::ValidateSpec, //cc:spec) so that the compiler and every runtime reject
// the same specs with the same words.
#include "Sattn/SattnDialect.h"

#include <cmath>
#include <limits>

#include "llvm/ADT/TypeSwitch.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::sattn;

#include "Sattn/SattnDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Sattn/SattnAttrs.cpp.inc"

void SattnDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Sattn/SattnAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "Sattn/SattnOps.cpp.inc"
      >();
}

FailureOr<bool> mlir::sattn::parseBoolKeyword(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true"))) return true;
  if (succeeded(parser.parseOptionalKeyword("false"))) return false;
  return parser.emitError(parser.getCurrentLocation(), "expected 'true' or 'false'");
}

FailureOr<llvm::APFloat> mlir::sattn::parseDoubleLiteral(AsmParser &parser) {
  double v = 0;
  if (parser.parseFloat(v)) return failure();
  return llvm::APFloat(v);
}

namespace {

// Spec fields are int32 in the C++ contract; reject values that would be truncated.
LogicalResult fitsI32(function_ref<InFlightDiagnostic()> emitError, StringRef name, int64_t v) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    return emitError() << name << ": expected a 32-bit integer, got " << v;
  return success();
}

LogicalResult validate(function_ref<InFlightDiagnostic()> emitError, StringRef attrName,
                       const ::sattn::Spec &spec) {
  ::sattn::Status st = ::sattn::ValidateSpec(spec);
  if (!st.ok()) return emitError() << "invalid #sattn." << attrName << ": " << st.message;
  return success();
}

}  // namespace

LogicalResult DenseSpecAttr::verify(function_ref<InFlightDiagnostic()>, bool) { return success(); }

LogicalResult SlidingWindowSpecAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                            int64_t window, bool causal, int64_t dilation,
                                            int64_t globalTokens) {
  if (failed(fitsI32(emitError, "window", window)) || failed(fitsI32(emitError, "dilation", dilation)) ||
      failed(fitsI32(emitError, "global_tokens", globalTokens)))
    return failure();
  ::sattn::Spec s;
  s.kind = ::sattn::SpecKind::kSlidingWindow;
  s.window = int32_t(window);
  s.causal = causal;
  s.dilation = int32_t(dilation);
  s.global_tokens = int32_t(globalTokens);
  return validate(emitError, "sliding_window", s);
}

LogicalResult BlockTopKSpecAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t block,
                                        llvm::APFloat keepF, int64_t globalBlocks, int64_t localBlocks,
                                        bool causal, std::string score) {
  if (failed(fitsI32(emitError, "block", block)) || failed(fitsI32(emitError, "global_blocks", globalBlocks)) ||
      failed(fitsI32(emitError, "local_blocks", localBlocks)))
    return failure();
  if (score != "mean" && score != "max")
    return emitError() << "invalid #sattn.block_topk: score: expected \"mean\" or \"max\", got \""
                       << score << "\"";
  ::sattn::Spec s;
  s.kind = ::sattn::SpecKind::kBlockTopK;
  s.block = int32_t(block);
  s.keep = keepF.convertToDouble();
  s.global_blocks = int32_t(globalBlocks);
  s.local_blocks = int32_t(localBlocks);
  s.causal = causal;
  s.score = score == "max" ? ::sattn::BlockScore::kMax : ::sattn::BlockScore::kMean;
  return validate(emitError, "block_topk", s);
}

LogicalResult BigBirdSpecAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t block,
                                      int64_t windowBlocks, int64_t globalBlocks, int64_t randomBlocks,
                                      int64_t seed, bool causal) {
  if (failed(fitsI32(emitError, "block", block)) || failed(fitsI32(emitError, "window_blocks", windowBlocks)) ||
      failed(fitsI32(emitError, "global_blocks", globalBlocks)) ||
      failed(fitsI32(emitError, "random_blocks", randomBlocks)))
    return failure();
  if (seed < 0) return emitError() << "invalid #sattn.bigbird: seed: expected an integer >= 0, got " << seed;
  ::sattn::Spec s;
  s.kind = ::sattn::SpecKind::kBigBird;
  s.block = int32_t(block);
  s.window_blocks = int32_t(windowBlocks);
  s.global_blocks = int32_t(globalBlocks);
  s.random_blocks = int32_t(randomBlocks);
  s.seed = uint64_t(seed);
  s.causal = causal;
  return validate(emitError, "bigbird", s);
}

LogicalResult TopKPerQuerySpecAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t k,
                                           bool causal) {
  if (failed(fitsI32(emitError, "k", k))) return failure();
  ::sattn::Spec s;
  s.kind = ::sattn::SpecKind::kTopKPerQuery;
  s.topk = int32_t(k);
  s.causal = causal;
  return validate(emitError, "topk_per_query", s);
}

FailureOr<::sattn::Spec> mlir::sattn::specFromAttr(Attribute attr) {
  ::sattn::Spec s;
  if (auto a = dyn_cast_or_null<DenseSpecAttr>(attr)) {
    s.kind = ::sattn::SpecKind::kDense;
    s.causal = a.getCausal();
  } else if (auto a = dyn_cast_or_null<SlidingWindowSpecAttr>(attr)) {
    s.kind = ::sattn::SpecKind::kSlidingWindow;
    s.window = int32_t(a.getWindow());
    s.causal = a.getCausal();
    s.dilation = int32_t(a.getDilation());
    s.global_tokens = int32_t(a.getGlobalTokens());
  } else if (auto a = dyn_cast_or_null<BlockTopKSpecAttr>(attr)) {
    s.kind = ::sattn::SpecKind::kBlockTopK;
    s.block = int32_t(a.getBlock());
    s.keep = a.getKeep().convertToDouble();
    s.global_blocks = int32_t(a.getGlobalBlocks());
    s.local_blocks = int32_t(a.getLocalBlocks());
    s.causal = a.getCausal();
    s.score = a.getScore() == "max" ? ::sattn::BlockScore::kMax : ::sattn::BlockScore::kMean;
  } else if (auto a = dyn_cast_or_null<BigBirdSpecAttr>(attr)) {
    s.kind = ::sattn::SpecKind::kBigBird;
    s.block = int32_t(a.getBlock());
    s.window_blocks = int32_t(a.getWindowBlocks());
    s.global_blocks = int32_t(a.getGlobalBlocks());
    s.random_blocks = int32_t(a.getRandomBlocks());
    s.seed = uint64_t(a.getSeed());
    s.causal = a.getCausal();
  } else if (auto a = dyn_cast_or_null<TopKPerQuerySpecAttr>(attr)) {
    s.kind = ::sattn::SpecKind::kTopKPerQuery;
    s.topk = int32_t(a.getK());
    s.causal = a.getCausal();
  } else {
    return failure();
  }
  return s;
}

Attribute mlir::sattn::attrFromSpec(MLIRContext *ctx, const ::sattn::Spec &s) {
  switch (s.kind) {
    case ::sattn::SpecKind::kDense:
      return DenseSpecAttr::get(ctx, s.causal);
    case ::sattn::SpecKind::kSlidingWindow:
      return SlidingWindowSpecAttr::get(ctx, s.window, s.causal, s.dilation, s.global_tokens);
    case ::sattn::SpecKind::kBlockTopK:
      return BlockTopKSpecAttr::get(ctx, s.block, llvm::APFloat(s.keep), s.global_blocks, s.local_blocks, s.causal,
                                    s.score == ::sattn::BlockScore::kMax ? "max" : "mean");
    case ::sattn::SpecKind::kBigBird:
      return BigBirdSpecAttr::get(ctx, s.block, s.window_blocks, s.global_blocks, s.random_blocks,
                                  int64_t(s.seed), s.causal);
    case ::sattn::SpecKind::kTopKPerQuery:
      return TopKPerQuerySpecAttr::get(ctx, s.topk, s.causal);
  }
  return {};
}

bool mlir::sattn::isDataDependent(const ::sattn::Spec &s) {
  return s.kind == ::sattn::SpecKind::kBlockTopK || s.kind == ::sattn::SpecKind::kTopKPerQuery;
}

int64_t mlir::sattn::planBlock(const ::sattn::Spec &s, int64_t tile) {
  return (s.kind == ::sattn::SpecKind::kBlockTopK || s.kind == ::sattn::SpecKind::kBigBird) ? s.block : tile;
}

::sattn::Shape mlir::sattn::shapeOf(MemRefType q, MemRefType k) {
  ::sattn::Shape sh;
  sh.B = int32_t(q.getDimSize(0));
  sh.Hq = int32_t(q.getDimSize(1));
  sh.Lq = int32_t(q.getDimSize(2));
  sh.D = int32_t(q.getDimSize(3));
  sh.Hkv = int32_t(k.getDimSize(1));
  sh.Lk = int32_t(k.getDimSize(2));
  return sh;
}

PlanGeometry mlir::sattn::planGeometry(const ::sattn::Shape &sh, int64_t block) {
  PlanGeometry g;
  g.block = block;
  g.qBlockBegin = (int64_t(sh.Lk) - sh.Lq) / block;
  g.nKBlocks = (int64_t(sh.Lk) + block - 1) / block;
  g.nQBlocks = g.nKBlocks - g.qBlockBegin;
  g.wordsPerRow = (block + 63) / 64;
  return g;
}
