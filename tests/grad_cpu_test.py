"""Gradients of the cpu backend (fp32 kernels, cc/cpu/attention_backward.cc) against float64
autograd of the masked softmax, and what the one differentiable op promises on the CPU:
gradcheck, torch.compile(fullgraph=True) of forward and backward, determinism."""
import numpy as np
import pytest
import torch

import sattn
from sattn.backends import cpu
from tests import grad_cases
from tests.contract_suite import make_inputs
from tests.grad_suite import check_gradients, gradients

test_edge_cases_every_spec = grad_cases.edge_cases_every_spec("cpu", ["float32", "bfloat16", "float16"])
test_random_problems = grad_cases.random_problems("cpu", ("float32", "bfloat16"), 30)
test_empty_rows = grad_cases.empty_rows("cpu")
test_noncontiguous_and_expanded_inputs = grad_cases.layouts("cpu")


def test_auto_is_cpu_and_differentiable():
    q, k, v = make_inputs(1, 4, 2, 20, 33, 16)
    check_gradients("auto", sattn.BlockTopK(block=8, keep=0.5, causal=True), q, k, v)


def test_gradcheck_float64_inputs():
    # cpu computes in fp32 whatever the input dtype: central differences with eps = 1e-3 see fp32
    # rounding of ~1e-7 / 1e-3 = 1e-4 in the numerical Jacobian, so atol = rtol = 2e-3. A wrong
    # gradient is off by O(1).
    q, k, v = (x.requires_grad_() for x in make_inputs(1, 2, 1, 9, 13, 8, "float64", seed=2))
    spec = sattn.SlidingWindow(window=4, causal=True, global_tokens=1)
    def f(q, k, v):
        return sattn.sparse_attention(q, k, v, spec, backend="cpu", return_lse=True)
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-3, atol=2e-3, rtol=2e-3)


def _loss(q, k, v):
    out, lse = sattn.sparse_attention(q, k, v, sattn.BlockTopK(block=8, keep=0.5, causal=True), backend="cpu",
                                      return_lse=True)
    return (out * out).sum() + lse.sum()


def _compiled_matches_eager(backend):
    q, k, v = (x.requires_grad_() for x in make_inputs(1, 4, 2, 40, 40, 16))
    _loss(q, k, v).backward()
    want = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    torch._dynamo.reset()
    loss = torch.compile(_loss, fullgraph=True, backend=backend)(q, k, v)  # a graph break is an error
    loss.backward()   # runs the backward graph AOTAutograd compiled for the same capture
    torch.testing.assert_close(loss, _loss(q.detach(), k.detach(), v.detach()))
    for x, w in zip((q, k, v), want):
        torch.testing.assert_close(x.grad, w, atol=1e-6, rtol=1e-6)


def test_compile_fullgraph_captures_forward_and_backward_ops():
    from functorch.compile import make_boxed_func
    from torch._functorch.aot_autograd import aot_module_simplified
    graphs = []

    def recording(gm, example_inputs):
        def keep(kind):
            def compiler(g, _):
                graphs.append((kind, str(g.graph)))
                return make_boxed_func(g.forward)
            return compiler
        return aot_module_simplified(gm, example_inputs, fw_compiler=keep("fw"), bw_compiler=keep("bw"))

    _compiled_matches_eager(recording)
    assert [kind for kind, _ in graphs] == ["fw", "bw"]          # one graph each way: no break
    assert "sattn.host_attention.default" in graphs[0][1]
    assert "sattn.host_attention_backward.default" in graphs[1][1]


def test_compile_fullgraph_inductor():
    _compiled_matches_eager("inductor")


def test_deterministic_for_any_thread_count():
    q, k, v = make_inputs(1, 4, 2, 200, 200, 32, seed=9)
    spec = sattn.BlockTopK(block=16, keep=0.5)
    ref = gradients("cpu", spec, q, k, v, threads=1)[2:5]
    for threads in (2, 3):
        got = gradients("cpu", spec, q, k, v, threads=threads)[2:5]
        for a, b in zip(got, ref):
            assert torch.equal(a, b)


def test_backend_without_backward_raises_only_when_a_gradient_is_needed(monkeypatch):
    monkeypatch.delattr(cpu, "attention_backward")
    q, k, v = make_inputs(1, 2, 2, 8, 8, 8)
    spec = sattn.Dense(causal=True)
    sattn.sparse_attention(q, k, v, spec, backend="cpu")              # no input requires grad
    qg = q.clone().requires_grad_()
    with torch.no_grad():
        sattn.sparse_attention(qg, k, v, spec, backend="cpu")         # grad mode off
    with pytest.raises(sattn.GradientNotSupported, match=r"^q: requires_grad=True, but the cpu backend has no "
                                                         r"backward for Dense\(causal=True\)"):
        sattn.sparse_attention(qg, k, v, spec, backend="cpu")


def test_nonfinite_rows_policy():
    # docs/contract.md, "Gradients", rule 4: a NaN in q row 3 and an inf in key 10 poison the rows
    # that see them (dq NaN, dk/dv of what they see NaN); every other contribution is the one of
    # the same inputs with those values set to 0. Judged against the reference backend.
    q, k, v = make_inputs(1, 1, 1, 16, 16, 8, seed=6)
    q[0, 0, 3, 2] = float("nan")
    k[0, 0, 10, 1] = float("inf")
    spec = sattn.SlidingWindow(window=3)
    got = gradients("cpu", spec, q, k, v)
    ref = gradients("reference", spec, q.double(), k.double(), v.double())
    for name, g, r in zip(("dq", "dk", "dv"), got[2:5], ref[2:5]):
        g, r = g.double(), r
        assert torch.equal(torch.isnan(g), torch.isnan(r)), name
        ok = ~torch.isnan(r)
        assert (g[ok] - r[ok]).abs().max() <= 2e-5, name
    dq = got[2][0, 0]
    assert torch.isnan(dq[3]).all() and torch.isnan(dq[8:13]).all() and torch.isfinite(dq[[0, 1, 5, 6, 14, 15]]).all()


def test_numpy_inputs_do_not_import_torch():
    import subprocess
    import sys
    code = ("import sys, numpy as np, sattn\n"
            "q = np.random.default_rng(0).standard_normal((1, 1, 8, 4)).astype(np.float32)\n"
            "out = sattn.sparse_attention(q, q, q, sattn.Dense(), backend='cpu')\n"
            "assert isinstance(out, np.ndarray) and 'torch' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ})
