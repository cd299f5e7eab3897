"""The five attention specs of the sattn contract (docs/contract.md) as frozen, validated dataclasses.

Their fields, defaults, ranges and doc lines come from spec/schema.json (through the generated
sattn._schema). Every field is checked on construction; a bad value raises ValueError/TypeError
naming the field and what was expected. `spec.to_fields()` gives the flat dict the C++ core reads
(cc/include/sattn/spec_fields.h).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from sattn import _schema

__all__ = ["Spec", "Dense", "SlidingWindow", "BlockTopK", "BigBird", "TopKPerQuery", "MaskFn", "FromMask",
           "FlexBlockMask", "Union", "Intersection", "PerHead", "MoBA", "KIND_IDS", "check_spec"]

# Numeric kinds shared with C++ (sattn::SpecKind) and the plan file format (docs/bsr.md).
KIND_IDS = {name: sp["kind_id"] for name, sp in _schema.SPECS.items()}
MAX_BLOCK = next(f["max"] for f in _schema.SPECS["BlockTopK"]["fields"] if f["name"] == "block")
# The C++ spec's integer fields are int32 (seed uint64): spec/schema.json.
INT32_MAX = _schema.INT32_MAX
UINT64_MAX = _schema.UINT64_MAX


def _check_int(spec, name: str, lo: int, hi: int = INT32_MAX) -> None:
    """Field `name` of the frozen `spec` as a Python int in [lo, hi] (numpy integers accepted)."""
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        rng = f">= {lo}" if value < lo and hi in (INT32_MAX, UINT64_MAX) else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: expected an integer {rng}, got {value}")
    object.__setattr__(spec, name, int(value))


def _check_bool(spec, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")


def _check_float(spec, name: str, f: dict) -> None:
    value = getattr(spec, name)
    lo, hi, open_lo = f["min"], f["max"], f.get("min_open", False)
    rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float in {rng}, got {type(value).__name__} {value!r}")
    x = float(value)
    if math.isnan(x) or not ((lo < x) if open_lo else (lo <= x)) or not x <= hi:
        raise ValueError(f"{name}: expected a float in {rng}, got {value}")
    object.__setattr__(spec, name, x)


def _check_enum(spec, name: str, values) -> None:
    value = getattr(spec, name)
    choices = " or ".join(repr(v) for v in values)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected {choices}, got {type(value).__name__} {value!r}")
    if value not in values:
        raise ValueError(f"{name}: expected {choices}, got {value!r}")


def _validate(spec) -> None:
    """Checks (and normalises) every field of `spec` against its range in spec/schema.json."""
    for f in _schema.SPECS[type(spec).__name__]["fields"]:
        name, typ = f["name"], f["type"]
        if typ == "bool":
            _check_bool(spec, name)
        elif typ == "int32":
            _check_int(spec, name, f.get("min", -INT32_MAX - 1), f.get("max", INT32_MAX))
        elif typ == "uint64":
            _check_int(spec, name, f.get("min", 0), f.get("max", UINT64_MAX))
        elif typ == "float64":
            _check_float(spec, name, f)
        else:
            _check_enum(spec, name, f["values"])


class Spec:
    """Base class of all specs."""

    causal: bool = False

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_fields(self) -> dict:
        """Flat field dict for the C++ core, keyed by the C++ names (cc/include/sattn/spec_fields.h)."""
        fields = {"kind": KIND_IDS[self.kind], "causal": self.causal}
        for f in _schema.SPECS[self.kind]["fields"]:
            if f["name"] == "causal":
                continue
            value = getattr(self, f["name"])
            fields[f.get("cc", f["name"])] = f["values"].index(value) if f["type"] == "enum" else value
        return fields

    def params(self) -> dict:
        """The spec's own parameters, for bench rows and docs."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.kind}({args})"

    def __post_init__(self):
        _validate(self)
        # A plain string attribute: torch.compile reads it as a constant, where calling a
        # function on the frozen dataclass is refused by some torch releases (2.11's dynamo).
        # Built with string operations only, because a spec made inside a compiled function runs
        # this under dynamo, which cannot trace json's C encoder.
        items = sorted(self.params().items())
        body = ", ".join(f'"{name}": {_json_scalar(value)}' for name, value in items)
        object.__setattr__(self, "trace_key", f'["{self.kind}", {{{body}}}]')


