"""Block plans on the device: the plan.h CSR layout as torch tensors, plus device planners.

`GpuPlan` carries exactly the fields of `sattn::BlockPlan` (cc/include/sattn/plan.h) as device
tensors. Two GPU-side extensions, both documented in docs/backends/gpu.md:
  * mask_idx == -2: "partial block, apply the spec's token rule" (no bitmap stored). Device
    planners emit it for the causal diagonal; for rule-based specs the host planner's bitmaps
    equal the token rule, so a host plan with `bitmap_masks=False` is read the same way.
  * col_idx / mask_idx may be longer than row_ptr[-1] (a capacity buffer), so a device planner
    never has to copy nnz to the host; entries past row_ptr[-1] are never read.

Device planners (`build_block_topk`, `build_topk_per_query`) use only torch ops and Triton launches
(BlockTopK's selection, `topk_select.py`) whose output sizes follow from shapes and spec fields,
so they never synchronise with the host and can be captured by torch.compile / CUDA graphs. `transpose` builds the per-key-block (CSC) view the backward pass
needs, also without a sync, and caches it on the plan (plans are reused across layers/steps).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from sattn_triton.topk_select import FORCED_KEY, INELIGIBLE_KEY, MAX_KEY_BLOCKS, rank_keys, select_block_topk


@dataclasses.dataclass
class GpuPlan:
    block: int
    B: int
    Hq: int
    Lq: int
    Lk: int
    plan_b: int
    plan_h: int
    q_block_begin: int
    n_q_blocks: int
    n_k_blocks: int
    words_per_row: int
    row_ptr: torch.Tensor            # int32 (rows + 1,)
    col_idx: torch.Tensor            # int32 (>= nnz,)
    mask_idx: torch.Tensor           # int32 (>= nnz,): -1 full, -2 token rule, m >= 0 bitmap m
    bitmaps: torch.Tensor            # int64 (n_masks * block * words_per_row,), >= one mask long
    bitmap_masks: bool               # True: partial entries read bitmaps; False: token rule
    _transposed: Optional[tuple] = dataclasses.field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return self.plan_b * self.plan_h * self.n_q_blocks

    @property
    def device(self) -> torch.device:
        return self.row_ptr.device

    def check_shape(self, B: int, Hq: int, Lq: int, Lk: int) -> None:
        """Raises ValueError if the plan was built for another problem shape."""
        got = (self.B, self.Hq, self.Lq, self.Lk)
        if got != (B, Hq, Lq, Lk):
            raise ValueError(f"plan: built for (B, Hq, Lq, Lk)={got}, but q/k give {(B, Hq, Lq, Lk)}")

    def to(self, device) -> "GpuPlan":
        f = {fl.name: getattr(self, fl.name) for fl in dataclasses.fields(self) if fl.name != "_transposed"}
        for name in ("row_ptr", "col_idx", "mask_idx", "bitmaps"):
            f[name] = f[name].to(device)
        return GpuPlan(**f)


def _geometry(Lq: int, Lk: int, block: int):
    n_k_blocks = -(-Lk // block)
    q_block_begin = (Lk - Lq) // block
    return n_k_blocks, q_block_begin, n_k_blocks - q_block_begin


def from_host(plan, device, *, bitmap_masks: bool) -> GpuPlan:
    """Converts a host BlockPlan (any object with plan.h's field names and array-like vectors:
    the lead's `sattn.plan` result or a plan_io file) to device tensors.

    `bitmap_masks=False` (rule-based specs: Dense, SlidingWindow, BigBird, BlockTopK) makes the
    kernel evaluate the token rule for partial entries instead of loading their bitmaps, which is
    the same set by construction of the planner and saves the bitmap loads.
    """
    def arr(x, dtype):
        return torch.as_tensor(np.ascontiguousarray(np.asarray(x).astype(dtype)))

    words = int(plan.words_per_row)
    bitmaps = np.asarray(plan.bitmaps, dtype=np.uint64).view(np.int64)
    if bitmaps.size == 0:
        bitmaps = np.zeros(int(plan.block) * words, dtype=np.int64)
    return GpuPlan(
        block=int(plan.block), B=int(plan.B), Hq=int(plan.Hq), Lq=int(plan.Lq), Lk=int(plan.Lk),
        plan_b=int(plan.plan_b), plan_h=int(plan.plan_h), q_block_begin=int(plan.q_block_begin),
        n_q_blocks=int(plan.n_q_blocks), n_k_blocks=int(plan.n_k_blocks), words_per_row=words,
        row_ptr=arr(plan.row_ptr, np.int32).to(device),
        col_idx=arr(plan.col_idx, np.int32).to(device) if len(plan.col_idx) else torch.zeros(1, dtype=torch.int32, device=device),
        mask_idx=arr(plan.mask_idx, np.int32).to(device) if len(plan.mask_idx) else torch.full((1,), -1, dtype=torch.int32, device=device),
        bitmaps=torch.from_numpy(np.ascontiguousarray(bitmaps)).to(device),
        bitmap_masks=bitmap_masks,
    )


def _block_bounds(Lq, Lk, block, device):
    """Per query-block row: first in-range position p0; per key block: last key j1."""
    n_k_blocks, qbb, nqb = _geometry(Lq, Lk, block)
    a = torch.arange(qbb, qbb + nqb, device=device)
    p0 = torch.clamp(a * block, min=Lk - Lq)
    p1 = torch.clamp((a + 1) * block, max=Lk) - 1
    c = torch.arange(n_k_blocks, device=device)
    j1 = torch.clamp((c + 1) * block, max=Lk) - 1
    return a, p0, p1, j1


def _pool(x: torch.Tensor, first: int, L: int, n_blocks: int, block: int) -> torch.Tensor:
    """Mean of x's rows per block, where row 0 of x sits at absolute position `first` and block n
    covers [n*block, (n+1)*block) ∩ [first, first + L). Sums in fp32 (never a float64 copy of x)."""
    B, H, _, D = x.shape
    front = first - (first // block) * block
    back = n_blocks * block - front - L
    if front or back:
        x = F.pad(x, (0, 0, front, back))
    sums = x.view(B, H, n_blocks, block, D).sum(3, dtype=torch.float32)
    return sums.double() / _pool_counts(first, L, n_blocks, block, x.device)


@functools.lru_cache(maxsize=256)
def _pool_counts(first: int, L: int, n_blocks: int, block: int, device: torch.device) -> torch.Tensor:
    """Rows per block for _pool, (1, 1, n_blocks, 1) float64, at least 1; made once per shape so
    each selection launches fewer small kernels (host time: the planner is launch-bound)."""
    start = torch.arange(n_blocks, device=device) * block + (first // block) * block
    cnt = torch.clamp(start + block, max=first + L) - torch.clamp(start, min=first)
    return cnt.clamp(min=1).double().view(1, 1, -1, 1)


def block_topk_counts(Lq, Lk, block, keep, global_blocks, local_blocks, causal):
    """Per query-block row: (forced mask (nqb, nkb) bool, kept count n (nqb,)) in numpy.

    Mirrors SelectBlockTopK's bookkeeping: eligible blocks b <= last (causal: last = a), forced =
    global + local, n = min(eligible, max(forced, ceil(keep * n_k_blocks))). These depend on the
    shape and spec only, so the host knows nnz without looking at the data.
    """
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    a = np.arange(qbb, qbb + nqb)[:, None]
    b = np.arange(nkb)[None, :]
    last = np.minimum(a, nkb - 1) if causal else np.full_like(a, nkb - 1)
    elig = b <= last
    d = a - b
    local = ((d >= 0) & (d < local_blocks)) if causal else (np.abs(d) < local_blocks)
    forced = elig & ((b < global_blocks) | local)
    budget = int(math.ceil(keep * float(nkb)))
    n = np.minimum(last[:, 0] + 1, np.maximum(forced.sum(1), budget))
    return forced, n


def block_topk_scores(q, k, block: int, scale: float) -> torch.Tensor:
    """scale * mean(q block) . mean(k block) per (b, query head, query block, key block), float64."""
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    qm = _pool(q, Lk - Lq, Lq, nqb, block)
    km = _pool(k, 0, Lk, nkb, block)
    if Hkv != Hq:
        km = km.repeat_interleave(Hq // Hkv, dim=1)  # pooled (nkb x D): tiny
    return scale * torch.matmul(qm, km.transpose(-1, -2))


def block_max_scores(q, k, block: int, scale: float, max_elems: int = 1 << 26) -> torch.Tensor:
    """scale * max_{i in a, j in c} q_i . k_j per (b, query head, query block a, key block c),
    float64 (the contract's score="max"), from fp32 products. The score matrix is made for a few
    query blocks at a time (at most ~max_elems fp32 values, never Lq x Lk at once) and reduced to
    block maxima under the selection order (IEEE maximumNumber: NaN products are ignored, a block
    of NaN products scores NaN); positions that are not queries or keys count as NaN, the
    maximum's identity. The loop count depends on shapes only: no host sync."""
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    g = Hq // Hkv
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    q_first = Lk - Lq
    kf = k.float().transpose(-1, -2)       # (B, Hkv, D, Lk)
    col_pad = nkb * block - Lk
    per = max(1, max_elems // max(1, B * Hq * block * nkb * block))   # query blocks per chunk
    out = torch.empty(B, Hq, nqb, nkb, dtype=torch.float64, device=q.device)
    for r0 in range(0, nqb, per):
        r1 = min(nqb, r0 + per)
        p0 = max((qbb + r0) * block, q_first)            # first query position of the chunk
        p1 = min((qbb + r1) * block, Lk)                 # one past its last
        rows = q[:, :, p0 - q_first:p1 - q_first].float().reshape(B, Hkv, g * (p1 - p0), D)
        s = torch.matmul(rows, kf).view(B, Hq, p1 - p0, Lk)
        lead = p0 - (qbb + r0) * block                   # only the first block can start late
        s = F.pad(s, (0, col_pad, lead, (qbb + r1) * block - p1), value=torch.nan)
        s = s.view(B, Hq, r1 - r0, block, nkb, block)
        nan = torch.isnan(s)
        m = s.masked_fill(nan, -torch.inf).amax(dim=(3, 5))
        m = torch.where(nan.all(dim=5).all(dim=3), torch.nan, m)
        out[:, :, r0:r1] = m.double() * scale
    return out


@functools.lru_cache(maxsize=128)
def _block_topk_static(B, Hq, Lq, Lk, block, keep, global_blocks, local_blocks, causal, device):
    """The data-independent parts of a BlockTopK plan (forced blocks, per-row counts, the CSR
    row_ptr and gather index), uploaded once per shape: later calls make no host-to-device
    copies either, so selection can be captured in a CUDA graph."""
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    forced_np, n_np = block_topk_counts(Lq, Lk, block, keep, global_blocks, local_blocks, causal)
    max_n = int(n_np.max()) if n_np.size else 0
    heads = B * Hq
    flat = (np.arange(nqb)[:, None] * max_n + np.arange(max_n)[None, :])[np.arange(max_n)[None, :] < n_np[:, None]]
    row_ptr = np.concatenate([[0], np.cumsum(np.tile(n_np, heads))]).astype(np.int32)
    rows_a = np.tile(np.repeat(np.arange(nqb), n_np), heads)
    dev = torch.device(device)
    up = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dev)  # noqa: E731
    a = torch.arange(qbb, qbb + nqb, device=dev)[:, None]
    bidx = torch.arange(nkb, device=dev)[None, :]
    elig = (bidx <= a) if causal else torch.ones(nqb, nkb, dtype=torch.bool, device=dev)
    _, p0, _, j1 = _block_bounds(Lq, Lk, block, dev)
    # Per CSR entry: the first query position of its row; per key block: its last key. An entry is
    # full under the causal rule iff j1[col] <= entry_p0.
    return dict(forced=up(forced_np), elig=elig, n=up(n_np), max_n=max_n, flat=up(flat),
                row_ptr=up(row_ptr), entry_p0=p0[up(rows_a)], row_p0=p0, j1=j1, per_head=int(n_np.sum()))


def selection_kernel(n_k_blocks: int) -> bool:
    """Whether BlockTopK selects with the one-launch Triton kernel (`topk_select.select_block_topk`),
    which holds a row of scores in registers: rows of up to MAX_KEY_BLOCKS key blocks. Longer rows
    (e.g. L > 262144 with 64-blocks, L > 65536 with 16-blocks) take the torch formulation
    (`_select_with_torch`), which has no such limit."""
    return n_k_blocks <= MAX_KEY_BLOCKS


def _select_with_torch(scores, st, causal: bool):
    """(col_idx, mask_idx) of a BlockTopK plan from raw float64 scores with torch ops: the first
    n of a stable descending sort of each row's rank keys (NaN below every number, ties to the
    lower block id), forced blocks first."""
    dev = scores.device
    B, Hq, nqb, nkb = scores.shape
    keys = torch.where(st["forced"], FORCED_KEY, torch.where(st["elig"], rank_keys(scores), INELIGIBLE_KEY))
    order = torch.sort(keys, dim=-1, descending=True, stable=True).indices
    max_n = st["max_n"]
    # Kept block ids of each row, ascending, padded with nkb beyond n: the first max_n ranks.
    top = order[..., :max_n]
    rank = torch.arange(max_n, device=dev)
    top = torch.where(rank < st["n"][:, None], top, nkb)
    top = torch.sort(top, dim=-1).values                                  # (B,Hq,nqb,max_n)
    col = top.reshape(B * Hq, nqb * max_n)[:, st["flat"]].reshape(-1).to(torch.int32)
    # Full vs partial from the causal token rule (the only rule BlockTopK applies inside a block).
    if causal:
        full = st["j1"][col.long()] <= st["entry_p0"]
        mask = torch.where(full, -1, -2).to(torch.int32)
    else:
        mask = torch.full_like(col, -1)
    if st["per_head"] == 0:
        col = torch.zeros(1, dtype=torch.int32, device=dev)
        mask = torch.full((1,), -1, dtype=torch.int32, device=dev)
    return col, mask


def build_block_topk(q, k, *, block: int, keep: float, global_blocks: int, local_blocks: int,
                     causal: bool, scale: float, score: str = "mean") -> GpuPlan:
    """BlockTopK plan on q's device with no device-to-host copy (plan_b = B, plan_h = Hq).
    score="mean" pools in fp32 and scores in float64; score="max" takes block maxima of fp32 q.k
    products (`block_max_scores`)."""
    if score not in ("mean", "max"):
        raise ValueError(f"spec.score: expected 'mean' or 'max', got {score!r}")
    B, Hq, Lq, D = q.shape
    Lk = k.shape[2]
    dev = q.device
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    st = _block_topk_static(B, Hq, Lq, Lk, block, float(keep), global_blocks, local_blocks, causal, str(dev))
    scores = (block_topk_scores if score == "mean" else block_max_scores)(q, k, block, scale)  # f64
    if selection_kernel(nkb):
        col, mask = select_block_topk(scores, st, causal=causal, nnz=st["per_head"] * B * Hq)
    else:
        col, mask = _select_with_torch(scores, st, causal)
    return GpuPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=B, plan_h=Hq, q_block_begin=qbb,
                   n_q_blocks=nqb, n_k_blocks=nkb, words_per_row=-(-block // 64), row_ptr=st["row_ptr"],
                   col_idx=col, mask_idx=mask,
                   bitmaps=torch.zeros(block * -(-block // 64), dtype=torch.int64, device=dev),
                   bitmap_masks=False)


_NAN_RANK = -3.4028234663852886e38       # -FLT_MAX
_NEG_INF_RANK = -3.4028232635611926e38   # the next float32 above it


def topk_per_query_indices(q, k, *, topk: int, causal: bool, chunk_rows: int = 1024):
    """Per query row: the top-k key indices by q.k (B,Hq,Lq,kk) and a validity mask.

    Scores are computed in fp32 for `chunk_rows` query rows at a time, so memory stays
    O(chunk_rows * Lk) per head (never Lq x Lk). The loop count depends only on shapes. For the
    selection order (docs/contract.md, NaN below every number) NaN is ranked as -FLT_MAX and -inf
    one step above it, so causally hidden keys (-inf) rank below both; only a finite score within
    one ulp of -FLT_MAX (far outside the float32 range the host backends accept) could tie them.
    """
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    group = Hq // Hkv
    kk = min(topk, Lk)
    kf = k.float()
    if group > 1:
        kf = kf.repeat_interleave(group, dim=1)
    out = torch.empty(B, Hq, Lq, kk, dtype=torch.int64, device=q.device)
    j = torch.arange(Lk, device=q.device)
    for i0 in range(0, Lq, chunk_rows):
        i1 = min(Lq, i0 + chunk_rows)
        s = torch.matmul(q[:, :, i0:i1].float(), kf.transpose(-1, -2))
        s = torch.nan_to_num(s, nan=_NAN_RANK, posinf=torch.inf, neginf=_NEG_INF_RANK)
        if causal:
            p = torch.arange(i0, i1, device=q.device) + (Lk - Lq)
            s = s.masked_fill(j[None, :] > p[:, None], -torch.inf)
        out[:, :, i0:i1] = torch.topk(s, kk, dim=-1, sorted=False).indices
    # Rows with fewer than kk visible keys also get causally hidden (-inf) keys: drop them.
    p = torch.arange(Lq, device=q.device) + (Lk - Lq)
    valid = (out <= p[None, None, :, None]) if causal else torch.ones_like(out, dtype=torch.bool)
    return out, valid


def topk_per_query_capacity(B: int, Hq: int, Lq: int, Lk: int, block: int, topk: int, causal: bool) -> int:
    """Entry slots the device TopKPerQuery planner allocates (its nnz is data-dependent and never
    read back): the (query block, key block) cells a row can reach, at most a+1 per row a when
    causal, and no more than the number of (query, key) picks."""
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    per_head = sum(min(r + qbb + 1, nkb) for r in range(nqb)) if causal else nqb * nkb
    return B * Hq * min(per_head, Lq * min(topk, Lk))


def build_topk_per_query(q, k, *, topk: int, causal: bool, block: int) -> GpuPlan:
    """TopKPerQuery plan (bitmap entries) on q's device with no device-to-host copy.

    Entries and bitmaps are allocated for `topk_per_query_capacity` slots: memory grows like
    L^2/block words (half of it when causal), so this planner is for moderate L
    (docs/backends/gpu.md).
    """
    B, Hq, Lq, D = q.shape
    Lk = k.shape[2]
    dev = q.device
    nkb, qbb, nqb = _geometry(Lq, Lk, block)
    words = -(-block // 64)
    idx, valid = topk_per_query_indices(q, k, topk=topk, causal=causal)
    p = torch.arange(Lq, device=dev) + (Lk - Lq)
    qa = (p // block - qbb)[None, None, :, None].expand_as(idx)            # query-block row
    qr = (p % block)[None, None, :, None].expand_as(idx)                   # row inside the block
    kc = idx // block
    kcol = idx % block
    heads = B * Hq
    head = torch.arange(heads, device=dev).view(B, Hq, 1, 1)
    cell = (head * nqb + qa) * nkb + kc                                    # dense (row, key block)
    hits = torch.zeros(heads * nqb * nkb, dtype=torch.int32, device=dev)
    hits.index_put_((torch.where(valid, cell, 0).reshape(-1),), valid.reshape(-1).to(torch.int32),
                    accumulate=True)
    hits = (hits > 0).to(torch.int32)
    entry = torch.cumsum(hits, 0) - 1                                      # CSR order = row-major
    grid = heads * nqb * nkb
    cap = topk_per_query_capacity(B, Hq, Lq, Lk, block, topk, causal)
    row_ptr = torch.zeros(heads * nqb + 1, dtype=torch.int32, device=dev)
    row_ptr[1:] = torch.cumsum(hits.view(heads * nqb, nkb).sum(1), 0).to(torch.int32)
    slot = torch.where(hits > 0, entry, cap)                               # cap = dump slot
    col_idx = torch.zeros(cap + 1, dtype=torch.int32, device=dev)
    col_idx.scatter_(0, slot, (torch.arange(grid, device=dev) % nkb).to(torch.int32))
    mask_idx = torch.arange(cap + 1, dtype=torch.int32, device=dev)        # entry e -> bitmap e
    bitmaps = torch.zeros((cap + 1) * block * words, dtype=torch.int64, device=dev)
    e_sel = entry[cell.reshape(-1)].view_as(idx)
    word = (e_sel * block + qr) * words + kcol // 64
    bit = torch.bitwise_left_shift(torch.ones_like(kcol), kcol % 64)
    # Distinct bits of one word never carry, so adding them is OR (bit 63 wraps to the sign).
    dump = (cap * block * words)
    bitmaps.index_put_((torch.where(valid, word, dump).reshape(-1),),
                       torch.where(valid, bit, 0).reshape(-1), accumulate=True)
    return GpuPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=B, plan_h=Hq, q_block_begin=qbb,
                   n_q_blocks=nqb, n_k_blocks=nkb, words_per_row=words, row_ptr=row_ptr,
                   col_idx=col_idx, mask_idx=mask_idx, bitmaps=bitmaps, bitmap_masks=True)


def entry_rows(plan: GpuPlan):
    """(row, valid) per slot of col_idx: the CSR row each entry belongs to (int64) and whether the
    slot holds an entry at all (slots past row_ptr[-1] are capacity). No host sync."""
    e = torch.arange(plan.col_idx.numel(), device=plan.device, dtype=plan.row_ptr.dtype)
    row = torch.searchsorted(plan.row_ptr[1:].contiguous(), e, right=True)
    return row, e < plan.row_ptr[-1]


def transpose(plan: GpuPlan):
    """Per-key-block view (CSC) for the backward pass: (col_ptr, q_row, mask), cached on the plan.

    Columns are (plan_b, plan_h, key block); entries list query-block rows ascending. Entries past
    row_ptr[-1] sort to a sentinel column and are never read. No host sync.
    """
    if plan._transposed is not None:
        return plan._transposed
    dev = plan.device
    nqb, nkb = plan.n_q_blocks, plan.n_k_blocks
    heads = plan.plan_b * plan.plan_h
    row, valid = entry_rows(plan)
    head = torch.div(row, nqb, rounding_mode="floor")
    r = row - head * nqb
    colkey = torch.where(valid, head * nkb + plan.col_idx.long(), heads * nkb)
    order = torch.sort(colkey * nqb + torch.where(valid, r, 0), stable=True).indices
    counts = torch.zeros(heads * nkb + 1, dtype=torch.int32, device=dev)
    counts.scatter_add_(0, colkey, torch.ones_like(colkey, dtype=torch.int32))
    col_ptr = torch.zeros(heads * nkb + 1, dtype=torch.int32, device=dev)
    col_ptr[1:] = torch.cumsum(counts[:-1], 0).to(torch.int32)
    t_row = r[order].to(torch.int32)
    t_mask = plan.mask_idx[order]
    plan._transposed = (col_ptr, t_row, t_mask)
    return plan._transposed


def to_block_table(plan: GpuPlan) -> torch.Tensor:
    """(plan_b, plan_h, n_q_blocks, n_k_blocks) bool: which block pairs have an entry. No sync."""
    dev = plan.device
    rows = plan.rows
    row, valid = entry_rows(plan)
    cell = torch.where(valid, row * plan.n_k_blocks + plan.col_idx.long(), rows * plan.n_k_blocks)
    table = torch.zeros(rows * plan.n_k_blocks + 1, dtype=torch.bool, device=dev)
    table[cell] = True
    return table[:-1].view(plan.plan_b, plan.plan_h, plan.n_q_blocks, plan.n_k_blocks)


def from_block_table(kept: torch.Tensor, *, B: int, Hq: int, Lq: int, Lk: int, block: int,
                     causal: bool) -> GpuPlan:
    """Plan from a kept-block table (plan_b, plan_h, n_q_blocks, n_k_blocks) bool (setup-time
    helper for static masks: it reads nnz on the host). Causal: blocks wholly above the diagonal
    are dropped and diagonal blocks get the token rule (-2)."""
    dev = kept.device
    pb, ph, nqb, nkb = kept.shape
    nkb_, qbb, nqb_ = _geometry(Lq, Lk, block)
    if (nqb, nkb) != (nqb_, nkb_):
        raise ValueError(f"kept: expected (.., {nqb_}, {nkb_}) blocks for Lq={Lq}, Lk={Lk}, "
                         f"block={block}, got {tuple(kept.shape)}")
    _, p0, p1, j1 = _block_bounds(Lq, Lk, block, dev)
    j0 = torch.arange(nkb, device=dev) * block
    if causal:
        kept = kept & (j0[None, :] <= p1[:, None])
    nz = kept.reshape(pb * ph * nqb, nkb).nonzero()
    row_ptr = torch.zeros(pb * ph * nqb + 1, dtype=torch.int32, device=dev)
    row_ptr[1:] = torch.cumsum(kept.reshape(pb * ph * nqb, nkb).sum(1), 0).to(torch.int32)
    col = nz[:, 1]
    if causal:
        full = j1[col] <= p0[nz[:, 0] % nqb]
        mask = torch.where(full, -1, -2).to(torch.int32)
    else:
        mask = torch.full_like(col, -1, dtype=torch.int32)
    if col.numel() == 0:
        col = torch.zeros(1, dtype=torch.long, device=dev)
        mask = torch.full((1,), -1, dtype=torch.int32, device=dev)
    words = -(-block // 64)
    return GpuPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=pb, plan_h=ph, q_block_begin=qbb,
                   n_q_blocks=nqb, n_k_blocks=nkb, words_per_row=words, row_ptr=row_ptr,
                   col_idx=col.to(torch.int32), mask_idx=mask,
                   bitmaps=torch.zeros(block * words, dtype=torch.int64, device=dev), bitmap_masks=False)
