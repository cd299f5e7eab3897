"""Forward kernel: one program per (query tile, batch*query head, key split).

The same kernel serves every spec. How it finds its key tiles is a compile-time MODE:
  MODE_PLAN     walks the CSR row of its query block (row_ptr/col_idx/mask_idx, plan.h layout);
  MODE_DENSE    walks [0, Lk) (causal: up to the diagonal), computed from program ids;
  MODE_SLIDING  walks the global-token tiles plus the window band, computed from program ids,
so Dense and SlidingWindow never need a plan; they walk their full tiles in a loop without mask
code and only the partial ones (causal diagonal, window edge, ragged end) with the token rule
(common.full_key_tiles). A plan walk whose spec has no token rule and whose Lk is a multiple of
the block compiles the mask out (HAS_MASK=False). Decode (few queries, long KV) splits the key tiles
of one query tile over NUM_SPLITS programs; each writes a partial (out, lse) and `combine_splits`
merges them by LSE. Softmax runs in base 2 (exp2) with the scale folded into qk_scale.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sattn_triton.common import (INTERPRETED, K_LN2, K_PLAN, K_SLIDING, LOG2E, MODE_DENSE, MODE_PLAN,
                                 MODE_SLIDING, cdiv, dot_in_fp32, dot_precision, even_tiles, fit_tile,
                                 full_key_tiles, key_tile, load_key_tile, next_pow2, num_sms,
                                 padded_head_dim, split_virtual, tile_visible, walk_flanks, walk_start,
                                 window_kind)


@triton.jit
def key_tile_range(p_lo, p_hi, Lk, MODE: tl.constexpr, CAUSAL: tl.constexpr, BLOCK_N: tl.constexpr,
                   span, gtok):
    """Planless modes: (n_g, lo_t, total) so virtual tile t maps to t (t < n_g) or lo_t + t - n_g."""
    # Branch-free on runtime values (tl.where), so compiled if/else never yields mixed types.
    hi = Lk - 1
    if CAUSAL:
        hi = tl.minimum(p_hi, Lk - 1)
    lo = 0
    n_g = 0
    if MODE == K_SLIDING:
        win = p_lo >= gtok
        lo = tl.where(win, tl.maximum(p_lo - span + 1, 0), 0)
        if not CAUSAL:
            hi = tl.where(win, tl.minimum(p_hi + span - 1, Lk - 1), hi)
        n_g = tl.where(win, tl.minimum(tl.cdiv(gtok, BLOCK_N), lo // BLOCK_N), 0)
    lo_t = lo // BLOCK_N
    total = n_g + tl.maximum(hi // BLOCK_N - lo_t + 1, 0)
    total = tl.where(p_hi < p_lo, 0, total)
    return n_g, lo_t, total


@triton.jit
def _fwd_tiles(acc, m_i, l_i, q, k_base, v_base, skn, svn, t0, t1, pos, offs_n, offs_d, d_ok,
               e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk, qk_scale, span, dilation, gtok, va, vb,
               BLK: tl.constexpr, BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr,
               SW: tl.constexpr, BITMAP: tl.constexpr, WORDS: tl.constexpr, DOT_F32: tl.constexpr,
               PREC: tl.constexpr, MASK: tl.constexpr, EVEN: tl.constexpr):
    """Online softmax over virtual key tiles [t0, t1). MASK=False: no mask code at all (the
    caller guarantees full tiles); in MODE_PLAN with MASK=True the mask is applied only to
    entries that need it (a runtime branch per tile); planless walks: the full run [va, vb) as in
    common.planless_tile. Plan entries are read in the iteration that uses them (no PREFETCH:
    common.walk_entry)."""
    c_nxt, mi_nxt = walk_start(COL_IDX, MASK_IDX, e0, t0, t1, BLK // BLOCK_N, MASK, False)
    for t in range(t0, t1):
        j, c, mi, need_mask, c_nxt, mi_nxt = key_tile(t, t1, e0, c_nxt, mi_nxt, n_g, lo_t, Lk, offs_n,
                                                      COL_IDX, MASK_IDX, va, vb, BLK, BLOCK_N, MODE, MASK,
                                                      False)
        k, v = load_key_tile(k_base, v_base, j, skn, svn, offs_d, d_ok, Lk, DOT_F32, EVEN)
        s = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
        if MASK:
            if need_mask:
                vis = tile_visible(BITMAPS, mi, pos, j, a, c, Lk, span, dilation, gtok, BLK, CAUSAL, SW,
                                   BITMAP, WORDS)
                s = tl.where(vis, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # Rows with nothing visible yet keep m = -inf; shift by 0 so exp2 gives 0, not NaN.
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_use)
        p = tl.exp2(s - m_use[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE, sq, sk, sv, so, sl,
    ROW_PTR, COL_IDX, MASK_IDX, BITMAPS, plan_sb, plan_sh, q_block_begin,
    Hq, group, Lk, q_first, qk_scale, span, dilation, gtok, t_first,
    D: tl.constexpr, DP: tl.constexpr, BLK: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, MODE: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
    BITMAP: tl.constexpr, WORDS: tl.constexpr, NUM_SPLITS: tl.constexpr, DOT_F32: tl.constexpr,
    PREC: tl.constexpr, HAS_MASK: tl.constexpr, PACK: tl.constexpr, EVEN: tl.constexpr,
):
    # Stride tuples: sq, sk, sv (batch, head, row) of Q, K, V; so (batch, head, row, split) of O;
    # sl (batch, head, split) of LSE, whose rows are contiguous. Split strides are 0 without splits.
    sqb, sqh, sqm = sq[0], sq[1], sq[2]
    skb, skh, skn = sk[0], sk[1], sk[2]
    svb, svh, svn = sv[0], sv[1], sv[2]
    sob, soh, som, sos = so[0], so[1], so[2], so[3]
    slb, slh, sls = sl[0], sl[1], sl[2]
    # PACK > 1 (GQA decode, `gqa_pack`): the BLOCK_M rows of a program are PACK query heads (a
    # whole GQA group) x ROWS positions, so each K/V tile is read once per group instead of once
    # per head; axis 1 then runs over (b, kv head) and axis 0 starts at tile t_first (the first
    # that holds a query). PACK == 1 is the one-head layout.
    ROWS: tl.constexpr = BLOCK_M // PACK
    pid_t = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    if PACK > 1:
        pid_t += t_first
        b = pid_bh // (Hq // group)
        hk = pid_bh % (Hq // group)
        h = hk * group           # the group's first head (plans of packed launches have plan_h 1)
    else:
        b = pid_bh // Hq
        h = pid_bh % Hq
        hk = h // group
    TPB: tl.constexpr = BLK // ROWS
    r = pid_t // TPB
    a = r + q_block_begin
    m0 = a * BLK + (pid_t % TPB) * ROWS
    p_lo = tl.maximum(m0, q_first)
    p_hi = tl.minimum(m0 + ROWS, Lk) - 1

    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, DP)
    if PACK > 1:
        pos = m0 + offs_m % ROWS
        row_h = (h + offs_m // ROWS).to(tl.int64)   # the query head of each row
    else:
        pos = m0 + offs_m
    row_ok = (pos >= q_first) & (pos < Lk)
    d_ok = offs_d < D
    # EVEN (`even_tiles`): no bounds mask on the q load and the output store. The store's mask
    # would otherwise stay live in registers across the whole key loop (it is the load's, after
    # CSE): compiled as the H100 launches it, the static-plan forward spills 112 B instead of 168 B
    # (gpu/kernel_resources.py; no measurable kernel-time change).
    qo_ok = None if EVEN else row_ok[:, None] & d_ok[None, :]
    k_base = K + b.to(tl.int64) * skb + hk.to(tl.int64) * skh
    v_base = V + b.to(tl.int64) * svb + hk.to(tl.int64) * svh
    if PACK > 1:
        q = tl.load(Q + b.to(tl.int64) * sqb + row_h[:, None] * sqh + (pos - q_first)[:, None].to(tl.int64) * sqm
                    + offs_d[None, :], mask=qo_ok, other=None if EVEN else 0.0)
    else:
        q_base = Q + b.to(tl.int64) * sqb + h.to(tl.int64) * sqh
        q = tl.load(q_base + (pos - q_first)[:, None].to(tl.int64) * sqm + offs_d[None, :],
                    mask=qo_ok, other=None if EVEN else 0.0)
    if DOT_F32:
        q = q.to(tl.float32)

    # The key tiles of this program: a range of "virtual tiles" [ts, te) of this split.
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
    chunk = tl.cdiv(total, NUM_SPLITS)
    ts = pid_s * chunk
    te = tl.minimum(ts + chunk, total)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, DP], tl.float32)
    if MODE == K_PLAN:
        acc, m_i, l_i = _fwd_tiles(acc, m_i, l_i, q, k_base, v_base, skn, svn, ts, te, pos, offs_n,
                                   offs_d, d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk,
                                   qk_scale, span, dilation, gtok, 0, 0, BLK, BLOCK_N, MODE, CAUSAL, SW,
                                   BITMAP, WORDS, DOT_F32, PREC, HAS_MASK, EVEN)
    else:
        # Both flanks in one masked loop, then the full run (each clipped to [ts, te)).
        f_lo, f_hi = full_key_tiles(p_lo, p_hi, Lk, BLOCK_N, CAUSAL, SW, span, dilation)
        va, vb = split_virtual(n_g, lo_t, total, f_lo, f_hi)
        fa, fb, t1 = walk_flanks(ts, te, va, vb)
        acc, m_i, l_i = _fwd_tiles(acc, m_i, l_i, q, k_base, v_base, skn, svn, ts, t1, pos, offs_n,
                                   offs_d, d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk,
                                   qk_scale, span, dilation, gtok, fa, fb, BLK, BLOCK_N, MODE, CAUSAL,
                                   SW, BITMAP, WORDS, DOT_F32, PREC, True, EVEN)
        acc, m_i, l_i = _fwd_tiles(acc, m_i, l_i, q, k_base, v_base, skn, svn, fa, fb, pos, offs_n,
                                   offs_d, d_ok, e0, COL_IDX, MASK_IDX, BITMAPS, a, n_g, lo_t, Lk,
                                   qk_scale, span, dilation, gtok, fa, fb, BLK, BLOCK_N, MODE, CAUSAL,
                                   SW, BITMAP, WORDS, DOT_F32, PREC, False, EVEN)

    # docs/contract.md, "Non-finite inputs": a row that saw a NaN/Inf (l_i or acc non-finite)
    # is NaN, out and lse; only a row that saw no key (l_i == 0) is 0 / -inf.
    has = l_i != 0.0
    # (one reduction: the row sum is NaN or +-inf iff an element of acc, or l_i, is not finite)
    poisoned = ~(tl.abs(tl.sum(acc, 1) + l_i) < float("inf"))
    out = tl.where(poisoned[:, None], float("nan"), acc / tl.where(has, l_i, 1.0)[:, None])
    lse = tl.where(poisoned, float("nan"),
                   tl.where(has, (m_i + tl.log2(tl.where(has, l_i, 1.0))) * K_LN2, float("-inf")))
    if PACK > 1:
        o_ptr = O + pid_s.to(tl.int64) * sos + b.to(tl.int64) * sob + row_h[:, None] * soh
        tl.store(o_ptr + (pos - q_first)[:, None].to(tl.int64) * som + offs_d[None, :],
                 out.to(O.dtype.element_ty), mask=qo_ok)
        l_ptr = LSE + pid_s.to(tl.int64) * sls + b.to(tl.int64) * slb + row_h * slh
        tl.store(l_ptr + (pos - q_first), lse, mask=row_ok)
    else:
        o_ptr = O + pid_s.to(tl.int64) * sos + b.to(tl.int64) * sob + h.to(tl.int64) * soh
        tl.store(o_ptr + (pos - q_first)[:, None].to(tl.int64) * som + offs_d[None, :],
                 out.to(O.dtype.element_ty), mask=qo_ok)
        l_ptr = LSE + pid_s.to(tl.int64) * sls + b.to(tl.int64) * slb + h.to(tl.int64) * slh
        tl.store(l_ptr + (pos - q_first), lse, mask=row_ok)


def has_mask(mode: int, causal: bool, sw: bool, bitmap: bool, Lk: int, tile: int) -> bool:
    """Whether a plan walk can meet any partial tile (else the mask code is compiled out): a
    token rule (causal / window), bitmap entries, or a ragged last key block (`tile` is the plan
    block: a block past Lk may hold whole tiles of non-keys). Planless modes always split full
    and partial tiles themselves."""
    if mode != MODE_PLAN:
        return True
    return causal or sw or bitmap or Lk % tile != 0


# (BLOCK_M, BLOCK_N, num_warps, num_stages) of a forward launch, keyed on (head_dim > 128, mode,
# decode: Lq <= 16); tile edges are cut down to divide the plan block (`fwd_tiles`). D <= 128
# follows FlashAttention-2's Triton configs (128x64 tiles, 8 warps), except where the H100 kernel
# times at L=32768, D=128, bf16 chose otherwise: the static 12.5% plan runs 128x64 tiles faster
# with 4 warps than with 8 (2.79 vs 3.47 ms), and the SlidingWindow(1024, causal) band wastes less
# on 64-row tiles (0.777 ms at 64x64 / 4 warps vs 0.881 at 128x64 / 8 warps / 4 stages). Decode
# takes 16-row tiles. D > 128: smaller tiles fit shared memory.
FWD_TILES = {
    (False, MODE_PLAN, False): (128, 64, 4, 3),
    (False, MODE_DENSE, False): (128, 64, 8, 3),
    (False, MODE_SLIDING, False): (64, 64, 4, 3),
    (True, MODE_PLAN, False): (64, 32, 4, 2),
    (True, MODE_DENSE, False): (64, 32, 4, 2),
    (True, MODE_SLIDING, False): (64, 32, 4, 2),
    (False, MODE_PLAN, True): (16, 64, 4, 3),
    (False, MODE_DENSE, True): (16, 64, 4, 3),
    (False, MODE_SLIDING, True): (16, 64, 4, 3),
    (True, MODE_PLAN, True): (16, 32, 4, 2),
    (True, MODE_DENSE, True): (16, 32, 4, 2),
    (True, MODE_SLIDING, True): (16, 32, 4, 2),
}


def fwd_tiles(head_dim: int, block: int, Lq: int, mode: int) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages) of a launch from `FWD_TILES`; tile edges divide
    the plan block (a 64-row tile cut to fewer rows keeps its 4 warps). Under the interpreter
    16x16 tiles keep CI fast."""
    if INTERPRETED:
        return fit_tile(16, block), fit_tile(16, block), 4, 1
    bm, bn, warps, stages = FWD_TILES[(head_dim > 128, mode, Lq <= 16)]
    bm, bn = fit_tile(bm, block), fit_tile(bn, block)
    if bm <= 64 or head_dim <= 64:
        warps = 4
    return bm, bn, warps, stages


