"""The cpu backend against the float64 reference on every spec, edge cases and random shapes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import sattn
from tests.contract_suite import EDGE_CASES, all_specs, check_backend, make_inputs, problems


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_edge_cases_every_spec(case, dtype):
    _, B, Hq, Hkv, Lq, Lk, D, block = case
    q, k, v = make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype)
    for spec in all_specs(Lk, block):
        check_backend("cpu", spec, q, k, v)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(dtypes=("float32", "bfloat16")))
def test_random_problems(problem):
    spec, (B, Hq, Hkv, Lq, Lk, D), dtype, seed = problem
    check_backend("cpu", spec, *make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype, seed))


def test_numpy_inputs_and_custom_scale():
    q, k, v = (x.numpy() for x in make_inputs(1, 2, 1, 30, 30, 16))
    check_backend("cpu", sattn.BlockTopK(block=8, keep=0.5, causal=True), q, k, v, scale=0.3)


def test_empty_rows_give_zeros_and_neg_inf_lse():
    # No spec of the contract leaves a row empty on its own (causal rows see themselves), so
    # hand the kernel a plan with no entries at all.
    q, k, v = make_inputs(1, 1, 1, 8, 8, 16)
    plan = sattn.plan(sattn.Dense(), q, k, tile=4)
    empty_plan = sattn.BlockPlan(**{**plan.to_dict(), "row_ptr": np.zeros_like(plan.row_ptr),
                                    "col_idx": plan.col_idx[:0], "mask_idx": plan.mask_idx[:0]})
    from sattn.backends import cpu
    res = cpu.attention(q, k, v, sattn.Dense(), scale=0.25, return_lse=True, plan=empty_plan)
    np.testing.assert_array_equal(np.asarray(res.out), 0.0)
    assert np.isneginf(res.lse).all()


def test_plan_for_another_shape_is_rejected():
    q, k, v = make_inputs(1, 2, 2, 16, 16, 16)
    other = sattn.plan(sattn.Dense(), *make_inputs(1, 2, 2, 8, 8, 16)[:2])
    from sattn.backends import cpu
    with pytest.raises(ValueError, match="plan: built for"):
        cpu.attention(q, k, v, sattn.Dense(), scale=0.25, return_lse=False, plan=other)


def test_float16_inputs_computed_in_float32_returned_as_float16():
    q, k, v = make_inputs(1, 1, 1, 12, 12, 16, "float16")
    check_backend("cpu", sattn.SlidingWindow(window=4, causal=True), q, k, v)
