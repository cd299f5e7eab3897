"""Backward kernels (FlashAttention-2 split): dq per query tile, dk/dv per key tile.

Both recompute P = exp(scale*q.k - lse) tile by tile from the forward's LSE; nothing of size
Lq x Lk is stored. The dq kernel walks key tiles exactly like the forward (plan row or planless
ranges) and also writes delta = rowsum(dO * O) for its rows, which the dk/dv kernel (launched
after it) reads (a separate delta launch and a one-launch backward with dq and dk/dv programs in
one grid were both slower on the H100). The dk/dv kernel walks the query tiles that see its key tile: the transposed
plan (plans.transpose, CSC per key block) or, for Dense/SlidingWindow, ranges from program ids,
and works on S^T = K Q^T so no register tile needs a transpose. Planless walks run their full
tiles in a loop without mask code, the few partial tiles (diagonal, window edge) in masked loops.
Atomics were not used for dq: one fp32 atomic per (query, dim) per visited key tile would move
~8.6 GB through L2 for the static 12.5% case at L=32768, more than the 2.9 ms the separate dq
kernel takes (docs/backends/gpu.md).
GQA: one dk/dv program per (key tile, kv head) walks the query heads of its group in turn and
accumulates one dk/dv, so K/V are loaded once per group, nothing is repeated and there are no
atomics or per-query-head buffers.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sattn_triton.common import (INTERPRETED, K_PLAN, K_SLIDING, LOG2E, MODE_DENSE, MODE_PLAN, MODE_SLIDING,
                                 bitmap_visible, cdiv, dot_in_fp32, dot_precision, even_tiles, fit_tile,
                                 full_key_tiles, full_query_tiles, key_tile, load_key_tile, padded_head_dim,
                                 planless_tile, register_cap, split_virtual, tile_visible, token_visible,
                                 walk_entry, walk_flanks, walk_start, window_kind)
from sattn_triton.forward import has_mask, key_tile_range
from sattn_triton import plans as P


@triton.jit
def _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, skn, svn, t0, t1, pos, offs_n, offs_d, d_ok,
              e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk, qk_scale, span, dilation, gtok, va, vb,
              BLK: tl.constexpr, BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr,
              SW: tl.constexpr, BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr,
              PREC: tl.constexpr, MASK: tl.constexpr, PREFETCH: tl.constexpr, EVEN: tl.constexpr):
    """dq over virtual key tiles [t0, t1); MASK, EVEN as in forward._fwd_tiles, PREFETCH as in
    common.walk_entry."""
    c_nxt, mi_nxt = walk_start(COL_IDX, MASK_IDX, e0, t0, t1, BLK // BLOCK_N, MASK, PREFETCH)
    for t in range(t0, t1):
        j, c, mi, need_mask, c_nxt, mi_nxt = key_tile(t, t1, e0, c_nxt, mi_nxt, n_g, lo_t, Lk, offs_n,
                                                      COL_IDX, MASK_IDX, va, vb, BLK, BLOCK_N, MODE, MASK,
                                                      PREFETCH)
        k, v = load_key_tile(k_base, v_base, j, skn, svn, offs_d, d_ok, Lk, DOT_F32, EVEN)
        # The scale rides in the exp2's FMA; masking the probabilities (not the scores) keeps that
        # one instruction per element and is right for any sign of the scale.
        s = tl.dot(q, tl.trans(k), input_precision=PREC)
        p = tl.exp2(s * qk_scale - lse2[:, None])
        if MASK:
            if need_mask:
                vis = tile_visible(BITMAPS, mi, pos, j, a, c, Lk, span, dilation, gtok, BLK, CAUSAL, SW,
                                   BITMAP, WORDS)
                p = tl.where(vis, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PREC)
    return dq


@triton.jit
def _row_delta(o_base, som, do, dlse_rows, i, lse, row_ok, offs_d, d_ok, HAS_DLSE: tl.constexpr):
    """delta = rowsum(dO * O) - dlse for rows i (rows with lse = -inf ignore dlse)."""
    o = tl.load(o_base + i[:, None] * som + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    if HAS_DLSE:
        dl = tl.load(dlse_rows + i, mask=row_ok, other=0.0).to(tl.float32)
        delta -= tl.where(lse == float("-inf"), 0.0, dl)
    return delta


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, O, DO, LSE, DLSE, DELTA, DQ, sq, sk, sv, so, sdo, sdq,
    ROW_PTR, COL_IDX, MASK_IDX, BITMAPS, plan_sb, plan_sh, q_block_begin,
    Hq, group, Lq, Lk, q_first, qk_scale, sm_scale, span, dilation, gtok,
    D: tl.constexpr, DP: tl.constexpr, BLK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
    BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr,
    HAS_MASK: tl.constexpr, HAS_DLSE: tl.constexpr, EVEN: tl.constexpr,
):
    """dq of one query tile (one program per (query tile, batch*head)). It also computes
    delta = rowsum(dO * O) (minus dlse) for its rows and stores it for the dk/dv kernel, which
    runs after it on the same stream: the programs of this grid cover every query row."""
    # (batch, head, row) stride tuples of Q, K, V, O, DO and DQ.
    sqb, sqh, sqm = sq[0], sq[1], sq[2]
    skb, skh, skn = sk[0], sk[1], sk[2]
    svb, svh, svn = sv[0], sv[1], sv[2]
    sob, soh, som = so[0], so[1], so[2]
    sdob, sdoh, sdom = sdo[0], sdo[1], sdo[2]
    sdqb, sdqh, sdqm = sdq[0], sdq[1], sdq[2]
    pid_t = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // Hq
    h = pid_bh % Hq
    hk = h // group
    TPB: tl.constexpr = BLK // BLOCK_M
    r = pid_t // TPB
    a = r + q_block_begin
    m0 = a * BLK + (pid_t % TPB) * BLOCK_M
    p_lo = tl.maximum(m0, q_first)
    p_hi = tl.minimum(m0 + BLOCK_M, Lk) - 1
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DP)
    pos = m0 + offs_m
    row_ok = (pos >= q_first) & (pos < Lk)
    d_ok = offs_d < D
    i = (pos - q_first).to(tl.int64)
    bh_row = (b * Hq + h).to(tl.int64) * Lq
    qd_ok = None if EVEN else row_ok[:, None] & d_ok[None, :]   # as in _fwd_kernel
    q = tl.load(Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh + i[:, None] * sqm + offs_d[None, :],
                mask=qd_ok, other=None if EVEN else 0.0)
    do = tl.load(DO + b.to(tl.int64) * sdob + h.to(tl.int64) * sdoh + i[:, None] * sdom + offs_d[None, :],
                 mask=qd_ok, other=None if EVEN else 0.0)
    lse = tl.load(LSE + bh_row + i, mask=row_ok, other=float("-inf"))
    # Rows with no visible key (lse = -inf) and padding rows: +inf makes every p exactly 0.
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    delta = _row_delta(O + b.to(tl.int64) * sob + h.to(tl.int64) * soh, som, do, DLSE + bh_row, i,
                       lse, row_ok, offs_d, d_ok, HAS_DLSE)
    tl.store(DELTA + bh_row + i, delta, mask=row_ok)
    if DOT_F32:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    k_base = K + b.to(tl.int64) * skb + hk.to(tl.int64) * skh
    v_base = V + b.to(tl.int64) * svb + hk.to(tl.int64) * svh

    NSUB: tl.constexpr = BLK // BLOCK_N
    if MODE == K_PLAN:
        row = b * plan_sb + h * plan_sh + r
        e0 = tl.load(ROW_PTR + row)
        total = (tl.load(ROW_PTR + row + 1) - e0) * NSUB
        total = tl.where(p_hi < p_lo, 0, total)
        n_g = 0
        lo_t = 0
    else:
        n_g, lo_t, total = key_tile_range(p_lo, p_hi, Lk, MODE, CAUSAL, BLOCK_N, span, gtok)
        e0 = 0
    dq = tl.zeros([BLOCK_M, DP], tl.float32)
    if MODE == K_PLAN:
        dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, skn, svn, 0, total, pos, offs_n, offs_d,
                       d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk, qk_scale, span, dilation,
                       gtok, 0, 0, BLK, BLOCK_N, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, HAS_MASK,
                       True, EVEN)
    else:
        # Both flanks in one masked loop, then the full run (common.walk_flanks).
        f_lo, f_hi = full_key_tiles(p_lo, p_hi, Lk, BLOCK_N, CAUSAL, SW, span, dilation)
        va, vb = split_virtual(n_g, lo_t, total, f_lo, f_hi)
        _, _, t1 = walk_flanks(0, total, va, vb)
        dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, skn, svn, 0, t1, pos, offs_n,
                       offs_d, d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk, qk_scale, span,
                       dilation, gtok, va, vb, BLK, BLOCK_N, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC,
                       True, False, EVEN)
        dq = _dq_tiles(dq, q, do, lse2, delta, k_base, v_base, skn, svn, va, vb, pos, offs_n, offs_d,
                       d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk, qk_scale, span, dilation,
                       gtok, va, vb, BLK, BLOCK_N, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, False,
                       False, EVEN)
    dq = dq * sm_scale
    tl.store(DQ + b.to(tl.int64) * sdqb + h.to(tl.int64) * sdqh + i[:, None] * sdqm + offs_d[None, :],
             dq.to(DQ.dtype.element_ty), mask=qd_ok)


@triton.jit
def query_tile_range(n0, j_hi, q_first, Lk, MODE: tl.constexpr, CAUSAL: tl.constexpr,
                     BLOCK_M: tl.constexpr, span, gtok):
    """Planless modes, seen from key tile [n0, j_hi]: (n_g, first_t, lo_t, total) where virtual
    tile t maps to query tile first_t + t (t < n_g, global queries) or lo_t + t - n_g."""
    first_t = q_first // BLOCK_M
    last_t = (Lk - 1) // BLOCK_M
    lo_p = q_first + 0 * n0
    if CAUSAL:
        lo_p = tl.maximum(n0, q_first)
    hi_p = Lk - 1 + 0 * n0
    n_g = 0 * n0
    if MODE == K_SLIDING:
        win = n0 >= gtok
        if CAUSAL:
            lo_w = tl.maximum(n0, q_first)
        else:
            lo_w = tl.maximum(n0 - span + 1, q_first)
        lo_p = tl.where(win, lo_w, lo_p)
        hi_p = tl.where(win, tl.minimum(j_hi + span - 1, Lk - 1), hi_p)
        n_g = tl.where(win, tl.maximum(tl.minimum(tl.cdiv(gtok, BLOCK_M), lo_p // BLOCK_M) - first_t, 0), 0)
    lo_t = lo_p // BLOCK_M
    last_t = tl.minimum(last_t, hi_p // BLOCK_M)
    n_w = tl.where(hi_p >= lo_p, last_t - lo_t + 1, 0)
    return n_g, first_t, lo_t, n_g + tl.maximum(n_w, 0)


@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, sqm, sdom, LSE, DELTA, bh_row, t0, t1, j, offs_m,
                offs_d, d_ok, e0, T_ROW, T_MASK, BITMAPS, c, q_block_begin, n_g, first_t, lo_t,
                Lk, q_first, qk_scale, span, dilation, gtok, va, vb,
                BLK: tl.constexpr, BLOCK_M: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr,
                SW: tl.constexpr, BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr,
                PREC: tl.constexpr, MASK: tl.constexpr, PREFETCH: tl.constexpr, EVEN: tl.constexpr):
    """dk, dv over virtual query tiles [t0, t1), in the transposed orientation: S^T = K Q^T is
    [BLOCK_N, BLOCK_M], so P^T and dS^T come out of the MMA already as the left operands of
    dv += P^T dO and dk += dS^T Q and no register tile is transposed (the FlashAttention-2
    Triton tutorial's layout); Q^T is loaded transposed straight from memory.
    EVEN (`even_tiles` over Lq and Lk): every walked query tile lies inside [q_first, Lk), so the
    Q^T, dO, LSE and delta loads carry no mask (each masked cp.async needs its own predicate).
    Planless walks: the full run [va, vb) as in common.planless_tile; PREFETCH as in
    common.walk_entry."""
    NSUB: tl.constexpr = BLK // BLOCK_M
    r_nxt, mi_nxt = walk_start(T_ROW, T_MASK, e0, t0, t1, NSUB, MASK, PREFETCH)
    for t in range(t0, t1):
        if MODE == K_PLAN:
            r, mi, r_nxt, mi_nxt = walk_entry(T_ROW, T_MASK, e0, t, t1, r_nxt, mi_nxt, NSUB, MASK, PREFETCH)
            a = r + q_block_begin
            m0 = a * BLK + (t % NSUB) * BLOCK_M
            need_mask = (mi != -1) | (c * BLK + BLK > Lk)
        else:
            tv = planless_tile(t, va, vb, MASK)
            need_mask = True
            m0 = tl.where(tv < n_g, first_t + tv, lo_t + tv - n_g) * BLOCK_M
            a = 0
            mi = 0
        pos = m0 + offs_m
        i = (pos - q_first).to(tl.int64)
        if EVEN:
            qT = tl.load(q_base + offs_d[:, None] + i[None, :] * sqm)                 # [DP, BM]
            do = tl.load(do_base + i[:, None] * sdom + offs_d[None, :])               # [BM, DP]
            lse = tl.load(LSE + bh_row + i)
            delta = tl.load(DELTA + bh_row + i)
        else:
            row_ok = (pos >= q_first) & (pos < Lk)
            qT = tl.load(q_base + offs_d[:, None] + i[None, :] * sqm, mask=d_ok[:, None] & row_ok[None, :],
                         other=0.0)
            do = tl.load(do_base + i[:, None] * sdom + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :],
                         other=0.0)
            lse = tl.load(LSE + bh_row + i, mask=row_ok, other=float("-inf"))
            delta = tl.load(DELTA + bh_row + i, mask=row_ok, other=0.0)
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
        if DOT_F32:
            qT = qT.to(tl.float32)
            do = do.to(tl.float32)
        # dP^T is issued right behind S^T (it needs neither P nor the mask): its MMAs then run
        # while the exp2s of P^T are computed, and dv and dk go out together at the end, one wait
        # fewer per tile. H100 run 19 (static plan, L=32768): dk/dv 4.07 ms vs 4.31 with dP^T
        # after dv (3 stages), 3.88 vs 4.35 at 4 stages.
        sT = tl.dot(k, qT, input_precision=PREC)                                    # [BN, BM]
        dpT = tl.dot(v, tl.trans(do), input_precision=PREC)                         # [BN, BM]
        pT = tl.exp2(sT * qk_scale - lse2[None, :])                                 # as in _dq_tiles
        if MASK:
            if need_mask:
                if BITMAP:
                    vis = bitmap_visible(BITMAPS, tl.maximum(mi, 0), (pos - a * BLK)[None, :],
                                         (j - c * BLK)[:, None], j[:, None], Lk, BLK, WORDS)
                    vis = tl.where(mi >= 0, vis, j[:, None] < Lk)
                else:
                    vis = token_visible(pos[None, :], j[:, None], Lk, CAUSAL, SW, span, dilation, gtok)
                pT = tl.where(vis, pT, 0.0)
        dv += tl.dot(pT.to(do.dtype), do, input_precision=PREC)
        dsT = pT * (dpT - delta[None, :])
        dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT), input_precision=PREC)
    return dk, dv


@triton.jit
def _dkdv_head(dk, dv, k, v, b, h, c, n0, j_hi, j, offs_m, offs_d, d_ok,
               Q, DO, LSE, DELTA, sqb, sqh, sqm, sdob, sdoh, sdom,
               COL_PTR, T_ROW, T_MASK, BITMAPS, t_sb, t_sh, q_block_begin,
               Hq, Lq, Lk, q_first, qk_scale, span, dilation, gtok,
               BLK: tl.constexpr, BLOCK_M: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr,
               SW: tl.constexpr, BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr,
               PREC: tl.constexpr, HAS_MASK: tl.constexpr, EVEN: tl.constexpr):
    """Adds query head h's contribution to dk, dv of key tile [n0, j_hi] (plan column c)."""
    q_base = Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
    do_base = DO + b.to(tl.int64) * sdob + h.to(tl.int64) * sdoh
    bh_row = (b * Hq + h).to(tl.int64) * Lq
    NSUB: tl.constexpr = BLK // BLOCK_M
    if MODE == K_PLAN:
        col = b * t_sb + h * t_sh + c
        e0 = tl.load(COL_PTR + col)
        total = (tl.load(COL_PTR + col + 1) - e0) * NSUB
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, sqm, sdom, LSE, DELTA, bh_row, 0, total, j,
                             offs_m, offs_d, d_ok, e0, T_ROW, T_MASK, BITMAPS, c, q_block_begin, 0, 0, 0,
                             Lk, q_first, qk_scale, span, dilation, gtok, 0, 0, BLK, BLOCK_M, MODE, CAUSAL,
                             SW, BITMAP, WORDS, DOT_F32, PREC, HAS_MASK, True, EVEN)
    else:
        # Both flanks in one masked loop, then the full run (common.walk_flanks).
        n_g, first_t, lo_t, total = query_tile_range(n0, j_hi, q_first, Lk, MODE, CAUSAL, BLOCK_M, span, gtok)
        g_lo, g_hi = full_query_tiles(n0, j_hi, Lk, BLOCK_M, CAUSAL, SW, span, dilation)
        va, vb = split_virtual(n_g, lo_t, total, g_lo, g_hi)
        _, _, t1 = walk_flanks(0, total, va, vb)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, sqm, sdom, LSE, DELTA, bh_row, 0, t1, j,
                             offs_m, offs_d, d_ok, 0, T_ROW, T_MASK, BITMAPS, c, q_block_begin, n_g,
                             first_t, lo_t, Lk, q_first, qk_scale, span, dilation, gtok, va, vb, BLK,
                             BLOCK_M, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, True, False, EVEN)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, sqm, sdom, LSE, DELTA, bh_row, va, vb, j,
                             offs_m, offs_d, d_ok, 0, T_ROW, T_MASK, BITMAPS, c, q_block_begin, n_g,
                             first_t, lo_t, Lk, q_first, qk_scale, span, dilation, gtok, va, vb, BLK,
                             BLOCK_M, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, False, False, EVEN)
    return dk, dv


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, sq, sk, sv, sdo, sdk, sdv,
    COL_PTR, T_ROW, T_MASK, BITMAPS, t_sb, t_sh, n_k_blocks, q_block_begin,
    Hq, group, Lq, Lk, q_first, qk_scale, sm_scale, span, dilation, gtok,
    D: tl.constexpr, DP: tl.constexpr, BLK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
    BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr,
    GROUP_LOOP: tl.constexpr, HAS_MASK: tl.constexpr, EVEN: tl.constexpr,
):
    """dk, dv of one key tile (BLOCK_N keys of one batch and kv head; one program per (key tile,
    batch*head)) over the query tiles that see it. GROUP_LOOP (GQA): pid_bh is (b, kv head) and the program walks every query head of the
    group in turn, accumulating into one dk/dv: K/V are loaded once per group and written once,
    with no per-query-head buffers. Otherwise pid_bh is (b, head) and group is 1."""
    # (batch, head, row) stride tuples of Q, K, V, DO, DK and DV.
    sqb, sqh, sqm = sq[0], sq[1], sq[2]
    skb, skh, skn = sk[0], sk[1], sk[2]
    svb, svh, svn = sv[0], sv[1], sv[2]
    sdob, sdoh, sdom = sdo[0], sdo[1], sdo[2]
    sdkb, sdkh, sdkn = sdk[0], sdk[1], sdk[2]
    sdvb, sdvh, sdvn = sdv[0], sdv[1], sdv[2]
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    if GROUP_LOOP:
        b = pid_bh // (Hq // group)
        hk = pid_bh % (Hq // group)
        h = hk * group
    else:
        b = pid_bh // Hq
        h = pid_bh % Hq
        hk = h // group
    n0 = pid_n * BLOCK_N
    j_hi = n0 + BLOCK_N - 1
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DP)
    d_ok = offs_d < D
    j = n0 + offs_n
    kv_ok = None if EVEN else (j < Lk)[:, None] & d_ok[None, :]   # as in _fwd_kernel
    k = tl.load(K + b.to(tl.int64) * skb + hk.to(tl.int64) * skh + j[:, None].to(tl.int64) * skn + offs_d[None, :],
                mask=kv_ok, other=None if EVEN else 0.0)
    v = tl.load(V + b.to(tl.int64) * svb + hk.to(tl.int64) * svh + j[:, None].to(tl.int64) * svn + offs_d[None, :],
                mask=kv_ok, other=None if EVEN else 0.0)
    if DOT_F32:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    c = n0 // BLK
    dk = tl.zeros([BLOCK_N, DP], tl.float32)
    dv = tl.zeros([BLOCK_N, DP], tl.float32)
    if GROUP_LOOP:
        for gi in range(group):
            dk, dv = _dkdv_head(dk, dv, k, v, b, h + gi, c, n0, j_hi, j, offs_m, offs_d, d_ok, Q, DO, LSE, DELTA,
                                sqb, sqh, sqm, sdob, sdoh, sdom, COL_PTR, T_ROW, T_MASK, BITMAPS, t_sb, t_sh,
                                q_block_begin, Hq, Lq, Lk, q_first, qk_scale, span, dilation, gtok, BLK,
                                BLOCK_M, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, HAS_MASK, EVEN)
    else:
        dk, dv = _dkdv_head(dk, dv, k, v, b, h, c, n0, j_hi, j, offs_m, offs_d, d_ok, Q, DO, LSE, DELTA,
                            sqb, sqh, sqm, sdob, sdoh, sdom, COL_PTR, T_ROW, T_MASK, BITMAPS, t_sb, t_sh,
                            q_block_begin, Hq, Lq, Lk, q_first, qk_scale, span, dilation, gtok, BLK,
                            BLOCK_M, MODE, CAUSAL, SW, BITMAP, WORDS, DOT_F32, PREC, HAS_MASK, EVEN)
    dk = dk * sm_scale
    tl.store(DK + b.to(tl.int64) * sdkb + hk.to(tl.int64) * sdkh + j[:, None].to(tl.int64) * sdkn + offs_d[None, :],
             dk.to(DK.dtype.element_ty), mask=kv_ok)
    tl.store(DV + b.to(tl.int64) * sdvb + hk.to(tl.int64) * sdvh + j[:, None].to(tl.int64) * sdvn + offs_d[None, :],
             dv.to(DV.dtype.element_ty), mask=kv_ok)


