"""`sattn doctor`: what this installation can run, and for each backend that it cannot, why."""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys


def report() -> dict:
    import sattn
    registry = importlib.import_module("sattn.backends")  # `sattn.backends` is the listing function
    backends = {name: {"usable": ok, "why_not": None if ok else reason}
                for name, (ok, reason) in registry.status().items()}
    optional = {}
    for mod in ("numpy", "torch", "triton", "matplotlib"):
        try:
            optional[mod] = importlib.import_module(mod).__version__
        except ImportError:
            optional[mod] = None
    try:
        from sattn import _cc  # noqa: F401
        ext = "loaded"
    except ImportError as e:
        ext = f"not loadable: {e}"
    return {"sattn": sattn.__version__, "location": os.path.dirname(sattn.__file__),
            "python": platform.python_version(), "executable": sys.executable,
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "extension": ext, "packages": optional, "backends": backends}


def run(args) -> int:
    rep = report()
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0
    print(f"sattn {rep['sattn']} at {rep['location']}")
    print(f"python {rep['python']} ({rep['executable']}), {rep['machine']}")
    print("packages: " + ", ".join(f"{k} {v or '(not installed)'}" for k, v in rep["packages"].items()))
    print(f"sattn._cc (C++ core, CPU kernels): {rep['extension']}")
    print(f"{'backend':<10} {'usable':<7} why not")
    for name, b in rep["backends"].items():
        print(f"{name:<10} {'yes' if b['usable'] else 'no':<7} {b['why_not'] or ''}")
    return 0
