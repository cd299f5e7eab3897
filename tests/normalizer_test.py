"""The softmax-free normalizers (docs/contract.md, "Normalizers"): each backend that runs them
against a float64 torch judge written from the contract's formulas alone, forward and backward,
and the typed refusals."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import sattn
from sattn import normalizers as N
from sattn.reference import NORMALIZER_TOLERANCES

SPECS = [
    sattn.Dense(),
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=3, causal=True, global_tokens=1),
    sattn.BlockTopK(block=8, keep=0.3, causal=True),
    sattn.BigBird(block=4, window_blocks=1, global_blocks=0, random_blocks=1),
    sattn.TopKPerQuery(k=5),
]


def judge(q, k, v, mask, normalizer, dout, scale=None):
    """float64 (out, dq, dk, dv): the contract's formula in plain torch, differentiated by autograd."""
    q, k, v = (x.detach().to(torch.float64).requires_grad_() for x in (q, k, v))
    mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    group = q.shape[1] // k.shape[1]
    kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    Lk = k.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ kr.transpose(-1, -2)) * scale
    if normalizer == "sigmoid":
        w = torch.sigmoid(s - math.log(Lk))
    else:
        w = torch.relu(s) ** 2 / Lk
    out = w.masked_fill(~mask, 0.0) @ vr
    (out * dout.to(torch.float64)).sum().backward()
    return out.detach(), q.grad, k.grad, v.grad


def inputs(B, Hq, Hkv, Lq, Lk, D, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, Lq, D, generator=g).to(dtype)
    k = torch.randn(B, Hkv, Lk, D, generator=g).to(dtype)
    v = torch.randn(B, Hkv, Lk, D, generator=g).to(dtype)
    return q, k, v


def check(backend, spec, normalizer, q, k, v, *, grad=True, **options):
    """Asserts out (and dq, dk, dv) of `backend` match the judge within NORMALIZER_TOLERANCES."""
    dtype = str(q.dtype).removeprefix("torch.")
    tol_out, tol_grad = NORMALIZER_TOLERANCES[dtype]
    leaves = [x.detach().clone().requires_grad_(grad) for x in (q, k, v)]
    out = sattn.sparse_attention(*leaves, spec, backend=backend, normalizer=normalizer, **options)
    assert out.dtype == q.dtype and out.shape == q.shape
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    mask = sattn.dense_mask(spec, q, k)
    ref, *ref_grads = judge(q, k, v, mask, normalizer, dout)
    err = (out.double() - ref).abs().max().item()
    assert err <= tol_out, f"{backend} {normalizer} {spec} out: {err:.3g} > {tol_out}"
    if not grad:
        return
    grads = torch.autograd.grad(out, leaves, dout)
    for name, g, r in zip("qkv", grads, ref_grads):
        assert g.dtype == q.dtype
        e = (g.double() - r).abs().max().item()
        assert e <= tol_grad, f"{backend} {normalizer} {spec} d{name}: {e:.3g} > {tol_grad}"


@pytest.mark.parametrize("normalizer", ["sigmoid", "relu2"])
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_reference_matches_the_formula(spec, normalizer):
    q, k, v = inputs(1, 4, 2, 21, 29, 8, torch.float64, seed=3)
    check("reference", spec, normalizer, q, k, v)


def test_empty_rows_give_zero_and_no_gradient():
    # A mask function that hides every key from the even rows.
    spec = sattn.MaskFn(lambda b, h, i, j: (i % 2 == 1) & (j <= i))
    q, k, v = inputs(1, 2, 1, 12, 12, 8, torch.float64, seed=4)
    for normalizer in ("sigmoid", "relu2"):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out = sattn.sparse_attention(*leaves, spec, backend="reference", normalizer=normalizer)
        assert (out[:, :, 0::2] == 0).all()
        dq, = torch.autograd.grad(out.sum(), leaves[:1])
        assert (dq[:, :, 0::2] == 0).all()


