"""The torch.library ops: autograd, fake tensors / torch.compile without graph breaks, dispatch
through sattn.sparse_attention, and the typed errors of the backend."""

import helpers as H  # noqa: I001
import pytest
import torch

import sattn
from sattn_triton import ops

COMPILE_SPECS = [
    sattn.BlockTopK(block=16, keep=0.3, causal=True),       # device planner op + attention op
    sattn.SlidingWindow(window=8, causal=True),              # planless path
    sattn.TopKPerQuery(k=6, causal=False),                   # device bitmap planner
]


@pytest.mark.parametrize("spec", COMPILE_SPECS, ids=str)
def test_torch_compile_fullgraph_forward_and_backward(spec):
    """fullgraph=True fails on any graph break; aot_eager traces the fake impls and autograd
    (inductor would need a C++ compiler on CPU and adds nothing to what is checked here)."""
    q, k, v = H.make_qkv(1, 2, 1, 40, 40, 16, torch.float32, seed=1, requires_grad=True)

    def f(q, k, v):
        out, lse = ops.attention(q, k, v, spec, tile=16)
        return out.square().sum() + torch.where(torch.isinf(lse), 0.0, lse).sum()

    eager = f(q, k, v)
    ge = torch.autograd.grad(eager, (q, k, v))
    torch._dynamo.reset()
    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    comp = cf(q, k, v)
    gc = torch.autograd.grad(comp, (q, k, v))
    assert torch.allclose(eager, comp, rtol=1e-6, atol=1e-6)
    for a, b in zip(ge, gc):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")
def test_torch_compile_bigbird_static_plan_op():
    spec = sattn.BigBird(block=16, causal=True)
    q, k, v = H.make_qkv(1, 2, 2, 48, 48, 16, torch.float32, seed=2, requires_grad=True)
    torch._dynamo.reset()
    cf = torch.compile(lambda q, k, v: ops.attention(q, k, v, spec)[0].sum(), fullgraph=True, backend="aot_eager")
    cf(q, k, v).backward()
    ro, _ = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    out, _ = ops.attention(q, k, v, spec)
    assert H.rel_err(out, ro) < 1e-5 and torch.isfinite(q.grad).all()


def test_opcheck_sparse_attention():
    """torch.library.opcheck: schema, fake (meta) impl and autograd registration agree."""
    q, k, v = H.make_qkv(1, 2, 1, 20, 20, 16, torch.float32, seed=3, requires_grad=True)
    args = (q, k, v, None, None, None, None, None, None, None, [0] * 7, 1, True, 0, 1, 0, False, 0.25)
    torch.library.opcheck(ops.sparse_attention_op, args,
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.parametrize("score_max", [False, True])
def test_fake_plan_ops_predict_output_sizes(score_max):
    q, k, _ = H.make_qkv(2, 2, 1, 30, 70, 16, torch.float32, seed=4)
    real = ops.block_topk_plan_op(q, k, 16, 0.3, 1, 1, True, 0.25, score_max)
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        fq, fk = mode.from_tensor(q), mode.from_tensor(k)
        fake = ops.block_topk_plan_op(fq, fk, 16, 0.3, 1, 1, True, 0.25, score_max)
    assert [tuple(x.shape) for x in real] == [tuple(x.shape) for x in fake]


def test_dispatch_through_sparse_attention():
    spec = sattn.BlockTopK(block=16, keep=0.5, causal=True)
    q, k, v = H.make_qkv(1, 2, 2, 33, 33, 32, torch.float16, seed=5)
    out, lse = sattn.sparse_attention(q, k, v, spec, backend="triton", return_lse=True)
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    assert out.dtype == torch.float16 and out.device == q.device
    assert H.rel_err(out, ro) < H.TOL[torch.float16]["out"] and H.rel_err(lse, rl) < 1e-3
    if H.ON_GPU:
        auto = sattn.sparse_attention(q, k, v, spec)           # backend="auto" picks triton on CUDA
        assert torch.equal(auto, out)


@pytest.mark.parametrize("spec", COMPILE_SPECS, ids=str)
def test_inference_calls_skip_autograd_and_match(spec):
    """Without grad (no_grad, or inputs that need none) attention() calls the implementation
    directly: same values, no autograd node, nothing requires grad."""
    q, k, v = H.make_qkv(1, 2, 1, 40, 40, 16, torch.float32, seed=2, requires_grad=True)
    out, lse = ops.attention(q, k, v, spec, tile=16)
    assert out.grad_fn is not None
    with torch.no_grad():
        out_ng, lse_ng = ops.attention(q, k, v, spec, tile=16)
    plain = [x.detach() for x in (q, k, v)]
    out_nr, lse_nr = ops.attention(*plain, spec, tile=16)
    for o, l in ((out_ng, lse_ng), (out_nr, lse_nr)):
        assert o.grad_fn is None and not o.requires_grad and not l.requires_grad
        assert torch.equal(o, out.detach()) and torch.equal(l, lse.detach())


def test_backend_module_reports_availability():
    from sattn.backends import triton as tb
    ok, reason = tb.available()
    assert ok, reason
    assert tb.NAME == "triton" and tb.TAKES_TORCH


def test_cpu_tensors_are_rejected_without_the_interpreter(monkeypatch):
    q, k, v = (x.cpu() for x in H.make_qkv(1, 1, 1, 16, 16, 16, torch.float32))
    from sattn_triton import common
    monkeypatch.setattr(common, "INTERPRETED", False)   # what a process without the interpreter has
    with pytest.raises(ValueError, match="q: the triton backend needs CUDA tensors, got device 'cpu'"):
        ops.attention(q, k, v, sattn.Dense())


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32])
def test_unsupported_dtype(dtype):
    q = torch.zeros(1, 1, 16, 16, dtype=dtype, device=H.DEVICE)
    with pytest.raises(TypeError, match="q: expected dtype float16, bfloat16 or float32"):
        ops.attention(q, q, q, sattn.Dense())


