#include "rocc_bwd_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sattn_rocc_cmds.h"

namespace sattn {
namespace rocc {
namespace {

constexpr int32_t kNeg = std::numeric_limits<int32_t>::min();
constexpr double kLog2e = 1.4426950408889634;
constexpr double kMulOne = 32768.0;  // dkmul, dvmul and kmul carry 15 fractional bits

int64_t Rep(const Problem& p, int32_t b, int32_t h) {
  return int64_t(p.plan.plan_b == 1 ? b : 0) * (p.plan.plan_h == 1 ? p.Hq : 1) + (p.plan.plan_h == 1 ? h : 0);
}

// The tile's shift: the fewest right shifts that bring max |dS| below 2^8.
int32_t TileShift(int64_t amax) {
  int32_t bits = 0;
  while (bits < 63 && (amax >> bits) != 0) ++bits;
  return std::max(0, bits - 8);
}

int16_t Mantissa(int32_t x, int32_t sh) {
  const int64_t r = sh == 0 ? int64_t(x) : (int64_t(x) + (int64_t(1) << (sh - 1))) >> sh;
  return int16_t(std::max<int64_t>(-255, std::min<int64_t>(255, r)));
}

double SvEff(const Problem& p, int32_t b, int32_t g) {
  const double s = p.v_scale[size_t(b) * p.Hkv + g];
  return s > 0 ? s : 1.0 / 127.0;  // V is all zero there: any unit keeps delta representable
}

}  // namespace

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  return r;
}

void TransposePlan(const Problem& p, std::vector<int32_t>* trp, std::vector<int32_t>* tent) {
  const BlockPlan& pl = p.plan;
  const int32_t group = p.Hq / p.Hkv, nkb = p.n_k_blocks;
  std::vector<std::vector<int32_t>> cols(size_t(p.B) * p.Hkv * nkb);
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h)
      for (int32_t r = 0; r < pl.n_q_blocks; ++r) {
        const int64_t row = pl.row_of(b, h, r);
        for (int64_t e = pl.row_ptr[row]; e < pl.row_ptr[row + 1]; ++e) {
          auto& c = cols[(size_t(b) * p.Hkv + h / group) * nkb + pl.col_idx[e]];
          c.insert(c.end(), {h, r + pl.q_block_begin, pl.mask_idx[e], int32_t(Rep(p, b, h) * pl.nnz() + e)});
        }
      }
  trp->assign(1, 0);
  tent->clear();
  for (const auto& c : cols) {
    tent->insert(tent->end(), c.begin(), c.end());
    trp->push_back(int32_t(tent->size() / 4));
  }
}

