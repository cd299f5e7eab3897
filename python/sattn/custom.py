"""BlockPlans of the specs users write (sattn.specs.USER_SPECS): mask functions, bool masks,
FlexAttention BlockMasks, unions, intersections and per-head specs (docs/specs.md).

A plan is assembled from *tiles*: the (row, key block) entries of a BlockPlan, each full (every
in-range pair visible) or partial (a block x block bitmap). Building one from a mask function
never calls the function once per pair in Python:

1. Block classification by interval evaluation. The function is called once with `_Span`
   arguments: for every (query block, key block) pair, the range of q_idx and kv_idx over the
   block. Arithmetic, comparisons, logic, `where`, min/max and lookups into 1-D torch tensors
   (range minimum/maximum over a sparse table) propagate sound bounds, so a block pair comes out
   all-true (full), all-false (absent) or undecided. Numpy ufuncs work the same way.
2. Undecided pairs (the diagonal of a causal mask, document edges, ...) are evaluated exactly, the
   function called on index arrays of shape (n, block, 1) and (n, 1, block) for n pairs at once.
3. A function the interval evaluation cannot follow (an operation it does not know, numpy table
   lookups) is evaluated exactly on every pair, block rows at a time: slower, the same plan.

Plans are cached by (spec, shape, block): for MaskFn, by the function's identity.
"""
from __future__ import annotations

import collections
import math

import numpy as np

from sattn import specs as S

_CACHE_SIZE = 32
_cache: "collections.OrderedDict" = collections.OrderedDict()
_EXACT_CHUNK = 1 << 24  # pairs per exact call of a mask function
_MAX_EXACT = float(2 ** 52)  # interval bounds stay exact integers in float64 below this


class _NotAnalyzable(Exception):
    """The interval evaluation met something it cannot bound: fall back to exact evaluation."""


# ---------------------------------------------------------------------------------------------
# Tiles: the entries of a plan, full or with a bitmap, keyed by row * n_k_blocks + key block.