def test_nonfinite_rows_are_poisoned_the_rest_untouched():
    q, k, v = inputs(1, 2, 1, 10, 10, 8, torch.float64, seed=5)
    q[0, 0, 6, 2] = float("nan")
    spec = sattn.Dense(causal=True)
    for normalizer in ("sigmoid", "relu2"):
        out = sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer=normalizer)
        assert torch.isnan(out[0, 0, 6]).all()
        clean = q.clone()
        clean[0, 0, 6] = 0
        ref = sattn.sparse_attention(clean, k, v, spec, backend="reference", normalizer=normalizer)
        rest = torch.ones(out.shape[:3], dtype=torch.bool)
        rest[0, 0, 6] = False
        assert torch.equal(out[rest], ref[rest])


def test_softmax_is_the_default_and_unchanged():
    q, k, v = inputs(1, 2, 2, 9, 9, 8, torch.float64, seed=6)
    spec = sattn.Dense(causal=True)
    a = sattn.sparse_attention(q, k, v, spec, backend="reference")
    b = sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer="softmax")
    assert torch.equal(a, b)


def test_refusals_are_typed_and_named():
    q, k, v = inputs(1, 2, 2, 8, 8, 8, torch.float32, seed=7)
    spec = sattn.Dense()
    with pytest.raises(sattn.NormalizerNotSupported, match="return_lse"):
        sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer="sigmoid", return_lse=True)
    for backend in [b for b in sattn.api._backends.KNOWN if b not in N.BACKENDS]:
        with pytest.raises(sattn.NormalizerNotSupported, match=f"backend: '{backend}'"):
            sattn.sparse_attention(q, k, v, spec, backend=backend, normalizer="relu2")
    with pytest.raises(sattn.NormalizerNotSupported, match="quant"):
        sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer="relu2",
                               quant=sattn.Quant(qk="int8", pv="bf16"))
    with pytest.raises(ValueError, match="normalizer: expected one of"):
        sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer="softmax1")
    with pytest.raises(TypeError, match="normalizer"):
        sattn.sparse_attention(q, k, v, spec, backend="reference", normalizer=None)
    # numpy inputs take the same path
    with pytest.raises(sattn.NormalizerNotSupported, match="return_lse"):
        sattn.sparse_attention(q.numpy(), k.numpy(), v.numpy(), spec, backend="reference", normalizer="relu2",
                               return_lse=True)
    assert N.sigmoid_bias(8) == -math.log(8)


@pytest.mark.parametrize("normalizer", ["sigmoid", "relu2"])
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_cpu_matches_the_formula(spec, normalizer):
    q, k, v = inputs(1, 4, 2, 21, 29, 16, torch.float32, seed=8)
    check("cpu", spec, normalizer, q, k, v, tile=8)


@pytest.mark.parametrize("normalizer", ["sigmoid", "relu2"])
def test_cpu_bfloat16_and_decode(normalizer):
    q, k, v = inputs(2, 4, 1, 1, 77, 24, torch.bfloat16, seed=9)
    check("cpu", sattn.Dense(causal=True), normalizer, q, k, v)
    q, k, v = inputs(1, 2, 2, 65, 130, 64, torch.float32, seed=10)
    check("cpu", sattn.BlockTopK(block=16, keep=0.4, causal=True), normalizer, q, k, v, threads=2)


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 2), group=st.sampled_from([1, 2, 4]), Hkv=st.integers(1, 2), Lk=st.integers(1, 70),
       lq_frac=st.floats(0.01, 1.0), D=st.sampled_from([3, 8, 16, 20, 64]),
       causal=st.booleans(), window=st.integers(1, 40), normalizer=st.sampled_from(["sigmoid", "relu2"]),
       tile=st.sampled_from([4, 16, 64]), seed=st.integers(0, 2**16))
