"""sattn.Quant, the float64 quantized reference (sattn.quant) and calibration (docs/contract.md,
"Quantization")."""
import numpy as np
import pytest
import torch

import sattn
from sattn import quant as Q
from sattn import reference


def qkv(B=1, Hq=2, Hkv=1, L=80, D=16, seed=0, dtype=np.float32):
    r = np.random.default_rng(seed)
    return tuple(r.standard_normal((B, h, L, D)).astype(dtype) for h in (Hq, Hkv, Hkv))


@pytest.mark.parametrize("field,value,err", [("qk", "int4", ValueError), ("pv", "fp16", ValueError),
                                             ("v", "int2", ValueError), ("granularity", "tensor", ValueError),
                                             ("qk", 8, TypeError), ("smooth_k", 1, TypeError),
                                             ("block", 0, ValueError)])
def test_quant_rejects_bad_fields_by_name(field, value, err):
    with pytest.raises(err, match=f"quant.{field}"):
        sattn.Quant(**{field: value})


def test_quant_is_frozen():
    with pytest.raises(Exception):
        sattn.Quant().qk = "fp8_e4m3"


def test_e4m3_and_bf16_roundings_equal_torch():
    r = np.random.default_rng(0)
    x = np.concatenate([r.standard_normal(20000) * np.logspace(-4, 2.7, 20000), np.arange(-448, 448, 0.125)])
    want = torch.from_numpy(x).to(torch.float8_e4m3fn).double().numpy()
    np.testing.assert_array_equal(Q.round_e4m3(x), want)
    y = r.standard_normal(20000) * 10
    np.testing.assert_array_equal(Q.round_bf16(y), torch.from_numpy(y.astype(np.float32)).bfloat16().double().numpy())


def test_int_codes_round_half_to_even_and_clip():
    np.testing.assert_array_equal(Q.quantize_int(np.array([0.5, 1.5, 2.5, -0.5, 300.0, -300.0]), 1.0, 127.0),
                                  [0, 2, 2, 0, 127, -127])


def test_int4_pack_round_trip():
    codes = np.random.default_rng(1).integers(-8, 8, size=(3, 10))
    packed = Q.pack_int4(codes)
    assert packed.dtype == np.uint8 and packed.shape == (3, 5)
    np.testing.assert_array_equal(Q.unpack_int4(packed), codes)
    with pytest.raises(ValueError, match="codes"):
        Q.pack_int4(np.zeros((2, 3)))


@pytest.mark.parametrize("quant", [sattn.Quant(qk="int8", pv="fp32", granularity="block"),
                                   sattn.Quant(qk="int8", pv="fp32", granularity="channel")])
def test_qk_operands_are_scaled_codes(quant):
    q, k, v = qkv(L=70)
    qeff, keff, _, _ = Q.operands(q, k, v, quant)
    if quant.granularity == "channel":
        assert np.all(keff == np.rint(keff)) and np.abs(keff).max() == 127
    else:
        kk = k.astype(np.float64) - k.astype(np.float64).mean(axis=-2, keepdims=True)
        blk = kk[0, 0, :64]
        codes = keff[0, 0, :64] / (np.abs(blk).max() / 127)
        np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    assert np.isfinite(qeff).all()


SCHEMES = [sattn.Quant(qk=a, pv=b, v=c, granularity=g)
           for a, b, c, g in [("int8", "fp32", None, "block"), ("int8", "bf16", "int8", "token"),
                              ("fp8_e4m3", "fp8_e4m3", None, "block"), ("int8", "fp8_e4m3", "int4", "channel"),
                              ("fp8_e4m3", "bf16", "int4", "token")]]


