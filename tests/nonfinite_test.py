"""The non-finite input policy (docs/contract.md, "Non-finite inputs") on every host backend.

For each backend available here (reference, cpu, rvv, rocc), NaN, +inf and -inf are put into q, k
and v at positions some rows see and others do not, for every spec, GQA, Lq < Lk and rows with no
visible key. Checked: the poisoned rows are exactly the contract's (out all NaN, lse NaN), every
other row is bit-identical to a run on the inputs with those values replaced by 0 under the same
plan, and agrees with the float64 reference within the backend's tolerance. Also: float32 scores
that would overflow raise ValueError naming `scale` (the reference is float64 and does not).
"""
import numpy as np
import pytest
import torch

import sattn
from sattn import _inputs
from sattn.backends import status as backend_status
from sattn.mask import dense_mask_numpy
from sattn.plan import BlockPlan
from sattn.reference import TOLERANCES
from tests.contract_suite import make_inputs

NAN, INF = float("nan"), float("inf")
HOST = ("reference", "cpu", "rvv", "rocc")
_STATUS = backend_status()


def _backends():
    return [pytest.param(b, marks=pytest.mark.skipif(not _STATUS[b][0], reason=_STATUS[b][1])) for b in HOST]


def specs():
    return [
        sattn.Dense(causal=True),
        sattn.Dense(),
        sattn.SlidingWindow(window=4, causal=True),
        sattn.SlidingWindow(window=3, dilation=2, global_tokens=2),
        sattn.BlockTopK(block=8, keep=0.5, causal=True),
        sattn.BlockTopK(block=8, keep=0.5, global_blocks=0, local_blocks=0, score="max"),
        sattn.BigBird(block=8, window_blocks=1, global_blocks=1, random_blocks=1, seed=3, causal=True),
        sattn.TopKPerQuery(k=5),
        sattn.TopKPerQuery(k=4, causal=True),
    ]


# (B, Hq, Hkv, Lq, Lk, D): GQA 2:1 with Lq < Lk, and two batches of MHA.
SHAPES = [(1, 2, 1, 20, 32, 16), (2, 2, 2, 24, 24, 8)]


def poison(q, k, v, seed):
    """Copies of q, k, v with NaN, +inf and -inf in each (some whole rows, some single elements)."""
    q, k, v = (x.clone() for x in (q, k, v))
    g = np.random.default_rng(seed)
    B, Hq, Lq, D = q.shape
    Lk = k.shape[2]
    for x, L in ((q, Lq), (k, Lk), (v, Lk)):
        for val in (NAN, INF, -INF):
            b, h, i, d = g.integers(B), g.integers(x.shape[1]), g.integers(L), g.integers(D)
            x[b, h, i, d] = val
    k[0, 0, Lk - 1, 0] = NAN     # the last key: only the last queries see it under causal specs
    v[-1, -1, 1, :] = INF        # a whole v row
    q[0, -1, 0, :] = -INF        # a whole q row
    return q, k, v


def zeroed(x):
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def expected_poison(spec, q, k, v, mask):
    """(B, Hq, Lq) bool: the contract's poison set, from its words."""
    qn, kn, vn = (_inputs.to_numpy(x, np.float64) for x in (q, k, v))
    group = qn.shape[1] // kn.shape[1]
    bad_q = ~np.isfinite(qn).all(-1)
    bad_kv = np.repeat(~(np.isfinite(kn).all(-1) & np.isfinite(vn).all(-1)), group, axis=1)
    sees = (mask & bad_kv[:, :, None, :]).any(-1)
    return mask.any(-1) & (bad_q | sees)


def run(backend, q, k, v, spec, scale, plan, mask):
    if backend == "reference":
        out, lse = sattn.reference.attention(q, k, v, spec, scale=scale, return_lse=True, mask=mask)
    else:
        out, lse = sattn.sparse_attention(q, k, v, spec, backend=backend, scale=scale, return_lse=True, plan=plan)
    return _inputs.to_numpy(out, np.float64), np.asarray(lse, dtype=np.float64)


def tolerance(backend, q, v):
    if backend == "rocc":
        from sattn.backends import rocc
        vmax = float(np.max(np.abs(_inputs.to_numpy(zeroed(v), np.float64))))
        return rocc.OUT_ATOL_REL * max(vmax, 1e-30), rocc.LSE_ATOL
    return TOLERANCES[_inputs.dtype_name(q)]


