"""Backward kernels (FlashAttention-2 split): dq per query tile, dk/dv per key tile.

Both recompute P = exp(scale*q.k - lse) tile by tile from the forward's LSE; nothing of size
Lq x Lk is stored. The dq kernel walks key tiles exactly like the forward (plan row or planless
ranges). The dk/dv kernel walks the query tiles that see its key tile: the transposed plan
(plans.transpose, CSC per key block) or, for Dense/SlidingWindow, ranges from program ids.
GQA: each query head writes its own dk/dv slice and the group is summed afterwards (fp32), so no
atomics and no repeated k/v in the forward.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from sattn_triton.common import (INTERPRETED, K_LN2, K_PLAN, K_SLIDING, LOG2E, MODE_DENSE, MODE_PLAN, MODE_SLIDING, bitmap_visible,
                                 dot_in_fp32, dot_precision, fit_tile, interpreting, key_tile_full, padded_head_dim,
                                 query_tile_full, token_visible)
from sattn_triton.forward import key_tile_range
from sattn_triton import plans as P


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom, sdqb, sdqh, sdqm,
    ROW_PTR, COL_IDX, MASK_IDX, BITMAPS, plan_sb, plan_sh, q_block_begin,
    Hq, group, Lq, Lk, q_first, qk_scale, sm_scale, span, dilation, gtok,
    D: tl.constexpr, DP: tl.constexpr, BLK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
    BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr,
):
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
    q = tl.load(Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh + i[:, None] * sqm + offs_d[None, :],
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    do = tl.load(DO + b.to(tl.int64) * sdob + h.to(tl.int64) * sdoh + i[:, None] * sdom + offs_d[None, :],
                 mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    lse = tl.load(LSE + bh_row + i, mask=row_ok, other=float("-inf"))
    # Rows with no visible key (lse = -inf) and padding rows: +inf makes every p exactly 0.
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    delta = tl.load(DELTA + bh_row + i, mask=row_ok, other=0.0)
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
    for t in range(0, total):
        if MODE == K_PLAN:
            e = e0 + t // NSUB
            c = tl.load(COL_IDX + e)
            mi = tl.load(MASK_IDX + e)
            n0 = c * BLK + (t % NSUB) * BLOCK_N
            need_mask = (mi != -1) | (n0 + BLOCK_N > Lk)
        else:
            n0 = tl.where(t < n_g, t, lo_t + t - n_g) * BLOCK_N
            mi = 0
            need_mask = key_tile_full(p_lo, p_hi, n0, Lk, BLOCK_N, CAUSAL, SW, span, dilation, gtok) == 0
        j = n0 + offs_n
        kv_ok = (j < Lk)[:, None] & d_ok[None, :]
        k = tl.load(k_base + j[:, None].to(tl.int64) * skn + offs_d[None, :], mask=kv_ok, other=0.0)
        v = tl.load(v_base + j[:, None].to(tl.int64) * svn + offs_d[None, :], mask=kv_ok, other=0.0)
        if DOT_F32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
        if need_mask:
            if BITMAP:
                vis = bitmap_visible(BITMAPS, tl.maximum(mi, 0), (pos - a * BLK)[:, None],
                                     (j - c * BLK)[None, :], j[None, :], Lk, BLK, WORDS)
                vis = tl.where(mi >= 0, vis, j[None, :] < Lk)
            else:
                vis = token_visible(pos[:, None], j[None, :], Lk, CAUSAL, SW, span, dilation, gtok)
            s = tl.where(vis, s, float("-inf"))
        p = tl.exp2(s - lse2[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PREC)
    dq = dq * sm_scale
    tl.store(DQ + b.to(tl.int64) * sdqb + h.to(tl.int64) * sdqh + i[:, None] * sdqm + offs_d[None, :],
             dq.to(DQ.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])


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
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    sqb, sqh, sqm, skb, skh, skn, svb, svh, svn, sdob, sdoh, sdom,
    sdkb, sdkh, sdkn, sdvb, sdvh, sdvn,
    COL_PTR, T_ROW, T_MASK, BITMAPS, t_sb, t_sh, n_k_blocks, q_block_begin,
    Hq, group, Lq, Lk, q_first, qk_scale, sm_scale, span, dilation, gtok,
    D: tl.constexpr, DP: tl.constexpr, BLK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
    BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr, PREC: tl.constexpr, KV_PER_QHEAD: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
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
    kv_ok = (j < Lk)[:, None] & d_ok[None, :]
    k = tl.load(K + b.to(tl.int64) * skb + hk.to(tl.int64) * skh + j[:, None].to(tl.int64) * skn + offs_d[None, :],
                mask=kv_ok, other=0.0)
    v = tl.load(V + b.to(tl.int64) * svb + hk.to(tl.int64) * svh + j[:, None].to(tl.int64) * svn + offs_d[None, :],
                mask=kv_ok, other=0.0)
    if DOT_F32:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    q_base = Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
    do_base = DO + b.to(tl.int64) * sdob + h.to(tl.int64) * sdoh
    bh_row = (b * Hq + h).to(tl.int64) * Lq

    NSUB: tl.constexpr = BLK // BLOCK_M
    c = n0 // BLK
    if MODE == K_PLAN:
        col = b * t_sb + h * t_sh + c
        e0 = tl.load(COL_PTR + col)
        total = (tl.load(COL_PTR + col + 1) - e0) * NSUB
        n_g = 0
        first_t = 0
        lo_t = 0
    else:
        n_g, first_t, lo_t, total = query_tile_range(n0, j_hi, q_first, Lk, MODE, CAUSAL, BLOCK_M, span, gtok)
        e0 = 0
    dk = tl.zeros([BLOCK_N, DP], tl.float32)
    dv = tl.zeros([BLOCK_N, DP], tl.float32)
    for t in range(0, total):
        if MODE == K_PLAN:
            e = e0 + t // NSUB
            r = tl.load(T_ROW + e)
            mi = tl.load(T_MASK + e)
            a = r + q_block_begin
            m0 = a * BLK + (t % NSUB) * BLOCK_M
            need_mask = (mi != -1) | (j_hi >= Lk)
        else:
            m0 = tl.where(t < n_g, first_t + t, lo_t + t - n_g) * BLOCK_M
            a = 0
            mi = 0
            need_mask = query_tile_full(m0, n0, j_hi, q_first, Lk, BLOCK_M, CAUSAL, SW, span, dilation, gtok) == 0
        pos = m0 + offs_m
        row_ok = (pos >= q_first) & (pos < Lk)
        i = (pos - q_first).to(tl.int64)
        q = tl.load(q_base + i[:, None] * sqm + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        do = tl.load(do_base + i[:, None] * sdom + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        lse = tl.load(LSE + bh_row + i, mask=row_ok, other=float("-inf"))
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
        delta = tl.load(DELTA + bh_row + i, mask=row_ok, other=0.0)
        if DOT_F32:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale                     # [BM, BN]
        if need_mask:
            if BITMAP:
                vis = bitmap_visible(BITMAPS, tl.maximum(mi, 0), (pos - a * BLK)[:, None],
                                     (j - c * BLK)[None, :], j[None, :], Lk, BLK, WORDS)
                vis = tl.where(mi >= 0, vis, j[None, :] < Lk)
            else:
                vis = token_visible(pos[:, None], j[None, :], Lk, CAUSAL, SW, span, dilation, gtok)
            s = tl.where(vis, s, float("-inf"))
        p = tl.exp2(s - lse2[:, None])
        dv += tl.dot(tl.trans(p).to(do.dtype), do, input_precision=PREC)
        dp = tl.dot(do, tl.trans(v), input_precision=PREC)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds).to(q.dtype), q, input_precision=PREC)
    dk = dk * sm_scale
    hw = h if KV_PER_QHEAD else hk
    tl.store(DK + b.to(tl.int64) * sdkb + hw.to(tl.int64) * sdkh + j[:, None].to(tl.int64) * sdkn + offs_d[None, :],
             dk.to(DK.dtype.element_ty), mask=kv_ok)
    tl.store(DV + b.to(tl.int64) * sdvb + hw.to(tl.int64) * sdvh + j[:, None].to(tl.int64) * sdvn + offs_d[None, :],
             dv.to(DV.dtype.element_ty), mask=kv_ok)


def bwd_tiles(head_dim: int, block: int):
    """((dq BLOCK_M, BLOCK_N), (dkdv BLOCK_M, BLOCK_N), num_warps, num_stages).

    SATTN_BWD_TILES="dqm,dqn,kvm,kvn,warps,stages" overrides the choice (the bench's sweep).
    """
    env = os.environ.get("SATTN_BWD_TILES")
    if env and not INTERPRETED:
        a, b, c, d, w, st = (int(x) for x in env.split(","))
        return (fit_tile(a, block), fit_tile(b, block)), (fit_tile(c, block), fit_tile(d, block)), w, st
    if INTERPRETED:
        t = fit_tile(16, block)
        return (t, t), (t, t), 4, 1
    if head_dim > 128:
        return (fit_tile(64, block), fit_tile(32, block)), (fit_tile(32, block), fit_tile(64, block)), 8, 2
    # 64x64 tiles, 4 warps, 3 stages for both kernels: the fastest of 8 configs in the H100 sweep
    # of docs/backends/gpu.md (Dense L=8192 D=128 bf16 fwd+bwd 6.47 ms vs 7.26 ms for 128x64 /
    # 64x128 with 8 warps).
    return (fit_tile(64, block), fit_tile(64, block)), (fit_tile(64, block), fit_tile(64, block)), 4, 3


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
    delta = (do.float() * out.float()).sum(-1)                           # (B,Hq,Lq) fp32
    if dlse is not None:
        delta = delta - torch.where(torch.isinf(lse), 0.0, dlse.float())
    delta = delta.contiguous()
    if mode == MODE_PLAN:
        blk = plan.block
        bitmaps = plan.bitmaps
        use_bitmap = plan.bitmap_masks
        words = plan.words_per_row
        qbb, nqb, nkb = plan.q_block_begin, plan.n_q_blocks, plan.n_k_blocks
        (dqm, dqn), (kvm, kvn), warps, stages = bwd_tiles(D, blk)
        plan_sb = plan.plan_h * nqb if plan.plan_b > 1 else 0
        plan_sh = nqb if plan.plan_h > 1 else 0
        col_ptr, t_row, t_mask = P.transpose(plan)
        t_sb = plan.plan_h * nkb if plan.plan_b > 1 else 0
        t_sh = nkb if plan.plan_h > 1 else 0
        row_ptr, col_idx, mask_idx = plan.row_ptr, plan.col_idx, plan.mask_idx
        dq_blk = blk
        kv_tiles = nkb * (blk // kvn)
    else:
        (dqm, dqn), (kvm, kvn), warps, stages = bwd_tiles(D, 1 << 30)
        dq_blk = dqm
        qbb = q_first // dqm
        nqb = triton.cdiv(Lk, dqm) - qbb
        nkb = 0
        plan_sb = plan_sh = t_sb = t_sh = 0
        row_ptr = col_idx = mask_idx = bitmaps = col_ptr = t_row = t_mask = q
        use_bitmap = False
        words = 1
        blk = max(dqm, kvm, kvn)  # planless dkdv: BLK only sets the query sub-tiling, unused
        kv_tiles = triton.cdiv(Lk, kvn)
    sw = (mode == MODE_SLIDING) or (mode == MODE_PLAN and window > 0)
    common = dict(D=D, DP=DP, MODE=mode, CAUSAL=causal, SW=sw, BITMAP=use_bitmap, WORDS=words,
                  DOT_F32=dot_in_fp32(q.dtype), PREC=dot_precision(q.dtype), num_warps=warps, num_stages=stages)
    dq = torch.empty_like(q)
    _bwd_dq_kernel[(nqb * (dq_blk // dqm), B * Hq)](
        q, k, v, do, lse, delta, dq,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), do.stride(0), do.stride(1), do.stride(2),
        dq.stride(0), dq.stride(1), dq.stride(2),
        row_ptr, col_idx, mask_idx, bitmaps, plan_sb, plan_sh, qbb,
        Hq, group, Lq, Lk, q_first, scale * LOG2E, scale, window * dilation, dilation, global_tokens,
        BLK=dq_blk, BLOCK_M=dqm, BLOCK_N=dqn, **common)
    if group == 1:
        dk = torch.empty_like(k)
        dv = torch.empty_like(v)
    else:
        dk = torch.empty(B, Hq, Lk, D, dtype=torch.float32, device=k.device)
        dv = torch.empty(B, Hq, Lk, D, dtype=torch.float32, device=k.device)
    kv_blk = blk if mode == MODE_PLAN else kvm
    _bwd_dkdv_kernel[(kv_tiles, B * Hq)](
        q, k, v, do, lse, delta, dk, dv,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), do.stride(0), do.stride(1), do.stride(2),
        dk.stride(0), dk.stride(1), dk.stride(2), dv.stride(0), dv.stride(1), dv.stride(2),
        col_ptr, t_row, t_mask, bitmaps, t_sb, t_sh, nkb, qbb if mode == MODE_PLAN else 0,
        Hq, group, Lq, Lk, q_first, scale * LOG2E, scale, window * dilation, dilation, global_tokens,
        BLK=kv_blk, BLOCK_M=kvm, BLOCK_N=kvn, KV_PER_QHEAD=group > 1, **common)
    if group > 1:
        dk = dk.view(B, Hkv, group, Lk, D).sum(2).to(k.dtype)
        dv = dv.view(B, Hkv, group, Lk, D).sum(2).to(v.dtype)
    return dq, dk, dv
