// The RISC-V attention driver (driver.h). Per (batch, head, query block): the plan row's kept key
// blocks are processed in chunks of up to RunOptions::chunk_keys slots; each chunk is gathered
// (transposed) once and then every query row of the block takes one online-softmax step over it.
#include "rvv/driver.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "rvv/kernels/kernels.h"

namespace sattn {
namespace rvv {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ORs `nbits` bits of src (word 0 first) into dst starting at bit `off`.
void AppendBits(uint64_t* dst, int64_t off, const uint64_t* src, int32_t nbits) {
  for (int32_t w = 0; w * 64 < nbits; ++w) {
    uint64_t word = src[w];
    const int32_t take = std::min(64, nbits - w * 64);
    if (take < 64) word &= (uint64_t(1) << take) - 1;
    const int64_t pos = off + int64_t(w) * 64, wi = pos >> 6, sh = pos & 63;
    dst[wi] |= word << sh;
    if (sh != 0) dst[wi + 1] |= word >> (64 - sh);
  }
}

Status CheckShapes(const Problem& pb) {
  const Shape& s = pb.shape;
  const BlockPlan& p = pb.plan;
  if (p.B != s.B || p.Hq != s.Hq || p.Lq != s.Lq || p.Lk != s.Lk)
    return Status::Invalid("plan: B/Hq/Lq/Lk do not match problem.shape");
  if (s.Hkv < 1 || s.Hq % s.Hkv != 0) return Status::Invalid("shape.Hkv: must divide Hq");
  const size_t nq = size_t(s.B) * s.Hq * s.Lq * s.D, nk = size_t(s.B) * s.Hkv * s.Lk * s.D;
  if (pb.q.size() != nq) return Status::Invalid("q: expected B*Hq*Lq*D floats");
  if (pb.k.size() != nk || pb.v.size() != nk) return Status::Invalid("k, v: expected B*Hkv*Lk*D floats");
  if (!(pb.scale > 0) || !std::isfinite(pb.scale)) return Status::Invalid("scale: expected a finite number > 0");
  return ValidatePlan(p);
}

}  // namespace

bool ParseDType(const std::string& name, DType* out) {
  if (name == "fp32" || name == "float32") { *out = DType::kF32; return true; }
  if (name == "bf16" || name == "bfloat16") { *out = DType::kBF16; return true; }
  if (name == "int8" || name == "i8") { *out = DType::kI8; return true; }
  return false;
}

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "fp32";
    case DType::kBF16: return "bf16";
    case DType::kI8: return "int8";
  }
  return "?";
}

uint16_t FloatToBF16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0)
    return uint16_t((bits >> 16) | 0x40);  // NaN stays a (quiet) NaN
  const uint32_t round = 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t((bits + round) >> 16);
}

float BF16ToFloat(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float QuantizeRowsI8(const float* x, int64_t n, int32_t D, int8_t* x8) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n * D; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
  for (int64_t i = 0; i < n * D; ++i) {
    const float r = std::nearbyint(x[i] / scale);
    x8[i] = int8_t(std::max(-127.0f, std::min(127.0f, r)));
  }
  return scale;
}

