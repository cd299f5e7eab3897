"""sparse_attention(..., backend="rvv", quant=sattn.Quant(qk="int8", pv="fp32", ...)) under QEMU:
the int8 kernels against the scheme's float64 error model (sattn.quant.attention, to float32
rounding) and against float64 within the scheme's budget; unsupported fields named."""
import numpy as np
import pytest

import sattn
from sattn import quant as Q
from sattn import specs as S
from sattn.backends import rvv


def _qkv(B, Hq, Hkv, Lq, Lk, D, seed=0, k_offset=0.0):
    r = np.random.default_rng(seed)
    q = r.standard_normal((B, Hq, Lq, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, Lk, D)).astype(np.float32)
    k[..., :2] += np.float32(k_offset)
    return q, k, r.standard_normal((B, Hkv, Lk, D)).astype(np.float32)


def _quant(block=64, smooth_k=True):
    return sattn.Quant(qk="int8", pv="fp32", v=None, granularity="block", block=block, smooth_k=smooth_k)


CASES = [
    ("dense causal gqa", S.Dense(causal=True), (1, 4, 2, 64, 64, 32), 64),
    ("blocktopk block 16, B=2", S.BlockTopK(block=16, keep=0.5, causal=True), (2, 2, 2, 48, 48, 16), 16),
    ("sliding window Lq<Lk", S.SlidingWindow(window=9, causal=True), (1, 2, 1, 20, 45, 16), 64),
    ("L=1", S.Dense(causal=False), (1, 1, 1, 1, 1, 16), 64),
]


@pytest.mark.parametrize("name,spec,shape,block", CASES, ids=[c[0] for c in CASES])
def test_matches_error_model_and_budget(name, spec, shape, block):
    q, k, v = _qkv(*shape, k_offset=3.0)
    quant = _quant(block)
    out, lse = sattn.sparse_attention(q, k, v, spec, backend="rvv", quant=quant, return_lse=True)
    model_out, model_lse = Q.attention(q, k, v, spec, quant, return_lse=True)
    ref_out, ref_lse = (np.asarray(x, np.float64) for x in sattn.reference.attention(q, k, v, spec, return_lse=True))
    seen = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), seen)
    # the same roundings as the model, computed in float32 on target
    np.testing.assert_allclose(out, model_out, rtol=0, atol=2e-5 * np.abs(v).max())
    np.testing.assert_allclose(lse[seen], model_lse[seen], rtol=0, atol=2e-5 * max(1.0, np.abs(model_lse[seen]).max()))
    assert np.abs(out - ref_out).max() <= Q.error_budget(quant) * np.abs(v).max()


def test_smoothing_on_and_off():
    q, k, v = _qkv(1, 2, 2, 64, 64, 32, k_offset=12.0)
    spec = S.Dense(causal=True)
    ref = np.asarray(sattn.reference.attention(q, k, v, spec), np.float64)
    errs = {}
    for smooth in (True, False):
        out = sattn.sparse_attention(q, k, v, spec, backend="rvv", quant=_quant(smooth_k=smooth))
        np.testing.assert_allclose(out, Q.attention(q, k, v, spec, _quant(smooth_k=smooth)), rtol=0, atol=1e-4)
        errs[smooth] = np.abs(out - ref).max() / np.abs(v).max()
    assert errs[True] <= Q.error_budget(_quant()) and errs[False] > 2 * errs[True], errs


def test_counters_and_int8_kernels():
    q, k, v = _qkv(1, 1, 1, 64, 64, 16)
    res = rvv.quantized_attention(q, k, v, S.Dense(causal=True), quant=_quant(), scale=None)
    assert res.counters["smooth_k"] == 1 and res.counters["instructions"] > 0
    assert "int8" in res.note


@pytest.mark.parametrize("field,value", [("qk", "fp8_e4m3"), ("pv", "bf16"), ("v", "int8"), ("granularity", "token"),
                                         ("block", 32)])
def test_unsupported_fields_named(field, value):
    q, k, v = _qkv(1, 1, 1, 16, 16, 16)
    fields = {**_quant().to_dict(), field: value}
    with pytest.raises(sattn.QuantNotSupported, match=f"quant.{field}"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rvv", quant=sattn.Quant(**fields))


def test_bad_calls_named():
    q, k, v = _qkv(1, 1, 1, 16, 16, 16)
    with pytest.raises(sattn.QuantNotSupported, match="scales"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rvv", quant=_quant(),
                               scales=sattn.calibrate([(q, k, v)], _quant()))
    with pytest.raises(TypeError, match="dtype"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rvv", quant=_quant(), dtype="fp32")
    bad = v.copy()
    bad[0, 0, 2, 2] = np.inf
    with pytest.raises(ValueError, match="v: quantized attention takes finite values"):
        sattn.sparse_attention(q, k, bad, S.Dense(), backend="rvv", quant=_quant())