def _json_scalar(value) -> str:
    """JSON text of a spec field value (bool, int, finite float or identifier-like str)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


_PY_TYPES = {"bool": bool, "int32": int, "uint64": int, "float64": float, "enum": str}


def _make_spec(name: str) -> type:
    """The frozen dataclass of spec `name`: its fields, order, defaults and doc from spec/schema.json."""
    sp = _schema.SPECS[name]
    fields = [(f["name"], _PY_TYPES[f["type"]], dataclasses.field(default=f["default"])) for f in sp["fields"]]
    cls = dataclasses.make_dataclass(name, fields, bases=(Spec,), frozen=True)
    cls.__module__ = __name__
    doc = [sp["doc"], "", "Fields (spec/schema.json):"]
    doc += [f"    {f['name']} (default {f['default']!r}): {f['doc']}" for f in sp["fields"]]
    cls.__doc__ = "\n".join(doc)
    return cls


Dense = _make_spec("Dense")
SlidingWindow = _make_spec("SlidingWindow")
BlockTopK = _make_spec("BlockTopK")
BigBird = _make_spec("BigBird")
TopKPerQuery = _make_spec("TopKPerQuery")
CONTRACT_SPECS = (Dense, SlidingWindow, BlockTopK, BigBird, TopKPerQuery)
if tuple(c.__name__ for c in CONTRACT_SPECS) != tuple(_schema.SPECS):
    raise ImportError("sattn.specs: the spec classes are not those of spec/schema.json")


def _spec_class(name: str):
    """The spec class named `name`, case-insensitive, underscores ignored ('block_topk')."""
    table = {cls.__name__.lower(): cls for cls in CONTRACT_SPECS}
    cls = table.get(name.lower().replace("_", ""))
    if cls is None:
        raise ValueError(f"spec: expected one of {sorted(c.__name__ for c in table.values())}, got {name!r}")
    return cls


def from_name(name: str, **params) -> Spec:
    """Builds a spec from its class name, case-insensitive (e.g. the GPU op's spec argument)."""
    return _spec_class(name)(**params)


def from_options(name: str, options: dict) -> Spec:
    """Builds a spec from a command-line name ('dense', 'sliding_window', 'block_topk', 'bigbird',
    'topk_per_query') and a dict of option values (e.g. absl's flag_values_dict()), taking the
    options that are fields of that spec and leaving the others at the contract's defaults.
    TopKPerQuery's `k` is read from 'topk' (its name in the C++ spec and on the command lines)."""
    cls = _spec_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    opts = dict(options)
    if cls is TopKPerQuery and "topk" in opts:
        opts.setdefault("k", opts["topk"])
    return cls(**{key: value for key, value in opts.items() if key in fields})


# ---------------------------------------------------------------------------------------------
# Specs users write: mask functions, boolean masks, FlexAttention BlockMasks, unions,
# intersections and per-head specs (docs/specs.md). They have no C++ kind: sattn.plan() builds
# their BlockPlan in Python (sattn.custom) and every backend that takes a plan runs it.

def _fn_name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class UserSpec(Spec):
    """Base class of the specs whose plan is built in Python from a mask (sattn.custom)."""

    causal = False

    def to_fields(self) -> dict:
        raise TypeError(f"spec: {self.kind} has no C++ spec fields; build its plan with "
                        f"sattn.plan(spec, q, k) and pass plan= to the backend")

    def params(self) -> dict:
        return {}

    def __str__(self) -> str:
        return repr(self)


class MaskFn(UserSpec):
    """Key j visible from query position p iff fn(b, h, p, j) is true.

    `fn` is called like FlexAttention's mask_mod, on index arrays that broadcast against each
    other (b, h: batch and query head; q_idx: the query's absolute position p = i + Lk - Lq;
    kv_idx: the key position), and must return a bool array of their broadcast shape, computed
    elementwise (no Python branching on values). `array` picks what it is given: "torch" (int64
    tensors), "numpy" (int64 arrays), or "auto" (torch where it is installed). Equal, and sharing
    cached plans, exactly when `fn` is the same object."""

    __slots__ = ("fn", "array")

    def __init__(self, fn, *, array: str = "auto"):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable fn(b, h, q_idx, kv_idx) -> bool array, got {type(fn).__name__}")
        if array not in ("auto", "torch", "numpy"):
            raise ValueError(f"array: expected 'auto', 'torch' or 'numpy', got {array!r}")
        if array == "auto":
            try:
                import torch  # noqa: F401
                array = "torch"
            except ImportError:
                array = "numpy"
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "array", array)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    def __eq__(self, other):
        return type(other) is MaskFn and other.fn is self.fn and other.array == self.array

    def __hash__(self):
        return hash((MaskFn, id(self.fn), self.array))

    def __repr__(self):
        return f"MaskFn(fn={_fn_name(self.fn)}, array={self.array!r})"


