"""The cpu backend's quantized forward (cc/cpu/kernel_int8.inc) against the float64 model
sattn.quant.attention and against float64 attention (docs/contract.md, "Quantization"), on every
kernel set this CPU runs (AVX-512 VNNI, AVX2, portable)."""
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

import sattn
from sattn import quant as Q
from sattn import reference
from sattn.backends import cpu

ISAS = [isa for isa in cpu.QUANT_ISAS
        if isa == "portable" or isa == cpu.quant_isa() or (isa == "avx2" and cpu.quant_isa() == "avx512_vnni")]

# Against the model: what the kernel's own float32 arithmetic adds (fp32 P.V), or that plus the
# few P values whose bf16 rounding lands the other way after float32 exp2 (bf16 P.V).
MODEL_TOL = {"fp32": 2e-5, "bf16": 2e-3}
SCHEMES = [sattn.Quant(qk="int8", pv="fp32", granularity="block"),
           sattn.Quant(qk="int8", pv="bf16", granularity="block"),
           sattn.Quant(qk="int8", pv="bf16", granularity="token"),
           sattn.Quant(qk="int8", pv="bf16", granularity="channel"),
           sattn.Quant(qk="int8", pv="bf16", v="int8", granularity="token"),
           sattn.Quant(qk="int8", pv="fp32", v="int8", granularity="block", smooth_k=False, block=32),
           sattn.Quant(qk="int8", pv="bf16", v="int4", granularity="token")]


def qkv(B, Hq, Hkv, Lq, Lk, D, seed=0, amp=1.0):
    r = np.random.default_rng(seed)
    q = amp * r.standard_normal((B, Hq, Lq, D))
    k = amp * r.standard_normal((B, Hkv, Lk, D))
    v = amp * r.standard_normal((B, Hkv, Lk, D))
    return tuple(x.astype(np.float32) for x in (q, k, v))


def check(q, k, v, spec, quant, scales=None, isa=None, f64_budget=True):
    res = cpu.quantized_attention(q, k, v, spec, quant=quant, scales=scales, scale=None, isa=isa)
    want, want_lse = Q.attention(q, k, v, spec, quant, scales=scales, return_lse=True)
    vmax = float(np.abs(v).max())
    err = np.abs(res.out - want).max() / vmax
    assert err <= MODEL_TOL[quant.pv], (quant, isa, err)
    empty = np.isneginf(want_lse)
    assert (np.isneginf(res.lse) == empty).all()
    assert np.abs(np.where(empty, 0.0, res.lse - want_lse)).max() <= 1e-4
    assert not np.any(res.out[empty])  # rows that see nothing are zeros
    if f64_budget:
        f64 = np.abs(res.out - reference.attention(q, k, v, spec)).max() / vmax
        assert f64 <= Q.error_budget(quant), (quant, isa, f64)
    return res


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("quant", SCHEMES, ids=lambda qt: f"{qt.pv}-{qt.granularity}-v{qt.v}-s{int(qt.smooth_k)}")
def test_every_scheme_on_the_contract_shape(isa, quant):
    # the shape and inputs of the contract's budget table: Dense causal, N(0, 1)
    q, k, v = qkv(1, 4, 2, 512, 512, 64)
    check(q, k, v, sattn.Dense(causal=True), quant, isa=isa)


SPECS = [sattn.Dense(), sattn.Dense(causal=True), sattn.SlidingWindow(window=24, causal=True),
         sattn.SlidingWindow(window=40, dilation=2, global_tokens=3), sattn.BlockTopK(block=32, keep=0.3),
         sattn.BlockTopK(block=16, keep=0.5, causal=True), sattn.BigBird(block=16, window_blocks=1, random_blocks=1),
         sattn.TopKPerQuery(k=9)]


@settings(max_examples=30, deadline=None)
@given(spec=st.sampled_from(SPECS), quant=st.sampled_from(SCHEMES[:6]), isa=st.sampled_from(ISAS),
       B=st.integers(1, 2), Hkv=st.integers(1, 2), group=st.sampled_from([1, 2, 3]), Lk=st.integers(1, 150),
       dq=st.integers(0, 150), D=st.sampled_from([1, 7, 16, 33, 64, 80]), seed=st.integers(0, 2**31 - 1),
       static=st.booleans())