Status RunAttention(const Problem& pb, const RunOptions& opt, std::vector<float>* out,
                    std::vector<float>* lse, RunStats* stats) {
  Status st = CheckShapes(pb);
  if (!st.ok()) return st;
  if (opt.chunk_keys < 1) return Status::Invalid("chunk_keys: expected >= 1");
  const Shape& sh = pb.shape;
  const BlockPlan& plan = pb.plan;
  const int32_t blk = plan.block, D = sh.D, group = sh.Hq / sh.Hkv;
  const int64_t qf = int64_t(sh.Lk) - sh.Lq;
  const float scale = float(pb.scale);
  const DType dt = opt.dtype;
  RunStats local;
  RunStats& rs = stats ? *stats : local;

  out->assign(size_t(sh.B) * sh.Hq * sh.Lq * D, 0.0f);
  lse->assign(size_t(sh.B) * sh.Hq * sh.Lq, kNegInf);

  // Storage conversions (what a board would keep in memory).
  std::vector<uint16_t> q16, k16, v16;
  std::vector<int8_t> k8;
  std::vector<float> kscale_blocks;  // per (b, hk, key block)
  if (dt == DType::kBF16) {
    q16.resize(pb.q.size());
    k16.resize(pb.k.size());
    v16.resize(pb.v.size());
    for (size_t i = 0; i < pb.q.size(); ++i) q16[i] = FloatToBF16(pb.q[i]);
    for (size_t i = 0; i < pb.k.size(); ++i) k16[i] = FloatToBF16(pb.k[i]), v16[i] = FloatToBF16(pb.v[i]);
  } else if (dt == DType::kI8) {
    k8.resize(pb.k.size());
    kscale_blocks.resize(size_t(sh.B) * sh.Hkv * plan.n_k_blocks);
    for (int64_t bh = 0; bh < int64_t(sh.B) * sh.Hkv; ++bh)
      for (int32_t c = 0; c < plan.n_k_blocks; ++c) {
        const int64_t j0 = int64_t(c) * blk, n = std::min<int64_t>(blk, sh.Lk - j0);
        const int64_t off = (bh * sh.Lk + j0) * D;
        kscale_blocks[bh * plan.n_k_blocks + c] = QuantizeRowsI8(pb.k.data() + off, n, D, k8.data() + off);
      }
  }

  const int32_t per_chunk = std::max(1, opt.chunk_keys / blk);
  const int64_t nk_max = int64_t(per_chunk) * blk;
  std::vector<float> kt(size_t(D) * nk_max), vt(size_t(D) * nk_max), s(nk_max), kscale(nk_max), qbuf(D);
  std::vector<int8_t> kt8(dt == DType::kI8 ? size_t(D) * nk_max : 0), q8(size_t(blk) * D);
  std::vector<uint64_t> mask(size_t(nk_max / 64 + 2));
  std::vector<uint64_t> ones(size_t(plan.words_per_row), ~uint64_t(0));
  std::vector<float> m(blk), l(blk);

  // Everything above allocates or converts storage; everything below is the attention compute,
  // which allocates nothing, so its instruction count does not depend on the heap's state.
  if (opt.mark_region) RegionBegin();
  for (int32_t b = 0; b < sh.B; ++b) {
    for (int32_t h = 0; h < sh.Hq; ++h) {
      const int32_t hk = h / group;
      const int64_t qoff = (int64_t(b) * sh.Hq + h) * sh.Lq;   // row index of query row 0
      const int64_t koff = (int64_t(b) * sh.Hkv + hk) * sh.Lk;  // row index of key row 0
      for (int32_t r = 0; r < plan.n_q_blocks; ++r) {
        const int64_t a = int64_t(r) + plan.q_block_begin;
        const int64_t p0 = std::max(a * blk, qf), p1 = std::min((a + 1) * blk, int64_t(sh.Lk)) - 1;
        if (p0 > p1) continue;
        const int64_t prow = plan.row_of(b, h, r);
        const int32_t e_begin = plan.row_ptr[prow], e_end = plan.row_ptr[prow + 1];
        const int64_t nrows = p1 - p0 + 1;
        std::fill(m.begin(), m.end(), kNegInf);
        std::fill(l.begin(), l.end(), 0.0f);
        float qscale8 = 0.0f;
        if (dt == DType::kI8)
          qscale8 = scale * sattn_quantize_i8(pb.q.data() + (qoff + p0 - qf) * D, nrows * D, q8.data());
        for (int32_t ec = e_begin; ec < e_end; ec += per_chunk) {
          const int32_t ne = std::min(per_chunk, e_end - ec);
          const int32_t nk = ne * blk;
          for (int32_t t = 0; t < ne; ++t) {
            const int32_t c = plan.col_idx[ec + t];
            const int64_t j0 = int64_t(c) * blk;
            const int32_t cols = int32_t(std::min<int64_t>(blk, sh.Lk - j0));
            const int64_t src = (koff + j0) * D;
            if (dt == DType::kF32) {
              sattn_gather_t_f32(pb.k.data() + src, D, cols, blk, D, kt.data() + t * blk, nk);
              sattn_gather_t_f32(pb.v.data() + src, D, cols, blk, D, vt.data() + t * blk, nk);
              rs.gathered_bytes += 2 * int64_t(cols) * D * 4;
            } else if (dt == DType::kBF16) {
              sattn_gather_t_bf16(k16.data() + src, D, cols, blk, D, kt.data() + t * blk, nk);
              sattn_gather_t_bf16(v16.data() + src, D, cols, blk, D, vt.data() + t * blk, nk);
              rs.gathered_bytes += 2 * int64_t(cols) * D * 2;
            } else {
              sattn_gather_t_i8(k8.data() + src, D, cols, blk, D, kt8.data() + t * blk, nk);
              sattn_gather_t_f32(pb.v.data() + src, D, cols, blk, D, vt.data() + t * blk, nk);
              const float ks = kscale_blocks[(int64_t(b) * sh.Hkv + hk) * plan.n_k_blocks + c];
              std::fill(kscale.begin() + t * blk, kscale.begin() + (t + 1) * blk, ks);
              rs.gathered_bytes += int64_t(cols) * D * (1 + 4);
            }
          }
          ++rs.chunks;
          for (int64_t p = p0; p <= p1; ++p) {
            const int64_t rr = p - a * blk, ri = p - p0, i = p - qf;
            // The row's mask over the chunk's slots, straight from the plan bitmaps.
            std::fill(mask.begin(), mask.begin() + (nk + 63) / 64 + 1, 0);
            for (int32_t t = 0; t < ne; ++t) {
              const int32_t c = plan.col_idx[ec + t], mi = plan.mask_idx[ec + t];
              const int32_t cols = int32_t(std::min<int64_t>(blk, sh.Lk - int64_t(c) * blk));
              const uint64_t* src = mi < 0 ? ones.data() : plan.bitmap(mi) + rr * plan.words_per_row;
              AppendBits(mask.data(), int64_t(t) * blk, src, cols);
            }
            const uint8_t* mbytes = reinterpret_cast<const uint8_t*>(mask.data());
            float smax;
            if (dt == DType::kF32) {
              smax = sattn_row_scores_f32(pb.q.data() + (qoff + i) * D, kt.data(), nk, D, nk, scale, mbytes, s.data());
            } else if (dt == DType::kBF16) {
              sattn_bf16_to_f32(q16.data() + (qoff + i) * D, D, qbuf.data());
              smax = sattn_row_scores_f32(qbuf.data(), kt.data(), nk, D, nk, scale, mbytes, s.data());
            } else {
              smax = sattn_row_scores_i8(q8.data() + ri * D, kt8.data(), nk, D, nk, qscale8, kscale.data(), mbytes, s.data());
            }
            rs.computed_slots += nk;
            if (smax == kNegInf) continue;  // nothing visible in this chunk
            const float mn = std::max(m[ri], smax);
            const float alpha = m[ri] == kNegInf ? 0.0f : std::exp(m[ri] - mn);
            const float sum = sattn_row_exp_sum(s.data(), nk, mn);
            l[ri] = l[ri] * alpha + sum;
            sattn_row_pv(s.data(), vt.data(), nk, D, nk, alpha, out->data() + (qoff + i) * D);
            m[ri] = mn;
          }
        }
        for (int64_t p = p0; p <= p1; ++p) {
          const int64_t ri = p - p0, i = p - qf;
          float* o = out->data() + (qoff + i) * D;
          if (l[ri] > 0.0f) {
            sattn_row_normalize(o, D, 1.0f / l[ri]);
            (*lse)[qoff + i] = m[ri] + std::log(l[ri]);
          } else {
            for (int32_t d = 0; d < D; ++d) o[d] = 0.0f;
            ++rs.empty_rows;
          }
        }
      }
    }
  }
  if (opt.mark_region) RegionEnd();
  return Status::Ok();
}

