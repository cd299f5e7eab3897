"""GPU-only checks at realistic shapes (bf16/fp16 on tensor cores, head dims, decode, memory).

Skipped without CUDA: the interpreter tests (kernels_test, plans_test, op_test) cover the same
kernels' logic on CPU. Run on the GPU machine with `python -m pytest gpu/tests`.
"""
import math

import helpers as H  # noqa: I001
import pytest
import torch

import sattn
from sattn_triton import ops
from sattn_triton import plans as P

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none found)")

SPECS = [
    sattn.Dense(causal=True),
    sattn.Dense(causal=False),
    sattn.SlidingWindow(window=100, causal=True, dilation=1, global_tokens=16),
    sattn.SlidingWindow(window=64, causal=False, dilation=2),
    sattn.BlockTopK(block=64, keep=0.25, causal=True),
    sattn.BlockTopK(block=128, keep=0.25, causal=False),
    sattn.TopKPerQuery(k=32, causal=True),
]


def run_check(spec, shape, dtype, seed=0, tile=64, plan_from=None):
    """Forward + backward of `spec` against the float64 reference. plan_from(q, k) -> plan runs
    the kernels on that plan (as Dense with the spec's causal flag) instead of sattn's planner."""
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, v = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, dtype, seed=seed, requires_grad=True)
    if plan_from is None:
        out, lse = ops.attention(q, k, v, spec, tile=tile)
    else:
        out, lse = ops.attention(q, k, v, sattn.Dense(causal=spec.causal), plan=plan_from(q, k))
    dout = torch.randn_like(out)
    out.backward(dout)
    q64, k64, v64 = H.leaf64(q), H.leaf64(k), H.leaf64(v)
    ro, rl = H.reference(q64, k64, v64, spec)
    ro.backward(dout.double().cpu())
    tol = H.TOL[dtype]
    errs = dict(out=H.rel_err(out, ro), lse=H.rel_err(lse, rl), dq=H.rel_err(q.grad, q64.grad),
                dk=H.rel_err(k.grad, k64.grad), dv=H.rel_err(v.grad, v64.grad))
    lim = dict(out=tol["out"], lse=tol["lse"], dq=tol["grad"], dk=tol["grad"], dv=tol["grad"])
    assert all(errs[n] <= lim[n] for n in errs), f"{spec} {shape} {dtype}: {errs} vs {lim}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_specs_at_1k_gqa(spec, dtype):
    run_check(spec, (2, 4, 2, 1000, 1000, 128), dtype)


def bigbird_block_plan(spec, q, k):
    """BigBird's plan from the contract's mask (block granular, causal rule on the diagonal),
    without the host planner: the GPU machine's Python may have no matching `sattn._cc`."""
    B, Hq, Lq, _ = q.shape
    Lk = k.shape[2]
    mask = sattn.dense_mask(spec, q, k)[0, 0]              # the same for every (b, head)
    blk = spec.block
    nkb, first, nqb = P._geometry(Lq, Lk, blk)
    padded = torch.zeros(nqb * blk, nkb * blk, dtype=torch.bool, device=mask.device)
    lead = (Lk - Lq) - first * blk
    padded[lead:lead + Lq, :Lk] = mask
    kept = padded.view(nqb, blk, nkb, blk).any(3).any(1)
    return P.from_block_table(kept[None, None], B=B, Hq=Hq, Lq=Lq, Lk=Lk, block=blk, causal=spec.causal)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("spec", [
    sattn.BigBird(block=64, window_blocks=1, global_blocks=1, random_blocks=2, seed=3, causal=True),
    sattn.BigBird(block=128, window_blocks=3, global_blocks=0, random_blocks=1, seed=5, causal=False),
], ids=str)
def test_bigbird_at_1k_gqa(spec, dtype):
    """BigBird on the tensor cores (fwd + bwd vs the float64 reference): through the host planner
    when this Python has `sattn._cc`, and always through a plan built from the contract's mask
    (which is block-granular for BigBird), so the GPU run covers BigBird either way."""
    shape = (2, 4, 2, 1000, 1000, 128)
    if H.has_host_planner():
        run_check(spec, shape, dtype)
    run_check(spec, shape, dtype, seed=7, plan_from=lambda q, k: bigbird_block_plan(spec, q, k))


@pytest.mark.parametrize("D", [64, 80, 96, 256])
def test_head_dims(D):
    run_check(sattn.BlockTopK(block=64, keep=0.3, causal=True), (1, 2, 1, 700, 700, D), torch.bfloat16, seed=D)


