#include "rocc_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sattn_rocc_cmds.h"

namespace sattn {
namespace rocc {
namespace {

constexpr int32_t kNeg = std::numeric_limits<int32_t>::min();  // masked score / empty row
constexpr double kLog2e = 1.4426950408889634;

int8_t QuantizeValue(float x, double s) {
  if (s <= 0.0) return 0;
  double r = std::round(double(x) / s);  // round half away from zero
  return int8_t(std::max(-127.0, std::min(127.0, r)));
}

}  // namespace

int32_t ScaleScore(int32_t s, uint32_t kq, uint32_t shift) {
  int64_t y = (int64_t(s) * int64_t(kq)) >> shift;  // arithmetic shift, as the RTL's >>>
  const int64_t hi = SATTN_ROCC_Y_MAX, lo = -int64_t(SATTN_ROCC_Y_MAX) - 1;
  return int32_t(std::max(lo, std::min(hi, y)));
}

uint8_t ExpWeight(int64_t d) {
  const int64_t n = d >> SATTN_ROCC_EXP_FRAC;
  if (d < 0 || n >= 16) return 0;
  const uint32_t t = sattn_rocc_exp_lut[d & 255];
  const uint32_t r = ((t >> n) + 128) >> 8;
  return uint8_t(std::min<uint32_t>(255, r));
}

uint64_t Reciprocal(uint32_t sum) { return sum == 0 ? 0 : (uint64_t(1) << 32) / sum; }

int16_t Normalise(int32_t acc, uint64_t rc) {
  const int64_t v = (int64_t(acc) * int64_t(rc) + (int64_t(1) << 23)) >> 24;
  return int16_t(std::max<int64_t>(-32768, std::min<int64_t>(32767, v)));
}

int32_t AcceleratorTile(int32_t block) {
  if (block >= SATTN_ROCC_MAX_BLK) return SATTN_ROCC_MAX_BLK;
  return std::max(16, (block + 15) / 16 * 16);
}

BlockPlan RetilePlan(const BlockPlan& f, int32_t T) {
  BlockPlan c;
  c.block = T;
  c.B = f.B; c.Hq = f.Hq; c.Lq = f.Lq; c.Lk = f.Lk;
  c.plan_b = f.plan_b; c.plan_h = f.plan_h;
  c.words_per_row = 1;
  c.n_k_blocks = (f.Lk + T - 1) / T;
  c.q_block_begin = (f.Lk - f.Lq) / T;
  c.n_q_blocks = c.n_k_blocks - c.q_block_begin;
  c.row_ptr.push_back(0);
  const int32_t off = f.Lk - f.Lq;
  std::vector<uint64_t> tile(size_t(c.n_k_blocks) * T);
  for (int32_t pb = 0; pb < f.plan_b; ++pb)
    for (int32_t ph = 0; ph < f.plan_h; ++ph)
      for (int32_t R = 0; R < c.n_q_blocks; ++R) {
        const int32_t A = R + c.q_block_begin;
        std::fill(tile.begin(), tile.end(), 0);
        const int32_t p0 = std::max(A * T, off), p1 = std::min((A + 1) * T, f.Lk);
        for (int32_t p = p0; p < p1; ++p) {
          const int32_t a = p / f.block, i = p - a * f.block;
          const int64_t row = (int64_t(pb) * f.plan_h + ph) * f.n_q_blocks + (a - f.q_block_begin);
          for (int64_t e = f.row_ptr[row]; e < f.row_ptr[row + 1]; ++e) {
            const int32_t cf = f.col_idx[e], m = f.mask_idx[e];
            for (int32_t j = 0; j < f.block; ++j) {
              const int64_t key = int64_t(cf) * f.block + j;
              if (key >= f.Lk) break;
              if (m >= 0 && !((f.bitmap(m)[int64_t(i) * f.words_per_row + j / 64] >> (j % 64)) & 1)) continue;
              tile[size_t(key / T) * T + (p - A * T)] |= uint64_t(1) << (key % T);
            }
          }
        }
        for (int32_t C = 0; C < c.n_k_blocks; ++C) {
          const uint64_t* t = &tile[size_t(C) * T];
          bool any = false, full = true;
          const int32_t keys = std::min(T, f.Lk - C * T);
          const uint64_t all = keys == 64 ? ~uint64_t(0) : (uint64_t(1) << keys) - 1;
          for (int32_t i = 0; i < T; ++i) {
            any |= t[i] != 0;
            const int32_t p = A * T + i;
            if (p >= off && p < f.Lk) full &= t[i] == all;
          }
          if (!any) continue;
          c.col_idx.push_back(C);
          if (full) {
            c.mask_idx.push_back(-1);
          } else {
            c.mask_idx.push_back(int32_t(c.bitmaps.size() / T));
            c.bitmaps.insert(c.bitmaps.end(), t, t + T);
          }
        }
        c.row_ptr.push_back(int32_t(c.col_idx.size()));
      }
  return c;
}

std::string Quantize(const float* q, const float* k, const float* v, int32_t B, int32_t Hq,
                     int32_t Hkv, int32_t Lq, int32_t Lk, int32_t D0, double scale,
                     const BlockPlan& plan_in, Problem* p, const StaticClips& clips) {
  if (B <= 0 || Hq <= 0 || Hkv <= 0 || Lq <= 0 || Lk <= 0 || D0 <= 0) return "shape: every dimension must be positive";
  if (Hq % Hkv != 0) return "shape: Hq must be a multiple of Hkv";
  if (Lq > Lk) return "shape: Lq must not exceed Lk";
  if (!(scale > 0.0) || !std::isfinite(scale)) return "scale: the rocc backend needs a finite scale > 0";
  if (plan_in.block <= 0) return "plan.block: must be positive, got " + std::to_string(plan_in.block);
  if (plan_in.B != B || plan_in.Hq != Hq || plan_in.Lq != Lq || plan_in.Lk != Lk) return "plan: built for another shape";
  const int32_t T = AcceleratorTile(plan_in.block);
  const BlockPlan plan = T == plan_in.block ? plan_in : RetilePlan(plan_in, T);
  const int32_t D = (D0 + 15) / 16 * 16;
  if (D > SATTN_ROCC_MAX_D)
    return "q: head dimension " + std::to_string(D0) + " exceeds the accelerator's MAX_D " + std::to_string(SATTN_ROCC_MAX_D);
  p->B = B; p->Hq = Hq; p->Hkv = Hkv; p->Lq = Lq; p->Lk = Lk; p->D = D; p->D_orig = D0;
  p->block = plan.block;
  p->n_k_blocks = plan.n_k_blocks;
  p->plan = plan;
  const int32_t blk = plan.block, nkb = plan.n_k_blocks;
  const int64_t rows = p->head_rows();
  const int32_t off = Lk - Lq;  // position of query row 0

  // Per-block scales: Q per (b, h, query block), K per (b, kv head, key block), V per (b, kv head).
  std::vector<double> sq(size_t(B) * Hq * nkb, 0.0), sk(size_t(B) * Hkv * nkb, 0.0);
  p->v_scale.assign(size_t(B) * Hkv, 0.0);
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t h = 0; h < Hq; ++h)
      for (int32_t i = 0; i < Lq; ++i) {
        const float* row = q + ((int64_t(b) * Hq + h) * Lq + i) * D0;
        double& s = sq[(size_t(b) * Hq + h) * nkb + (i + off) / blk];
        for (int32_t d = 0; d < D0; ++d) s = std::max(s, std::fabs(double(row[d])));
      }
    for (int32_t h = 0; h < Hkv; ++h)
      for (int32_t j = 0; j < Lk; ++j) {
        const float* kr = k + ((int64_t(b) * Hkv + h) * Lk + j) * D0;
        const float* vr = v + ((int64_t(b) * Hkv + h) * Lk + j) * D0;
        double& s = sk[(size_t(b) * Hkv + h) * nkb + j / blk];
        double& t = p->v_scale[size_t(b) * Hkv + h];
        for (int32_t d = 0; d < D0; ++d) {
          s = std::max(s, std::fabs(double(kr[d])));
          t = std::max(t, std::fabs(double(vr[d])));
        }
      }
  }
  for (double& s : sq) s /= 127.0;
  for (double& s : sk) s /= 127.0;
  for (double& s : p->v_scale) s /= 127.0;
  const auto clip_ok = [](const double* c, int32_t n) {
    for (int32_t i = 0; i < n; ++i)
      if (!(c[i] > 0.0) || !std::isfinite(c[i])) return false;
    return true;
  };
  if (clips.q && !clip_ok(clips.q, Hq)) return "scales.q: static clips must be finite and > 0";
  if (clips.k && !clip_ok(clips.k, Hkv)) return "scales.k: static clips must be finite and > 0";
  if (clips.v && !clip_ok(clips.v, Hkv)) return "scales.v: static clips must be finite and > 0";
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t h = 0; h < Hq && clips.q; ++h)
      for (int32_t a = 0; a < nkb; ++a) sq[(size_t(b) * Hq + h) * nkb + a] = clips.q[h] / 127.0;
    for (int32_t h = 0; h < Hkv; ++h) {
      for (int32_t c = 0; c < nkb && clips.k; ++c) sk[(size_t(b) * Hkv + h) * nkb + c] = clips.k[h] / 127.0;
      if (clips.v) p->v_scale[size_t(b) * Hkv + h] = clips.v[h] / 127.0;
    }
  }
  p->q_scale = sq;
  p->k_scale = sk;

  p->q.assign(size_t(B) * Hq * rows * D, 0);
  p->k.assign(size_t(B) * Hkv * rows * D, 0);
  p->v.assign(size_t(B) * Hkv * rows * D, 0);
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t h = 0; h < Hq; ++h)
      for (int32_t i = 0; i < Lq; ++i) {
        const double s = sq[(size_t(b) * Hq + h) * nkb + (i + off) / blk];
        const float* row = q + ((int64_t(b) * Hq + h) * Lq + i) * D0;
        int8_t* dst = &p->q[((size_t(b) * Hq + h) * rows + i + off) * D];
        for (int32_t d = 0; d < D0; ++d) dst[d] = QuantizeValue(row[d], s);
      }
    for (int32_t h = 0; h < Hkv; ++h)
      for (int32_t j = 0; j < Lk; ++j) {
        const double s = sk[(size_t(b) * Hkv + h) * nkb + j / blk];
        const double t = p->v_scale[size_t(b) * Hkv + h];
        const float* kr = k + ((int64_t(b) * Hkv + h) * Lk + j) * D0;
        const float* vr = v + ((int64_t(b) * Hkv + h) * Lk + j) * D0;
        int8_t* kd = &p->k[((size_t(b) * Hkv + h) * rows + j) * D];
        int8_t* vd = &p->v[((size_t(b) * Hkv + h) * rows + j) * D];
        for (int32_t d = 0; d < D0; ++d) {
          kd[d] = QuantizeValue(kr[d], s);
          vd[d] = QuantizeValue(vr[d], t);
        }
      }
  }

  // Score multipliers: y = S * kmul * qmul >> shift ~= S * sq * sk * scale * log2(e) * 2^EXP_FRAC.
  // kmul carries sk relative to the largest K scale in 15 bits; qmul carries the rest in 16 bits
  // with one shift for the whole descriptor, chosen so the largest qmul uses all 16 bits.
  const double skmax = sk.empty() ? 0.0 : *std::max_element(sk.begin(), sk.end());
  p->kmul.assign(sk.size(), 0);
  for (size_t i = 0; i < sk.size(); ++i)
    if (skmax > 0 && sk[i] > 0)
      p->kmul[i] = uint32_t(std::max(1.0, std::round(sk[i] / skmax * 32768.0)));
  const double unit = skmax * scale * kLog2e * double(1 << SATTN_ROCC_EXP_FRAC) / 32768.0;
  double gmax = 0.0;
  for (double s : sq) gmax = std::max(gmax, s * unit);
  int shift = 0;
  if (gmax > 0) shift = std::max(0, std::min(63, int(std::floor(std::log2(65535.0 / gmax)))));
  p->score_shift = uint32_t(shift);
  p->qmul.assign(sq.size(), 0);
  for (size_t i = 0; i < sq.size(); ++i) {
    const double m = std::round(sq[i] * unit * std::ldexp(1.0, shift));
    p->qmul[i] = uint32_t(std::min(65535.0, m));
  }
  return "";
}

