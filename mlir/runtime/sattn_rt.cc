// Run-time planner calls of sattn-opt generated code (see sattn_rt.h).
#include "sattn_rt.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "sattn/plan.h"

namespace {

sattn::BlockPlan* FromHandle(intptr_t h) {
  if (h == 0) {
    std::fprintf(stderr, "sattn_rt: null plan handle\n");
    std::exit(3);
  }
  return reinterpret_cast<sattn::BlockPlan*>(h);
}

}  // namespace

extern "C" intptr_t sattn_rt_plan_build(int32_t kind, int32_t causal, int32_t window, int32_t dilation,
                                        int32_t global_tokens, int32_t block, double keep,
                                        int32_t global_blocks, int32_t local_blocks, int32_t score,
                                        int32_t window_blocks, int32_t random_blocks, int64_t seed, int32_t topk,
                                        int32_t B, int32_t Hq, int32_t Hkv, int32_t Lq, int32_t Lk, int32_t D,
                                        intptr_t q, intptr_t k, double scale, int32_t tile) {
  sattn::Spec s;
  s.kind = static_cast<sattn::SpecKind>(kind);
  s.causal = causal != 0;
  // The parameters above are named after the Spec fields, in SATTN_SPEC_FIELDS order.
#define SATTN_RT_FIELD(name) s.name = name;
#define SATTN_RT_U64(name) s.name = uint64_t(name);
#define SATTN_RT_SCORE(name) s.name = static_cast<sattn::BlockScore>(name);
  SATTN_SPEC_FIELDS(SATTN_RT_FIELD, SATTN_RT_FIELD, SATTN_RT_U64, SATTN_RT_SCORE)
#undef SATTN_RT_SCORE
#undef SATTN_RT_U64
#undef SATTN_RT_FIELD
  sattn::Shape sh{B, Hq, Hkv, Lq, Lk, D};
  sattn::PlanOptions opts;
  opts.tile = tile;
  opts.scale = scale;
  opts.num_threads = 1;  // deterministic instruction counts under QEMU
  auto* plan = new sattn::BlockPlan;
  sattn::Status st = sattn::BuildPlan(s, sh, reinterpret_cast<const float*>(q), reinterpret_cast<const float*>(k),
                                      opts, plan);
  if (!st.ok()) {
    std::fprintf(stderr, "sattn_rt_plan_build: %s\n", st.message.c_str());
    std::exit(3);
  }
  return reinterpret_cast<intptr_t>(plan);
}

extern "C" intptr_t sattn_rt_plan_size(intptr_t handle, int32_t which) {
  sattn::BlockPlan* p = FromHandle(handle);
  switch (which) {
    case 0: return intptr_t(p->row_ptr.size());
    case 1: return intptr_t(p->col_idx.size());
    case 2: return intptr_t(p->mask_idx.size());
    case 3: return intptr_t(p->bitmaps.size());
  }
  std::fprintf(stderr, "sattn_rt_plan_size: which: expected 0..3, got %d\n", which);
  std::exit(3);
}

extern "C" void sattn_rt_plan_copy(intptr_t handle, int32_t which, intptr_t dst) {
  sattn::BlockPlan* p = FromHandle(handle);
  void* d = reinterpret_cast<void*>(dst);
  switch (which) {
    case 0: if (!p->row_ptr.empty()) std::memcpy(d, p->row_ptr.data(), p->row_ptr.size() * 4); return;
    case 1: if (!p->col_idx.empty()) std::memcpy(d, p->col_idx.data(), p->col_idx.size() * 4); return;
    case 2: if (!p->mask_idx.empty()) std::memcpy(d, p->mask_idx.data(), p->mask_idx.size() * 4); return;
    case 3: if (!p->bitmaps.empty()) std::memcpy(d, p->bitmaps.data(), p->bitmaps.size() * 8); return;
  }
  std::fprintf(stderr, "sattn_rt_plan_copy: which: expected 0..3, got %d\n", which);
  std::exit(3);
}

extern "C" void sattn_rt_plan_free(intptr_t handle) { delete FromHandle(handle); }

extern "C" void sattn_rt_region_begin(void) {
#if defined(__riscv)
  asm volatile(".insn i 0x13, 0, x0, x0, 0x7e1" ::: "memory");
#endif
}

extern "C" void sattn_rt_region_end(void) {
#if defined(__riscv)
  asm volatile(".insn i 0x13, 0, x0, x0, 0x7e2" ::: "memory");
#endif
}
