"""BlockPlan: the block-sparse layout every compiled backend consumes (docs/bsr.md).

`plan(spec, q, k)` runs the shared C++ planner (cc/src/planner.cc) and returns its CSR arrays as
numpy: the same bytes the RVV runner and the RoCC driver read. A plan records what it was built
for (`BlockPlan.source`); backends given `plan=` check it against the call (`check_plan`).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Optional

import numpy as np

from sattn import _inputs, _limits
from sattn import specs as S

_INT_FIELDS = ("block", "B", "Hq", "Lq", "Lk", "plan_b", "plan_h", "q_block_begin", "n_q_blocks",
               "n_k_blocks", "words_per_row")


def _cc():
    from sattn import _cc  # the pybind11 extension, built by Bazel (//python:sattn/_cc.so)
    return _cc


# Specs whose plan depends on the values of q and k (and on scale), not only on the shape.
DYNAMIC_SPECS = (S.BlockTopK, S.TopKPerQuery)
_ARRAYS = (("row_ptr", np.int32), ("col_idx", np.int32), ("mask_idx", np.int32), ("bitmaps", np.uint64))


@dataclasses.dataclass(frozen=True)
class PlanSource:
    """What sattn.plan() built a plan for: the spec, the tile (specs without their own block),
    the shape (B, Hq, Hkv, Lq, Lk, D) and, for the value-dependent specs, the scale."""

    spec: S.Spec
    shape: tuple
    tile: Optional[int] = None
    scale: Optional[float] = None

    def __str__(self) -> str:
        parts = [str(self.spec), "shape (B, Hq, Hkv, Lq, Lk, D)=" + str(tuple(self.shape))]
        if self.tile is not None:
            parts.append(f"tile={self.tile}")
        if self.scale is not None:
            parts.append(f"scale={self.scale!r}")
        return ", ".join(parts)


def source_for(spec: S.Spec, shape: tuple, tile: int, scale: float) -> PlanSource:
    """The PlanSource of a plan of `spec` for `shape` (the fields the plan depends on only)."""
    from sattn import custom
    own_block = custom.spec_block(spec) is not None
    return PlanSource(spec=spec, shape=tuple(int(x) for x in shape), tile=None if own_block else int(tile),
                      scale=float(scale) if custom.is_dynamic(spec) else None)


@dataclasses.dataclass(frozen=True, eq=False)
class BlockPlan:
    """CSR over rows (plan_b, plan_h, query block): see cc/include/sattn/plan.h and docs/bsr.md.

    `source` is what sattn.plan() built it for (None for a plan made by hand or read from a file:
    then only its layout, (B, Hq, Lq, Lk), is checked against a call)."""

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
    source: Optional[PlanSource] = None

    def __post_init__(self):
        for name in _INT_FIELDS:
            object.__setattr__(self, name, _plan_int(name, getattr(self, name)))
        for name, dtype in _ARRAYS:
            object.__setattr__(self, name, _plan_array(name, getattr(self, name), dtype))
        if self.source is not None and not isinstance(self.source, PlanSource):
            raise TypeError(f"plan.source: expected a PlanSource or None, got {type(self.source).__name__}")

    @classmethod
    def from_dict(cls, d: dict) -> "BlockPlan":
        """A plan from the C++ layout fields (what to_dict gives; `source` is not among them)."""
        if not isinstance(d, dict):
            raise TypeError(f"plan: expected a dict of the plan fields, got {type(d).__name__}")
        missing = [f for f in _INT_FIELDS + tuple(n for n, _ in _ARRAYS) if f not in d]
        if missing:
            raise ValueError(f"plan: missing field(s) {', '.join(missing)}")
        return cls(**{f: d[f] for f in _INT_FIELDS}, **{n: d[n] for n, _ in _ARRAYS})

    def to_dict(self) -> dict:
        """The C++ layout fields (cc/include/sattn/plan.h), without `source`."""
        # Not dataclasses.asdict: that deep-copies every array, on the hot path of each call.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}

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


def _plan_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"plan.{name}: expected an integer, got {type(value).__name__} {value!r}")
    if not -2**31 <= value < 2**31:
        raise ValueError(f"plan.{name}: expected an int32, got {value}")
    return int(value)


def _plan_array(name: str, value, dtype) -> np.ndarray:
    """`value` as a 1-D array of `dtype`; integer values only, in range (no silent wrap)."""
    a = np.asarray(value)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TypeError(f"plan.{name}: expected a 1-D integer array, got {a.dtype} of shape {a.shape}")
    if a.dtype != dtype:
        info = np.iinfo(dtype)
        if dtype == np.uint64 and a.dtype.kind == "i":
            a = a.astype(np.int64).view(np.uint64)   # bitmaps are bit patterns: int64 words as they are
        elif a.size and (a.min() < info.min or a.max() > info.max):
            raise ValueError(f"plan.{name}: expected values that fit {np.dtype(dtype).name}, "
                             f"got [{a.min()}, {a.max()}]")
        a = a.astype(dtype)
    return a


def check_plan(plan, spec: S.Spec, prob, *, tile: Optional[int], scale: float) -> "BlockPlan":
    """`plan` if it serves this call, else TypeError/ValueError naming `plan` and both descriptions.

    Always checked: a BlockPlan, for this (B, Hq, Lq, Lk). For plans from sattn.plan() (`source`
    set) also: the same spec, shape (B, Hq, Hkv, Lq, Lk, D) and tile (specs without their own
    block, when the call gives a tile), and for BlockTopK/TopKPerQuery the same scale. Not checked:
    the values of q and k. A BlockTopK/TopKPerQuery plan reused with other q/k of the same shape
    keeps its selection: that is the documented way to reuse one selection across calls.
    """
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan: expected a sattn.BlockPlan (from sattn.plan(spec, q, k)), got {type(plan).__name__}")
    if not plan.matches(prob):
        raise ValueError(f"plan: built for (B, Hq, Lq, Lk)={(plan.B, plan.Hq, plan.Lq, plan.Lk)}, "
                         f"got {(prob.B, prob.Hq, prob.Lq, prob.Lk)}")
    src = plan.source
    if src is None:
        return plan
    call_tile = src.tile if tile is None or src.tile is None else int(tile)
    call = source_for(spec, prob.shape_tuple, 64 if call_tile is None else call_tile, scale)
    if call != src:
        raise ValueError(f"plan: built for {src}; this call is {call}")
    return plan


def check_tile(tile) -> int:
    """`tile` as an int in [1, MAX_BLOCK]."""
    if isinstance(tile, (bool, np.bool_)) or not isinstance(tile, numbers.Integral):
        raise TypeError(f"tile: expected an integer in [1, {S.MAX_BLOCK}], got {type(tile).__name__} {tile!r}")
    if not 1 <= tile <= S.MAX_BLOCK:
        raise ValueError(f"tile: expected an integer in [1, {S.MAX_BLOCK}], got {tile!r}")
    return int(tile)


def check_block_fits(spec: S.Spec, prob) -> None:
    """A spec's own block may not exceed the key length (the contract's blocks would be empty)."""
    from sattn import custom
    blk = custom.spec_block(spec)
    if blk is not None and blk > prob.Lk:
        raise ValueError(f"block: expected at most the key length Lk={prob.Lk}, got {blk}")


def plan(spec: S.Spec, q, k, *, tile: int = 64, scale=None, threads: int = 0) -> BlockPlan:
    """Runs the shared planner. `tile` is the block edge for specs without a block of their own.
    The specs users write (MaskFn, FromMask, FlexBlockMask, a | b, a & b, PerHead) are planned in
    Python by sattn.custom (docs/specs.md), into the same layout.

    The plan records its PlanSource (spec, shape, tile, scale): see check_plan for what a backend
    given plan= checks against the call."""
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, k)
    scale = _inputs.resolve_scale(scale, prob.D)
    tile = check_tile(tile)
    threads = _inputs.check_threads(threads)
    check_block_fits(spec, prob)
    if isinstance(spec, S.USER_SPECS):
        from sattn import custom
        block = custom.spec_block(spec) or tile
        _limits.check_plan_size(prob.B, prob.Hq, prob.Lq, prob.Lk, block, True)
        p = custom.build_plan(spec, q, k, prob, tile=tile, scale=scale, threads=threads)
        return dataclasses.replace(p, source=source_for(spec, prob.shape_tuple, tile, scale))
    dynamic = isinstance(spec, DYNAMIC_SPECS)
    _limits.check_plan_size(prob.B, prob.Hq, prob.Lq, prob.Lk, getattr(spec, "block", tile), dynamic)
    qa = _inputs.to_numpy(q, np.float32) if dynamic else None
    ka = _inputs.to_numpy(k, np.float32) if dynamic else None
    d = _cc().build_plan(spec.to_fields(), prob.shape_tuple, qa, ka, tile=tile, scale=scale, threads=threads)
    return dataclasses.replace(BlockPlan.from_dict(d), source=source_for(spec, prob.shape_tuple, tile, scale))
