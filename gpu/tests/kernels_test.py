"""Forward and backward of every spec vs the float64 reference (values and autograd gradients).

Without a GPU this runs the Triton kernels under TRITON_INTERPRET=1 on CPU tensors (helpers.py),
at small shapes chosen to hit the edges: GQA, Lq < Lk (queries are the last rows), L not a
multiple of the block, L = 1, rows with no visible key, causal and not.
"""
import math

import numpy as np

import helpers as H  # noqa: I001  (sets TRITON_INTERPRET before Triton is imported)
import pytest
import torch

import sattn
from sattn_triton import common as C
from sattn_triton import forward as F
from sattn_triton import ops

SPECS = [
    sattn.Dense(causal=False),
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=7, causal=True, dilation=2, global_tokens=3),
    sattn.SlidingWindow(window=9, causal=False),
    sattn.SlidingWindow(window=5, causal=False, dilation=3, global_tokens=20),
    sattn.BlockTopK(block=16, keep=0.3, causal=True),
    sattn.BlockTopK(block=32, keep=0.5, global_blocks=0, local_blocks=2, causal=False),
    sattn.BlockTopK(block=16, keep=0.4, global_blocks=0, local_blocks=0, causal=False, score="max"),
    sattn.BigBird(block=16, window_blocks=1, global_blocks=1, random_blocks=1, seed=3, causal=True),
    sattn.BigBird(block=16, window_blocks=3, global_blocks=0, random_blocks=1, seed=5, causal=False),
    sattn.TopKPerQuery(k=5, causal=True),
    sattn.TopKPerQuery(k=7, causal=False),
]
# (B, Hq, Hkv, Lq, Lk, D)
SHAPES = [
    (1, 4, 2, 40, 40, 32),    # GQA, L not a multiple of 16
    (2, 2, 2, 5, 70, 16),     # Lq < Lk: the last 5 positions; batch 2
    (1, 1, 1, 1, 33, 64),     # a single query
]

HOST = pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")


def needs_host(spec) -> bool:
    return isinstance(spec, sattn.BigBird)


def check(spec, shape, dtype, seed=0, **kw):
    if needs_host(spec) and not H.has_host_planner():
        pytest.skip("sattn._cc (host planner) not built")
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, v = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, dtype, seed=seed, requires_grad=True)
    out, lse = ops.attention(q, k, v, spec, tile=16, **kw)
    assert out.dtype == dtype and out.shape == (B, Hq, Lq, D)
    assert lse.dtype == torch.float32 and lse.shape == (B, Hq, Lq)
    g = torch.Generator().manual_seed(seed + 1)
    dout = torch.randn(out.shape, generator=g).to(dtype).to(out.device)
    dlse = torch.randn(lse.shape, generator=g).to(lse.device)
    # The LSE output is differentiable too; weight it so both paths are checked.
    ((out.float() * dout.float()).sum() + (torch.where(torch.isinf(lse), 0.0, lse) * dlse).sum()).backward()

    q64, k64, v64 = H.leaf64(q), H.leaf64(k), H.leaf64(v)
    ro, rl = H.reference(q64, k64, v64, spec)
    ((ro * dout.double().cpu()).sum() + (torch.where(torch.isinf(rl), 0.0, rl) * dlse.double().cpu()).sum()).backward()
    tol = H.TOL[dtype]
    assert torch.equal(torch.isinf(lse).cpu(), torch.isinf(rl)), "rows with no visible key differ"
    errs = {
        "out": H.rel_err(out, ro), "lse": H.rel_err(lse, rl),
        "dq": H.rel_err(q.grad, q64.grad), "dk": H.rel_err(k.grad, k64.grad), "dv": H.rel_err(v.grad, v64.grad),
    }
    limits = {"out": tol["out"], "lse": tol["lse"], "dq": tol["grad"], "dk": tol["grad"], "dv": tol["grad"]}
    bad = {n: e for n, e in errs.items() if not e <= limits[n]}
    assert not bad, f"{spec} {shape} {dtype}: errors {errs} over limits {limits}"


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_fp32_every_spec_and_shape(spec, shape):
    check(spec, shape, torch.float32)


# Lengths that are multiples of every tile and plan block, D a power of two: the EVEN launches,
# whose tile loads carry no bounds masks (every shape in SHAPES is ragged). The interpreter's tiles
# are 16 rows; a GPU's planless tiles reach 128.
EVEN_SHAPES = [
    (1, 4, 2, 64, 64, 32),    # GQA
    (1, 2, 1, 32, 64, 16),    # Lq < Lk
] if C.INTERPRETED else [(1, 4, 2, 256, 256, 32), (1, 2, 1, 128, 256, 64)]


