"""Device planners vs the contract (sattn.dense_mask) and vs the shared host planner (sattn.plan).

The device planners pool in fp32 and score in float64 (BlockTopK) or score in fp32 (TopKPerQuery),
while the host scores everything in float64. They must select the same blocks/keys except where
two candidates' float64 scores are within EPS (relative) of each other at the selection boundary.
"""
import math

import helpers as H  # noqa: I001
import numpy as np
import pytest
import torch

import sattn
from sattn.mask import dense_mask
from sattn_triton import plans as P

EPS_BLOCK = 1e-5   # BlockTopK: fp32 pooling vs float64 pooling of block means
EPS_QUERY = 1e-4   # TopKPerQuery: fp32 q.k vs float64 q.k


def expand(plan: P.GpuPlan, causal: bool) -> np.ndarray:
    """Bool (B, Hq, Lq, Lk) of a device plan: -1 full, -2 causal token rule, m >= 0 bitmap m."""
    row_ptr = plan.row_ptr.cpu().numpy()
    col = plan.col_idx.cpu().numpy()
    mask = plan.mask_idx.cpu().numpy()
    bits = plan.bitmaps.cpu().numpy().view(np.uint64).reshape(-1, plan.block, plan.words_per_row)
    blk, q_first = plan.block, plan.Lk - plan.Lq
    out = np.zeros((plan.B, plan.Hq, plan.Lq, plan.Lk), dtype=bool)
    for b in range(plan.B):
        for h in range(plan.Hq):
            for r in range(plan.n_q_blocks):
                row = ((b if plan.plan_b > 1 else 0) * plan.plan_h + (h if plan.plan_h > 1 else 0)) * plan.n_q_blocks + r
                a = r + plan.q_block_begin
                p = np.arange(max(a * blk, q_first), min((a + 1) * blk, plan.Lk))
                for e in range(row_ptr[row], row_ptr[row + 1]):
                    c = int(col[e])
                    j = np.arange(c * blk, min((c + 1) * blk, plan.Lk))
                    if mask[e] == -1:
                        tile = np.ones((len(p), len(j)), bool)
                    elif mask[e] == -2:
                        tile = (j[None, :] <= p[:, None]) if causal else np.ones((len(p), len(j)), bool)
                    else:
                        w = bits[mask[e]][p - a * blk][:, (j - c * blk) // 64]
                        tile = ((w >> ((j - c * blk) % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)
                    out[b, h, p[0] - q_first:p[-1] + 1 - q_first, j[0]:j[-1] + 1] |= tile
    return out


def block_scores64(q, k, block, scale, score="mean"):
    """float64 block scores of the contract, written independently of both planners: "mean" is
    scale * mean(q block) . mean(k block), "max" is scale * max_{i in a, j in c} q_i . k_j."""
    qn, kn = q.double().cpu().numpy(), k.double().cpu().numpy()
    B, Hq, Lq, D = qn.shape
    Lk = kn.shape[2]
    kn = kn.repeat(Hq // kn.shape[1], axis=1)
    nkb = -(-Lk // block)
    qbb = (Lk - Lq) // block
    s = scale * np.einsum("bhid,bhjd->bhij", qn, kn) if score == "max" else None   # (B, Hq, Lq, Lk)
    out = np.zeros((B, Hq, nkb - qbb, nkb))
    for a in range(qbb, nkb):
        rows = slice(max(a * block, Lk - Lq) - (Lk - Lq), min((a + 1) * block, Lk) - (Lk - Lq))
        for c in range(nkb):
            cols = slice(c * block, min((c + 1) * block, Lk))
            if score == "mean":
                out[:, :, a - qbb, c] = scale * (qn[:, :, rows].mean(2) * kn[:, :, cols].mean(2)).sum(-1)
            else:
                out[:, :, a - qbb, c] = s[:, :, rows, cols].max(axis=(2, 3))
    return out


def assert_blocks_match(got, want, scores, forced, n):
    """got/want: (B,Hq,nqb,nkb) bool. Differences allowed only at near-tied selection boundaries."""
    diff = np.argwhere(got != want)
    for b, h, r, c in diff:
        s = np.where(forced[r], np.inf, scores[b, h, r])
        order = np.sort(s[np.isfinite(s)])[::-1]
        cut = order[n[r] - forced[r].sum() - 1]
        assert abs(scores[b, h, r, c] - cut) <= EPS_BLOCK * max(1.0, abs(cut)), \
            f"block ({b},{h},{r},{c}) differs and is not a near tie: {scores[b, h, r, c]} vs cut {cut}"


BLOCK_TOPK = [
    (sattn.BlockTopK(block=16, keep=0.25, causal=True), (2, 4, 2, 100, 100, 32)),
    (sattn.BlockTopK(block=16, keep=0.3, global_blocks=2, local_blocks=2, causal=False), (1, 2, 2, 37, 90, 16)),
    (sattn.BlockTopK(block=32, keep=0.125, causal=True), (1, 2, 1, 1, 300, 16)),
    (sattn.BlockTopK(block=16, keep=1.0, causal=False), (1, 1, 1, 20, 50, 16)),
    # Budgets above the forced blocks, so the scores decide (the cases above are mostly forced).
    (sattn.BlockTopK(block=16, keep=0.5, global_blocks=0, local_blocks=0, causal=False), (2, 4, 2, 100, 160, 32)),
    (sattn.BlockTopK(block=16, keep=0.5, causal=True), (1, 2, 1, 200, 200, 16)),
    (sattn.BlockTopK(block=16, keep=0.5, global_blocks=0, local_blocks=0, causal=False, score="max"),
     (2, 4, 2, 100, 160, 32)),
    (sattn.BlockTopK(block=16, keep=0.5, causal=True, score="max"), (1, 2, 1, 200, 200, 16)),
    (sattn.BlockTopK(block=32, keep=0.4, global_blocks=1, local_blocks=0, causal=True, score="max"),
     (1, 2, 2, 37, 300, 16)),
]


@pytest.mark.parametrize("spec,shape", BLOCK_TOPK, ids=str)
def test_block_topk_device_plan_matches_contract(spec, shape):
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=1)
    scale = 1 / math.sqrt(D)
    plan = P.build_block_topk(q, k, block=spec.block, keep=spec.keep, global_blocks=spec.global_blocks,
                              local_blocks=spec.local_blocks, causal=spec.causal, scale=scale, score=spec.score)
    got = expand(plan, spec.causal)
    want = np.asarray(dense_mask(spec, q.cpu(), k.cpu()))
    if not np.array_equal(got, want):
        got_t = P.to_block_table(plan).cpu().numpy()
        forced, n = P.block_topk_counts(Lq, Lk, spec.block, spec.keep, spec.global_blocks, spec.local_blocks, spec.causal)
        want_t = np.zeros_like(got_t)
        nkb = want_t.shape[-1]
        qbb = (Lk - Lq) // spec.block
        for c in range(nkb):
            for r in range(want_t.shape[2]):
                a = r + qbb
                p = np.arange(max(a * spec.block, Lk - Lq), min((a + 1) * spec.block, Lk)) - (Lk - Lq)
                want_t[:, :, r, c] = want[:, :, p][:, :, :, c * spec.block:(c + 1) * spec.block].any((2, 3))
        assert_blocks_match(got_t, want_t, block_scores64(q, k, spec.block, scale, spec.score), forced, n)


@pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")
@pytest.mark.parametrize("spec,shape", BLOCK_TOPK, ids=str)
def test_block_topk_device_plan_matches_host_planner(spec, shape):
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=2)
    scale = 1 / math.sqrt(D)
    dev = P.build_block_topk(q, k, block=spec.block, keep=spec.keep, global_blocks=spec.global_blocks,
                             local_blocks=spec.local_blocks, causal=spec.causal, scale=scale, score=spec.score)
    host = P.from_host(sattn.plan(spec, q.cpu(), k.cpu(), scale=scale), H.DEVICE, bitmap_masks=False)
    got, want = P.to_block_table(dev).cpu().numpy(), P.to_block_table(host).cpu().numpy()
    forced, n = P.block_topk_counts(Lq, Lk, spec.block, spec.keep, spec.global_blocks, spec.local_blocks, spec.causal)
    assert_blocks_match(got, want, block_scores64(q, k, spec.block, scale, spec.score), forced, n)
    # Same entry classification: full (-1) vs partial (host bitmap >= 0, device token rule -2).
    if np.array_equal(got, want):
        assert np.array_equal(dev.mask_idx.cpu().numpy()[: int(dev.row_ptr[-1])] == -1,
                              host.mask_idx.cpu().numpy() == -1)


def test_block_topk_exact_ties_go_to_the_lower_block():
    """All key blocks identical: every non-forced score ties, so both planners keep the lowest."""
    spec = sattn.BlockTopK(block=16, keep=0.25, global_blocks=0, local_blocks=1, causal=False)
    q, k, _ = H.make_qkv(1, 1, 1, 128, 128, 16, torch.float32, seed=3)
    k = k[:, :, :16].repeat(1, 1, 8, 1).contiguous()
    plan = P.build_block_topk(q, k, block=16, keep=0.25, global_blocks=0, local_blocks=1, causal=False, scale=0.25)
    assert np.array_equal(expand(plan, False), np.asarray(dense_mask(spec, q.cpu(), k.cpu(), scale=0.25)))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", [
    dict(B=1, Hq=2, Hkv=1, Lq=100, Lk=100, keep=0.3, global_blocks=1, local_blocks=1, score="mean"),
    dict(B=2, Hq=2, Hkv=2, Lq=37, Lk=150, keep=0.5, global_blocks=0, local_blocks=2, score="max"),
    dict(B=1, Hq=1, Hkv=1, Lq=128, Lk=128, keep=1.0, global_blocks=2, local_blocks=0, score="mean"),
    dict(B=1, Hq=1, Hkv=1, Lq=128, Lk=128, keep=0.25, global_blocks=0, local_blocks=1, score="mean",
         ties=True),
], ids=str)
def test_block_topk_selection_kernel_equals_the_torch_selection(case, causal, monkeypatch):
    """The one-launch selection kernel (sattn_triton/topk_select.py) writes exactly the entries of the
    torch formulation (stable sort, ties to the lower block): GQA, Lq < Lk, keep 1, forced blocks,
    exact ties (identical key blocks), both score kinds."""
    c = dict(case)
    q, k, _ = H.make_qkv(c["B"], c["Hq"], c["Hkv"], c["Lq"], c["Lk"], 16, torch.float32, seed=8)
    if c.pop("ties", False):
        k = k[:, :, :16].repeat(1, 1, c["Lk"] // 16, 1).contiguous()
    kw = dict(block=16, keep=c["keep"], global_blocks=c["global_blocks"], local_blocks=c["local_blocks"],
              causal=causal, scale=0.25, score=c["score"])
    plans = {}
    for how in ("kernel", "torch"):
        use_selection(monkeypatch, how)
        plans[how] = P.build_block_topk(q, k, **kw)
    nnz = int(plans["torch"].row_ptr[-1])
    assert nnz > 0
    for field in ("col_idx", "mask_idx"):
        assert torch.equal(getattr(plans["kernel"], field)[:nnz], getattr(plans["torch"], field)[:nnz]), field


def use_selection(monkeypatch, how: str) -> None:
    """BlockTopK's selection path for the next plans: the Triton kernel (rows up to
    MAX_KEY_BLOCKS) or the torch formulation (the path of longer rows), at any shape."""
    monkeypatch.setattr(P, "selection_kernel", lambda n_k_blocks: how == "kernel")


def test_long_rows_take_the_torch_selection():
    from sattn_triton.topk_select import MAX_KEY_BLOCKS
    assert P.selection_kernel(MAX_KEY_BLOCKS) and not P.selection_kernel(MAX_KEY_BLOCKS + 1)


TOPK_Q = [
    (sattn.TopKPerQuery(k=5, causal=True), (1, 2, 1, 40, 40, 16), 16),
    (sattn.TopKPerQuery(k=9, causal=False), (2, 2, 2, 7, 70, 32), 32),
    (sattn.TopKPerQuery(k=100, causal=True), (1, 1, 1, 30, 50, 16), 16),   # k > visible keys
]


def assert_keys_match(got, want, q, k):
    diff = np.argwhere(got != want)
    if not len(diff):
        return
    qn, kn = q.double().cpu().numpy(), k.double().cpu().numpy()
    g = qn.shape[1] // kn.shape[1]
    for b, h, i, j in diff:
        s = qn[b, h, i] @ kn[b, h // g].T
        sel = s[want[b, h, i]]
        cut = sel.min()
        assert abs(s[j] - cut) <= EPS_QUERY * max(1.0, abs(cut)), f"key ({b},{h},{i},{j}) is not a near tie"


@pytest.mark.parametrize("spec,shape,block", TOPK_Q, ids=str)
def test_topk_per_query_device_plan_matches_contract(spec, shape, block):
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=4)
    plan = P.build_topk_per_query(q, k, topk=spec.k, causal=spec.causal, block=block)
    assert_keys_match(expand(plan, spec.causal), np.asarray(dense_mask(spec, q.cpu(), k.cpu())), q, k)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(1, 2, 1, 70, 70, 16), (2, 1, 1, 23, 90, 16)], ids=str)
