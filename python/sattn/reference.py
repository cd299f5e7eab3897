"""The float64 reference: the judge every backend is tested against.

attention() evaluates the contract literally: dense scores in float64, the dense mask of
sattn.mask.dense_mask_numpy, softmax over visible keys, rows with no visible key -> zeros and LSE -inf,
and the non-finite policy (docs/contract.md, "Non-finite inputs"): a row whose q, or the k or v of a
visible key, holds a NaN or +/-Inf is NaN (out and LSE) unless nothing is visible to it; every
other row is computed as if those values were 0.
Memory is O(Lq*Lk) per head (use `rows=` to judge a sample of rows on long sequences).
"""
from __future__ import annotations

import numpy as np

from sattn import _inputs
from sattn.mask import dense_mask_numpy


def attention(q, k, v, spec, *, scale=None, return_lse=False, rows=None, mask=None):
    """float64 out (B,Hq,len(rows),D) [and lse (B,Hq,len(rows))] as numpy arrays."""
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    rows = np.arange(prob.Lq) if rows is None else np.asarray(rows, dtype=np.int64)
    if mask is None:
        mask = dense_mask_numpy(spec, q, k, rows=rows, scale=scale)
    mask = np.asarray(mask, dtype=bool)
    qn = _inputs.to_numpy(q, np.float64)[:, :, rows]
    kn = _inputs.to_numpy(k, np.float64)
    vn = _inputs.to_numpy(v, np.float64)
    group = prob.Hq // prob.Hkv
    bad_q = ~np.isfinite(qn).all(axis=-1)                                          # (B, Hq, R)
    bad_kv = np.repeat(~(np.isfinite(kn).all(axis=-1) & np.isfinite(vn).all(axis=-1)), group, axis=1)
    qn, kn, vn = (np.where(np.isfinite(x), x, 0.0) for x in (qn, kn, vn))
    kn = np.repeat(kn, group, axis=1)
    vn = np.repeat(vn, group, axis=1)
    s = scale * np.einsum("bhqd,bhkd->bhqk", qn, kn)
    s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    empty = ~mask.any(axis=-1, keepdims=True)
    poisoned = ~empty[..., 0] & (bad_q | (mask & bad_kv[:, :, None, :]).any(axis=-1))
    m = np.where(empty, 0.0, m)
    e = np.exp(s - m)
    denom = e.sum(axis=-1, keepdims=True)
    safe = np.where(denom > 0, denom, 1.0)
    out = np.einsum("bhqk,bhkd->bhqd", e / safe, vn)
    out = np.where(empty, 0.0, out)
    out[poisoned] = np.nan
    if not return_lse:
        return out
    lse = np.where(empty[..., 0], -np.inf, (m + np.log(safe))[..., 0])
    lse[poisoned] = np.nan
    return out, lse


# Max abs error on (out, lse) per input dtype for inputs ~ N(0, 1): docs/contract.md, "Tolerances".
TOLERANCES = {
    "float32": (1e-4, 1e-4),
    "float16": (5e-3, 5e-3),
    "bfloat16": (3e-2, 2e-2),
}