void Problem::DequantizedInputs(std::vector<float>* qo, std::vector<float>* ko, std::vector<float>* vo) const {
  const int64_t rows = head_rows();
  const int32_t off = Lk - Lq;
  qo->assign(size_t(B) * Hq * Lq * D_orig, 0.f);
  ko->assign(size_t(B) * Hkv * Lk * D_orig, 0.f);
  vo->assign(ko->size(), 0.f);
  for (int32_t b = 0; b < B; ++b) {
    for (int32_t h = 0; h < Hq; ++h)
      for (int32_t i = 0; i < Lq; ++i) {
        const double s = q_scale[(size_t(b) * Hq + h) * n_k_blocks + (i + off) / block];
        for (int32_t d = 0; d < D_orig; ++d)
          (*qo)[((size_t(b) * Hq + h) * Lq + i) * D_orig + d] = float(q[((size_t(b) * Hq + h) * rows + i + off) * D + d] * s);
      }
    for (int32_t h = 0; h < Hkv; ++h)
      for (int32_t j = 0; j < Lk; ++j) {
        const double s = k_scale[(size_t(b) * Hkv + h) * n_k_blocks + j / block];
        const double t = v_scale[size_t(b) * Hkv + h];
        for (int32_t d = 0; d < D_orig; ++d) {
          const size_t src = ((size_t(b) * Hkv + h) * rows + j) * D + d;
          const size_t dst = ((size_t(b) * Hkv + h) * Lk + j) * D_orig + d;
          (*ko)[dst] = float(k[src] * s);
          (*vo)[dst] = float(v[src] * t);
        }
      }
  }
}

