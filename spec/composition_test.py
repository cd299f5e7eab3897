"""`|`, `&` and PerHead: the laws on visible pairs, plans equal to the composed masks, outputs
against the float64 reference, and the refusals."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import sattn
from sattn import reference

DOC = torch.repeat_interleave(torch.arange(4), torch.tensor([20, 33, 3, 24]))  # 80 positions


def qkv(B=1, Hq=2, Hkv=1, Lq=80, Lk=80, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Hq, Lq, D, generator=g), torch.randn(B, Hkv, Lk, D, generator=g),
            torch.randn(B, Hkv, Lk, D, generator=g))


def visible(spec, q, k, tile=16):
    plan = sattn.plan(spec, q, k, tile=tile)
    plan.validate()
    m = plan.to_dense_mask()
    np.testing.assert_array_equal(m, sattn.dense_mask(spec, q, k).numpy(), err_msg=repr(spec))
    return m


document = sattn.MaskFn(lambda b, h, q, kv: DOC[q] == DOC[kv])
prefix = sattn.MaskFn(lambda b, h, q, kv: kv < 12)
SPECS = [
    sattn.Dense(), sattn.Dense(causal=True), sattn.SlidingWindow(window=5), sattn.SlidingWindow(window=3, dilation=2,
                                                                                                  causal=True),
    sattn.BlockTopK(block=16, keep=0.3), sattn.BigBird(block=16, random_blocks=1), sattn.TopKPerQuery(k=5),
    document, prefix, sattn.FromMask(np.random.default_rng(0).random((80, 80)) < 0.2),
]
spec_st = st.sampled_from(SPECS)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_st, spec_st, spec_st)
def test_laws(a, b, c):
    q, k, _ = qkv()
    A, B, C = (visible(s, q, k) for s in (a, b, c))
    full = np.ones_like(A)
    np.testing.assert_array_equal(visible(a | a, q, k), A)                     # A | A = A
    np.testing.assert_array_equal(visible(a & a, q, k), A)                     # A & A = A
    np.testing.assert_array_equal(visible(a & sattn.Dense(), q, k), A)         # A & Dense = A
    np.testing.assert_array_equal(visible(a | sattn.Dense(), q, k), full)      # A | Dense = Dense
    np.testing.assert_array_equal(visible(a | b, q, k), A | B)
    np.testing.assert_array_equal(visible(a & b, q, k), A & B)
    np.testing.assert_array_equal(visible(b | a, q, k), visible(a | b, q, k))
    np.testing.assert_array_equal(visible((a | b) & c, q, k), (A | B) & C)
    np.testing.assert_array_equal(visible(a & (b | c), q, k), visible((a & b) | (a & c), q, k))


def test_structure():
    a, b, c = SPECS[2], document, prefix
    assert (a | b | c) == sattn.Union(a, b, c) and len((a | b | c).parts) == 3
    assert (a & b) != (a | b)
    assert hash(a | b) == hash(sattn.Union(a, b))


@pytest.mark.parametrize("spec", [
    sattn.SlidingWindow(window=6, causal=True) | prefix,             # prefix-LM with a local window
    document & sattn.Dense(causal=True),                             # packed documents, causal
    document & sattn.BlockTopK(block=16, keep=0.5, causal=True),     # a selection inside documents
    sattn.PerHead([sattn.SlidingWindow(window=4, causal=True), sattn.SlidingWindow(window=16, causal=True),
                   sattn.SlidingWindow(window=64, causal=True), sattn.Dense(causal=True)]),
    sattn.PerHead([document, prefix, sattn.TopKPerQuery(k=3), sattn.BigBird(block=16)]) & sattn.Dense(causal=True),
])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_outputs_match_the_reference(spec, backend):
    q, k, v = qkv(B=2, Hq=4, Hkv=2)
    visible(spec, q, k)
    ref_out, ref_lse = reference.attention(q, k, v, spec, return_lse=True)
    out, lse = sattn.sparse_attention(q, k, v, spec, backend=backend, return_lse=True)
    np.testing.assert_allclose(out.numpy(), ref_out, atol=1e-4)
    np.testing.assert_allclose(lse.numpy(), ref_lse, atol=1e-4)
    plan = sattn.plan(spec, q, k)
    out2 = sattn.sparse_attention(q, k, v, spec, backend=backend, plan=plan)
    torch.testing.assert_close(out2, out, atol=1e-6, rtol=0)


def test_per_head_windows_plan_per_head():
    q, k, _ = qkv(Hq=3)
    spec = sattn.PerHead([sattn.SlidingWindow(window=w) for w in (2, 8, 30)])
    plan = sattn.plan(spec, q, k)
    assert plan.plan_h == 3 and plan.plan_b == 1
    m = visible(spec, q, k)
    for h, w in enumerate((2, 8, 30)):
        np.testing.assert_array_equal(m[0, h], sattn.dense_mask(sattn.SlidingWindow(window=w), q[:, :1], k).numpy()[0, 0])


def test_refusals():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"^spec: PerHead has 3 specs for Hq=2"):
        sattn.plan(sattn.PerHead([sattn.Dense()] * 3), q, k)
    with pytest.raises(ValueError, match=r"different blocks \[16, 32\]"):
        sattn.plan(sattn.BlockTopK(block=16) | sattn.BigBird(block=32), q, k)
    with pytest.raises(TypeError, match=r"^Union part 1: expected a sattn spec"):
        sattn.Union(sattn.Dense(), "causal")
    with pytest.raises(TypeError, match=r"^specs\[0\]: expected a spec instance"):
        sattn.PerHead([sattn.Dense])
    with pytest.raises(TypeError):
        sattn.Dense() | 3
    plan = sattn.plan(document | prefix, q, k)
    with pytest.raises(ValueError, match=r"^plan: built for"):
        sattn.sparse_attention(q, k, v, document & prefix, backend="cpu", plan=plan)
