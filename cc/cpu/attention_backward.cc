// CPU backward driver: validates the call against the plan, stages (in parallel) K and V
// transposed into the forward's chunk layout, q pre-scaled into base-2 units, dout, lse*log2(e)
// and delta = rowsum(dout*out) - dlse, transposes the plan (key block -> the query blocks that
// keep it), then runs the per-ISA kernels of kernel_bwd.inc: the dq items (b, h, query block)
// and the dk/dv items (b, kv head, key block), each handed out most expensive first from an
// atomic counter. Every output row is written by one item in a fixed order: no atomics, and the
// result does not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/cpu/kernels.h"
#include "cc/cpu/thread_pool.h"

namespace sattn {
namespace cpu {
namespace internal {
namespace {

struct Buffer {
  std::unique_ptr<float[]> raw;
  float* data = nullptr;
  void Allocate(int64_t n) {  // 64-byte aligned, not initialised
    raw.reset(new float[size_t(n) + 16]);
    const uintptr_t p = reinterpret_cast<uintptr_t>(raw.get());
    data = reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
  }
};

Status ValidateBackward(const BackwardArgs& a, const BlockPlan& plan) {
  const Shape& s = a.shape;
  Status st = ValidateShape(s);
  if (!st.ok()) return st;
  const struct {
    const void* p;
    const char* name;
  } ptrs[] = {{a.q, "q"},       {a.k, "k"},   {a.v, "v"},   {a.out, "out"}, {a.lse, "lse"},
              {a.dout, "dout"}, {a.dq, "dq"}, {a.dk, "dk"}, {a.dv, "dv"}};
  for (const auto& x : ptrs)
    if (x.p == nullptr) return Status::Invalid(std::string(x.name) + ": null pointer");
  return ValidateCallCommon(a.scale, a.num_threads, s, plan);
}

}  // namespace

Status AttentionBackwardWithIsa(const BackwardArgs& args, const BlockPlan& plan, const Isa* isa,
                                int64_t serial_below) {
  Status st = ValidateBackward(args, plan);
  if (!st.ok()) return st;
  if (isa == nullptr) return Status{ErrorCode::kInternal, "cpu attention backward: no kernel for this host"};
  const Shape& s = args.shape;
  const int64_t blk = plan.block, nkb = plan.n_k_blocks, nqb = plan.n_q_blocks;
  const int64_t n_bkv = int64_t(s.B) * s.Hkv, n_bh = int64_t(s.B) * s.Hq;
  const int group = s.Hq / s.Hkv;
  const int64_t D = s.D, L = isa->lanes, ksub = isa->ksub;
  const int64_t Dp = (D + L - 1) / L * L;
  const int64_t W = std::min<int64_t>(ksub, (blk + L - 1) / L * L);
  const int64_t n_chunks = (blk + ksub - 1) / ksub;
  const int64_t kt_block_stride = n_chunks * D * W;
  const int64_t q_first = int64_t(s.Lk) - s.Lq;
  const int64_t n_rows = n_bh * s.Lq;

  // The transposed plan: for each (plan_b, plan_h, key block), the (row, entry) pairs keeping it.
  const int64_t n_keys = int64_t(plan.plan_b) * plan.plan_h * nkb;
  std::vector<int32_t> t_ptr(size_t(n_keys + 1), 0), t_row(size_t(plan.nnz())), t_ent(size_t(plan.nnz()));
  for (int64_t row = 0; row < plan.rows(); ++row) {
    const int64_t ph_pb = row / nqb;  // pb * plan_h + ph
    for (int32_t e = plan.row_ptr[row]; e < plan.row_ptr[row + 1]; ++e) ++t_ptr[size_t(ph_pb * nkb + plan.col_idx[e] + 1)];
  }
  for (int64_t i = 0; i < n_keys; ++i) t_ptr[size_t(i + 1)] += t_ptr[size_t(i)];
  {
    std::vector<int32_t> fill(t_ptr.begin(), t_ptr.end() - 1);
    for (int64_t row = 0; row < plan.rows(); ++row) {
      const int64_t ph_pb = row / nqb;
      for (int32_t e = plan.row_ptr[row]; e < plan.row_ptr[row + 1]; ++e) {
        const int32_t at = fill[size_t(ph_pb * nkb + plan.col_idx[e])]++;
        t_row[size_t(at)] = int32_t(row % nqb);
        t_ent[size_t(at)] = e;
      }
    }
  }
  auto rows_of_block = [&](int64_t r) {
    const int64_t a = r + plan.q_block_begin;
    return std::min((a + 1) * blk, int64_t(s.Lk)) - std::max(a * blk, q_first);
  };

  // Work items and their costs (kept entries x valid rows x block), most expensive first.
  const int64_t n_dq = n_bh * nqb, n_kv = n_bkv * nkb;
  std::vector<int64_t> cost(size_t(n_dq + n_kv), 0);
  int64_t total_cost = 0;
  for (int64_t it = 0; it < n_dq; ++it) {
    const int64_t r = it % nqb, bh = it / nqb;
    const int64_t row = plan.row_of(int32_t(bh / s.Hq), int32_t(bh % s.Hq), int32_t(r));
    cost[size_t(it)] = (plan.row_ptr[row + 1] - plan.row_ptr[row]) * blk * rows_of_block(r) + 1;
    total_cost += cost[size_t(it)];
  }
  for (int64_t it = 0; it < n_kv; ++it) {
    const int64_t c = it % nkb, bkv = it / nkb;
    const int64_t b = bkv / s.Hkv, hk = bkv % s.Hkv;
    int64_t cst = 1;
    for (int gi = 0; gi < group; ++gi) {
      const int64_t h = hk * group + gi;
      const int64_t key = ((plan.plan_b == 1 ? 0 : b) * plan.plan_h + (plan.plan_h == 1 ? 0 : h)) * nkb + c;
      for (int32_t t = t_ptr[size_t(key)]; t < t_ptr[size_t(key + 1)]; ++t) cst += rows_of_block(t_row[size_t(t)]) * blk;
    }
    cost[size_t(n_dq + it)] = cst;
    total_cost += cst;
  }
  auto by_cost = [&](int64_t base, int64_t n) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
      const int64_t cx = cost[size_t(base + x)], cy = cost[size_t(base + y)];
      return cx != cy ? cx > cy : x < y;
    });
    return order;
  };
  const std::vector<int64_t> order_dq = by_cost(0, n_dq), order_kv = by_cost(n_dq, n_kv);

