"""The float64 reference as a backend (slow, O(L^2) memory): for checking and small problems."""
from __future__ import annotations

import numpy as np

from sattn import _inputs, _limits, reference
from sattn import specs as S
from sattn.backends.base import BackendGrads, BackendResult
from sattn.mask import dense_mask_numpy
from sattn.plan import BlockPlan, check_plan, check_tile

NAME = "reference"
# attention_backward computes in float64 and takes float64 arrays (the op hands it the inputs
# widened exactly to float64), so float64 gradients are exact to float64 rounding.
GRAD_DTYPE = np.float64


def available():
    return True, ""


def _check_size(prob):
    scores = prob.B * prob.Hq * prob.Lq * prob.Lk
    if scores > _limits.MAX_ELEMENTS:
        raise ValueError(f"q, k: the reference backend holds all {scores} scores B*Hq*Lq*Lk in memory, at most "
                         f"{_limits.MAX_ELEMENTS}; use sattn.reference.attention(..., rows=...) on a sample of rows")


def attention(q, k, v, spec, *, scale, return_lse, plan=None, tile: int | None = None, threads: int = 0,
              normalizer: str = "softmax", **options):
    """Options: plan (a sattn.plan() whose visible set is used, checked against the call). tile and
    threads are checked but change nothing here (the reference has no tiles and one thread): they
    are accepted so one call runs on every backend. The result's plan is the visible set used
    (the given plan, else the reference's dense mask as a per-head BlockPlan), which
    attention_backward reuses. normalizer: 'softmax', 'sigmoid' or 'relu2' (sattn.normalizers; lse
    then only marks rows). out is float64; lse float64 (callers cast it to float32)."""
    _inputs.check_options("the reference backend", options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, v)
    _inputs.check_no_grad(NAME, q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    tile = None if tile is None else check_tile(tile)
    _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    _check_size(prob)
    if plan is not None:
        plan = check_plan(plan, spec, prob, tile=tile, scale=scale)
        mask = dense_mask_of(plan)
    else:
        mask = dense_mask_numpy(spec, q, k, scale=scale)
        plan = plan_from_mask(mask, getattr(spec, "block", None) or tile or 64)
    out, lse = reference.attention(q, k, v, spec, scale=scale, return_lse=True, mask=mask, normalizer=normalizer)
    return BackendResult(out=out, lse=lse if return_lse else None, plan=plan)


def attention_backward(q, k, v, out, lse, dout, dlse, plan, *, scale, tile: int | None = None, threads: int = 0,
                       normalizer: str = "softmax", **options):
    """float64 gradients over `plan`'s visible set (sattn.reference.backward). tile and threads are
    the forward's options, accepted and ignored as there; normalizer is the forward's."""
    _inputs.check_options("the reference backend's attention_backward", options, ())
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan: expected the forward's sattn.BlockPlan, got {type(plan).__name__}")
    dq, dk, dv = reference.backward(q, k, v, out, lse, dout, dlse, dense_mask_of(plan), scale=float(scale),
                                    normalizer=normalizer)
    return BackendGrads(dq=dq, dk=dk, dv=dv)


def dense_mask_of(plan: BlockPlan) -> np.ndarray:
    """Bool (B, Hq, Lq, Lk): the plan's visible pairs (BlockPlan.to_dense_mask, vectorised)."""
    blk, nqb, nkb, w = plan.block, plan.n_q_blocks, plan.n_k_blocks, plan.words_per_row
    PB, PH = plan.plan_b, plan.plan_h
    tiles = np.zeros((PB * PH * nqb, nkb, blk, blk), dtype=bool)
    counts = np.diff(plan.row_ptr.astype(np.int64))
    rows = np.repeat(np.arange(PB * PH * nqb), counts)
    cols = plan.col_idx.astype(np.int64)
    full = plan.mask_idx < 0
    tiles[rows[full], cols[full]] = True
    if (~full).any():
        words = plan.bitmaps.reshape(-1, blk, w)[plan.mask_idx[~full]]          # (n, blk, w) uint64
        bits = np.unpackbits(words.astype("<u8").view(np.uint8), axis=-1, bitorder="little")[..., :blk]
        tiles[rows[~full], cols[~full]] = bits.astype(bool)
    grid = tiles.reshape(PB, PH, nqb, nkb, blk, blk).transpose(0, 1, 2, 4, 3, 5).reshape(PB, PH, nqb * blk, nkb * blk)
    lo = plan.Lk - plan.Lq - plan.q_block_begin * blk
    grid = grid[:, :, lo:lo + plan.Lq, :plan.Lk]
    return np.ascontiguousarray(np.broadcast_to(grid, (plan.B, plan.Hq, plan.Lq, plan.Lk)))


def plan_from_mask(mask: np.ndarray, block: int) -> BlockPlan:
    """A per-head BlockPlan (plan_b = B, plan_h = Hq) holding exactly `mask`'s visible pairs: one
    entry with a bitmap per key block a query block sees anything in."""
    mask = np.asarray(mask, dtype=bool)
    B, Hq, Lq, Lk = mask.shape
    blk = int(block)
    nkb = -(-Lk // blk)
    qbb = (Lk - Lq) // blk
    nqb = nkb - qbb
    w = -(-blk // 64)
    lo = Lk - Lq - qbb * blk
    grid = np.zeros((B, Hq, nqb * blk, nkb * blk), dtype=bool)
    grid[:, :, lo:lo + Lq, :Lk] = mask
    tiles = grid.reshape(B, Hq, nqb, blk, nkb, blk).transpose(0, 1, 2, 4, 3, 5)   # (B, Hq, nqb, nkb, blk, blk)
    seen = tiles.any(axis=(-1, -2)).reshape(B * Hq * nqb, nkb)
    rows, cols = np.nonzero(seen)                                                  # row-major: ascending cols
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=B * Hq * nqb))]).astype(np.int32)
    picked = tiles.reshape(B * Hq * nqb, nkb, blk, blk)[rows, cols]                # (nnz, blk, blk)
    padded = np.zeros(picked.shape[:2] + (w * 64,), dtype=bool)
    padded[..., :blk] = picked
    words = np.packbits(padded, axis=-1, bitorder="little").view("<u8").astype(np.uint64)
    return BlockPlan(block=blk, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=B, plan_h=Hq, q_block_begin=qbb, n_q_blocks=nqb,
                     n_k_blocks=nkb, words_per_row=w, row_ptr=row_ptr, col_idx=cols.astype(np.int32),
                     mask_idx=np.arange(rows.size, dtype=np.int32), bitmaps=words.reshape(-1))