Status RunAttentionBackward(const Problem& pb, const BackwardInputs& in, const RunOptions& opt,
                            std::vector<float>* dq, std::vector<float>* dk, std::vector<float>* dv,
                            std::vector<float>* delta, RunStats* stats) {
  Status st = CheckShapes(pb);
  if (!st.ok()) return st;
  if (opt.chunk_keys < 1) return Status::Invalid("chunk_keys: expected >= 1");
  if (opt.dtype == DType::kI8)
    return Status::Invalid("dtype: the backward runs on fp32 or bf16 storage (int8 quantisation has no gradient)");
  const Shape& sh = pb.shape;
  const size_t n_q = size_t(sh.B) * sh.Hq * sh.Lq * sh.D, n_kv = size_t(sh.B) * sh.Hkv * sh.Lk * sh.D;
  const size_t n_rows = size_t(sh.B) * sh.Hq * sh.Lq;
  if (in.out == nullptr || in.out->size() != n_q) return Status::Invalid("out: expected B*Hq*Lq*D floats");
  if (in.dout == nullptr || in.dout->size() != n_q) return Status::Invalid("dout: expected B*Hq*Lq*D floats");
  if (in.lse == nullptr || in.lse->size() != n_rows) return Status::Invalid("lse: expected B*Hq*Lq floats");
  if (in.dlse != nullptr && in.dlse->size() != n_rows) return Status::Invalid("dlse: expected B*Hq*Lq floats");
  const BlockPlan& plan = pb.plan;
  const int32_t blk = plan.block, D = sh.D, group = sh.Hq / sh.Hkv, Lk = sh.Lk;
  const int64_t qf = int64_t(sh.Lk) - sh.Lq;
  const float scale = float(pb.scale);
  const bool bf16 = opt.dtype == DType::kBF16;
  RunStats local;
  RunStats& rs = stats ? *stats : local;

  dq->assign(n_q, 0.0f);
  dk->assign(n_kv, 0.0f);
  dv->assign(n_kv, 0.0f);
  delta->assign(n_rows, 0.0f);
  std::vector<uint16_t> q16, k16, v16;
  if (bf16) {
    q16.resize(pb.q.size());
    k16.resize(pb.k.size());
    v16.resize(pb.v.size());
    for (size_t i = 0; i < pb.q.size(); ++i) q16[i] = FloatToBF16(pb.q[i]);
    for (size_t i = 0; i < pb.k.size(); ++i) k16[i] = FloatToBF16(pb.k[i]), v16[i] = FloatToBF16(pb.v[i]);
  }
  const int32_t per_chunk = std::max(1, opt.chunk_keys / blk);
  const int64_t nk_max = int64_t(per_chunk) * blk;
  // dK and dV accumulate transposed, (D, Lk) per (batch, kv head), so adding a chunk's
  // contribution is unit-stride; one transposing pass at the end gives (Lk, D).
  std::vector<float> dkt_all(n_kv, 0.0f), dvt_all(n_kv, 0.0f);
  std::vector<float> kt(size_t(D) * nk_max), vt(size_t(D) * nk_max), s(nk_max), ds(nk_max), qbuf(D);
  std::vector<float> dkt(size_t(D) * nk_max, 0.0f), dvt(size_t(D) * nk_max, 0.0f);  // zero between chunks
  std::vector<uint64_t> mask(size_t(nk_max / 64 + 2));
  std::vector<uint64_t> ones(size_t(plan.words_per_row), ~uint64_t(0));
  const float* out = in.out->data();
  const float* dout = in.dout->data();
  const float* lse = in.lse->data();

  if (opt.mark_region) RegionBegin();
  for (int32_t b = 0; b < sh.B; ++b) {
    for (int32_t h = 0; h < sh.Hq; ++h) {
      const int32_t hk = h / group;
      const int64_t qoff = (int64_t(b) * sh.Hq + h) * sh.Lq;
      const int64_t koff = (int64_t(b) * sh.Hkv + hk) * sh.Lk;
      float* dkt_head = dkt_all.data() + koff * D;  // (D, Lk) block of this (batch, kv head)
      float* dvt_head = dvt_all.data() + koff * D;
      for (int32_t r = 0; r < plan.n_q_blocks; ++r) {
        const int64_t a = int64_t(r) + plan.q_block_begin;
        const int64_t p0 = std::max(a * blk, qf), p1 = std::min((a + 1) * blk, int64_t(sh.Lk)) - 1;
        if (p0 > p1) continue;
        const int64_t prow = plan.row_of(b, h, r);
        const int32_t e_begin = plan.row_ptr[prow], e_end = plan.row_ptr[prow + 1];
        for (int64_t p = p0; p <= p1; ++p) {
          const int64_t i = qoff + p - qf;
          const float dl = in.dlse ? (*in.dlse)[i] : 0.0f;
          (*delta)[i] = sattn_dot_f32(dout + i * D, out + i * D, D) - dl;
          rs.empty_rows += lse[i] == kNegInf;
        }
        for (int32_t ec = e_begin; ec < e_end; ec += per_chunk) {
          const int32_t ne = std::min(per_chunk, e_end - ec);
          const int32_t nk = ne * blk;
          for (int32_t t = 0; t < ne; ++t) {
            const int32_t c = plan.col_idx[ec + t];
            const int64_t j0 = int64_t(c) * blk;
            const int32_t cols = int32_t(std::min<int64_t>(blk, sh.Lk - j0));
            const int64_t src = (koff + j0) * D;
            if (bf16) {
              sattn_gather_t_bf16(k16.data() + src, D, cols, blk, D, kt.data() + t * blk, nk);
              sattn_gather_t_bf16(v16.data() + src, D, cols, blk, D, vt.data() + t * blk, nk);
              rs.gathered_bytes += 2 * int64_t(cols) * D * 2;
            } else {
              sattn_gather_t_f32(pb.k.data() + src, D, cols, blk, D, kt.data() + t * blk, nk);
              sattn_gather_t_f32(pb.v.data() + src, D, cols, blk, D, vt.data() + t * blk, nk);
              rs.gathered_bytes += 2 * int64_t(cols) * D * 4;
            }
          }
          ++rs.chunks;
          for (int64_t p = p0; p <= p1; ++p) {
            const int64_t rr = p - a * blk, i = qoff + p - qf;
            // -inf: the forward saw no key, no gradient flows. NaN/+inf (a poisoned forward row)
            // cannot give probabilities: the row contributes nothing, as in the CPU backend.
            if (!std::isfinite(lse[i])) continue;
            std::fill(mask.begin(), mask.begin() + (nk + 63) / 64 + 1, 0);
            for (int32_t t = 0; t < ne; ++t) {
              const int32_t c = plan.col_idx[ec + t], mi = plan.mask_idx[ec + t];
              const int32_t cols = int32_t(std::min<int64_t>(blk, sh.Lk - int64_t(c) * blk));
              const uint64_t* src = mi < 0 ? ones.data() : plan.bitmap(mi) + rr * plan.words_per_row;
              AppendBits(mask.data(), int64_t(t) * blk, src, cols);
            }
            const uint8_t* mbytes = reinterpret_cast<const uint8_t*>(mask.data());
            const float* qrow = pb.q.data() + i * D;
            if (bf16) {
              sattn_bf16_to_f32(q16.data() + i * D, D, qbuf.data());
              qrow = qbuf.data();
            }
            const float smax = sattn_row_scores_f32(qrow, kt.data(), nk, D, nk, scale, mbytes, s.data());
            rs.computed_slots += nk;
            if (smax == kNegInf) continue;  // nothing visible in this chunk
            sattn_row_probs(s.data(), nk, lse[i]);
            sattn_row_dscores_dv(s.data(), dout + i * D, vt.data(), nk, D, nk, (*delta)[i], scale, ds.data(),
                                 dvt.data(), nk);
            sattn_row_dq_dk(ds.data(), qrow, kt.data(), nk, D, nk, dq->data() + i * D, dkt.data(), nk);
          }
          for (int32_t t = 0; t < ne; ++t) {
            const int64_t j0 = int64_t(plan.col_idx[ec + t]) * blk;
            const int32_t cols = int32_t(std::min<int64_t>(blk, sh.Lk - j0));
            sattn_drain_f32(dkt.data() + t * blk, nk, cols, blk, D, dkt_head + j0, Lk);
            sattn_drain_f32(dvt.data() + t * blk, nk, cols, blk, D, dvt_head + j0, Lk);
          }
        }
      }
    }
  }
  for (int64_t bh = 0; bh < int64_t(sh.B) * sh.Hkv; ++bh) {
    const int64_t off = bh * Lk * D;
    sattn_gather_t_f32(dkt_all.data() + off, Lk, D, D, Lk, dk->data() + off, D);
    sattn_gather_t_f32(dvt_all.data() + off, Lk, D, D, Lk, dv->data() + off, D);
  }
  if (opt.mark_region) RegionEnd();
  return Status::Ok();
}

