"""gpu/bench_gpu.py's pure parts (no GPU needed): the sliding-window pair count its FLOP figures
use, and a command line that names every case."""
import os
import sys

import helpers as H  # noqa: F401,I001  (sets TRITON_INTERPRET before Triton is imported)
import numpy as np
import pytest
import sattn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_gpu as BG  # noqa: E402


@pytest.mark.parametrize("L,window", [(1, 1), (10, 3), (64, 64), (50, 80), (300, 17)])
def test_sliding_window_pair_count_equals_the_contract_mask(L, window):
    x = np.zeros((1, 1, L, 16), np.float32)
    mask = sattn.dense_mask(sattn.SlidingWindow(window=window, causal=True), x, x)
    assert BG.sw_pairs(L, window) == int(mask.sum())


def test_help_names_every_case(capsys):
    with pytest.raises(SystemExit) as done:
        BG.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for case in ("static_block_sparse", "sliding_window", "block_topk_e2e", "dense", "decode", "timeline"):
        assert case in text
