"""BlockTopK's selection step in one Triton launch: from the float64 block scores to the plan's
CSR entries (col_idx, mask_idx), one program per (batch, query head, query block row).

The torch formulation it replaces (`plans._select_with_torch`) spent ~10 small launches per call
(two `where`s, a stable sort of every score row, a slice, a second sort, a gather, the causal
full/partial test) and the planner is launch-bound: its call took 0.55-0.57 ms on the H100 for
394 us of GPU time, 185 us of it the sort (docs/backends/gpu.md). Here a program
  1. reads its row of scores and applies the spec's rules from the shape's tables
     (`plans._block_topk_static`): ineligible blocks (past the causal diagonal) never count,
     forced blocks (global and local) always do (+inf);
  2. takes the row's n largest one at a time (n is the row's kept count, known from the shape):
     the maximum, the lowest block id holding it, then that block is removed. This is the first n
     of a stable descending sort, ties going to the lower block id, as the contract and the host
     planner choose;
  3. writes the kept block ids in ascending order at the row's CSR offset, and per entry whether
     it is full (-1) or needs the causal token rule (-2).
Rows are held in registers (NKB_P = next power of two of the key-block count), so the launch is
for n_k_blocks <= MAX_KEY_BLOCKS; longer rows take the torch path.

Scores are ranked as int64 keys (`rank_keys`): an order-preserving map of the float64 bits (+0 and
-0 equal) with NaN just below -inf (docs/contract.md, "Non-finite inputs"), and room above and
below every score for forced (FORCED_KEY), ineligible (INELIGIBLE_KEY) and already taken
(TAKEN_KEY) blocks, so +/-inf and NaN scores never collide with the rules.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from sattn_triton.common import next_pow2

MAX_KEY_BLOCKS = 4096

FORCED_KEY = (1 << 63) - 1
NAN_KEY = -0x7FF0000000000001           # one below -inf's key
INELIGIBLE_KEY = NAN_KEY - 1
TAKEN_KEY = -(1 << 63)
_MAGNITUDE = 0x7FFFFFFFFFFFFFFF


def rank_keys(scores: torch.Tensor) -> torch.Tensor:
    """int64 keys of float64 scores in the selection order: higher score, higher key; NaN below
    every number; equal scores (either zero) equal keys."""
    bits = scores.contiguous().view(torch.int64)
    key = torch.where(bits < 0, -(bits & _MAGNITUDE), bits)
    return torch.where(torch.isnan(scores), NAN_KEY, key)


@triton.jit
def _rank_key(s):
    bits = s.to(tl.int64, bitcast=True)
    key = tl.where(bits < 0, -(bits & 0x7FFFFFFFFFFFFFFF), bits)
    return tl.where(s != s, -0x7FF0000000000001, key)


@triton.jit
def _block_topk_select_kernel(SCORES, FORCED, ELIG, N_ROW, ROW_PTR, ROW_P0, J1, COL, MASK, n_q_blocks,
                              n_k_blocks, NKB_P: tl.constexpr, CAUSAL: tl.constexpr):
    r = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64) * n_q_blocks + r        # (batch*head, query block) row
    c = tl.arange(0, NKB_P)
    c_ok = c < n_k_blocks
    s = _rank_key(tl.load(SCORES + row * n_k_blocks + c, mask=c_ok, other=0.0))
    # The spec's rules, as tables of the shape (plans._block_topk_static): forced blocks always
    # count, blocks that are not eligible (past the causal diagonal) never.
    forced = tl.load(FORCED + r * n_k_blocks + c, mask=c_ok, other=0) != 0
    elig = tl.load(ELIG + r * n_k_blocks + c, mask=c_ok, other=0) != 0
    s = tl.where(forced, 0x7FFFFFFFFFFFFFFF, tl.where(elig, s, -0x7FF0000000000002))   # FORCED / INELIGIBLE
    kept = c < 0
    n = tl.load(N_ROW + r)
    for _ in range(n):
        top = tl.max(s, 0)
        pick = tl.min(tl.where(s == top, c, NKB_P), 0)          # ties: the lowest block id
        kept = kept | (c == pick)
        s = tl.where(c == pick, -0x7FFFFFFFFFFFFFFF - 1, s)     # TAKEN_KEY
    # Ascending block ids at the row's CSR offset.
    slot = tl.cumsum(kept.to(tl.int32), 0) - 1
    e = tl.load(ROW_PTR + row).to(tl.int64) + slot
    tl.store(COL + e, c.to(tl.int32), mask=kept)
    if CAUSAL:
        # Full iff the block's last key is at or before the row's first query position.
        full = tl.load(J1 + c, mask=c_ok, other=0) <= tl.load(ROW_P0 + r)
        tl.store(MASK + e, tl.where(full, -1, -2).to(tl.int32), mask=kept)
    else:
        tl.store(MASK + e, tl.full([NKB_P], -1, tl.int32), mask=kept)


def select_block_topk(scores: torch.Tensor, st: dict, *, causal: bool, nnz: int):
    """(col_idx, mask_idx) int32 of length nnz from raw float64 scores (B, Hq, nqb, nkb) and the
    shape's static tables `st` (plans._block_topk_static: forced / eligible blocks, kept count and
    first query position per row, CSR row_ptr, last key per block). No host sync."""
    B, Hq, nqb, nkb = scores.shape
    if nkb > MAX_KEY_BLOCKS:
        raise ValueError(f"scores: at most {MAX_KEY_BLOCKS} key blocks per row, got {nkb}")
    col = torch.empty(max(nnz, 1), dtype=torch.int32, device=scores.device)
    mask = torch.empty_like(col)
    if nnz == 0:
        return col.fill_(0), mask.fill_(-1)
    nkb_p = next_pow2(nkb)
    _block_topk_select_kernel[(nqb, B * Hq)](
        scores.contiguous(), st["forced"], st["elig"], st["n"], st["row_ptr"], st["row_p0"], st["j1"], col,
        mask, nqb, nkb, NKB_P=nkb_p, CAUSAL=causal, num_warps=4 if nkb_p <= 1024 else 8)
    return col, mask