def test_hypothesis_shapes_match_the_model(spec, quant, isa, B, Hkv, group, Lk, dq, D, seed, static):
    # ragged L (Lq < Lk: the last Lq positions), GQA, D not a multiple of 4 or of the lanes
    block = getattr(spec, "block", None)
    assume(block is None or block <= Lk)  # a spec's block may not exceed Lk (sattn.plan.check_block_fits)
    Lq = max(1, Lk - dq)
    q, k, v = qkv(B, Hkv * group, Hkv, Lq, Lk, D, seed=seed)
    scales = sattn.calibrate([qkv(B, Hkv * group, Hkv, Lq, Lk, D, seed=seed + 1)], quant, "max") if static else None
    check(q, k, v, spec, quant, scales=scales, isa=isa, f64_budget=False)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("method", ["max", "percentile", "kl"])
def test_static_scales_on_outlier_inputs(isa, method):
    quant = sattn.Quant(qk="int8", pv="bf16", v="int8", granularity="token")
    cal = [tuple(x.astype(np.float32) for x in Q.synthetic("outlier", 1.0, (1, 4, 2, 256, 64), seed=s))
           for s in (1, 2)]
    scales = sattn.calibrate(cal, quant, method)
    q, k, v = (x.astype(np.float32) for x in Q.synthetic("outlier", 1.0, (1, 4, 2, 256, 64), seed=0))
    check(q, k, v, sattn.Dense(causal=True), quant, scales=scales, isa=isa, f64_budget=False)


def test_decode_splits_keys_and_matches():
    # Lq = 1 against a long cache: the key-split path (threads > items) and its LSE merge
    q, k, v = qkv(1, 2, 1, 1, 3000, 128, seed=3)
    quant = sattn.Quant(qk="int8", pv="bf16", v="int8", granularity="token")
    res = cpu.quantized_attention(q, k, v, sattn.Dense(), quant=quant, scale=None, threads=4)
    want = Q.attention(q, k, v, sattn.Dense(), quant)
    assert np.abs(res.out - want).max() / np.abs(v).max() <= MODEL_TOL["bf16"]


def test_through_sparse_attention_with_torch_and_scales_file(tmp_path):
    quant = sattn.Quant(qk="int8", pv="bf16", granularity="block")
    q, k, v = (torch.from_numpy(x) for x in qkv(1, 4, 2, 100, 100, 32))
    scales = sattn.calibrate([(q, k, v)], quant, "percentile")
    scales.save(tmp_path / "s.json")
    loaded = sattn.load_scales(tmp_path / "s.json", quant, shape=(4, 2, 32))
    out, lse = sattn.sparse_attention(q, k, v, sattn.Dense(causal=True), backend="cpu", quant=quant,
                                      scales=loaded, return_lse=True)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    want = Q.attention(q, k, v, sattn.Dense(causal=True), quant, scales=scales)
    assert np.abs(out.numpy() - want).max() / float(v.abs().max()) <= MODEL_TOL["bf16"]
    bf = sattn.sparse_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), sattn.Dense(), backend="cpu", quant=quant)
    assert bf.dtype == torch.bfloat16


@pytest.mark.parametrize("field,quant", [("qk", sattn.Quant(qk="fp8_e4m3")), ("pv", sattn.Quant(pv="fp8_e4m3"))])
def test_schemes_the_cpu_cannot_run_name_the_field(field, quant):
    q, k, v = qkv(1, 1, 1, 8, 8, 8)
    with pytest.raises(sattn.QuantNotSupported, match=f"quant.{field}"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="cpu", quant=quant)


@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_non_finite_inputs_are_named(name):
    q, k, v = qkv(1, 2, 1, 20, 20, 8)
    x = {"q": q, "k": k, "v": v}[name]
    x[0, 0, 3, 1] = np.nan
    with pytest.raises(ValueError, match=f"^{name}: quantized attention takes finite values"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="cpu", quant=sattn.Quant(v="int8"))


def test_bad_options_and_mismatched_scales():
    q, k, v = qkv(1, 2, 1, 20, 20, 8)
    quant = sattn.Quant()
    with pytest.raises(TypeError, match="is_causal"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="cpu", quant=quant, is_causal=True)
    with pytest.raises(ValueError, match="isa"):
        cpu.quantized_attention(q, k, v, sattn.Dense(), quant=quant, scale=None, isa="sse9")
    other = sattn.calibrate([qkv(1, 2, 1, 20, 20, 8)], sattn.Quant(granularity="token"))
    with pytest.raises(sattn.ScalesMismatch, match="scales"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="cpu", quant=quant, scales=other)
    with pytest.raises(sattn.GradientNotSupported):
        tq = torch.from_numpy(q).requires_grad_()
        sattn.sparse_attention(tq, torch.from_numpy(k), torch.from_numpy(v), sattn.Dense(), backend="cpu", quant=quant)