class Geometry:
    """The plan layout of a shape with block edge `block` (cc/include/sattn/plan.h)."""

    def __init__(self, B, Hq, Lq, Lk, block):
        self.B, self.Hq, self.Lq, self.Lk, self.block = B, Hq, Lq, Lk, block
        self.q_first = Lk - Lq
        self.nkb = -(-Lk // block)
        self.qb0 = self.q_first // block
        self.nqb = self.nkb - self.qb0
        self.words = -(-block // 64)

    def q_range(self, a):
        """[lo, hi] positions of query block a (absolute block index), arrays welcome."""
        a = np.asarray(a, dtype=np.int64)
        return np.maximum(a * self.block, self.q_first), np.minimum((a + 1) * self.block, self.Lk) - 1

    def k_range(self, c):
        c = np.asarray(c, dtype=np.int64)
        return c * self.block, np.minimum((c + 1) * self.block, self.Lk) - 1

    def in_range(self, a, c):
        """Bool (n, block, block): the pairs of block pairs (a[i], c[i]) that exist."""
        blk = self.block
        off = np.arange(blk)
        qlo, qhi = self.q_range(a)
        pos = np.asarray(a)[:, None] * blk + off
        rows = (pos >= qlo[:, None]) & (pos <= qhi[:, None])
        klo, khi = self.k_range(c)
        cols = (np.asarray(c)[:, None] * blk + off) <= khi[:, None]
        return rows[:, :, None] & cols[:, None, :]


def pack_bits(tiles: np.ndarray, words: int) -> np.ndarray:
    """Bool (n, blk, blk) -> uint64 (n, blk, words): bit c of row i is word c // 64, bit c % 64."""
    n, blk, _ = tiles.shape
    padded = tiles
    if blk != words * 64:
        padded = np.zeros((n, blk, words * 64), dtype=bool)
        padded[:, :, :blk] = tiles
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8").astype(np.uint64).reshape(n, blk, words)


class Tiles:
    """Entries of a plan over rows (pb, ph, r): sorted keys, a full flag, bits of the partial ones."""

    def __init__(self, geo: Geometry, PB: int, PH: int, key, full, bits):
        self.geo, self.PB, self.PH = geo, PB, PH
        self.key = np.asarray(key, dtype=np.int64)
        self.full = np.asarray(full, dtype=bool)
        self.bits = bits  # uint64 (number of partial entries, block, words), in key order

    @classmethod
    def classify(cls, geo, PB, PH, row, col, exact):
        """Tiles from evaluated block pairs: `exact` bool (n, blk, blk), already limited to in-range
        pairs; all-visible pairs become full entries, empty ones are dropped."""
        a = row % geo.nqb + geo.qb0
        qlo, qhi = geo.q_range(a)
        klo, khi = geo.k_range(col)
        count = np.count_nonzero(exact.reshape(exact.shape[0], geo.block * geo.block), axis=1)
        keep = count > 0
        full = count == (qhi - qlo + 1) * (khi - klo + 1)
        order = np.argsort((row * geo.nkb + col)[keep], kind="stable")
        key = (row * geo.nkb + col)[keep][order]
        fullk = full[keep][order]
        part = exact[keep][order][~fullk]
        return cls(geo, PB, PH, key, fullk, pack_bits(part, geo.words))

    @classmethod
    def concat(cls, geo, PB, PH, pieces):
        """Union of disjoint pieces (key, full, bits), in any order."""
        if not pieces:
            return cls(geo, PB, PH, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, geo.block, geo.words), np.uint64))
        key = np.concatenate([p[0] for p in pieces])
        full = np.concatenate([p[1] for p in pieces])
        bits = np.concatenate([p[2] for p in pieces])
        order = np.argsort(key, kind="stable")
        part_pos = np.cumsum(~full) - 1  # index of each partial entry in `bits`
        key, full_sorted = key[order], full[order]
        bits = bits[part_pos[order][~full_sorted]] if bits.size else bits
        return cls(geo, PB, PH, key, full_sorted, bits)

    @classmethod
    def from_plan(cls, plan):
        geo = Geometry(plan.B, plan.Hq, plan.Lq, plan.Lk, plan.block)
        rows = np.repeat(np.arange(plan.rows), np.diff(plan.row_ptr.astype(np.int64)))
        key = rows * geo.nkb + plan.col_idx.astype(np.int64)
        full = plan.mask_idx < 0
        bits = plan.bitmaps.reshape(-1, geo.block, geo.words)[plan.mask_idx[~full]] if (~full).any() else \
            np.zeros((0, geo.block, geo.words), np.uint64)
        # Bits outside the block's in-range pairs carry no meaning in a plan; clear them so
        # combining plans compares like with like.
        if bits.size:
            r = rows[~full]
            inr = pack_bits(geo.in_range(r % geo.nqb + geo.qb0, plan.col_idx[~full].astype(np.int64)), geo.words)
            bits = bits & inr
        return cls(geo, plan.plan_b, plan.plan_h, key, full, bits)

    def broadcast(self, PB, PH) -> "Tiles":
        """The same entries over PB x PH rows (from 1 x 1, 1 x PH or PB x 1)."""
        if (PB, PH) == (self.PB, self.PH):
            return self
        g = self.geo
        rows, col = self.key // g.nkb, self.key % g.nkb
        pb, ph, r = rows // (self.PH * g.nqb), (rows // g.nqb) % self.PH, rows % g.nqb
        pieces = []
        part_idx = np.cumsum(~self.full) - 1
        for b in range(PB):
            for h in range(PH):
                sel = ((pb == (b if self.PB > 1 else 0)) & (ph == (h if self.PH > 1 else 0)))
                key = ((b * PH + h) * g.nqb + r[sel]) * g.nkb + col[sel]
                full = self.full[sel]
                pieces.append((key, full, self.bits[part_idx[sel][~full]]))
        return Tiles.concat(g, PB, PH, pieces)

    def combine(self, other: "Tiles", op: str) -> "Tiles":
        g = self.geo
        PB, PH = max(self.PB, other.PB), max(self.PH, other.PH)
        a, b = self.broadcast(PB, PH), other.broadcast(PB, PH)
        keys = np.union1d(a.key, b.key) if op == "|" else np.intersect1d(a.key, b.key)
        ia = np.searchsorted(a.key, keys)
        ib = np.searchsorted(b.key, keys)
        in_a = (ia < a.key.size) & (a.key[np.minimum(ia, max(a.key.size - 1, 0))] == keys) if a.key.size else np.zeros(keys.size, bool)
        in_b = (ib < b.key.size) & (b.key[np.minimum(ib, max(b.key.size - 1, 0))] == keys) if b.key.size else np.zeros(keys.size, bool)
        fa = np.zeros(keys.size, bool)
        fb = np.zeros(keys.size, bool)
        fa[in_a] = a.full[ia[in_a]]
        fb[in_b] = b.full[ib[in_b]]
        full = (fa | fb) if op == "|" else (fa & fb)
        need = ~full
        rows, cols = keys[need] // g.nkb, keys[need] % g.nkb
        inr = pack_bits(g.in_range(rows % g.nqb + g.qb0, cols), g.words)
        bits_a = _gather_bits(a, ia[need], in_a[need], fa[need], inr)
        bits_b = _gather_bits(b, ib[need], in_b[need], fb[need], inr)
        bits = (bits_a | bits_b) if op == "|" else (bits_a & bits_b)
        # Canonical form: bitmaps equal to the in-range pairs are full; empty ones vanish.
        now_full = (bits == inr).all(axis=(1, 2))
        empty = ~bits.any(axis=(1, 2))
        full_idx = np.flatnonzero(need)
        full[full_idx[now_full]] = True
        drop = np.zeros(keys.size, bool)
        drop[full_idx[empty & ~now_full]] = True
        bits = bits[~now_full & ~empty]
        return Tiles(g, PB, PH, keys[~drop], full[~drop], bits)

    def to_plan(self):
        """The BlockPlan (built once per Tiles, so cached masks hand out the same arrays)."""
        cached = getattr(self, "_plan", None)
        if cached is not None:
            return cached
        from sattn.plan import BlockPlan
        g = self.geo
        n_rows = self.PB * self.PH * g.nqb
        rows = self.key // g.nkb
        row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=row_ptr[1:])
        mask_idx = np.full(self.key.size, -1, dtype=np.int64)
        mask_idx[~self.full] = np.arange(int((~self.full).sum()))
        plan = BlockPlan(block=g.block, B=g.B, Hq=g.Hq, Lq=g.Lq, Lk=g.Lk, plan_b=self.PB, plan_h=self.PH,
                         q_block_begin=g.qb0, n_q_blocks=g.nqb, n_k_blocks=g.nkb, words_per_row=g.words,
                         row_ptr=row_ptr.astype(np.int32), col_idx=(self.key % g.nkb).astype(np.int32),
                         mask_idx=mask_idx.astype(np.int32), bitmaps=self.bits.reshape(-1))
        self._plan = plan
        return plan