@pytest.mark.parametrize("shape", EVEN_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_fp32_even_lengths(spec, shape, monkeypatch):
    from sattn_triton import backward as Bw
    seen = []

    def spy(*args):
        seen.append(C.even_tiles(*args))
        return seen[-1]
    monkeypatch.setattr(F, "even_tiles", spy)
    monkeypatch.setattr(Bw, "even_tiles", spy)
    check(spec, shape, torch.float32, seed=5)
    assert seen and all(seen), seen     # forward, dq and dk/dv all took the unmasked variant


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_half_precision(spec, dtype):
    check(spec, SHAPES[0], dtype, seed=3)


@HOST
@pytest.mark.parametrize("spec", [sattn.Dense(causal=True), sattn.SlidingWindow(window=7, causal=True, dilation=2, global_tokens=3),
                                  sattn.SlidingWindow(window=9, causal=False)], ids=str)
def test_planless_paths_match_the_plan_path(spec):
    """Dense/SlidingWindow run without a plan; the same spec through the host plan (rule masks)
    must give the same result up to fp32 summation order."""
    q, k, v = H.make_qkv(1, 2, 1, 37, 37, 32, torch.float32, seed=7)
    a, la = ops.attention(q, k, v, spec)
    b, lb = ops.attention(q, k, v, spec, force_plan=True, tile=16)
    assert H.rel_err(a, b) < 1e-5 and H.rel_err(la, lb) < 1e-5


@HOST
def test_host_plan_and_device_plan_agree_for_block_topk():
    spec = sattn.BlockTopK(block=16, keep=0.25, causal=True)
    q, k, v = H.make_qkv(1, 2, 2, 64, 64, 32, torch.float32, seed=11)
    host = sattn.plan(spec, q.cpu(), k.cpu())
    a, la = ops.attention(q, k, v, spec, plan=host)
    b, lb = ops.attention(q, k, v, spec)
    assert H.rel_err(a, b) < 1e-6 and H.rel_err(la, lb) < 1e-6


@pytest.mark.parametrize("splits", [2, 3, 7])
def test_decode_split_k_combines_by_lse(splits):
    """Lq <= 16 with a long KV: the key tiles are split over programs and merged by LSE."""
    spec = sattn.SlidingWindow(window=40, causal=True, global_tokens=2)
    q, k, v = H.make_qkv(1, 4, 2, 3, 300, 32, torch.float32, seed=5)
    scale = 1 / math.sqrt(32)
    one, l1 = F.forward(q, k, v, scale=scale, mode=2, causal=True, window=40, global_tokens=2, num_splits=1)
    many, lm = F.forward(q, k, v, scale=scale, mode=2, causal=True, window=40, global_tokens=2, num_splits=splits)
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    assert H.rel_err(many, ro) < 1e-5 and H.rel_err(lm, rl) < 1e-5
    assert H.rel_err(many, one) < 1e-5


def test_decode_auto_split_dense():
    q, k, v = H.make_qkv(1, 2, 2, 1, 600, 64, torch.float16, seed=9)
    out, lse = ops.attention(q, k, v, sattn.Dense(causal=True))
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), sattn.Dense(causal=True))
    assert H.rel_err(out, ro) < H.TOL[torch.float16]["out"] and H.rel_err(lse, rl) < 1e-3


def test_rows_without_visible_keys_are_zero_with_lse_minus_inf():
    """No built-in spec empties a row (every query sees itself or a forced block), so pass a plan
    with an empty row: its outputs must be 0, LSE -inf, and its gradients 0 (not NaN)."""
    from sattn_triton import plans as P
    B, Hq, L, D, blk = 1, 1, 32, 16, 16
    kept = torch.zeros(1, 1, 2, 2, dtype=torch.bool, device=H.DEVICE)
    kept[0, 0, 1, 0] = True   # query block 1 sees key block 0; query block 0 sees nothing
    plan = P.from_block_table(kept, B=B, Hq=Hq, Lq=L, Lk=L, block=blk, causal=False)
    q, k, v = H.make_qkv(B, Hq, Hq, L, L, D, torch.float32, seed=2, requires_grad=True)
    out, lse = ops.attention(q, k, v, sattn.Dense(), plan=plan)
    assert torch.all(out[0, 0, :16] == 0) and torch.all(torch.isneginf(lse[0, 0, :16]))
    assert torch.all(torch.isfinite(lse[0, 0, 16:]))
    mask = torch.zeros(1, 1, L, L, dtype=torch.bool)
    mask[0, 0, 16:, :16] = True
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), None, mask=mask.numpy())
    assert H.rel_err(out, ro) < 1e-5
    out.sum().backward()
    assert torch.all(torch.isfinite(q.grad)) and torch.all(q.grad[0, 0, :16] == 0)


