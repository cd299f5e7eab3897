"""The gradient judge: float64 torch autograd of the masked softmax over sattn's dense mask.

`judge()` is written from the contract alone (softmax over the visible keys, rows with none give
zeros, lse = logsumexp) in plain torch float64 and differentiated by autograd: it shares no code
with the backends' backward passes. `check_gradients()` runs a backend through
sattn.sparse_attention, backpropagates random dout (and dlse) and compares dq, dk, dv with the
judge on the same input values (bf16/fp16 widened exactly), within GRAD_TOLERANCES.
"""
from __future__ import annotations

import numpy as np
import torch

import sattn
from sattn.reference import GRAD_TOLERANCES


def judge(q, k, v, mask, dout, dlse=None, scale=None):
    """float64 (out, lse, dq, dk, dv) of attention restricted to `mask` (B, Hq, Lq, Lk)."""
    q, k, v = (x.detach().to(torch.float64).requires_grad_() for x in (q, k, v))
    mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    group = q.shape[1] // k.shape[1]
    kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ kr.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, -torch.inf)
    empty = ~mask.any(-1)
    lse = torch.logsumexp(s.masked_fill(empty[..., None], 0.0), -1).masked_fill(empty, -torch.inf)
    p = torch.exp(s - lse.masked_fill(empty, 0.0)[..., None]).masked_fill(~mask, 0.0)
    out = p @ vr
    loss = (out * dout.to(torch.float64)).sum()
    if dlse is not None:
        loss = loss + (lse.masked_fill(empty, 0.0) * dlse.to(torch.float64)).sum()
    loss.backward()
    return out.detach(), lse.detach(), q.grad, k.grad, v.grad


def upstream(out, lse, seed=1):
    """Random dout (out's dtype) and dlse (float32) ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    dout = torch.randn(out.shape, generator=g).to(out.dtype)
    dlse = torch.randn(lse.shape, generator=g)
    return dout, dlse


def gradients(backend, spec, q, k, v, *, with_lse=True, scale=None, seed=1, **options):
    """(out, lse, dq, dk, dv, dout, dlse) from `backend` with q, k, v as leaves requiring grad."""
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out, lse = sattn.sparse_attention(q, k, v, spec, backend=backend, scale=scale, return_lse=True, **options)
    dout, dlse = upstream(out, lse, seed)
    outputs, grads = [out], [dout]
    if with_lse:
        outputs.append(lse)
        grads.append(torch.where(torch.isneginf(lse), 0.0, dlse))
    dq, dk, dv = torch.autograd.grad(outputs, (q, k, v), grads)
    return out, lse, dq, dk, dv, dout, (dlse if with_lse else None)


def check_gradients(backend, spec, q, k, v, *, tol=None, with_lse=True, scale=None, mask=None, **options):
    """Asserts dq, dk, dv of `backend` match the judge within the dtype's tolerance; returns the
    three max abs errors."""
    dtype = str(q.dtype).replace("torch.", "")
    tol = GRAD_TOLERANCES[dtype] if tol is None else tol
    out, lse, dq, dk, dv, dout, dlse = gradients(backend, spec, q, k, v, with_lse=with_lse, scale=scale, **options)
    for name, g, x in (("dq", dq, q), ("dk", dk, k), ("dv", dv, v)):
        assert g.dtype == x.dtype and g.shape == x.shape, (name, g.dtype, g.shape)
    if mask is None:
        mask = sattn.mask.dense_mask_numpy(spec, q, k, scale=scale)
    if with_lse:
        dlse = torch.where(torch.isneginf(lse), 0.0, dlse)
    ref = judge(q, k, v, mask, dout, dlse, scale=scale)[2:]
    errs = []
    for name, g, r in zip(("dq", "dk", "dv"), (dq, dk, dv), ref):
        g = g.to(torch.float64)
        assert torch.isfinite(g).all(), f"{backend} {spec}: non-finite {name}"
        err = (g - r).abs().max().item() if g.numel() else 0.0
        assert err <= tol, f"{backend} {spec}: max |{name} - ref| = {err:.3g} > {tol}"
        errs.append(err)
    return errs
