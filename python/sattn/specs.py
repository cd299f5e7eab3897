"""The five attention specs of the sattn contract (docs/contract.md) as frozen, validated dataclasses.

Every field is checked on construction; a bad value raises ValueError/TypeError naming the field
and what was expected. `spec.to_fields()` gives the flat dict the C++ core reads (cc/include/sattn/spec.h).
"""
from __future__ import annotations

import dataclasses
import math
import numbers

__all__ = ["Spec", "Dense", "SlidingWindow", "BlockTopK", "BigBird", "TopKPerQuery", "KIND_IDS", "check_spec"]

# Numeric kinds shared with C++ (sattn::SpecKind) and the plan file format (docs/bsr.md).
KIND_IDS = {"Dense": 0, "SlidingWindow": 1, "BlockTopK": 2, "BigBird": 3, "TopKPerQuery": 4}
MAX_BLOCK = 4096
# The C++ spec's integer fields are int32 (seed uint64): cc/include/sattn/spec.h.
INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1


def _check_int(spec, name: str, lo: int, hi: int = INT32_MAX) -> None:
    """Field `name` of the frozen `spec` as a Python int in [lo, hi] (numpy integers accepted)."""
    value = getattr(spec, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        rng = f">= {lo}" if value < lo and hi == INT32_MAX else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: expected an integer {rng}, got {value}")
    object.__setattr__(spec, name, int(value))


def _check_bool(spec, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")


def check_spec(spec) -> None:
    """TypeError unless `spec` is an instance of one of the five specs."""
    if isinstance(spec, type) and issubclass(spec, Spec):
        raise TypeError(f"spec: expected a spec instance such as {spec.__name__}(), got the class {spec.__name__}")
    if type(spec) not in (Dense, SlidingWindow, BlockTopK, BigBird, TopKPerQuery):
        raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, BlockTopK, BigBird, "
                        f"TopKPerQuery), got {type(spec).__name__}")


class Spec:
    """Base class of all specs."""

    causal: bool = False

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_fields(self) -> dict:
        """Flat field dict for the C++ core (unused fields keep the C++ defaults)."""
        fields = {"kind": KIND_IDS[self.kind], "causal": self.causal}
        fields.update(self._cc_fields())
        return fields

    def _cc_fields(self) -> dict:
        return {}

    def params(self) -> dict:
        """The spec's own parameters, for bench rows and docs."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.kind}({args})"


@dataclasses.dataclass(frozen=True)
class Dense(Spec):
    """Every key visible (only j <= p when causal)."""

    causal: bool = False

    def __post_init__(self):
        _check_bool(self, "causal")


@dataclasses.dataclass(frozen=True)
class SlidingWindow(Spec):
    """Key j visible from position p iff (not causal or j <= p) and
    ((|p-j| < window*dilation and (p-j) % dilation == 0) or j < global_tokens or p < global_tokens)."""

    window: int = 256
    causal: bool = False
    dilation: int = 1
    global_tokens: int = 0

    def __post_init__(self):
        _check_int(self, "window", 1)
        _check_bool(self, "causal")
        _check_int(self, "dilation", 1)
        _check_int(self, "global_tokens", 0)

    def _cc_fields(self):
        return {"window": self.window, "dilation": self.dilation, "global_tokens": self.global_tokens}


@dataclasses.dataclass(frozen=True)
class BlockTopK(Spec):
    """Per query block, keep the top-scoring key blocks (mean- or max-pooled block scores)."""

    block: int = 64
    keep: float = 0.125
    global_blocks: int = 1
    local_blocks: int = 1
    causal: bool = False
    score: str = "mean"

    def __post_init__(self):
        _check_int(self, "block", 1, MAX_BLOCK)
        if isinstance(self.keep, bool) or not isinstance(self.keep, numbers.Real):
            raise TypeError(f"keep: expected a float in (0, 1], got {type(self.keep).__name__} {self.keep!r}")
        if not (0.0 < float(self.keep) <= 1.0) or math.isnan(self.keep):
            raise ValueError(f"keep: expected a float in (0, 1], got {self.keep}")
        object.__setattr__(self, "keep", float(self.keep))
        _check_int(self, "global_blocks", 0)
        _check_int(self, "local_blocks", 0)
        _check_bool(self, "causal")
        if not isinstance(self.score, str):
            raise TypeError(f"score: expected 'mean' or 'max', got {type(self.score).__name__} {self.score!r}")
        if self.score not in ("mean", "max"):
            raise ValueError(f"score: expected 'mean' or 'max', got {self.score!r}")

    def _cc_fields(self):
        return {"block": self.block, "keep": float(self.keep), "global_blocks": self.global_blocks,
                "local_blocks": self.local_blocks, "score": 0 if self.score == "mean" else 1}


@dataclasses.dataclass(frozen=True)
class BigBird(Spec):
    """Window, global and seeded random blocks (counter-based generator, docs/contract.md)."""

    block: int = 64
    window_blocks: int = 3
    global_blocks: int = 1
    random_blocks: int = 2
    seed: int = 0
    causal: bool = False

    def __post_init__(self):
        _check_int(self, "block", 1, MAX_BLOCK)
        _check_int(self, "window_blocks", 0)
        _check_int(self, "global_blocks", 0)
        _check_int(self, "random_blocks", 0)
        _check_int(self, "seed", 0, UINT64_MAX)
        _check_bool(self, "causal")

    def _cc_fields(self):
        return {"block": self.block, "window_blocks": self.window_blocks, "global_blocks": self.global_blocks,
                "random_blocks": self.random_blocks, "seed": self.seed}


@dataclasses.dataclass(frozen=True)
class TopKPerQuery(Spec):
    """Each query sees its k highest-scoring eligible keys (q.k, ties to the lower j)."""

    k: int = 64
    causal: bool = False

    def __post_init__(self):
        _check_int(self, "k", 1)
        _check_bool(self, "causal")

    def _cc_fields(self):
        return {"topk": self.k}


def _spec_class(name: str):
    """The spec class named `name`, case-insensitive, underscores ignored ('block_topk')."""
    table = {cls.__name__.lower(): cls for cls in (Dense, SlidingWindow, BlockTopK, BigBird, TopKPerQuery)}
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