@pytest.mark.parametrize("D", [48, 80, 96])
def test_head_dims_that_are_not_powers_of_two(D):
    check(sattn.Dense(causal=True), (1, 2, 1, 20, 20, D), torch.float16, seed=D)


# Windows wider than the 16-wide interpreter tiles, so the planless kernels walk a run of full
# tiles (no mask code) between masked flanks; Lq < Lk, a ragged Lk and global tokens move the
# flank boundaries.
@pytest.mark.parametrize("spec", [
    sattn.Dense(causal=False),
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=40, causal=True),
    sattn.SlidingWindow(window=35, causal=False),
    sattn.SlidingWindow(window=33, causal=True, global_tokens=5),
    sattn.SlidingWindow(window=20, causal=False, dilation=2, global_tokens=3),
], ids=str)
@pytest.mark.parametrize("shape", [(1, 2, 1, 150, 150, 16), (1, 2, 2, 70, 150, 16)], ids=lambda s: "x".join(map(str, s)))
def test_planless_full_tile_runs(spec, shape):
    check(spec, shape, torch.float32, seed=21)


@pytest.mark.parametrize("Lq,Lk", [(96, 96), (90, 90), (40, 96)])
def test_rule_free_plan_skips_the_mask(Lq, Lk):
    """A non-causal static plan with 32-blocks walked by 16-wide tiles: with Lk a multiple of the
    block the kernels compile without mask code (HAS_MASK=False); a ragged Lk keeps it. Lq < Lk
    puts query rows before the first query inside a walked block (they must add nothing)."""
    from sattn_triton import plans as P
    blk = 32
    nkb = -(-Lk // blk)
    qbb = (Lk - Lq) // blk
    g = torch.Generator().manual_seed(Lq + Lk)
    kept = torch.rand(1, 2, nkb - qbb, nkb, generator=g) < 0.5
    kept[..., 0] = True
    kept = kept.to(H.DEVICE)
    plan = P.from_block_table(kept, B=1, Hq=2, Lq=Lq, Lk=Lk, block=blk, causal=False)
    assert F.has_mask(0, False, False, False, Lk, blk) == (Lk % blk != 0)
    q, k, v = H.make_qkv(1, 2, 2, Lq, Lk, 16, torch.float32, seed=4, requires_grad=True)
    out, lse = ops.attention(q, k, v, sattn.Dense(), plan=plan)
    dout = torch.randn_like(out)
    out.backward(dout)
    rows = (torch.arange(Lq) + Lk - Lq) // blk - qbb
    cols = torch.arange(Lk) // blk
    mask = kept.cpu()[:, :, rows][:, :, :, cols]
    q64, k64, v64 = H.leaf64(q), H.leaf64(k), H.leaf64(v)
    ro, rl = H.reference(q64, k64, v64, None, mask=mask.numpy())
    ro.backward(dout.double().cpu())
    assert H.rel_err(out, ro) < 1e-5 and H.rel_err(lse, rl) < 1e-5
    for got, ref in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        assert H.rel_err(got, ref) < 1e-4


@pytest.mark.parametrize("splits", [2, 5, 40])
def test_split_k_combine_keeps_empty_rows_empty(splits):
    """Split-K with a row no split sees (a plan's empty query block) and splits that see nothing
    for some rows: the one-launch LSE merge must give 0 / -inf there and the reference elsewhere;
    40 splits exercise the merge's chunked loop (16 splits per step) with padding."""
    from sattn_triton import plans as P
    B, Hq, Lq, Lk, D, blk = 1, 2, 20, 640, 32, 16
    nkb, qbb = Lk // blk, (Lk - Lq) // blk
    kept = torch.zeros(1, Hq, nkb - qbb, nkb, dtype=torch.bool, device=H.DEVICE)
    kept[0, :, -1, :7] = True          # the last query block sees key blocks 0..6
    plan = P.from_block_table(kept, B=B, Hq=Hq, Lq=Lq, Lk=Lk, block=blk, causal=False)
    q, k, v = H.make_qkv(B, Hq, Hq, Lq, Lk, D, torch.float32, seed=12)
    out, lse = F.forward(q, k, v, scale=0.2, mode=0, causal=False, plan=plan, num_splits=splits)
    rows = (torch.arange(Lq) + Lk - Lq) // blk - qbb
    mask = kept.cpu()[:, :, rows][:, :, :, torch.arange(Lk) // blk]
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), None, mask=mask.numpy(), scale=0.2)
    empty = ~mask.any(-1)
    assert empty.any() and (~empty).any()
    assert torch.all(out.cpu()[empty] == 0) and torch.all(torch.isneginf(lse.cpu()[empty]))
    assert H.rel_err(out, ro) < 1e-5 and H.rel_err(lse.cpu()[~empty], rl[~empty]) < 1e-5