std::string QuantizeBwd(const Problem& f, const float* out, const float* lse, const float* dout,
                        const float* dlse, double scale, BwdProblem* bp) {
  if (!(scale > 0.0) || !std::isfinite(scale)) return "scale: the rocc backend needs a finite scale > 0";
  bp->fwd = f;
  bp->scale = scale;
  const int32_t B = f.B, Hq = f.Hq, Lq = f.Lq, D0 = f.D_orig, D = f.D, blk = f.block, nkb = f.n_k_blocks;
  const int32_t group = Hq / f.Hkv, off = f.Lk - f.Lq;
  const int64_t rows = f.head_rows();
  std::vector<double> delta(size_t(B) * Hq * Lq);
  for (size_t r = 0; r < delta.size(); ++r) {
    double s = 0;
    for (int32_t d = 0; d < D0; ++d) s += double(dout[r * D0 + d]) * double(out[r * D0 + d]);
    delta[r] = s - (dlse ? double(dlse[r]) : 0.0);
    if (!std::isfinite(delta[r])) return "dout: the gradient inputs must be finite (delta of row " + std::to_string(r) + ")";
  }
  // dO scale per (b, h, query block): max|dout|/127, coarsened so |delta| stays within 2^22 units.
  bp->do_scale.assign(size_t(B) * Hq * nkb, 0.0);
  for (int32_t b = 0; b < B; ++b)
    for (int32_t h = 0; h < Hq; ++h) {
      const double sv = SvEff(f, b, h / group);
      for (int32_t i = 0; i < Lq; ++i) {
        const int64_t r = (int64_t(b) * Hq + h) * Lq + i;
        double& s = bp->do_scale[(size_t(b) * Hq + h) * nkb + (i + off) / blk];
        for (int32_t d = 0; d < D0; ++d) {
          if (!std::isfinite(dout[r * D0 + d])) return "dout: must be finite";
          s = std::max(s, std::fabs(double(dout[r * D0 + d])) / 127.0);
        }
        s = std::max(s, std::fabs(delta[r]) / (sv * double(1 << 22)));
      }
    }
  bp->dout.assign(size_t(f.out_elems()), 0);
  bp->rs.assign(size_t(f.stats_elems()), 0);
  for (size_t i = 0; i < bp->rs.size(); i += 2) bp->rs[i] = kNeg;
  for (int32_t b = 0; b < B; ++b)
    for (int32_t h = 0; h < Hq; ++h) {
      const double sv = SvEff(f, b, h / group);
      for (int32_t i = 0; i < Lq; ++i) {
        const int64_t r = (int64_t(b) * Hq + h) * Lq + i;
        const int64_t orow = (int64_t(b) * Hq + h) * rows + i + off;
        const double s = bp->do_scale[(size_t(b) * Hq + h) * nkb + (i + off) / blk];
        for (int32_t d = 0; d < D0; ++d) {
          const double x = s > 0 ? std::round(double(dout[r * D0 + d]) / s) : 0.0;
          bp->dout[size_t(orow * D + d)] = int8_t(std::max(-127.0, std::min(127.0, x)));
        }
        const double l = lse[r];
        if (std::isfinite(l)) {
          const double y = std::round(l * kLog2e * double(1 << SATTN_ROCC_EXP_FRAC));
          bp->rs[size_t(orow * 2)] = int32_t(std::max(-2147483647.0, std::min(2147483647.0, y)));
        }
        const double dl = s > 0 ? std::round(delta[r] / (s * sv)) : 0.0;
        bp->rs[size_t(orow * 2 + 1)] = int32_t(std::max(-4194304.0, std::min(4194304.0, dl)));
      }
    }
  // Per query block multipliers: dvmul carries sdo, dkmul carries sdo*sq, each relative to its
  // largest value in 15 bits (the accumulators sum entries of different query blocks).
  bp->sdo_max = 0;
  bp->dk_max = 0;
  for (size_t i = 0; i < bp->do_scale.size(); ++i) {
    bp->sdo_max = std::max(bp->sdo_max, bp->do_scale[i]);
    bp->dk_max = std::max(bp->dk_max, bp->do_scale[i] * f.q_scale[i]);
  }
  bp->sk_max = f.k_scale.empty() ? 0.0 : *std::max_element(f.k_scale.begin(), f.k_scale.end());
  auto rel = [](double x, double m) -> uint32_t {
    return (m > 0 && x > 0) ? uint32_t(std::max(1.0, std::round(x / m * kMulOne))) : 0u;
  };
  bp->emul.assign(size_t(B) * Hq * nkb * 4, 0);
  for (size_t i = 0; i < bp->do_scale.size(); ++i) {
    bp->emul[i * 4] = f.qmul[i];
    bp->emul[i * 4 + 1] = rel(bp->do_scale[i] * f.q_scale[i], bp->dk_max);
    bp->emul[i * 4 + 2] = rel(bp->do_scale[i], bp->sdo_max);
  }
  TransposePlan(f, &bp->t_row_ptr, &bp->t_ent);
  return "";
}

