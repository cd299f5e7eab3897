"""sattn's front door: sparse_attention() dispatches one validated call to a backend."""
from __future__ import annotations

import numpy as np

from sattn import _inputs
from sattn import backends as _backends
from sattn import specs as S
from sattn.plan import check_block_fits


def backends() -> list:
    """Names of the backends that are built and usable here (e.g. ['reference', 'cpu'])."""
    return _backends.available()


def _pick_auto(prob) -> str:
    if prob.framework == "torch" and prob.device.startswith("cuda"):
        return "triton"
    return "cpu" if "cpu" in _backends.available() else "reference"


def _like(x, template, dtype_of):
    """Converts a backend's output to the framework, device and dtype of the caller's input."""
    if _inputs._is_torch(template):
        import torch
        t = x if _inputs._is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
        return t.to(device=template.device, dtype=dtype_of)
    a = _inputs.to_numpy(x) if _inputs._is_torch(x) else np.asarray(x)
    return a.astype(dtype_of, copy=False)


def sparse_attention(q, k, v, spec, *, backend: str = "auto", scale=None, return_lse: bool = False, **options):
    """Attention restricted to `spec`'s visible pairs (docs/contract.md).

    q (B, Hq, Lq, D); k, v (B, Hkv, Lk, D); torch tensors or numpy arrays. Returns out with q's
    dtype (and framework/device), plus LSE (B, Hq, Lq) float32 when return_lse=True.
    """
    if not isinstance(spec, S.Spec):
        raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, BlockTopK, BigBird, "
                        f"TopKPerQuery), got {type(spec).__name__}")
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a string, got {type(backend).__name__}")
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    check_block_fits(spec, prob)
    name = _pick_auto(prob) if backend == "auto" else backend
    mod = _backends.get(name)
    res = mod.attention(q, k, v, spec, scale=scale, return_lse=return_lse, **options)
    out_dtype = q.dtype
    out = _like(res.out, q, out_dtype)
    if not return_lse:
        return out
    if _inputs._is_torch(q):
        import torch
        lse = _like(res.lse, q, torch.float32)
    else:
        lse = np.asarray(_inputs.to_numpy(res.lse) if _inputs._is_torch(res.lse) else res.lse, dtype=np.float32)
    return out, lse