def bwd_tiles(head_dim: int, block: int, mode: int):
    """((dq BLOCK_M, BLOCK_N, num_warps, num_stages), (dk/dv BLOCK_M, BLOCK_N, warps, stages)) of a
    launch from `BWD_TILES`; tile edges are cut down to divide the plan block. Under the
    interpreter 16x16 tiles keep CI fast."""
    if INTERPRETED:
        t = fit_tile(16, block)
        return (t, t, 4, 1), (t, t, 4, 1)
    dqm, dqn, dqw, dqs, kvm, kvn, kvw, kvs = BWD_TILES[(head_dim > 128, mode)]
    return ((fit_tile(dqm, block), fit_tile(dqn, block), dqw, dqs),
            (fit_tile(kvm, block), fit_tile(kvn, block), kvw, kvs))


# (head_dim > 128, mode) -> (dq m, n, warps, stages, dk/dv m, n, warps, stages): dq tiles are
# (queries, keys), dk/dv tiles (queries, keys). D <= 128 from per-kernel sweeps at L=32768, D=128,
# bf16: static 12.5% plan on the H100 (dq 128x32 / 8 warps / 3 stages under a 128-register cap,
# `dq_register_cap`: 2 and 4 stages and 128x64 tiles were slower; dk/dv 64x128 / 8 warps /
# 4 stages: 2 and 3 stages were slower), SlidingWindow(1024, causal) on the H200 (dq 64x32 /
# 4 warps / 4 stages ahead of 128x64 / 8 / 3; dk/dv 64x128 / 8 warps / 3 stages, 2 slower, 4 the
# same). D > 128: smaller tiles fit shared memory.
BWD_TILES = {
    (False, MODE_PLAN): (128, 32, 8, 3, 64, 128, 8, 4),
    (False, MODE_DENSE): (64, 32, 4, 4, 64, 128, 8, 2),
    (False, MODE_SLIDING): (64, 32, 4, 4, 64, 128, 8, 3),
    (True, MODE_PLAN): (64, 32, 8, 2, 32, 64, 8, 2),
    (True, MODE_DENSE): (64, 32, 8, 2, 32, 64, 8, 2),
    (True, MODE_SLIDING): (64, 32, 8, 2, 32, 64, 8, 2),
}