@pytest.mark.parametrize("D", [8, 40, 512])
def test_unsupported_head_dim(D):
    q = torch.zeros(1, 1, 16, D, device=H.DEVICE)
    with pytest.raises(ValueError, match="q: head_dim must be a multiple of 16"):
        ops.attention(q, q, q, sattn.Dense())


def test_unsupported_block():
    q = torch.zeros(1, 1, 64, 16, device=H.DEVICE)
    with pytest.raises(ValueError, match="block: the triton backend needs a block that is a multiple of 16"):
        ops.attention(q, q, q, sattn.BlockTopK(block=24))


@pytest.mark.parametrize("scale", [0.0, -0.125, float("nan"), float("inf")])
def test_bad_scale(scale):
    q, k, v = H.make_qkv(1, 1, 1, 16, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="scale: expected a finite float > 0"):
        ops.attention(q, k, v, sattn.Dense(), scale=scale)


def test_non_tensor_inputs():
    from sattn.backends import triton as tb
    import numpy as np
    a = np.zeros((1, 1, 16, 16), np.float32)
    with pytest.raises(TypeError, match="q: the triton backend takes torch tensors"):
        tb.attention(a, a, a, sattn.Dense(), scale=0.25, return_lse=False)


def test_unknown_option():
    from sattn.backends import triton as tb
    q, k, v = H.make_qkv(1, 1, 1, 16, 16, 16, torch.float32)
    with pytest.raises(TypeError, match="unknown option"):
        tb.attention(q, k, v, sattn.Dense(), scale=0.25, return_lse=False, vlen=128)


@pytest.mark.parametrize("spec", [
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=6, causal=False, dilation=2, global_tokens=3),
    sattn.SlidingWindow(window=7, causal=True),
    sattn.SlidingWindow(window=5, causal=False),
    sattn.BlockTopK(block=16, keep=0.3, causal=True),
    sattn.BigBird(block=16, causal=False),
], ids=str)
def test_flex_peer_mask_mod_is_the_contract_mask(spec):
    """bench_peers hands FlexAttention this mask_mod: it must express exactly the spec's mask."""
    if isinstance(spec, sattn.BigBird) and not H.has_host_planner():
        pytest.skip("sattn._cc (host planner) not built")
    import numpy as np
    from sattn.backends import triton as tb
    q, k, _ = H.make_qkv(1, 2, 2, 40, 56, 16, torch.float32, seed=6)
    mask_mod, _ = tb.flex_mask_mod(spec, q, k, scale=0.25, tile=16)
    qi = torch.arange(40, device=H.DEVICE)[:, None]
    kj = torch.arange(56, device=H.DEVICE)[None, :]
    got = torch.stack([mask_mod(torch.tensor(0), torch.tensor(h), qi, kj).expand(40, 56) for h in range(2)])
    want = np.asarray(sattn.dense_mask(spec, q.cpu(), k.cpu(), scale=0.25))[0]
    assert np.array_equal(got.cpu().numpy(), want)



@pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")
@pytest.mark.parametrize("spec", [sattn.Dense(causal=True), sattn.BlockTopK(block=16, keep=0.5, causal=True)],
                         ids=str)
def test_varlen_forward_and_backward_match_reference(spec):
    """sattn.varlen_attention's combined plan (documents' edges in bitmaps) on the Triton kernels,
    with an empty-query document, a 1-query document and GQA: float64 autograd over the plan's
    visible set (tests/varlen_test.py checks that set against the per-document contract)."""
    from sattn import varlen as V
    cu_q = torch.tensor([0, 5, 5, 6, 26], dtype=torch.int32)
    cu_k = torch.tensor([0, 17, 21, 37, 57], dtype=torch.int32)
    g = torch.Generator().manual_seed(3)
    q = torch.randn(26, 2, 16, generator=g)
    k, v = (torch.randn(57, 1, 16, generator=g) for _ in range(2))
    plan, layout = V.varlen_plan(spec, q, k, cu_q, cu_k, tile=16)
    x = [t.clone().requires_grad_() for t in (q, k, v)]
    out = sattn.varlen_attention(*x, cu_q, cu_k, spec, backend="triton", plan=(plan, layout))
    out.square().sum().backward()
    r = [H.leaf64(t) for t in (q, k, v)]
    ro, _ = H.reference(layout.place_queries(r[0]), layout.place(r[1]), layout.place(r[2]), spec,
                        mask=plan.to_dense_mask())
    ro = ro[0].transpose(0, 1)[torch.from_numpy(layout.q_dst)]
    ro.square().sum().backward()
    assert H.rel_err(out, ro) < 1e-5
    for a, b in zip(x, r):
        assert H.rel_err(a.grad, b.grad) < 1e-5
