"""Gradient cases shared by the per-backend gradient tests (tests/grad_*_test.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import sattn
from tests.contract_suite import EDGE_CASES, all_specs, make_inputs, problems
from tests.grad_suite import check_gradients


def edge_cases_every_spec(backend, dtypes):
    @pytest.mark.parametrize("dtype", dtypes)
    @pytest.mark.parametrize("case", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
    def test(case, dtype):
        _, B, Hq, Hkv, Lq, Lk, D, block = case
        q, k, v = make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype)
        for spec in all_specs(Lk, block):
            check_gradients(backend, spec, q, k, v)
    return test


def random_problems(backend, dtypes, examples):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(problems(max_L=64, dims=(16, 32, 20), dtypes=dtypes))
    def test(problem):
        spec, (B, Hq, Hkv, Lq, Lk, D), dtype, seed = problem
        q, k, v = make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype, seed)
        check_gradients(backend, spec, q, k, v, with_lse=seed % 2 == 0)
    return test


def empty_rows(backend):
    def test():
        # No spec leaves a row empty on its own: a Dense plan with every other query block's
        # entries removed does.
        q, k, v = make_inputs(1, 2, 1, 24, 24, 16, seed=3)
        plan = sattn.plan(sattn.Dense(), q, k, tile=4)
        d = plan.to_dict()
        keep = np.repeat(np.arange(plan.rows) % 2 == 0, np.diff(plan.row_ptr))
        counts = np.diff(plan.row_ptr) * (np.arange(plan.rows) % 2 == 0)
        holey = sattn.BlockPlan(**{**d, "row_ptr": np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
                                   "col_idx": plan.col_idx[keep], "mask_idx": plan.mask_idx[keep]})
        mask = holey.to_dense_mask()
        assert (~mask.any(-1)).any() and mask.any()
        check_gradients(backend, sattn.Dense(), q, k, v, plan=holey, mask=mask)
        # Their dq is exactly zero, and keys nobody sees get zero dk, dv.
        from tests.grad_suite import gradients
        _, lse, dq, dk, dv, _, _ = gradients(backend, sattn.Dense(), q, k, v, plan=holey)
        empty = torch.as_tensor(~mask.any(-1))
        assert torch.isneginf(lse[empty]).all() and (dq[empty] == 0).all()
    return test


def layouts(backend):
    def test():
        # Non-contiguous q (a transposed (B, L, H, D) tensor) and k, v expanded from one kv head
        # (stride 0): gradients flow back through the view and the broadcast.
        g = torch.Generator().manual_seed(5)
        qt = torch.randn(1, 30, 4, 16, generator=g, requires_grad=True)
        k1 = torch.randn(1, 1, 30, 16, generator=g, requires_grad=True)
        v1 = torch.randn(1, 1, 30, 16, generator=g, requires_grad=True)
        spec = sattn.SlidingWindow(window=7, causal=True)
        q, k, v = qt.transpose(1, 2), k1.expand(1, 4, 30, 16), v1.expand(1, 4, 30, 16)
        assert not q.is_contiguous() and k.stride(1) == 0
        out = sattn.sparse_attention(q, k, v, spec, backend=backend)
        dout = torch.randn(out.shape, generator=g)
        grads = torch.autograd.grad(out, (qt, k1, v1), dout)
        mask = sattn.mask.dense_mask_numpy(spec, q.detach(), k.detach())
        from tests.grad_suite import judge
        ref_q, ref_k, ref_v = judge(q, k1, v1, mask, dout)[2:]   # GQA 4:1 in the judge
        for got, ref in zip(grads, (ref_q.transpose(1, 2), ref_k, ref_v)):
            assert (got.double() - ref).abs().max() <= 2e-5
    return test
