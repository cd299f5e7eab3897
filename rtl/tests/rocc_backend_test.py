"""sattn.sparse_attention(..., backend="rocc") against the float64 reference on the contract's
specs and edge cases, RTL == golden model bit for bit, the fused path moving fewer bytes, and
bad arguments named."""
import numpy as np
import pytest

import sattn
from sattn import specs as S
from sattn.backends import rocc

RNG = np.random.default_rng(0)


def _qkv(B, Hq, Hkv, Lq, Lk, D, amp=1.0):
    q = (RNG.standard_normal((B, Hq, Lq, D)) * amp).astype(np.float32)
    k = (RNG.standard_normal((B, Hkv, Lk, D)) * amp).astype(np.float32)
    v = RNG.standard_normal((B, Hkv, Lk, D)).astype(np.float32)
    return q, k, v


def _check(q, k, v, spec, **kw):
    out, lse = sattn.sparse_attention(q, k, v, spec, backend="rocc", return_lse=True, **kw)
    ref_out, ref_lse = sattn.reference.attention(q, k, v, spec, return_lse=True)
    ref_out, ref_lse = np.asarray(ref_out), np.asarray(ref_lse)
    assert out.shape == q.shape and out.dtype == np.float32
    vmax = np.abs(v).max()
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=rocc.OUT_ATOL_REL * vmax)
    empty = np.isneginf(ref_lse)
    assert np.array_equal(np.isneginf(lse), empty)
    np.testing.assert_allclose(lse[~empty], ref_lse[~empty], rtol=0, atol=rocc.LSE_ATOL)
    assert np.all(out[np.broadcast_to(empty[..., None], out.shape)] == 0)
    return out


CASES = [
    ("dense", S.Dense(causal=False), (1, 2, 2, 50, 50, 32)),
    ("dense causal gqa Lq<Lk", S.Dense(causal=True), (2, 4, 2, 33, 70, 16)),
    ("sliding window dilated", S.SlidingWindow(window=8, causal=True, dilation=2, global_tokens=2), (1, 2, 1, 90, 90, 24)),
    ("blocktopk", S.BlockTopK(block=32, keep=0.3, causal=True), (1, 2, 2, 130, 130, 64)),
    ("bigbird", S.BigBird(block=16, window_blocks=3, global_blocks=1, random_blocks=1, seed=5, causal=False), (1, 1, 1, 80, 80, 16)),
    ("topk per query", S.TopKPerQuery(k=5, causal=True), (1, 2, 1, 40, 40, 8)),
    ("L=1", S.Dense(causal=True), (1, 1, 1, 1, 1, 4)),
]


@pytest.mark.parametrize("name,spec,shape", CASES, ids=[c[0] for c in CASES])
def test_contract_specs(name, spec, shape):
    q, k, v = _qkv(*shape)
    _check(q, k, v, spec)


def test_empty_rows_zero_and_neg_inf():
    # No contract spec leaves a query without keys (each sees itself), so drop the first plan row's
    # entries by hand: its 16 queries must come back as zeros with LSE -inf, the rest unchanged.
    import dataclasses
    q, k, v = _qkv(1, 1, 1, 40, 40, 16)
    spec = S.Dense(causal=True)
    pl = sattn.plan(spec, q, k, tile=16)
    n0 = int(pl.row_ptr[1])
    cut = dataclasses.replace(pl, row_ptr=(pl.row_ptr - n0).clip(0).astype(np.int32),
                              col_idx=pl.col_idx[n0:].copy(), mask_idx=pl.mask_idx[n0:].copy())
    res = rocc.attention(q, k, v, spec, scale=0.25, return_lse=True, plan=cut)
    assert np.all(res.out[:, :, :16] == 0) and np.all(np.isneginf(res.lse[:, :, :16]))
    ref_out, ref_lse = sattn.reference.attention(q, k, v, spec, scale=0.25, return_lse=True)
    np.testing.assert_allclose(res.out[:, :, 16:], np.asarray(ref_out)[:, :, 16:], atol=rocc.OUT_ATOL_REL * np.abs(v).max())
    np.testing.assert_allclose(res.lse[:, :, 16:], np.asarray(ref_lse)[:, :, 16:], atol=rocc.LSE_ATOL)


def test_rtl_matches_golden_and_fused_moves_fewer_bytes():
    q, k, v = _qkv(1, 2, 1, 128, 128, 32)
    spec = S.BlockTopK(block=64, keep=0.5)
    fused = rocc.attention(q, k, v, spec, scale=32 ** -0.5, return_lse=True, check_golden=True)
    unfused = rocc.attention(q, k, v, spec, scale=32 ** -0.5, return_lse=True, path="unfused", check_golden=True)
    assert fused.counters["golden_match"] and unfused.counters["golden_match"]
    np.testing.assert_array_equal(fused.out, unfused.out)
    assert fused.counters["dma_bytes"] < unfused.counters["dma_bytes"]
    c = fused.counters
    assert c["macs"] > 0 and 0 < c["mac_utilization"] <= 1 and c["cycles_over_roofline"] >= 1
    assert c["last_error"] == 0


def test_bad_arguments_are_named():
    q, k, v = _qkv(1, 1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="tile"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", tile=24)
    with pytest.raises(ValueError, match="path"):
        sattn.sparse_attention(q, k, v, S.Dense(), backend="rocc", path="sideways")
    with pytest.raises(ValueError, match="head dimension"):
        q2, k2, v2 = _qkv(1, 1, 1, 16, 16, 200)
        sattn.sparse_attention(q2, k2, v2, S.Dense(), backend="rocc")


def test_bench_peers_include_cpu():
    q, k, v = _qkv(1, 1, 1, 64, 64, 16)
    peers = rocc.bench_peers(q, k, v, S.Dense(causal=True), scale=0.25, repeat=1)
    names = [p.name for p in peers]
    assert names == ["cpu", "rocc_unfused", "rocc_bwd"]
    bwd = peers[2]
    assert bwd.out is None and bwd.counters["last_error"] == 0 and bwd.counters["flops"] == 2 * bwd.counters["macs"] > 0
    np.testing.assert_allclose(peers[0].out, sattn.reference.attention(q, k, v, S.Dense(causal=True), scale=0.25),
                               atol=1e-5)


def test_every_error_code_raises_a_typed_fault_naming_it():
    consts = rocc._consts()
    for code, name in consts.ERRORS.items():
        if code == 0:
            assert rocc.raise_for_fault({"error": 0}) == {"error": 0}
            continue
        with pytest.raises(rocc.RoccFault, match=name) as e:
            rocc.raise_for_fault({"error": code})
        assert e.value.code == code and e.value.fault == name and e.value.doc == consts.ERROR_DOCS[name]


def test_row_too_long_through_the_api():
    # Dense over 65 key blocks of 64: every plan row has 65 entries, one more than the score SRAM holds.
    q, k, v = _qkv(1, 1, 1, 64 * 65, 64 * 65, 16)
    with pytest.raises(rocc.RoccFault, match="ROW_TOO_LONG") as e:
        sattn.sparse_attention(q, k, v, S.Dense(causal=False), backend="rocc", tile=64)
    assert e.value.fault == "ROW_TOO_LONG"


def test_watchdog_answers_a_code_not_a_hang():
    q, k, v = _qkv(1, 1, 1, 64, 64, 16)
    pl = sattn.plan(S.Dense(causal=True), q, k, tile=16)
    res = rocc._sim().run(q, k, v, pl.to_dict(), 0.25, watchdog_cycles=100)
    with pytest.raises(rocc.RoccFault, match="WATCHDOG"):
        rocc.raise_for_fault(res)
