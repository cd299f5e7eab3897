"""The float64 reference: the judge every backend is tested against.

attention() evaluates the contract literally: dense scores in float64, the dense mask of
sattn.mask.dense_mask_numpy, softmax over visible keys, rows with no visible key -> zeros and LSE -inf,
and the non-finite policy (docs/contract.md, "Non-finite inputs"): a row whose q, or the k or v of a
visible key, holds a NaN or +/-Inf is NaN (out and LSE) unless nothing is visible to it; every
other row is computed as if those values were 0. normalizer= picks softmax (the default), sigmoid
or relu2 (sattn.normalizers); for the last two the returned lse only marks rows: 0 where a key is
visible, -inf where none is, NaN where poisoned.
Memory is O(Lq*Lk) per head (use `rows=` to judge a sample of rows on long sequences).
"""
from __future__ import annotations

import numpy as np

from sattn import _inputs
from sattn import normalizers as N
from sattn.mask import dense_mask_numpy


def attention(q, k, v, spec, *, scale=None, return_lse=False, rows=None, mask=None, normalizer="softmax"):
    """float64 out (B,Hq,len(rows),D) [and lse (B,Hq,len(rows))] as numpy arrays."""
    normalizer = N.check(normalizer)
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
    if normalizer != "softmax":
        return _elementwise(s, mask, vn, bad_q, bad_kv, normalizer, prob.Lk, return_lse)
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


def _elementwise(s, mask, vn, bad_q, bad_kv, normalizer, Lk, return_lse):
    """out = sum_j w_ij v_j for a normalizer without a row sum (sattn.normalizers.weights)."""
    empty = ~mask.any(axis=-1)
    poisoned = ~empty & (bad_q | (mask & bad_kv[:, :, None, :]).any(axis=-1))
    out = np.einsum("bhqk,bhkd->bhqd", N.weights(s, mask, normalizer, Lk), vn)
    out[poisoned] = np.nan
    if not return_lse:
        return out
    lse = np.where(empty, -np.inf, 0.0)
    lse[poisoned] = np.nan
    return out, lse


# Max abs error on (out, lse) per input dtype for inputs ~ N(0, 1): docs/contract.md, "Tolerances".
TOLERANCES = {
    "float32": (1e-4, 1e-4),
    "float16": (5e-3, 5e-3),
    "bfloat16": (3e-2, 2e-2),
}


def backward(q, k, v, out, lse, dout, dlse, mask, *, scale, normalizer="softmax"):
    """float64 (dq, dk, dv) of the contract's attention, from the forward's out and lse.

    q, out, dout (B,Hq,Lq,D); k, v (B,Hkv,Lk,D); lse (B,Hq,Lq); dlse (B,Hq,Lq) or None; mask
    (B,Hq,Lq,Lk) bool, the visible set the forward used. With P = exp(S - lse) on visible pairs
    and delta_i = sum_d dout_id out_id - dlse_i: dv_j = sum_i P_ij dout_i, dS_ij = P_ij (dout_i.v_j
    - delta_i), dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i; dk and dv summed over
    each GQA group. A row whose lse is +inf contributes nothing (the non-finite policy hands its
    rows over that way, docs/contract.md "Gradients"); rows with no visible key contribute nothing.

    normalizer="sigmoid" or "relu2" (w = sattn.normalizers.weights): dv_j = sum_i w_ij dout_i,
    dS_ij = w'(s_ij) dout_i.v_j, and dq, dk as above; lse only marks the rows that contribute
    (finite), and dlse is ignored (there is no lse output to receive a gradient).
    """
    qn, kn, vn, on, dn = (np.asarray(x, dtype=np.float64) for x in (q, k, v, out, dout))
    ln = np.asarray(lse, dtype=np.float64)
    B, Hq, Lq, D = qn.shape
    Hkv, Lk = kn.shape[1], kn.shape[2]
    group = Hq // Hkv
    mask = np.asarray(mask, dtype=bool)
    kr = np.repeat(kn, group, axis=1)
    vr = np.repeat(vn, group, axis=1)
    s = scale * np.einsum("bhqd,bhkd->bhqk", qn, kr)
    if normalizer != "softmax":
        mask = mask & np.isfinite(ln)[..., None]
        p = N.weights(s, mask, normalizer, Lk)
        ds = N.weight_derivative(s, mask, normalizer, Lk) * np.einsum("bhqd,bhkd->bhqk", dn, vr)
        dq = scale * np.einsum("bhqk,bhkd->bhqd", ds, kr)
        dk = scale * np.einsum("bhqk,bhqd->bhkd", ds, qn).reshape(B, Hkv, group, Lk, D).sum(axis=2)
        dv = np.einsum("bhqk,bhqd->bhkd", p, dn).reshape(B, Hkv, group, Lk, D).sum(axis=2)
        return dq, dk, dv
    with np.errstate(invalid="ignore", over="ignore"):
        x = np.where(mask, s - ln[..., None], -np.inf)
    p = np.exp(x)
    delta = np.einsum("bhqd,bhqd->bhq", dn, on)
    if dlse is not None:
        delta = delta - np.asarray(dlse, dtype=np.float64)
    dp = np.einsum("bhqd,bhkd->bhqk", dn, vr)
    ds = p * (dp - delta[..., None])
    dq = scale * np.einsum("bhqk,bhkd->bhqd", ds, kr)
    dk = scale * np.einsum("bhqk,bhqd->bhkd", ds, qn).reshape(B, Hkv, group, Lk, D).sum(axis=2)
    dv = np.einsum("bhqk,bhqd->bhkd", p, dn).reshape(B, Hkv, group, Lk, D).sum(axis=2)
    return dq, dk, dv


# Max abs error on each of dq, dk, dv per input dtype against float64 autograd of the masked
# softmax, for inputs, dout and dlse ~ N(0, 1): docs/contract.md, "Gradients" (the measurement
# behind each figure is stated there).
GRAD_TOLERANCES = {
    "float64": 1e-12,
    "float32": 2e-5,
    "float16": 1.5e-2,
    "bfloat16": 1e-1,
}


# Max abs error on (out, each of dq, dk, dv) per input dtype for the sigmoid and relu2
# normalizers against float64 autograd of their formulas, inputs and dout ~ N(0, 1):
# docs/contract.md, "Normalizers" (the measurement behind each figure is stated there).
NORMALIZER_TOLERANCES = {
    "float64": (1e-12, 1e-12),
    "float32": (1e-4, 2e-5),
    "bfloat16": (3e-2, 1e-1),
}