BwdOutput GoldenBwd(const BwdProblem& bp) {
  const Problem& p = bp.fwd;
  const BlockPlan& pl = p.plan;
  const int32_t blk = p.block, D = p.D, nkb = p.n_k_blocks, group = p.Hq / p.Hkv;
  const int64_t rows = p.head_rows(), T = int64_t(blk) * blk;
  BwdOutput o;
  o.ds.assign(size_t(bp.n_ds_tiles() * T), 0);
  o.ds_shift.assign(size_t(bp.n_ds_tiles()), 0);
  o.dq.assign(size_t(bp.dq_elems()), 0);
  o.dk.assign(size_t(bp.dkv_elems()), 0);
  o.dv.assign(o.dk.size(), 0);
  std::vector<uint8_t> P(static_cast<size_t>(T));
  std::vector<int32_t> ds(static_cast<size_t>(T));
  std::vector<int16_t> m9(static_cast<size_t>(T));
  // Phase 1: per key block of (b, kv head), its transposed-plan entries in order.
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t g = 0; g < p.Hkv; ++g)
      for (int32_t c = 0; c < nkb; ++c) {
        const int64_t col = (int64_t(b) * p.Hkv + g) * nkb + c;
        const int8_t* kb = &p.k[size_t(((int64_t(b) * p.Hkv + g) * rows + int64_t(c) * blk) * D)];
        const int8_t* vb = &p.v[size_t(((int64_t(b) * p.Hkv + g) * rows + int64_t(c) * blk) * D)];
        int64_t* dk = &o.dk[size_t(((int64_t(b) * p.Hkv + g) * rows + int64_t(c) * blk) * D)];
        int64_t* dv = &o.dv[size_t(((int64_t(b) * p.Hkv + g) * rows + int64_t(c) * blk) * D)];
        const uint32_t kmul = p.kmul[size_t(col)];
        for (int64_t t = bp.t_row_ptr[col]; t < bp.t_row_ptr[col + 1]; ++t) {
          const int32_t h = bp.t_ent[t * 4], a = bp.t_ent[t * 4 + 1], m = bp.t_ent[t * 4 + 2], tile = bp.t_ent[t * 4 + 3];
          const int64_t bh = int64_t(b) * p.Hq + h, qrow0 = bh * rows + int64_t(a) * blk;
          const int8_t* qb = &p.q[size_t(qrow0 * D)];
          const int8_t* db = &bp.dout[size_t(qrow0 * D)];
          const uint32_t* em = &bp.emul[size_t((bh * nkb + a) * 4)];
          const uint32_t kq = kmul * em[0];
          int64_t amax = 0;
          for (int32_t i = 0; i < blk; ++i) {
            const int32_t L = bp.rs[size_t((qrow0 + i) * 2)], delta = bp.rs[size_t((qrow0 + i) * 2 + 1)];
            for (int32_t j = 0; j < blk; ++j) {
              const bool vis = (m < 0 || ((pl.bitmap(m)[i] >> j) & 1)) && int64_t(c) * blk + j < p.Lk;
              int32_t s = 0, dp = 0;
              for (int32_t d = 0; d < D; ++d) {
                s += int32_t(qb[int64_t(i) * D + d]) * int32_t(kb[int64_t(j) * D + d]);
                dp += int32_t(db[int64_t(i) * D + d]) * int32_t(vb[int64_t(j) * D + d]);
              }
              const int32_t y = ScaleScore(s, kq, p.score_shift);
              const uint8_t w = (!vis || L == kNeg) ? 0 : ExpWeight(std::max<int64_t>(0, int64_t(L) - y));
              const int64_t diff = std::max<int64_t>(-kBwdDiffMax, std::min<int64_t>(kBwdDiffMax, int64_t(dp) - delta));
              P[size_t(i) * blk + j] = w;
              ds[size_t(i) * blk + j] = int32_t(w * diff);
              amax = std::max<int64_t>(amax, std::llabs(w * diff));
            }
          }
          const int32_t sh = TileShift(amax);
          for (int64_t n = 0; n < T; ++n) m9[size_t(n)] = Mantissa(ds[size_t(n)], sh);
          std::copy(m9.begin(), m9.end(), o.ds.begin() + tile * T);
          o.ds_shift[size_t(tile)] = sh;
          for (int32_t j = 0; j < blk; ++j)
            for (int32_t d = 0; d < D; ++d) {
              int32_t macv = 0, mack = 0;
              for (int32_t i = 0; i < blk; ++i) {
                macv += int32_t(P[size_t(i) * blk + j]) * int32_t(db[int64_t(i) * D + d]);
                mack += int32_t(m9[size_t(i) * blk + j]) * int32_t(qb[int64_t(i) * D + d]);
              }
              dv[int64_t(j) * D + d] = SatAdd(dv[int64_t(j) * D + d], int64_t(macv) * int64_t(em[2]));
              dk[int64_t(j) * D + d] = SatAdd(dk[int64_t(j) * D + d], (int64_t(mack) * int64_t(em[1])) * (int64_t(1) << sh));
            }
        }
      }
  // Phase 2: per query block row of the forward plan, dQ from the dS tiles and K.
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h)
      for (int32_t r = 0; r < pl.n_q_blocks; ++r) {
        const int32_t a = r + pl.q_block_begin, g = h / group;
        const int64_t row = pl.row_of(b, h, r);
        int64_t* dq = &o.dq[size_t(((int64_t(b) * p.Hq + h) * rows + int64_t(a) * blk) * D)];
        for (int64_t e = pl.row_ptr[row]; e < pl.row_ptr[row + 1]; ++e) {
          const int32_t c = pl.col_idx[e];
          const int64_t tile = Rep(p, b, h) * pl.nnz() + e;
          const int16_t* t9 = &o.ds[size_t(tile * T)];
          const int32_t sh = o.ds_shift[size_t(tile)];
          const int8_t* kb = &p.k[size_t(((int64_t(b) * p.Hkv + g) * rows + int64_t(c) * blk) * D)];
          const uint32_t kmul = p.kmul[size_t((int64_t(b) * p.Hkv + g) * nkb + c)];
          for (int32_t i = 0; i < blk; ++i)
            for (int32_t d = 0; d < D; ++d) {
              int32_t mac = 0;
              for (int32_t j = 0; j < blk; ++j) mac += int32_t(t9[int64_t(i) * blk + j]) * int32_t(kb[int64_t(j) * D + d]);
              dq[int64_t(i) * D + d] = SatAdd(dq[int64_t(i) * D + d], (int64_t(mac) * int64_t(kmul)) * (int64_t(1) << sh));
            }
        }
      }
  return o;
}