namespace {

// Scores of one plan entry for head (b, h), query block row r: the int32 tile y[i][j].
void EntryScores(const Problem& p, int32_t b, int32_t h, int32_t r, int64_t e, int32_t* y) {
  const BlockPlan& pl = p.plan;
  const int32_t blk = p.block, D = p.D, nkb = p.n_k_blocks;
  const int32_t a = r + pl.q_block_begin, c = pl.col_idx[e], m = pl.mask_idx[e];
  const int32_t kvh = h / (p.Hq / p.Hkv);
  const int64_t rows = p.head_rows();
  const int8_t* qb = &p.q[((int64_t(b) * p.Hq + h) * rows + int64_t(a) * blk) * D];
  const int8_t* kb = &p.k[((int64_t(b) * p.Hkv + kvh) * rows + int64_t(c) * blk) * D];
  const uint32_t kq = p.kmul[(int64_t(b) * p.Hkv + kvh) * nkb + c] * p.qmul[(int64_t(b) * p.Hq + h) * nkb + a];
  for (int32_t i = 0; i < blk; ++i)
    for (int32_t j = 0; j < blk; ++j) {
      const bool vis = (m < 0 || ((pl.bitmap(m)[i] >> j) & 1)) && int64_t(c) * blk + j < p.Lk;
      if (!vis) { y[i * blk + j] = kNeg; continue; }
      int32_t s = 0;
      for (int32_t d = 0; d < D; ++d) s += int32_t(qb[int64_t(i) * D + d]) * int32_t(kb[int64_t(j) * D + d]);
      y[i * blk + j] = ScaleScore(s, kq, p.score_shift);
    }
}

int64_t Replica(const Problem& p, int32_t b, int32_t h) {
  return int64_t(p.plan.plan_b == 1 ? b : 0) * (p.plan.plan_h == 1 ? p.Hq : 1) + (p.plan.plan_h == 1 ? h : 0);
}

}  // namespace

