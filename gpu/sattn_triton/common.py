"""Pieces shared by the forward and backward kernels: the token rule, tile ranges and launch knobs.

Positions are absolute (docs/contract.md): query row i sits at p = i + Lk - Lq, keys at j. A
"tile" is BLOCK_M query positions or BLOCK_N key positions aligned to multiples of the tile edge
in absolute positions, so plan blocks (multiples of the tile edge) split into whole tiles.
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

# How a launch finds the key tiles of a query tile (and the query tiles of a key tile).
MODE_PLAN = 0      # CSR block plan (host-built or device-built)
MODE_DENSE = 1     # every key (causal: up to the diagonal), ranges from program ids
MODE_SLIDING = 2   # SlidingWindow: window + global tokens, ranges from program ids

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453

# The same values for use inside @triton.jit code: compiled kernels may only read globals that
# are tl.constexpr (the interpreter does not enforce this, the GPU compiler does).
K_PLAN = tl.constexpr(MODE_PLAN)
K_SLIDING = tl.constexpr(MODE_SLIDING)
K_LN2 = tl.constexpr(LN2)


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (TRITON_INTERPRET=1): the CI correctness mode."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Triton decides at import (kernel decoration) whether kernels are interpreted, so launch-time
# choices read this snapshot: os.environ lookups showed up in the per-call Python overhead.
INTERPRETED = interpreting()


def dot_in_fp32(dtype: torch.dtype) -> bool:
    """Whether tl.dot operands must be upcast to fp32.

    Triton 3.9's interpreter computes bf16 tl.dot wrongly (garbage ~1e10, checked on this
    machine), so under TRITON_INTERPRET=1 bf16 tiles are upcast before the dot; loads, stores and
    everything else still run in bf16. On a GPU the tensor cores take bf16 directly.
    """
    return INTERPRETED and dtype == torch.bfloat16


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs get exact fp32 dots ("ieee"); Triton's default TF32 would cost ~1e-3 accuracy.
    fp16/bf16 use the tensor cores' native precision (the setting only affects fp32 operands)."""
    return "ieee" if (dtype == torch.float32 or dot_in_fp32(dtype)) else "tf32"


@triton.jit
def token_visible(p, j, Lk, CAUSAL: tl.constexpr, SW: tl.constexpr, span, dilation, gtok):
    """Contract token rule for positions p ([BM,1]) and keys j ([1,BN]); keys >= Lk never count."""
    ok = j < Lk
    if CAUSAL:
        ok = ok & (j <= p)
    if SW:
        d = p - j
        win = (d < span) & (d > -span) & ((d % dilation) == 0)
        ok = ok & (win | (j < gtok) | (p < gtok))
    return ok


@triton.jit
def bitmap_visible(BITMAPS, m, row_in_block, col_in_block, j, Lk, BLK: tl.constexpr,
                   WORDS: tl.constexpr):
    """Bit (row, col) of plan bitmap m (plan.h layout: BLK rows of WORDS uint64, LSB first)."""
    base = m.to(tl.int64) * (BLK * WORDS)
    w = tl.load(BITMAPS + base + row_in_block * WORDS + col_in_block // 64)
    bit = (w >> (col_in_block % 64).to(tl.int64)) & 1
    return (bit != 0) & (j < Lk)


@triton.jit
def key_tile_full(p_lo, p_hi, n0, Lk, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                  SW: tl.constexpr, span, dilation, gtok):
    """True iff every (query in [p_lo,p_hi], key in the tile) pair is visible: no mask needed."""
    j_hi = n0 + BLOCK_N - 1
    full = j_hi < Lk
    if CAUSAL:
        full = full & (j_hi <= p_lo)
    if SW:
        in_win = (dilation == 1) & (p_hi - n0 < span) & (j_hi - p_lo < span)
        glob = (j_hi < gtok) | (p_hi < gtok)
        full = full & (in_win | glob)
    return full


@triton.jit
def query_tile_full(m0, j_lo, j_hi, q_first, Lk, BLOCK_M: tl.constexpr, CAUSAL: tl.constexpr,
                    SW: tl.constexpr, span, dilation, gtok):
    """Same as key_tile_full seen from a key tile [j_lo,j_hi] against query tile at m0."""
    p_lo = m0
    p_hi = m0 + BLOCK_M - 1
    full = (j_hi < Lk) & (p_lo >= q_first) & (p_hi < Lk)
    if CAUSAL:
        full = full & (j_hi <= p_lo)
    if SW:
        in_win = (dilation == 1) & (p_hi - j_lo < span) & (j_hi - p_lo < span)
        glob = (j_hi < gtok) | (p_hi < gtok)
        full = full & (in_win | glob)
    return full


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return _cuda_sms(device.index if device.index is not None else torch.cuda.current_device())
    return 4  # the interpreter: a few splits keep the split path exercised


@functools.lru_cache(maxsize=16)
def _cuda_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def fit_tile(want: int, block: int) -> int:
    """Largest power of two <= want that divides block (tiles must split plan blocks evenly)."""
    t = 1
    while t * 2 <= want and block % (t * 2) == 0:
        t *= 2
    return t


def padded_head_dim(D: int) -> int:
    return max(16, triton.next_power_of_2(D))
