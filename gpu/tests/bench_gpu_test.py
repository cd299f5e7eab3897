"""gpu/bench_gpu.py's sweep choice (no GPU needed): each kernel keeps the plan-prefetch setting
it was fastest under, and the one-launch backward is taken only when it beats the split."""
import os
import sys

import helpers as H  # noqa: F401,I001  (sets TRITON_INTERPRET before Triton is imported)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_gpu as BG  # noqa: E402

FWD_A, FWD_B = (128, 64, 4, 4), (128, 64, 8, 3)
DQ, KV = (128, 32, 8, 3), (64, 128, 8, 2)


def test_each_kernel_keeps_its_own_prefetch_setting():
    # Run 17's numbers: forward fastest without prefetch, dq with it, dk/dv without.
    parts = {"fwd": (2.536, FWD_A, "0"), "dq": (2.901, DQ, "1", "separate"),
             "dkdv": (4.317, KV, "0"), "fused": (7.39, DQ + KV, "1")}
    best = BG.choose_sweep(parts)
    assert best["prefetch"] == "dq"
    assert best["fwd"] == FWD_A and best["bwd"] == DQ + KV and best["delta"] == "separate"
    assert not best["fused"]
    assert abs(best["cost_ms"] - (2.536 + 2.901 + 4.317)) < 1e-9


def test_fused_backward_wins_only_below_the_split():
    parts = {"fwd": (2.6, FWD_B, "1"), "dq": (2.9, DQ, "0", "fused"), "dkdv": (4.3, KV, "1"),
             "fused": (7.0, DQ + KV, "1")}
    best = BG.choose_sweep(parts)
    assert best["fused"] and best["bwd"] == DQ + KV and best["delta"] == "separate"
    assert best["prefetch"] == "fwd,fused"          # dq/dk/dv settings do not apply to the fused launch
    assert abs(best["cost_ms"] - 9.6) < 1e-9
    none_ahead = dict(parts, fwd=(2.6, FWD_B, "0"), fused=(7.0, DQ + KV, "0"))
    assert BG.choose_sweep(none_ahead)["prefetch"] == "0"


def test_missing_part_gives_no_choice():
    assert BG.choose_sweep({"fwd": (2.5, FWD_A, "0")}) is None
    assert BG.choose_sweep({}) is None


def test_walk_loops_sweep_names_each_kernels_loop_structure():
    # The sliding sweep's knob: each kernel keeps the planless loop structure it was fastest with.
    parts = {"fwd": (0.78, FWD_B, "3"), "dq": (0.95, DQ, "1", "fused"), "dkdv": (1.30, KV, "2"),
             "fused": (2.4, DQ + KV, "1")}
    best = BG.choose_sweep(parts, "SATTN_WALK_LOOPS")
    assert best["walk_loops"] == "fwd=3,dq=1,dkdv=2" and best["prefetch"] == "0" and not best["fused"]
    fused = BG.choose_sweep(dict(parts, fused=(2.0, DQ + KV, "2")), "SATTN_WALK_LOOPS")
    assert fused["fused"] and fused["walk_loops"] == "fwd=3,dq=2,dkdv=2"


def test_unswept_cases_keep_the_callers_settings(monkeypatch):
    # An A/B run such as SATTN_WALK_LOOPS=3 must reach the cases the sweep did not tune.
    monkeypatch.setattr(BG, "CALLER_ENV", {"SATTN_WALK_LOOPS": "3"})
    monkeypatch.setattr(BG, "BEST", {"static": None})
    monkeypatch.setenv("SATTN_FWD_TILES", "64,64,4,3")       # left over from another case's sweep
    BG.use_tiles("sliding")
    assert os.environ.get("SATTN_WALK_LOOPS") == "3" and "SATTN_FWD_TILES" not in os.environ
    best = {"fwd": (64, 64, 4, 3), "bwd": DQ + KV, "delta": "fused", "fused": False, "prefetch": "0",
            "walk_loops": "fwd=2,dq=1,dkdv=2"}
    monkeypatch.setattr(BG, "BEST", {"sliding": best})
    BG.use_tiles("sliding")
    assert os.environ["SATTN_WALK_LOOPS"] == "fwd=2,dq=1,dkdv=2"
    assert os.environ["SATTN_FWD_TILES"] == "64,64,4,3"
    for name in BG.TUNED_ENV:      # use_tiles wrote os.environ itself, not through monkeypatch
        os.environ.pop(name, None)
