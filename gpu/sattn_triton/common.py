"""Pieces shared by the forward and backward kernels: the token rule, tile ranges and launch knobs.

Positions are absolute (docs/contract.md): query row i sits at p = i + Lk - Lq, keys at j. A
"tile" is BLOCK_M query positions or BLOCK_N key positions aligned to multiples of the tile edge
in absolute positions, so plan blocks (multiples of the tile edge) split into whole tiles.
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

# How a launch finds the key tiles of a query tile (and the query tiles of a key tile).
MODE_PLAN = 0      # CSR block plan (host-built or device-built)
MODE_DENSE = 1     # every key (causal: up to the diagonal), ranges from program ids
MODE_SLIDING = 2   # SlidingWindow: window + global tokens, ranges from program ids

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453

# The same values for use inside @triton.jit code: compiled kernels may only read globals that
# are tl.constexpr (the interpreter does not enforce this, the GPU compiler does).
K_PLAN = tl.constexpr(MODE_PLAN)
K_SLIDING = tl.constexpr(MODE_SLIDING)
K_LN2 = tl.constexpr(LN2)


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (TRITON_INTERPRET=1): the CI correctness mode."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Triton decides at import (kernel decoration) whether kernels are interpreted, so launch-time
# choices read this snapshot: os.environ lookups showed up in the per-call Python overhead.
INTERPRETED = interpreting()


def dot_in_fp32(dtype: torch.dtype) -> bool:
    """Whether tl.dot operands must be upcast to fp32.

    Triton 3.9's interpreter computes bf16 tl.dot wrongly (garbage ~1e10, checked on this
    machine), so under TRITON_INTERPRET=1 bf16 tiles are upcast before the dot; loads, stores and
    everything else still run in bf16. On a GPU the tensor cores take bf16 directly.
    """
    return INTERPRETED and dtype == torch.bfloat16


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs get exact fp32 dots ("ieee"); Triton's default TF32 would cost ~1e-3 accuracy.
    fp16/bf16 use the tensor cores' native precision (the setting only affects fp32 operands)."""
    return "ieee" if (dtype == torch.float32 or dot_in_fp32(dtype)) else "tf32"


# The window part of the token rule, as a kernel constexpr (SW): no window, a plain window
# (dilation 1, no global tokens) or the general rule. The plain window skips an integer modulo and
# two compares per pair of every masked tile; SlidingWindow(1024) runs ~4 of its ~18 key tiles
# per query tile masked.
SW_NONE = 0
SW_PLAIN = 1
SW_GENERAL = 2
K_SW_PLAIN = tl.constexpr(SW_PLAIN)


def register_cap(cap: int | None) -> dict:
    """Triton's per-thread register cap (maxnreg) as launch options: none under the interpreter
    or when the launch sets no cap (`backward.dq_register_cap`)."""
    return {} if INTERPRETED or cap is None else {"maxnreg": cap}


@triton.jit
def plan_entry(IDX, MASK_IDX, e, ok, MASK: tl.constexpr):
    """Plan entry e as (block index, mask index); (0, -1) where not ok (past the walk's end). The
    mask index is read only where the walk can meet masked tiles."""
    idx = tl.load(IDX + e, mask=ok, other=0)
    if MASK:
        mi = tl.load(MASK_IDX + e, mask=ok, other=-1)
    else:
        mi = -1 + 0 * idx
    return idx, mi