void DequantizeBwd(const BwdProblem& bp, const BwdOutput& o, float* dq, float* dk, float* dv) {
  const Problem& p = bp.fwd;
  const int32_t D0 = p.D_orig, D = p.D, blk = p.block, nkb = p.n_k_blocks, group = p.Hq / p.Hkv;
  const int64_t rows = p.head_rows();
  const int32_t off = p.Lk - p.Lq;
  const double base = 256.0 * kMulOne;  // P's 8 fractional bits, the multipliers' 15
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h) {
      const double sv = SvEff(p, b, h / group);
      for (int32_t i = 0; i < p.Lq; ++i) {
        const int32_t pos = i + off;
        const double u = bp.scale * sv * bp.do_scale[(size_t(b) * p.Hq + h) * nkb + pos / blk] * bp.sk_max / base;
        const int64_t src = ((int64_t(b) * p.Hq + h) * rows + pos) * D;
        const int64_t dst = ((int64_t(b) * p.Hq + h) * p.Lq + i) * D0;
        for (int32_t d = 0; d < D0; ++d) dq[dst + d] = float(double(o.dq[size_t(src + d)]) * u);
      }
    }
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t g = 0; g < p.Hkv; ++g) {
      const double uk = bp.scale * SvEff(p, b, g) * bp.dk_max / base, uv = bp.sdo_max / base;
      for (int32_t j = 0; j < p.Lk; ++j) {
        const int64_t src = ((int64_t(b) * p.Hkv + g) * rows + j) * D;
        const int64_t dst = ((int64_t(b) * p.Hkv + g) * p.Lk + j) * D0;
        for (int32_t d = 0; d < D0; ++d) {
          dk[dst + d] = float(double(o.dk[size_t(src + d)]) * uk);
          dv[dst + d] = float(double(o.dv[size_t(src + d)]) * uv);
        }
      }
    }
}

}  // namespace rocc
}  // namespace sattn
