// The C API (cc/include/sattn/sattn.h) over the C++ planner and CPU kernels.
#include "sattn/sattn.h"

#include <cmath>
#include <string>

#include "cc/cpu/attention.h"
#include "sattn/plan.h"
#include "sattn/spec.h"

namespace {

thread_local std::string g_last_error;

int Fail(const sattn::Status& st) {
  g_last_error = st.message;
  return st.code == sattn::ErrorCode::kInvalidArgument ? SATTN_INVALID_ARGUMENT : SATTN_INTERNAL;
}

sattn::Spec ToSpec(const sattn_spec& c) {
  sattn::Spec s;
  s.kind = sattn::SpecKind(c.kind);
  s.causal = c.causal != 0;
#define SATTN_FROM_C(name) s.name = c.name;
#define SATTN_FROM_C_SCORE(name) s.name = c.name##_max ? sattn::BlockScore::kMax : sattn::BlockScore::kMean;
  SATTN_SPEC_FIELDS(SATTN_FROM_C, SATTN_FROM_C, SATTN_FROM_C, SATTN_FROM_C_SCORE)
#undef SATTN_FROM_C_SCORE
#undef SATTN_FROM_C
  return s;
}

// The arguments a shape check does not cover, in signature order; the message names the first
// bad one as sattn.h spells it.
sattn::Status CheckArguments(const sattn_spec* spec, const float* q, const float* k, const float* v,
                             const float* out, double scale, int32_t tile, int32_t threads) {
  using sattn::Status;
  if (spec == nullptr) return Status::Invalid("spec: expected a non-null pointer");
  if (spec->kind < 0 || spec->kind > 4)
    return Status::Invalid("spec.kind: expected 0..4, got " + std::to_string(spec->kind));
  if (spec->causal != 0 && spec->causal != 1)
    return Status::Invalid("spec.causal: expected 0 or 1, got " + std::to_string(spec->causal));
  if (spec->score_max != 0 && spec->score_max != 1)
    return Status::Invalid("spec.score_max: expected 0 (mean) or 1 (max), got " + std::to_string(spec->score_max));
  const sattn::Status st = sattn::ValidateSpec(ToSpec(*spec));
  if (!st.ok()) {
    // The contract calls TopKPerQuery's field k; the C struct spells it topk.
    const bool topk = st.message.rfind("k:", 0) == 0;
    return Status::Invalid("spec." + (topk ? "topk" + st.message.substr(1) : st.message));
  }
  if (!q || !k || !v || !out)
    return Status::Invalid(std::string(!q ? "q" : !k ? "k" : !v ? "v" : "out") + ": expected a non-null pointer");
  // <= 0 selects 1/sqrt(D); anything else is used as a float32 by the kernels, so it must be a
  // finite normal float32: [2^-126, 2^127].
  if (!std::isfinite(scale) || (scale > 0 && !(scale >= 0x1p-126 && scale <= 0x1p127)))
    return Status::Invalid("scale: expected <= 0 (for 1/sqrt(D)) or a value in [2^-126, 2^127], got " +
                           std::to_string(scale));
  if (tile < 0 || tile > 4096) return Status::Invalid("tile: expected 0 (for 64) or 1..4096, got " + std::to_string(tile));
  return sattn::ValidateThreads(threads, "threads");
}

}  // namespace

extern "C" void sattn_spec_init(sattn_spec* spec, sattn_kind kind) {
  if (spec == nullptr) return;
  const sattn::Spec d;  // the C++ defaults are the contract's defaults
  *spec = sattn_spec{};
  spec->kind = kind;
#define SATTN_DEFAULT(name) spec->name = d.name;
#define SATTN_DEFAULT_SCORE(name) spec->name##_max = d.name == sattn::BlockScore::kMax;
  SATTN_SPEC_FIELDS(SATTN_DEFAULT, SATTN_DEFAULT, SATTN_DEFAULT, SATTN_DEFAULT_SCORE)
#undef SATTN_DEFAULT_SCORE
#undef SATTN_DEFAULT
  if (kind == SATTN_SLIDING_WINDOW) spec->window = 256;  // the contract's SlidingWindow default
}

extern "C" int sattn_attention_f32(const sattn_spec* spec, int32_t B, int32_t Hq, int32_t Hkv, int32_t Lq,
                                   int32_t Lk, int32_t D, const float* q, const float* k, const float* v,
                                   float* out, float* lse, double scale, int32_t tile, int32_t threads) {
  g_last_error.clear();
  const sattn::Status st_args = CheckArguments(spec, q, k, v, out, scale, tile, threads);
  if (!st_args.ok()) return Fail(st_args);
  const sattn::Shape shape{B, Hq, Hkv, Lq, Lk, D};
  // The shape before anything is allocated (BuildPlan then checks the plan's size the same way).
  sattn::Status st = sattn::ValidateShape(shape);
  if (!st.ok()) return Fail(st);
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(double(D));
  sattn::PlanOptions opt;
  opt.tile = tile > 0 ? tile : 64;
  opt.scale = s;
  opt.num_threads = threads;
  sattn::BlockPlan plan;
  st = sattn::BuildPlan(ToSpec(*spec), shape, q, k, opt, &plan);
  if (!st.ok()) return Fail(st);
  sattn::cpu::AttentionArgs args;
  args.shape = shape;
  args.scale = s;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = lse;
  args.num_threads = threads;
  st = sattn::cpu::Attention(args, plan);
  return st.ok() ? SATTN_OK : Fail(st);
}

extern "C" const char* sattn_last_error(void) { return g_last_error.c_str(); }