class FromMask(UserSpec):
    """The visible pairs given as a bool array (numpy or torch) of shape (Lq, Lk), (Hq, Lq, Lk) or
    (B, Hq, Lq, Lk); a batch or head dimension of 1 broadcasts. A read-only copy is kept, so later
    changes to the caller's array change nothing. Equal only to itself."""

    __slots__ = ("mask",)

    def __init__(self, mask):
        from sattn import _inputs
        if _inputs._is_torch(mask):
            import torch
            if mask.dtype != torch.bool:
                raise TypeError(f"mask: expected a bool tensor, got dtype {mask.dtype}")
            mask = mask.detach().cpu().numpy()
        elif isinstance(mask, np.ndarray):
            if mask.dtype != np.bool_:
                raise TypeError(f"mask: expected a bool array, got dtype {mask.dtype}")
        else:
            raise TypeError(f"mask: expected a numpy bool array or torch bool tensor, got {type(mask).__name__}")
        if not 2 <= mask.ndim <= 4 or 0 in mask.shape:
            raise ValueError(f"mask: expected shape (Lq, Lk), (Hq, Lq, Lk) or (B, Hq, Lq, Lk), got {mask.shape}")
        m = np.array(mask, dtype=bool, copy=True).reshape((1,) * (4 - mask.ndim) + mask.shape)
        m.flags.writeable = False
        object.__setattr__(self, "mask", m)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    __hash__ = object.__hash__

    def __repr__(self):
        return f"FromMask(mask of shape {self.mask.shape}, {int(self.mask.sum())} visible)"