  // Staging buffers.
  Buffer kt, vt, kbuf, qs, dos, lse2, delta;
  kt.Allocate(n_bkv * nkb * kt_block_stride);
  vt.Allocate(n_bkv * nkb * kt_block_stride);
  const bool stage_k_rows = Dp != D;  // the dq update reads K rows in whole vectors
  if (stage_k_rows) kbuf.Allocate(n_bkv * int64_t(s.Lk) * Dp);
  qs.Allocate(n_rows * Dp);
  dos.Allocate(n_rows * Dp);
  lse2.Allocate(n_rows);
  delta.Allocate(n_rows);

  BwdProblem pr;
  pr.plan = &plan;
  pr.B = s.B, pr.Hq = s.Hq, pr.Hkv = s.Hkv, pr.Lq = s.Lq, pr.Lk = s.Lk, pr.D = s.D;
  pr.Dp = int32_t(Dp);
  pr.group = group;
  pr.qs = qs.data, pr.dos = dos.data, pr.lse2 = lse2.data, pr.delta = delta.data;
  pr.kt = kt.data, pr.vt = vt.data, pr.kt_w = int32_t(W), pr.kt_block_stride = kt_block_stride;
  pr.k_rows = stage_k_rows ? kbuf.data : args.k;
  pr.k_ld = stage_k_rows ? Dp : D;
  pr.k_head_stride = int64_t(s.Lk) * pr.k_ld;
  pr.t_ptr = t_ptr.data(), pr.t_row = t_row.data(), pr.t_ent = t_ent.data();
  pr.dq = args.dq, pr.dk = args.dk, pr.dv = args.dv;
  pr.dq_scale = float(args.scale);
  pr.dk_scale = float(0.6931471805599453);
  pr.normalizer = int32_t(args.normalizer);
  pr.bias2 = float(-std::log2(double(s.Lk)));
  pr.w_scale = float(0.4804530139182014 / double(s.Lk));  // ln(2)^2 / Lk
  pr.dw_scale = float(2.0 * 0.6931471805599453 / double(s.Lk));
  const float qscale = float(args.scale * 1.4426950408889634);

  // Staging units: (b, kv head, key block) for K and V, then chunks of 64 query rows.
  const int64_t q_unit = 64;
  const int64_t n_q_units = (n_rows + q_unit - 1) / q_unit;
  const int64_t n_stage = n_kv + n_q_units;

