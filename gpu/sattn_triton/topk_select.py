"""BlockTopK's selection step in one Triton launch: from the float64 block scores to the plan's
CSR entries (col_idx, mask_idx), one program per (batch, query head, query block row).

The torch formulation it replaces (`plans._select_with_torch`) spent ~10 small launches per call
(two `where`s, a stable sort of every score row, a slice, a second sort, a gather, the causal
full/partial test) and the planner is launch-bound: its call took 0.55-0.57 ms on the H100 for
394 us of GPU time, 185 us of it the sort (docs/backends/gpu.md). Here a program
  1. reads its row of scores and applies the spec's rules: ineligible blocks (past the causal
     diagonal) never count, forced blocks (global and local) always do (+inf);
  2. takes the row's n largest one at a time (n is the row's kept count, known from the shape):
     the maximum, the lowest block id holding it, then that block is removed. This is the first n
     of a stable descending sort, ties going to the lower block id, as the contract and the host
     planner choose;
  3. writes the kept block ids in ascending order at the row's CSR offset, and per entry whether
     it is full (-1) or needs the causal token rule (-2).
Rows are held in registers (NKB_P = next power of two of the key-block count), so the launch is
for n_k_blocks <= MAX_KEY_BLOCKS; longer rows take the torch path.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sattn_triton.common import next_pow2

MAX_KEY_BLOCKS = 4096


@triton.jit
def _block_topk_select_kernel(SCORES, N_ROW, ROW_PTR, COL, MASK, n_q_blocks, n_k_blocks, q_block_begin,
                              q_first, Lk, global_blocks, local_blocks, BLOCK: tl.constexpr,
                              NKB_P: tl.constexpr, CAUSAL: tl.constexpr):
    r = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64) * n_q_blocks + r        # (batch*head, query block) row
    a = r + q_block_begin                                       # absolute query block
    c = tl.arange(0, NKB_P)
    s = tl.load(SCORES + row * n_k_blocks + c, mask=c < n_k_blocks, other=float("-inf"))
    # The spec's rules (plans.block_topk_counts mirrors them on the host for the counts).
    last = n_k_blocks - 1
    if CAUSAL:
        last = tl.minimum(a, n_k_blocks - 1)
        local = (a - c >= 0) & (a - c < local_blocks)
    else:
        local = tl.abs(a - c) < local_blocks
    elig = c <= last
    forced = elig & ((c < global_blocks) | local)
    s = tl.where(forced, float("inf"), tl.where(elig, s, float("-inf")))
    kept = c < 0
    n = tl.load(N_ROW + r)
    for _ in range(n):
        top = tl.max(s, 0)
        pick = tl.min(tl.where(s == top, c, NKB_P), 0)          # ties: the lowest block id
        kept = kept | (c == pick)
        s = tl.where(c == pick, float("-inf"), s)
    # Ascending block ids at the row's CSR offset.
    slot = tl.cumsum(kept.to(tl.int32), 0) - 1
    e = tl.load(ROW_PTR + row).to(tl.int64) + slot
    tl.store(COL + e, c.to(tl.int32), mask=kept)
    if CAUSAL:
        # Full iff the block's last key is at or before the row's first query position.
        p0 = tl.maximum(a * BLOCK, q_first)
        j1 = tl.minimum((c + 1) * BLOCK, Lk) - 1
        tl.store(MASK + e, tl.where(j1 <= p0, -1, -2).to(tl.int32), mask=kept)
    else:
        tl.store(MASK + e, tl.full([NKB_P], -1, tl.int32), mask=kept)


def select_block_topk(scores: torch.Tensor, n_row: torch.Tensor, row_ptr: torch.Tensor, *, block: int,
                      q_block_begin: int, Lq: int, Lk: int, global_blocks: int, local_blocks: int,
                      causal: bool, nnz: int):
    """(col_idx, mask_idx) int32 of length nnz from raw float64 scores (B, Hq, nqb, nkb), the
    per-row kept counts n_row (nqb,) and the CSR row_ptr (B*Hq*nqb + 1,). No host sync."""
    B, Hq, nqb, nkb = scores.shape
    if nkb > MAX_KEY_BLOCKS:
        raise ValueError(f"scores: at most {MAX_KEY_BLOCKS} key blocks per row, got {nkb}")
    col = torch.empty(max(nnz, 1), dtype=torch.int32, device=scores.device)
    mask = torch.empty_like(col)
    if nnz == 0:
        return col.fill_(0), mask.fill_(-1)
    nkb_p = next_pow2(nkb)
    _block_topk_select_kernel[(nqb, B * Hq)](
        scores.contiguous(), n_row, row_ptr, col, mask, nqb, nkb, q_block_begin, Lk - Lq, Lk,
        global_blocks, local_blocks, BLOCK=block, NKB_P=nkb_p, CAUSAL=causal,
        num_warps=4 if nkb_p <= 1024 else 8)
    return col, mask