def _gather_bits(t: Tiles, idx, present, full, inr):
    """Bits of entries idx of t (in-range bits where full, zeros where absent)."""
    out = np.zeros_like(inr)
    out[full] = inr[full]
    part = present & ~full
    if part.any():
        part_pos = np.cumsum(~t.full) - 1
        out[part] = t.bits[part_pos[idx[part]]]
    return out


# ---------------------------------------------------------------------------------------------
# Interval evaluation

class _SparseTable:
    """Range min/max of a 1-D table in O(1) per query."""

    def __init__(self, values: np.ndarray):
        self.n = values.size
        self.mins, self.maxs = [values], [values]
        k = 1
        while 2 * k <= self.n:
            lo, hi = self.mins[-1], self.maxs[-1]
            self.mins.append(np.minimum(lo[:-k], lo[k:]))
            self.maxs.append(np.maximum(hi[:-k], hi[k:]))
            k *= 2

    def query(self, lo, hi):
        lo, hi = np.broadcast_arrays(lo.astype(np.int64), hi.astype(np.int64))
        length = hi - lo + 1
        level = np.floor(np.log2(length)).astype(np.int64)
        mn = np.empty(lo.shape)
        mx = np.empty(lo.shape)
        for k in np.unique(level):
            sel = level == k
            a, b = lo[sel], hi[sel] - (1 << int(k)) + 1
            mn[sel] = np.minimum(self.mins[k][a], self.mins[k][b])
            mx[sel] = np.maximum(self.maxs[k][a], self.maxs[k][b])
        return mn, mx