def test_cpu_random_shapes(B, group, Hkv, Lk, lq_frac, D, causal, window, normalizer, tile, seed):
    Lq = max(1, int(round(lq_frac * Lk)))
    q, k, v = inputs(B, Hkv * group, Hkv, Lq, Lk, D, torch.float32, seed=seed)
    spec = sattn.SlidingWindow(window=window, causal=causal)
    check("cpu", spec, normalizer, q, k, v, tile=tile)


def test_cpu_empty_rows_nonfinite_and_numpy():
    spec = sattn.MaskFn(lambda b, h, i, j: (i % 2 == 1) & (j <= i))
    q, k, v = inputs(1, 2, 1, 12, 12, 8, torch.float32, seed=11)
    for normalizer in ("sigmoid", "relu2"):
        check("cpu", spec, normalizer, q, k, v)
        out = sattn.sparse_attention(q, k, v, spec, backend="cpu", normalizer=normalizer)
        assert (out[:, :, 0::2] == 0).all()
        bad = q.clone()
        bad[0, 1, 5, 0] = float("inf")
        out = sattn.sparse_attention(bad, k, v, spec, backend="cpu", normalizer=normalizer)
        assert torch.isnan(out[0, 1, 5]).all() and not torch.isnan(out[0, 0]).any()
        ref = sattn.sparse_attention(q.numpy(), k.numpy(), v.numpy(), spec, backend="reference",
                                     normalizer=normalizer)
        got = sattn.sparse_attention(q.numpy(), k.numpy(), v.numpy(), spec, backend="cpu", normalizer=normalizer)
        assert isinstance(got, np.ndarray) and np.abs(got - ref).max() <= NORMALIZER_TOLERANCES["float32"][0]


def test_cpu_relu2_refuses_overflowing_scores():
    q, k, v = inputs(1, 1, 1, 4, 4, 8, torch.float32, seed=12)
    with pytest.raises(ValueError, match="scale: normalizer='relu2'"):
        sattn.sparse_attention(q * 1e10, k * 1e10, v, sattn.Dense(), backend="cpu", normalizer="relu2")


@pytest.mark.parametrize("normalizer", ["sigmoid", "relu2"])
def test_cpu_key_split_decode(normalizer):
    # One (b, h, query block) item and two threads: the kernel splits the keys and merges slices.
    q, k, v = inputs(1, 1, 1, 1, 700, 32, torch.float32, seed=13)
    check("cpu", sattn.Dense(causal=True), normalizer, q, k, v, threads=2)


def test_cpu_compiles_fullgraph():
    q, k, v = (x.requires_grad_() for x in inputs(1, 2, 1, 16, 16, 8, torch.float32, seed=14))
    spec = sattn.SlidingWindow(window=4, causal=True)

    def loss(q, k, v):
        return sattn.sparse_attention(q, k, v, spec, backend="cpu", normalizer="sigmoid").square().sum()

    compiled = torch.compile(loss, fullgraph=True, backend="eager")
    got = torch.autograd.grad(compiled(q, k, v), (q, k, v))
    want = torch.autograd.grad(loss(q, k, v), (q, k, v))
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gradients_of_a_poisoned_row(backend):
    # docs/contract.md, "Gradients" rule 4: the poisoned row's dq is NaN, and dk, dv of the keys it
    # sees; every other contribution as if the NaN were 0.
    q, k, v = inputs(1, 1, 1, 6, 6, 8, torch.float32, seed=15)
    q[0, 0, 3, 1] = float("nan")
    spec = sattn.Dense(causal=True)
    for normalizer in ("sigmoid", "relu2"):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out = sattn.sparse_attention(*leaves, spec, backend=backend, normalizer=normalizer)
        dq, dk, dv = torch.autograd.grad(out, leaves, torch.ones_like(out))
        assert torch.isnan(dq[0, 0, 3]).all() and not torch.isnan(dq[0, 0, [0, 1, 2, 4, 5]]).any()
        assert torch.isnan(dk[0, 0, :4]).all() and not torch.isnan(dk[0, 0, 4:]).any()
        assert torch.isnan(dv[0, 0, :4]).all() and not torch.isnan(dv[0, 0, 4:]).any()
