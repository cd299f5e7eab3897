"""Writes docs/api.md, sattn's API reference, from the docstrings of its public names.

  bazel run //tools:api_docs            # rewrites docs/api.md in the checkout
  python tools/api_docs.py --check FILE # exit 1 if FILE differs from what would be written

The public API is `sattn.__all__`; for a class, its public methods and properties defined by sattn
are listed under it; for a module (sattn.reference), its public functions. The page is a pure
function of the source (no addresses, no dates), so //tools:api_docs_test can compare it.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys


# Subpackages a user imports by name (not re-exported by `import sattn`: some need torch).
SUBMODULES = ("distributed", "imc", "integrations.transformers", "quant")


def _sig(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _doc(obj) -> str:
    doc = inspect.getdoc(obj)
    return doc.strip() if doc else "(no docstring)"


def _members(cls):
    """Public callables and properties that sattn itself defines on `cls`, in source order."""
    out = []
    for name, val in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(val, property):
            out.append((name, val, "property"))
        elif isinstance(val, (staticmethod, classmethod)):
            out.append((name, val.__func__, "method"))
        elif inspect.isfunction(val):
            out.append((name, val, "method"))
    return out


def render() -> str:
    import sattn
    lines = [
        "# API reference",
        "",
        "Generated from sattn's docstrings by `tools/api_docs.py` (`bazel run //tools:api_docs`);",
        "`//tools:api_docs_test` fails when this page is stale. The contract these functions keep is",
        "[contract.md](contract.md); the specs' fields are in [specs.md](specs.md).",
        "",
    ]
    toc = []
    body = []
    for name in sattn.__all__:
        obj = getattr(sattn, name)
        if name == "__version__":
            continue
        anchor = name.lower()
        if inspect.isclass(obj):
            kind = "exception" if issubclass(obj, BaseException) else "class"
            toc.append(f"- [`{name}`](#{anchor}) ({kind})")
            body += [f"## {name}", "", f"```python\nclass sattn.{name}{_sig(obj) if kind == 'class' else ''}\n```",
                     "", _doc(obj), ""]
            for mname, member, mkind in _members(obj):
                sig = "" if mkind == "property" else _sig(member)
                body += [f"### {name}.{mname}{' (property)' if mkind == 'property' else ''}", "",
                         f"```python\n{mname}{sig}\n```", "", _doc(member), ""]
        elif inspect.ismodule(obj):
            toc.append(f"- [`{name}`](#{anchor}) (module)")
            body += [f"## {name}", "", _doc(obj), ""]
            for fname, fn in inspect.getmembers(obj, inspect.isfunction):
                if fname.startswith("_") or fn.__module__ != obj.__name__:
                    continue
                body += [f"### {name}.{fname}", "", f"```python\nsattn.{name}.{fname}{_sig(fn)}\n```", "",
                         _doc(fn), ""]
        elif callable(obj):
            toc.append(f"- [`{name}`](#{anchor})")
            body += [f"## {name}", "", f"```python\nsattn.{name}{_sig(obj)}\n```", "", _doc(obj), ""]
        else:
            toc.append(f"- [`{name}`](#{anchor})")
            body += [f"## {name}", "", f"`{type(obj).__name__}` constant.", ""]
    for name in SUBMODULES:
        mod = importlib.import_module(f"sattn.{name}")
        anchor = "sattn-" + name.replace(".", "-")
        toc.append(f"- [`sattn.{name}`](#{anchor}) (module)")
        body += [f"## sattn.{name}", "", _doc(mod), ""]
        for mname in getattr(mod, "__all__", None) or [n for n, _ in inspect.getmembers(mod)]:
            obj = getattr(mod, mname)
            if mname.startswith("_") or getattr(obj, "__module__", None) is None:
                continue
            if not getattr(obj, "__module__", "").startswith(f"sattn.{name}"):
                continue
            if inspect.isclass(obj):
                kind = "exception" if issubclass(obj, BaseException) else "class"
                body += [f"### sattn.{name}.{mname} ({kind})", "", _doc(obj), ""]
            elif inspect.isfunction(obj):
                body += [f"### sattn.{name}.{mname}", "", f"```python\nsattn.{name}.{mname}{_sig(obj)}\n```", "",
                         _doc(obj), ""]
    text = "\n".join(lines + toc + [""] + body).rstrip() + "\n"
    # Signatures of defaults that are objects print their repr; keep the page free of addresses.
    import re
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="file to write (default: docs/api.md of the checkout under `bazel run`)")
    p.add_argument("--check", metavar="FILE", help="exit 1 if FILE is not what would be written")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        with open(a.check) as f:
            if f.read() != text:
                print(f"{a.check} is stale: run `bazel run //tools:api_docs`", file=sys.stderr)
                return 1
        return 0
    out = a.out or os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."), "docs", "api.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
