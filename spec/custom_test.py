"""Specs users write: MaskFn, FromMask, FlexBlockMask. The plan's visible pairs equal the mask the
spec defines (sattn.dense_mask evaluates the function on every pair), outputs match the float64
reference on the backends that take plans, and bad functions fail naming themselves."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import sattn
from sattn import custom, reference

BACKENDS = ["cpu", "reference"]


def qkv(B=1, Hq=2, Hkv=1, Lq=96, Lk=96, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Hq, Lq, D, generator=g), torch.randn(B, Hkv, Lk, D, generator=g),
            torch.randn(B, Hkv, Lk, D, generator=g))


def assert_plan_is_mask(spec, q, k, tile=32):
    plan = sattn.plan(spec, q, k, tile=tile)
    plan.validate()
    want = sattn.dense_mask(spec, q, k).numpy()
    np.testing.assert_array_equal(plan.to_dense_mask(), want)
    return plan


def assert_outputs(spec, q, k, v, tile=32):
    ref_out, ref_lse = reference.attention(q, k, v, spec, return_lse=True)
    plan = sattn.plan(spec, q, k, tile=tile)
    for backend in BACKENDS:
        for kw in ({}, {"plan": plan}):
            out, lse = sattn.sparse_attention(q, k, v, spec, backend=backend, return_lse=True, **kw)
            np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-4, err_msg=backend)
            np.testing.assert_allclose(lse.numpy(), ref_lse, atol=1e-4, err_msg=backend)


DOC = torch.repeat_interleave(torch.arange(5), torch.tensor([7, 30, 1, 40, 18]))  # 96 positions
NAMED = {
    "causal": lambda b, h, q, kv: q >= kv,
    "document": lambda b, h, q, kv: (DOC[q] == DOC[kv]) & (q >= kv),
    "sliding": lambda b, h, q, kv: (q - kv).abs() < 9,
    "prefix_lm": lambda b, h, q, kv: (kv < 20) | (q >= kv),
    "per_head_window": lambda b, h, q, kv: (q >= kv) & (q - kv < 8 * (h + 1)),
    "per_batch": lambda b, h, q, kv: torch.where(b == 0, q >= kv, kv <= 40),
    "strided": lambda b, h, q, kv: ((q - kv) % 5 == 0) | (kv // 32 == q // 32),
    "numpy_ufuncs": lambda b, h, q, kv: np.logical_and(np.greater_equal(q, kv), np.abs(q - kv) < 30),
    # An operation the interval evaluation does not follow: every pair is evaluated exactly.
    "opaque": lambda b, h, q, kv: torch.bitwise_and(q * 7 + kv, 3) == 1,
}


@pytest.mark.parametrize("name", sorted(NAMED))
@pytest.mark.parametrize("tile", [32, 48, 40, 16])
def test_named_masks_plan_exactly(name, tile):
    q, k, v = qkv(B=2)
    assert_plan_is_mask(sattn.MaskFn(NAMED[name], array="numpy" if name == "numpy_ufuncs" else "auto"), q, k, tile=tile)


def test_plans_are_broadcast_only_when_the_function_ignores_batch_and_head():
    q, k, _ = qkv(B=2, Hq=2)
    assert (sattn.plan(sattn.MaskFn(NAMED["causal"]), q, k).plan_b,
            sattn.plan(sattn.MaskFn(NAMED["causal"]), q, k).plan_h) == (1, 1)
    p = sattn.plan(sattn.MaskFn(NAMED["per_head_window"]), q, k)
    assert (p.plan_b, p.plan_h) == (1, 2)
    p = sattn.plan(sattn.MaskFn(NAMED["per_batch"]), q, k)
    assert (p.plan_b, p.plan_h) == (2, 1)


def test_decode_and_lq_below_lk_use_absolute_positions():
    q, k, v = qkv(Lq=5, Lk=96)
    plan = assert_plan_is_mask(sattn.MaskFn(NAMED["document"]), q, k, tile=32)
    assert plan.q_block_begin == (96 - 5) // 32
    assert_outputs(sattn.MaskFn(NAMED["sliding"]), q, k, v)


@pytest.mark.parametrize("name", ["causal", "document", "per_head_window", "opaque"])
def test_outputs_match_the_reference(name):
    q, k, v = qkv(B=2, Hq=4, Hkv=2)
    assert_outputs(sattn.MaskFn(NAMED[name]), q, k, v)


def test_numpy_index_arrays():
    seen = []

    def fn(b, h, q, kv):
        seen.append(type(q))
        return q >= kv

    q, k, _ = qkv()
    assert_plan_is_mask(sattn.MaskFn(fn, array="numpy"), q, k)
    assert np.ndarray in seen and not any(t is torch.Tensor for t in seen)


def test_plans_are_cached_by_function_and_shape():
    calls = []

    def fn(b, h, q, kv):
        calls.append(1)
        return (q >= kv) & (q - kv < 10)

    q, k, _ = qkv()
    p1 = sattn.plan(sattn.MaskFn(fn), q, k)
    n = len(calls)
    p2 = sattn.plan(sattn.MaskFn(fn), q, k)
    assert len(calls) == n and p2.row_ptr is p1.row_ptr
    sattn.plan(sattn.MaskFn(fn), q[:, :, :64], k[:, :, :64])
    assert len(calls) > n
    assert sattn.MaskFn(fn) == sattn.MaskFn(fn) and sattn.MaskFn(fn) != sattn.MaskFn(lambda *a: fn(*a))


def _not_vectorised(b, h, q, kv):
    return q >= kv if q > kv else kv < 3


@pytest.mark.parametrize("fn,err,match", [
    (_not_vectorised, TypeError, r"MaskFn\(fn=_not_vectorised\).*must be vectorised"),
    (lambda b, h, q, kv: q - kv, TypeError, r"MaskFn\(fn=<lambda>\): expected .* bool tensor, got dtype torch.int64"),
    (lambda b, h, q, kv: (q >= kv).reshape(-1)[:5], ValueError, r"MaskFn\(fn=<lambda>\): expected .* shape"),
    (lambda b, h, q, kv: True, TypeError, r"MaskFn\(fn=<lambda>\): expected .* got bool"),
    (lambda b, h, q, kv: (q >= kv).numpy().astype(np.int8), TypeError, r"got dtype int8"),
])
def test_bad_mask_functions_are_named(fn, err, match):
    q, k, v = qkv()
    with pytest.raises(err, match=match):
        sattn.plan(sattn.MaskFn(fn), q, k)
    with pytest.raises(err, match=match):
        sattn.sparse_attention(q, k, v, sattn.MaskFn(fn), backend="reference")


def test_bad_arguments():
    with pytest.raises(TypeError, match="^fn: expected a callable"):
        sattn.MaskFn(3)
    with pytest.raises(ValueError, match="^array: "):
        sattn.MaskFn(NAMED["causal"], array="jax")
    with pytest.raises(TypeError, match="^mask: expected a bool array, got dtype float64"):
        sattn.FromMask(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"^mask: expected shape"):
        sattn.FromMask(np.zeros(4, dtype=bool))
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"^mask: expected shape \(Lq, Lk\)=\(96, 96\)"):
        sattn.plan(sattn.FromMask(np.zeros((8, 8), dtype=bool)), q, k)
    with pytest.raises(TypeError, match="no C\\+\\+ spec fields"):
        sattn.MaskFn(NAMED["causal"]).to_fields()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_from_mask_is_exact(data):
    Lq = data.draw(st.integers(1, 70))
    Lk = data.draw(st.integers(Lq, 70))
    density = data.draw(st.sampled_from([0.0, 0.05, 0.5, 0.95, 1.0]))
    heads = data.draw(st.sampled_from([1, 2]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    m = rng.random((heads, Lq, Lk)) < density
    q, k, v = qkv(Hq=2, Lq=Lq, Lk=Lk)
    spec = sattn.FromMask(torch.from_numpy(m))
    m[...] = ~m  # the spec kept its own copy
    assert_plan_is_mask(spec, q, k, tile=data.draw(st.sampled_from([8, 16, 64])))


# Hypothesis-drawn mask functions: expression trees over the indices, evaluated with torch ops.
def _expr(depth):
    leaf = st.one_of(st.sampled_from(["q", "kv", "h", "b"]), st.integers(-40, 120).map(str),
                     st.sampled_from(["DOC[q]", "DOC[kv]"]))
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, st.sampled_from(["//", "%"]), st.integers(1, 40)).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda e: f"abs({e})"),
    )


def _pred(depth):
    index = st.tuples(st.sampled_from(["q", "kv", "DOC[q]", "DOC[kv]"]), st.sampled_from(["+", "-"]), _expr(2)).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")  # every comparison involves an index array
    cmp = st.tuples(index, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _expr(2)).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    if depth == 0:
        return cmp
    sub = _pred(depth - 1)
    return st.one_of(
        cmp,
        st.tuples(sub, st.sampled_from(["&", "|", "^"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda e: f"(~{e})"),
        st.tuples(sub, sub, sub).map(lambda t: f"torch.where({t[0]}, {t[1]}, {t[2]})"),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pred(2), st.sampled_from([16, 32, 48]), st.sampled_from([(96, 96), (40, 96)]))
def test_drawn_mask_functions_plan_exactly(body, tile, lens):
    fn = eval(f"lambda b, h, q, kv: {body}", {"torch": torch, "DOC": DOC})  # noqa: S307 - test grammar
    q, k, _ = qkv(B=2, Hq=2, Lq=lens[0], Lk=lens[1])
    assert_plan_is_mask(sattn.MaskFn(fn), q, k, tile=tile)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pred(1))
def test_drawn_mask_functions_match_the_reference(body):
    fn = eval(f"lambda b, h, q, kv: {body}", {"torch": torch, "DOC": DOC})  # noqa: S307 - test grammar
    q, k, v = qkv(B=1, Hq=2, Lq=96, Lk=96, seed=1)
    assert_outputs(sattn.MaskFn(fn), q, k, v)


def test_span_bounds_are_sound():
    """Interval evaluation never calls a block all-true or all-false wrongly: checked against
    the exact values of every pair on a small grid for each operation."""
    geo = custom.Geometry(1, 1, 50, 50, 7)
    for name, fn in NAMED.items():
        if name in ("numpy_ufuncs", "opaque"):
            continue
        found = custom._analyse(geo, fn, (0, 0), (0, 0))
        assert found is not None, name
        lo, hi, _ = found
        pos = np.arange(50)
        exact = fn(torch.tensor(0), torch.tensor(0), torch.from_numpy(pos)[:, None], torch.from_numpy(pos)[None, :]).numpy()
        for a in range(geo.nqb):
            for c in range(geo.nkb):
                tile = exact[a * 7:(a + 1) * 7, c * 7:(c + 1) * 7]
                assert not lo[a, c] or tile.all(), (name, a, c)
                assert hi[a, c] or not tile.any(), (name, a, c)


flex = pytest.importorskip("torch.nn.attention.flex_attention")


@pytest.mark.parametrize("name", ["causal", "document", "sliding", "per_head_window"])
@pytest.mark.parametrize("block", [16, 32])
def test_flex_block_mask_gives_flex_result(name, block):
    q, k, v = qkv(B=1, Hq=2, Hkv=2)
    H = 2 if name == "per_head_window" else None
    bm = flex.create_block_mask(NAMED[name], None, H, 96, 96, device="cpu", BLOCK_SIZE=block)
    spec = sattn.FlexBlockMask(bm)
    plan = assert_plan_is_mask(spec, q, k)
    assert plan.block == block
    want = flex.flex_attention(q, k, v, block_mask=bm)
    for backend in BACKENDS:
        out = sattn.sparse_attention(q, k, v, spec, backend=backend)
        torch.testing.assert_close(out, want, atol=1e-4, rtol=0)
    # The same mask_mod as a MaskFn plans the same visible pairs.
    np.testing.assert_array_equal(plan.to_dense_mask(), sattn.plan(sattn.MaskFn(NAMED[name]), q, k).to_dense_mask())


def test_flex_block_mask_refusals():
    bm = flex.create_block_mask(NAMED["causal"], None, None, 96, 64, device="cpu", BLOCK_SIZE=32)
    with pytest.raises(ValueError, match=r"^block_mask: expected Q_LEN == KV_LEN"):
        sattn.FlexBlockMask(bm)
    bm = flex.create_block_mask(NAMED["causal"], None, None, 96, 96, device="cpu", BLOCK_SIZE=(32, 16))
    with pytest.raises(ValueError, match=r"^block_mask: expected square blocks"):
        sattn.FlexBlockMask(bm)
    with pytest.raises(TypeError, match=r"^block_mask: expected a torch BlockMask"):
        sattn.FlexBlockMask(object())
    bm = flex.create_block_mask(NAMED["causal"], None, None, 96, 96, device="cpu", BLOCK_SIZE=32)
    q, k, _ = qkv(Lq=64, Lk=64)
    with pytest.raises(ValueError, match=r"^block_mask: built for Q_LEN=KV_LEN=96"):
        sattn.plan(sattn.FlexBlockMask(bm), q, k)


def test_rocc_runs_user_plans():
    if "rocc" not in sattn.backends():
        pytest.skip("the rocc backend is not built here")
    from sattn.backends import rocc
    q, k, v = qkv(Hq=2, Hkv=1, Lq=48, Lk=48, D=16)
    spec = sattn.MaskFn(NAMED["document"]) | sattn.SlidingWindow(window=4)
    ref_out = reference.attention(q, k, v, spec)
    out = sattn.sparse_attention(q, k, v, spec, backend="rocc", tile=16)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=0, atol=rocc.OUT_ATOL_REL * float(v.abs().max()))
