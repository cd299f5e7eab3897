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

from sattn import _schema

__all__ = ["Spec", "Dense", "SlidingWindow", "BlockTopK", "BigBird", "TopKPerQuery", "KIND_IDS", "check_spec"]

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


def check_spec(spec) -> None:
    """TypeError unless `spec` is an instance of one of the five specs."""
    if isinstance(spec, type) and issubclass(spec, Spec):
        raise TypeError(f"spec: expected a spec instance such as {spec.__name__}(), got the class {spec.__name__}")
    if type(spec) not in CONTRACT_SPECS:
        raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, BlockTopK, BigBird, "
                        f"TopKPerQuery), got {type(spec).__name__}")


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
