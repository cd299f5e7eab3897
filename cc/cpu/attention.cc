// CPU backend driver: validates the call against the plan, stages K (transposed, fp32) and, when
// needed, V (fp32, padded) for the kv blocks the plan touches, then runs the per-ISA kernel over
// the plan's rows on a pool of threads that take rows, most expensive first, from an atomic
// counter. Kernels: kernel.inc (built per ISA in kernel_<isa>.cc).
#include "cc/cpu/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "cc/cpu/kernels.h"
#include "cc/cpu/thread_pool.h"
#include "cc/cpu/work_items.h"
#include "cc/src/nonfinite.h"

namespace sattn {
namespace cpu {
namespace internal {
namespace {

float Bf16ToF32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// 64-byte aligned float buffer without zero-initialisation (the staging writes every element
// it later reads).
struct FloatBuffer {
  std::unique_ptr<float[]> raw;
  float* data = nullptr;
  void Allocate(int64_t n) {
    raw.reset(new float[size_t(n) + 16]);
    const uintptr_t p = reinterpret_cast<uintptr_t>(raw.get());
    data = reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
  }
};

Status Validate(const AttentionArgs& a, const BlockPlan& plan) {
  const Shape& s = a.shape;
  Status st = ValidateShape(s);
  if (!st.ok()) return st;
  if (a.dtype != DType::kF32 && a.dtype != DType::kBF16)
    return Status::Invalid("dtype: expected kF32 or kBF16, got " + std::to_string(int(a.dtype)));
  if (a.q == nullptr) return Status::Invalid("q: null pointer");
  if (a.k == nullptr) return Status::Invalid("k: null pointer");
  if (a.v == nullptr) return Status::Invalid("v: null pointer");
  if (a.out == nullptr) return Status::Invalid("out: null pointer");
  return ValidateCallCommon(a.scale, a.num_threads, s, plan);
}

}  // namespace

Status ValidateCallCommon(double scale, int num_threads, const Shape& s, const BlockPlan& plan) {
  if (!(scale > 0.0) || !std::isfinite(scale))
    return Status::Invalid("scale: expected a finite value > 0, got " + std::to_string(scale));
  Status st = ValidateThreads(num_threads, "num_threads");
  if (!st.ok()) return st;
  auto mismatch = [](const char* field, int64_t plan_v, int64_t arg_v) {
    return Status::Invalid(std::string("plan.") + field + ": plan built for " + std::to_string(plan_v) +
                           ", arguments have " + std::to_string(arg_v));
  };
  if (plan.B != s.B) return mismatch("B", plan.B, s.B);
  if (plan.Hq != s.Hq) return mismatch("Hq", plan.Hq, s.Hq);
  if (plan.Lq != s.Lq) return mismatch("Lq", plan.Lq, s.Lq);
  if (plan.Lk != s.Lk) return mismatch("Lk", plan.Lk, s.Lk);
  return ValidatePlan(plan);
}

std::string ForcedIsaName() {
  const char* env = std::getenv("SATTN_CPU_ISA");
  return env == nullptr ? std::string() : std::string(env);
}

const Isa* SelectIsa() {
  static const Isa* chosen = [] {
    const Isa* best = IsaPortable();
    if (IsaAvx2() && CpuHasAvx2()) best = IsaAvx2();
    if (IsaAvx512() && CpuHasAvx512()) best = IsaAvx512();
    const std::string want = ForcedIsaName();
    if (want == "portable") best = IsaPortable();
    if (want == "avx2" && IsaAvx2() && CpuHasAvx2()) best = IsaAvx2();
    if (want == "avx512" && IsaAvx512() && CpuHasAvx512()) best = IsaAvx512();
    return best;
  }();
  return chosen;
}

Status AttentionWithIsa(const AttentionArgs& args, const BlockPlan& plan, const Isa* isa,
                        KeyLayout layout, int64_t serial_below) {
  Status st = Validate(args, plan);
  if (!st.ok()) return st;
  if (isa == nullptr) return Status{ErrorCode::kInternal, "cpu attention: no kernel for this host"};
  const Shape& s = args.shape;
  const int64_t blk = plan.block, nkb = plan.n_k_blocks;
  const int64_t n_bkv = int64_t(s.B) * s.Hkv;
  const int group = s.Hq / s.Hkv;
  const bool bf16 = args.dtype == DType::kBF16;

  // Which (b, kv head, key block) triples the plan reads: only those are staged, so decode
  // (Lq = 1) against a long cache with a sparse plan does not pay for the whole cache.
  std::vector<uint8_t> used(size_t(n_bkv * nkb), 0);
  for (int64_t row = 0; row < plan.rows(); ++row) {
    const int64_t ph = (row / plan.n_q_blocks) % plan.plan_h;
    const int64_t pb = row / (int64_t(plan.n_q_blocks) * plan.plan_h);
    for (int32_t e = plan.row_ptr[row]; e < plan.row_ptr[row + 1]; ++e) {
      const int64_t c = plan.col_idx[e];
      for (int64_t b = (plan.plan_b == 1 ? 0 : pb); b < (plan.plan_b == 1 ? s.B : pb + 1); ++b) {
        for (int64_t h = (plan.plan_h == 1 ? 0 : ph); h < (plan.plan_h == 1 ? s.Hq : ph + 1); h += 1)
          used[size_t((b * s.Hkv + h / group) * nkb + c)] = 1;
      }
    }
  }
  std::vector<int64_t> stage_units;
  for (int64_t u = 0; u < n_bkv * nkb; ++u)
    if (used[size_t(u)]) stage_units.push_back(u);

  // Work items (b, h, query block), heaviest first (work_items.h).
  const int64_t n_items = int64_t(s.B) * s.Hq * plan.n_q_blocks;
  const WorkItems items = ForwardWorkItems(plan, s.B, s.Hq, s.Lq, s.Lk, blk);
  const int64_t total_cost = items.total_cost, entry_rows = items.entry_rows;
  const std::vector<int64_t>& order = items.order;

  // Key layout. Transposing a key block costs about blk*D scalar moves; reading it row-major
  // costs about D/lanes + 8 extra instructions per (query row, key) in Q K^T. So the transposed
  // layout pays off once ~8 query rows read each staged block: always for prefill with 64-row
  // blocks, never for decode.
  const int64_t D = s.D, L = isa->lanes, ksub = isa->ksub;
  const int64_t Dp = (D + L - 1) / L * L;
  if (layout == KeyLayout::kAuto) {
    layout = entry_rows < 8 * std::max<int64_t>(1, int64_t(stage_units.size())) ? KeyLayout::kRows
                                                                                 : KeyLayout::kTransposed;
  }
  const bool transpose_k = layout == KeyLayout::kTransposed;
  // Transposed K: see Problem::kt. W: chunk width (a multiple of the lane count, at most ksub;
  // narrower for small blocks so they do not compute on padding).
  const int64_t W = std::min<int64_t>(ksub, (blk + L - 1) / L * L);
  const int64_t n_chunks = (blk + ksub - 1) / ksub;
  const int64_t kt_block_stride = n_chunks * D * W;
  FloatBuffer kt, kbuf, vbuf;
  if (transpose_k) kt.Allocate(n_bkv * nkb * kt_block_stride);
  // Row-major K and V are read in place when fp32 with rows of whole vectors; otherwise staged
  // as fp32 rows padded to Dp.
  const bool stage_rows = bf16 || Dp != D;
  const bool stage_k_rows = !transpose_k && stage_rows;
  if (stage_k_rows) kbuf.Allocate(n_bkv * int64_t(s.Lk) * Dp);
  const bool stage_v = stage_rows;
  if (stage_v) vbuf.Allocate(n_bkv * int64_t(s.Lk) * Dp);

  Problem pr;
  pr.plan = &plan;
  pr.B = s.B, pr.Hq = s.Hq, pr.Hkv = s.Hkv, pr.Lq = s.Lq, pr.Lk = s.Lk, pr.D = s.D;
  pr.Dp = int32_t(Dp);
  pr.group = group;
  pr.qscale = float(args.scale * 1.4426950408889634);  // scale * log2(e)
  pr.normalizer = int32_t(args.normalizer);
  pr.bias2 = float(-std::log2(double(s.Lk)));
  pr.out_scale = args.normalizer == Normalizer::kRelu2 ? float(0.4804530139182014 / double(s.Lk)) : 1.0f;
  pr.bf16 = bf16;
  pr.q = args.q, pr.out = args.out, pr.lse = args.lse;
  pr.kt = transpose_k ? kt.data : nullptr, pr.kt_w = int32_t(W), pr.kt_block_stride = kt_block_stride;
  pr.k_rows = stage_k_rows ? kbuf.data : static_cast<const float*>(args.k);
  pr.k_ld = stage_k_rows ? Dp : D;
  pr.k_head_stride = int64_t(s.Lk) * pr.k_ld;
  pr.v = stage_v ? vbuf.data : static_cast<const float*>(args.v);
  pr.v_ld = stage_v ? Dp : D;
  pr.v_head_stride = int64_t(s.Lk) * pr.v_ld;

  // Small problems run on the calling thread (kSerialBelow).
  const int64_t staged = (transpose_k || stage_rows) ? int64_t(stage_units.size()) * blk * D : 0;
  int threads = ResolveThreads(args.num_threads);
  if (total_cost * D + staged < serial_below) threads = 1;
  threads = int(std::min<int64_t>(threads, std::max<int64_t>(n_items, int64_t(stage_units.size()))));
  threads = std::max(threads, 1);

  // Key-split decode (work_items.h).
  const int64_t splits = KeySplits(threads, n_items, items.max_entries);
  const int64_t n_units = n_items * splits;
  std::vector<Partial> parts;
  FloatBuffer part_buf;
  if (splits > 1) {
    part_buf.Allocate(n_units * PartialFloats(blk, Dp));
    parts = SplitPartials(plan, items.row, splits, blk, Dp, part_buf.data);
  }

  const int64_t rmax = isa->rmax;
  std::atomic<int64_t> next_stage{0}, next_item{0}, staged_done{0};
  const int64_t n_stage = (transpose_k || stage_rows) ? int64_t(stage_units.size()) : 0;
  // Per-thread scratch, allocated before the threads start: an allocation failing inside a
  // worker would end the process instead of returning kInternal.
  auto up16 = [](int64_t n) { return (n + 15) / 16 * 16; };  // keep every array 64-byte aligned
  const int64_t qs_n = blk * Dp, o_n = blk * Dp;
  const int64_t per_thread = up16(qs_n) + up16(o_n) + 2 * up16(blk) + up16(rmax * ksub) + up16(rmax);
  FloatBuffer scratch;
  scratch.Allocate(per_thread * threads);
  RunOnThreads(threads, [&](int tid) {
    // Phase 1: stage K (and V) blocks.
    for (int64_t i; (i = next_stage.fetch_add(1)) < n_stage;) {
      const int64_t u = stage_units[size_t(i)];
      const int64_t bkv = u / nkb, c = u % nkb;
      const int64_t j0 = c * blk, kvalid = std::min<int64_t>(blk, s.Lk - j0);
      const int64_t src_off = (bkv * s.Lk + j0) * D;
      float* dst = transpose_k ? kt.data + u * kt_block_stride : nullptr;
      for (int64_t t = 0; transpose_k && t < n_chunks; ++t) {
        float* ch = dst + t * D * W;
        const int64_t k0 = t * ksub, n = std::max<int64_t>(0, std::min<int64_t>(W, kvalid - k0));
        for (int64_t d = 0; d < D; ++d) {
          float* out_row = ch + d * W;
          if (bf16) {
            const uint16_t* src = static_cast<const uint16_t*>(args.k) + src_off + k0 * D + d;
            for (int64_t j = 0; j < n; ++j) out_row[j] = Bf16ToF32(src[j * D]);
          } else {
            const float* src = static_cast<const float*>(args.k) + src_off + k0 * D + d;
            for (int64_t j = 0; j < n; ++j) out_row[j] = src[j * D];
          }
          for (int64_t j = n; j < W; ++j) out_row[j] = 0.0f;
        }
      }
      // Row-major fp32 copies, padded to Dp: V when needed, K too in the row-major layout.
      for (int pass = 0; pass < 2; ++pass) {
        if (pass == 0 ? !stage_v : !stage_k_rows) continue;
        const void* base = pass == 0 ? args.v : args.k;
        float* buf = pass == 0 ? vbuf.data : kbuf.data;
        for (int64_t j = 0; j < kvalid; ++j) {
          float* out_row = buf + (bkv * s.Lk + j0 + j) * Dp;
          if (bf16) {
            const uint16_t* src = static_cast<const uint16_t*>(base) + src_off + j * D;
            for (int64_t d = 0; d < D; ++d) out_row[d] = Bf16ToF32(src[d]);
          } else {
            const float* src = static_cast<const float*>(base) + src_off + j * D;
            for (int64_t d = 0; d < D; ++d) out_row[d] = src[d];
          }
          for (int64_t d = D; d < Dp; ++d) out_row[d] = 0.0f;
        }
      }
      staged_done.fetch_add(1);
    }
    // Every thread waits for the staging to finish before reading it (a short spin: staging
    // is a small fraction of the work and the units are handed out evenly).
    while (staged_done.load(std::memory_order_acquire) < n_stage) std::this_thread::yield();

    // Phase 2: attention rows.
    Scratch sc;
    sc.qs = scratch.data + per_thread * tid;
    sc.o = sc.qs + up16(qs_n);
    sc.m = sc.o + up16(o_n);
    sc.l = sc.m + up16(blk);
    sc.p = sc.l + up16(blk);
    sc.alpha = sc.p + up16(rmax * ksub);
    if (splits == 1) {
      for (int64_t i; (i = next_item.fetch_add(1)) < n_items;) isa->row(pr, order[size_t(i)], sc, nullptr);
    } else {
      for (int64_t u; (u = next_item.fetch_add(1)) < n_units;) isa->row(pr, u / splits, sc, &parts[size_t(u)]);
    }
  });
  for (int64_t it = 0; splits > 1 && it < n_items; ++it)
    isa->merge(pr, it, &parts[size_t(it * splits)], int(splits));
  return Status::Ok();
}

}  // namespace internal

Status Attention(const AttentionArgs& args, const BlockPlan& plan) {
  try {
    Status st = internal::Validate(args, plan);
    if (!st.ok()) return st;
    // The contract's non-finite policy (cc/src/nonfinite.h): the kernels see finite inputs only.
    const ElemType type = args.dtype == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32;
    return WithNonFinitePolicy(args.shape, type, args.q, args.k, args.v, args.scale, args.num_threads, plan,
                               args.out, args.lse, [&](const void* q, const void* k, const void* v) {
                                 AttentionArgs a = args;
                                 a.q = q, a.k = k, a.v = v;
                                 return internal::AttentionWithIsa(a, plan, internal::SelectIsa());
                               });
  } catch (const std::bad_alloc&) {
    // Staging buffers are O(B * Hkv * Lk * D); report instead of unwinding through C callers.
    return Status{ErrorCode::kInternal, "cpu attention: out of memory for the staged K/V buffers"};
  }
}

}  // namespace cpu
}  // namespace sattn
