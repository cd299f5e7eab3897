"""torch.library ops and the differentiable entry point of the Triton backend.

  sattn::sparse_attention(q, k, v, <plan tensors>, <geometry>, ...) -> (out, lse)
  sattn::sparse_attention_backward(...) -> (dq, dk, dv)
  sattn::block_topk_plan(q, k, ...) -> (row_ptr, col_idx, mask_idx)
  sattn::topk_per_query_plan(q, k, ...) -> (row_ptr, col_idx, mask_idx, bitmaps)

Every op has a fake (meta) implementation whose output sizes follow from shapes and spec fields
only, so torch.compile traces `attention()` end to end (selection + attention, forward and
backward) without graph breaks, and nothing copies device data to the host.
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from sattn_triton import backward as _bwd
from sattn_triton import forward as _fwd
from sattn_triton import plans as P
from sattn_triton import common as _common
from sattn_triton.common import MODE_DENSE, MODE_PLAN, MODE_SLIDING

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 256


# `geom`, the ops' list of launch integers: the plan's geometry (GEOM_PLAN ints: block, plan_b,
# plan_h, q_block_begin, n_q_blocks, n_k_blocks, words_per_row; zeros when planless), then the
# forward's launch (BLOCK_M, BLOCK_N, num_warps, num_stages), zeros for the kernels' own choice.
GEOM_PLAN = 7


def _fwd_launch(geom: List[int]):
    launch = tuple(geom[GEOM_PLAN:GEOM_PLAN + 4])
    return launch if len(launch) == 4 and launch[0] else None


def _plan_from(geom: List[int], bitmap_masks: bool, shape, row_ptr, col_idx, mask_idx, bitmaps):
    if row_ptr is None:
        return None
    B, Hq, Lq, Lk = shape
    block, plan_b, plan_h, qbb, nqb, nkb, words = geom[:GEOM_PLAN]
    return P.GpuPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=plan_b, plan_h=plan_h,
                     q_block_begin=qbb, n_q_blocks=nqb, n_k_blocks=nkb, words_per_row=words,
                     row_ptr=row_ptr, col_idx=col_idx, mask_idx=mask_idx, bitmaps=bitmaps,
                     bitmap_masks=bitmap_masks)


def _attention_impl(
    q: Tensor, k: Tensor, v: Tensor,
    row_ptr: Optional[Tensor], col_idx: Optional[Tensor], mask_idx: Optional[Tensor],
    bitmaps: Optional[Tensor], col_ptr: Optional[Tensor], t_row: Optional[Tensor],
    t_mask: Optional[Tensor], geom: List[int], mode: int, causal: bool, window: int,
    dilation: int, global_tokens: int, bitmap_masks: bool, scale: float,
) -> Tuple[Tensor, Tensor]:
    B, Hq, Lq, _ = q.shape
    plan = _plan_from(geom, bitmap_masks, (B, Hq, Lq, k.shape[2]), row_ptr, col_idx, mask_idx, bitmaps)
    return _fwd.forward(q, k, v, scale=scale, mode=mode, causal=causal, window=window,
                        dilation=dilation, global_tokens=global_tokens, plan=plan, tiles=_fwd_launch(geom))


sparse_attention_op = torch.library.custom_op("sattn::sparse_attention", mutates_args=())(_attention_impl)


@sparse_attention_op.register_fake
def _(q, k, v, row_ptr, col_idx, mask_idx, bitmaps, col_ptr, t_row, t_mask, geom, mode, causal,
      window, dilation, global_tokens, bitmap_masks, scale):
    B, Hq, Lq, _ = q.shape
    return torch.empty_like(q), q.new_empty((B, Hq, Lq), dtype=torch.float32)


def _backward_impl(
    dout: Tensor, dlse: Optional[Tensor], q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
    row_ptr: Optional[Tensor], col_idx: Optional[Tensor], mask_idx: Optional[Tensor],
    bitmaps: Optional[Tensor], col_ptr: Optional[Tensor], t_row: Optional[Tensor],
    t_mask: Optional[Tensor], geom: List[int], mode: int, causal: bool, window: int,
    dilation: int, global_tokens: int, bitmap_masks: bool, scale: float,
) -> Tuple[Tensor, Tensor, Tensor]:
    B, Hq, Lq, _ = q.shape
    plan = _plan_from(geom, bitmap_masks, (B, Hq, Lq, k.shape[2]), row_ptr, col_idx, mask_idx, bitmaps)
    if plan is not None and col_ptr is not None:
        plan._transposed = (col_ptr, t_row, t_mask)
    return _bwd.backward(dout, q, k, v, out, lse, scale=scale, mode=mode, causal=causal,
                         window=window, dilation=dilation, global_tokens=global_tokens, plan=plan,
                         dlse=dlse)


sparse_attention_backward_op = torch.library.custom_op(
    "sattn::sparse_attention_backward", mutates_args=())(_backward_impl)


@sparse_attention_backward_op.register_fake
def _(dout, dlse, q, k, v, out, lse, *rest):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


_PLAN_ARGS = ("row_ptr", "col_idx", "mask_idx", "bitmaps", "col_ptr", "t_row", "t_mask")


def _setup_context(ctx, inputs, output):
    q, k, v = inputs[:3]
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, *inputs[3:10])
    ctx.args = inputs[10:]


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, *plan_tensors = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = sparse_attention_backward_op(dout.contiguous(), dlse, q, k, v, out, lse,
                                              *plan_tensors, *ctx.args)
    return (dq, dk, dv) + (None,) * (len(_PLAN_ARGS) + len(ctx.args))


torch.library.register_autograd("sattn::sparse_attention", _backward, setup_context=_setup_context)


class _EagerAttention(torch.autograd.Function):
    """The same forward/backward as the op, for eager calls only.

    torch.library's custom-op dispatch costs a few hundred microseconds of Python per call on
    the H100 machine (docs/backends/gpu.md), which dominates short kernels; outside torch.compile
    nothing needs the op's schema, so eager calls take this lighter autograd.Function. Under
    torch.compile `attention()` calls the op (fake impl, no graph break).
    """

    @staticmethod
    def forward(ctx, q, k, v, rest):
        # Everything but q, k, v travels in one tuple: autograd.Function.apply walks every
        # argument on each call (functorch unwrapping), ~19 of them before.
        out, lse = _attention_impl(q, k, v, *rest)
        # An unused output (usually lse) then reaches backward as None instead of a zeros tensor:
        # no fill kernel per step, and the dq kernel compiles the dlse term out.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.rest = rest    # plan tensors (no gradients) and launch settings
        return out, lse

    @staticmethod
    def backward(ctx, dout, dlse):
        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(out)
        dq, dk, dv = _backward_impl(dout.contiguous(), dlse, q, k, v, out, lse, *ctx.rest)
        return dq, dk, dv, None


# ---- device planners as ops (opaque to torch.compile, sizes known from shapes) -------------

@torch.library.custom_op("sattn::block_topk_plan", mutates_args=())
def block_topk_plan_op(q: Tensor, k: Tensor, block: int, keep: float, global_blocks: int,
                       local_blocks: int, causal: bool, scale: float,
                       score_max: bool) -> Tuple[Tensor, Tensor, Tensor]:
    p = P.build_block_topk(q, k, block=block, keep=keep, global_blocks=global_blocks,
                           local_blocks=local_blocks, causal=causal, scale=scale,
                           score="max" if score_max else "mean")
    # row_ptr is a per-shape cached tensor: op outputs must not alias anything, so copy (tiny).
    return p.row_ptr.clone(), p.col_idx, p.mask_idx


@block_topk_plan_op.register_fake
def _(q, k, block, keep, global_blocks, local_blocks, causal, scale, score_max):
    B, Hq, Lq, _ = q.shape
    Lk = k.shape[2]
    _, n = P.block_topk_counts(Lq, Lk, block, keep, global_blocks, local_blocks, causal)
    nnz = max(1, int(n.sum()) * B * Hq)
    rows = B * Hq * len(n)
    i32 = dict(dtype=torch.int32, device=q.device)
    return torch.empty(rows + 1, **i32), torch.empty(nnz, **i32), torch.empty(nnz, **i32)


@torch.library.custom_op("sattn::topk_per_query_plan", mutates_args=())
def topk_per_query_plan_op(q: Tensor, k: Tensor, topk: int, causal: bool,
                           block: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    p = P.build_topk_per_query(q, k, topk=topk, causal=causal, block=block)
    return p.row_ptr, p.col_idx, p.mask_idx, p.bitmaps


@topk_per_query_plan_op.register_fake
def _(q, k, topk, causal, block):
    B, Hq, Lq, _ = q.shape
    Lk = k.shape[2]
    _, _, nqb = P._geometry(Lq, Lk, block)
    cap = P.topk_per_query_capacity(B, Hq, Lq, Lk, block, topk, causal)
    words = -(-block // 64)
    i32 = dict(dtype=torch.int32, device=q.device)
    return (torch.empty(B * Hq * nqb + 1, **i32), torch.empty(cap + 1, **i32),
            torch.empty(cap + 1, **i32),
            torch.empty((cap + 1) * block * words, dtype=torch.int64, device=q.device))


# ---- the differentiable entry point ------------------------------------------------------------

def check_inputs(q, k, v) -> None:
    """Typed errors for what the Triton kernels cannot take (sattn.api checked shapes already)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: the triton backend takes torch tensors, got {type(x).__name__}")
        # The import-time snapshot: Triton fixed interpreted vs compiled kernels at decoration.
        if x.device.type != "cuda" and not (_common.INTERPRETED and x.device.type == "cpu"):
            raise ValueError(f"{name}: the triton backend needs CUDA tensors, got device '{x.device}' "
                             "(set TRITON_INTERPRET=1 to run the kernels on CPU tensors, slowly)")
        if x.dtype not in DTYPES:
            raise TypeError(f"{name}: expected dtype float16, bfloat16 or float32, got {x.dtype}")
    D = q.shape[-1]
    if D % 16 or not 16 <= D <= MAX_HEAD_DIM:
        raise ValueError(f"q: head_dim must be a multiple of 16 in [16, {MAX_HEAD_DIM}] for the "
                         f"triton backend, got {D}")


