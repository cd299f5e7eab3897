"""BlockPlan: the block-sparse layout every compiled backend consumes (docs/bsr.md).

`plan(spec, q, k)` runs the shared C++ planner (cc/src/planner.cc) and returns its CSR arrays as
numpy: the same bytes the RVV runner and the RoCC driver read.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sattn import _inputs
from sattn import specs as S

_INT_FIELDS = ("block", "B", "Hq", "Lq", "Lk", "plan_b", "plan_h", "q_block_begin", "n_q_blocks",
               "n_k_blocks", "words_per_row")


def _cc():
    from sattn import _cc  # the pybind11 extension, built by Bazel (//python:sattn/_cc.so)
    return _cc


@dataclasses.dataclass(frozen=True, eq=False)
class BlockPlan:
    """CSR over rows (plan_b, plan_h, query block): see cc/include/sattn/plan.h and docs/bsr.md."""

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
    row_ptr: np.ndarray   # int32 [plan_b*plan_h*n_q_blocks + 1]
    col_idx: np.ndarray   # int32 [nnz], ascending key blocks within a row
    mask_idx: np.ndarray  # int32 [nnz], -1 = all in-range pairs visible, else bitmap index
    bitmaps: np.ndarray   # uint64 [n_masks * block * words_per_row]

    @classmethod
    def from_dict(cls, d: dict) -> "BlockPlan":
        return cls(**{f: int(d[f]) for f in _INT_FIELDS},
                   row_ptr=np.asarray(d["row_ptr"], np.int32), col_idx=np.asarray(d["col_idx"], np.int32),
                   mask_idx=np.asarray(d["mask_idx"], np.int32), bitmaps=np.asarray(d["bitmaps"], np.uint64))

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: that deep-copies every array, on the hot path of each call.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def nnz(self) -> int:
        return int(self.col_idx.size)

    @property
    def rows(self) -> int:
        return self.plan_b * self.plan_h * self.n_q_blocks

    def row_of(self, b: int, h: int, r: int) -> int:
        return ((0 if self.plan_b == 1 else b) * self.plan_h + (0 if self.plan_h == 1 else h)) * self.n_q_blocks + r

    def visible_pairs(self) -> int:
        """Visible (query, key) pairs over all B*Hq heads: the kept entries of the FLOP count."""
        return int(_cc().visible_pairs(self.to_dict()))

    def density(self) -> float:
        return self.visible_pairs() / float(self.B * self.Hq * self.Lq * self.Lk)

    def validate(self) -> None:
        """Raises ValueError naming the inconsistent field."""
        _cc().validate_plan(self.to_dict())

    def matches(self, prob) -> bool:
        return (self.B, self.Hq, self.Lq, self.Lk) == (prob.B, prob.Hq, prob.Lq, prob.Lk)

    def to_dense_mask(self) -> np.ndarray:
        """Bool (B, Hq, Lq, Lk): the plan expanded, for tests."""
        m = np.zeros((self.B, self.Hq, self.Lq, self.Lk), dtype=bool)
        q_first = self.Lk - self.Lq
        blk, w = self.block, self.words_per_row
        bits = self.bitmaps.reshape(-1, blk, w) if self.bitmaps.size else self.bitmaps
        cols = np.arange(blk)
        for b in range(self.B):
            for h in range(self.Hq):
                for r in range(self.n_q_blocks):
                    row = self.row_of(b, h, r)
                    a = r + self.q_block_begin
                    p_lo, p_hi = max(a * blk, q_first), min((a + 1) * blk, self.Lk)
                    for e in range(self.row_ptr[row], self.row_ptr[row + 1]):
                        c = int(self.col_idx[e])
                        j_lo, j_hi = c * blk, min((c + 1) * blk, self.Lk)
                        if self.mask_idx[e] < 0:
                            tile = np.ones((p_hi - p_lo, j_hi - j_lo), dtype=bool)
                        else:
                            words = bits[self.mask_idx[e]][p_lo - a * blk:p_hi - a * blk]
                            cc = cols[: j_hi - j_lo]
                            tile = ((words[:, cc // 64] >> (cc % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)
                        m[b, h, p_lo - q_first:p_hi - q_first, j_lo:j_hi] = tile
        return m


def check_block_fits(spec: S.Spec, prob) -> None:
    """A spec's own block may not exceed the key length (the contract's blocks would be empty)."""
    blk = getattr(spec, "block", None)
    if blk is not None and blk > prob.Lk:
        raise ValueError(f"block: expected at most the key length Lk={prob.Lk}, got {blk}")


def plan(spec: S.Spec, q, k, *, tile: int = 64, scale=None, threads: int = 0) -> BlockPlan:
    """Runs the shared planner. `tile` is the block edge for specs without a block of their own."""
    if not isinstance(spec, S.Spec):
        raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, ...), got {type(spec).__name__}")
    prob = _inputs.check_qkv(q, k, k)
    scale = _inputs.resolve_scale(scale, prob.D)
    if isinstance(tile, bool) or not isinstance(tile, int) or not 1 <= tile <= S.MAX_BLOCK:
        raise ValueError(f"tile: expected an integer in [1, {S.MAX_BLOCK}], got {tile!r}")
    check_block_fits(spec, prob)
    dynamic = isinstance(spec, (S.BlockTopK, S.TopKPerQuery))
    qa = _inputs.to_numpy(q, np.float32) if dynamic else None
    ka = _inputs.to_numpy(k, np.float32) if dynamic else None
    d = _cc().build_plan(spec.to_fields(), prob.shape_tuple, qa, ka, tile=tile, scale=scale, threads=threads)
    return BlockPlan.from_dict(d)