@pytest.mark.parametrize("quant", SCHEMES, ids=str)
@pytest.mark.parametrize("spec", [sattn.Dense(causal=True), sattn.BlockTopK(block=16, keep=0.5)], ids=str)
def test_quantized_reference_close_to_float64(quant, spec):
    q, k, v = qkv(Hq=4, Hkv=2, L=75)                 # GQA, ragged L (75 is no multiple of 64 or 16)
    out, lse = Q.attention(q, k, v, spec, quant, return_lse=True)
    ref, rlse = reference.attention(q, k, v, spec, return_lse=True)
    err = np.abs(out - ref).max() / np.abs(v).max()
    budget = {"int4": 0.12, "int8": 0.03}.get(quant.v, 0.06 if quant.pv == "fp8_e4m3" else 0.03)
    assert 0 < err < budget, err
    assert np.abs(lse - rlse).max() < 0.1


def test_sparse_attention_quant_dispatch():
    q, k, v = qkv()
    quant = sattn.Quant(qk="fp8_e4m3", pv="bf16", v="int8")
    want = Q.attention(q, k, v, sattn.Dense(), quant)
    got = sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference", quant=quant)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=0, atol=0)
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    out, lse = sattn.sparse_attention(tq, tk, tv, sattn.Dense(), backend="reference", quant=quant, return_lse=True)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), want.astype(np.float32), rtol=0, atol=0)
    with pytest.raises(sattn.QuantNotSupported, match="backend: 'triton'"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="triton", quant=quant)
    with pytest.raises(sattn.QuantNotSupported, match="quant.qk: the cpu backend"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="cpu", quant=quant)
    with pytest.raises(ValueError, match="scales"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference", scales=object())
    with pytest.raises(TypeError, match="quant"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference", quant="int8")
    with pytest.raises(sattn.GradientNotSupported):
        sattn.sparse_attention(tq.requires_grad_(), tk, tv, sattn.Dense(), backend="reference", quant=quant)
    bad = q.copy()
    bad[0, 0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="q: quantized"):
        sattn.sparse_attention(bad, k, v, sattn.Dense(), backend="reference", quant=quant)


def gaussian_with_outlier(n=100_000, outlier=50.0):
    x = np.random.default_rng(2).standard_normal((1, 1, n, 1))
    x[0, 0, 7, 0] = outlier
    return x


@pytest.mark.parametrize("method", ["max", "percentile", "kl"])
def test_calibration_clip_on_gaussian_with_one_outlier(method):
    x = gaussian_with_outlier()
    s = sattn.calibrate([(x, x, x)], sattn.Quant(smooth_k=False, v="int8"), method)
    for c in (s.q, s.k, s.v):
        if method == "max":
            assert c[0] == 50.0                       # max clips at the outlier
        else:
            # N(0,1): the 99.99th percentile of |x| is 3.89; KL's clip lies in the same few sigma
            assert 3.0 < c[0] < 6.0, c


def test_calibration_rejects_bad_samples_by_name():
    x = gaussian_with_outlier(n=256)
    bad = x.copy()
    bad[0, 0, 3, 0] = np.inf
    with pytest.raises(ValueError, match=r"samples\[1\]\.k"):
        sattn.calibrate([(x, x, x), (x, bad, x)], sattn.Quant())
    with pytest.raises(ValueError, match="method"):
        sattn.calibrate([(x, x, x)], sattn.Quant(), "mse")
    with pytest.raises(ValueError, match="percentile"):
        sattn.calibrate([(x, x, x)], sattn.Quant(), "percentile", percentile=0)
    with pytest.raises(ValueError, match="samples"):
        sattn.calibrate([], sattn.Quant())
    with pytest.raises(TypeError, match=r"samples\[0\]"):
        sattn.calibrate([x], sattn.Quant())
    y = np.zeros((1, 2, 8, 1))
    with pytest.raises(ValueError, match=r"samples\[1\]"):
        sattn.calibrate([(x, x, x), (y, y, y)], sattn.Quant())


def test_scales_file_round_trip_and_mismatches(tmp_path):
    q, k, v = qkv(Hq=2, Hkv=1, L=64, D=8)
    quant = sattn.Quant(qk="int8", pv="fp8_e4m3", granularity="channel")
    s = sattn.calibrate(iter([(q, k, v), (k.repeat(2, axis=1), k, v)]), quant, "kl")
    assert s.q.shape == (2,) and s.k.shape == (1, 8) and s.v.shape == (1, 8)
    path = tmp_path / "scales.json"
    s.save(path)
    t = sattn.load_scales(path, quant, shape=(2, 1, 8), dtype="float32")
    for a, b in ((s.q, t.q), (s.k, t.k), (s.v, t.v)):
        np.testing.assert_array_equal(a, b)
    out = sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference", quant=quant, scales=t)
    ref = reference.attention(q, k, v, sattn.Dense())
    assert np.abs(out - ref).max() < 0.06 * np.abs(v).max()
    with pytest.raises(sattn.ScalesMismatch, match="calibrated for"):
        sattn.load_scales(path, sattn.Quant(qk="fp8_e4m3"))
    with pytest.raises(sattn.ScalesMismatch, match=r"\(Hq, Hkv, D\)"):
        sattn.load_scales(path, shape=(4, 1, 8))
    with pytest.raises(sattn.ScalesMismatch, match="float32"):
        sattn.load_scales(path, dtype="bfloat16")
    with pytest.raises(sattn.ScalesMismatch, match=r"\(Hq, Hkv, D\)"):
        sattn.sparse_attention(*qkv(Hq=2, Hkv=1, L=64, D=16), sattn.Dense(), backend="reference", quant=quant,
                               scales=t)
    with pytest.raises(sattn.ScalesMismatch, match="quant"):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference", quant=sattn.Quant(), scales=t)
    text = path.read_text()
    for broken, match in ((text.replace('"version": 1', '"version": 2'), "version"),
                          (text.replace('"sattn.scales"', '"other"'), "not a sattn scales file"),
                          ("{", "not a sattn scales file"),
                          (text.replace('"Hkv": 1', '"Hkv": 3'), "shape")):
        path.write_text(broken)
        with pytest.raises(sattn.ScalesMismatch, match=match):
            sattn.load_scales(path)


def test_static_clip_applies():
    x = gaussian_with_outlier(n=512, outlier=40.0)
    quant = sattn.Quant(pv="fp32", smooth_k=False)
    s = sattn.calibrate([(x, x, x)], quant, "percentile", percentile=99.0)
    qeff, keff, _, _ = Q.operands(x, x, x, quant, s)
    assert np.abs(qeff).max() == pytest.approx(s.q[0]) and s.q[0] < 40.0        # the outlier saturates
    codes = qeff / (s.q[0] / 127)                                                   # one static scale
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    np.testing.assert_array_equal(qeff, keff)


@pytest.mark.parametrize("quant", [sattn.Quant(qk=a, pv=b, v=c, granularity=g, smooth_k=sm)
                                   for a, b, c, g, sm in [("int8", "fp32", None, "block", True),
                                                          ("int8", "bf16", None, "channel", True),
                                                          ("int8", "bf16", "int8", "token", True),
                                                          ("fp8_e4m3", "fp8_e4m3", None, "block", True),
                                                          ("int8", "bf16", "int4", "token", True),
                                                          ("int8", "bf16", "int8", "block", False)]], ids=str)
def test_contract_budget_on_normal_inputs(quant):
    # the contract's shape and inputs (docs/contract.md, "Quantization"; tools/quant_error.py)
    r = np.random.default_rng(0)
    q, k, v = (r.standard_normal((1, h, 512, 64)) for h in (4, 2, 2))
    spec = sattn.Dense(causal=True)
    err = np.abs(Q.attention(q, k, v, spec, quant) - reference.attention(q, k, v, spec)).max() / np.abs(v).max()
    assert err < Q.error_budget(quant), err
