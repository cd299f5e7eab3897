"""sparse_attention(..., backend="rocc", quant=sattn.Quant(...), scales=...): K smoothing and
dynamic or static (calibrated) scales on the accelerator, against float64 within the documented
budgets, RTL == golden model bit for bit, and every unsupported field named. (Numpy inputs: the
torch conversion is sparse_attention's, shared with the reference path and tested there.)"""
import numpy as np
import pytest

import sattn
from sattn import specs as S
from sattn.backends import rocc

QUANT = sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8", granularity="block", block=64)


def _qkv(B, Hq, Hkv, Lq, Lk, D, seed=0, k_offset=0.0):
    r = np.random.default_rng(seed)
    q = r.standard_normal((B, Hq, Lq, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, Lk, D)).astype(np.float32)
    k[..., :2] += np.float32(k_offset)  # a per-channel offset, what K smoothing removes
    v = r.standard_normal((B, Hkv, Lk, D)).astype(np.float32)
    return q, k, v


def _errors(q, k, v, spec, quant=QUANT, **kw):
    out, lse = sattn.sparse_attention(q, k, v, spec, backend="rocc", quant=quant, return_lse=True, **kw)
    ref_out, ref_lse = (np.asarray(x, np.float64) for x in sattn.reference.attention(q, k, v, spec, return_lse=True))
    empty = np.isneginf(ref_lse)
    assert np.array_equal(np.isneginf(lse), empty)
    assert np.all(out[np.broadcast_to(empty[..., None], out.shape)] == 0)
    e_out = float(np.abs(out - ref_out).max() / np.abs(v).max())
    e_lse = float(np.abs(lse[~empty] - ref_lse[~empty]).max()) if (~empty).any() else 0.0
    return e_out, e_lse


CASES = [
    ("dense causal gqa Lq<Lk", S.Dense(causal=True), (1, 4, 2, 20, 45, 16)),
    ("sliding window (bitmaps)", S.SlidingWindow(window=9, causal=True), (2, 2, 1, 40, 40, 32)),
    ("blocktopk block 32 (tile 32)", S.BlockTopK(block=32, keep=0.5, causal=True), (1, 2, 2, 70, 70, 24)),
    ("L=1", S.Dense(causal=False), (1, 1, 1, 1, 1, 16)),
]


@pytest.mark.parametrize("name,spec,shape", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("method", ["dynamic", "max", "percentile"])
def test_within_budget(name, spec, shape, method):
    tile = 32 if isinstance(spec, S.BlockTopK) else 64
    quant = sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8", granularity="block", block=tile)
    q, k, v = _qkv(*shape)
    scales = None
    if method != "dynamic":
        B, Hq, Hkv, _, _, D = shape  # calibration draws of 128 tokens for the same heads
        scales = sattn.calibrate([_qkv(B, Hq, Hkv, 128, 128, D, seed=s) for s in (1, 2, 3)], quant, method)
    e_out, e_lse = _errors(q, k, v, spec, quant, scales=scales)
    assert e_out <= rocc.QUANT_OUT_ATOL_REL[method != "dynamic"], (name, method, e_out)
    assert e_lse <= rocc.QUANT_LSE_ATOL[method != "dynamic"], (name, method, e_lse)


def test_smoothing_removes_a_k_offset():
    # K channels offset by 8: without smoothing the per-block K scale is set by the offset and
    # the scores lose their resolution; smoothing subtracts it (and restores lse).
    q, k, v = _qkv(1, 2, 2, 64, 64, 32, k_offset=8.0)
    spec = S.Dense(causal=True)
    smooth, smooth_lse = _errors(q, k, v, spec, QUANT)
    plain, _ = _errors(q, k, v, spec, sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8", smooth_k=False))
    assert smooth <= rocc.QUANT_OUT_ATOL_REL[False] and smooth_lse <= rocc.QUANT_LSE_ATOL[False]
    assert plain > 2 * smooth, (plain, smooth)


def test_rtl_matches_golden_with_static_scales():
    q, k, v = _qkv(1, 2, 1, 30, 50, 16)
    scales = sattn.calibrate([_qkv(1, 2, 1, 30, 50, 16, seed=s) for s in (1, 2)], QUANT, "percentile")
    res = rocc.quantized_attention(q, k, v, S.Dense(causal=True), quant=QUANT, scales=scales, scale=0.25,
                                   check_golden=True)
    assert res.counters["golden_match"] is True and res.counters["static_scales"] == 1
    res = rocc.quantized_attention(q, k, v, S.Dense(causal=True), quant=QUANT, scale=0.25, path="unfused",
                                   check_golden=True)
    assert res.counters["golden_match"] is True and res.counters["static_scales"] == 0


def test_static_clip_is_the_scale():
    # Every 64-row block of q, k, v holds the same values, so each block's amax is the head's:
    # static clips equal to that amax must give the dynamic scales' bits exactly, and a clip
    # below it must change them (saturation).
    r = np.random.default_rng(3)
    blk = r.standard_normal((1, 2, 64, 16)).astype(np.float32)
    q = np.concatenate([blk, blk], axis=2)
    k, v = q[:, :1].copy(), q[:, 1:].copy()
    spec = S.Dense(causal=False)
    dyn = sattn.sparse_attention(q, k, v, spec, backend="rocc", quant=QUANT)
    amax = lambda x: np.abs(x).max(axis=(0, 2, 3)).astype(np.float64)
    ks = k - k.mean(axis=-2, keepdims=True)
    scales = sattn.Scales(QUANT, "max", amax(q), amax(ks), amax(v), 2, 1, 16, "float32")
    np.testing.assert_array_equal(sattn.sparse_attention(q, k, v, spec, backend="rocc", quant=QUANT, scales=scales), dyn)
    clipped = sattn.Scales(QUANT, "max", amax(q) / 2, amax(ks), amax(v), 2, 1, 16, "float32")
    assert not np.array_equal(sattn.sparse_attention(q, k, v, spec, backend="rocc", quant=QUANT, scales=clipped), dyn)


@pytest.mark.parametrize("field,value", [("qk", "fp8_e4m3"), ("granularity", "token"), ("v", None), ("v", "int4"),
                                         ("pv", "bf16"), ("block", 32)])
def test_unsupported_fields_named(field, value):
    q, k, v = _qkv(1, 1, 1, 16, 16, 16)
    fields = {**QUANT.to_dict(), field: value}
    with pytest.raises(sattn.QuantNotSupported, match=f"quant.{field}"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", quant=sattn.Quant(**fields))


def test_bad_calls_named():
    q, k, v = _qkv(1, 2, 1, 16, 16, 16)
    other = sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8", smooth_k=False)
    with pytest.raises(sattn.ScalesMismatch, match="scales"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", quant=QUANT,
                               scales=sattn.calibrate([(q, k, v)], other))
    with pytest.raises(sattn.ScalesMismatch, match="Hq, Hkv, D"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", quant=QUANT,
                               scales=sattn.calibrate([_qkv(1, 1, 1, 16, 16, 16)], QUANT))
    bad = q.copy()
    bad[0, 0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="q: quantized attention takes finite values"):
        sattn.sparse_attention(bad, k, v, S.Dense(), backend="rocc", quant=QUANT)
    with pytest.raises(TypeError, match="dtype"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", quant=QUANT, dtype="int8")
    with pytest.raises(ValueError, match="q_clip"):
        rocc._sim().golden(q, k, v, sattn.plan(S.Dense(), q, k, tile=64).to_dict(), 0.25, q_clip=np.ones(3))