def check_fwd_tiles(tiles) -> tuple:
    """`tiles` as (BLOCK_M, BLOCK_N, num_warps, num_stages): powers of two >= 16 for the tile
    edges, num_warps in {1, 2, 4, 8, 16}, num_stages in [1, 8]; ValueError naming fwd_tiles else."""
    ok = isinstance(tiles, (tuple, list)) and len(tiles) == 4 and all(
        isinstance(x, int) and not isinstance(x, bool) for x in tiles)
    if ok:
        bm, bn, warps, stages = tiles
        ok = (all(x >= 16 and x & (x - 1) == 0 for x in (bm, bn)) and warps in (1, 2, 4, 8, 16)
              and 1 <= stages <= 8)
    if not ok:
        raise ValueError("fwd_tiles: expected (BLOCK_M, BLOCK_N, num_warps, num_stages) with tile edges powers "
                         f"of two >= 16, num_warps in (1, 2, 4, 8, 16) and num_stages in [1, 8], got {tiles!r}")
    return tuple(int(x) for x in tiles)


def gqa_pack(Lq: int, group: int, block_m: int, plan=None) -> int:
    """How many query heads one forward program takes (`_fwd_kernel`'s PACK): a whole GQA group
    for decode-sized calls (Lq <= 16), so K/V tiles are read once per group, when the group is a
    power of two that fits the row tile and every head of a group walks the same keys (planless,
    or a plan shared across heads: plan_h == 1). Else 1."""
    if Lq > 16 or group < 2 or group & (group - 1) or group > block_m:
        return 1
    if plan is not None and plan.plan_h != 1:
        return 1
    return group


