"""Learned block selections as BlockPlans: MoBA's gate (sattn.MoBA) and NSA's selected branch
(sattn.NSA), docs/specs.md "Learned selections".

Both pick, for every query token, a few key blocks; the token attends to the keys of those blocks
(causally masked where they reach past it). `selection_tiles` turns such a per-token choice into
the entries of a plan:

- the plan's block P divides the selection block S (a selection block is S / P plan blocks);
- entry (query block a, key block c) exists when a token of query block a chose c; its bitmap
  row for that token is the prefix of keys it sees (all of c's keys, or those up to the token's
  position on the diagonal); rows of tokens that did not choose c are empty;
- an entry every token of its query block chose, off the diagonal, is full (no bitmap).

The choice is computed on the inputs' device (torch tensors) or in numpy; the plan is assembled
on the host from the chosen block indices only.
"""
from __future__ import annotations

import math

import numpy as np

from sattn import _inputs
from sattn import specs as S


# ---------------------------------------------------------------------------------------------
# Per-token block choices -> plan entries

def prefix_words(block: int, words: int) -> np.ndarray:
    """uint64 (block + 1, words): row n has its first n bits set."""
    bits = np.arange(block + 1)[:, None] > np.arange(words * 64)[None, :]
    return np.packbits(bits, axis=-1, bitorder="little").view("<u8").astype(np.uint64).reshape(block + 1, words)


def selection_tiles(index: np.ndarray, geo, sel_block: int, *, causal: bool, pos=None, n_keys=None):
    """Tiles of a per-token choice of key blocks.

    index: int (PB, PH, R, n): selection blocks (of `sel_block` keys) chosen by each query row,
    -1 for none; repeats are allowed. `pos` (PB, PH, R): each row's position for the causal
    limit (default: the plan row's own position, t + Lk - Lq; rows gathered out of order pass
    theirs). With causal=True the keys after a row's position are dropped. Keys from `n_keys`
    (default Lk) on are never visible (padding)."""
    from sattn.custom import Tiles
    index = np.asarray(index, dtype=np.int64)
    PB, PH, R, n = index.shape
    P = geo.block
    if sel_block % P:
        raise ValueError(f"block: the plan block {P} must divide the selection block {sel_block}")
    ratio = sel_block // P
    vpos = np.arange(R, dtype=np.int64) + geo.q_first                     # plan position of each row
    pos = np.broadcast_to(vpos if pos is None else np.asarray(pos, dtype=np.int64), (PB, PH, R))
    a = vpos // P                                                          # query block of each row
    kb = (index[..., None] * ratio + np.arange(ratio)).reshape(PB, PH, R, n * ratio)
    kb = np.where(index.repeat(ratio, axis=-1) < 0, -1, kb)
    ok = (kb >= 0) & (kb < geo.nkb)
    if causal:
        ok &= kb * P <= pos[..., None]
    rows = ((np.arange(PB)[:, None, None, None] * PH + np.arange(PH)[None, :, None, None]) * geo.nqb
            + (a - geo.qb0)[None, None, :, None])
    key = np.broadcast_to(rows, kb.shape)[ok] * geo.nkb + kb[ok]
    off = np.broadcast_to((vpos - a * P)[None, None, :, None], kb.shape)[ok]  # row within its block
    ukey, inv = np.unique(key, return_inverse=True)
    chosen = np.zeros((ukey.size, P), dtype=bool)
    chosen[inv.reshape(-1), off] = True
    e_row, e_col = ukey // geo.nkb, ukey % geo.nkb
    e_a = e_row % geo.nqb + geo.qb0
    klo, khi = geo.k_range(e_col)
    kvalid = khi - klo + 1                                                 # keys in the key block
    real = kvalid if n_keys is None else np.clip(np.minimum(khi, n_keys - 1) - klo + 1, 0, None)
    row_vpos = e_a[:, None] * P + np.arange(P)[None, :]                    # plan positions of the rows
    qlo, qhi = geo.q_range(e_a)
    valid_row = (row_vpos >= qlo[:, None]) & (row_vpos <= qhi[:, None])
    seen = np.broadcast_to(real[:, None], chosen.shape)
    if causal:
        r = np.clip(row_vpos - geo.q_first, 0, R - 1)
        hb = e_row // geo.nqb                                              # pb * PH + ph
        row_pos = pos.reshape(PB * PH, R)[hb[:, None], r]
        seen = np.minimum(seen, np.clip(row_pos - klo[:, None] + 1, 0, None))
    seen = np.where(chosen & valid_row, seen, 0)
    full = ((seen == kvalid[:, None]) | ~valid_row).all(axis=1)
    bits = prefix_words(P, geo.words)[seen[~full]]                         # (partial entries, P, words)
    return Tiles(geo, PB, PH, ukey, full, bits)


# ---------------------------------------------------------------------------------------------
# MoBA's gate