Status SelectBlockTopK(const Spec& spec, const Shape& sh, const float* q, const float* k,
                       double scale, int32_t q_block_begin, int32_t n_q_blocks,
                       std::vector<std::vector<int32_t>>* kept_per_row) {
  if (spec.kind != SpecKind::kBlockTopK) return Status::Invalid("spec.kind: expected BlockTopK");
  const bool use_max = spec.score == BlockScore::kMax;
  const int32_t blk = spec.block, D = sh.D;
  const int64_t qf = int64_t(sh.Lk) - sh.Lq;
  const int32_t nkb = int32_t((int64_t(sh.Lk) + blk - 1) / blk);
  std::vector<double> kmt(size_t(D) * nkb), qm(D), score(nkb);
  std::vector<float> kt;          // score="max": all keys transposed, (D, Lk)
  std::vector<double> dots, bmax;  // score="max": two rows' dot products, the block maxima
  if (use_max) {
    kt.resize(size_t(D) * sh.Lk);
    dots.resize(2 * size_t(sh.Lk));
    bmax.resize(size_t(nkb));
    sattn_gather_t_f32(k, D, sh.Lk, sh.Lk, D, kt.data(), sh.Lk);
  } else {
    for (int32_t c = 0; c < nkb; ++c) {
      const int64_t j0 = int64_t(c) * blk;
      const int32_t n = int32_t(std::min<int64_t>(blk, sh.Lk - j0));
      sattn_mean_pool_f64(k + j0 * D, D, n, D, kmt.data() + c, nkb);
    }
  }
  const int64_t budget = int64_t(std::ceil(spec.keep * double(nkb)));
  std::vector<uint8_t> cand(nkb), chosen(nkb), forced(nkb);
  kept_per_row->assign(n_q_blocks, {});
  for (int32_t r = 0; r < n_q_blocks; ++r) {
    const int64_t a = int64_t(r) + q_block_begin;
    const int64_t p0 = std::max(a * blk, qf), p1 = std::min((a + 1) * blk, int64_t(sh.Lk)) - 1;
    const int64_t last = spec.causal ? std::min<int64_t>(a, nkb - 1) : nkb - 1;
    int64_t n_forced = 0;
    for (int32_t c = 0; c < nkb; ++c) {
      const int64_t d = a - c;
      const bool local = spec.causal ? (d >= 0 && d < spec.local_blocks) : std::llabs(d) < spec.local_blocks;
      forced[c] = c <= last && (c < spec.global_blocks || local);
      cand[c] = c <= last && !forced[c];
      chosen[c] = 0;
      n_forced += forced[c];
    }
    const int64_t n = std::min(last + 1, std::max(n_forced, budget));
    if (use_max) {
      // S[a, c] = scale * max over the block's (query, key) pairs of the float64 dot product.
      const int32_t nk = int32_t(std::min<int64_t>((last + 1) * blk, sh.Lk));
      // NaN is the identity of the maximum under the selection order (NaN below every number).
      std::fill(bmax.begin(), bmax.end(), NAN);
      sattn_block_max_dots_f64(q + (p0 - qf) * D, D, int32_t(p1 - p0 + 1), kt.data(), sh.Lk, D, nk, blk,
                               dots.data(), bmax.data());
      for (int64_t c = 0; c <= last; ++c) score[c] = scale * bmax[c];
    } else {
      sattn_mean_pool_f64(q + (p0 - qf) * D, D, int32_t(p1 - p0 + 1), D, qm.data(), 1);
      sattn_block_scores_f64(qm.data(), kmt.data(), nkb, D, int32_t(last + 1), scale, score.data());
    }
    sattn_topk_select(score.data(), cand.data(), int32_t(last + 1), int32_t(n - n_forced), chosen.data());
    auto& kept = (*kept_per_row)[r];
    for (int32_t c = 0; c < nkb; ++c)
      if (forced[c] || chosen[c]) kept.push_back(c);
  }
  return Status::Ok();
}