def test_topk_per_query_capacity_is_reached_when_every_key_is_picked(shape, causal):
    """k >= Lk picks every visible key, so every reachable (query block, key block) cell is an entry:
    the data-independent capacity (half the grid when causal) is then exactly filled, never exceeded."""
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=8)
    spec = sattn.TopKPerQuery(k=Lk, causal=causal)
    plan = P.build_topk_per_query(q, k, topk=Lk, causal=causal, block=16)
    cap = P.topk_per_query_capacity(B, Hq, Lq, Lk, 16, Lk, causal)
    assert int(plan.row_ptr[-1]) == cap and plan.col_idx.numel() == cap + 1
    assert_keys_match(expand(plan, causal), np.asarray(dense_mask(spec, q.cpu(), k.cpu())), q, k)
    if causal and Lq == Lk:   # about half of the non-causal grid (less saved when Lq < Lk)
        assert cap < P.topk_per_query_capacity(B, Hq, Lq, Lk, 16, Lk, False) * 0.75


@pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")
@pytest.mark.parametrize("spec,shape,block", TOPK_Q, ids=str)
def test_topk_per_query_device_plan_matches_host_planner(spec, shape, block):
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=5)
    dev = P.build_topk_per_query(q, k, topk=spec.k, causal=spec.causal, block=block)
    host = sattn.plan(spec, q.cpu(), k.cpu(), tile=block)
    assert_keys_match(expand(dev, spec.causal), host.to_dense_mask(), q, k)