def test_plan_reuse_and_extreme_codes():
    # a reused plan; inputs at +-amax in every channel give codes of exactly +-127 (the dot's
    # largest magnitude, 127^2 * D) and a constant K whose smoothed codes are all zero
    q, k, v = qkv(1, 2, 2, 64, 64, 128, seed=5)
    q = np.sign(q) * 3.0
    k = np.sign(k) * 3.0
    k[:, 1] = 0.5
    spec = sattn.BlockTopK(block=16, keep=0.5)
    plan = sattn.plan(spec, q, k)
    for isa in ISAS:
        for smooth in (True, False):
            check(q, k, v, spec, sattn.Quant(pv="fp32", smooth_k=smooth), isa=isa, f64_budget=False)
            res = cpu.quantized_attention(q, k, v, spec, quant=sattn.Quant(pv="fp32", smooth_k=smooth), scale=None,
                                          isa=isa, plan=plan)
            assert res.plan is plan or res.plan.nnz == plan.nnz


# ---- sattn calibrate ----------------------------------------------------------------------------

def test_calibrate_verb_on_npz_writes_loadable_scales(tmp_path, capsys):
    from sattn.cli import main
    batches = [Q.synthetic("outlier", 1.0, (1, 2, 1, 96, 16), seed=s) for s in range(3)]
    np.savez(tmp_path / "s.npz", **{n: np.stack([b[i] for b in batches]).astype(np.float32) for i, n in enumerate("qkv")})
    out = tmp_path / "scales.json"
    assert main(["calibrate", "--samples", str(tmp_path / "s.npz"), "--scheme", "int8/bf16/token/v=int8",
                 "--method", "kl", "-o", str(out), "--json"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in doc["results"]] == ["dynamic", "max", "percentile", "kl"]
    assert all(0 < r["max_err_rel_max_abs_v"] < 1 for r in doc["results"])
    quant = sattn.Quant(qk="int8", pv="bf16", v="int8", granularity="token")
    scales = sattn.load_scales(out, quant, shape=(2, 1, 16), dtype="float32")
    assert scales.method == "kl"
    # the written scales run on the cpu backend
    q, k, v = (x[0] for x in (np.stack([b[i] for b in batches]).astype(np.float32) for i in range(3)))
    sattn.sparse_attention(q, k, v, sattn.Dense(causal=True), backend="cpu", quant=quant, scales=scales)


def test_calibrate_verb_on_a_profile_prints_the_table(tmp_path, capsys):
    from sattn.cli import main
    assert main(["calibrate", "--profile", "llama3-8b-128k-blocktopk", "--quick", "--seq-len", "256",
                 "--batches", "1", "-o", str(tmp_path / "s.json")]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert lines[0].startswith("scheme int8/bf16/token") and "outlier" in lines[0]
    assert [ln.split()[0] for ln in lines[2:]] == ["dynamic", "max", "percentile", "kl"]
    assert "<- written" in lines[4] and "[calibrate] wrote the percentile scales" in cap.err


@pytest.mark.parametrize("argv,needle", [
    (["--profile", "llama3-8b-128k-blocktopk", "--method", "mse"], "--method"),
    (["--profile", "llama3-8b-128k-blocktopk", "--scheme", "int8/bf16"], "--scheme"),
    (["--profile", "llama3-8b-128k-blocktopk", "--scheme", "int3/bf16/token"], "quant.qk"),
    (["--profile", "llama3-8b-128k-blocktopk", "--percentile", "0"], "--percentile"),
    (["--profile", "llama3-8b-128k-blocktopk", "--batches", "0"], "--batches"),
    (["--profile", "nope"], "nope"),
    ([], "exactly one of"),
])
def test_calibrate_verb_bad_flags_exit_2(tmp_path, capsys, argv, needle):
    from sattn.cli import main
    try:
        rc = main(["calibrate", "-o", str(tmp_path / "s.json")] + argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