std::vector<int32_t> GoldenScores(const Problem& p) {
  const int32_t blk = p.block;
  std::vector<int32_t> tiles(size_t(p.score_elems()), 0);
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h)
      for (int32_t r = 0; r < p.plan.n_q_blocks; ++r) {
        const int64_t row = p.plan.row_of(b, h, r);
        for (int64_t e = p.plan.row_ptr[row]; e < p.plan.row_ptr[row + 1]; ++e)
          EntryScores(p, b, h, r, e, &tiles[size_t((Replica(p, b, h) * p.plan.nnz() + e) * blk * blk)]);
      }
  return tiles;
}

Output Golden(const Problem& p) {
  const BlockPlan& pl = p.plan;
  const int32_t blk = p.block, D = p.D;
  const int64_t rows = p.head_rows();
  Output o;
  o.out.assign(size_t(p.out_elems()), 0);
  o.stats.assign(size_t(p.stats_elems()), 0);
  std::vector<int32_t> y, acc(size_t(blk) * D);
  std::vector<uint8_t> pw;
  std::vector<int32_t> mx(blk);
  std::vector<uint32_t> sum(blk);
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h) {
      const int32_t kvh = h / (p.Hq / p.Hkv);
      for (int32_t r = 0; r < pl.n_q_blocks; ++r) {
        const int32_t a = r + pl.q_block_begin;
        const int64_t row = pl.row_of(b, h, r);
        const int64_t e0 = pl.row_ptr[row], n = pl.row_ptr[row + 1] - e0;
        y.assign(size_t(n) * blk * blk, 0);
        pw.assign(size_t(n) * blk * blk, 0);
        for (int64_t e = 0; e < n; ++e) EntryScores(p, b, h, r, e0 + e, &y[size_t(e) * blk * blk]);
        std::fill(mx.begin(), mx.end(), kNeg);
        std::fill(sum.begin(), sum.end(), 0u);
        for (int64_t e = 0; e < n; ++e)
          for (int32_t i = 0; i < blk; ++i)
            for (int32_t j = 0; j < blk; ++j) {
              const int32_t v = y[(size_t(e) * blk + i) * blk + j];
              if (v != kNeg) mx[i] = std::max(mx[i], v);
            }
        for (int64_t e = 0; e < n; ++e)
          for (int32_t i = 0; i < blk; ++i)
            for (int32_t j = 0; j < blk; ++j) {
              const int32_t v = y[(size_t(e) * blk + i) * blk + j];
              const uint8_t w = (v == kNeg || mx[i] == kNeg) ? 0 : ExpWeight(int64_t(mx[i]) - v);
              pw[(size_t(e) * blk + i) * blk + j] = w;
              sum[i] += w;
            }
        std::fill(acc.begin(), acc.end(), 0);
        for (int64_t e = 0; e < n; ++e) {
          const int32_t c = pl.col_idx[e0 + e];
          const int8_t* vb = &p.v[((int64_t(b) * p.Hkv + kvh) * rows + int64_t(c) * blk) * D];
          for (int32_t i = 0; i < blk; ++i)
            for (int32_t j = 0; j < blk; ++j) {
              const int32_t w = pw[(size_t(e) * blk + i) * blk + j];
              if (w == 0) continue;
              for (int32_t d = 0; d < D; ++d) acc[size_t(i) * D + d] += w * int32_t(vb[int64_t(j) * D + d]);
            }
        }
        for (int32_t i = 0; i < blk; ++i) {
          const uint64_t rc = Reciprocal(sum[i]);
          const int64_t orow = (int64_t(b) * p.Hq + h) * rows + int64_t(a) * blk + i;
          for (int32_t d = 0; d < D; ++d) o.out[size_t(orow * D + d)] = Normalise(acc[size_t(i) * D + d], rc);
          o.stats[size_t(orow * 2)] = mx[i];
          o.stats[size_t(orow * 2 + 1)] = int32_t(sum[i]);
        }
      }
    }
  return o;
}