def _check_block(name: str, block: int) -> None:
    if block % 16 or block < 16:
        raise ValueError(f"{name}: the triton backend needs a block that is a multiple of 16 "
                         f"(Triton tiles are >= 16), got {block}")


@functools.lru_cache(maxsize=64)
def _static_numpy_plan(spec_str: str, shape, tile: int):
    """Host plan (numpy arrays) of a data-independent spec (BigBird, or Dense/SlidingWindow with
    force_plan), built once per (spec, shape) by the shared C++ planner."""
    import json
    from sattn import plan as host_plan
    from sattn.specs import from_name
    kind, params = json.loads(spec_str)
    spec = from_name(kind, **params)
    B, Hq, Hkv, Lq, Lk, D = shape
    q = np.zeros((B, Hq, Lq, D), np.float32)
    k = np.zeros((B, Hkv, Lk, D), np.float32)
    return host_plan(spec, q, k, tile=tile)


@functools.lru_cache(maxsize=64)
def _static_host_plan(spec_str: str, shape, tile: int, device: str):
    """The same plan as device tensors, uploaded once per device (real tensors only: the fake
    implementation below reads sizes from the numpy plan and never calls this)."""
    return P.from_host(_static_numpy_plan(spec_str, shape, tile), torch.device(device), bitmap_masks=False)