@triton.jit
def walk_start(IDX, MASK_IDX, e0, t0, t1, NSUB: tl.constexpr, MASK: tl.constexpr, PREFETCH: tl.constexpr):
    """State of a plan walk before its loop over virtual tiles [t0, t1) (NSUB tiles per entry,
    entries from e0): with PREFETCH the first entry, else placeholders that `walk_entry` ignores."""
    if PREFETCH:
        idx, mi = plan_entry(IDX, MASK_IDX, e0 + t0 // NSUB, t0 < t1, MASK)
    else:
        idx = 0 * e0
        mi = idx - 1
    return idx, mi


@triton.jit
def walk_entry(IDX, MASK_IDX, e0, t, t1, nxt_idx, nxt_mi, NSUB: tl.constexpr, MASK: tl.constexpr,
               PREFETCH: tl.constexpr):
    """(block index, mask index) of virtual tile t of a plan walk, and the walk state for t + 1.
    PREFETCH: the entry was read during tile t - 1 and the next one is read now (as FlexAttention
    does), so Triton's software pipeliner can keep `num_stages - 1` tiles of loads in flight; else
    it is read here, where the tile's loads need it at once, and the pipeliner does not
    multi-buffer the walk (gpu/kernel_resources.py shows every cp.async wait at 0). The backward
    kernels prefetch (faster on the H100 for the static 12.5% plan at L=32768); the forward does
    not (slower there with it)."""
    if PREFETCH:
        idx = nxt_idx
        mi = nxt_mi
        nxt_idx, nxt_mi = plan_entry(IDX, MASK_IDX, e0 + (t + 1) // NSUB, t + 1 < t1, MASK)
    else:
        e = e0 + t // NSUB
        idx = tl.load(IDX + e)
        mi = tl.load(MASK_IDX + e)
    return idx, mi, nxt_idx, nxt_mi


@triton.jit
def key_tile(t, t1, e0, c_nxt, mi_nxt, n_g, lo_t, Lk, offs_n, COL_IDX, MASK_IDX, va, vb, BLK: tl.constexpr,
             BLOCK_N: tl.constexpr, MODE: tl.constexpr, MASK: tl.constexpr, PREFETCH: tl.constexpr):
    """Virtual key tile t of a forward / dq walk: its keys j, plan block c and mask index mi (0 for
    planless walks), whether it may need the mask, and the plan-walk state for t + 1. Plan walks
    take entry t // (BLK / BLOCK_N); planless walks run the global tiles [0, n_g), then the window
    tiles from lo_t on; [va, vb) as in `planless_tile`."""
    if MODE == K_PLAN:
        c, mi, c_nxt, mi_nxt = walk_entry(COL_IDX, MASK_IDX, e0, t, t1, c_nxt, mi_nxt, BLK // BLOCK_N, MASK,
                                          PREFETCH)
        n0 = c * BLK + (t % (BLK // BLOCK_N)) * BLOCK_N
        need_mask = (mi != -1) | (n0 + BLOCK_N > Lk)
    else:
        tv = planless_tile(t, va, vb, MASK)
        need_mask = True
        n0 = tl.where(tv < n_g, tv, lo_t + tv - n_g) * BLOCK_N
        c = 0
        mi = 0
    return n0 + offs_n, c, mi, need_mask, c_nxt, mi_nxt


@triton.jit
def load_key_tile(k_base, v_base, j, skn, svn, offs_d, d_ok, Lk, DOT_F32: tl.constexpr, EVEN: tl.constexpr):
    """K and V rows j ([BN, DP] each; zero past Lk and past the head dim). EVEN (`even_tiles`):
    every walked key tile lies inside [0, Lk) and D needs no padding, so the loads carry no mask."""
    kv_ok = None if EVEN else (j < Lk)[:, None] & d_ok[None, :]
    k = tl.load(k_base + j[:, None].to(tl.int64) * skn + offs_d[None, :], mask=kv_ok, other=None if EVEN else 0.0)
    v = tl.load(v_base + j[:, None].to(tl.int64) * svn + offs_d[None, :], mask=kv_ok, other=None if EVEN else 0.0)
    if DOT_F32:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    return k, v


@triton.jit
def tile_visible(BITMAPS, mi, pos, j, a, c, Lk, span, dilation, gtok, BLK: tl.constexpr,
                 CAUSAL: tl.constexpr, SW: tl.constexpr, BITMAP: tl.constexpr, WORDS: tl.constexpr):
    """[rows, keys] visibility of a masked tile: query positions pos (plan query block a), keys j
    (plan block c). Bitmap plans read entry mi's bitmap (mi = -1 reaches here only for the ragged
    last key tile: bounds only); rule plans and planless walks apply the token rule."""
    if BITMAP:
        vis = bitmap_visible(BITMAPS, tl.maximum(mi, 0), (pos - a * BLK)[:, None],
                             (j - c * BLK)[None, :], j[None, :], Lk, BLK, WORDS)
        vis = tl.where(mi >= 0, vis, j[None, :] < Lk)
    else:
        vis = token_visible(pos[:, None], j[None, :], Lk, CAUSAL, SW, span, dilation, gtok)
    return vis


def even_tiles(D: int, DP: int, lengths, tile: int) -> bool:
    """The EVEN constexpr of a launch: the head dim needs no padding and every length is a multiple
    of `tile` (the launch's row tile, or the plan block when the grid walks whole blocks), so no
    tile row falls outside its tensor and the kernels skip the bounds masks of their row tiles."""
    return D == DP and all(n % tile == 0 for n in lengths)


def window_kind(has_window: bool, dilation: int, global_tokens: int) -> int:
    """The SW constexpr of a launch."""
    if not has_window:
        return SW_NONE
    return SW_PLAIN if dilation == 1 and global_tokens == 0 else SW_GENERAL


@triton.jit
def token_visible(p, j, Lk, CAUSAL: tl.constexpr, SW: tl.constexpr, span, dilation, gtok):
    """Contract token rule for positions p ([BM,1]) and keys j ([1,BN]); keys >= Lk never count."""
    ok = j < Lk
    if CAUSAL:
        ok = ok & (j <= p)
    if SW == K_SW_PLAIN:
        d = p - j
        if CAUSAL:
            ok = ok & (d < span)                 # d > -span follows from j <= p
        else:
            ok = ok & (d < span) & (d > -span)
    elif SW:
        d = p - j
        win = (d < span) & (d > -span) & ((d % dilation) == 0)
        ok = ok & (win | (j < gtok) | (p < gtok))
    return ok


@triton.jit
def bitmap_visible(BITMAPS, m, row_in_block, col_in_block, j, Lk, BLK: tl.constexpr,
                   WORDS: tl.constexpr):
    """Bit (row, col) of plan bitmap m (plan.h layout: BLK rows of WORDS uint64, LSB first)."""
    base = m.to(tl.int64) * (BLK * WORDS)
    w = tl.load(BITMAPS + base + row_in_block * WORDS + col_in_block // 64)
    bit = (w >> (col_in_block % 64).to(tl.int64)) & 1
    return (bit != 0) & (j < Lk)


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return _cuda_sms(device.index if device.index is not None else torch.cuda.current_device())
    return 4  # the interpreter: a few splits keep the split path exercised


@functools.lru_cache(maxsize=16)
def _cuda_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def fit_tile(want: int, block: int) -> int:
    """Largest power of two <= want that divides block (tiles must split plan blocks evenly)."""
    t = 1
    while t * 2 <= want and block % (t * 2) == 0:
        t *= 2
    return t


def cdiv(a: int, b: int) -> int:
    """Host-side ceiling division. triton.cdiv is a constexpr_function: called from Python it
    unwraps its arguments through Triton's machinery (a few microseconds per call on the launch
    path, several per eager call)."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (n >= 1); host-side, like `cdiv`."""
    return 1 << (n - 1).bit_length()


def padded_head_dim(D: int) -> int:
    """D rounded up to a power of two, at least 16 (the tile width along the head dim)."""
    return max(16, next_pow2(D))


# ---- planless full/partial split ------------------------------------------------------------
# Dense and SlidingWindow tiles fall into a contiguous run of "full" tiles (every pair visible)
# flanked by a few partial ones (causal diagonal, window edge, ragged end). The kernels walk both
# flanks in one masked loop, then the full run in a loop with no mask code at all (the
# FlashAttention tutorial's causal "stage" split, generalised to a window). Each loop pays its own
# software-pipeline fill and drain, which matters for short walks such as a 1024-token window
# (18 dk/dv tiles, 4 of them masked): on the H200 (SlidingWindow(1024, causal), L=32768, D=128,
# bf16) two loops beat one loop with a runtime mask test per tile and three loops (masked flank,
# full run, masked flank; its dk/dv compiles with serialized wgmma, ptxas C7515).

@triton.jit
def full_key_tiles(p_lo, p_hi, Lk, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
                   span, dilation):
    """Key tiles [f_lo, f_hi) in which every key is visible to every query in [p_lo, p_hi]
    (the global-token rule is ignored: such tiles just stay in the masked flanks)."""
    f_lo = 0 * p_lo
    f_hi = Lk // BLOCK_N + 0 * p_lo          # ragged last tile: partial
    if CAUSAL:
        f_hi = tl.minimum(f_hi, (p_lo + 1) // BLOCK_N)       # j_hi <= p_lo
    if SW:
        f_lo = tl.cdiv(tl.maximum(p_hi - span + 1, 0), BLOCK_N)  # p_hi - n0 < span
        if not CAUSAL:
            f_hi = tl.minimum(f_hi, (p_lo + span) // BLOCK_N)  # j_hi - p_lo < span
        f_hi = tl.where(dilation == 1, f_hi, f_lo)             # dilated windows: all partial
    return f_lo, f_hi


@triton.jit
def full_query_tiles(n0, j_hi, Lk, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr, SW: tl.constexpr,
                     span, dilation):
    """Query tiles [g_lo, g_hi) that see every key of [n0, j_hi]. Query rows outside
    [Lk - Lq, Lk) may fall inside: they load q = dO = 0 and lse = -inf, so they add exactly 0."""
    g_lo = 0 * n0
    g_hi = tl.cdiv(Lk, BLOCK_M) + 0 * n0
    if CAUSAL:
        g_lo = tl.cdiv(j_hi, BLOCK_M)                           # m0 >= j_hi
    if SW:
        g_hi = tl.minimum(g_hi, (n0 + span) // BLOCK_M)         # p_hi - n0 < span
        if not CAUSAL:
            g_lo = tl.cdiv(tl.maximum(j_hi - span + 1, 0), BLOCK_M)  # j_hi - p_lo < span
        g_hi = tl.where(dilation == 1, g_hi, g_lo)
    g_hi = tl.where(j_hi < Lk, g_hi, g_lo)                      # keys past Lk: mask them
    return g_lo, g_hi


@triton.jit
def walk_flanks(ts, te, va, vb):
    """Over virtual tiles [ts, te): the full run [fa, fb) inside it and the end t1 of the masked
    loop [ts, t1) that `planless_tile` maps onto [ts, fa) and [fb, te)."""
    fa = tl.minimum(tl.maximum(va, ts), te)
    fb = tl.minimum(tl.maximum(vb, fa), te)
    return fa, fb, te - (fb - fa)


@triton.jit
def planless_tile(t, va, vb, MASK: tl.constexpr):
    """Virtual tile of loop index t in a planless walk whose full run is [va, vb): the masked loop
    (MASK) skips over the run, the full-run loop walks it as is."""
    tv = t
    if MASK:
        tv = tl.where(t < va, t, t + (vb - va))
    return tv


@triton.jit
def split_virtual(n_g, lo_t, total, f_lo, f_hi):
    """Virtual tiles are [0, n_g) global tiles then window tiles lo_t, lo_t+1, ...; returns
    (va, vb) so [0, va) and [vb, total) need the mask and [va, vb) is full."""
    va = tl.minimum(tl.maximum(n_g + f_lo - lo_t, n_g), total)
    vb = tl.minimum(tl.maximum(n_g + f_hi - lo_t, va), total)
    va = tl.maximum(va, 0)
    vb = tl.maximum(vb, va)
    return va, vb