class _Span:
    """Bounds [lo, hi] of a value over each block pair (arrays broadcasting over (nqb, nkb)),
    `boolean` for truth values (0/1), `deps` the batch/head indices it depends on."""

    __array_priority__ = 1000

    def __init__(self, lo, hi, boolean=False, deps=frozenset(), ctx=None):
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if not boolean and (np.abs(lo).max(initial=0) > _MAX_EXACT or np.abs(hi).max(initial=0) > _MAX_EXACT):
            raise _NotAnalyzable("values beyond exact float64 integers")
        self.lo, self.hi, self.boolean, self.deps, self.ctx = lo, hi, boolean, deps, ctx

    # Lifting -------------------------------------------------------------------------------
    def _lift(self, x):
        if isinstance(x, _Span):
            return x
        if isinstance(x, (bool, np.bool_)):
            return _Span(float(x), float(x), True, ctx=self.ctx)
        if isinstance(x, (int, float, np.integer, np.floating)):
            if isinstance(x, float) and not math.isfinite(x):
                raise _NotAnalyzable("non-finite constant")
            return _Span(float(x), float(x), ctx=self.ctx)
        if isinstance(x, np.ndarray) and x.ndim == 0:
            return self._lift(x.item())
        if _is_tensor(x) and x.dim() == 0:
            return self._lift(x.item())
        raise _NotAnalyzable(f"operand {type(x).__name__}")

    def _new(self, lo, hi, boolean, *others):
        deps = self.deps.union(*(o.deps for o in others))
        return _Span(lo, hi, boolean, deps, self.ctx)

    def _definite(self):
        return self.lo == self.hi

    def _int(self):
        if self.boolean or not (np.all(self.lo == np.floor(self.lo)) and np.all(self.hi == np.floor(self.hi))):
            raise _NotAnalyzable("integer operation on non-integers")
        return self

    # Arithmetic ----------------------------------------------------------------------------
    def add(self, o):
        o = self._lift(o)
        return self._new(self.lo + o.lo, self.hi + o.hi, False, o)

    def sub(self, o):
        o = self._lift(o)
        return self._new(self.lo - o.hi, self.hi - o.lo, False, o)

    def mul(self, o):
        o = self._lift(o)
        p = np.stack(np.broadcast_arrays(self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi))
        return self._new(p.min(axis=0), p.max(axis=0), False, o)

    def neg(self):
        return self._new(-self.hi, -self.lo, False)

    def abs(self):
        lo = np.where(self.lo >= 0, self.lo, np.where(self.hi <= 0, -self.hi, 0.0))
        hi = np.maximum(np.abs(self.lo), np.abs(self.hi))
        return self._new(lo, hi, False)

    def _const_divisor(self, o):
        o = self._lift(o)
        if o.lo.ndim or o.lo != o.hi or o.lo <= 0 or o.lo != math.floor(o.lo):
            raise _NotAnalyzable("division by a non-constant or non-positive value")
        self._int()
        return float(o.lo), o

    def floordiv(self, o):
        d, o = self._const_divisor(o)
        return self._new(np.floor(self.lo / d), np.floor(self.hi / d), False, o)

    def mod(self, o):
        d, o = self._const_divisor(o)
        q1, q2 = np.floor(self.lo / d), np.floor(self.hi / d)
        same = q1 == q2
        return self._new(np.where(same, self.lo - q1 * d, 0.0), np.where(same, self.hi - q1 * d, d - 1), False, o)

    def minimum(self, o):
        o = self._lift(o)
        return self._new(np.minimum(self.lo, o.lo), np.minimum(self.hi, o.hi), self.boolean and o.boolean, o)

    def maximum(self, o):
        o = self._lift(o)
        return self._new(np.maximum(self.lo, o.lo), np.maximum(self.hi, o.hi), self.boolean and o.boolean, o)

    # Comparisons ---------------------------------------------------------------------------
    def _truth(self, true, false, o):
        return self._new(true.astype(np.float64), (~false).astype(np.float64), True, o)

    def lt(self, o):
        o = self._lift(o)
        return self._truth(self.hi < o.lo, self.lo >= o.hi, o)

    def le(self, o):
        o = self._lift(o)
        return self._truth(self.hi <= o.lo, self.lo > o.hi, o)

    def gt(self, o):
        return self._lift(o).lt(self)

    def ge(self, o):
        return self._lift(o).le(self)

    def eq(self, o):
        o = self._lift(o)
        true = self._definite() & o._definite() & (self.lo == o.lo)
        return self._truth(true, (self.hi < o.lo) | (o.hi < self.lo), o)

    def ne(self, o):
        return self.eq(o).logical_not()

    # Logic ---------------------------------------------------------------------------------
    def _bool(self, o=None):
        if not self.boolean or (o is not None and not o.boolean):
            raise _NotAnalyzable("logical operation on non-booleans")

    def logical_and(self, o):
        o = self._lift(o)
        self._bool(o)
        return self._new(np.minimum(self.lo, o.lo), np.minimum(self.hi, o.hi), True, o)

    def logical_or(self, o):
        o = self._lift(o)
        self._bool(o)
        return self._new(np.maximum(self.lo, o.lo), np.maximum(self.hi, o.hi), True, o)

    def logical_xor(self, o):
        o = self._lift(o)
        self._bool(o)
        definite = self._definite() & o._definite()
        value = np.abs(self.lo - o.lo)
        return self._new(np.where(definite, value, 0.0), np.where(definite, value, 1.0), True, o)

    def logical_not(self):
        self._bool()
        return self._new(1.0 - self.hi, 1.0 - self.lo, True)

    def where(self, x, y):
        self._bool()
        x, y = self._lift(x), self._lift(y)
        t, f = self.lo == 1, self.hi == 0
        lo = np.where(t, x.lo, np.where(f, y.lo, np.minimum(x.lo, y.lo)))
        hi = np.where(t, x.hi, np.where(f, y.hi, np.maximum(x.hi, y.hi)))
        return self._new(lo, hi, x.boolean and y.boolean, x, y)

    def lookup(self, table):
        """table[self] for a 1-D table: the table's min and max over each index range."""
        self._int()
        n = table.shape[0]
        if self.lo.min(initial=0) < 0 or self.hi.max(initial=0) > n - 1:
            raise _NotAnalyzable("table index out of range")
        st = self.ctx.sparse_table(table)
        mn, mx = st.query(self.lo, self.hi)
        return self._new(mn, mx, _table_is_bool(table))

    # Python operators ----------------------------------------------------------------------
    __add__ = __radd__ = add
    __sub__ = sub
    __mul__ = __rmul__ = mul
    __neg__ = neg
    __abs__ = abs
    __floordiv__ = floordiv
    __mod__ = mod
    __lt__, __le__, __gt__, __ge__, __eq__, __ne__ = lt, le, gt, ge, eq, ne
    __and__ = __rand__ = logical_and
    __or__ = __ror__ = logical_or
    __xor__ = __rxor__ = logical_xor
    __invert__ = logical_not
    __hash__ = None

    def __rsub__(self, o):
        return self._lift(o).sub(self)

    def __rfloordiv__(self, o):
        raise _NotAnalyzable("division by an index")

    __rmod__ = __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __rfloordiv__

    def __bool__(self):
        raise _NotAnalyzable("truth value of an index array (Python branching)")

    def __index__(self):
        raise _NotAnalyzable("index array used as a Python int")

    __int__ = __float__ = __len__ = __iter__ = __index__

    def __getitem__(self, item):
        raise _NotAnalyzable("indexing into an index array")

    def __getattr__(self, name):
        # Tensor-style methods ((q - kv).abs(), x.logical_and(y), ...); dunder probes by numpy
        # and torch get the AttributeError they expect.
        if name.startswith("__"):
            raise AttributeError(name)
        op = _TORCH_NAMES.get(name)
        if op is None or op.startswith("r:"):
            raise _NotAnalyzable(f"method {name}")
        return lambda *args: getattr(self, op)(*args)

    # torch and numpy dispatch --------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if kwargs:
            raise _NotAnalyzable(f"{getattr(func, '__name__', func)} with keywords")
        name = getattr(func, "__name__", "")
        if name == "__getitem__" and _is_tensor(args[0]) and isinstance(args[1], _Span):
            if args[0].dim() != 1:
                raise _NotAnalyzable("lookup into a table that is not 1-D")
            return args[1].lookup(args[0])
        return _apply(_TORCH_NAMES.get(name), name, args)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise _NotAnalyzable(f"numpy {ufunc.__name__}.{method}")
        return _apply(_NUMPY_NAMES.get(ufunc.__name__), ufunc.__name__, inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where and not kwargs and len(args) == 3:
            return _apply("where", "where", args)
        raise _NotAnalyzable(f"numpy {getattr(func, '__name__', func)}")


def _apply(op, name, args):
    if op is None:
        raise _NotAnalyzable(f"operation {name}")
    swap = op.startswith("r:")
    op = op[2:] if swap else op
    if swap:
        args = (args[1], args[0]) + tuple(args[2:])
    first = next(a for a in args if isinstance(a, _Span))
    x = first._lift(args[0])
    return getattr(x, op)(*args[1:])


_BIN = {"add": "add", "sub": "sub", "mul": "mul", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq",
        "ne": "ne", "logical_and": "logical_and", "logical_or": "logical_or", "logical_xor": "logical_xor",
        "logical_not": "logical_not", "where": "where", "minimum": "minimum", "maximum": "maximum", "abs": "abs",
        "neg": "neg", "floor_divide": "floordiv", "remainder": "mod"}
_TORCH_NAMES = dict(_BIN)
_TORCH_NAMES.update({"subtract": "sub", "multiply": "mul", "less": "lt", "less_equal": "le", "greater": "gt",
                     "greater_equal": "ge", "not_equal": "ne", "bitwise_and": "logical_and",
                     "bitwise_or": "logical_or", "bitwise_xor": "logical_xor", "bitwise_not": "logical_not",
                     "negative": "neg", "absolute": "abs", "fmod": None})
for _n in ("add", "sub", "mul", "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "xor", "floordiv", "mod"):
    _op = {"and": "logical_and", "or": "logical_or", "xor": "logical_xor", "floordiv": "floordiv", "mod": "mod"}.get(_n, _n)
    _TORCH_NAMES[f"__{_n}__"] = _op
    _TORCH_NAMES[f"__r{_n}__"] = "r:" + _op
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):  # a < b is b > a: no reflected comparison operators
    _TORCH_NAMES.pop(f"__r{_n}__")
_TORCH_NAMES.update({"__invert__": "logical_not", "__neg__": "neg", "__abs__": "abs", "__rsub__": "r:sub",
                     "__radd__": "add", "__rmul__": "mul", "rsub": "r:sub"})
_NUMPY_NAMES = dict(_BIN)
_NUMPY_NAMES.update({"subtract": "sub", "multiply": "mul", "less": "lt", "less_equal": "le", "greater": "gt",
                     "greater_equal": "ge", "equal": "eq", "not_equal": "ne", "bitwise_and": "logical_and",
                     "bitwise_or": "logical_or", "bitwise_xor": "logical_xor", "invert": "logical_not",
                     "negative": "neg", "absolute": "abs"})


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "dim")