def _spec_str(spec) -> str:
    """The spec's trace_key, a str set when the frozen spec was made: a constant of the graph."""
    return spec.trace_key


# Static plans enter compiled graphs through an op too: its fake implementation runs the (cached,
# data-independent) host planner to learn nnz, so tracing needs no device data.
@torch.library.custom_op("sattn::static_plan", mutates_args=())
def static_plan_op(q: Tensor, k: Tensor, spec: str, tile: int) -> Tuple[Tensor, Tensor, Tensor]:
    B, Hq, Lq, D = q.shape
    p = _static_host_plan(spec, (B, Hq, k.shape[1], Lq, k.shape[2], D), tile, str(q.device))
    return p.row_ptr.clone(), p.col_idx.clone(), p.mask_idx.clone()


@static_plan_op.register_fake
def _(q, k, spec, tile):
    B, Hq, Lq, D = q.shape
    p = _static_numpy_plan(spec, (B, Hq, k.shape[1], Lq, k.shape[2], D), tile)
    nnz = max(1, len(p.col_idx))   # from_host pads an empty plan to one entry
    return (q.new_empty((len(p.row_ptr),), dtype=torch.int32), q.new_empty((nnz,), dtype=torch.int32),
            q.new_empty((nnz,), dtype=torch.int32))