int64_t CountSelectionMismatches(const Problem& pb, Status* status, bool mark_region) {
  const Shape& sh = pb.shape;
  const BlockPlan& plan = pb.plan;
  *status = CheckShapes(pb);
  if (!status->ok()) return -1;
  if (plan.plan_b != sh.B || plan.plan_h != sh.Hq) {
    *status = Status::Invalid("plan: a BlockTopK plan has one row set per (batch, head)");
    return -1;
  }
  // kept[b * Hq + h][r]: every head's selection first, then the comparison, so a marked region
  // holds the selection alone.
  std::vector<std::vector<std::vector<int32_t>>> kept(size_t(sh.B) * sh.Hq);
  if (mark_region) RegionBegin();
  for (int32_t b = 0; b < sh.B && status->ok(); ++b)
    for (int32_t h = 0; h < sh.Hq && status->ok(); ++h) {
      const int32_t hk = h / (sh.Hq / sh.Hkv);
      const float* q = pb.q.data() + (int64_t(b) * sh.Hq + h) * sh.Lq * sh.D;
      const float* k = pb.k.data() + (int64_t(b) * sh.Hkv + hk) * sh.Lk * sh.D;
      *status = SelectBlockTopK(pb.spec, sh, q, k, pb.scale, plan.q_block_begin, plan.n_q_blocks,
                                &kept[size_t(b) * sh.Hq + h]);
    }
  if (mark_region) RegionEnd();
  if (!status->ok()) return -1;
  int64_t bad = 0;
  for (int32_t b = 0; b < sh.B; ++b)
    for (int32_t h = 0; h < sh.Hq; ++h)
      for (int32_t r = 0; r < plan.n_q_blocks; ++r) {
        const int64_t row = plan.row_of(b, h, r);
        const std::vector<int32_t> want(plan.col_idx.begin() + plan.row_ptr[row],
                                        plan.col_idx.begin() + plan.row_ptr[row + 1]);
        bad += want != kept[size_t(b) * sh.Hq + h][r];
      }
  return bad;
}

}  // namespace rvv
}  // namespace sattn