GQA_DECODE_SPECS = [
    sattn.Dense(causal=True),
    sattn.Dense(causal=False),
    sattn.SlidingWindow(window=40, causal=True, global_tokens=2),
    sattn.SlidingWindow(window=9, causal=False, dilation=2),
    sattn.BigBird(block=16, window_blocks=1, global_blocks=1, random_blocks=1, seed=3, causal=True),
    sattn.BlockTopK(block=16, keep=0.3, causal=True),      # per-head plans: not packed
]


@pytest.mark.parametrize("spec", GQA_DECODE_SPECS, ids=str)
@pytest.mark.parametrize("shape", [(2, 8, 2, 1, 300, 32), (1, 8, 1, 3, 150, 16), (1, 4, 2, 5, 77, 32),
                                   (1, 6, 2, 2, 90, 16)], ids=lambda s: "x".join(map(str, s)))
def test_gqa_decode_packs_the_group(spec, shape, monkeypatch):
    """Decode with GQA: the forward reads each K/V tile once per group (gqa_pack: the group's heads
    share a program's rows). Values against the reference and the one-head layout; group 3 (6:2)
    is not a power of two and stays unpacked."""
    if needs_host(spec) and not H.has_host_planner():
        pytest.skip("sattn._cc (host planner) not built")
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, v = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=Lk)
    packed, lp = ops.attention(q, k, v, spec, tile=16)
    monkeypatch.setattr(F, "gqa_pack", lambda *args: 1)
    single, ls = ops.attention(q, k, v, spec, tile=16)
    ro, rl = H.reference(H.leaf64(q), H.leaf64(k), H.leaf64(v), spec)
    assert H.rel_err(packed, ro) < 1e-5 and H.rel_err(lp, rl) < 1e-5
    assert H.rel_err(packed, single) < 1e-5 and H.rel_err(lp, ls) < 1e-5


def test_gqa_pack_choice():
    from sattn_triton import plans as P
    assert F.gqa_pack(1, 8, 16) == 8 and F.gqa_pack(16, 4, 16) == 4
    assert F.gqa_pack(17, 8, 16) == 1          # prefill: one head per program
    assert F.gqa_pack(1, 6, 16) == 1           # not a power of two
    assert F.gqa_pack(1, 32, 16) == 1          # larger than the row tile
    kept = torch.ones(1, 2, 1, 4, dtype=torch.bool)
    per_head = P.from_block_table(kept, B=1, Hq=2, Lq=1, Lk=64, block=16, causal=False)
    assert F.gqa_pack(1, 2, 16, per_head) == 1  # heads walk different keys


@pytest.mark.parametrize("spec", [sattn.Dense(causal=True), sattn.SlidingWindow(window=9, causal=True, global_tokens=2)],
                         ids=str)
def test_gqa_decode_packed_forward_then_backward(spec):
    """Gradients through a packed GQA decode forward (its LSE feeds the backward)."""
    assert F.gqa_pack(3, 4, 16) == 4
    check(spec, (1, 8, 2, 3, 70, 32), torch.float32, seed=31)
    check(spec, (2, 4, 1, 1, 45, 16), torch.float16, seed=32)


