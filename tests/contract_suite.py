"""The cross-target contract suite: any backend against the float64 reference.

Backend test files call `check_backend(...)` on the cases below (and their own hypothesis
strategies from `problems()`), so every target is judged by the same reference and tolerances.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import sattn
from sattn.reference import TOLERANCES


def make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype="float32", seed=0):
    """q, k, v ~ N(0, 1) as torch tensors of `dtype` (bf16 included), on the CPU."""
    import torch
    g = torch.Generator().manual_seed(seed)
    t = getattr(torch, dtype)
    return (torch.randn(B, Hq, Lq, D, generator=g).to(t), torch.randn(B, Hkv, Lk, D, generator=g).to(t),
            torch.randn(B, Hkv, Lk, D, generator=g).to(t))


def check_backend(backend, spec, q, k, v, *, tol=None, scale=None, **options):
    """Runs `backend` and asserts out and lse match the reference within the dtype's tolerance."""
    from sattn import _inputs
    dtype = _inputs.dtype_name(q)
    tol_out, tol_lse = tol or TOLERANCES[dtype]
    out, lse = sattn.sparse_attention(q, k, v, spec, backend=backend, scale=scale, return_lse=True, **options)
    assert _inputs.dtype_name(out) == dtype, f"out dtype {_inputs.dtype_name(out)} != input dtype {dtype}"
    assert tuple(out.shape) == tuple(q.shape)
    ref_out, ref_lse = sattn.reference.attention(q, k, v, spec, scale=scale, return_lse=True)
    got = _inputs.to_numpy(out, np.float64)
    got_lse = _inputs.to_numpy(lse, np.float64)
    assert np.all(np.isfinite(got)), "non-finite output"
    err = np.max(np.abs(got - ref_out)) if got.size else 0.0
    assert err <= tol_out, f"{backend} {spec}: max |out - ref| = {err:.3g} > {tol_out}"
    empty = np.isneginf(ref_lse)
    assert np.array_equal(np.isneginf(got_lse), empty), f"{backend} {spec}: empty rows differ (lse -inf)"
    np.testing.assert_array_equal(got[empty], 0.0)
    lse_err = np.max(np.abs(got_lse[~empty] - ref_lse[~empty])) if (~empty).any() else 0.0
    assert lse_err <= tol_lse, f"{backend} {spec}: max |lse - ref| = {lse_err:.3g} > {tol_lse}"
    return err, lse_err


def all_specs(L, block):
    """One of each spec (causal and not) sized for sequence length L."""
    block = max(1, min(block, L))
    out = []
    for causal in (False, True):
        out += [
            sattn.Dense(causal=causal),
            sattn.SlidingWindow(window=max(1, L // 4), causal=causal),
            sattn.SlidingWindow(window=3, causal=causal, dilation=2, global_tokens=2),
            sattn.BlockTopK(block=block, keep=0.3, causal=causal),
            sattn.BlockTopK(block=block, keep=0.5, global_blocks=0, local_blocks=2, causal=causal, score="max"),
            sattn.BigBird(block=block, window_blocks=3, global_blocks=1, random_blocks=1, seed=11, causal=causal),
            sattn.TopKPerQuery(k=5, causal=causal),
        ]
    return out


# Hand-picked edge cases: (name, B, Hq, Hkv, Lq, Lk, D, block)
EDGE_CASES = [
    ("L_not_multiple_of_block", 1, 2, 2, 45, 45, 16, 16),
    ("L_equals_1", 1, 1, 1, 1, 1, 16, 1),
    ("decode_Lq_1", 1, 4, 2, 1, 77, 32, 16),
    ("Lq_less_than_Lk", 2, 2, 1, 19, 50, 16, 8),
    ("gqa_4_to_1", 1, 4, 1, 40, 40, 32, 8),
    ("head_dim_80", 1, 2, 2, 33, 33, 80, 16),
    ("head_dim_128", 1, 1, 1, 24, 24, 128, 8),
]


@st.composite
def problems(draw, max_L=96, dims=(16, 32, 64, 80, 128), dtypes=("float32",)):
    """Random (spec, shape, dtype, seed) for hypothesis-driven backend tests."""
    Hkv = draw(st.sampled_from([1, 2]))
    Hq = Hkv * draw(st.sampled_from([1, 2]))
    B = draw(st.integers(1, 2))
    Lk = draw(st.integers(1, max_L))
    Lq = draw(st.sampled_from([Lk, 1, max(1, Lk // 3)]))
    D = draw(st.sampled_from(list(dims)))
    block = draw(st.integers(1, max(1, min(Lk, 32))))
    spec = draw(st.sampled_from(all_specs(Lk, block)))
    return spec, (B, Hq, Hkv, Lq, Lk, D), draw(st.sampled_from(list(dtypes))), draw(st.integers(0, 2**20))
