"""The spec contract against the RVV backend under QEMU: every spec, small shapes, edge cases,
checked against sattn.reference (float64) for the RVV kernels at VLEN 128/256/512 and for both
baselines; plus bad options and the plugin's counters."""
import numpy as np
import pytest

import sattn
from sattn.backends import rvv

SPECS = [
    sattn.Dense(),
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=5, causal=True, dilation=2, global_tokens=2),
    sattn.SlidingWindow(window=7),
    sattn.BlockTopK(block=16, keep=0.3, causal=True),
    sattn.BlockTopK(block=8, keep=0.25, global_blocks=0, local_blocks=2),
    sattn.BigBird(block=8, window_blocks=3, global_blocks=1, random_blocks=1, seed=3),
    sattn.BigBird(block=16, causal=True, random_blocks=2, seed=1),
    sattn.TopKPerQuery(k=5, causal=True),
    sattn.TopKPerQuery(k=9),
]

# (B, Hq, Hkv, Lq, Lk, D): L not a multiple of the block, GQA, Lq < Lk, decode, L = 1.
SHAPES = [(1, 2, 1, 45, 45, 16), (2, 2, 2, 20, 53, 8), (1, 4, 2, 1, 33, 8), (1, 1, 1, 1, 1, 4)]

TOL = 3e-5  # float32 kernels with a ~1e-7 relative exp; float64 judge


def inputs(shape, seed):
    B, Hq, Hkv, Lq, Lk, D = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    return q, k, v


def check(spec, shape, seed, tol=TOL, **options):
    q, k, v = inputs(shape, seed)
    if getattr(spec, "block", 0) > shape[4]:
        pytest.skip("block longer than Lk is rejected by the API")
    out, lse = sattn.sparse_attention(q, k, v, spec, backend="rvv", return_lse=True, **options)
    ref, ref_lse = sattn.reference.attention(q, k, v, spec, return_lse=True)
    np.testing.assert_allclose(out, ref, atol=tol, rtol=tol)
    finite = np.isfinite(ref_lse)
    np.testing.assert_array_equal(np.isfinite(lse), finite)
    np.testing.assert_allclose(lse[finite], ref_lse[finite], atol=tol, rtol=tol)
    assert np.all(out[~finite] == 0)


def test_available():
    ok, reason = rvv.available()
    assert ok, reason


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("vlen", [128, 256, 512])
def test_contract_rvv(spec, vlen):
    for i, shape in enumerate(SHAPES):
        check(spec, shape, seed=i, vlen=vlen)


@pytest.mark.parametrize("variant", ["scalar", "autovec"])
def test_contract_baselines(variant):
    for i, spec in enumerate(SPECS):
        check(spec, SHAPES[i % 2], seed=10 + i, variant=variant)


@pytest.mark.parametrize("dtype,tol", [("bf16", 4e-2), ("int8", 6e-2)])
def test_low_precision_storage(dtype, tol):
    # Against the float64 reference on the original inputs: the error is the storage rounding.
    check(sattn.BlockTopK(block=16, keep=0.5, causal=True), (1, 2, 1, 64, 64, 16), seed=7, tol=tol, dtype=dtype)


def test_counters_and_selection_on_target():
    q, k, v = inputs((1, 2, 1, 128, 128, 16), 3)
    spec = sattn.BlockTopK(block=16, keep=0.25)
    res = rvv.attention(q, k, v, spec, scale=0.25, return_lse=True, vlen=256, plan_on_target=True,
                        check_selection=True)
    c = res.counters
    assert c["target_plan_matches_host"] == 1
    assert c["selection_mismatched_rows"] == 0
    assert c["instructions"] == sum(c[f"insn_{k}"] for k in ("scalar_alu", "scalar_mem", "branch", "vec_cfg",
                                                             "vec_arith", "vec_mem"))
    assert 0.0 < c["vector_fraction"] < 1.0 and c["insn_vec_mem_bytes"] > 0
    assert c["proxy_cycles_low_power"] > c["proxy_cycles_high_perf"] > 0
    # Exact counts: the region holds only the compute (no allocation), so a run with a different
    # heap history (no on-target planning before it) gives the same numbers.
    again = rvv.attention(q, k, v, spec, scale=0.25, return_lse=True, vlen=256).counters
    for key in ("instructions", "insn_vec_mem_bytes", "insn_scalar_mem_bytes", "insn_vec_arith_reg_ops"):
        assert again[key] == c[key], key


def test_selection_region_counts_the_selection_alone():
    """--region selection: the counters cover BlockTopK's on-target selection (which must still
    equal the plan's), not the attention; score="max" (a dot product per query-key pair) costs
    more than "mean" (pooled rows), and the attention's own count is unchanged by the score."""
    q, k, v = inputs((1, 1, 1, 128, 128, 16), 5)
    counts = {}
    for score in ("mean", "max"):
        spec = sattn.BlockTopK(block=16, keep=0.25, score=score)
        sel = rvv.attention(q, k, v, spec, scale=0.25, return_lse=True, vlen=256, region="selection").counters
        att = rvv.attention(q, k, v, spec, scale=0.25, return_lse=True, vlen=256).counters
        assert sel["region"] == "selection" and sel["selection_mismatched_rows"] == 0
        assert sel["instructions"] > 0 and sel["insn_vec_arith"] > 0
        counts[score] = (sel["instructions"], att["instructions"])
    assert counts["max"][0] > 2 * counts["mean"][0], counts
    assert counts["max"][1] == counts["mean"][1], counts   # same number of kept blocks per row


@pytest.mark.parametrize("bad,match", [({"vlen": 96}, "vlen"), ({"variant": "gpu"}, "variant"),
                                       ({"dtype": "fp8"}, "dtype"), ({"chunk_keys": 0}, "chunk_keys"),
                                       ({"region": "planner"}, "region"),
                                       ({"region": "selection"}, "region: 'selection' counts the BlockTopK")])
def test_bad_options(bad, match):
    q, k, v = inputs((1, 1, 1, 8, 8, 4), 0)
    with pytest.raises(ValueError, match=match):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="rvv", **bad)


def test_proxy_profiles_documented_parameters():
    counts = {"scalar_alu": 10, "scalar_mem": 4, "branch": 2, "vec_cfg": 1, "vec_arith": 3, "vec_mem": 2,
              "scalar_mem_bytes": 32, "vec_mem_bytes": 256, "vec_mem_nonunit_bytes": 0, "vec_arith_reg_ops": 24}
    lp = rvv.proxy(counts, 256, "low_power")
    # 10*1 + 4*2 + 2*2 + 1 + 24*(256/64) + 2*1 + 256/8 = 153
    assert lp["cycles"] == 153
    with pytest.raises(ValueError):
        rvv.parse_counts("garbage")


def test_torch_bfloat16_inputs_use_bf16_storage():
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(x).to(torch.bfloat16) for x in inputs((1, 2, 1, 40, 40, 16), 21))
    spec = sattn.SlidingWindow(window=9, causal=True)
    out = sattn.sparse_attention(q, k, v, spec, backend="rvv")
    assert out.dtype == torch.bfloat16
    ref = sattn.reference.attention(q.float(), k.float(), v.float(), spec)
    # Inputs are exactly representable (already bf16); the error is the bf16 rounding of out.
    np.testing.assert_allclose(out.float().numpy(), ref, atol=2e-2, rtol=2e-2)