def forward(q, k, v, *, scale: float, mode: int, causal: bool, window: int = 0, dilation: int = 1,
            global_tokens: int = 0, plan=None, num_splits: int | None = None, tiles=None):
    """Runs the forward kernel; returns (out (B,Hq,Lq,D) in q.dtype, lse (B,Hq,Lq) float32).
    `tiles` (BLOCK_M, BLOCK_N, num_warps, num_stages, check_fwd_tiles) replaces fwd_tiles' table;
    its edges are cut to divide the plan block as the table's are."""
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    q_first = Lk - Lq
    DP = padded_head_dim(D)
    if mode == MODE_PLAN:
        blk = plan.block
        bm, bn, warps, stages = fwd_tiles(D, blk, Lq, mode) if tiles is None else (
            fit_tile(tiles[0], blk), fit_tile(tiles[1], blk), tiles[2], tiles[3])
        q_block_begin, n_q_blocks = plan.q_block_begin, plan.n_q_blocks
        row_ptr, col_idx, mask_idx = plan.row_ptr, plan.col_idx, plan.mask_idx
        bitmaps = plan.bitmaps if plan.bitmaps is not None and plan.bitmaps.numel() else col_idx
        plan_sb = plan.plan_h * n_q_blocks if plan.plan_b > 1 else 0
        plan_sh = n_q_blocks if plan.plan_h > 1 else 0
        use_bitmap = plan.bitmap_masks
        words = plan.words_per_row
        kv_tiles = plan.n_k_blocks * (blk // bn)
    else:
        bm, bn, warps, stages = fwd_tiles(D, 1 << 30, Lq, mode) if tiles is None else tiles
        blk = bm  # planless: a "block" is one query tile
        q_block_begin = q_first // blk
        n_q_blocks = cdiv(Lk, blk) - q_block_begin
        row_ptr = col_idx = mask_idx = bitmaps = q  # unused pointers
        plan_sb = plan_sh = 0
        use_bitmap = False
        words = 1
        kv_tiles = cdiv(Lk, bn)
    group = Hq // Hkv
    pack = gqa_pack(Lq, group, bm, plan if mode == MODE_PLAN else None)
    heads = B * Hq // pack        # programs along axis 1: (b, head) or, packed, (b, kv head)
    t_first = 0
    if pack == 1:
        n_prog = n_q_blocks * (blk // bm)
    else:
        rows = bm // pack
        t_first = (q_first - q_block_begin * blk) // rows
        n_prog = cdiv(Lk - q_block_begin * blk - t_first * rows, rows)
    if num_splits is None:
        # Split the keys only when the query tiles alone cannot fill the GPU (decode). A decode
        # program streams its K/V tiles one after another, so bandwidth needs many programs per
        # SM (8 here), each with a few tiles at least (>= 2, else the LSE merge dominates).
        # Planned rows keep only part of their n_k_blocks tiles; the split size adapts in-kernel.
        busy = n_prog * heads if mode != MODE_PLAN else max(1, heads * n_q_blocks)
        want = 8 * num_sms(q.device)
        num_splits = 1
        if busy < want // 4:
            num_splits = max(1, min(256, cdiv(want, busy), kv_tiles // 2))
    if num_splits == 1:
        out = torch.empty(B, Hq, Lq, D, dtype=q.dtype, device=q.device)
        lse = torch.empty(B, Hq, Lq, dtype=torch.float32, device=q.device)
        so = (*out.stride()[:3], 0)
        sl = (*lse.stride()[:2], 0)
    else:
        out = torch.empty(num_splits, B, Hq, Lq, D, dtype=torch.float32, device=q.device)
        lse = torch.empty(num_splits, B, Hq, Lq, dtype=torch.float32, device=q.device)
        s5, s4 = out.stride(), lse.stride()
        so = (s5[1], s5[2], s5[3], s5[0])
        sl = (s4[1], s4[2], s4[0])
    sq, sk, sv = q.stride(), k.stride(), v.stride()
    assert sq[3] == 1 and sk[3] == 1 and sv[3] == 1
    grid = (n_prog, heads, num_splits)
    _fwd_kernel[grid](
        q, k, v, out, lse, sq[:3], sk[:3], sv[:3], so, sl,
        row_ptr, col_idx, mask_idx, bitmaps, plan_sb, plan_sh, q_block_begin,
        Hq, group, Lk, q_first, scale * LOG2E, window * dilation, dilation, global_tokens, t_first,
        D=D, DP=DP, BLK=blk, BLOCK_M=bm, BLOCK_N=bn, MODE=mode, CAUSAL=causal, PACK=pack,
        EVEN=pack == 1 and num_splits == 1 and even_tiles(D, DP, (Lq, Lk), max(blk, bn)),
        SW=window_kind(mode == MODE_SLIDING or (mode == MODE_PLAN and window > 0), dilation,
                       global_tokens), BITMAP=use_bitmap,
        WORDS=words, NUM_SPLITS=num_splits, DOT_F32=dot_in_fp32(q.dtype), PREC=dot_precision(q.dtype),
        HAS_MASK=has_mask(mode, causal, window > 0, use_bitmap, Lk, blk),
        num_warps=warps, num_stages=stages,
    )
    if num_splits > 1:
        out, lse = combine_splits(out, lse, q.dtype)
    return out, lse


@triton.jit
def _combine_kernel(OUT_S, LSE_S, OUT, LSE, split_stride_o, split_stride_l, NUM_SPLITS,
                    D: tl.constexpr, DP: tl.constexpr, SP: tl.constexpr, SC: tl.constexpr):
    """One (b, h, query) row: out = sum_s w_s out_s, lse = log sum_s exp(lse_s), w_s = exp(lse_s -
    lse). Splits that saw no key (lse_s = -inf) weigh 0; a row no split saw stays 0 / -inf. The
    weights are computed over all SP (padded) splits at once, the outputs read SC splits at a time."""
    row = tl.program_id(0).to(tl.int64)
    offs_s = tl.arange(0, SP)
    ls = tl.load(LSE_S + offs_s.to(tl.int64) * split_stride_l + row, mask=offs_s < NUM_SPLITS,
                 other=float("-inf"))
    m = tl.max(ls, 0)
    m_use = tl.where(m == float("-inf"), 0.0, m)
    total = tl.sum(tl.exp(ls - m_use), 0)       # exp(-inf) = 0 for empty splits and padding
    offs_c = tl.arange(0, SC)
    offs_d = tl.arange(0, DP)
    d_ok = offs_d < D
    acc = tl.zeros([DP], tl.float32)
    for s0 in range(0, NUM_SPLITS, SC):
        s = s0 + offs_c
        s_ok = s < NUM_SPLITS
        w = tl.exp(tl.load(LSE_S + s.to(tl.int64) * split_stride_l + row, mask=s_ok, other=float("-inf")) - m_use)
        o = tl.load(OUT_S + s[:, None].to(tl.int64) * split_stride_o + row * D + offs_d[None, :],
                    mask=s_ok[:, None] & d_ok[None, :], other=0.0)
        acc += tl.sum(o * w[:, None], 0)
    # A split whose row was poisoned (NaN lse) poisons the combined row; no split saw a key: 0 / -inf.
    poisoned = tl.sum((ls != ls).to(tl.int32), 0) > 0
    seen = total > 0.0
    safe = tl.where(seen, total, 1.0)
    tl.store(OUT + row * D + offs_d, tl.where(poisoned, float("nan"), acc / safe).to(OUT.dtype.element_ty),
             mask=d_ok)
    tl.store(LSE + row, tl.where(poisoned, float("nan"), tl.where(seen, m_use + tl.log(safe), float("-inf"))))


def combine_splits(out_s, lse_s, dtype):
    """Merges per-split (out, lse) (contiguous (S, B, Hq, Lq, D) and (S, B, Hq, Lq)) by LSE weights
    in one launch (it replaced ~10 torch ops of eager launch overhead per decode step); rows no
    split saw stay 0 / -inf. No host sync."""
    S = out_s.shape[0]
    rows_shape = out_s.shape[1:-1]
    D = out_s.shape[-1]
    n_rows = lse_s[0].numel()
    out = torch.empty(*rows_shape, D, dtype=dtype, device=out_s.device)
    lse = torch.empty(*rows_shape, dtype=torch.float32, device=out_s.device)
    SP = max(2, next_pow2(S))
    _combine_kernel[(n_rows,)](out_s, lse_s, out, lse, out_s.stride(0), lse_s.stride(0), S,
                               D=D, DP=padded_head_dim(D), SP=SP, SC=min(SP, 16), num_warps=4)
    return out, lse
