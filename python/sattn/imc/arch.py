"""CIM architecture descriptions: data files under sattn/imc/designs/, loaded and validated.

A description is a JSON object (`_SECTIONS` below lists every field and its bounds; docs/imc.md
says what each means, in joules, seconds, watts and mm^2). `load(x)`
takes a shipped design's name, a path to a .json file, or a dict, and returns an `Arch`; any
missing, unknown, mistyped or out-of-range field raises `ArchError` naming the field's path
(e.g. "adc.bits").
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from typing import Optional

DESIGNS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "designs")


class ArchError(ValueError):
    """A CIM architecture description that cannot be used; the message names the field."""


# (field, kind, required, low, high): kind "int", "float", "str", "bool"; bounds inclusive
# (None = unbounded). Energies in joules, times in seconds, areas in mm^2, powers in watts.
_SECTIONS = {
    "source": [("title", "str", True, None, None), ("venue", "str", True, None, None),
               ("year", "int", True, 1950, 2100), ("authors", "str", True, None, None),
               ("url", "str", False, None, None), ("headline", "str", True, None, None),
               ("tops_per_w", "float", False, 0, 1e6), ("tops_per_mm2", "float", False, 0, 1e6)],
    "technology": [("node_nm", "float", True, 1, 1000), ("cell", "str", True, None, None),
                   ("compute", "str", True, None, None)],
    "array": [("rows", "int", True, 1, 1 << 16), ("cols", "int", True, 1, 1 << 16),
              ("bits_per_cell", "int", True, 1, 53), ("count", "int", True, 1, 1 << 30),
              ("read_energy_per_cell_j", "float", True, 0, 1e-6),
              ("cycle_s", "float", True, 1e-12, 1e-3)],
    "operands": [("input_bits", "int", True, 2, 53), ("weight_bits", "int", True, 2, 53),
                 ("signed_weights", "str", True, None, None)],
    "dac": [("bits", "int", True, 1, 53), ("energy_j", "float", True, 0, 1e-6)],
    "adc": [("bits", "int", True, 0, 128), ("energy_j", "float", True, 0, 1e-6),
            ("latency_s", "float", True, 0, 1e-3), ("per_array", "int", True, 0, 1 << 16),
            ("flip_encoding", "bool", False, None, None)],
    "accumulate": [("energy_per_op_j", "float", True, 0, 1e-6)],
    "write": [("energy_per_cell_j", "float", True, 0, 1e-3), ("latency_per_row_s", "float", True, 0, 1),
              ("overlapped", "bool", True, None, None)],
    "digital": [("energy_per_op_j", "float", True, 0, 1e-6), ("ops_per_s", "float", True, 1, 1e18),
                ("ops_per_score", "float", True, 0, 1e3), ("ops_per_output", "float", True, 0, 1e3)],
    "interconnect": [("energy_per_byte_j", "float", True, 0, 1e-6), ("bytes_per_s", "float", True, 1, 1e18)],
    "static": [("power_w", "float", True, 0, 1e6)],
    "area": [("array_mm2", "float", True, 0, 1e4), ("peripheral_per_array_mm2", "float", True, 0, 1e4),
             ("digital_mm2", "float", True, 0, 1e6)],
    "noise": [("cell_sigma", "float", True, 0, 10)],
}
_TOP = {"name": "str", "description": "str", "provenance": "dict"}
_CHOICES = {"technology.cell": ("ReRAM", "SRAM", "PCM", "FeFET", "MRAM"),
            "technology.compute": ("analog", "digital"),
            "operands.signed_weights": ("differential", "offset", "twos_complement")}


@dataclasses.dataclass(frozen=True)
class Arch:
    """A validated description; sections are plain dicts keyed as in the file."""

    name: str
    description: str
    source: dict
    technology: dict
    array: dict
    operands: dict
    dac: dict
    adc: dict
    accumulate: dict
    write: dict
    digital: dict
    interconnect: dict
    static: dict
    area: dict
    noise: dict
    provenance: dict
    path: Optional[str] = None

    @property
    def analog(self) -> bool:
        return self.technology["compute"] == "analog"

    @property
    def slices(self) -> int:
        """Cells (columns) one weight occupies: weight bits over bits per cell, twice if differential."""
        per = math.ceil(self.operands["weight_bits"] / self.array["bits_per_cell"])
        return per * (2 if self.operands["signed_weights"] == "differential" else 1)

    @property
    def input_cycles(self) -> int:
        """Array read cycles one input vector takes (bit-serial over DAC-bit chunks)."""
        return math.ceil(self.operands["input_bits"] / self.dac["bits"])

    @property
    def weights_per_row(self) -> int:
        return self.array["cols"] // self.slices

    def mvm_time_s(self) -> float:
        """One input vector through one array: each cycle waits for the ADCs to convert every column."""
        cyc = self.array["cycle_s"]
        if self.analog and self.adc["per_array"] > 0:
            cyc = max(cyc, math.ceil(self.array["cols"] / self.adc["per_array"]) * self.adc["latency_s"])
        return self.input_cycles * cyc

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


def _check_value(path, value, kind, lo, hi):
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ArchError(f"{path}: expected a non-empty string, got {value!r}")
        choices = _CHOICES.get(path)
        if choices and value not in choices:
            raise ArchError(f"{path}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ArchError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArchError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
    if kind == "int":
        if not float(value).is_integer():
            raise ArchError(f"{path}: expected an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ArchError(f"{path}: expected a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ArchError(f"{path}: expected a value in [{lo:g}, {hi:g}], got {value!r}")
    return value


def validate(d, path: Optional[str] = None) -> Arch:
    """`d` (a parsed description) as an Arch, or ArchError naming the first bad field."""
    if not isinstance(d, dict):
        raise ArchError(f"architecture: expected a JSON object, got {type(d).__name__}")
    known = set(_TOP) | set(_SECTIONS) | {"$comment"}
    for key in d:
        if key not in known:
            raise ArchError(f"{key}: unknown field (expected {', '.join(sorted(known - {'$comment'}))})")
    out = {}
    for key, kind in _TOP.items():
        if key not in d:
            raise ArchError(f"{key}: missing")
        if kind == "dict":
            if not isinstance(d[key], dict) or not all(isinstance(v, str) for v in d[key].values()):
                raise ArchError(f"{key}: expected an object of field -> source text")
            out[key] = dict(d[key])
        else:
            out[key] = _check_value(key, d[key], kind, None, None)
    for sec, fields in _SECTIONS.items():
        if sec not in d:
            raise ArchError(f"{sec}: missing")
        if not isinstance(d[sec], dict):
            raise ArchError(f"{sec}: expected an object, got {type(d[sec]).__name__}")
        names = {f[0] for f in fields}
        for key in d[sec]:
            if key not in names and key != "$comment":
                raise ArchError(f"{sec}.{key}: unknown field (expected {', '.join(sorted(names))})")
        vals = {}
        for name, kind, required, lo, hi in fields:
            if name not in d[sec]:
                if required:
                    raise ArchError(f"{sec}.{name}: missing")
                continue
            vals[name] = _check_value(f"{sec}.{name}", d[sec][name], kind, lo, hi)
        out[sec] = vals
    _check_consistency(out)
    return Arch(**out, path=path)


def _check_consistency(a: dict) -> None:
    arr, ops, adc = a["array"], a["operands"], a["adc"]
    slices = math.ceil(ops["weight_bits"] / arr["bits_per_cell"]) * (2 if ops["signed_weights"] == "differential" else 1)
    if slices > arr["cols"]:
        raise ArchError(f"array.cols: one {ops['weight_bits']}-bit weight needs {slices} cells of "
                        f"{arr['bits_per_cell']} bits, more than the {arr['cols']} columns")
    if a["technology"]["compute"] == "analog" and (adc["per_array"] < 1 or adc["bits"] < 1):
        raise ArchError("adc.per_array: an analog array needs at least one ADC of at least 1 bit")
    for key in a["provenance"]:
        sec, _, name = key.partition(".")
        if sec not in _SECTIONS or name not in {f[0] for f in _SECTIONS[sec]}:
            raise ArchError(f"provenance.{key}: names no field of the description")


def designs() -> list:
    """Names of the shipped architecture files (usable as arch="name")."""
    return sorted(f[:-5] for f in os.listdir(DESIGNS_DIR) if f.endswith(".json"))


def load(arch) -> Arch:
    """An Arch from a shipped design name, a .json path, a dict or an Arch."""
    if isinstance(arch, Arch):
        return arch
    if isinstance(arch, dict):
        return validate(arch)
    if not isinstance(arch, (str, os.PathLike)):
        raise TypeError(f"arch: expected a design name ({', '.join(designs())}), a .json path, "
                        f"a dict or a sattn.imc.Arch, got {type(arch).__name__}")
    path = os.fspath(arch)
    if not path.endswith(".json") and os.sep not in path:
        if path not in designs():
            raise ArchError(f"arch: unknown design {path!r} (shipped: {', '.join(designs())})")
        path = os.path.join(DESIGNS_DIR, path + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise ArchError(f"arch: cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ArchError(f"arch: {path} is not JSON ({e})") from None
    try:
        return validate(d, path=path)
    except ArchError as e:
        raise ArchError(f"{os.path.basename(path)}: {e}") from None
