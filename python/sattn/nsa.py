"""sattn.NSA: Native Sparse Attention as a torch module (imports torch).

Yuan et al., "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
DeepSeek 2025, arXiv:2502.11089, section 3. The compressed branch is dense torch (L/d keys per
query); the selected and sliding-window branches run through sattn.sparse_attention on the
chosen backend, so they are differentiable on every backend with a backward (cpu, reference;
triton on CUDA). docs/specs.md, "Learned selections".
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import nn

from sattn import learned
from sattn import specs as S


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value}")
    return int(value)


class NSA(nn.Module):
    """Native Sparse Attention (arXiv:2502.11089) over given q, k, v: three causal branches
    combined by gates, o_t = g_cmp o_cmp + g_slc o_slc + g_win o_win (Eq. 5).

    - compressed (Eq. 7): keys/values of each block of `block_cmp` (l) tokens taken every
      `stride` (d) tokens, plus a learned intra-block position encoding, flattened and mapped to
      one token by an MLP (Linear(l*D, hidden), GELU, Linear(hidden, D); one for keys, one for
      values, shared by all heads). Query p sees the compressed tokens whose block ends at or
      before p.
    - selected (Eq. 8-12): the compressed-branch probabilities of each query mapped onto blocks of
      `block_sel` (l') keys by their overlap (Eq. 9), summed over the query heads of a GQA group
      (Eq. 10); the `n_sel` (n) top-ranked blocks that start at or before p, the initial block and
      the 2 local blocks (p's and the one before) always among them, ties to the lower block; the
      keys of those blocks up to p. No gradient flows through the choice (it is discrete).
    - sliding window: the `window` (w) keys p - w < j <= p.
    - gates: sigmoid(Linear(D, 3)(q_t)) per query head, or `gates=` (B, Hq, Lq, 3) given to
      forward (e.g. from the layer's hidden states, as in the paper).

    Defaults are the paper's (section 4.1): l=32, d=16, l'=64, n=16, w=512. `head_dim` is D;
    `hidden` the MLPs' width (default D).

    forward(q, k, v, gates=None, backend="auto", scale=None, threads=0) -> (B, Hq, Lq, D):
    q (B, Hq, Lq, D), k, v (B, Hkv, Lk, D) torch tensors, Hq a multiple of Hkv; query row t at
    position t + Lk - Lq. `backend` runs the two sparse branches (sattn.sparse_attention's names;
    'auto' is cpu on host tensors, triton on CUDA). The reference: sattn.learned_reference.nsa_attention
    with this module's parameters (`reference_params()`).
    """

    def __init__(self, head_dim: int, *, block_cmp: int = 32, stride: int = 16, block_sel: int = 64,
                 n_sel: int = 16, window: int = 512, hidden=None):
        super().__init__()
        D = _positive_int("head_dim", head_dim)
        self.block_cmp = _positive_int("block_cmp", block_cmp)
        self.stride = _positive_int("stride", stride)
        self.block_sel = _positive_int("block_sel", block_sel)
        self.n_sel = _positive_int("n_sel", n_sel)
        self.window = _positive_int("window", window)
        hidden = D if hidden is None else _positive_int("hidden", hidden)
        if self.n_sel < 3:
            raise ValueError(f"n_sel: expected an integer >= 3 (the initial and the 2 local blocks are always "
                             f"among the selected), got {n_sel}")
        if self.block_sel > S.MAX_BLOCK:
            raise ValueError(f"block_sel: expected an integer in [1, {S.MAX_BLOCK}], got {block_sel}")
        self.head_dim = D
        l = self.block_cmp
        self.pe_k = nn.Parameter(torch.randn(l, D) * 0.02)
        self.pe_v = nn.Parameter(torch.randn(l, D) * 0.02)
        self.mlp_k = nn.Sequential(nn.Linear(l * D, hidden), nn.GELU(), nn.Linear(hidden, D))
        self.mlp_v = nn.Sequential(nn.Linear(l * D, hidden), nn.GELU(), nn.Linear(hidden, D))
        self.gate = nn.Linear(D, 3)

    def extra_repr(self) -> str:
        return (f"head_dim={self.head_dim}, block_cmp={self.block_cmp}, stride={self.stride}, "
                f"block_sel={self.block_sel}, n_sel={self.n_sel}, window={self.window}")

    def reference_params(self) -> dict:
        """The parameters by the names sattn.learned_reference.nsa_attention takes."""
        out = {"gate_w": self.gate.weight, "gate_b": self.gate.bias}
        for x in ("k", "v"):
            mlp = getattr(self, f"mlp_{x}")
            out.update({f"pe_{x}": getattr(self, f"pe_{x}"), f"w1_{x}": mlp[0].weight, f"b1_{x}": mlp[0].bias,
                        f"w2_{x}": mlp[2].weight, f"b2_{x}": mlp[2].bias})
        return out

    def config(self) -> dict:
        return {"l": self.block_cmp, "d": self.stride, "l_sel": self.block_sel, "n_sel": self.n_sel,
                "window": self.window}

    # ---- branches ------------------------------------------------------------------------

    def compress(self, x, which: str):
        """(B, H, L, D) -> (B, H, N, D), N = floor((L - l) / d) + 1 compressed tokens (0 if L < l)."""
        B, H, L, D = x.shape
        l, d = self.block_cmp, self.stride
        if L < l:
            return x.new_zeros(B, H, 0, D)
        blocks = x.unfold(2, l, d).transpose(-1, -2)                       # (B, H, N, l, D)
        z = (blocks + getattr(self, f"pe_{which}").to(x.dtype)).flatten(-2)
        return getattr(self, f"mlp_{which}")(z)

    def _compressed(self, q, k, v, scale):
        """o_cmp (B, Hq, Lq, D) and the probabilities p_cmp (B, Hq, Lq, N), detached."""
        B, Hq, Lq, D = q.shape
        Hkv, Lk = k.shape[1], k.shape[2]
        kc, vc = self.compress(k, "k"), self.compress(v, "v")
        n = kc.shape[2]
        group = Hq // Hkv
        pos = torch.arange(Lq, device=q.device) + (Lk - Lq)
        vis = torch.arange(n, device=q.device)[None, :] * self.stride + self.block_cmp - 1 <= pos[:, None]
        qg = q.reshape(B, Hkv, group * Lq, D)
        s = (scale * qg @ kc.transpose(-1, -2)).reshape(B, Hkv, group, Lq, n)
        # Rows before the first compressed token sees nothing: they stay 0 (and get no gradient).
        first = int(torch.count_nonzero(~vis.any(dim=-1)))
        bias = torch.zeros(Lq - first, n, dtype=s.dtype, device=s.device).masked_fill_(~vis[first:], float("-inf"))
        p = torch.softmax(s[..., first:, :] + bias, dim=-1)
        if first:
            p = torch.cat([p.new_zeros(B, Hkv, group, first, n), p], dim=-2)
        o = (p.reshape(B, Hkv, group * Lq, n) @ vc).reshape(B, Hq, Lq, D)
        return o, p.detach()

    def _overlap(self, n_cmp: int, n_blocks: int, device, dtype):
        i = torch.arange(n_cmp, device=device)[:, None]
        j = torch.arange(n_blocks, device=device)[None, :]
        lo = torch.maximum(i * self.stride, j * self.block_sel)
        hi = torch.minimum(i * self.stride + self.block_cmp, (j + 1) * self.block_sel)
        return ((hi - lo).clamp(min=0).to(dtype)) / self.stride

    def selection(self, p_cmp, Lq: int, Lk: int):
        """Chosen selection blocks, int64 (B, Hkv, Lq, n_sel) (-1 = none), from p_cmp (B, Hkv, G, Lq, N)."""
        with torch.no_grad():
            n_blocks = -(-Lk // self.block_sel)
            dev = p_cmp.device
            # Eq. (10)'s sum over the group's heads first: Eq. (9) is linear in p_cmp.
            p = p_cmp.sum(dim=2).to(torch.float64)
            score = p @ self._overlap(p.shape[-1], n_blocks, dev, p.dtype)   # (B, Hkv, Lq, nb)
            pos = torch.arange(Lq, device=dev) + (Lk - Lq)
            cur = (pos // self.block_sel)[:, None]
            c = torch.arange(n_blocks, device=dev)[None, :]
            eligible = c <= cur
            forced = eligible & ((c == 0) | (c == cur) | (c == cur - 1))
            score = score.masked_fill(~eligible, float("-inf")).masked_fill(forced, float("inf"))
            top, order = score.sort(dim=-1, descending=True, stable=True)
            take = min(self.n_sel, n_blocks)
            top, order = top[..., :take], order[..., :take]
            return torch.where(top == float("-inf"), -1, order)

    # ---- forward -------------------------------------------------------------------------

    def forward(self, q, k, v, gates=None, *, backend: str = "auto", scale=None, threads: int = 0):
        from sattn import _inputs
        from sattn.api import sparse_attention
        for name, x in (("q", q), ("k", k), ("v", v)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name}: sattn.NSA takes torch tensors, got {type(x).__name__}")
        prob = _inputs.check_qkv(q, k, v)
        if prob.D != self.head_dim:
            raise ValueError(f"q: expected head dim D={self.head_dim} (the module's head_dim), got {prob.D}")
        if gates is not None and (not isinstance(gates, torch.Tensor) or gates.shape != (prob.B, prob.Hq, prob.Lq, 3)):
            raise ValueError(f"gates: expected a tensor of shape {(prob.B, prob.Hq, prob.Lq, 3)}, got "
                             f"{getattr(gates, 'shape', type(gates).__name__)}")
        scale = _inputs.resolve_scale(scale, prob.D)
        B, Hq, Lq, _ = q.shape
        Hkv, Lk = k.shape[1], k.shape[2]
        o_cmp, p_cmp = self._compressed(q, k, v, scale)
        chosen = self.selection(p_cmp, Lq, Lk)                               # (B, Hkv, Lq, n)
        o_slc = learned.attend_choice(q, k, v, chosen.repeat_interleave(Hq // Hkv, dim=1), self.block_sel,
                                      causal=True, backend=backend, scale=scale, threads=threads)
        win = S.SlidingWindow(window=self.window, causal=True)
        opts = {"threads": threads} if backend in ("auto", "cpu") and q.device.type == "cpu" else {}
        o_win = sparse_attention(q, k, v, win, backend=backend, scale=scale, **opts)
        g = torch.sigmoid(self.gate(q)) if gates is None else gates
        g = g.to(q.dtype)
        return g[..., 0:1] * o_cmp.to(q.dtype) + g[..., 1:2] * o_slc + g[..., 2:3] * o_win
