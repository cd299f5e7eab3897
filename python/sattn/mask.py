"""The contract as a dense boolean mask, written straight from docs/contract.md in numpy float64.

This is deliberately independent of the C++ planner: the tests compare the planner's BlockPlan,
expanded to a mask, with this function. It is O(Lq*Lk) and meant for tests and the reference.
"""
from __future__ import annotations

import math

import numpy as np

from sattn import _inputs
from sattn import specs as S

MASK64 = (1 << 64) - 1


def bigbird_mix(seed: int, row: int, draw: int) -> int:
    """BigBird's counter-based generator: splitmix64's finalizer over seed ^ (row << 32) ^ draw."""
    seed, row, draw = int(seed), int(row), int(draw)  # Python ints: numpy ints would overflow
    z = (seed ^ ((row << 32) & MASK64) ^ draw) & MASK64
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _token_rule(spec: S.Spec, p: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(len(p), len(j)) bool: causal and, for SlidingWindow, the window/dilation/global rule."""
    P, J = p[:, None], j[None, :]
    vis = np.ones((len(p), len(j)), dtype=bool)
    if spec.causal:
        vis &= J <= P
    if isinstance(spec, S.SlidingWindow):
        d = P - J
        win = (np.abs(d) < spec.window * spec.dilation) & (d % spec.dilation == 0)
        glob = (J < spec.global_tokens) | (P < spec.global_tokens)
        vis &= win | glob
    return vis


def _bigbird_blocks(spec: S.BigBird, a: int, nkb: int) -> np.ndarray:
    kept = np.zeros(nkb, dtype=bool)
    b = np.arange(nkb)
    kept |= np.abs(a - b) <= spec.window_blocks // 2
    kept |= b < spec.global_blocks
    if a < spec.global_blocks:
        kept[:] = True
    last = min(a, nkb - 1) if spec.causal else nkb - 1
    avail = [x for x in range(last + 1) if not kept[x]]
    for i in range(min(spec.random_blocks, len(avail))):
        pick = i + bigbird_mix(spec.seed, a, i) % (len(avail) - i)
        avail[i], avail[pick] = avail[pick], avail[i]
        kept[avail[i]] = True
    return kept


def _selection_order(idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """idx ordered by the contract's selection rule: higher score first, NaN below every number
    (-inf included), equal scores (NaN with NaN too) to the lower index."""
    nan = np.isnan(scores)
    return idx[np.lexsort((idx, np.where(nan, 0.0, -scores), nan))]


def _blocktopk_blocks(spec: S.BlockTopK, qh: np.ndarray, kh: np.ndarray, a: int, Lq: int, Lk: int,
                      scale: float) -> np.ndarray:
    blk = spec.block
    nkb = -(-Lk // blk)
    q_first = Lk - Lq
    last = min(a, nkb - 1) if spec.causal else nkb - 1
    b = np.arange(last + 1)
    local = ((a - b >= 0) & (a - b < spec.local_blocks)) if spec.causal else (np.abs(a - b) < spec.local_blocks)
    forced = (b < spec.global_blocks) | local
    rows = slice(max(a * blk, q_first) - q_first, min((a + 1) * blk, Lk) - q_first)
    qa = qh[rows].astype(np.float64)
    scores = np.empty(last + 1)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / Inf inputs: IEEE arithmetic
        for c in range(last + 1):
            kc = kh[c * blk:min((c + 1) * blk, Lk)].astype(np.float64)
            if spec.score == "mean":
                scores[c] = scale * float(qa.mean(axis=0) @ kc.mean(axis=0))
            else:
                # The maximum under the selection order: NaN only if every product is NaN.
                scores[c] = scale * float(np.fmax.reduce((qa @ kc.T).ravel()))
    n = min(last + 1, max(int(forced.sum()), math.ceil(spec.keep * nkb)))
    rest = b[~forced]
    order = _selection_order(rest, scores[rest])
    kept = np.zeros(nkb, dtype=bool)
    kept[b[forced]] = True
    kept[order[: n - int(forced.sum())]] = True
    return kept


def dense_mask(spec: S.Spec, q, k, *, rows=None, scale=None):
    """Bool mask (B, Hq, Lq, Lk) of visible (query, key) pairs; `rows` restricts to those query rows.

    q (B,Hq,Lq,D) and k (B,Hkv,Lk,D) are read only by data-dependent specs (BlockTopK, TopKPerQuery),
    but their shapes always define the problem. Returns a torch bool tensor (on q's device) for
    torch inputs, a numpy bool array otherwise.
    """
    mask = dense_mask_numpy(spec, q, k, rows=rows, scale=scale)
    if _inputs._is_torch(q):
        import torch
        return torch.from_numpy(mask).to(q.device)
    return mask


def dense_mask_numpy(spec: S.Spec, q, k, *, rows=None, scale=None) -> np.ndarray:
    """dense_mask as a numpy bool array whatever the input framework (the reference's form)."""
    if not isinstance(spec, S.Spec):
        raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, ...), got {type(spec).__name__}")
    prob = _inputs.check_qkv(q, k, k)
    scale = _inputs.resolve_scale(scale, prob.D)
    B, Hq, Hkv, Lq, Lk = prob.B, prob.Hq, prob.Hkv, prob.Lq, prob.Lk
    rows = np.arange(Lq) if rows is None else np.asarray(rows, dtype=np.int64)
    p = rows + (Lk - Lq)
    j = np.arange(Lk)
    token = _token_rule(spec, p, j)
    if isinstance(spec, (S.Dense, S.SlidingWindow)):
        return np.broadcast_to(token, (B, Hq, len(rows), Lk)).copy()
    if isinstance(spec, S.BigBird):
        nkb = -(-Lk // spec.block)
        blocks = {a: _bigbird_blocks(spec, a, nkb) for a in np.unique(p // spec.block)}
        sel = np.stack([blocks[a][j // spec.block] for a in p // spec.block])
        return np.broadcast_to(token & sel, (B, Hq, len(rows), Lk)).copy()
    qn = _inputs.to_numpy(q, np.float64)
    kn = _inputs.to_numpy(k, np.float64)
    group = Hq // Hkv
    out = np.zeros((B, Hq, len(rows), Lk), dtype=bool)
    for b in range(B):
        for h in range(Hq):
            qh, kh = qn[b, h], kn[b, h // group]
            if isinstance(spec, S.BlockTopK):
                blocks = {a: _blocktopk_blocks(spec, qh, kh, a, Lq, Lk, scale) for a in np.unique(p // spec.block)}
                sel = np.stack([blocks[a][j // spec.block] for a in p // spec.block])
                out[b, h] = token & sel
            elif isinstance(spec, S.TopKPerQuery):
                with np.errstate(invalid="ignore", over="ignore"):
                    scores = qh[rows] @ kh.T
                for r, pos in enumerate(p):
                    elig = j[: pos + 1] if spec.causal else j
                    order = _selection_order(elig, scores[r, elig])
                    out[b, h, r, order[: spec.k]] = True
            else:
                raise TypeError(f"spec: unsupported spec type {type(spec).__name__}")
    return out