def check_policy(backend, spec, q, k, v, *, plan=None, scale=0.3):
    """The policy's three rules on one problem; returns the number of poisoned rows."""
    tile = 16 if backend == "rocc" else 8
    if plan is None:
        plan = sattn.plan(spec, q, k, tile=tile, scale=scale)
    mask = plan.to_dense_mask().astype(bool)
    want_mask = dense_mask_numpy(spec, q, k, scale=scale) if plan.source is not None else mask
    assert np.array_equal(mask, want_mask), "host plan differs from the contract mask"
    out, lse = run(backend, q, k, v, spec, scale, plan, mask)
    qz, kz, vz = (zeroed(x) for x in (q, k, v))
    out0, lse0 = run(backend, qz, kz, vz, spec, scale, plan, mask)
    want = expected_poison(spec, q, k, v, mask)
    # 1. Exactly the poisoned rows are NaN, in every element and in the LSE.
    assert np.array_equal(np.isnan(out).any(-1), want), f"{backend} {spec}: poisoned rows differ"
    assert np.isnan(out[want]).all(), f"{backend} {spec}: a poisoned row is only partly NaN"
    assert np.array_equal(np.isnan(lse), want), f"{backend} {spec}: lse NaN rows differ"
    # 2. Every other row: bit-identical to the zeroed run under the same plan.
    keep = ~want
    assert np.array_equal(out[keep], out0[keep]), f"{backend} {spec}: clean rows differ from the zeroed run"
    assert np.array_equal(lse[keep], lse0[keep]), f"{backend} {spec}: clean lse differ from the zeroed run"
    # 3. ... and agree with the float64 reference; rows with nothing visible are 0 / -inf.
    ref_out, ref_lse = sattn.reference.attention(q, k, v, spec, scale=scale, return_lse=True, mask=mask)
    assert np.array_equal(np.isnan(ref_lse), want)
    tol_out, tol_lse = tolerance(backend, q, v)
    assert np.max(np.abs(out[keep] - ref_out[keep]), initial=0.0) <= tol_out
    finite = keep & np.isfinite(ref_lse)
    assert np.max(np.abs(lse[finite] - ref_lse[finite]), initial=0.0) <= tol_lse
    empty = ~mask.any(-1)
    assert np.array_equal(np.isneginf(lse), empty) and np.all(out[empty] == 0.0)
    return int(want.sum())


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_spec_poisons_exactly_the_rows_that_see_a_non_finite(backend, shape):
    q, k, v = make_inputs(*shape, seed=1)
    pq, pk, pv = poison(q, k, v, seed=2)
    total, rows = 0, 0
    for spec in specs():
        n = check_policy(backend, spec, pq, pk, pv)
        total += n
        rows += pq.shape[0] * pq.shape[1] * pq.shape[2]
    assert 0 < total < rows, "the cases must poison some rows and leave others"


@pytest.mark.parametrize("backend", _backends())
def test_rows_with_no_visible_key_stay_empty_whatever_they_hold(backend):
    """A hand-made plan with no entries for the first query block: its rows (one holds a NaN q,
    another would see a NaN key) give out 0, lse -inf."""
    q, k, v = make_inputs(1, 2, 1, 32, 32, 8, seed=3)
    q[0, 0, 2, 0] = NAN
    k[0, 0, 1, 0] = NAN
    v[0, 0, 20, 3] = -INF
    spec = sattn.Dense(causal=True)
    tile = 16
    d = sattn.plan(spec, q, k, tile=tile).to_dict()
    drop = int(d["row_ptr"][1])
    d["col_idx"], d["mask_idx"] = d["col_idx"][drop:], d["mask_idx"][drop:]
    d["row_ptr"] = np.maximum(np.asarray(d["row_ptr"]) - drop, 0).astype(np.int32)
    plan = BlockPlan.from_dict(d)
    assert check_policy(backend, spec, q, k, v, plan=plan) > 0


def test_cpu_bfloat16_inputs():
    if not _STATUS["cpu"][0]:
        pytest.skip(_STATUS["cpu"][1])
    q, k, v = make_inputs(1, 2, 1, 20, 32, 16, "bfloat16", seed=4)
    pq, pk, pv = poison(q, k, v, seed=5)
    for spec in specs()[::2]:
        check_policy("cpu", spec, pq, pk, pv)


@pytest.mark.parametrize("backend", _backends())
def test_float32_score_overflow_raises_naming_scale(backend):
    q, k, v = make_inputs(1, 1, 1, 8, 8, 4, seed=6)
    q[0, 0, 3] = 1e20
    k[0, 0, 5] = 1e20
    spec = sattn.Dense()
    if backend == "reference":  # float64: no overflow to report
        out = sattn.sparse_attention(q, k, v, spec, backend=backend)
        assert np.isfinite(_inputs.to_numpy(out, np.float64)).all()
        return
    with pytest.raises(ValueError, match="^scale"):
        sattn.sparse_attention(q, k, v, spec, backend=backend)
    # Non-finite rows do not count towards the bound, and in-range values pass.
    k[0, 0, 5] = INF
    sattn.sparse_attention(q[:, :, :3], k, v, spec, backend=backend)