def test_transpose_lists_the_same_entries():
    spec = sattn.BlockTopK(block=16, keep=0.3, causal=True)
    q, k, _ = H.make_qkv(2, 2, 1, 60, 90, 16, torch.float32, seed=6)
    plan = P.build_block_topk(q, k, block=16, keep=0.3, global_blocks=1, local_blocks=1, causal=True, scale=0.25)
    col_ptr, t_row, t_mask = (x.cpu().numpy() for x in P.transpose(plan))
    row_ptr, col, mask = (x.cpu().numpy() for x in (plan.row_ptr, plan.col_idx, plan.mask_idx))
    fwd = set()
    for row in range(plan.rows):
        for e in range(row_ptr[row], row_ptr[row + 1]):
            fwd.add((row // plan.n_q_blocks, row % plan.n_q_blocks, int(col[e]), int(mask[e])))
    bwd = set()
    for cidx in range(len(col_ptr) - 1):
        rows = t_row[col_ptr[cidx]:col_ptr[cidx + 1]]
        assert np.all(np.diff(rows) > 0), "query blocks of a column must be ascending"
        for e in range(col_ptr[cidx], col_ptr[cidx + 1]):
            bwd.add((cidx // plan.n_k_blocks, int(t_row[e]), cidx % plan.n_k_blocks, int(t_mask[e])))
    assert fwd == bwd and len(fwd) == int(row_ptr[-1])
    assert P.transpose(plan) is P.transpose(plan), "the transposed plan is cached for reuse"
    del spec


def test_block_table_round_trip():
    g = torch.Generator().manual_seed(0)
    kept = torch.rand(1, 3, 4, 5, generator=g) < 0.4
    plan = P.from_block_table(kept.to(H.DEVICE), B=2, Hq=3, Lq=50, Lk=70, block=16, causal=False)
    assert torch.equal(P.to_block_table(plan).cpu(), kept)


def test_plan_for_another_shape_is_rejected():
    from sattn_triton import ops
    q, k, v = H.make_qkv(1, 2, 2, 32, 32, 16, torch.float32)
    plan = P.build_block_topk(q, k, block=16, keep=0.5, global_blocks=1, local_blocks=1, causal=True, scale=0.25)
    q2, k2, v2 = H.make_qkv(1, 2, 2, 48, 48, 16, torch.float32)
    with pytest.raises(ValueError, match=r"plan: built for \(B, Hq, Lq, Lk\)=\(1, 2, 32, 32\)"):
        ops.attention(q2, k2, v2, sattn.BlockTopK(block=16, keep=0.5, causal=True), plan=plan)


# ops.visible_pairs (the bench's FLOP count where the host planner cannot load) must count exactly
# the pairs the kernels attend: the contract's mask for rule specs, the device plan's entries for
# selected ones. Small max_elems forces several chunks.
RULE_SPECS = [
    (sattn.Dense(causal=False), (1, 2, 2, 40, 40, 16)),
    (sattn.Dense(causal=True), (2, 2, 1, 13, 50, 16)),
    (sattn.SlidingWindow(window=7, causal=True), (1, 3, 3, 45, 45, 16)),
    (sattn.SlidingWindow(window=5, dilation=2, global_tokens=3, causal=False), (1, 2, 1, 30, 61, 16)),
]


@pytest.mark.parametrize("spec,shape", RULE_SPECS, ids=str)
def test_visible_pairs_of_rule_specs_equal_the_contract(spec, shape):
    from sattn_triton import ops
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=6)
    want = int(np.asarray(dense_mask(spec, q.cpu(), k.cpu())).sum())
    assert ops.visible_pairs(q, k, spec, max_elems=200) == want
    if H.has_host_planner():   # the same spec walked through a host plan (rule entries, 16-blocks)
        assert ops.visible_pairs(q, k, spec, force_plan=True, tile=16, max_elems=600) == want


@pytest.mark.parametrize("spec,shape,block", [(s, sh, s.block) for s, sh in BLOCK_TOPK]
                         + [(s, sh, b) for s, sh, b in TOPK_Q], ids=str)
def test_visible_pairs_of_selected_specs_equal_the_device_plan(spec, shape, block):
    from sattn_triton import ops
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=7)
    scale = 1 / math.sqrt(D)
    plan = ops.make_plan(q, k, spec, scale=scale, tile=block)
    want = int(expand(plan, spec.causal).sum())
    assert ops.visible_pairs(q, k, spec, scale=scale, plan=plan, tile=block, max_elems=block * block * 3) == want


@pytest.mark.parametrize("shape,block", [((2, 4, 2, 100, 100, 32), 16), ((1, 2, 1, 37, 90, 16), 32),
                                         ((1, 2, 2, 1, 300, 16), 32)], ids=str)
@pytest.mark.parametrize("max_elems", [1, 1 << 26], ids=["one block per chunk", "one chunk"])
def test_block_max_scores_equal_float64_maxima(shape, block, max_elems):
    """The device max-score pass (fp32 products, chunks of query blocks, -inf padding) against
    float64 block maxima: GQA, Lq < Lk with a partial first query block, a ragged last key block."""
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=13)
    got = P.block_max_scores(q, k, block, 0.3, max_elems=max_elems).cpu().numpy()
    want = block_scores64(q, k, block, 0.3, "max")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _with_non_finite(q, k, seed):
    """Integer-valued q, k (fp32 pooling and products exact, many exact ties) with NaN, +inf and
    -inf at a few places, a whole key block of NaN and one NaN query row."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-3, 4, q.shape, generator=g).float()
    k = torch.randint(-3, 4, k.shape, generator=g).float()
    for n, val in enumerate([float("nan"), float("inf"), -float("inf")] * 2):
        x = k if n % 2 else q
        x.view(-1)[int(torch.randint(0, x.numel(), (1,), generator=g))] = val
    k[:, :, 16:32] = float("nan")
    q[:, :, -1] = float("nan")
    return q.to(H.DEVICE), k.to(H.DEVICE)


@pytest.mark.skipif(not H.has_host_planner(), reason="sattn._cc (host planner) not built")
@pytest.mark.parametrize("how", ["kernel", "torch"])
@pytest.mark.parametrize("spec,shape", [
    (sattn.BlockTopK(block=16, keep=0.5, global_blocks=0, local_blocks=0, causal=False), (1, 2, 1, 64, 96, 8)),
    (sattn.BlockTopK(block=16, keep=0.6, global_blocks=1, local_blocks=1, causal=True), (2, 2, 2, 96, 96, 8)),
    (sattn.BlockTopK(block=16, keep=0.5, global_blocks=0, local_blocks=0, causal=False, score="max"),
     (1, 2, 1, 64, 96, 8)),
    (sattn.BlockTopK(block=16, keep=0.6, global_blocks=1, local_blocks=0, causal=True, score="max"),
     (1, 2, 2, 40, 96, 8)),
], ids=str)
def test_block_topk_non_finite_scores_rank_below_every_number(spec, shape, how, monkeypatch):
    """NaN / +-inf in q and k (docs/contract.md, "Non-finite inputs"): both device selections keep
    exactly the host planner's and the contract mask's blocks (NaN below -inf, ties to the lower
    block, score="max" ignoring NaN products)."""
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k = _with_non_finite(*H.make_qkv(B, Hq, Hkv, Lq, Lk, D, torch.float32, seed=9)[:2], seed=10)
    use_selection(monkeypatch, how)
    dev = P.build_block_topk(q, k, block=spec.block, keep=spec.keep, global_blocks=spec.global_blocks,
                             local_blocks=spec.local_blocks, causal=spec.causal, scale=0.5, score=spec.score)
    host = P.from_host(sattn.plan(spec, q.cpu(), k.cpu(), scale=0.5), H.DEVICE, bitmap_masks=False)
    assert torch.equal(P.to_block_table(dev).cpu(), P.to_block_table(host).cpu())
    assert np.array_equal(expand(dev, spec.causal), np.asarray(dense_mask(spec, q.cpu(), k.cpu(), scale=0.5)))


@pytest.mark.parametrize("causal", [False, True])
def test_topk_per_query_non_finite_scores_rank_below_every_number(causal):
    """NaN-scored keys are picked only after every numbered one (-inf included), and causally hidden
    keys never: per row the same keys with a numeric score as the contract, and as many keys."""
    q, k, _ = H.make_qkv(1, 2, 1, 40, 40, 16, torch.float32, seed=11)
    k[:, :, 3:30] = float("nan")          # most keys NaN: rows need NaN keys to reach k
    k[:, :, 31, 0] = float("inf")
    k[:, :, 33, 0] = -float("inf")
    spec = sattn.TopKPerQuery(k=6, causal=causal)
    plan = P.build_topk_per_query(q, k, topk=6, causal=causal, block=16)
    got = expand(plan, causal)
    want = np.asarray(dense_mask(spec, q.cpu(), k.cpu()))
    s = np.einsum("bhid,bhjd->bhij", q.double().cpu().numpy(), k.double().cpu().numpy().repeat(2, axis=1))
    numeric = ~np.isnan(s)
    assert np.array_equal(got & numeric, want & numeric)
    assert np.array_equal(got.sum(-1), want.sum(-1))
