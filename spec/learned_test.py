"""sattn.MoBA and sattn.NSA against their float64 references (sattn.learned_reference, written
from the papers' equations): plans, outputs and gradients on the cpu and reference backends
(gradcheck on tiny float64 shapes), GQA, causal and not, ragged lengths, Lq != Lk; the same on
CUDA through Triton where a GPU is present; and the refusals."""
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import sattn
from sattn import learned, learned_reference as R


def qkv(B, Hq, Hkv, Lq, Lk, D=8, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, L, D, generator=g, dtype=dtype).to(device)
                 for H, L in ((Hq, Lq), (Hkv, Lk), (Hkv, Lk)))


def grads(fn, q, k, v, extra=()):
    """Output and d(out . g)/d(q, k, v, *extra) of fn on fresh leaves (g fixed per shape)."""
    leaves = [x.detach().clone().requires_grad_() for x in (q, k, v) + tuple(extra)]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out.device, out.dtype)
    gs = torch.autograd.grad((out * g).sum(), leaves, allow_unused=True)
    return out.detach(), tuple(torch.zeros_like(x) if d is None else d for x, d in zip(leaves, gs))


def assert_close(a, b, tol, what):
    err = (a.double().cpu() - b.double().cpu()).abs().max().item()
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:.3g}"


# ---- MoBA -----------------------------------------------------------------------------------

def test_moba_defaults_are_the_papers():
    assert sattn.MoBA() == sattn.MoBA(block=512, topk=3, causal=True)
    assert hash(sattn.MoBA(block=64)) == hash(sattn.MoBA(block=64)) and sattn.MoBA(topk=2) != sattn.MoBA()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 2), st.sampled_from([(1, 1), (2, 1), (4, 2)]), st.integers(1, 90), st.integers(0, 40),
       st.sampled_from([4, 8, 16, 24]), st.integers(1, 4), st.booleans(), st.sampled_from([8, 16, 64]),
       st.integers(0, 100))
def test_moba_plan_is_the_papers_selection(B, heads, Lk, short, block, topk, causal, tile, seed):
    """The plan's visible pairs equal the reference's mask (Eq. 5-6 with the causal rule), for
    ragged lengths, Lq <= Lk, GQA, any tile (the plan block is gcd(block, tile))."""
    Hq, Hkv = heads
    Lq = max(1, Lk - short)
    q, k, _ = qkv(B, Hq, Hkv, Lq, Lk, seed=seed)
    spec = sattn.MoBA(block=block, topk=topk, causal=causal)
    plan = sattn.plan(spec, q, k, tile=tile)
    plan.validate()
    assert plan.block == np.gcd(block, tile)
    np.testing.assert_array_equal(plan.to_dense_mask(), R.moba_mask(spec, q, k))
    np.testing.assert_array_equal(sattn.dense_mask(spec, q, k).numpy(), R.moba_mask(spec, q, k))


def test_moba_numpy_and_torch_choose_alike():
    q, k, _ = qkv(2, 4, 2, 70, 100)
    spec = sattn.MoBA(block=16, topk=3)
    np.testing.assert_array_equal(learned.moba_choice(spec, q.numpy(), k.numpy()), learned.moba_choice(spec, q, k))
    a = sattn.plan(spec, q.numpy(), k.numpy(), tile=16)
    np.testing.assert_array_equal(a.to_dense_mask(), sattn.plan(spec, q, k, tile=16).to_dense_mask())