def _static_plan(q, k, spec, tile: int) -> "P.GpuPlan":
    B, Hq, Lq, D = q.shape
    Lk = k.shape[2]
    block = spec.block if hasattr(spec, "block") else tile
    if not torch.compiler.is_compiling():
        # Eager: the cached device plan itself (no op dispatch, no copies; its transposed view is
        # cached on it too, so the backward of later calls reuses it).
        return _static_host_plan(_spec_str(spec), (B, Hq, k.shape[1], Lq, Lk, D), tile, str(q.device))
    row_ptr, col_idx, mask_idx = static_plan_op(q, k, _spec_str(spec), tile)
    nkb = -(-Lk // block)
    qbb = (Lk - Lq) // block
    words = -(-block // 64)
    return P.GpuPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=1, plan_h=1, q_block_begin=qbb,
                     n_q_blocks=nkb - qbb, n_k_blocks=nkb, words_per_row=words, row_ptr=row_ptr,
                     col_idx=col_idx, mask_idx=mask_idx,
                     bitmaps=torch.zeros(block * words, dtype=torch.int64, device=q.device),
                     bitmap_masks=False)


def spec_launch(spec) -> dict:
    """The token-rule arguments of the kernels for a spec."""
    kind = type(spec).__name__
    if kind == "SlidingWindow":
        return dict(causal=spec.causal, window=spec.window, dilation=spec.dilation,
                    global_tokens=spec.global_tokens)
    return dict(causal=bool(spec.causal), window=0, dilation=1, global_tokens=0)


def make_plan(q, k, spec, *, scale: float, plan=None, tile: int = 64):
    """The GpuPlan for a call, or None for the planless Dense/SlidingWindow paths.

    `plan` may be a GpuPlan (reused as is), a host sattn.BlockPlan (converted), or None: then
    BlockTopK/TopKPerQuery are planned on the device, BigBird by the shared host planner (once,
    cached), and Dense/SlidingWindow need no plan.
    """
    kind = type(spec).__name__
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    if plan is not None:
        if not isinstance(plan, P.GpuPlan):
            plan = P.from_host(plan, q.device, bitmap_masks=(kind == "TopKPerQuery"))
        plan.check_shape(B, Hq, Lq, Lk)
        _check_block("plan.block", plan.block)
        return plan
    if kind in ("Dense", "SlidingWindow"):
        return None
    if kind == "BlockTopK":
        _check_block("block", spec.block)
        if not torch.compiler.is_compiling():
            # Eager: the planner itself. The custom op (needed only so torch.compile can trace
            # selection) adds its dispatch and a row_ptr copy: 137 us vs 110 us per call at a tiny
            # shape on CPU tensors on the 2-core dev VM (best of 5 x 500 calls).
            return P.build_block_topk(q, k, block=spec.block, keep=float(spec.keep),
                                      global_blocks=spec.global_blocks, local_blocks=spec.local_blocks,
                                      causal=spec.causal, scale=scale, score=spec.score)
        row_ptr, col_idx, mask_idx = block_topk_plan_op(q, k, spec.block, float(spec.keep),
                                                        spec.global_blocks, spec.local_blocks,
                                                        spec.causal, scale, spec.score == "max")
        nkb = -(-Lk // spec.block)
        qbb = (Lk - Lq) // spec.block
        words = -(-spec.block // 64)
        return P.GpuPlan(block=spec.block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=B, plan_h=Hq,
                         q_block_begin=qbb, n_q_blocks=nkb - qbb, n_k_blocks=nkb,
                         words_per_row=words, row_ptr=row_ptr, col_idx=col_idx, mask_idx=mask_idx,
                         bitmaps=torch.zeros(spec.block * words, dtype=torch.int64, device=q.device),
                         bitmap_masks=False)
    if kind == "TopKPerQuery":
        _check_block("tile", tile)
        if not torch.compiler.is_compiling():   # eager: no custom-op dispatch (see BlockTopK)
            return P.build_topk_per_query(q, k, topk=spec.k, causal=spec.causal, block=tile)
        row_ptr, col_idx, mask_idx, bitmaps = topk_per_query_plan_op(q, k, spec.k, spec.causal, tile)
        nkb = -(-Lk // tile)
        qbb = (Lk - Lq) // tile
        return P.GpuPlan(block=tile, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=B, plan_h=Hq,
                         q_block_begin=qbb, n_q_blocks=nkb - qbb, n_k_blocks=nkb,
                         words_per_row=-(-tile // 64), row_ptr=row_ptr, col_idx=col_idx,
                         mask_idx=mask_idx, bitmaps=bitmaps, bitmap_masks=True)
    if kind == "BigBird":
        _check_block("block", spec.block)
        return _static_plan(q, k, spec, tile)
    raise TypeError(f"spec: unsupported spec type {kind}")


# ---- visible-pair count (FLOP counts where the host planner is unavailable) -------------------

def token_rule(p, j, Lk: int, launch: dict):
    """The kernels' token rule (common.token_visible) on torch index tensors that broadcast
    (p [.., R, 1] and j [.., 1, C]; or FlexAttention's mask_mod scalars). `launch` is spec_launch's
    dict. A plain window (dilation 1, no global tokens) gets no modulo and no global-token terms:
    torch 2.11 failed to compile FlexAttention with them at L=32768 (docs/backends/gpu.md)."""
    ok = (j < Lk) & (p >= 0)
    if launch["causal"]:
        ok = ok & (j <= p)
    if launch["window"] > 0:
        span, dil, gt = launch["window"] * launch["dilation"], launch["dilation"], launch["global_tokens"]
        d = p - j
        win = (d < span) & (d > -span)
        if dil != 1 or gt != 0:
            win = (win & (torch.remainder(d, dil) == 0)) | (j < gt) | (p < gt)
        ok = ok & win
    return ok


def visible_pairs(q, k, spec, *, scale: Optional[float] = None, plan=None, tile: int = 64,
                  force_plan: bool = False, max_elems: int = 1 << 25) -> int:
    """Number of (batch, head, query, key) pairs the kernels attend for this call, counted on q's
    device from what they read: the token rule for planless Dense/SlidingWindow, the plan's entries
    otherwise (full blocks by arithmetic, partial ones tile by tile). A measurement helper (the
    bench's FLOP count), not on the attention path: it syncs with the host to size its loops.
    Equal to the contract's count (sattn.dense_mask(...).sum()) whenever the device plan equals the
    host plan (gpu/tests/plans_test.py bounds where they may differ: near-ties)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    B, Hq, Lq, _ = q.shape
    Lk = k.shape[2]
    q_first = Lk - Lq
    kind = type(spec).__name__
    launch = spec_launch(spec)
    dev = q.device
    if force_plan and plan is None and kind in ("Dense", "SlidingWindow"):
        plan = _static_plan(q, k, spec, tile)
    gp = make_plan(q, k, spec, scale=scale, plan=plan, tile=tile)
    total = torch.zeros((), dtype=torch.int64, device=dev)
    if gp is None:
        # Head- and batch-independent rule: count one (b, h) over row chunks, then multiply.
        j = torch.arange(Lk, device=dev)[None, :]
        rows_per_chunk = max(1, max_elems // Lk)
        for p0 in range(q_first, Lk, rows_per_chunk):
            p = torch.arange(p0, min(p0 + rows_per_chunk, Lk), device=dev)[:, None]
            total += token_rule(p, j, Lk, launch).sum()
        return int(total.item()) * B * Hq
    blk = gp.block
    row, valid = P.entry_rows(gp)
    a = torch.remainder(row, gp.n_q_blocks) + gp.q_block_begin
    c = gp.col_idx.long()
    mi = gp.mask_idx.long()
    n_rows = (torch.clamp((a + 1) * blk, max=Lk) - torch.clamp(a * blk, min=q_first)).clamp(min=0)
    n_cols = (torch.clamp((c + 1) * blk, max=Lk) - c * blk).clamp(min=0)
    total += torch.where(valid & (mi == -1), n_rows * n_cols, 0).sum()
    part = torch.nonzero(valid & (mi != -1)).flatten()   # partial entries: tile by tile
    off = torch.arange(blk, device=dev)
    per_chunk = max(1, max_elems // (blk * blk))
    words = gp.words_per_row
    for s0 in range(0, part.numel(), per_chunk):
        sel = part[s0:s0 + per_chunk]
        pa, pc, pm = a[sel], c[sel], mi[sel]
        p = (pa * blk)[:, None, None] + off[None, :, None]            # [E, blk, 1]
        jj = (pc * blk)[:, None, None] + off[None, None, :]           # [E, 1, blk]
        in_rows = (p >= q_first) & (p < Lk)
        if gp.bitmap_masks:
            m = pm.clamp(min=0)[:, None, None]
            w = gp.bitmaps[(m * blk + off[None, :, None]) * words + off[None, None, :] // 64]
            vis = ((w >> torch.remainder(off, 64)[None, None, :]) & 1).bool() & (jj < Lk)
        else:
            vis = token_rule(p, jj, Lk, launch)
        total += (vis & in_rows).sum()
    return int(total.item()) * (B // gp.plan_b) * (Hq // gp.plan_h)


def attention(q, k, v, spec, *, scale: Optional[float] = None, plan=None, tile: int = 64,
              force_plan: bool = False, fwd_tiles=None) -> Tuple[Tensor, Tensor]:
    """(out, lse) for q (B,Hq,Lq,D), k/v (B,Hkv,Lk,D) under `spec`; differentiable in q, k, v.

    `force_plan=True` runs Dense/SlidingWindow through the host plan (tile `tile`) instead of the
    specialised planless path (used by tests to cross-check the two). `fwd_tiles` (BLOCK_M,
    BLOCK_N, num_warps, num_stages) replaces the forward's launch rule (forward.fwd_tiles); the
    tile edges are fitted to the plan block as that rule's are.
    """
    check_inputs(q, k, v)
    launch_fwd = [0, 0, 0, 0] if fwd_tiles is None else list(_fwd.check_fwd_tiles(fwd_tiles))
    # The contract's rule, in one place: the kernels' float32 softmax assumes it.
    from sattn._inputs import resolve_scale
    scale = resolve_scale(scale, q.shape[-1])
    kind = type(spec).__name__
    if force_plan and plan is None and kind in ("Dense", "SlidingWindow"):
        _check_block("tile", tile)
        plan = _static_plan(q, k, spec, tile)
    gp = make_plan(q, k, spec, scale=scale, plan=plan, tile=tile)
    launch = spec_launch(spec)
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if gp is None:
        mode = MODE_SLIDING if kind == "SlidingWindow" else MODE_DENSE
        tensors = [None] * len(_PLAN_ARGS)
        geom = [0] * GEOM_PLAN
        bitmap_masks = False
    else:
        mode = MODE_PLAN
        col_ptr, t_row, t_mask = P.transpose(gp) if needs_grad else (None, None, None)
        tensors = [gp.row_ptr, gp.col_idx, gp.mask_idx, gp.bitmaps, col_ptr, t_row, t_mask]
        geom = [gp.block, gp.plan_b, gp.plan_h, gp.q_block_begin, gp.n_q_blocks, gp.n_k_blocks,
                gp.words_per_row]
        bitmap_masks = gp.bitmap_masks
    geom = geom + launch_fwd
    args = (q, k, v, *tensors, geom, mode, launch["causal"], launch["window"], launch["dilation"],
            launch["global_tokens"], bitmap_masks, scale)
    if torch.compiler.is_compiling():
        return sparse_attention_op(*args)
    if not needs_grad:
        # Inference: no autograd node to record, so skip autograd.Function.apply (its argument
        # walk is ~10% of sattn's own host time per eager forward, gpu/host_overhead.py).
        return _attention_impl(*args)
    return _EagerAttention.apply(q, k, v, args[3:])
