"""`sattn imc`: sparse attention on compute-in-memory arrays -- energy, latency, area, accuracy.

Plans random N(0, 1) inputs (--seed) of a profile's shape, or of --spec with the shape flags,
maps the plan onto each design (sattn.imc.designs(), or --design NAME|FILE.json, repeatable)
and prints, per design, the sparse and the dense estimate split by component, the mapping
(arrays per K/V block, slots, blocks written, rewrites, reuse) and with --accuracy the
numerical array model's error against the float64 reference. --keep 0.0625,0.125,... sweeps
BlockTopK's keep (one row per value: `sattn report` plots energy and latency vs density).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from sattn.cli import UsageError, profiles, shape_overrides

SPECS = ("dense", "sliding_window", "block_topk", "bigbird", "topk_per_query")
DEFAULT_SHAPE = {"B": 1, "Hq": 8, "Hkv": 2, "Lq": 4096, "Lk": 4096, "D": 64}


def add_parser(sub, positive_int):
    from sattn.cli import _add_profile_args
    p = sub.add_parser("imc", help="sparse attention on compute-in-memory arrays: energy, latency, area, accuracy",
                       description=__doc__.split("\n\n", 1)[1].strip())
    _add_profile_args(p, required=False)
    p.add_argument("--spec", choices=SPECS, help="a spec instead of --profile (shape: the flags above, default "
                   "B=1 Hq=8 Hkv=2 L=4096 D=64)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a field of --spec (repeatable), e.g. --option keep=0.125 --option causal=true")
    p.add_argument("--keep", metavar="LIST", help="block_topk: comma-separated keep values, one estimate each")
    p.add_argument("--design", action="append", default=[], metavar="NAME|FILE",
                   help="a shipped design or a .json description (repeatable; default: every shipped one)")
    p.add_argument("--list", action="store_true", help="list the shipped designs and their peak efficiency")
    p.add_argument("--no-replicate", dest="replicate", action="store_false",
                   help="write each K/V block once even when arrays are spare (default: hot blocks are copied)")
    p.add_argument("--tile", type=positive_int, default=64, help="block edge of specs without their own")
    p.add_argument("--accuracy", action="store_true",
                   help="also run the numerical array model against float64 (small shapes: O(Lq*Lk) per head)")
    p.add_argument("--noise", type=float, metavar="SIGMA", help="cell variation (fraction of a cell's range)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random q, k, v and of the noise")
    p.add_argument("--placement", type=int, default=0, metavar="N", help="also print the first N block placements")
    p.add_argument("--format", choices=["table", "jsonl"], default="table", help="stdout: tables or JSON lines")
    p.add_argument("--out", metavar="FILE.jsonl", help="append one JSON row per estimate (for sattn report)")
    return p


def _value(text):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def workloads(args) -> list:
    """[(label, spec, shape)] for the run."""
    from sattn import specs
    if args.profile and args.spec:
        raise UsageError("--profile and --spec: give one of them")
    if args.profile:
        prof = profiles.get(args.profile, args.profiles_dir)
        shape = prof.shape(args.quick, **shape_overrides(args))
        kind, opts = prof.data["spec"]["kind"], prof.spec_options(args.quick)
    elif args.spec:
        if args.quick:
            raise UsageError("--quick needs --profile")
        ov = shape_overrides(args)
        shape = dict(DEFAULT_SHAPE)
        for key, field in (("batch", "B"), ("heads", "Hq"), ("kv_heads", "Hkv"), ("head_dim", "D")):
            if ov[key] is not None:
                shape[field] = ov[key]
        if ov["seq_len"] is not None:
            shape["Lk"] = shape["Lq"] = ov["seq_len"]
        if ov["q_len"] is not None:
            shape["Lq"] = ov["q_len"]
        kind, opts = args.spec, {}
        for item in args.option:
            key, sep, val = item.partition("=")
            if not sep:
                raise UsageError(f"--option: expected KEY=VALUE, got {item!r}")
            opts[key] = _value(val)
    else:
        raise UsageError("give --profile NAME or --spec KIND (or --list)")
    keeps = [None]
    if args.keep:
        if kind != "block_topk":
            raise UsageError(f"--keep: sweeps block_topk's keep; the spec is {kind}")
        try:
            keeps = [float(x) for x in args.keep.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--keep: expected comma-separated numbers, got {args.keep!r}") from None
    out = []
    for keep in keeps:
        o = dict(opts) if keep is None else {**opts, "keep": keep}
        try:
            spec = specs.from_options(kind, o)
            specs.check_spec(spec)
        except (TypeError, ValueError) as e:
            raise UsageError(f"spec: {e}") from None
        out.append((str(spec), spec, shape))
    return out


def _list_designs(args) -> int:
    import sattn.imc as imc
    rows = []
    for name in imc.designs():
        a = imc.load(name)
        pk = imc.peak(a)
        rows.append({"name": name, "technology": f"{a.technology['cell']} {a.technology['compute']} "
                     f"{a.technology['node_nm']:g} nm", "reported_tops_per_w": a.source.get("tops_per_w"),
                     "model_tops_per_w": pk["tops_per_w"], "source": f"{a.source['title']} ({a.source['venue']}, "
                     f"{a.source['year']})", "path": a.path})
    if args.format == "jsonl":
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'design':<20} {'technology':<24} {'TOPS/W paper':>12} {'model':>8}  source")
    for r in rows:
        rep = r["reported_tops_per_w"]
        print(f"{r['name']:<20} {r['technology']:<24} {rep if rep is not None else '-':>12} "
              f"{r['model_tops_per_w']:>8.3g}  {r['source']}")
    return 0


def run(args) -> int:
    import sattn.imc as imc
    if args.list:
        return _list_designs(args)
    designs = args.design or imc.designs()
    archs = [imc.load(d) for d in designs]
    work = workloads(args)
    n, i = len(work) * len(archs), 0
    rows = []
    for label, spec, sh in work:
        rng = np.random.default_rng(args.seed)
        q = rng.standard_normal((sh["B"], sh["Hq"], sh["Lq"], sh["D"]), dtype=np.float32)
        k = rng.standard_normal((sh["B"], sh["Hkv"], sh["Lk"], sh["D"]), dtype=np.float32)
        v = rng.standard_normal((sh["B"], sh["Hkv"], sh["Lk"], sh["D"]), dtype=np.float32) if args.accuracy else None
        plan = None
        for a in archs:
            i += 1
            if n > 1 or sh["Lk"] >= 32768:
                print(f"sattn imc: [{i}/{n}] {a.name}: {label}, L={sh['Lk']}", file=sys.stderr, flush=True)
            if plan is None:
                import sattn
                plan = sattn.plan(spec, q, k, tile=args.tile)
            rep = imc.estimate(plan, q, k, a, v=v, accuracy=args.accuracy, noise_sigma=args.noise, seed=args.seed,
                                replicate=args.replicate)
            row = rep.row()
            rows.append(row)
            if args.format == "jsonl":
                print(json.dumps(row), flush=True)
            else:
                print(rep.table())
                for pl in rep.mapping_detail.placement(args.placement) if args.placement > 0 else []:
                    print(f"    b={pl['b']} g={pl['g']} key block {pl['key_block']} -> slot {pl['slot']} "
                          f"(arrays {pl['first_array']}..), wave {pl['wave']}, reuse {pl['reuse']}")
                print()
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        print(f"sattn imc: appended {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0