def test_moba_selects_what_the_gate_says():
    """A constructed case: block 2 carries the keys aligned with q, so the gate picks it."""
    B, H, L, D, blk = 1, 1, 64, 4, 8
    q = torch.zeros(B, H, L, D, dtype=torch.float64)
    q[..., 0] = 1.0
    k = torch.zeros(B, H, L, D, dtype=torch.float64)
    k[:, :, 2 * blk:3 * blk, 0] = 5.0
    plan = sattn.plan(sattn.MoBA(block=blk, topk=2), q, k, tile=blk)
    m = plan.to_dense_mask()[0, 0]
    p = L - 1
    seen = set(np.flatnonzero(m[p]) // blk)
    assert seen == {2, p // blk}


@pytest.mark.parametrize("shape, spec", [
    ((1, 2, 1, 100, 100), sattn.MoBA(block=16, topk=3)),
    ((2, 4, 2, 37, 101), sattn.MoBA(block=16, topk=2)),                  # Lq < Lk, GQA, ragged
    ((1, 2, 2, 50, 50), sattn.MoBA(block=8, topk=3, causal=False)),
    ((1, 2, 1, 64, 64), sattn.MoBA()),                                   # the paper's block > L
])
@pytest.mark.parametrize("backend, tol", [("cpu", 2e-5), ("reference", 1e-12)])
def test_moba_output_and_gradients(shape, spec, backend, tol):
    q, k, v = qkv(*shape)
    out, g = grads(lambda q, k, v: sattn.sparse_attention(q, k, v, spec, backend=backend, tile=16), q, k, v)
    ref, gr = grads(lambda q, k, v: R.moba_attention(q, k, v, spec), q, k, v)
    assert_close(out, ref, tol, f"{spec} out on {backend}")
    for name, a, b in zip("qkv", g, gr):
        assert_close(a, b, tol, f"{spec} d{name} on {backend}")


@pytest.mark.parametrize("shape, spec", [
    ((1, 2, 1, 100, 100), sattn.MoBA(block=16, topk=3)),
    ((2, 4, 2, 37, 101), sattn.MoBA(block=16, topk=2)),
    ((1, 2, 2, 50, 50), sattn.MoBA(block=8, topk=3, causal=False)),
    ((1, 2, 1, 64, 64), sattn.MoBA()),
])
@pytest.mark.parametrize("backend, tol", [("cpu", 2e-5), ("reference", 1e-12)])
def test_moba_gathered_form(shape, spec, backend, tol):
    """sattn.moba_attention (rows gathered by block, merged by LSE) gives the reference too."""
    q, k, v = qkv(*shape)
    out, g = grads(lambda q, k, v: sattn.moba_attention(q, k, v, spec, backend=backend), q, k, v)
    ref, gr = grads(lambda q, k, v: R.moba_attention(q, k, v, spec), q, k, v)
    assert_close(out, ref, tol, f"{spec} gathered out on {backend}")
    for name, a, b in zip("qkv", g, gr):
        assert_close(a, b, tol, f"{spec} gathered d{name} on {backend}")


def test_moba_gradcheck():
    q, k, v = (x.requires_grad_() for x in qkv(1, 2, 1, 20, 24, D=4, seed=3))
    spec = sattn.MoBA(block=4, topk=2)
    assert torch.autograd.gradcheck(lambda q, k, v: sattn.sparse_attention(q, k, v, spec, backend="reference"),
                                    (q, k, v), eps=1e-6, atol=1e-8, fast_mode=True)


def test_moba_composes():
    q, k, _ = qkv(1, 2, 1, 64, 64)
    doc = torch.arange(64) // 20
    same_doc = sattn.MaskFn(lambda b, h, qi, kv: doc[qi] == doc[kv])
    spec = sattn.MoBA(block=16, topk=2) & same_doc
    want = R.moba_mask(sattn.MoBA(block=16, topk=2), q, k) & (doc[:, None] == doc[None, :]).numpy()
    np.testing.assert_array_equal(sattn.plan(spec, q, k, tile=16).to_dense_mask(), want)


def test_moba_refusals():
    with pytest.raises(ValueError, match="block: expected an integer >= 1"):
        sattn.MoBA(block=0)
    with pytest.raises(TypeError, match="topk: expected an integer"):
        sattn.MoBA(topk=1.5)
    with pytest.raises(TypeError, match="causal: expected a bool"):
        sattn.MoBA(causal=1)
    q, k, _ = qkv(1, 1, 1, 32, 32)
    with pytest.raises(ValueError, match="tile: MoBA"):
        sattn.plan(sattn.MoBA(block=24) | sattn.BlockTopK(block=16), q, k)


# ---- NSA ------------------------------------------------------------------------------------

def small_nsa(D=8, seed=0, **cfg):
    torch.manual_seed(seed)
    m = sattn.NSA(D, **cfg).double()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m


def nsa_vs_reference(m, q, k, v, backend, gates=None):
    """(out, ref, (dq, dk, dv), their references, {param: (grad, reference grad)}) for one cotangent."""
    ref_params = m.reference_params()
    names = list(ref_params)
    out, g = grads(lambda q, k, v: m(q, k, v, gates=gates, backend=backend), q, k, v)
    m.zero_grad()
    out2 = m(q, k, v, gates=gates, backend=backend)
    cot = torch.randn(out2.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out2.device, out2.dtype)
    (out2 * cot).sum().backward()
    pg = [torch.zeros_like(p) if p.grad is None else p.grad for p in ref_params.values()]
    ref, gr = grads(lambda q, k, v, *ps: R.nsa_attention(q, k, v, dict(zip(names, ps)), gates=gates, **m.config()),
                    *(x.detach().cpu().double() for x in (q, k, v)),
                    [p.detach().cpu().double() for p in ref_params.values()])
    return out, ref, g, gr[:3], {n: (a, b) for n, a, b in zip(names, pg, gr[3:])}


def test_nsa_defaults_are_the_papers():
    m = sattn.NSA(64)
    assert m.config() == {"l": 32, "d": 16, "l_sel": 64, "n_sel": 16, "window": 512}


@pytest.mark.parametrize("shape, cfg", [
    ((1, 4, 2, 70, 70), dict(block_cmp=8, stride=4, block_sel=8, n_sel=4, window=10)),     # GQA
    ((2, 2, 1, 33, 77), dict(block_cmp=8, stride=4, block_sel=16, n_sel=3, window=20)),    # Lq < Lk, ragged
    ((1, 2, 2, 50, 50), dict(block_cmp=4, stride=4, block_sel=4, n_sel=5, window=7)),      # l = d = l'
    ((1, 2, 1, 130, 130), dict(block_cmp=32, stride=16, block_sel=64, n_sel=16, window=512)),  # paper's
    ((1, 2, 1, 20, 20), dict()),                                          # shorter than l: no compressed token
])
@pytest.mark.parametrize("backend, tol", [("cpu", 2e-5), ("reference", 1e-11)])
def test_nsa_output_and_gradients(shape, cfg, backend, tol):
    m = small_nsa(**cfg)
    q, k, v = qkv(*shape)
    out, ref, g, gr, pg = nsa_vs_reference(m, q, k, v, backend)
    assert_close(out, ref, tol, f"NSA out on {backend}")
    for name, a, b in zip("qkv", g, gr):
        assert_close(a, b, tol, f"NSA d{name} on {backend}")
    for name, (a, b) in pg.items():
        assert_close(a, b, tol * 10, f"NSA d{name} on {backend}")


def test_nsa_selected_branch_alone():
    """Gates (0, 1, 0): the output is the selected branch, so the plan's choice is checked by
    itself (a wrong block would not hide behind the other two branches)."""
    m = small_nsa(block_cmp=8, stride=4, block_sel=8, n_sel=3, window=4)
    q, k, v = qkv(1, 4, 1, 96, 96, seed=5)
    gates = torch.zeros(1, 4, 96, 3, dtype=torch.float64)
    gates[..., 1] = 1
    out, ref, *_ = nsa_vs_reference(m, q, k, v, "reference", gates=gates)
    assert_close(out, ref, 1e-12, "NSA selected branch")


def test_nsa_gradcheck():
    m = small_nsa(D=4, block_cmp=4, stride=2, block_sel=4, n_sel=3, window=6)
    q, k, v = (x.requires_grad_() for x in qkv(1, 2, 1, 22, 22, D=4, seed=2))
    assert torch.autograd.gradcheck(lambda q, k, v: m(q, k, v, backend="reference"), (q, k, v), eps=1e-6, atol=1e-8,
                                    fast_mode=True)


def test_nsa_refusals():
    with pytest.raises(ValueError, match="n_sel: expected an integer >= 3"):
        sattn.NSA(8, n_sel=2)
    with pytest.raises(TypeError, match="stride: expected an integer"):
        sattn.NSA(8, stride=2.0)
    m = sattn.NSA(8, block_cmp=4, stride=4, block_sel=4)
    q, k, v = qkv(1, 1, 1, 16, 16, D=8, dtype=torch.float32)
    with pytest.raises(ValueError, match="head dim D=8"):
        m(q[..., :4], k[..., :4], v[..., :4])
    with pytest.raises(ValueError, match="gates: expected a tensor of shape"):
        m(q, k, v, gates=torch.zeros(1, 1, 16, 2))
    with pytest.raises(TypeError, match="q: sattn.NSA takes torch tensors"):
        m(q.numpy(), k, v)


# ---- the example of docs/specs.md --------------------------------------------------------------

def test_docs_example_runs():
    here = os.path.join(os.environ.get("TEST_SRCDIR", ""), "sattn", "docs", "specs.md")
    path = here if os.path.exists(here) else os.path.join(os.path.dirname(__file__), "..", "docs", "specs.md")
    with open(path) as f:
        text = f.read()
    section = re.search(r"<!-- learned:example -->(.*?)<!-- /learned:example -->", text, re.S).group(1)
    code = re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)
    assert code, "docs/specs.md: no python block in the learned-selection example"
    namespace = {"__name__": "__docs__"}
    for block in code:
        exec(compile(block, "docs/specs.md#learned", "exec"), namespace)
    assert namespace["q"].grad is not None and namespace["out"].shape == (1, 4, 512, 64)


# ---- CUDA (Triton) --------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available() or "triton" not in sattn.backends(),
                          reason="needs a CUDA GPU with the triton backend")


