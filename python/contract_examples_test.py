"""The worked examples of docs/contract.md, checked against the reference mask and the planner."""
import numpy as np
import pytest

import sattn


def rows(text):
    return np.array([[c == "1" for c in line.split()] for line in text.strip().splitlines()])


def qk(Lq, Lk, qv=None, kv=None):
    q = np.zeros((1, 1, Lq, 1), np.float32) if qv is None else np.array(qv, np.float32).reshape(1, 1, Lq, 1)
    k = np.zeros((1, 1, Lk, 1), np.float32) if kv is None else np.array(kv, np.float32).reshape(1, 1, Lk, 1)
    return q, k


def blocks_to_mask(kept_by_row, block, L):
    m = np.zeros((L, L), bool)
    for a, kept in enumerate(kept_by_row):
        for c in kept:
            m[a * block:(a + 1) * block, c * block:(c + 1) * block] = True
    return m


BT_Q = [1, 1, -1, -1, 2, 0, 0.5, 0.5]
BT_K = [0, 2, 1, 1, -1, -3, 3, 1]

EXAMPLES = [
    (sattn.Dense(causal=True), qk(2, 4), rows("1 1 1 0\n1 1 1 1")),
    (sattn.SlidingWindow(window=2), qk(5, 5), rows("""
        1 1 0 0 0
        1 1 1 0 0
        0 1 1 1 0
        0 0 1 1 1
        0 0 0 1 1""")),
    (sattn.SlidingWindow(window=2, causal=True, dilation=2, global_tokens=1), qk(6, 6), rows("""
        1 0 0 0 0 0
        1 1 0 0 0 0
        1 0 1 0 0 0
        1 1 0 1 0 0
        1 0 1 0 1 0
        1 0 0 1 0 1""")),
    (sattn.BlockTopK(block=2, keep=0.5, global_blocks=0, local_blocks=1), qk(8, 8, BT_Q, BT_K),
     blocks_to_mask([{0, 3}, {1, 2}, {2, 3}, {0, 3}], 2, 8)),
    (sattn.BigBird(block=2, window_blocks=1, global_blocks=0, random_blocks=1, seed=0), qk(8, 8),
     blocks_to_mask([{0, 2}, {1, 2}, {1, 2}, {2, 3}], 2, 8)),
    (sattn.TopKPerQuery(k=2), qk(4, 4, [1, -1, 2, 0], [1, 3, -2, 3]), rows("""
        0 1 0 1
        1 0 1 0
        0 1 0 1
        1 1 0 0""")),
]


@pytest.mark.parametrize("spec,inputs,expected", EXAMPLES, ids=[str(e[0]) for e in EXAMPLES])
def test_reference_mask_matches_worked_example(spec, inputs, expected):
    q, k = inputs
    np.testing.assert_array_equal(sattn.dense_mask(spec, q, k)[0, 0], expected)


@pytest.mark.parametrize("spec,inputs,expected", EXAMPLES, ids=[str(e[0]) for e in EXAMPLES])
def test_planner_matches_worked_example(spec, inputs, expected):
    q, k = inputs
    np.testing.assert_array_equal(sattn.plan(spec, q, k, tile=2).to_dense_mask()[0, 0], expected)


def test_bigbird_generator_pinned_values():
    from sattn.mask import bigbird_mix
    from sattn import _cc
    assert bigbird_mix(0, 0, 0) == 0xE220A8397B1DCDAF
    for args in [(0, 1, 0), (0, 2, 0), (0, 3, 0), (12345, 77, 3), (2**64 - 1, 2**20, 9)]:
        assert bigbird_mix(*args) == _cc.bigbird_mix(*args)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