def _table_is_bool(table) -> bool:
    import torch
    return table.dtype == torch.bool


class _Context:
    def __init__(self):
        self.tables = {}

    def sparse_table(self, table):
        key = id(table)
        if key not in self.tables:
            values = table.detach().cpu().to(dtype=__import__("torch").float64).numpy()
            if not np.isfinite(values).all() or np.abs(values).max(initial=0) > _MAX_EXACT:
                raise _NotAnalyzable("table values not exact")
            self.tables[key] = (table, _SparseTable(values))  # the table is kept alive with its id
        return self.tables[key][1]


# ---------------------------------------------------------------------------------------------
# Mask functions

def _fn_label(spec) -> str:
    return f"MaskFn(fn={S._fn_name(spec.fn)})"


def _index(array: str, x):
    if array == "torch":
        import torch
        return torch.as_tensor(np.ascontiguousarray(x))
    return np.asarray(x)


def _to_bool_numpy(spec_label: str, res, shape):
    """The function's result as a numpy bool array broadcast to `shape`, or an error naming it."""
    if _is_tensor(res):
        import torch
        if res.dtype != torch.bool:
            raise TypeError(f"{spec_label}: expected the mask function to return a bool tensor, got dtype {res.dtype}")
        res = res.detach().cpu().numpy()
    elif isinstance(res, np.ndarray):
        if res.dtype != np.bool_:
            raise TypeError(f"{spec_label}: expected the mask function to return a bool array, got dtype {res.dtype}")
    else:
        raise TypeError(f"{spec_label}: expected the mask function to return a bool array or tensor, got "
                        f"{type(res).__name__} (it must compute elementwise on its index arrays)")
    try:
        if np.broadcast_shapes(res.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"{spec_label}: expected the mask function to return shape {tuple(shape)} (the broadcast "
                         f"of its index arrays), got {res.shape}") from None
    return np.broadcast_to(res, shape)


