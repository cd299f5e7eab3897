"""`sattn profiles list | show NAME | check FILE...`."""
from __future__ import annotations

import json

from sattn.cli import profiles


def _summary(p) -> dict:
    sh = p.shape()
    return {"name": p.name, "source": p.source, "model": p.data["model"]["name"], "spec": str(p.spec()),
            "dtype": p.data["dtype"], "shape": sh, "path": p.path, "description": p.data["description"]}


def run(args) -> int:
    if args.action == "check":
        schema = profiles.load_schema()
        for path in args.files:
            try:
                with open(path) as f:
                    data = json.load(f)
            except OSError as e:
                raise profiles.ProfileError(f"{path}: {e.strerror}") from e
            except json.JSONDecodeError as e:
                raise profiles.ProfileError(f"{path}: not valid JSON ({e})") from e
            profiles.check(data, path, schema)
            print(f"{path}: ok ({data['name']})")
        return 0
    if args.action == "show":
        p = profiles.get(args.name, args.profiles_dir)
        if args.json:
            print(json.dumps(p.data, indent=1))
            return 0
        s = _summary(p)
        print(f"{p.name} ({p.source}: {p.path})\n  {s['description']}")
        sh = s["shape"]
        print(f"  model: {s['model']}, {p.data['model'].get('layers', '?')} layers, {s['dtype']}")
        print(f"  shape: B={sh['B']} Hq={sh['Hq']} Hkv={sh['Hkv']} Lq={sh['Lq']} Lk={sh['Lk']} D={sh['D']}")
        print(f"  spec:  {s['spec']}")
        if "quick" in p.data:
            q = p.shape(quick=True)
            print(f"  quick: B={q['B']} Hq={q['Hq']} Hkv={q['Hkv']} Lq={q['Lq']} Lk={q['Lk']} D={q['D']}, "
                  f"{p.spec(quick=True)}")
        if "sweep" in p.data:
            print(f"  sweep: seq_len {p.data['sweep']['seq_len']}")
        for be, opts in p.data.get("backend_options", {}).items():
            print(f"  {be} options: {opts}")
        return 0
    profs = profiles.load_all(args.profiles_dir)
    rows = [_summary(p) for p in profs.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':<28} {'source':<8} {'model':<22} {'Lq':>7} {'Lk':>7}  spec")
    for r in rows:
        print(f"{r['name']:<28} {r['source'][:8]:<8} {r['model']:<22} {r['shape']['Lq']:>7} "
              f"{r['shape']['Lk']:>7}  {r['spec']}")
    return 0
