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
  if (spec == nullptr) return Fail(sattn::Status::Invalid("spec: expected a non-null pointer"));
  if (spec->kind < 0 || spec->kind > 4)
    return Fail(sattn::Status::Invalid("spec.kind: expected 0..4, got " + std::to_string(spec->kind)));
  if (!q || !k || !v || !out)
    return Fail(sattn::Status::Invalid(std::string(!q ? "q" : !k ? "k" : !v ? "v" : "out") + ": expected a non-null pointer"));
  if (std::isnan(scale) || std::isinf(scale))
    return Fail(sattn::Status::Invalid("scale: expected a finite number"));
  const sattn::Shape shape{B, Hq, Hkv, Lq, Lk, D};
  const double s = scale > 0 ? scale : 1.0 / std::sqrt(double(D > 0 ? D : 1));
  sattn::PlanOptions opt;
  opt.tile = tile > 0 ? tile : 64;
  opt.scale = s;
  opt.num_threads = threads;
  sattn::BlockPlan plan;
  sattn::Status st = sattn::BuildPlan(ToSpec(*spec), shape, q, k, opt, &plan);
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
