"""Gradients on the accelerator (ATTN_BWD): loss.backward() through sparse_attention(backend="rocc")
against float64 torch autograd of the masked softmax on the same inputs (the mask from
sattn.mask.dense_mask_numpy, or the plan's own visible set), on small shapes: causal and not, GQA,
Lq < Lk with ragged L, empty rows, the gradient through lse; RTL == golden model through Python;
named argument errors. The tolerance is the documented one (docs/backends/rocc.md, "Backward")."""
import dataclasses

import numpy as np
import pytest
import torch

import sattn
from sattn import specs as S
from sattn.backends import rocc
from sattn.mask import dense_mask_numpy

RNG = np.random.default_rng(3)
TOL = rocc.GRAD_ATOL_REL  # max|g - ref| / max(max|ref|, one product term)


def _inputs(B, Hq, Hkv, Lq, Lk, D):
    f = lambda *s: RNG.standard_normal(s).astype(np.float32)
    return f(B, Hq, Lq, D), f(B, Hkv, Lk, D), f(B, Hkv, Lk, D), f(B, Hq, Lq, D), f(B, Hq, Lq)


def _reference_grads(q, k, v, mask, dout, dlse, scale):
    """float64 autograd of softmax(scale q k^T masked) v; rows without keys give 0 and lse -inf."""
    t = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v)]
    g = q.shape[1] // k.shape[1]
    kk, vv = (x.repeat_interleave(g, dim=1) for x in t[1:])
    m = torch.tensor(mask)
    s = torch.einsum("bhid,bhjd->bhij", t[0], kk) * scale
    s = s.masked_fill(~m, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    empty = ~m.any(-1)
    p = torch.exp(s - torch.where(empty, torch.zeros_like(lse), lse)[..., None]).masked_fill(~m, 0.0)
    out = torch.einsum("bhij,bhjd->bhid", p, vv)
    loss = (out * torch.tensor(dout, dtype=torch.float64)).sum()
    loss = loss + (torch.where(empty, torch.zeros_like(lse), lse) * torch.tensor(dlse, dtype=torch.float64)).sum()
    loss.backward()
    return [x.grad.numpy() for x in t]


def _rocc_grads(q, k, v, spec, dout, dlse, **kw):
    t = [torch.tensor(x, requires_grad=True) for x in (q, k, v)]
    out, lse = sattn.sparse_attention(*t, spec, backend="rocc", return_lse=True, **kw)
    lse_term = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    ((out * torch.tensor(dout)).sum() + (lse_term * torch.tensor(dlse)).sum()).backward()
    return [x.grad.numpy() for x in t]


def _check(got, ref, q, k, v, dout, scale):
    term_qk = scale * np.abs(dout).max() * np.abs(v).max() * max(np.abs(q).max(), np.abs(k).max())
    for name, g, r, term in zip(("dq", "dk", "dv"), got, ref, (term_qk, term_qk, np.abs(dout).max())):
        assert g.shape == r.shape and np.isfinite(g).all(), name
        err = np.abs(g - r).max() / max(np.abs(r).max(), term)
        assert err <= TOL, f"{name}: relative error {err:.4f} > {TOL}"


CASES = [
    ("dense causal", S.Dense(causal=True), (1, 2, 2, 40, 40, 16)),
    ("dense GQA Lq<Lk ragged", S.Dense(causal=True), (1, 4, 2, 23, 37, 16)),
    ("sliding window", S.SlidingWindow(window=8, causal=False), (1, 1, 1, 50, 50, 32)),
    ("blocktopk", S.BlockTopK(block=32, keep=0.5, causal=True), (1, 2, 1, 70, 70, 16)),
    ("L=1", S.Dense(causal=True), (1, 1, 1, 1, 1, 8)),
]


@pytest.mark.parametrize("name,spec,shape", CASES, ids=[c[0] for c in CASES])
def test_gradients_vs_float64_autograd(name, spec, shape):
    q, k, v, dout, dlse = _inputs(*shape)
    scale = shape[-1] ** -0.5
    got = _rocc_grads(q, k, v, spec, dout, dlse)
    ref = _reference_grads(q, k, v, dense_mask_numpy(spec, q, k), dout, dlse, scale)
    _check(got, ref, q, k, v, dout, scale)


def test_empty_rows_get_zero_gradient():
    # Drop the first plan row's entries: its 16 queries see no key; their dq is 0 and they add
    # nothing to dk, dv.
    q, k, v, dout, dlse = _inputs(1, 1, 1, 40, 40, 16)
    spec = S.Dense(causal=True)
    pl = sattn.plan(spec, q, k, tile=16)
    n0 = int(pl.row_ptr[1])
    cut = dataclasses.replace(pl, row_ptr=(pl.row_ptr - n0).clip(0).astype(np.int32),
                              col_idx=pl.col_idx[n0:].copy(), mask_idx=pl.mask_idx[n0:].copy())
    got = _rocc_grads(q, k, v, spec, dout, dlse, plan=cut)
    assert np.all(got[0][:, :, :16] == 0)
    ref = _reference_grads(q, k, v, cut.to_dense_mask(), dout, dlse, 0.25)
    _check(got, ref, q, k, v, dout, 0.25)


def test_rtl_matches_golden_and_counters():
    q, k, v, dout, dlse = _inputs(1, 2, 1, 64, 64, 32)
    spec = S.BlockTopK(block=32, keep=0.5)
    fwd = rocc.attention(q, k, v, spec, scale=32 ** -0.5, return_lse=True)
    g = rocc.attention_backward(q, k, v, fwd.out, fwd.lse, dout, dlse, fwd.plan, scale=32 ** -0.5, check_golden=True)
    c = g.counters
    assert c["golden_match"] and c["last_error"] == 0
    assert c["macs"] == 5 * c["t_nnz"] * 32 * 32 * 32 and c["entries"] == c["t_nnz"]
    # every (head, query block, key block) pair of the plan once: plan_h = 2 here, so nnz itself
    assert fwd.plan.plan_b == 1 and fwd.plan.plan_h == 2 and c["t_nnz"] == fwd.plan.nnz
    assert 0 < c["mac_utilization"] <= 1 and c["cycles_over_roofline"] >= 1


def test_bad_arguments_are_named():
    q, k, v, dout, dlse = _inputs(1, 1, 1, 16, 16, 16)
    fwd = rocc.attention(q, k, v, S.Dense(), scale=0.25, return_lse=True)
    with pytest.raises(ValueError, match="dout"):
        rocc.attention_backward(q, k, v, fwd.out, fwd.lse, dout[:, :, :8], dlse, fwd.plan, scale=0.25)
    bad = dout.copy()
    bad[0, 0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="dout"):
        rocc.attention_backward(q, k, v, fwd.out, fwd.lse, bad, dlse, fwd.plan, scale=0.25)
    with pytest.raises(TypeError, match="plan"):
        rocc.attention_backward(q, k, v, fwd.out, fwd.lse, dout, dlse, None, scale=0.25)
    with pytest.raises(TypeError, match="bogus"):
        rocc.attention_backward(q, k, v, fwd.out, fwd.lse, dout, dlse, fwd.plan, scale=0.25, bogus=1)
