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
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, k)
    scale = _inputs.resolve_scale(scale, prob.D)
    B, Hq, Hkv, Lq, Lk = prob.B, prob.Hq, prob.Hkv, prob.Lq, prob.Lk
    rows = np.arange(Lq) if rows is None else np.asarray(rows, dtype=np.int64)
    p = rows + (Lk - Lq)
    j = np.arange(Lk)
    if isinstance(spec, S.USER_SPECS):
        return _user_mask(spec, q, k, prob, rows, p, scale)
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


def _user_mask(spec, q, k, prob, rows, p, scale) -> np.ndarray:
    """The specs users write, straight from their definitions (docs/specs.md): the mask function
    on every pair, the given bool mask, a BlockMask's blocks with its mask_mod, OR / AND of the
    parts, one spec per head. Independent of sattn.custom's block classification."""
    from sattn import custom
    B, Hq, Lk = prob.B, prob.Hq, prob.Lk
    shape = (B, Hq, len(rows), Lk)
    if isinstance(spec, S.MaskFn):
        return np.array(custom.call_mask_fn(
            custom._fn_label(spec), spec.fn, spec.array, np.arange(B)[:, None, None, None],
            np.arange(Hq)[None, :, None, None], p[None, None, :, None], np.arange(Lk)[None, None, None, :]), dtype=bool, copy=True)
    if isinstance(spec, S.FromMask):
        m = spec.mask
        if m.shape[2:] != (prob.Lq, Lk) or m.shape[0] not in (1, B) or m.shape[1] not in (1, Hq):
            raise ValueError(f"mask: expected shape (Lq, Lk)=({prob.Lq}, {Lk}) with batch 1 or {B} and heads "
                             f"1 or {Hq}, got {m.shape}")
        return np.broadcast_to(m[:, :, rows], shape).copy()
    if isinstance(spec, S.FlexBlockMask):
        if (prob.Lq, Lk) != (spec.q_len, spec.kv_len):
            raise ValueError(f"block_mask: built for Q_LEN=KV_LEN={spec.q_len}, got Lq={prob.Lq}, Lk={Lk}")
        blk = spec.block
        qb, kb = p // blk, np.arange(Lk) // blk
        out = np.zeros(shape, dtype=bool)
        for b in range(B):
            for h in range(Hq):
                pb, ph = (b if spec.plan_b > 1 else 0), (h if spec.plan_h > 1 else 0)
                listed = {}
                for which, lists in (("full", spec.full), ("partial", spec.partial)):
                    if lists is not None:
                        num, idx = lists
                        for r in range(num.shape[2]):
                            for c in idx[pb, ph, r, :num[pb, ph, r]]:
                                listed[(r, int(c))] = which
                vis = np.array([[listed.get((int(a), int(c))) for c in kb] for a in qb], dtype=object)
                fn_vals = custom.call_mask_fn("FlexBlockMask mask_mod", spec.mask_mod, "torch", np.int64(b),
                                              np.int64(h), p[:, None], np.arange(Lk)[None, :])
                out[b, h] = (vis == "full") | ((vis == "partial") & fn_vals)
        return out
    if isinstance(spec, S.MoBA):
        from sattn import learned_reference
        return learned_reference.moba_mask(spec, q, k)[:, :, rows]
    if isinstance(spec, S._Combination):
        parts = [dense_mask_numpy(part, q, k, rows=rows, scale=scale) for part in spec.parts]
        return np.logical_or.reduce(parts) if spec._op == "|" else np.logical_and.reduce(parts)
    if isinstance(spec, S.PerHead):
        if len(spec.specs) != Hq:
            raise ValueError(f"spec: PerHead has {len(spec.specs)} specs for Hq={Hq} query heads")
        group = Hq // prob.Hkv
        out = np.zeros(shape, dtype=bool)
        for h, part in enumerate(spec.specs):
            out[:, h] = dense_mask_numpy(part, q[:, h:h + 1], k[:, h // group:h // group + 1],
                                         rows=rows, scale=scale)[:, 0]
        return out
    raise TypeError(f"spec: unsupported spec type {type(spec).__name__}")