def test_fp32_inputs_use_exact_dots():
    run_check(sattn.SlidingWindow(window=64, causal=True), (1, 2, 2, 513, 513, 64), torch.float32)


@pytest.mark.parametrize("Lq", [1, 4, 16])
def test_decode_long_kv(Lq):
    spec = sattn.BlockTopK(block=64, keep=0.125, causal=True)
    q, k, v = H.make_qkv(1, 8, 2, Lq, 8192, 128, torch.bfloat16, seed=Lq)
    out, lse = ops.attention(q, k, v, spec)
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    assert H.rel_err(out, ro) < H.TOL[torch.bfloat16]["out"] and H.rel_err(lse, rl) < 2e-3


@pytest.mark.parametrize("spec", [sattn.Dense(causal=True), sattn.SlidingWindow(window=1024, causal=True)],
                         ids=str)
def test_gqa_decode_packed_matches_one_head_layout(spec, monkeypatch):
    """Decode with GQA 32:8 on the GPU: the packed forward (a group per program) against the
    reference and against the one-head layout."""
    q, k, v = H.make_qkv(1, 32, 8, 1, 16384, 128, torch.bfloat16, seed=3)
    out, lse = ops.attention(q, k, v, spec)
    from sattn_triton import forward as F
    monkeypatch.setattr(F, "gqa_pack", lambda *args: 1)
    one, l1 = ops.attention(q, k, v, spec)
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    assert H.rel_err(out, ro) < H.TOL[torch.bfloat16]["out"] and H.rel_err(lse, rl) < 2e-3
    assert (out.float() - one.float()).abs().max().item() < 1e-2 and H.rel_err(lse, l1) < 1e-4


def test_dense_matches_sdpa_flash():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v = H.make_qkv(1, 8, 8, 4096, 4096, 128, torch.bfloat16, seed=7)
    out, _ = ops.attention(q, k, v, sattn.Dense(causal=True))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out.float() - ref.float()).abs().max().item() < 2e-2


def test_extra_memory_is_linear_in_length():
    """Forward+backward at L=16384 must allocate far less than one L x L score matrix per head."""
    spec = sattn.BlockTopK(block=128, keep=0.125, causal=True)
    L, Hh, D = 16384, 4, 128
    q, k, v = H.make_qkv(1, Hh, Hh, L, L, D, torch.bfloat16, seed=8, requires_grad=True)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out, lse = ops.attention(q, k, v, spec)
    out.sum().backward()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    qkv_bytes = 3 * q.numel() * q.element_size()
    assert extra < 6 * qkv_bytes, f"extra {extra / 2**20:.0f} MiB vs q,k,v {qkv_bytes / 2**20:.0f} MiB"
    assert extra < Hh * L * L * 2 / 8, "an L x L tensor was materialised"


def test_device_plan_has_no_host_sync():
    """Selection + attention under a CUDA graph capture: any device-to-host copy would fail."""
    spec = sattn.BlockTopK(block=64, keep=0.25, causal=True)
    q, k, v = H.make_qkv(1, 4, 4, 2048, 2048, 64, torch.bfloat16, seed=9)
    ops.attention(q, k, v, spec)   # compile kernels outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        with torch.cuda.graph(g):
            out, lse = ops.attention(q, k, v, spec)
    g.replay()
    torch.cuda.synchronize()
    ref, _ = ops.attention(q, k, v, spec)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("score", ["mean", "max"])
def test_block_topk_plan_matches_contract_at_4k(score):
    from plans_test import assert_blocks_match, block_scores64
    import numpy as np
    q, k, _ = H.make_qkv(1, 2, 2, 4096, 4096, 64, torch.bfloat16, seed=10)
    scale = 1 / math.sqrt(64)
    plan = P.build_block_topk(q, k, block=128, keep=0.125, global_blocks=1, local_blocks=1, causal=True, scale=scale,
                              score=score)
    got = P.to_block_table(plan).cpu().numpy()
    forced, n = P.block_topk_counts(4096, 4096, 128, 0.125, 1, 1, True)
    s = block_scores64(q.float(), k.float(), 128, scale, score)
    want = np.zeros_like(got)
    for r in range(want.shape[2]):
        cand = np.where(forced[r], np.inf, np.where(np.arange(want.shape[3]) <= r, s[:, :, r], -np.inf))
        order = np.argsort(-cand, axis=-1, kind="stable")[..., : n[r]]
        np.put_along_axis(want[:, :, r], order, True, axis=-1)
    assert_blocks_match(got, want, s, forced, n)