  int threads = ResolveThreads(args.num_threads);
  if (total_cost * D < serial_below) threads = 1;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, std::max(n_dq, n_kv))));

  // Per-thread scratch, allocated here: an allocation failing inside a worker thread would end
  // the process instead of returning kInternal.
  auto up16 = [](int64_t n) { return (n + 15) / 16 * 16; };
  const int64_t acc_n = n_chunks * ksub * Dp, pn = std::max<int64_t>(blk, isa->rmax) * ksub;
  const int64_t per_thread = 2 * up16(acc_n) + 2 * up16(pn);
  Buffer scratch;
  scratch.Allocate(per_thread * threads);

  std::atomic<int64_t> next_stage{0}, staged_done{0}, next_dq{0}, next_kv{0};
  RunOnThreads(threads, [&](int tid) {
    for (int64_t i; (i = next_stage.fetch_add(1)) < n_stage;) {
      if (i < n_kv) {
        const int64_t bkv = i / nkb, c = i % nkb;
        const int64_t j0 = c * blk, kvalid = std::min<int64_t>(blk, s.Lk - j0);
        const int64_t src_off = (bkv * s.Lk + j0) * D;
        for (int pass = 0; pass < 2; ++pass) {
          const float* src0 = (pass == 0 ? args.k : args.v) + src_off;
          float* dst = (pass == 0 ? kt.data : vt.data) + i * kt_block_stride;
          for (int64_t t = 0; t < n_chunks; ++t) {
            float* ch = dst + t * D * W;
            const int64_t k0 = t * ksub, n = std::max<int64_t>(0, std::min<int64_t>(W, kvalid - k0));
            for (int64_t d = 0; d < D; ++d) {
              float* row = ch + d * W;
              const float* src = src0 + k0 * D + d;
              for (int64_t j = 0; j < n; ++j) row[j] = src[j * D];
              for (int64_t j = n; j < W; ++j) row[j] = 0.0f;
            }
          }
        }
        if (stage_k_rows) {
          for (int64_t j = 0; j < kvalid; ++j) {
            float* row = kbuf.data + (bkv * s.Lk + j0 + j) * Dp;
            const float* src = args.k + src_off + j * D;
            for (int64_t d = 0; d < D; ++d) row[d] = src[d];
            for (int64_t d = D; d < Dp; ++d) row[d] = 0.0f;
          }
        }
      } else {
        const int64_t g0 = (i - n_kv) * q_unit, g1 = std::min(n_rows, g0 + q_unit);
        for (int64_t g = g0; g < g1; ++g) {
          const float* q = args.q + g * D;
          const float* o = args.out + g * D;
          const float* dq = args.dout + g * D;
          float* qd = qs.data + g * Dp;
          float* dd = dos.data + g * Dp;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            qd[d] = q[d] * qscale;
            dd[d] = dq[d];
            dot += double(dq[d]) * double(o[d]);
          }
          for (int64_t d = D; d < Dp; ++d) qd[d] = dd[d] = 0.0f;
          delta.data[g] = float(dot - (args.dlse ? double(args.dlse[g]) : 0.0));
          const float l = args.lse[g];
          lse2.data[g] = std::isfinite(l) ? float(double(l) * 1.4426950408889634) : __builtin_inff();
        }
      }
      staged_done.fetch_add(1, std::memory_order_release);
    }
    while (staged_done.load(std::memory_order_acquire) < n_stage) std::this_thread::yield();

    BwdScratch sc;
    sc.acc = scratch.data + per_thread * tid;
    sc.acc2 = sc.acc + up16(acc_n);
    sc.p = sc.acc2 + up16(acc_n);
    sc.ds = sc.p + up16(pn);
    sc.acc_n = acc_n;
    for (int64_t i; (i = next_dq.fetch_add(1)) < n_dq;) isa->bwd_dq(pr, order_dq[size_t(i)], sc);
    for (int64_t i; (i = next_kv.fetch_add(1)) < n_kv;) isa->bwd_dkdv(pr, order_kv[size_t(i)], sc);
  });
  return Status::Ok();
}

}  // namespace internal

Status AttentionBackward(const BackwardArgs& args, const BlockPlan& plan) {
  try {
    return internal::AttentionBackwardWithIsa(args, plan, internal::SelectIsa());
  } catch (const std::bad_alloc&) {
    return Status{ErrorCode::kInternal, "cpu attention backward: out of memory for the staged buffers"};
  }
}

}  // namespace cpu
}  // namespace sattn