@cuda
def test_moba_on_cuda():
    q, k, v = qkv(1, 4, 2, 1000, 1000, D=64, dtype=torch.float32, device="cuda")
    spec = sattn.MoBA(block=128, topk=3)
    out, g = grads(lambda q, k, v: sattn.sparse_attention(q, k, v, spec), q, k, v)
    ref, gr = grads(lambda q, k, v: R.moba_attention(q, k, v, spec), *(x.cpu().double() for x in (q, k, v)))
    assert_close(out, ref, 1e-3, "MoBA out on cuda")
    for name, a, b in zip("qkv", g, gr):
        assert_close(a, b, 2e-3, f"MoBA d{name} on cuda")


@cuda
def test_nsa_on_cuda():
    m = small_nsa(D=64, block_cmp=32, stride=16, block_sel=64, n_sel=4, window=128)
    q, k, v = qkv(1, 4, 1, 700, 700, D=64, dtype=torch.float64)
    out_ref, _, g_ref, *_ = nsa_vs_reference(m, q, k, v, "reference")
    mc = m.float().cuda()
    out, g = grads(lambda q, k, v: mc(q, k, v), *(x.float().cuda() for x in (q, k, v)))
    assert_close(out, out_ref, 1e-3, "NSA out on cuda")
    for name, a, b in zip("qkv", g, g_ref):
        assert_close(a, b, 2e-3, f"NSA d{name} on cuda")