def dq_register_cap(mode: int, warps: int) -> int | None:
    """Register cap (maxnreg) of a dq launch: an 8-warp plan dq (whose walk prefetches its plan
    entries) compiles to 130 registers uncapped and then runs one program per SM instead of two
    (65536 registers; 3.73 vs 2.88 ms on the H100); at 128 it has no spills
    (gpu/kernel_resources.py). None: no cap."""
    return 128 if mode == MODE_PLAN and warps == 8 else None


def backward(do, q, k, v, out, lse, *, scale: float, mode: int, causal: bool, window: int = 0,
             dilation: int = 1, global_tokens: int = 0, plan=None, dlse=None):
    """Gradients (dq, dk, dv) in the input dtypes.

    `dlse` (the gradient flowing into the returned LSE, or None) folds into delta: d lse / d s = P,
    so ds = P * (dP - (rowsum(dO * O) - dlse)).
    """
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    group = Hq // Hkv
    q_first = Lk - Lq
    DP = padded_head_dim(D)
    do = do.contiguous()
    lse = lse.contiguous()
    delta = torch.empty(B, Hq, Lq, dtype=torch.float32, device=q.device)   # written by the dq kernel
    dlse_c = dlse.contiguous() if dlse is not None else lse
    if mode == MODE_PLAN:
        blk = plan.block
        bitmaps = plan.bitmaps
        use_bitmap = plan.bitmap_masks
        words = plan.words_per_row
        qbb, nqb, nkb = plan.q_block_begin, plan.n_q_blocks, plan.n_k_blocks
        (dqm, dqn, dqw, dqs), (kvm, kvn, kvw, kvs) = bwd_tiles(D, blk, mode)
        plan_sb = plan.plan_h * nqb if plan.plan_b > 1 else 0
        plan_sh = nqb if plan.plan_h > 1 else 0
        col_ptr, t_row, t_mask = P.transpose(plan)
        t_sb = plan.plan_h * nkb if plan.plan_b > 1 else 0
        t_sh = nkb if plan.plan_h > 1 else 0
        row_ptr, col_idx, mask_idx = plan.row_ptr, plan.col_idx, plan.mask_idx
        dq_blk = blk
        kv_tiles = nkb * (blk // kvn)
    else:
        (dqm, dqn, dqw, dqs), (kvm, kvn, kvw, kvs) = bwd_tiles(D, 1 << 30, mode)
        dq_blk = dqm
        qbb = q_first // dqm
        nqb = cdiv(Lk, dqm) - qbb
        nkb = 0
        plan_sb = plan_sh = t_sb = t_sh = 0
        row_ptr = col_idx = mask_idx = bitmaps = col_ptr = t_row = t_mask = q
        use_bitmap = False
        words = 1
        blk = max(dqm, kvm, kvn)  # planless dkdv: BLK only sets the query sub-tiling, unused
        kv_tiles = cdiv(Lk, kvn)
    if q.element_size() == 4:
        # fp32 inputs take exact FMA dots, whose operand staging alone needs ~225 KB of shared
        # memory (gpu/kernel_resources.py); past 2 stages the sliding dk/dv needs 289 KB (> 227).
        dqs, kvs = min(dqs, 2), min(kvs, 2)
    sw = window_kind(mode == MODE_SLIDING or (mode == MODE_PLAN and window > 0), dilation, global_tokens)
    common = dict(D=D, DP=DP, MODE=mode, CAUSAL=causal, SW=sw, BITMAP=use_bitmap, WORDS=words,
                  DOT_F32=dot_in_fp32(q.dtype), PREC=dot_precision(q.dtype),
                  HAS_MASK=has_mask(mode, causal, window > 0, use_bitmap, Lk, blk))
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)   # GQA: one dk/dv program per (key tile, kv head) walks the group
    dv = torch.empty_like(v)
    kv_blk = blk if mode == MODE_PLAN else kvm
    kv_qbb = qbb if mode == MODE_PLAN else 0
    # One stride() call per tensor (each is a C++ round trip on the launch path).
    strides = (q.stride()[:3], k.stride()[:3], v.stride()[:3])
    s_out, s_do, s_dq = out.stride()[:3], do.stride()[:3], dq.stride()[:3]
    s_dk, s_dv = dk.stride()[:3], dv.stride()[:3]
    n_dq = nqb * (dq_blk // dqm)
    # Row and key tiles of a walk start at multiples of the plan block (plan) or of the tiles
    # themselves (planless; power-of-two edges), so lengths that are multiples of the larger one
    # keep every tile inside its tensor. dk/dv also needs Lq: its loop reads query rows.
    even_dq = even_tiles(D, DP, (Lq, Lk), dq_blk if mode == MODE_PLAN else max(dqm, dqn))
    even_kv = even_tiles(D, DP, (Lq, Lk), blk if mode == MODE_PLAN else max(kvm, kvn))
    _bwd_dq_kernel[(n_dq, B * Hq)](
        q, k, v, out, do, lse, dlse_c, delta, dq, *strides, s_out, s_do, s_dq,
        row_ptr, col_idx, mask_idx, bitmaps, plan_sb, plan_sh, qbb,
        Hq, group, Lq, Lk, q_first, scale * LOG2E, scale, window * dilation, dilation, global_tokens,
        BLK=dq_blk, BLOCK_M=dqm, BLOCK_N=dqn, HAS_DLSE=dlse is not None, EVEN=even_dq,
        num_warps=dqw, num_stages=dqs, **register_cap(dq_register_cap(mode, dqw)), **common)
    _bwd_dkdv_kernel[(kv_tiles, B * Hkv)](
        q, k, v, do, lse, delta, dk, dv, *strides, s_do, s_dk, s_dv,
        col_ptr, t_row, t_mask, bitmaps, t_sb, t_sh, nkb, kv_qbb,
        Hq, group, Lq, Lk, q_first, scale * LOG2E, scale, window * dilation, dilation, global_tokens,
        BLK=kv_blk, BLOCK_M=kvm, BLOCK_N=kvn, GROUP_LOOP=group > 1, EVEN=even_kv,
        num_warps=kvw, num_stages=kvs, **common)
    return dq, dk, dv