class FlexBlockMask(UserSpec):
    """A FlexAttention BlockMask (torch.nn.attention.flex_attention.create_block_mask) as a spec:
    its full blocks, and its partial blocks with the pairs its mask_mod keeps. Needs square blocks
    (Q_BLOCK_SIZE == KV_BLOCK_SIZE, at most 4096) and Q_LEN == KV_LEN (Flex numbers queries from 0,
    the contract from Lk - Lq). Equal only to itself."""

    __slots__ = ("block", "plan_b", "plan_h", "q_len", "kv_len", "partial", "full", "mask_mod")

    def __init__(self, block_mask):
        try:
            from torch.nn.attention.flex_attention import BlockMask
        except ImportError as e:
            raise TypeError(f"block_mask: FlexBlockMask needs torch with FlexAttention ({e})") from None
        if not isinstance(block_mask, BlockMask):
            raise TypeError(f"block_mask: expected a torch BlockMask, got {type(block_mask).__name__}")
        qb, kb = (int(x) for x in block_mask.BLOCK_SIZE)
        if qb != kb or not 1 <= qb <= MAX_BLOCK:
            raise ValueError(f"block_mask: expected square blocks of at most {MAX_BLOCK}, got BLOCK_SIZE={(qb, kb)}")
        q_len, kv_len = (int(x) for x in block_mask.seq_lengths)
        if q_len != kv_len:
            raise ValueError(f"block_mask: expected Q_LEN == KV_LEN, got {(q_len, kv_len)}")

        def lists(num, idx):
            if num is None:
                return None
            return (num.detach().cpu().numpy().astype(np.int64), idx.detach().cpu().numpy().astype(np.int64))

        partial = lists(block_mask.kv_num_blocks, block_mask.kv_indices)
        full = lists(block_mask.full_kv_num_blocks, block_mask.full_kv_indices)
        nb = partial[0].shape
        for name, value in (("block", qb), ("plan_b", nb[0]), ("plan_h", nb[1]), ("q_len", q_len),
                            ("kv_len", kv_len), ("partial", partial), ("full", full), ("mask_mod", block_mask.mask_mod)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    __hash__ = object.__hash__

    def __repr__(self):
        return f"FlexBlockMask(block={self.block}, Q_LEN=KV_LEN={self.q_len}, mask_mod={_fn_name(self.mask_mod)})"


class _Combination(UserSpec):
    __slots__ = ("parts",)
    _op = ""

    def __init__(self, *parts):
        flat = []
        for i, part in enumerate(parts):
            check_spec(part, f"{type(self).__name__} part {i}")
            flat.extend(part.parts if type(part) is type(self) else (part,))
        if len(flat) < 2:
            raise ValueError(f"spec: {type(self).__name__} needs at least two specs, got {len(flat)}")
        object.__setattr__(self, "parts", tuple(flat))

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    def __eq__(self, other):
        return type(other) is type(self) and other.parts == self.parts

    def __hash__(self):
        return hash((type(self), self.parts))

    def __repr__(self):
        return "(" + f" {self._op} ".join(repr(p) if isinstance(p, UserSpec) else str(p) for p in self.parts) + ")"


class Union(_Combination):
    """Visible where any part is visible: `a | b`."""
    _op = "|"


class Intersection(_Combination):
    """Visible where every part is visible: `a & b`."""
    _op = "&"


class PerHead(UserSpec):
    """One spec per query head: query head h sees what specs[h] gives it (len(specs) must be Hq)."""

    __slots__ = ("specs",)

    def __init__(self, specs):
        specs = tuple(specs)
        if not specs:
            raise ValueError("specs: expected one spec per query head, got none")
        for i, part in enumerate(specs):
            check_spec(part, f"specs[{i}]")
        object.__setattr__(self, "specs", specs)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    def __eq__(self, other):
        return type(other) is PerHead and other.specs == self.specs

    def __hash__(self):
        return hash((PerHead, self.specs))

    def __repr__(self):
        return "PerHead([" + ", ".join(repr(p) if isinstance(p, UserSpec) else str(p) for p in self.specs) + "])"


class MoBA(UserSpec):
    """Mixture of Block Attention (Lu et al., "MoBA: Mixture of Block Attention for Long-Context
    LLMs", Moonshot AI 2025, arXiv:2502.13189): each query token attends to `topk` key blocks of
    `block` keys, chosen by a parameter-free gate.

    The keys are cut into blocks [c*block, (c+1)*block); block c's gate key is the mean of its
    keys (over the keys it has: the last block may be short). Query token t (position
    p = t + Lk - Lq) of head h scores block c by s_c = q_t . mean(k_c) with the keys of h's GQA kv
    head. causal=True (the paper's setting): the block holding p is always selected and masked
    causally (keys j <= p), the other topk - 1 are the best-scoring blocks that end before p's
    block (all of them while fewer exist); causal=False: the topk best-scoring blocks of all.
    Ties go to the lower block index. Softmax runs over the union of the selected keys; gradients
    flow through that attention, not through the (discrete) selection, as in the paper.

    Defaults are the paper's: block=512, topk=3 (its 1M-context runs use block 4096, topk 12).
    Planned per (batch, query head) by sattn.learned (docs/specs.md, "Learned selections") into
    blocks of gcd(block, tile) keys; equal when the fields are equal."""

    __slots__ = ("block", "topk", "causal")

    def __init__(self, block: int = 512, topk: int = 3, causal: bool = True):
        for name, value in (("block", block), ("topk", topk)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal: expected a bool, got {type(causal).__name__} {causal!r}")
        object.__setattr__(self, "block", int(block))
        object.__setattr__(self, "topk", int(topk))
        object.__setattr__(self, "causal", causal)

    def __setattr__(self, name, value):
        raise AttributeError(f"{self.kind} is immutable")

    def params(self) -> dict:
        return {"block": self.block, "topk": self.topk, "causal": self.causal}

    def __eq__(self, other):
        return type(other) is MoBA and other.params() == self.params()

    def __hash__(self):
        return hash((MoBA, self.block, self.topk, self.causal))

    def __repr__(self):
        return f"MoBA(block={self.block}, topk={self.topk}, causal={self.causal})"


USER_SPECS = (MaskFn, FromMask, FlexBlockMask, Union, Intersection, PerHead, MoBA)


def _or(self, other):
    return Union(self, other) if isinstance(other, Spec) else NotImplemented


def _and(self, other):
    return Intersection(self, other) if isinstance(other, Spec) else NotImplemented


Spec.__or__ = _or
Spec.__and__ = _and


def check_spec(spec, name: str = "spec") -> None:
    """TypeError unless `spec` is a spec instance: one of the five contract specs or a user spec."""
    if isinstance(spec, type) and issubclass(spec, Spec):
        raise TypeError(f"{name}: expected a spec instance such as {spec.__name__}(), got the class {spec.__name__}")
    if type(spec) not in CONTRACT_SPECS + USER_SPECS:
        raise TypeError(f"{name}: expected a sattn spec (Dense, SlidingWindow, BlockTopK, BigBird, "
                        f"TopKPerQuery, MaskFn, FromMask, FlexBlockMask, a | b, a & b, PerHead, MoBA), "
                        f"got {type(spec).__name__}")
