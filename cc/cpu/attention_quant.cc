// Driver of the quantized CPU forward (AttentionQuant): quantizes k (after smoothing) and v per
// kv head, q per head, exactly as sattn.quant's float64 model does (double precision, round half
// to even, clamped codes), stages them in the kernel's layouts and runs the per-ISA QuantRow
// (kernel_int8.inc) over the plan's rows, most expensive first, as AttentionWithIsa does.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include "cc/cpu/attention.h"
#include "cc/cpu/kernels.h"
#include "cc/cpu/thread_pool.h"
#include "cc/cpu/work_items.h"

namespace sattn {
namespace cpu {
namespace internal {
namespace {

constexpr double kQmax8 = 127.0;
constexpr double kLog2e = 1.4426950408889634;

// 64-byte aligned, zero-initialised storage (padding keys and channels must read as 0).
template <typename T>
struct Aligned {
  std::unique_ptr<T[]> raw;
  T* data = nullptr;
  void Allocate(int64_t n) {
    const int64_t pad = 64 / int64_t(sizeof(T)) + 1;
    raw.reset(new T[size_t(n + pad)]());
    const uintptr_t p = reinterpret_cast<uintptr_t>(raw.get());
    data = reinterpret_cast<T*>((p + 63) & ~uintptr_t(63));
  }
};

// rint(x / scale) clamped to [-qmax, qmax], ties to even. Clamping first is the same for an
// integer qmax; the rounding is the 1.5 * 2^52 trick (round to nearest even in the default mode,
// exact for |y| < 2^51), a few instructions where nearbyint is a library call on baseline x86-64.
inline double Code(double x, double scale, double qmax) {
  const double y = std::min(qmax, std::max(-qmax, x / scale));
  constexpr double kRound = 6755399441055744.0;
  return (y + kRound) - kRound;
}

double SafeScale(double amax, double qmax) { return amax > 0.0 ? amax / qmax : 1.0; }

float RoundToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t Bf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);
}

Status NotFinite(const char* name) {
  return Status::Invalid(std::string(name) + ": quantized attention takes finite values only (a scale over "
                         "NaN/Inf is meaningless); this " + name + " holds NaN or Inf");
}

// The staging loops below get AVX-512 and AVX2 clones picked at load time (baseline x86-64 code
// works on two doubles at a time). They are written with 8 explicit lanes and no loop-invariant
// branches inside, so that -O2 vectorizes them without reassociating anything.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SATTN_STAGE_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default"), optimize("vect-cost-model=dynamic")))
#else
#define SATTN_STAGE_CLONES
#endif

constexpr int kLanes = 8;

// max |(x - mean) * mul| over n rows of D values (row stride D; mul null: 1) per channel into
// chan (D), or overall (chan null); returns -1 when a value is NaN or Inf.
SATTN_STAGE_CLONES double RowsAmax(const float* x, int64_t n, int64_t D, const double* mean, const double* mul,
                                   double* chan) {
  double amax[kLanes] = {}, bad[kLanes] = {};
  if (chan)
    for (int64_t d = 0; d < D; ++d) chan[d] = 0.0;
  double tail_max = 0.0, tail_bad = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    const float* xj = x + j * D;
    int64_t d0 = 0;
    if (mul == nullptr && chan == nullptr) {  // the common case: no branch inside
      for (; d0 + kLanes <= D; d0 += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          const double a = std::fabs(double(xj[d0 + l]) - mean[d0 + l]);
          bad[l] += a - a;  // 0 for finite values, NaN for NaN or Inf
          amax[l] = a > amax[l] ? a : amax[l];
        }
    }
    for (; d0 < D; ++d0) {
      const double a = std::fabs((double(xj[d0]) - mean[d0]) * (mul ? mul[d0] : 1.0));
      tail_bad += a - a;
      tail_max = a > tail_max ? a : tail_max;
      if (chan) chan[d0] = a > chan[d0] ? a : chan[d0];
    }
  }
  double m = tail_max, b = tail_bad;
  for (int l = 0; l < kLanes; ++l) {
    m = amax[l] > m ? amax[l] : m;
    b += bad[l];
  }
  return b == 0.0 ? m : -1.0;
}

// sum_d x[d] * y[d] in 8 partial sums (a plain loop is one dependent chain of adds).
SATTN_STAGE_CLONES double Dot(const float* x, const double* y, int64_t D) {
  double acc[kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= D; d += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += double(x[d + l]) * y[d + l];
  for (; d < D; ++d) acc[0] += double(x[d]) * y[d];
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum;
}

// codes[d] = Code((x[d] - mean[d]) * mul[d], scale, qmax) for one row with one scale (scale[d]
// per channel when per_channel); returns their sum.
SATTN_STAGE_CLONES int32_t RowCodes(const float* x, int64_t D, const double* mean, const double* mul,
                                    const double* scale, bool per_channel, double qmax, int32_t* codes) {
  int32_t sum = 0;
  if (per_channel) {
    for (int64_t d = 0; d < D; ++d) {
      codes[d] = int32_t(Code(double(x[d]) - mean[d], scale[d], qmax));
      sum += codes[d];
    }
  } else if (mul) {
    const double s = scale[0];
    for (int64_t d = 0; d < D; ++d) {
      codes[d] = int32_t(Code((double(x[d]) - mean[d]) * mul[d], s, qmax));
      sum += codes[d];
    }
  } else {
    const double s = scale[0];
    for (int64_t d = 0; d < D; ++d) {
      codes[d] = int32_t(Code(double(x[d]) - mean[d], s, qmax));
      sum += codes[d];
    }
  }
  return sum;
}

// One V row in the P V operand format: its codes times the scale (scale null: V unquantized),
// then rounded to bf16 when pv is bf16. Returns false when the row holds NaN or Inf.
SATTN_STAGE_CLONES bool StageVRow(const float* x, int64_t D, const double* scale, bool per_channel, double qmax,
                                  bool bf16, float* out) {
  float bad = 0.0f;
  for (int64_t d = 0; d < D; ++d) {
    float f = x[d];
    bad += f - f;  // 0 for finite values, NaN for NaN or Inf
    if (scale) {
      const double sv = per_channel ? scale[d] : scale[0];
      f = float(Code(double(f), sv, qmax) * sv);
    }
    out[d] = bf16 ? RoundToBf16(f) : f;
  }
  return bad == 0.0f;
}

// Per-row scales of one head of n rows (L x D floats, smoothed by `mean`, times mul per channel
// when given), dynamic (amax / qmax) or static (clip / qmax), one per token (kToken) or per
// `block` tokens (kBlock); under kChannel per channel into chan (D). False on NaN/Inf.
bool HeadScales(const float* x, int64_t n, int64_t D, const double* mean, const double* mul, QuantGranularity g,
                int64_t block, double qmax, const double* clip, std::vector<double>* rows,
                std::vector<double>* chan) {
  if (g == QuantGranularity::kChannel) {
    chan->assign(size_t(D), 0.0);
    if (RowsAmax(x, n, D, mean, mul, chan->data()) < 0.0) return false;
    for (int64_t d = 0; d < D; ++d) (*chan)[size_t(d)] = clip ? clip[d] / qmax : SafeScale((*chan)[size_t(d)], qmax);
    return true;
  }
  const int64_t gsize = g == QuantGranularity::kToken ? 1 : block;
  rows->assign(size_t(n), 0.0);
  for (int64_t j0 = 0; j0 < n; j0 += gsize) {
    const int64_t j1 = std::min(n, j0 + gsize);
    const double amax = RowsAmax(x + j0 * D, j1 - j0, D, mean, mul, nullptr);
    if (amax < 0.0) return false;
    const double sc = clip ? clip[0] / qmax : SafeScale(amax, qmax);
    for (int64_t j = j0; j < j1; ++j) (*rows)[size_t(j)] = sc;
  }
  return true;
}

Status ValidateQuant(const QuantArgs& a, const BlockPlan& plan) {
  Status st = ValidateShape(a.shape);
  if (!st.ok()) return st;
  if (a.q == nullptr) return Status::Invalid("q: null pointer");
  if (a.k == nullptr) return Status::Invalid("k: null pointer");
  if (a.v == nullptr) return Status::Invalid("v: null pointer");
  if (a.out == nullptr) return Status::Invalid("out: null pointer");
  if (int(a.granularity) < 0 || int(a.granularity) > 2)
    return Status::Invalid("quant.granularity: expected block, token or channel");
  if (a.granularity == QuantGranularity::kBlock && a.block < 1)
    return Status::Invalid("quant.block: expected >= 1, got " + std::to_string(a.block));
  if (a.pv != PvFormat::kF32 && a.pv != PvFormat::kBF16) return Status::Invalid("quant.pv: expected fp32 or bf16");
  if (a.v_qmax != 0 && a.v_qmax != 7 && a.v_qmax != 127)
    return Status::Invalid("quant.v: expected V codes of int8 (127) or int4 (7), got qmax " + std::to_string(a.v_qmax));
  if (a.clip_v != nullptr && a.v_qmax == 0) return Status::Invalid("scales.v: static V clips given for an unquantized V");
  if ((a.clip_q == nullptr) != (a.clip_k == nullptr) || (a.clip_v == nullptr && a.clip_q != nullptr && a.v_qmax))
    return Status::Invalid("scales: static clips must be given for all of q, k (and v when quantized) or none");
  const bool channel = a.granularity == QuantGranularity::kChannel;
  auto check_clips = [&](const double* c, int64_t n, const char* name) {
    for (int64_t i = 0; c != nullptr && i < n; ++i)
      if (!(c[i] > 0.0) || !std::isfinite(c[i]))
        return Status::Invalid(std::string("scales.") + name + ": clips must be positive and finite");
    return Status::Ok();
  };
  const int64_t per_kv = channel ? int64_t(a.shape.Hkv) * a.shape.D : a.shape.Hkv;
  if (!(st = check_clips(a.clip_q, a.shape.Hq, "q")).ok()) return st;
  if (!(st = check_clips(a.clip_k, per_kv, "k")).ok()) return st;
  if (!(st = check_clips(a.clip_v, per_kv, "v")).ok()) return st;
  return ValidateCallCommon(a.scale, a.num_threads, a.shape, plan);
}

}  // namespace

const QuantIsa* SelectQuantIsa() {
  static const QuantIsa* chosen = [] {
    const QuantIsa* best = QuantIsaPortable();
    if (QuantIsaAvx2() && CpuHasAvx2()) best = QuantIsaAvx2();
    if (QuantIsaAvx512() && CpuHasAvx512Vnni()) best = QuantIsaAvx512();
    const std::string want = ForcedIsaName();
    if (want == "portable") best = QuantIsaPortable();
    if (want == "avx2" && QuantIsaAvx2() && CpuHasAvx2()) best = QuantIsaAvx2();
    if (want == "avx512" && QuantIsaAvx512() && CpuHasAvx512Vnni()) best = QuantIsaAvx512();
    return best;
  }();
  return chosen;
}

Status AttentionQuantWithIsa(const QuantArgs& args, const BlockPlan& plan, const QuantIsa* isa,
                             int64_t serial_below) {
  Status st = ValidateQuant(args, plan);
  if (!st.ok()) return st;
  if (isa == nullptr) return Status{ErrorCode::kInternal, "cpu quantized attention: no kernel for this host"};
  const Shape& s = args.shape;
  const int64_t B = s.B, Hq = s.Hq, Hkv = s.Hkv, Lq = s.Lq, Lk = s.Lk, D = s.D;
  const int64_t blk = plan.block, nkb = plan.n_k_blocks, n_bkv = B * Hkv;
  const int64_t group = Hq / Hkv;
  const int64_t L = isa->lanes, ksub = isa->ksub;
  const int64_t Dp = (D + L - 1) / L * L;
  const int64_t nq = (D + 3) / 4;
  const int64_t W = std::min<int64_t>(ksub, (blk + L - 1) / L * L);
  const int64_t n_chunks = (blk + ksub - 1) / ksub;
  const int64_t kpb = n_chunks * W;
  const int64_t kc_block_stride = n_chunks * nq * W * 4;
  const bool channel = args.granularity == QuantGranularity::kChannel;
  const bool pv_bf16 = args.pv == PvFormat::kBF16;
  const bool pairs = isa->bf16_pairs && pv_bf16 && blk % 2 == 0;
  const bool v_in_place = !pairs && args.v_qmax == 0 && !pv_bf16 && Dp == D;
  const int32_t qoff = isa->q_offset;

  Aligned<int8_t> kc;
  Aligned<float> ks, vrows, qrs, part_buf, scratch;
  Aligned<int32_t> kcorr, qw;
  Aligned<uint16_t> vp, pbuf;
  kc.Allocate(n_bkv * nkb * kc_block_stride);
  ks.Allocate(n_bkv * nkb * kpb);
  kcorr.Allocate(n_bkv * nkb * kpb);
  const int64_t Lk2 = (Lk + 1) / 2 * 2;  // whole key pairs: an odd Lk's last pair has a zero row
  if (pairs) vp.Allocate(n_bkv * Lk2 * Dp);
  else if (!v_in_place) vrows.Allocate(n_bkv * Lk * Dp);
  qw.Allocate(B * Hq * Lq * nq);
  qrs.Allocate(B * Hq * Lq);
  std::vector<double> kmean(size_t(n_bkv * D), 0.0);   // per kv head: K's mean over tokens
  std::vector<double> kchan(channel ? size_t(n_bkv * D) : 0);  // channel: K's scale per channel
  std::vector<float> lse_shift(args.lse && args.smooth_k ? size_t(B * Hq * Lq) : 0);
  std::vector<uint8_t> bad(3, 0);  // q, k, v held NaN/Inf

  const int64_t work = B * Hq * Lq * D + n_bkv * Lk * D;
  // Work items as AttentionWithIsa hands them out (work_items.h).
  const int64_t n_items = B * Hq * plan.n_q_blocks;
  const WorkItems items = ForwardWorkItems(plan, B, Hq, Lq, Lk, blk);
  const int64_t total_cost = items.total_cost;
  const std::vector<int64_t>& order = items.order;
  int threads = ResolveThreads(args.num_threads);
  if (total_cost * D + work < serial_below) threads = 1;
  threads = int(std::min<int64_t>(threads, std::max<int64_t>(n_items, n_bkv)));
  threads = std::max(threads, 1);

  // Phase 1, per kv head: smooth and quantize K into the kernel layout; V to its codes and pv.
  std::atomic<int64_t> next{0};
  const std::vector<double> zeros(size_t(D), 0.0);
  RunOnThreads(threads, [&](int) {
    std::vector<double> rs, cs;
    std::vector<int32_t> codes(static_cast<size_t>(nq * 4));
    for (int64_t bkv; (bkv = next.fetch_add(1)) < 2 * n_bkv;) {
      const bool is_v = bkv >= n_bkv;
      if (is_v) bkv -= n_bkv;
      const int64_t hkv = bkv % Hkv;
      const float* src = (is_v ? args.v : args.k) + bkv * Lk * D;
      if (is_v && v_in_place) continue;
      if (!is_v) {
        double* mean = kmean.data() + bkv * D;
        if (args.smooth_k) {
          for (int64_t j = 0; j < Lk; ++j)
            for (int64_t d = 0; d < D; ++d) mean[d] += double(src[j * D + d]);
          for (int64_t d = 0; d < D; ++d) mean[d] /= double(Lk);
        }
        const double* clip = args.clip_k ? args.clip_k + (channel ? hkv * D : hkv) : nullptr;
        if (!HeadScales(src, Lk, D, mean, nullptr, args.granularity, args.block, kQmax8, clip, &rs, &cs)) {
          bad[1] = 1;
          continue;
        }
        for (int64_t d = 0; channel && d < D; ++d) kchan[size_t(bkv * D + d)] = cs[size_t(d)];
        for (int64_t j = 0; j < Lk; ++j) {
          const int64_t c = j / blk, kk = j % blk, t = kk / ksub, jj = kk % ksub;
          const int64_t u = bkv * nkb + c;
          const int32_t sum = RowCodes(src + j * D, D, mean, nullptr, channel ? cs.data() : &rs[size_t(j)], channel,
                                       kQmax8, codes.data());
          int8_t* dst = kc.data + u * kc_block_stride + t * nq * W * 4 + jj * 4;
          for (int64_t d = D; d < nq * 4; ++d) codes[size_t(d)] = 0;
          for (int64_t i = 0; i < nq; ++i) {  // one 4-byte word (4 channels) per quad
            const int32_t* c4 = codes.data() + 4 * i;
            const uint32_t word = (uint32_t(c4[0]) & 0xffu) | (uint32_t(c4[1]) & 0xffu) << 8 |
                                  (uint32_t(c4[2]) & 0xffu) << 16 | (uint32_t(c4[3]) & 0xffu) << 24;
            std::memcpy(dst + i * W * 4, &word, 4);
          }
          ks.data[u * kpb + kk] = channel ? 1.0f : float(rs[size_t(j)]);
          kcorr.data[u * kpb + kk] = qoff * sum;
        }
        continue;
      }
      const double qm = double(args.v_qmax);
      if (args.v_qmax) {
        const double* clip = args.clip_v ? args.clip_v + (channel ? hkv * D : hkv) : nullptr;
        if (!HeadScales(src, Lk, D, zeros.data(), nullptr, args.granularity, args.block, qm, clip, &rs, &cs)) {
          bad[2] = 1;
          continue;
        }
      }
      std::vector<float> row(static_cast<size_t>(D));
      for (int64_t j = 0; j < Lk; ++j) {
        if (!StageVRow(src + j * D, D, args.v_qmax ? (channel ? cs.data() : &rs[size_t(j)]) : nullptr, channel, qm,
                       pv_bf16, row.data()))
          bad[2] = 1;
        if (pairs) {
          uint16_t* dst = vp.data + bkv * Lk2 * Dp + (j / 2) * 2 * Dp + j % 2;
          for (int64_t d = 0; d < D; ++d) dst[2 * d] = Bf16Bits(row[size_t(d)]);
        } else {
          std::memcpy(vrows.data + (bkv * Lk + j) * Dp, row.data(), sizeof(float) * size_t(D));
        }
      }
    }
  });
  if (bad[1]) return NotFinite("k");
  if (bad[2]) return NotFinite("v");
  if (v_in_place && RowsAmax(args.v, n_bkv * Lk, D, zeros.data(), nullptr, nullptr) < 0.0) return NotFinite("v");

  // Phase 2, per query head: quantize q (after folding K's channel scales in, under kChannel)
  // and the lse shift scale * q . mean(k) that restores the unsmoothed scores' lse.
  next = 0;
  RunOnThreads(threads, [&](int) {
    std::vector<double> rs, cs;
    std::vector<int32_t> codes(static_cast<size_t>(nq * 4));
    for (int64_t bh; (bh = next.fetch_add(1)) < B * Hq;) {
      const int64_t b = bh / Hq, h = bh % Hq, bkv = b * Hkv + h / group;
      const float* src = args.q + bh * Lq * D;
      if (!lse_shift.empty()) {
        const double* mean = kmean.data() + bkv * D;
        for (int64_t i = 0; i < Lq; ++i) lse_shift[size_t(bh * Lq + i)] = float(args.scale * Dot(src + i * D, mean, D));
      }
      const double* mul = channel ? kchan.data() + bkv * D : nullptr;
      const double* clip = args.clip_q ? args.clip_q + h : nullptr;
      const QuantGranularity g = channel ? QuantGranularity::kToken : args.granularity;
      if (!HeadScales(src, Lq, D, zeros.data(), mul, g, args.block, kQmax8, clip, &rs, &cs)) {
        bad[0] = 1;
        continue;
      }
      for (int64_t i = 0; i < Lq; ++i) {
        RowCodes(src + i * D, D, zeros.data(), mul, &rs[size_t(i)], false, kQmax8, codes.data());
        uint8_t* dst = reinterpret_cast<uint8_t*>(qw.data + (bh * Lq + i) * nq);
        for (int64_t d = 0; d < nq * 4; ++d) dst[d] = uint8_t((d < D ? codes[size_t(d)] : 0) + qoff);
        qrs.data[bh * Lq + i] = float(rs[size_t(i)] * args.scale * kLog2e);
      }
    }
  });
  if (bad[0]) return NotFinite("q");

  QuantProblem qp;
  Problem& pr = qp.base;
  pr.plan = &plan;
  pr.B = s.B, pr.Hq = s.Hq, pr.Hkv = s.Hkv, pr.Lq = s.Lq, pr.Lk = s.Lk, pr.D = s.D;
  pr.Dp = int32_t(Dp);
  pr.group = int32_t(group);
  pr.bf16 = false;
  pr.out = args.out, pr.lse = args.lse;
  pr.v = v_in_place ? args.v : vrows.data;
  pr.v_ld = v_in_place ? D : Dp;
  pr.v_head_stride = Lk * pr.v_ld;
  qp.qw = qw.data, qp.nq = int32_t(nq), qp.qrs = qrs.data;
  qp.kc = kc.data, qp.kc_block_stride = kc_block_stride, qp.W = int32_t(W), qp.keys_per_block = int32_t(kpb);
  qp.ks = ks.data, qp.kcorr = kcorr.data;
  qp.p_bf16 = pv_bf16;
  qp.vp = pairs ? vp.data : nullptr;
  qp.vp_head_stride = Lk2 * Dp;

  // Key-split decode (fewer items than threads), merged by LSE as in AttentionWithIsa.
  const int64_t splits = KeySplits(threads, n_items, items.max_entries);
  const int64_t n_units = n_items * splits;
  std::vector<Partial> parts;
  if (splits > 1) {
    part_buf.Allocate(n_units * PartialFloats(blk, Dp));
    parts = SplitPartials(plan, items.row, splits, blk, Dp, part_buf.data);
  }
  const int64_t rmax = isa->rmax;
  auto up16 = [](int64_t n) { return (n + 15) / 16 * 16; };
  const int64_t per_thread = up16(blk * Dp) + 2 * up16(blk) + up16(rmax * ksub) + up16(rmax);
  scratch.Allocate(per_thread * threads);
  pbuf.Allocate(up16(rmax * ksub) * threads);
  next = 0;
  RunOnThreads(threads, [&](int tid) {
    QuantScratch sc;
    sc.o = scratch.data + per_thread * tid;
    sc.m = sc.o + up16(blk * Dp);
    sc.l = sc.m + up16(blk);
    sc.p = sc.l + up16(blk);
    sc.alpha = sc.p + up16(rmax * ksub);
    sc.pb = pbuf.data + up16(rmax * ksub) * tid;
    if (splits == 1) {
      for (int64_t i; (i = next.fetch_add(1)) < n_items;) isa->row(qp, order[size_t(i)], sc, nullptr);
    } else {
      for (int64_t u; (u = next.fetch_add(1)) < n_units;) isa->row(qp, u / splits, sc, &parts[size_t(u)]);
    }
  });
  for (int64_t it = 0; splits > 1 && it < n_items; ++it) isa->merge(pr, it, &parts[size_t(it * splits)], int(splits));
  if (args.lse) {
    for (int64_t i = 0; i < B * Hq * Lq; ++i)
      if (args.lse[i] > -__builtin_inff() && !lse_shift.empty()) args.lse[i] += lse_shift[size_t(i)];
  }
  return Status::Ok();
}

}  // namespace internal

Status AttentionQuant(const QuantArgs& args, const BlockPlan& plan) {
  const internal::QuantIsa* isa = internal::SelectQuantIsa();
  if (args.isa != nullptr) {
    const std::string want(args.isa);
    isa = nullptr;
    if (want == "portable") isa = internal::QuantIsaPortable();
    if (want == "avx2" && internal::CpuHasAvx2()) isa = internal::QuantIsaAvx2();
    if (want == "avx512_vnni" && internal::CpuHasAvx512Vnni()) isa = internal::QuantIsaAvx512();
    if (isa == nullptr)
      return Status::Invalid("isa: '" + want + "' is not a quantized kernel this CPU runs (avx512_vnni, avx2, "
                             "portable)");
  }
  try {
    return internal::AttentionQuantWithIsa(args, plan, isa);
  } catch (const std::bad_alloc&) {
    return Status{ErrorCode::kInternal, "cpu quantized attention: out of memory for the staged buffers"};
  }
}

const char* QuantIsaName() { return internal::SelectQuantIsa()->name; }

}  // namespace cpu
}  // namespace sattn
