"""Named workload profiles: JSON files checked against profile.schema.json, then against the spec.

Shipped profiles live in sattn/profiles/; users add their own *.json files in
$XDG_CONFIG_HOME/sattn/profiles (default ~/.config/sattn/profiles) or in any folder given with
--profiles-dir (repeatable; later folders override earlier ones, user folders override shipped
profiles of the same name).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED_DIR = os.path.join(os.path.dirname(HERE), "profiles")
SCHEMA_PATH = os.path.join(HERE, "profile.schema.json")


class ProfileError(ValueError):
    """A profile file that is not valid JSON, breaks the schema, or names an unknown profile."""


def user_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sattn", "profiles")


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float), "integer": int}


def schema_errors(value, schema: dict, where: str = "$") -> list:
    """Errors of `value` against `schema`, the JSON Schema subset profile.schema.json uses (type,
    enum, required, properties, additionalProperties, pattern, minimum, maximum, items, minItems)."""
    errs = []
    t = schema.get("type")
    if t is not None:
        py = _TYPES[t]
        ok = isinstance(value, py) and not (t in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [f"{where}: expected {t}, got {type(value).__name__} {value!r}"[:200]]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{where}: expected one of {schema['enum']}, got {value!r}")
    if "pattern" in schema and isinstance(value, str) and not re.match(schema["pattern"], value):
        errs.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        errs.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and isinstance(value, (int, float)) and value > schema["maximum"]:
        errs.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{where}: missing required '{key}'")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if key in props:
                errs += schema_errors(sub, props[key], f"{where}.{key}")
            elif extra is False:
                errs.append(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(props))})")
            elif isinstance(extra, dict):
                errs += schema_errors(sub, extra, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errs.append(f"{where}: expected at least {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errs += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errs


def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def _spec_fields(kind: str) -> set:
    from sattn import specs
    return {f.name for f in dataclasses.fields(specs._spec_class(kind))} | (
        {"topk"} if kind == "topk_per_query" else set())


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    path: str
    source: str  # "shipped" or the user folder it came from
    data: dict

    def spec_options(self, quick: bool = False) -> dict:
        opts = {k: v for k, v in self.data["spec"].items() if k != "kind"}
        if quick:
            opts.update(self.data.get("quick", {}).get("spec", {}))
        return opts

    def spec(self, quick: bool = False):
        from sattn import specs
        return specs.from_options(self.data["spec"]["kind"], self.spec_options(quick))

    def shape(self, quick: bool = False, **overrides) -> dict:
        """{'B', 'Hq', 'Hkv', 'Lq', 'Lk', 'D'}: the profile's, its quick variant's, then overrides
        (batch, heads, kv_heads, seq_len, q_len, head_dim; None leaves a field alone)."""
        m, s = self.data["model"], self.data["shape"]
        f = {"batch": s.get("batch", 1), "heads": m["heads"], "kv_heads": m["kv_heads"],
             "seq_len": s["seq_len"], "q_len": s.get("q_len"), "head_dim": m["head_dim"]}
        if quick:
            f.update({k: v for k, v in self.data.get("quick", {}).items() if k != "spec"})
            if "q_len" not in self.data.get("quick", {}) and s.get("q_len") is None:
                f["q_len"] = None
        f.update({k: v for k, v in overrides.items() if v is not None})
        Lk = int(f["seq_len"])
        return {"B": int(f["batch"]), "Hq": int(f["heads"]), "Hkv": int(f["kv_heads"]),
                "Lq": int(f["q_len"]) if f["q_len"] else Lk, "Lk": Lk, "D": int(f["head_dim"])}

    def bench_args(self, quick: bool = False, **overrides) -> list:
        """tools/bench.py flags for this profile (the bench's own names)."""
        sh = self.shape(quick, **overrides)
        args = [f"--spec={self.data['spec']['kind']}", f"--batch={sh['B']}", f"--heads={sh['Hq']}",
                f"--kv_heads={sh['Hkv']}", f"--seq_len={sh['Lk']}", f"--q_len={sh['Lq']}",
                f"--head_dim={sh['D']}", f"--dtype={self.data['dtype']}"]
        for key, val in sorted(self.spec_options(quick).items()):
            if isinstance(val, bool):
                args.append(f"--{key}" if val else f"--no{key}")
            else:
                args.append(f"--{key}={val}")
        return args


def check(data, path: str, schema: dict | None = None) -> None:
    """Raises ProfileError naming `path` and every problem found."""
    errs = schema_errors(data, schema or load_schema())
    if not errs:
        kind = data["spec"]["kind"]
        fields = _spec_fields(kind)
        for where, spec in (("spec", data["spec"]), ("quick.spec", data.get("quick", {}).get("spec", {}))):
            unknown = sorted(set(spec) - fields - {"kind"})
            if unknown:
                errs.append(f"$.{where}: {kind} has no field(s) {', '.join(unknown)} "
                            f"(fields: {', '.join(sorted(fields))})")
        for where, m in (("model", data["model"]), ("quick", {**data["model"], **data.get("quick", {})})):
            if m["heads"] % m["kv_heads"]:
                errs.append(f"$.{where}: heads {m['heads']} is not a multiple of kv_heads {m['kv_heads']}")
    if not errs:
        prof = Profile(data["name"], path, "", data)
        for quick in (False, True):
            try:
                prof.spec(quick)
            except (TypeError, ValueError) as e:
                errs.append(f"$.{'quick.' if quick else ''}spec: {e}")
    if errs:
        raise ProfileError(f"{path}: " + "; ".join(errs))


def _read(path: str, source: str, schema: dict) -> Profile:
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}: not valid JSON ({e})") from e
    check(data, path, schema)
    stem = os.path.splitext(os.path.basename(path))[0]
    if data["name"] != stem:
        raise ProfileError(f"{path}: name {data['name']!r} differs from the file name {stem!r}")
    return Profile(data["name"], path, source, data)


def search_dirs(extra_dirs=()) -> list:
    return [(SHIPPED_DIR, "shipped"), (user_dir(), "user")] + [(d, d) for d in extra_dirs]


def load_all(extra_dirs=()) -> dict:
    """{name: Profile} over the shipped, user and --profiles-dir folders (later ones override)."""
    schema = load_schema()
    out = {}
    for d, source in search_dirs(extra_dirs):
        if source not in ("shipped", "user") and not os.path.isdir(d):
            raise ProfileError(f"--profiles-dir {d}: not a folder")
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".json"):
                p = _read(os.path.join(d, fn), source, schema)
                out[p.name] = p
    return out


def get(name: str, extra_dirs=()) -> Profile:
    if name.endswith(".json") and os.path.isfile(name):
        return _read(name, "file", load_schema())
    profs = load_all(extra_dirs)
    if name not in profs:
        raise ProfileError(f"no profile {name!r}; known: {', '.join(sorted(profs)) or 'none'} "
                           "(sattn profiles list)")
    return profs[name]