def test_register_cap_of_the_dq_launch(monkeypatch):
    """An 8-warp plan dq runs under a 128-register cap (Triton's maxnreg); other launches take none,
    and the interpreter takes no launch options at all."""
    from sattn_triton import backward as Bw
    monkeypatch.setattr(C, "INTERPRETED", False)
    assert C.register_cap(Bw.dq_register_cap(C.MODE_PLAN, 8)) == {"maxnreg": 128}
    assert C.register_cap(Bw.dq_register_cap(C.MODE_PLAN, 4)) == {}
    assert C.register_cap(Bw.dq_register_cap(C.MODE_SLIDING, 8)) == {}
    monkeypatch.setattr(C, "INTERPRETED", True)
    assert C.register_cap(128) == {}


@pytest.mark.parametrize("where", ["q", "k", "v_inf", "k_masked_tile"])
@pytest.mark.parametrize("spec", [sattn.Dense(causal=False), sattn.Dense(causal=True),
                                  sattn.SlidingWindow(window=4, causal=True)], ids=str)
def test_non_finite_inputs_poison_the_rows_that_see_them(spec, where):
    """docs/contract.md, "Non-finite inputs": the rows that see a NaN/Inf are NaN (out and lse),
    every other row equals the run with that value replaced by 0, bit for bit. The Triton
    exception (docs/backends/gpu.md): a non-finite v in a masked tile also reaches the rows of
    that tile that do not see it (0 * inf in p.v), so there the NaN rows are a superset."""
    B, Hq, Hkv, L, D = 1, 4, 2, 40, 16
    q, k, v = H.make_qkv(B, Hq, Hkv, L, L, D, torch.float32, seed=31)
    bad = {"q": (q, (0, 1, 21, 3), float("nan")), "k": (k, (0, 0, 20, 0), float("nan")),
           "v_inf": (v, (0, 1, 20, 2), float("inf")),
           # j = 17 sits in a masked tile of rows that do not see it.
           "k_masked_tile": (k, (0, 0, 17, 5), float("nan"))}[where]
    t, idx, val = bad
    clean = [x.clone() for x in (q, k, v)]
    t[idx] = val
    out, lse = ops.attention(q, k, v, spec, tile=16)
    ref_out, ref_lse = ops.attention(*clean, spec, tile=16)
    _, want_lse = sattn.reference.attention(q.cpu(), k.cpu(), v.cpu(), spec, return_lse=True)
    want = torch.from_numpy(np.isnan(want_lse))
    assert want.any()
    got = torch.isnan(lse).cpu()
    assert torch.equal(torch.isnan(out.cpu()).all(-1), got) and not torch.isnan(out.cpu()[~got]).any()
    if where == "v_inf" and spec != sattn.Dense(causal=False):
        assert not (want & ~got).any(), "a row that sees the Inf is not NaN"
    else:
        assert torch.equal(got, want), f"poisoned rows {got.nonzero().tolist()} != {want.nonzero().tolist()}"
    keep = ~got
    assert torch.equal(out.cpu()[keep], ref_out.cpu()[keep]) and torch.equal(lse.cpu()[keep], ref_lse.cpu()[keep])


def test_split_k_decode_keeps_a_poisoned_split_poisoned():
    """Decode splits the keys over programs: a split that saw a NaN makes the merged row NaN."""
    q, k, v = H.make_qkv(1, 2, 2, 2, 300, 32, torch.float32, seed=7)
    v[0, 0, 250, 0] = float("nan")
    out, lse = F.forward(q, k, v, scale=1 / math.sqrt(32), mode=C.MODE_DENSE, causal=True, num_splits=4)
    assert torch.isnan(lse[0, 0]).all() and torch.isnan(out[0, 0]).all()
    assert torch.isfinite(lse[0, 1]).all() and torch.isfinite(out[0, 1]).all()


def test_minus_inf_score_weighs_zero_on_triton():
    """The other documented Triton exception: a seen score of exactly -inf (here k_j = -inf on one
    dimension, q_i > 0 there) weighs 0 instead of poisoning the row; a +inf score poisons it."""
    q, k, v = H.make_qkv(1, 1, 1, 8, 8, 16, torch.float32, seed=3)
    q[..., 0] = q[..., 0].abs() + 0.5
    k[0, 0, 2, 0] = float("-inf")
    out, lse = ops.attention(q, k, v, sattn.Dense(), tile=16)
    assert torch.isfinite(lse).all() and torch.isfinite(out).all()
    k[0, 0, 2, 0] = float("inf")
    out, lse = ops.attention(q, k, v, sattn.Dense(), tile=16)
    assert torch.isnan(lse).all() and torch.isnan(out).all()