def _block_means_numpy(k: np.ndarray, block: int) -> np.ndarray:
    B, H, Lk, D = k.shape
    nb = -(-Lk // block)
    pad = np.zeros((B, H, nb * block, D), dtype=np.float64)
    pad[:, :, :Lk] = k
    counts = np.minimum(block, Lk - np.arange(nb) * block).astype(np.float64)
    return pad.reshape(B, H, nb, block, D).sum(axis=3) / counts[:, None]


def moba_choice(spec, q, k):
    """Selected blocks, int (B, Hq, Lq, topk) (-1 = none), of sattn.MoBA on q, k: the gate in
    float64 on the inputs' device (torch) or in numpy; returned as a numpy array."""
    if _inputs._is_torch(q):
        return _moba_choice_torch(spec, q, k).cpu().numpy()
    qn = np.asarray(q, dtype=np.float64)
    kn = np.asarray(k, dtype=np.float64)
    B, Hq, Lq, _ = qn.shape
    Hkv, Lk = kn.shape[1], kn.shape[2]
    means = np.repeat(_block_means_numpy(kn, spec.block), Hq // Hkv, axis=1)  # (B, Hq, nb, D)
    nb = means.shape[2]
    gate = np.einsum("bhtd,bhcd->bhtc", qn, means)
    cur = (np.arange(Lq) + Lk - Lq) // spec.block
    return _top_blocks(gate, cur, nb, spec, np)


def _top_blocks(gate, cur, nb, spec, xp):
    """The chosen blocks from gate scores (B, Hq, Lq, nb): the shared rule of both array types."""
    neg = float("-inf")
    if xp is np:
        c = np.arange(nb)
    else:
        import torch
        c = torch.arange(nb, device=gate.device)
    k = spec.topk
    if not spec.causal:
        score, others = gate, min(k, nb)
    else:
        past = c[None, :] < cur[:, None]                                     # (Lq, nb)
        score, others = xp.where(past, gate, neg), min(k - 1, nb)
    if xp is np:
        order = np.argsort(-score, axis=-1, kind="stable")[..., :others]
        top_score = np.take_along_axis(score, order, axis=-1)
    else:
        top_score, order = score.sort(dim=-1, descending=True, stable=True)
        order, top_score = order[..., :others], top_score[..., :others]
    order = xp.where(top_score == neg, -1, order)
    if not spec.causal:
        return order
    shape = tuple(gate.shape[:-1]) + (1,)
    if xp is np:                                                           # the block holding p first
        return np.concatenate([np.broadcast_to(cur[:, None], shape), order], axis=-1)
    return torch.cat([cur[:, None].expand(shape), order], dim=-1)


def _moba_choice_torch(spec, q, k):
    import torch
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    nb = -(-Lk // spec.block)
    kd = torch.nn.functional.pad(k.detach().to(torch.float64), (0, 0, 0, nb * spec.block - Lk))
    counts = torch.clamp(Lk - torch.arange(nb, device=k.device) * spec.block, max=spec.block).to(torch.float64)
    means = kd.view(B, Hkv, nb, spec.block, D).sum(3) / counts[:, None]
    means = means.repeat_interleave(Hq // Hkv, dim=1)
    gate = torch.einsum("bhtd,bhcd->bhtc", q.detach().to(torch.float64), means)
    cur = (torch.arange(Lq, device=q.device) + Lk - Lq) // spec.block
    return _top_blocks(gate, cur, nb, spec, torch)


def plan_block(sel_block: int, tile: int) -> int:
    """The plan's block for a selection of `sel_block`-key blocks and the call's tile."""
    return math.gcd(sel_block, tile)


def moba_tiles(spec, q, k, geo):
    """Tiles of sattn.MoBA for this call (geo.block must divide spec.block: sattn.custom sees to it)."""
    return selection_tiles(moba_choice(spec, q, k), geo, spec.block, causal=spec.causal)


# ---------------------------------------------------------------------------------------------
# Plans from chosen blocks, and running them on any backend

def choice_plan(index, B, Hq, Lq, Lk, sel_block: int, *, causal: bool, tile: int = 64, pos=None, n_keys=None):
    """The BlockPlan of a per-row choice `index` (PB, PH, Lq, n), PB in (1, B), PH in (1, Hq)
    (selection_tiles' `pos` and `n_keys` as there)."""
    from sattn.custom import Geometry
    geo = Geometry(B, Hq, Lq, Lk, plan_block(sel_block, tile))
    return selection_tiles(index, geo, sel_block, causal=causal, pos=pos, n_keys=n_keys).to_plan()


def attend_plan(q, k, v, plan, *, backend: str, scale: float, threads: int = 0):
    """(out, lse) over the visible pairs of a plan built by hand (choice_plan), differentiable in
    q, k, v and through lse: on host tensors through the host op (lse float64 for float64 inputs),
    on CUDA tensors through Triton with the plan's bitmaps."""
    import torch
    from sattn.api import sparse_attention
    spec = S.Dense(causal=False)   # a label only: the plan alone decides what is visible
    on_gpu = q.device.type == "cuda"
    if on_gpu and backend in ("auto", "triton"):
        from sattn.backends import triton as T
        gp = T._import_kernels().P.from_host(plan, q.device, bitmap_masks=True)
        return sparse_attention(q, k, v, spec, backend="triton", scale=scale, return_lse=True, plan=gp)
    from sattn import _op
    _inputs.check_qkv(q, k, v)
    opts = {"threads": threads} if backend in ("auto", "cpu") else {}
    grad_for = "".join(n for n, x in zip("qkv", (q, k, v)) if x.requires_grad) if torch.is_grad_enabled() else ""
    out, lse, *_ = _op.host_attention(q, k, v, *_op._plan_tensors(plan), backend, _op._spec_text(spec),
                                      _op._options_text(opts), float(scale), grad_for)
    return out, lse


def attend_choice(q, k, v, index, sel_block: int, *, causal: bool, backend: str = "auto", scale=None,
                  threads: int = 0, tile: int = 64):
    """Each query token's softmax attention over the keys of the blocks it chose, as both papers'
    kernels compute it: the (token, choice) rows are gathered by chosen block, so the rows of a
    plan tile read the same key block (the work is the visible pairs, not the union of choices
    over a query tile); each row's (out, lse) comes from one plan call, and a token's rows are
    merged by their LSE. index: int (B, Hq, Lq, n), distinct blocks per token, -1 for none.
    Differentiable in q, k, v. Returns out (B, Hq, Lq, D)."""
    import torch
    from sattn import _inputs as I
    prob = I.check_qkv(q, k, v)
    scale = I.resolve_scale(scale, prob.D)
    B, Hq, Lq, D = q.shape
    Lk, n = k.shape[2], index.shape[-1]
    R = Lq * n
    dev = q.device
    idx = torch.as_tensor(index, device=dev).reshape(B, Hq, R)
    n_blocks = -(-Lk // sel_block)
    row = torch.arange(R, device=dev)
    order = (torch.where(idx < 0, n_blocks, idx) * R + row).argsort(dim=-1)   # by block, then token
    tok = order // n                                                        # token of each gathered row
    q_rows = torch.gather(q, 2, tok[..., None].expand(B, Hq, R, D))
    Lk_pad = max(Lk, R)
    k_pad, v_pad = ((x if Lk_pad == Lk else torch.nn.functional.pad(x, (0, 0, 0, Lk_pad - Lk))) for x in (k, v))
    plan = choice_plan(torch.gather(idx, 2, order)[..., None].cpu().numpy(), B, Hq, R, Lk_pad, sel_block,
                       causal=causal, tile=tile, pos=(tok + (Lk - Lq)).cpu().numpy(), n_keys=Lk)
    out_rows, lse_rows = attend_plan(q_rows, k_pad, v_pad, plan, backend=backend, scale=scale, threads=threads)
    back = order.argsort(dim=-1)
    out_rep = torch.gather(out_rows, 2, back[..., None].expand(B, Hq, R, D)).reshape(B, Hq, Lq, n, D)
    lse_rep = torch.gather(lse_rows.to(q.dtype if q.dtype == torch.float64 else torch.float32), 2,
                           back).reshape(B, Hq, Lq, n)
    seen = torch.isfinite(lse_rep)
    none = ~seen.any(dim=-1, keepdim=True)
    w = torch.softmax(torch.where(none, 0.0, lse_rep.masked_fill(~seen, float("-inf"))), dim=-1) * seen
    return (w[..., None].to(out_rep.dtype) * out_rep).sum(dim=-2)


def moba_attention(q, k, v, spec=None, *, backend: str = "auto", scale=None, threads: int = 0):
    """sattn.MoBA attention (default: the paper's block 512, top-3, causal) in MoBA's own form:
    each (query, chosen block) pair gathered by block, merged by LSE (attend_choice). The same
    result as sparse_attention(q, k, v, spec), whose plan runs every query tile over the union of
    its tokens' blocks; this one does the visible work only. torch tensors, any device;
    differentiable in q, k, v. Returns out (B, Hq, Lq, D) in q's dtype."""
    import torch
    spec = S.MoBA() if spec is None else spec
    if not isinstance(spec, S.MoBA):
        raise TypeError(f"spec: expected a sattn.MoBA, got {type(spec).__name__}")
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: moba_attention takes torch tensors, got {type(x).__name__}")
    choice = _moba_choice_torch(spec, q, k)
    return attend_choice(q, k, v, choice, spec.block, causal=spec.causal, backend=backend, scale=scale,
                         threads=threads).to(q.dtype)