void Dequantize(const Problem& p, const Output& o, float* out, float* lse) {
  const int64_t rows = p.head_rows();
  const int32_t off = p.Lk - p.Lq;
  for (int32_t b = 0; b < p.B; ++b)
    for (int32_t h = 0; h < p.Hq; ++h) {
      const double vs = p.v_scale[size_t(b) * p.Hkv + h / (p.Hq / p.Hkv)] / double(1 << SATTN_ROCC_OUT_FRAC);
      for (int32_t i = 0; i < p.Lq; ++i) {
        const int64_t orow = (int64_t(b) * p.Hq + h) * rows + i + off;
        const int64_t dst = (int64_t(b) * p.Hq + h) * p.Lq + i;
        for (int32_t d = 0; d < p.D_orig; ++d) out[dst * p.D_orig + d] = float(o.out[size_t(orow * p.D + d)] * vs);
        const int32_t m = o.stats[size_t(orow * 2)];
        const uint32_t s = uint32_t(o.stats[size_t(orow * 2 + 1)]);
        // P = 2^((y - m)/256) * 256, so sum_j 2^(y_j/256) = 2^(m/256) * s / 256.
        lse[dst] = s == 0 ? -std::numeric_limits<float>::infinity()
                          : float(std::log(2.0) * double(m) / double(1 << SATTN_ROCC_EXP_FRAC) + std::log(double(s) / 256.0));
      }
    }
}

