"""MLIR path end to end: compiled cases.mlir functions under QEMU vs the float64 reference.

Each case mirrors a function of cases.mlir (same spec, shape and scale). The problem file
carries the host planner's plan; "spec" cases plan inside the generated code (constant plans
folded at compile time, data-dependent ones through the run-time planner call), the "plan"
case consumes the file's plan.
"""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import sattn
from sattn import _cc, reference
from sattn import specs as S

QEMU_CPU = "rv64,v=true,vext_spec=v1.0,vlen=256,elen=64"

# name: (spec, (B, Hq, Hkv, Lq, Lk, D), scale or None, tile)
CASES = {
    "dense_causal_gqa": (S.Dense(causal=True), (1, 4, 2, 100, 100, 32), None, 64),
    "sliding_ragged": (S.SlidingWindow(window=16, causal=True, dilation=2, global_tokens=3),
                       (1, 2, 1, 80, 130, 36), None, 64),
    "block_topk_causal": (S.BlockTopK(block=32, keep=0.25, causal=True), (2, 2, 1, 256, 256, 64), None, 64),
    "bigbird": (S.BigBird(block=16, window_blocks=3, global_blocks=1, random_blocks=2, seed=7),
                (1, 2, 2, 96, 96, 16), None, 64),
    "topk_per_query": (S.TopKPerQuery(k=8), (1, 1, 1, 64, 64, 16), None, 16),
    "decode_dense": (S.Dense(causal=False), (1, 2, 1, 1, 77, 8), 0.5, 64),
    "plan_block_topk": (S.BlockTopK(block=64, keep=0.25, causal=True), (1, 2, 1, 192, 192, 64), 0.125, 64),
}

# fp32 accumulation in a different order than the float64 judge; exp is a polynomial approximation.
ATOL, RTOL = 2e-5, 2e-4


def _runfile(name):
    base = os.environ.get("TEST_SRCDIR", "")
    ws = os.environ.get("TEST_WORKSPACE", "sattn")
    path = os.path.join(base, ws, "mlir", "e2e", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: not in runfiles ({path}); run under bazel test")
    return path


def _qemu():
    q = os.environ.get("SATTN_QEMU_RISCV64") or shutil.which("qemu-riscv64")
    if not q:
        pytest.fail("qemu-riscv64 not found: install qemu-user (tools/setup.sh)")
    return q


def _inputs(shape, seed):
    B, Hq, Hkv, Lq, Lk, D = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    return q, k, v


def run_case(runner, name, seed=0):
    spec, shape, scale, tile = CASES[name]
    q, k, v = _inputs(shape, seed)
    D = shape[5]
    scale_used = scale if scale is not None else 1.0 / np.sqrt(D)
    plan = sattn.plan(spec, q, k, tile=tile, scale=scale_used, threads=1)
    blob = _cc.serialize_problem(spec.to_fields(), shape, float(scale_used), q, k, v, plan.to_dict())
    with tempfile.TemporaryDirectory() as d:
        pin, pout = os.path.join(d, "p.bin"), os.path.join(d, "r.bin")
        with open(pin, "wb") as f:
            f.write(blob)
        proc = subprocess.run([_qemu(), "-cpu", QEMU_CPU, _runfile(runner), "--case", name, "--problem", pin,
                               "--result", pout], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{runner} {name}: exit {proc.returncode}\n{proc.stderr}"
        with open(pout, "rb") as f:
            out, _lse, counters = _cc.parse_result(f.read())
    ref = reference.attention(q, k, v, spec, scale=scale_used)
    return out, ref, counters, plan


@pytest.mark.parametrize("runner", ["runner_fused_riscv64", "runner_unfused_riscv64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference(runner, name):
    out, ref, counters, plan = run_case(runner, name)
    assert out.shape == ref.shape
    assert np.all(np.isfinite(out))
    err = np.abs(out.astype(np.float64) - ref)
    bound = ATOL + RTOL * np.abs(ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), f"{name}: max error {err.max():.3g} at {worst} (ref {ref[worst]:.6g})"
    assert counters["plan_nnz"] == plan.nnz


def test_empty_rows_are_zero():
    # Sliding window with dilation: the reference has rows whose only keys are far away; with
    # global tokens every row sees key 0, so use the causal decode case's complement: a fully
    # masked row exists iff the reference row is exactly zero; the compiled one must be too.
    out, ref, _, _ = run_case("runner_fused_riscv64", "sliding_ragged", seed=1)
    zero_rows = np.all(ref == 0.0, axis=-1)
    assert np.array_equal(np.all(out == 0.0, axis=-1), zero_rows)


def test_unknown_case_is_a_usage_error():
    proc = subprocess.run([_qemu(), "-cpu", QEMU_CPU, _runfile("runner_fused_riscv64"), "--case", "nope",
                           "--problem", "x", "--result", "y"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown case 'nope'" in proc.stderr
