#include "rocc_cmd_model.h"

#include <cstring>

namespace sattn {
namespace rocc {
namespace {

constexpr uint64_t kBeat = SATTN_ROCC_BUS_BYTES;

// ptr + ext runs past 2^64 (the RTL's `wraps`).
bool Wraps(uint64_t ptr, uint64_t ext) { return ptr != 0 && ext > uint64_t(0) - ptr; }

// The outcome of the reads so far: a code the loader stops with, or OK.
struct Stop {
  int code = SATTN_ROCC_ERR_OK;
  bool stopped() const { return code != SATTN_ROCC_ERR_OK; }
};

// One DMA job of `beats` beats from `addr`: a never-answering beat hangs the job (WATCHDOG wins
// over a refused beat of the same job, which only shows once every beat has come back).
int ReadJob(const MemoryMap& mem, uint64_t addr, uint64_t beats) {
  bool fault = false;
  for (uint64_t i = 0; i < beats; ++i) {
    const Access a = mem.Classify(addr + i * kBeat, kBeat);
    if (a == Access::kDead) return SATTN_ROCC_ERR_WATCHDOG;
    fault |= a == Access::kFault;
  }
  return fault ? SATTN_ROCC_ERR_DMA_READ_FAULT : SATTN_ROCC_ERR_OK;
}

// A 32-bit scalar read (one beat holding it); *v is set only when the read succeeds.
int ReadScalar(const MemoryMap& mem, uint64_t addr, int32_t* v) {
  const int e = ReadJob(mem, addr & ~(kBeat - 1), 1);
  if (e == SATTN_ROCC_ERR_OK) std::memcpy(v, reinterpret_cast<const void*>(uintptr_t(addr)), 4);
  return e;
}

// Whether every beat of a posted write of `bytes` at `addr` is accepted.
bool WriteOk(const MemoryMap& mem, uint64_t addr, uint64_t bytes) {
  for (uint64_t off = 0; off < bytes; off += kBeat)
    if (mem.Classify(addr + off, kBeat) == Access::kFault) return false;
  return true;
}

struct Walk {
  int code = SATTN_ROCC_ERR_OK;
  bool write_fault = false;
  bool step_limited = false;
};

Walk WalkAttention(const MemoryMap& mem, const uint64_t* d, uint32_t funct7, uint64_t max_steps) {
  Walk w;
  const bool spmm = funct7 == SATTN_ROCC_FUNCT_SPMM_BSR, spdot = funct7 == SATTN_ROCC_FUNCT_SPDOT_BSR;
  const bool fused = funct7 == SATTN_ROCC_FUNCT_SOFTMAX_FUSED;
  const uint64_t B = d[12], Hq = d[13], Hkv = d[14], D = d[15], blk = d[16], nkb = d[17];
  const bool pb1 = d[18] == 1, ph1 = d[19] == 1;
  const uint64_t qbb = d[20], nqb = d[21], nnz = d[22], nbm = d[23];
  const uint64_t group = Hq / Hkv, head_rows = nkb * blk, prows = d[18] * d[19] * nqb;
  const sattn_rocc_desc_t* x = reinterpret_cast<const sattn_rocc_desc_t*>(d);
  uint64_t steps = 0;
  int32_t cols[SATTN_ROCC_MAX_ROW_ENTRIES];
  for (uint64_t b = 0; b < B; ++b)
    for (uint64_t h = 0; h < Hq; ++h)
      for (uint64_t r = 0; r < nqb; ++r) {
        if (++steps > max_steps) { w.step_limited = true; return w; }
        const uint64_t row = ((pb1 ? 0 : b) * (ph1 ? 1 : Hq) + (ph1 ? 0 : h)) * nqb + r;
        const uint64_t bh = b * Hq + h, bkv = b * Hkv + h / group, a = r + qbb;
        const uint64_t rep = (pb1 ? b : 0) * (ph1 ? Hq : 1) + (ph1 ? h : 0);
        int32_t rp0 = 0, rp1 = 0;
        if ((w.code = ReadScalar(mem, x->row_ptr_ptr + 4 * row, &rp0))) return w;
        if ((w.code = ReadScalar(mem, x->row_ptr_ptr + 4 * (row + 1), &rp1))) return w;
        if (rp0 < 0 || rp1 < rp0 || uint32_t(rp1) > nnz || (row == 0 && rp0 != 0) ||
            (row + 1 == prows && uint32_t(rp1) != nnz)) {
          w.code = SATTN_ROCC_ERR_PLAN_RANGE;
          return w;
        }
        const uint32_t n = uint32_t(rp1 - rp0);
        if (n > SATTN_ROCC_MAX_ROW_ENTRIES) { w.code = SATTN_ROCC_ERR_ROW_TOO_LONG; return w; }
        if (spmm) {
          for (uint32_t e = 0; e < n; ++e) {
            int32_t col = 0;
            if ((w.code = ReadScalar(mem, x->col_idx_ptr + 4 * (uint64_t(rp0) + e), &col))) return w;
            if (col < 0 || uint32_t(col) >= nkb) { w.code = SATTN_ROCC_ERR_COL_RANGE; return w; }
            cols[e] = col;
            const uint64_t tile = x->scores_ptr + (rep * nnz + uint64_t(rp0) + e) * blk * blk * 4;
            if ((w.code = ReadJob(mem, tile, blk * blk / 4))) return w;
          }
        } else {
          int32_t qmul = 0;
          if ((w.code = ReadScalar(mem, x->qmul_ptr + 4 * (bh * nkb + a), &qmul))) return w;
          if ((w.code = ReadJob(mem, x->q_ptr + (bh * head_rows + a * blk) * D, blk * D / 16))) return w;
          for (uint32_t e = 0; e < n; ++e) {
            int32_t col = 0, m = 0, kmul = 0;
            if ((w.code = ReadScalar(mem, x->col_idx_ptr + 4 * (uint64_t(rp0) + e), &col))) return w;
            if (col < 0 || uint32_t(col) >= nkb) { w.code = SATTN_ROCC_ERR_COL_RANGE; return w; }
            cols[e] = col;
            if ((w.code = ReadScalar(mem, x->mask_idx_ptr + 4 * (uint64_t(rp0) + e), &m))) return w;
            if (m < -1 || (m >= 0 && uint32_t(m) >= nbm)) { w.code = SATTN_ROCC_ERR_MASK_RANGE; return w; }
            if ((w.code = ReadScalar(mem, x->kmul_ptr + 4 * (bkv * nkb + uint64_t(col)), &kmul))) return w;
            if (m >= 0 && (w.code = ReadJob(mem, x->bitmaps_ptr + uint64_t(m) * blk * 8, blk / 2))) return w;
            if ((w.code = ReadJob(mem, x->k_ptr + (bkv * head_rows + uint64_t(col) * blk) * D, blk * D / 16))) return w;
          }
        }
        if (fused || spmm)
          for (uint32_t e = 0; e < n; ++e)
            if ((w.code = ReadJob(mem, x->v_ptr + (bkv * head_rows + uint64_t(cols[e]) * blk) * D, blk * D / 16)))
              return w;
        // What the compute engine writes for this row (refusals only matter if the walk completes).
        if (spdot) {
          for (uint32_t e = 0; e < n; ++e)
            w.write_fault |= !WriteOk(mem, x->scores_ptr + (rep * nnz + uint64_t(rp0) + e) * blk * blk * 4, blk * blk * 4);
        } else {
          w.write_fault |= !WriteOk(mem, x->out_ptr + (bh * head_rows + a * blk) * D * 2, blk * D * 2);
          w.write_fault |= !WriteOk(mem, x->stats_ptr + (bh * head_rows + a * blk) * 8, blk * 8);
        }
      }
  return w;
}

// ATTN_BWD in the loader's order: phase 1 per key block of the transposed plan (t_row_ptr, the
// key block's kmul, K, V, then per entry: the entry, its multipliers, bitmap, Q, dO, row stats),
// phase 2 per forward plan row (row_ptr, then per entry col_idx, kmul, K, the dS tile).
Walk WalkBwd(const MemoryMap& mem, const uint64_t* d, uint64_t max_steps) {
  Walk w;
  const sattn_rocc_bwd_desc_t* x = reinterpret_cast<const sattn_rocc_bwd_desc_t*>(d);
  const uint64_t B = x->B, Hq = x->Hq, Hkv = x->Hkv, D = x->D, blk = x->block, nkb = x->n_k_blocks;
  const bool pb1 = x->plan_b == 1, ph1 = x->plan_h == 1;
  const uint64_t nqb = x->n_q_blocks, qbb = x->q_block_begin, nnz = x->nnz, nbm = x->n_bitmaps, tnnz = x->t_nnz;
  const uint64_t group = Hq / Hkv, rows = nkb * blk, prows = x->plan_b * x->plan_h * nqb, ncols = B * Hkv * nkb;
  const uint64_t tiles = (pb1 ? B : 1) * (ph1 ? Hq : 1) * nnz, tile_bytes = 2 * blk * blk + 16;
  uint64_t steps = 0;
  for (uint64_t b = 0; b < B; ++b)
    for (uint64_t g = 0; g < Hkv; ++g)
      for (uint64_t c = 0; c < nkb; ++c) {
        if (++steps > max_steps) { w.step_limited = true; return w; }
        const uint64_t col = (b * Hkv + g) * nkb + c, bkv = b * Hkv + g;
        int32_t rp0 = 0, rp1 = 0, kmul = 0;
        if ((w.code = ReadScalar(mem, x->t_row_ptr_ptr + 4 * col, &rp0))) return w;
        if ((w.code = ReadScalar(mem, x->t_row_ptr_ptr + 4 * (col + 1), &rp1))) return w;
        if (rp0 < 0 || rp1 < rp0 || uint32_t(rp1) > tnnz || (col == 0 && rp0 != 0) ||
            (col + 1 == ncols && uint32_t(rp1) != tnnz)) {
          w.code = SATTN_ROCC_ERR_PLAN_RANGE;
          return w;
        }
        if (rp1 == rp0) continue;
        if ((w.code = ReadScalar(mem, x->kmul_ptr + 4 * col, &kmul))) return w;
        if ((w.code = ReadJob(mem, x->k_ptr + (bkv * rows + c * blk) * D, blk * D / 16))) return w;
        if ((w.code = ReadJob(mem, x->v_ptr + (bkv * rows + c * blk) * D, blk * D / 16))) return w;
        for (int64_t e = rp0; e < rp1; ++e) {
          const uint64_t ea = x->t_ent_ptr + 16 * uint64_t(e);
          if ((w.code = ReadJob(mem, ea, 1))) return w;
          int32_t ent[4];
          std::memcpy(ent, reinterpret_cast<const void*>(uintptr_t(ea)), 16);
          const int64_t h = ent[0], a = ent[1], m = ent[2], t = ent[3];
          if (h < int64_t(g * group) || h >= int64_t((g + 1) * group) || a < int64_t(qbb) || a >= int64_t(nkb) ||
              t < 0 || uint64_t(t) >= tiles) {
            w.code = SATTN_ROCC_ERR_ENTRY_RANGE;
            return w;
          }
          if (m < -1 || (m >= 0 && uint64_t(m) >= nbm)) { w.code = SATTN_ROCC_ERR_MASK_RANGE; return w; }
          const uint64_t bh = b * Hq + uint64_t(h), q0 = bh * rows + uint64_t(a) * blk;
          if ((w.code = ReadJob(mem, x->emul_ptr + 16 * (bh * nkb + uint64_t(a)), 1))) return w;
          if (m >= 0 && (w.code = ReadJob(mem, x->bitmaps_ptr + uint64_t(m) * blk * 8, blk / 2))) return w;
          if ((w.code = ReadJob(mem, x->q_ptr + q0 * D, blk * D / 16))) return w;
          if ((w.code = ReadJob(mem, x->do_ptr + q0 * D, blk * D / 16))) return w;
          if ((w.code = ReadJob(mem, x->rs_ptr + q0 * 8, blk / 2))) return w;
          w.write_fault |= !WriteOk(mem, x->ds_ptr + uint64_t(t) * tile_bytes, tile_bytes);
        }
        w.write_fault |= !WriteOk(mem, x->dk_ptr + (bkv * rows + c * blk) * D * 8, blk * D * 8);
        w.write_fault |= !WriteOk(mem, x->dv_ptr + (bkv * rows + c * blk) * D * 8, blk * D * 8);
      }
  for (uint64_t b = 0; b < B; ++b)
    for (uint64_t h = 0; h < Hq; ++h)
      for (uint64_t r = 0; r < nqb; ++r) {
        if (++steps > max_steps) { w.step_limited = true; return w; }
        const uint64_t row = ((pb1 ? 0 : b) * (ph1 ? 1 : Hq) + (ph1 ? 0 : h)) * nqb + r;
        const uint64_t bh = b * Hq + h, bkv = b * Hkv + h / group, a = r + qbb;
        const uint64_t rep = (pb1 ? b : 0) * (ph1 ? Hq : 1) + (ph1 ? h : 0);
        int32_t rp0 = 0, rp1 = 0;
        if ((w.code = ReadScalar(mem, x->row_ptr_ptr + 4 * row, &rp0))) return w;
        if ((w.code = ReadScalar(mem, x->row_ptr_ptr + 4 * (row + 1), &rp1))) return w;
        if (rp0 < 0 || rp1 < rp0 || uint32_t(rp1) > nnz || (row == 0 && rp0 != 0) ||
            (row + 1 == prows && uint32_t(rp1) != nnz)) {
          w.code = SATTN_ROCC_ERR_PLAN_RANGE;
          return w;
        }
        if (rp1 == rp0) continue;
        for (int64_t e = rp0; e < rp1; ++e) {
          int32_t col = 0, kmul = 0;
          if ((w.code = ReadScalar(mem, x->col_idx_ptr + 4 * uint64_t(e), &col))) return w;
          if (col < 0 || uint32_t(col) >= nkb) { w.code = SATTN_ROCC_ERR_COL_RANGE; return w; }
          if ((w.code = ReadScalar(mem, x->kmul_ptr + 4 * (bkv * nkb + uint64_t(col)), &kmul))) return w;
          if ((w.code = ReadJob(mem, x->k_ptr + (bkv * rows + uint64_t(col) * blk) * D, blk * D / 16))) return w;
          if ((w.code = ReadJob(mem, x->ds_ptr + (rep * nnz + uint64_t(e)) * tile_bytes, blk * blk / 8 + 1))) return w;
        }
        w.write_fault |= !WriteOk(mem, x->dq_ptr + (bh * rows + a * blk) * D * 8, blk * D * 8);
      }
  return w;
}

Walk WalkCopy(const MemoryMap& mem, const uint64_t* d, bool gather, uint64_t max_steps) {
  Walk w;
  const sattn_rocc_copy_desc_t* x = reinterpret_cast<const sattn_rocc_copy_desc_t*>(d);
  const uint64_t limit = gather ? x->src_rows : x->dst_rows;
  for (uint64_t r = 0; r < x->n_rows; ++r) {
    if (r >= max_steps) { w.step_limited = true; return w; }
    int32_t idx = 0;
    if ((w.code = ReadScalar(mem, x->idx_ptr + 4 * r, &idx))) return w;
    if (idx < 0 || uint64_t(idx) >= limit) { w.code = SATTN_ROCC_ERR_INDEX_RANGE; return w; }
    const uint64_t src_row = gather ? uint64_t(idx) : r, dst_row = gather ? r : uint64_t(idx);
    if ((w.code = ReadJob(mem, x->src_ptr + src_row * x->src_stride, x->row_bytes / 16))) return w;
    w.write_fault |= !WriteOk(mem, x->dst_ptr + dst_row * x->dst_stride, x->row_bytes);
  }
  return w;
}

}  // namespace

int CheckDescriptor(const uint64_t* d, uint32_t funct7, uint32_t R, uint32_t C) {
  const sattn_rocc_desc_t* x = reinterpret_cast<const sattn_rocc_desc_t*>(d);
  const bool need_q = funct7 != SATTN_ROCC_FUNCT_SPMM_BSR, need_v = funct7 != SATTN_ROCC_FUNCT_SPDOT_BSR;
  const bool need_out = need_v, need_scores = funct7 != SATTN_ROCC_FUNCT_SOFTMAX_FUSED;
  const uint64_t B = x->B, Hq = x->Hq, Hkv = x->Hkv, D = x->D, blk = x->block, nkb = x->n_k_blocks;
  const uint64_t nqb = x->n_q_blocks, qbb = x->q_block_begin, nnz = x->nnz, nbm = x->n_bitmaps, Lk = x->Lk;
  if (x->row_ptr_ptr == 0 || x->col_idx_ptr == 0 || x->mask_idx_ptr == 0 ||
      (need_q && (x->q_ptr == 0 || x->k_ptr == 0 || x->qmul_ptr == 0 || x->kmul_ptr == 0)) ||
      (need_v && x->v_ptr == 0) || (need_out && (x->out_ptr == 0 || x->stats_ptr == 0)) ||
      (need_scores && x->scores_ptr == 0) || (nbm != 0 && x->bitmaps_ptr == 0))
    return SATTN_ROCC_ERR_NULL_PTR;
  for (int i = 0; i < 12; ++i)
    if (d[i] % 16 != 0) return SATTN_ROCC_ERR_MISALIGNED;
  if (B == 0 || Hq == 0 || Hkv == 0 || D == 0 || blk == 0 || nkb == 0 || nqb == 0) return SATTN_ROCC_ERR_ZERO_DIM;
  if (D > SATTN_ROCC_MAX_D || blk > SATTN_ROCC_MAX_BLK || x->score_shift > 63 || B > 4096 || Hq > 4096 ||
      Hkv > 4096 || nkb > 65535 || nnz >= (1u << 24) || nbm >= (1u << 24))
    return SATTN_ROCC_ERR_OVERSIZE_DIM;
  if (D % 16 != 0 || D % C != 0 || blk % 16 != 0 || blk % R != 0 || blk % C != 0 || Hq % Hkv != 0 ||
      (x->plan_b != 1 && x->plan_b != B) || (x->plan_h != 1 && x->plan_h != Hq) || qbb >= nkb || nqb > nkb ||
      qbb + nqb != nkb || Lk > nkb * blk || Lk <= (nkb - 1) * blk)
    return SATTN_ROCC_ERR_BAD_SHAPE;
  const uint64_t reps = (x->plan_b == 1 ? B : 1) * (x->plan_h == 1 ? Hq : 1);
  const uint64_t prows = x->plan_b * x->plan_h * nqb;
  if ((need_out && (x->out_bytes < B * Hq * nkb * blk * D * 2 || x->stats_bytes < B * Hq * nkb * blk * 8)) ||
      (need_scores && x->scores_bytes < reps * nnz * blk * blk * 4))
    return SATTN_ROCC_ERR_BUFFER_SIZE;
  if ((need_q && (Wraps(x->q_ptr, B * Hq * nkb * blk * D) || Wraps(x->k_ptr, B * Hkv * nkb * blk * D) ||
                  Wraps(x->qmul_ptr, B * Hq * nkb * 4) || Wraps(x->kmul_ptr, B * Hkv * nkb * 4))) ||
      (need_v && Wraps(x->v_ptr, B * Hkv * nkb * blk * D)) ||
      (need_out && (Wraps(x->out_ptr, x->out_bytes) || Wraps(x->stats_ptr, x->stats_bytes))) ||
      (need_scores && Wraps(x->scores_ptr, x->scores_bytes)) || Wraps(x->row_ptr_ptr, (prows + 1) * 4) ||
      Wraps(x->col_idx_ptr, nnz * 4) || Wraps(x->mask_idx_ptr, nnz * 4) ||
      (nbm != 0 && Wraps(x->bitmaps_ptr, nbm * blk * 8)))
    return SATTN_ROCC_ERR_ADDR_RANGE;
  return SATTN_ROCC_ERR_OK;
}

int CheckBwdDescriptor(const uint64_t* d, uint32_t R, uint32_t C) {
  const sattn_rocc_bwd_desc_t* x = reinterpret_cast<const sattn_rocc_bwd_desc_t*>(d);
  const uint64_t B = x->B, Hq = x->Hq, Hkv = x->Hkv, D = x->D, blk = x->block, nkb = x->n_k_blocks;
  const uint64_t nqb = x->n_q_blocks, qbb = x->q_block_begin, nnz = x->nnz, nbm = x->n_bitmaps, tnnz = x->t_nnz;
  const uint64_t Lk = x->Lk, rows = nkb * blk;
  bool null = nbm != 0 && x->bitmaps_ptr == 0;
  uint64_t ptrs = 0;
  for (int i = 0; i <= 15; ++i) {
    if (&d[i] != &x->bitmaps_ptr && d[i] == 0) null = true;
    ptrs |= d[i];
  }
  if (null) return SATTN_ROCC_ERR_NULL_PTR;
  if (ptrs % 16 != 0) return SATTN_ROCC_ERR_MISALIGNED;
  if (B == 0 || Hq == 0 || Hkv == 0 || D == 0 || blk == 0 || nkb == 0 || nqb == 0) return SATTN_ROCC_ERR_ZERO_DIM;
  if (D > SATTN_ROCC_MAX_D || blk > SATTN_ROCC_MAX_BLK || x->score_shift > 63 || B > 4096 || Hq > 4096 ||
      Hkv > 4096 || nkb > 65535 || nnz >= (1u << 24) || nbm >= (1u << 24) || tnnz >= (1u << 24))
    return SATTN_ROCC_ERR_OVERSIZE_DIM;
  if (D % 16 != 0 || D % C != 0 || blk % 16 != 0 || blk % R != 0 || blk % C != 0 || Hq % Hkv != 0 ||
      (x->plan_b != 1 && x->plan_b != B) || (x->plan_h != 1 && x->plan_h != Hq) || qbb >= nkb || nqb > nkb ||
      qbb + nqb != nkb || Lk > nkb * blk || Lk <= (nkb - 1) * blk)
    return SATTN_ROCC_ERR_BAD_SHAPE;
  const uint64_t reps = (x->plan_b == 1 ? B : 1) * (x->plan_h == 1 ? Hq : 1);
  const uint64_t prows = x->plan_b * x->plan_h * nqb;
  if (x->ds_bytes < reps * nnz * (blk * blk * 2 + 16) || x->dq_bytes < B * Hq * rows * D * 8 ||
      x->dk_bytes < B * Hkv * rows * D * 8 || x->dv_bytes < B * Hkv * rows * D * 8)
    return SATTN_ROCC_ERR_BUFFER_SIZE;
  if (Wraps(x->q_ptr, B * Hq * rows * D) || Wraps(x->do_ptr, B * Hq * rows * D) || Wraps(x->k_ptr, B * Hkv * rows * D) ||
      Wraps(x->v_ptr, B * Hkv * rows * D) || Wraps(x->rs_ptr, B * Hq * rows * 8) || Wraps(x->emul_ptr, B * Hq * nkb * 16) ||
      Wraps(x->kmul_ptr, B * Hkv * nkb * 4) || Wraps(x->row_ptr_ptr, (prows + 1) * 4) || Wraps(x->col_idx_ptr, nnz * 4) ||
      Wraps(x->t_row_ptr_ptr, (B * Hkv * nkb + 1) * 4) || Wraps(x->t_ent_ptr, tnnz * 16) ||
      (nbm != 0 && Wraps(x->bitmaps_ptr, nbm * blk * 8)) || Wraps(x->ds_ptr, x->ds_bytes) ||
      Wraps(x->dq_ptr, x->dq_bytes) || Wraps(x->dk_ptr, x->dk_bytes) || Wraps(x->dv_ptr, x->dv_bytes))
    return SATTN_ROCC_ERR_ADDR_RANGE;
  return SATTN_ROCC_ERR_OK;
}

int CheckCopyDescriptor(const uint64_t* d, bool gather) {
  const sattn_rocc_copy_desc_t* x = reinterpret_cast<const sattn_rocc_copy_desc_t*>(d);
  const uint64_t n = x->n_rows, rb = x->row_bytes, ss = x->src_stride, ds = x->dst_stride;
  const uint64_t last = gather ? n : x->dst_rows, src_last = gather ? x->src_rows : n;
  if (x->src_ptr == 0 || x->dst_ptr == 0 || x->idx_ptr == 0) return SATTN_ROCC_ERR_NULL_PTR;
  if (x->src_ptr % 16 || x->dst_ptr % 16 || x->idx_ptr % 16 || ss % 16 || ds % 16) return SATTN_ROCC_ERR_MISALIGNED;
  if (rb == 0) return SATTN_ROCC_ERR_ZERO_DIM;
  if (rb > uint64_t(SATTN_ROCC_MAX_BLK) * SATTN_ROCC_MAX_D || n >= (1u << 24) || ss >= (uint64_t(1) << 32) ||
      ds >= (uint64_t(1) << 32) || x->src_rows >= (uint64_t(1) << 31) || x->dst_rows >= (uint64_t(1) << 31))
    return SATTN_ROCC_ERR_OVERSIZE_DIM;
  if (rb % 16 != 0) return SATTN_ROCC_ERR_BAD_SHAPE;
  if (last != 0 && (last - 1) * ds + rb > x->dst_bytes) return SATTN_ROCC_ERR_BUFFER_SIZE;
  if (Wraps(x->idx_ptr, n * 4) || Wraps(x->dst_ptr, x->dst_bytes) ||
      (src_last != 0 && Wraps(x->src_ptr, (src_last - 1) * ss + rb)))
    return SATTN_ROCC_ERR_ADDR_RANGE;
  return SATTN_ROCC_ERR_OK;
}

ModelResponse CommandModel::Command(const MemoryMap& mem, uint64_t funct7, uint64_t rs1, uint64_t rs2,
                                    uint64_t max_steps) {
  ModelResponse res;
  auto answer = [&](int code) {
    last_error_ = uint8_t(code);
    res.rd = uint64_t(code);
    return res;
  };
  if (funct7 > 127) {
    res.rd = SATTN_ROCC_ERR_BAD_FUNCT;
    return res;
  }
  switch (funct7) {
    case SATTN_ROCC_FUNCT_CONFIGURE:
      if (rs1 >> 2) return answer(SATTN_ROCC_ERR_BAD_ARG);
      if (rs1 & 2) watchdog_ = rs2 == 0 ? SATTN_ROCC_WATCHDOG_DEFAULT : rs2;
      res.rd = SATTN_ROCC_ERR_OK;
      return res;
    case SATTN_ROCC_FUNCT_STATUS:
      if (rs1 >= SATTN_ROCC_N_STATUS_REGS) {
        last_error_ = SATTN_ROCC_ERR_BAD_STATUS_INDEX;
        res.rd = SATTN_ROCC_STATUS_ERROR_BIT | SATTN_ROCC_ERR_BAD_STATUS_INDEX;
        return res;
      }
      switch (rs1) {
        case SATTN_ROCC_STAT_LAST_ERROR: res.rd = last_error_; break;
        case SATTN_ROCC_STAT_PARAM_MAC_ROWS: res.rd = rows_; break;
        case SATTN_ROCC_STAT_PARAM_MAC_COLS: res.rd = cols_; break;
        case SATTN_ROCC_STAT_PARAM_BUS_BYTES: res.rd = SATTN_ROCC_BUS_BYTES; break;
        case SATTN_ROCC_STAT_PARAM_MAX_D: res.rd = SATTN_ROCC_MAX_D; break;
        case SATTN_ROCC_STAT_PARAM_MAX_BLK: res.rd = SATTN_ROCC_MAX_BLK; break;
        case SATTN_ROCC_STAT_PARAM_MAX_ROW_ENTRIES: res.rd = SATTN_ROCC_MAX_ROW_ENTRIES; break;
        default: res.exact = false; break;  // a counter
      }
      return res;
    case SATTN_ROCC_FUNCT_BLK_REDUCE:
    case SATTN_ROCC_FUNCT_TOPK_IDX:
      return answer(SATTN_ROCC_ERR_UNSUPPORTED);
    case SATTN_ROCC_FUNCT_SPDOT_BSR:
    case SATTN_ROCC_FUNCT_SOFTMAX_FUSED:
    case SATTN_ROCC_FUNCT_SPMM_BSR:
    case SATTN_ROCC_FUNCT_GATH2D:
    case SATTN_ROCC_FUNCT_SCAT2D:
    case SATTN_ROCC_FUNCT_ATTN_BWD:
      break;
    default:
      return answer(SATTN_ROCC_ERR_BAD_FUNCT);
  }
  const bool copy = funct7 == SATTN_ROCC_FUNCT_GATH2D || funct7 == SATTN_ROCC_FUNCT_SCAT2D;
  const bool bwd = funct7 == SATTN_ROCC_FUNCT_ATTN_BWD;
  const uint64_t words = copy ? SATTN_ROCC_CDESC_WORDS : bwd ? SATTN_ROCC_BDESC_WORDS : SATTN_ROCC_DESC_WORDS;
  const uint64_t beats = (words + 1) / 2;
  if (rs1 == 0) return answer(SATTN_ROCC_ERR_NULL_PTR);
  if (rs1 % 16 != 0) return answer(SATTN_ROCC_ERR_MISALIGNED);
  if (Wraps(rs1, beats * kBeat)) return answer(SATTN_ROCC_ERR_ADDR_RANGE);
  if (const int e = ReadJob(mem, rs1, beats)) return answer(e);
  uint64_t d[SATTN_ROCC_BDESC_WORDS > SATTN_ROCC_DESC_WORDS ? SATTN_ROCC_BDESC_WORDS : SATTN_ROCC_DESC_WORDS] = {0};
  std::memcpy(d, reinterpret_cast<const void*>(uintptr_t(rs1)), words * 8);
  const bool gather = funct7 == SATTN_ROCC_FUNCT_GATH2D;
  if (const int e = copy ? CheckCopyDescriptor(d, gather)
                         : bwd ? CheckBwdDescriptor(d, rows_, cols_) : CheckDescriptor(d, uint32_t(funct7), rows_, cols_))
    return answer(e);
  const Walk w = copy ? WalkCopy(mem, d, gather, max_steps)
                      : bwd ? WalkBwd(mem, d, max_steps) : WalkAttention(mem, d, uint32_t(funct7), max_steps);
  if (w.step_limited) {
    res.exact = false;
    return res;
  }
  if (w.code != SATTN_ROCC_ERR_OK) return answer(w.code);
  return answer(w.write_fault ? SATTN_ROCC_ERR_DMA_WRITE_FAULT : SATTN_ROCC_ERR_OK);
}

}  // namespace rocc
}  // namespace sattn
