"""The MLIR backward (sattn.attention_grad) end to end vs a float64 backward.

grad_cases.mlir goes through sattn-opt --sattn-rvv-pipeline (64-lane fused build for VLEN >= 256,
8-lane unfused build for any VLEN, vector-length-agnostic build), mlir-translate and clang for
riscv64 and runs under qemu-riscv64 via mlir_runner. The forward's out and lse come from the
float64 reference on the plan's visible set (rounded to float32, as a float32 forward hands them
over); dq, dk, dv are judged against the float64 backward of the masked softmax on the same inputs.
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

# name: (spec, (B, Hq, Hkv, Lq, Lk, D), scale or None, tile)
CASES = {
    "grad_dense_causal_gqa": (S.Dense(causal=True), (1, 4, 2, 40, 40, 32), None, 16),
    "grad_sliding_ragged": (S.SlidingWindow(window=8, causal=True, dilation=2, global_tokens=2),
                            (1, 2, 1, 24, 50, 20), None, 16),
    "grad_block_topk": (S.BlockTopK(block=32, keep=0.34, causal=True), (2, 2, 1, 96, 96, 64), 0.2, 64),
    "grad_plan_block_topk": (S.BlockTopK(block=32, keep=0.25, causal=True), (1, 2, 1, 128, 128, 64), 0.125, 64),
}

RUNNER_VLENS = [("grad_fused_riscv64", 256), ("grad_fused_riscv64", 512), ("grad_unfused_riscv64", 128),
                ("grad_vla_riscv64", 128), ("grad_vla_riscv64", 256), ("grad_vla_riscv64", 512)]

# float32 accumulation in another order than the float64 judge, exp a polynomial (rel. < 2e-7);
# gradients sum up to Lk terms of size ~1, hence a looser bound than the forward's.
ATOL, RTOL = 1e-4, 1e-3


def _runfile(name):
    path = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "sattn"), "mlir", "e2e",
                        name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: not in runfiles ({path}); run under bazel test")
    return path


def _qemu():
    q = os.environ.get("SATTN_QEMU_RISCV64") or shutil.which("qemu-riscv64")
    if not q:
        pytest.fail("qemu-riscv64 not found: install qemu-user (tools/setup.sh)")
    return q


def backward64(q, k, v, out, lse, dout, mask, scale):
    """float64 dq, dk, dv of softmax(scale q k^T on mask) v, from the forward's out and lse."""
    q, k, v, out, lse, dout = (np.asarray(x, np.float64) for x in (q, k, v, out, lse, dout))
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    g = Hq // Hkv
    kr, vr = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = scale * np.einsum("bhqd,bhkd->bhqk", q, kr)
    seen = np.isfinite(lse)[..., None] & mask
    p = np.where(seen, np.exp(np.where(seen, s - np.where(np.isfinite(lse), lse, 0)[..., None], 0)), 0.0)
    delta = np.einsum("bhqd,bhqd->bhq", dout, out)
    ds = p * (np.einsum("bhqd,bhkd->bhqk", dout, vr) - delta[..., None])
    dq = scale * np.einsum("bhqk,bhkd->bhqd", ds, kr)
    dk = scale * np.einsum("bhqk,bhqd->bhkd", ds, q).reshape(B, Hkv, g, Lk, D).sum(axis=2)
    dv = np.einsum("bhqk,bhqd->bhkd", p, dout).reshape(B, Hkv, g, Lk, D).sum(axis=2)
    return dq, dk, dv


def run_grad(runner, name, vlen, seed=0, edit_plan=None):
    spec, shape, scale, tile = CASES[name]
    B, Hq, Hkv, Lq, Lk, D = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    dout = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    scale = scale if scale is not None else 1.0 / np.sqrt(D)
    plan = sattn.plan(spec, q, k, tile=tile, scale=scale, threads=1)
    if edit_plan is not None:
        plan = edit_plan(plan)
    mask = plan.to_dense_mask()
    out, lse = reference.attention(q, k, v, spec, scale=scale, return_lse=True, mask=mask)
    out32, lse32 = out.astype(np.float32), lse.astype(np.float32)
    blob = _cc.serialize_problem(spec.to_fields(), shape, float(scale), q, k, v, plan.to_dict())
    with tempfile.TemporaryDirectory() as d:
        pin, gin, gout = (os.path.join(d, n) for n in ("p.bin", "g.bin", "o.bin"))
        with open(pin, "wb") as f:
            f.write(blob)
        with open(gin, "wb") as f:
            f.write(np.concatenate([out32.ravel(), lse32.ravel(), dout.ravel()]).astype("<f4").tobytes())
        cpu = f"rv64,v=true,vext_spec=v1.0,vlen={vlen},elen=64"
        proc = subprocess.run([_qemu(), "-cpu", cpu, _runfile(runner), "--case", name, "--problem", pin, "--grad", gin,
                               "--grad-out", gout], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{runner} {name}: exit {proc.returncode}\n{proc.stderr}"
        g = np.fromfile(gout, dtype="<f4")
    nq, nk = B * Hq * Lq * D, B * Hkv * Lk * D
    assert g.size == nq + 2 * nk
    got = (g[:nq].reshape(q.shape), g[nq:nq + nk].reshape(k.shape), g[nq + nk:].reshape(v.shape))
    ref = backward64(q, k, v, out32, lse32, dout, mask, scale)
    return got, ref, mask


def _check(name, got, ref):
    for what, x, r in zip(("dq", "dk", "dv"), got, ref):
        assert np.all(np.isfinite(x)), f"{name}: {what} has non-finite values"
        err = np.abs(x.astype(np.float64) - r)
        bound = ATOL + RTOL * np.abs(r)
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        assert np.all(err <= bound), f"{name}: {what} max error {err.max():.3g} at {worst} (ref {r[worst]:.6g})"
        assert np.max(np.abs(r)) > 0.1  # not vacuous


@pytest.mark.parametrize("runner, vlen", RUNNER_VLENS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_grad_matches_float64(runner, vlen, name):
    got, ref, _ = run_grad(runner, name, vlen)
    _check(name, got, ref)


def test_rows_without_keys_get_zero_gradients():
    # Empty plan row 0 (query block 0 of head 0): those queries see nothing, lse = -inf, and the
    # contract gives them zero dq; keys they alone would have touched get no dk/dv from them.
    def drop_row0(plan):
        d = plan.to_dict()
        n0 = int(d["row_ptr"][1])
        d["col_idx"], d["mask_idx"] = d["col_idx"][n0:], d["mask_idx"][n0:]
        d["row_ptr"] = np.concatenate([[0], d["row_ptr"][1:] - n0]).astype(np.int32)
        edited = sattn.BlockPlan.from_dict(d)
        edited.validate()
        return edited

    got, ref, mask = run_grad("grad_fused_riscv64", "grad_plan_block_topk", 256, seed=3, edit_plan=drop_row0)
    assert not mask[0, 0, :32].any()
    assert np.all(got[0][0, 0, :32] == 0.0)
    assert np.any(got[0][0, 1, :32] != 0.0)
    _check("grad_plan_block_topk (row 0 emptied)", got, ref)
