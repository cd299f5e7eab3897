"""The shared C++ planner against the independent numpy reference mask, on random problems."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import sattn
from sattn import _cc

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    Hkv = draw(st.sampled_from([1, 2]))
    Hq = Hkv * draw(st.sampled_from([1, 2, 3]))
    B = draw(st.integers(1, 2))
    Lk = draw(st.integers(1, 70))
    Lq = draw(st.integers(1, Lk))
    D = draw(st.sampled_from([1, 4, 16]))
    causal = draw(st.booleans())
    blk = draw(st.integers(1, max(1, min(Lk, 20))))
    kind = draw(st.sampled_from(["dense", "window", "topk", "bigbird", "perq"]))
    if kind == "dense":
        spec = sattn.Dense(causal=causal)
    elif kind == "window":
        spec = sattn.SlidingWindow(window=draw(st.integers(1, 20)), causal=causal, dilation=draw(st.integers(1, 3)),
                                   global_tokens=draw(st.integers(0, 4)))
    elif kind == "topk":
        spec = sattn.BlockTopK(block=blk, keep=draw(st.sampled_from([0.05, 0.125, 0.5, 1.0])),
                               global_blocks=draw(st.integers(0, 2)), local_blocks=draw(st.integers(0, 2)),
                               causal=causal, score=draw(st.sampled_from(["mean", "max"])))
    elif kind == "bigbird":
        spec = sattn.BigBird(block=blk, window_blocks=draw(st.integers(0, 4)), global_blocks=draw(st.integers(0, 2)),
                             random_blocks=draw(st.integers(0, 3)), seed=draw(st.integers(0, 2**64 - 1)), causal=causal)
    else:
        spec = sattn.TopKPerQuery(k=draw(st.integers(1, 12)), causal=causal)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D)).astype(np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D)).astype(np.float32)
    tile = draw(st.integers(1, 24))
    return spec, q, k, tile


@SETTINGS
@given(problems())
def test_plan_expands_to_the_reference_mask(problem):
    spec, q, k, tile = problem
    plan = sattn.plan(spec, q, k, tile=tile)
    plan.validate()
    want = sattn.dense_mask(spec, q, k)
    np.testing.assert_array_equal(plan.to_dense_mask(), want)
    assert plan.visible_pairs() == int(want.sum())


def test_static_specs_broadcast_one_plan_and_dynamic_specs_plan_per_head():
    q = np.random.default_rng(0).standard_normal((2, 4, 64, 8)).astype(np.float32)
    k = np.random.default_rng(1).standard_normal((2, 2, 64, 8)).astype(np.float32)
    p = sattn.plan(sattn.SlidingWindow(window=8, causal=True), q, k, tile=16)
    assert (p.plan_b, p.plan_h) == (1, 1)
    p = sattn.plan(sattn.BlockTopK(block=16, keep=0.5), q, k)
    assert (p.plan_b, p.plan_h) == (2, 4)
    assert p.row_ptr.dtype == np.int32 and p.col_idx.dtype == np.int32 and p.bitmaps.dtype == np.uint64


def test_sliding_window_plan_is_linear_in_length():
    """Planning a window must not touch L x L: a 131072-token plan has O(L / block) rows of O(1) entries."""
    L = 131072
    q = np.zeros((1, 1, L, 1), np.float32)
    p = sattn.plan(sattn.SlidingWindow(window=1024, causal=True), q, q, tile=64)
    assert p.nnz <= p.n_q_blocks * (1024 // 64 + 2)
    assert p.bitmaps.size <= 4 * 64  # the diagonal and the window edge, shared by every row


def test_problem_file_round_trip_and_corruption_is_a_clear_error():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 2, 20, 8)).astype(np.float32)
    k = rng.standard_normal((1, 1, 33, 8)).astype(np.float32)
    v = rng.standard_normal((1, 1, 33, 8)).astype(np.float32)
    spec = sattn.BlockTopK(block=8, keep=0.5, causal=True)
    plan = sattn.plan(spec, q, k)
    shape = (1, 2, 1, 20, 33, 8)
    data = _cc.serialize_problem(spec.to_fields(), shape, 0.35, q, k, v, plan.to_dict())
    back = _cc.parse_problem(data)
    assert back["shape"] == shape and back["scale"] == 0.35
    np.testing.assert_array_equal(back["q"], q.ravel())
    np.testing.assert_array_equal(back["plan"]["col_idx"], plan.col_idx)
    with pytest.raises(ValueError, match="truncated"):
        _cc.parse_problem(data[:-9])
    with pytest.raises(ValueError, match="checksum"):
        _cc.parse_problem(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(ValueError, match="magic"):
        _cc.parse_problem(b"X" + data[1:])


def test_result_file_round_trip():
    out = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    lse = np.full((2, 3, 4), -np.inf, np.float32)
    data = _cc.serialize_result((2, 3, 3, 4, 4, 5), out, lse, {"instructions": 123, "bytes": 7})
    o, l, c = _cc.parse_result(data)
    np.testing.assert_array_equal(o, out)
    np.testing.assert_array_equal(l, lse)
    assert c == {"instructions": 123, "bytes": 7}
    with pytest.raises(ValueError, match="truncated"):
        _cc.parse_result(data[:40])


def test_plan_validation_names_the_field():
    q = np.zeros((1, 1, 16, 4), np.float32)
    d = sattn.plan(sattn.Dense(), q, q, tile=4).to_dict()
    d["col_idx"] = d["col_idx"].copy()
    d["col_idx"][0] = 99
    with pytest.raises(ValueError, match="col_idx"):
        _cc.validate_plan(d)


def test_dense_mask_follows_the_input_framework():
    import torch
    q = torch.randn(1, 2, 10, 4)
    m = sattn.dense_mask(sattn.SlidingWindow(window=3, causal=True), q, q)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.bool and tuple(m.shape) == (1, 2, 10, 10)
    assert isinstance(sattn.dense_mask(sattn.Dense(), q.numpy(), q.numpy()), np.ndarray)
