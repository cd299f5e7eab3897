"""float64 references of the learned selections, written from the papers' equations with plain
numpy/torch (no sattn plan, kernel or backend): what //spec:learned_test judges sattn.MoBA and
sattn.NSA against, outputs and gradients (torch autograd through these functions).

Positions follow the contract: query row t sits at p = t + Lk - Lq; keys at j = 0..Lk-1.
"""
from __future__ import annotations

import math

import numpy as np


def _rank_select(score: np.ndarray, eligible: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Bool (..., N): the `count` (broadcast over ...) best eligible entries of `score` by rank
    rank(c) = #{c' eligible: s[c'] > s[c], or s[c'] == s[c] and c' < c} (ties to lower index)."""
    s_c = score[..., :, None]
    s_o = score[..., None, :]
    n = score.shape[-1]
    lower = np.arange(n)[None, :] < np.arange(n)[:, None]                 # [c, c']: c' < c
    beats = eligible[..., None, :] & ((s_o > s_c) | ((s_o == s_c) & lower))
    rank = beats.sum(axis=-1)
    return eligible & (rank < np.asarray(count)[..., None])


def _keys_of_blocks(sel: np.ndarray, block: int, Lk: int) -> np.ndarray:
    """Bool (..., Lk) from a block selection (..., nb)."""
    return np.repeat(sel, block, axis=-1)[..., :Lk]


# ---------------------------------------------------------------------------------------------
# MoBA (Lu et al. 2025, arXiv:2502.13189), section 2.2

def moba_mask(spec, q, k) -> np.ndarray:
    """Bool (B, Hq, Lq, Lk): the keys each query token attends to under sattn.MoBA `spec`.

    Eq. (5)-(6) of the paper: s_i = <q, mean_pool(K[I_i])>, g_i = 1 iff s_i is among the top-k of
    the scores; with causality (section 2.2) blocks after the query's block are out, the current
    block is always in (g = 1) and masked causally inside."""
    from sattn import _inputs
    qn = _inputs.to_numpy(q, np.float64)
    kn = _inputs.to_numpy(k, np.float64)
    B, Hq, Lq, D = qn.shape
    Hkv, Lk = kn.shape[1], kn.shape[2]
    blk, nb = spec.block, -(-Lk // spec.block)
    means = np.stack([kn[:, :, c * blk:(c + 1) * blk].mean(axis=2) for c in range(nb)], axis=2)
    means = np.repeat(means, Hq // Hkv, axis=1)
    s = np.einsum("bhtd,bhcd->bhtc", qn, means)                            # (B, Hq, Lq, nb)
    p = np.arange(Lq) + Lk - Lq
    cur = p // blk
    c = np.arange(nb)
    if spec.causal:
        eligible = np.broadcast_to(c[None, :] < cur[:, None], s.shape)
        sel = _rank_select(s, eligible, np.full(s.shape[:-1], spec.topk - 1)) | (c[None, :] == cur[:, None])
        keys = _keys_of_blocks(sel, blk, Lk) & (np.arange(Lk)[None, :] <= p[:, None])
    else:
        sel = _rank_select(s, np.ones(s.shape, bool), np.full(s.shape[:-1], spec.topk))
        keys = _keys_of_blocks(sel, blk, Lk)
    return keys


def masked_attention(q, k, v, mask, scale):
    """torch float64 softmax attention over `mask` (B, Hq, Lq, Lk) bool; GQA by repetition; rows
    with no visible key are 0."""
    import torch
    group = q.shape[1] // k.shape[1]
    kr = k.repeat_interleave(group, dim=1)
    vr = v.repeat_interleave(group, dim=1)
    m = torch.as_tensor(np.array(mask, dtype=bool), device=q.device)
    s = scale * q @ kr.transpose(-1, -2)
    s = s.masked_fill(~m, float("-inf"))
    empty = ~m.any(dim=-1, keepdim=True)
    p = torch.softmax(s.masked_fill(empty, 0.0), dim=-1).masked_fill(~m, 0.0)
    return p @ vr


def moba_attention(q, k, v, spec, scale=None):
    """float64 MoBA output (B, Hq, Lq, D), differentiable in q, k, v (the selection is not)."""
    import torch
    q, k, v = (x.to(torch.float64) for x in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return masked_attention(q, k, v, moba_mask(spec, q.detach(), k.detach()), scale)


# ---------------------------------------------------------------------------------------------
# NSA (Yuan et al. 2025, arXiv:2502.11089), section 3.3

def nsa_compress(x, pe, w1, b1, w2, b2, l: int, d: int):
    """Eq. (7): phi(x_{id : id+l}) for i = 0..floor((L-l)/d): the block plus its intra-block
    position encoding `pe` (l, D), flattened, through the MLP w2 . gelu(w1 . z + b1) + b2.
    x (B, H, L, D) -> (B, H, N, D)."""
    import torch
    B, H, L, D = x.shape
    n = (L - l) // d + 1 if L >= l else 0
    outs = []
    for i in range(n):
        z = (x[:, :, i * d:i * d + l] + pe).reshape(B, H, l * D)
        outs.append(torch.nn.functional.gelu(z @ w1.T + b1) @ w2.T + b2)
    return torch.stack(outs, dim=2) if outs else x.new_zeros(B, H, 0, D)


def nsa_overlap(n_cmp: int, n_sel: int, l: int, d: int, l_sel: int) -> np.ndarray:
    """(n_cmp, n_sel): |[i d, i d + l) ∩ [j l', (j+1) l')| / d. Eq. (9)'s double sum over
    m < l'/d, n < l/d gives compression block l'/d j + m + n the weight #{(m, n)}, a discrete
    box-box convolution: exactly this overlap count, with the blocks aligned so that the ones
    counted for selection block j are those that overlap it."""
    i = np.arange(n_cmp)[:, None]
    j = np.arange(n_sel)[None, :]
    lo = np.maximum(i * d, j * l_sel)
    hi = np.minimum(i * d + l, (j + 1) * l_sel)
    return np.clip(hi - lo, 0, None) / d


def nsa_attention(q, k, v, params: dict, *, l: int = 32, d: int = 16, l_sel: int = 64, n_sel: int = 16,
                  window: int = 512, gates=None, scale=None):
    """float64 NSA output (B, Hq, Lq, D): Eq. (5) o_t = sum_c g_t^c Attn(q_t, K_t^c, V_t^c) over
    c in (cmp, slc, win). `params`: pe_k, w1_k, b1_k, w2_k, b2_k and the same for v (the
    compression MLPs), gate_w (3, D), gate_b (3,) (g_t = sigmoid(gate_w q_t + gate_b), used
    when `gates` (B, Hq, Lq, 3) is not given).

    cmp: q_t against the compressed keys/values whose blocks end at or before p (Eq. 7-8).
    slc: Eq. (8)-(12): p_cmp = softmax(q_t . K_cmp) mapped onto selection blocks of l' keys by
    nsa_overlap, summed over the query heads of a GQA group (Eq. 10); the n top-ranked blocks
    that start at or before p, the initial block and the 2 local ones (p's block and the one
    before) always among them; keys <= p.
    win: keys p - window < j <= p."""
    import torch
    f64 = torch.float64
    q, k, v = (x.to(f64) for x in (q, k, v))
    P = {name: t.to(f64) for name, t in params.items()}
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    group = Hq // Hkv
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    pos = np.arange(Lq) + Lk - Lq
    keys = np.arange(Lk)

    kc = nsa_compress(k, P["pe_k"], P["w1_k"], P["b1_k"], P["w2_k"], P["b2_k"], l, d)
    vc = nsa_compress(v, P["pe_v"], P["w1_v"], P["b1_v"], P["w2_v"], P["b2_v"], l, d)
    n_cmp = kc.shape[2]
    cmp_mask = np.arange(n_cmp)[None, :] * d + l - 1 <= pos[:, None]        # (Lq, n_cmp)
    cmp_mask = np.broadcast_to(cmp_mask, (B, Hq, Lq, n_cmp))
    o_cmp = masked_attention(q, kc, vc, cmp_mask, scale)

    # p_cmp, Eq. (8), as probabilities (0 where no compressed token is visible).
    kr = kc.detach().repeat_interleave(group, dim=1).numpy()
    s = scale * np.einsum("bhtd,bhnd->bhtn", q.detach().numpy(), kr)
    s = np.where(cmp_mask, s, -np.inf)
    has = cmp_mask.any(axis=-1, keepdims=True)
    top = s.max(axis=-1, keepdims=True, initial=-np.inf)
    e = np.exp(s - np.where(has, top, 0.0))
    p_cmp = np.where(has, e / np.where(has, e.sum(axis=-1, keepdims=True), 1.0), 0.0)
    n_blocks = -(-Lk // l_sel)
    p_slc = p_cmp @ nsa_overlap(n_cmp, n_blocks, l, d, l_sel)               # Eq. (9)
    p_grp = p_slc.reshape(B, Hkv, group, Lq, n_blocks).sum(axis=2)          # Eq. (10)
    c = np.arange(n_blocks)[None, :]
    cur = (pos // l_sel)[:, None]
    eligible = np.broadcast_to(c <= cur, p_grp.shape)
    forced = np.broadcast_to((c == 0) | (c == cur) | (c == cur - 1), p_grp.shape) & eligible
    budget = np.maximum(n_sel - forced.sum(axis=-1), 0)
    chosen = forced | _rank_select(p_grp, eligible & ~forced, budget)       # Eq. (11)
    slc_mask = _keys_of_blocks(chosen, l_sel, Lk) & (keys[None, :] <= pos[:, None])   # Eq. (12)
    slc_mask = np.repeat(slc_mask, group, axis=1)
    o_slc = masked_attention(q, k, v, slc_mask, scale)

    win_mask = (keys[None, :] <= pos[:, None]) & (keys[None, :] > pos[:, None] - window)
    o_win = masked_attention(q, k, v, np.broadcast_to(win_mask, (B, Hq, Lq, Lk)), scale)

    g = torch.sigmoid(q @ P["gate_w"].T + P["gate_b"]) if gates is None else gates.to(f64)
    return g[..., 0:1] * o_cmp + g[..., 1:2] * o_slc + g[..., 2:3] * o_win