def call_mask_fn(spec_label, fn, array, b, h, q, kv):
    """fn on index arrays; the result as bool numpy of their broadcast shape."""
    shape = np.broadcast_shapes(np.shape(b), np.shape(h), np.shape(q), np.shape(kv))
    args = [_index(array, x) for x in (b, h, q, kv)]
    try:
        res = fn(*args)
    except Exception as e:  # noqa: BLE001 - whatever the function raises, say which function
        raise TypeError(f"{spec_label}: calling the mask function on index arrays of shape "
                        f"{tuple(np.shape(q))} (q_idx) and {tuple(np.shape(kv))} (kv_idx) raised "
                        f"{type(e).__name__}: {e}. It must be vectorised: elementwise over its index "
                        f"arrays (like FlexAttention's mask_mod), with no Python if/for on their values") from e
    return _to_bool_numpy(spec_label, res, shape)


def _exact_tiles(geo, label, fn, array, b, h, a, c):
    """Bool (n, blk, blk): fn on every in-range pair of block pairs (a[i], c[i]) for batch b, head h."""
    blk = geo.block
    out = np.zeros((a.size, blk, blk), dtype=bool)
    step = max(1, _EXACT_CHUNK // (blk * blk))
    off = np.arange(blk)
    for s in range(0, a.size, step):
        aa, cc = a[s:s + step], c[s:s + step]
        qpos = np.clip(aa[:, None] * blk + off, geo.q_first, geo.Lk - 1)[:, :, None]
        kpos = np.clip(cc[:, None] * blk + off, 0, geo.Lk - 1)[:, None, :]
        out[s:s + step] = call_mask_fn(label, fn, array, np.int64(b), np.int64(h), qpos, kpos)
    _clip_to_range(geo, a, c, out)
    return out


def _spans_of(fn, b_span, h_span, q_lohi, k_lohi):
    """Interval evaluation of fn: (all-true, any-true) bool arrays and deps, or None when the
    function cannot be followed."""
    ctx = _Context()
    spans = [_Span(b_span[0], b_span[1], deps=frozenset("b"), ctx=ctx),
             _Span(h_span[0], h_span[1], deps=frozenset("h"), ctx=ctx),
             _Span(*q_lohi, ctx=ctx), _Span(*k_lohi, ctx=ctx)]
    try:
        with np.errstate(all="ignore"):
            res = fn(*spans)
    except Exception:  # noqa: BLE001 - _NotAnalyzable, or an error the exact evaluation reports
        return None
    if not isinstance(res, _Span) or not res.boolean:
        return None
    shape = np.broadcast_shapes(q_lohi[0].shape, k_lohi[0].shape)
    return np.broadcast_to(res.lo == 1, shape), np.broadcast_to(res.hi == 1, shape), res.deps


def _analyse(geo, fn, b_span, h_span):
    """_spans_of over every (query block, key block) pair: arrays (nqb, nkb)."""
    qlo, qhi = geo.q_range(np.arange(geo.qb0, geo.nkb))
    klo, khi = geo.k_range(np.arange(geo.nkb))
    return _spans_of(fn, b_span, h_span, (qlo[:, None], qhi[:, None]), (klo[None, :], khi[None, :]))


_SUB = 16  # edge of the sub-tiles an undecided block is split into before exact evaluation


def _refined_tiles(geo, label, fn, array, b, h, a, c):
    """_exact_tiles, but each undecided block is first split into _SUB x _SUB sub-tiles that the
    interval evaluation decides where it can (a causal diagonal block: 8 of 64 sub-tiles left)."""
    blk = geo.block
    if blk % _SUB or blk == _SUB or a.size == 0:
        return _exact_tiles(geo, label, fn, array, b, h, a, c)
    ns = blk // _SUB
    off = np.arange(ns) * _SUB
    qlo = np.clip(a[:, None] * blk + off, geo.q_first, geo.Lk - 1)
    qhi = np.clip(a[:, None] * blk + off + _SUB - 1, geo.q_first, geo.Lk - 1)
    klo = np.minimum(c[:, None] * blk + off, geo.Lk - 1)
    khi = np.minimum(c[:, None] * blk + off + _SUB - 1, geo.Lk - 1)
    found = _spans_of(fn, (b, b), (h, h), (qlo[:, :, None], qhi[:, :, None]), (klo[:, None, :], khi[:, None, :]))
    if found is None:
        return _exact_tiles(geo, label, fn, array, b, h, a, c)
    lo, hi, _ = found
    out = np.zeros((a.size, ns, _SUB, ns, _SUB), dtype=bool)
    n, i, j = np.nonzero(lo)
    out[n, i, :, j, :] = True
    n, i, j = np.nonzero(hi & ~lo)
    sub = np.arange(_SUB)
    step = max(1, _EXACT_CHUNK // (_SUB * _SUB))
    for s in range(0, n.size, step):
        nn, ii, jj = n[s:s + step], i[s:s + step], j[s:s + step]
        qpos = np.clip(a[nn, None] * blk + ii[:, None] * _SUB + sub, geo.q_first, geo.Lk - 1)[:, :, None]
        kpos = np.minimum(c[nn, None] * blk + jj[:, None] * _SUB + sub, geo.Lk - 1)[:, None, :]
        out[nn, ii, :, jj, :] = call_mask_fn(label, fn, array, np.int64(b), np.int64(h), qpos, kpos)
    out = out.reshape(a.size, blk, blk)
    _clip_to_range(geo, a, c, out)
    return out


def _clip_to_range(geo, a, c, tiles):
    """Clears the pairs outside the problem, touching only the blocks on its edges."""
    edge = (a * geo.block < geo.q_first) | (a == geo.nkb - 1) | (c == geo.nkb - 1)
    if edge.any():
        tiles[edge] &= geo.in_range(a[edge], c[edge])


def mask_fn_tiles(spec, geo: Geometry) -> Tiles:
    label, fn, array = _fn_label(spec), spec.fn, spec.array
    B, H = geo.B, geo.Hq
    found = _analyse(geo, fn, (0, B - 1), (0, H - 1))
    if found is None:
        return _exhaustive(geo, label, fn, array)
    _, _, deps = found
    PB = B if "b" in deps else 1
    PH = H if "h" in deps else 1
    pieces = []
    for b in range(PB):
        for h in range(PH):
            if (PB, PH) != (1, 1):
                found = _analyse(geo, fn, (b, b), (h, h))
                if found is None:
                    return _exhaustive(geo, label, fn, array)
            lo, hi, _ = found
            row0 = (b * PH + h) * geo.nqb
            r_full, c_full = np.nonzero(lo)
            r_mix, c_mix = np.nonzero(hi & ~lo)
            exact = _refined_tiles(geo, label, fn, array, b, h, r_mix + geo.qb0, c_mix)
            t = Tiles.classify(geo, PB, PH, row0 + r_mix, c_mix, exact)
            pieces.append(((row0 + r_full) * geo.nkb + c_full, np.ones(r_full.size, bool),
                           np.zeros((0, geo.block, geo.words), np.uint64)))
            pieces.append((t.key, t.full, t.bits))
    return Tiles.concat(geo, PB, PH, pieces)


def _exhaustive(geo, label, fn, array) -> Tiles:
    """Every pair evaluated exactly, one block row at a time, per batch and head; one broadcast
    row set when every (batch, head) gives the same plan."""
    per = []
    c = np.arange(geo.nkb)
    for b in range(geo.B):
        for h in range(geo.Hq):
            pieces = []
            for r in range(geo.nqb):
                a = np.full(geo.nkb, r + geo.qb0)
                t = Tiles.classify(geo, 1, 1, np.full(geo.nkb, r), c, _exact_tiles(geo, label, fn, array, b, h, a, c))
                pieces.append((t.key, t.full, t.bits))
            per.append(Tiles.concat(geo, 1, 1, pieces))
    first = per[0]
    if all(np.array_equal(t.key, first.key) and np.array_equal(t.full, first.full) and
           np.array_equal(t.bits, first.bits) for t in per[1:]):
        return first
    pieces = []
    for i, t in enumerate(per):
        pieces.append((t.key + i * geo.nqb * geo.nkb, t.full, t.bits))
    return Tiles.concat(geo, geo.B, geo.Hq, pieces)


# ---------------------------------------------------------------------------------------------
# Bool masks and BlockMasks

def from_mask_tiles(spec, geo: Geometry) -> Tiles:
    m = spec.mask
    MB, MH, Lq, Lk = m.shape
    if (Lq, Lk) != (geo.Lq, geo.Lk) or MB not in (1, geo.B) or MH not in (1, geo.Hq):
        raise ValueError(f"mask: expected shape (Lq, Lk)=({geo.Lq}, {geo.Lk}) with batch 1 or {geo.B} and "
                         f"heads 1 or {geo.Hq}, got {m.shape}")
    blk = geo.block
    lo = geo.q_first - geo.qb0 * blk
    pieces = []
    for b in range(MB):
        for h in range(MH):
            grid = np.zeros((geo.nqb * blk, geo.nkb * blk), dtype=bool)
            grid[lo:lo + Lq, :Lk] = m[b, h]
            tiles = grid.reshape(geo.nqb, blk, geo.nkb, blk).transpose(0, 2, 1, 3)
            any_ = tiles.any(axis=(2, 3))
            r, c = np.nonzero(any_)
            row0 = (b * MH + h) * geo.nqb
            t = Tiles.classify(geo, MB, MH, row0 + r, c, tiles[r, c])
            pieces.append((t.key, t.full, t.bits))
    return Tiles.concat(geo, MB, MH, pieces)


def block_mask_tiles(spec, geo: Geometry) -> Tiles:
    if (geo.Lq, geo.Lk) != (spec.q_len, spec.kv_len):
        raise ValueError(f"block_mask: built for Q_LEN=KV_LEN={spec.q_len}, got Lq={geo.Lq}, Lk={geo.Lk}")
    PB, PH = spec.plan_b, spec.plan_h
    if PB not in (1, geo.B) or PH not in (1, geo.Hq):
        raise ValueError(f"block_mask: built for B={PB}, H={PH}, got B={geo.B}, Hq={geo.Hq}")
    label = f"FlexBlockMask(mask_mod={S._fn_name(spec.mask_mod)})"
    pieces = []
    for which, lists in (("full", spec.full), ("partial", spec.partial)):
        if lists is None:
            continue
        num, idx = lists
        slot = np.arange(idx.shape[3])
        b, h, r, s = np.nonzero(slot[None, None, None, :] < num[..., None])
        c = idx[b, h, r, s]
        ok = (r < geo.nqb) & (c < geo.nkb)
        b, h, r, c = b[ok], h[ok], r[ok], c[ok]
        row = (b * PH + h) * geo.nqb + r
        if which == "full":
            inr = geo.in_range(r + geo.qb0, c)
            t = Tiles.classify(geo, PB, PH, row, c, inr)
        else:
            exact = np.zeros((row.size, geo.block, geo.block), dtype=bool)
            for bb in range(PB):
                for hh in range(PH):
                    sel = (b == bb) & (h == hh)
                    if sel.any():
                        exact[sel] = _exact_tiles(geo, label, spec.mask_mod, "torch", bb, hh, r[sel] + geo.qb0, c[sel])
            t = Tiles.classify(geo, PB, PH, row, c, exact)
        pieces.append((t.key, t.full, t.bits))
    return Tiles.concat(geo, PB, PH, pieces)


# ---------------------------------------------------------------------------------------------
# Entry points

def spec_block(spec):
    """The spec's own block edge, or None when it takes the tile (ValueError when parts disagree)."""
    if isinstance(spec, (S.BlockTopK, S.BigBird, S.FlexBlockMask)):
        return spec.block
    parts = spec.parts if isinstance(spec, S._Combination) else spec.specs if isinstance(spec, S.PerHead) else ()
    blocks = {b for b in (spec_block(p) for p in parts) if b is not None}
    if len(blocks) > 1:
        raise ValueError(f"spec: the parts of {spec!r} have different blocks {sorted(blocks)}; a combined plan "
                         f"needs one block edge")
    return blocks.pop() if blocks else None


def is_dynamic(spec) -> bool:
    """True when the plan depends on the values of q and k (BlockTopK, TopKPerQuery, MoBA parts)."""
    if isinstance(spec, (S.BlockTopK, S.TopKPerQuery, S.MoBA)):
        return True
    parts = spec.parts if isinstance(spec, S._Combination) else spec.specs if isinstance(spec, S.PerHead) else ()
    return any(is_dynamic(p) for p in parts)


def tiles(spec, q, k, geo: Geometry, *, scale, threads) -> Tiles:
    from sattn.plan import plan as contract_plan
    if isinstance(spec, S.CONTRACT_SPECS):
        return Tiles.from_plan(contract_plan(spec, q, k, tile=geo.block, scale=scale, threads=threads))
    if isinstance(spec, S._Combination):
        out = tiles(spec.parts[0], q, k, geo, scale=scale, threads=threads)
        for part in spec.parts[1:]:
            out = out.combine(tiles(part, q, k, geo, scale=scale, threads=threads), spec._op)
        return out
    if isinstance(spec, S.PerHead):
        if len(spec.specs) != geo.Hq:
            raise ValueError(f"spec: PerHead has {len(spec.specs)} specs for Hq={geo.Hq} query heads")
        group = q.shape[1] // k.shape[1]
        pieces, PB = [], 1
        parts = []
        for h, part in enumerate(spec.specs):
            qh, kh = q[:, h:h + 1], k[:, h // group:h // group + 1]
            t = tiles(part, qh, kh, Geometry(geo.B, 1, geo.Lq, geo.Lk, geo.block), scale=scale, threads=threads)
            parts.append(t)
            PB = max(PB, t.PB)
        for h, t in enumerate(parts):
            t = t.broadcast(PB, 1)
            rows, col = t.key // geo.nkb, t.key % geo.nkb
            b, r = rows // geo.nqb, rows % geo.nqb
            pieces.append((((b * geo.Hq + h) * geo.nqb + r) * geo.nkb + col, t.full, t.bits))
        return Tiles.concat(geo, PB, geo.Hq, pieces)
    if isinstance(spec, S.MoBA):
        if spec.block % geo.block:
            raise ValueError(f"tile: {spec!r} needs a plan block dividing its block {spec.block}, got "
                             f"{geo.block} (alone it is planned with gcd(block, tile))")
        from sattn import learned
        return learned.moba_tiles(spec, q, k, geo)
    key = None
    if isinstance(spec, (S.MaskFn, S.FromMask, S.FlexBlockMask)):
        key = (spec, geo.B, geo.Hq, geo.Lq, geo.Lk, geo.block)
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    if isinstance(spec, S.MaskFn):
        out = mask_fn_tiles(spec, geo)
    elif isinstance(spec, S.FromMask):
        out = from_mask_tiles(spec, geo)
    elif isinstance(spec, S.FlexBlockMask):
        out = block_mask_tiles(spec, geo)
    else:
        raise TypeError(f"spec: unsupported spec type {type(spec).__name__}")
    _cache[key] = out
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return out


def build_plan(spec, q, k, prob, *, tile: int, scale: float, threads: int):
    """The BlockPlan of a user spec for this problem (cached for masks, see the module doc)."""
    block = spec_block(spec) or (math.gcd(spec.block, tile) if isinstance(spec, S.MoBA) else tile)
    geo = Geometry(prob.B, prob.Hq, prob.Lq, prob.Lk, block)
    return tiles(spec, q, k, geo, scale=scale, threads=threads).to_plan()
