"""Gradients of the reference backend against float64 autograd of the masked softmax."""
import torch

import sattn
from tests import grad_cases
from tests.contract_suite import make_inputs
from tests.grad_suite import check_gradients

test_edge_cases_every_spec = grad_cases.edge_cases_every_spec("reference", ["float64", "float32"])
test_random_problems = grad_cases.random_problems("reference", ("float64", "float32"), 25)
test_empty_rows = grad_cases.empty_rows("reference")
test_noncontiguous_and_expanded_inputs = grad_cases.layouts("reference")


def test_gradcheck_float64():
    # The reference computes float64 inputs in float64: torch's default gradcheck tolerances.
    q, k, v = (x.requires_grad_() for x in make_inputs(1, 2, 1, 9, 11, 4, "float64", seed=2))
    for spec in (sattn.Dense(causal=True), sattn.SlidingWindow(window=3, dilation=2, global_tokens=1)):
        def out_of(q, k, v):
            return sattn.sparse_attention(q, k, v, spec, backend="reference")

        def lse_of(q, k, v):
            return sattn.sparse_attention(q, k, v, spec, backend="reference", return_lse=True)[1]
        assert torch.autograd.gradcheck(out_of, (q, k, v))
        # lse is float32 by contract: central differences see its rounding (~1e-7 / eps).
        assert torch.autograd.gradcheck(lse_of, (q, k, v), eps=1e-3, atol=5e-4, rtol=1e-3)


def test_gradcheck_float64_fixed_selection():
    # BlockTopK's selection is piecewise constant in q, k: gradcheck it with the plan fixed.
    q, k, v = (x.requires_grad_() for x in make_inputs(1, 2, 2, 12, 12, 4, "float64", seed=4))
    spec = sattn.BlockTopK(block=3, keep=0.5, causal=True)
    plan = sattn.plan(spec, q.detach(), k.detach())
    assert torch.autograd.gradcheck(
        lambda q, k, v: sattn.sparse_attention(q, k, v, spec, backend="reference", plan=plan), (q, k, v))


def test_dlse_only():
    q, k, v = make_inputs(1, 2, 2, 10, 10, 8, "float64")
    check_gradients("reference", sattn.Dense(causal=True), q, k, v)