void ReferenceAttention(const float* q, const float* k, const float* v, int32_t B, int32_t Hq,
                        int32_t Hkv, int32_t Lq, int32_t Lk, int32_t D0, double scale,
                        const BlockPlan& plan, std::vector<double>* out, std::vector<double>* lse) {
  out->assign(size_t(B) * Hq * Lq * D0, 0.0);
  lse->assign(size_t(B) * Hq * Lq, -std::numeric_limits<double>::infinity());
  const int32_t blk = plan.block, off = Lk - Lq;
  std::vector<double> z(Lk);
  std::vector<char> vis(Lk);
  for (int32_t b = 0; b < B; ++b)
    for (int32_t h = 0; h < Hq; ++h) {
      const int32_t kvh = h / (Hq / Hkv);
      for (int32_t i = 0; i < Lq; ++i) {
        const int32_t pos = i + off, a = pos / blk, r = a - plan.q_block_begin;
        std::fill(vis.begin(), vis.end(), 0);
        const int64_t row = plan.row_of(b, h, r);
        for (int64_t e = plan.row_ptr[row]; e < plan.row_ptr[row + 1]; ++e) {
          const int32_t c = plan.col_idx[e], m = plan.mask_idx[e];
          for (int32_t j = 0; j < blk && int64_t(c) * blk + j < Lk; ++j)
            if (m < 0 || ((plan.bitmap(m)[pos - a * blk] >> j) & 1)) vis[c * blk + j] = 1;
        }
        double mx = -std::numeric_limits<double>::infinity();
        const float* qr = q + ((int64_t(b) * Hq + h) * Lq + i) * D0;
        for (int32_t j = 0; j < Lk; ++j) {
          if (!vis[j]) continue;
          const float* kr = k + ((int64_t(b) * Hkv + kvh) * Lk + j) * D0;
          double s = 0;
          for (int32_t d = 0; d < D0; ++d) s += double(qr[d]) * kr[d];
          z[j] = s * scale;
          mx = std::max(mx, z[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;
        double den = 0;
        double* o = &(*out)[((int64_t(b) * Hq + h) * Lq + i) * D0];
        for (int32_t j = 0; j < Lk; ++j) {
          if (!vis[j]) continue;
          const double w = std::exp(z[j] - mx);
          den += w;
          const float* vr = v + ((int64_t(b) * Hkv + kvh) * Lk + j) * D0;
          for (int32_t d = 0; d < D0; ++d) o[d] += w * vr[d];
        }
        for (int32_t d = 0; d < D0; ++d) o[d] /= den;
        (*lse)[(int64_t(b) * Hq + h) * Lq + i] = mx + std::log(den);
      }
    }
}

}  // namespace rocc
}  // namespace sattn
