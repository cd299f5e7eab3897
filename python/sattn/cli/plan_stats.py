"""`sattn plan --profile NAME [--stats]`: what the shared planner keeps for a profile.

Plans random inputs (N(0, 1), --seed) of the profile's shape: BlockTopK and TopKPerQuery keep
blocks by score, so their plan is the one of those inputs; the other specs depend on the shape only.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from sattn.cli import profiles, shape_overrides

ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def plan_stats(spec, shape: dict, dtype: str, *, seed: int = 0, threads: int = 0, layers: int = 1) -> dict:
    import sattn
    B, Hq, Hkv, Lq, Lk, D = (shape[k] for k in ("B", "Hq", "Hkv", "Lq", "Lk", "D"))
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    p = sattn.plan(spec, q, k, threads=threads)
    del q, k
    per_row = np.diff(p.row_ptr.astype(np.int64))
    # A plan shared across batch/heads (plan_b, plan_h = 1) stands for B*Hq rows of each query block.
    share = (B // p.plan_b) * (Hq // p.plan_h)
    nnz_all = int(per_row.sum()) * share
    elt = ELEMENT_BYTES[dtype]
    plan_bytes = sum(int(a.nbytes) for a in (p.row_ptr, p.col_idx, p.mask_idx, p.bitmaps))
    kv_gathered = nnz_all * p.block * D * 2 * elt  # K and V tiles each kept block reads
    dense_blocks = B * Hq * p.n_q_blocks * p.n_k_blocks
    top = int(per_row.max()) + 1  # bins over [0, max]: integer-wide, at most 16 of them
    edges = np.unique(np.linspace(0, top, num=min(top, 16) + 1).round().astype(int))
    counts, edges = np.histogram(per_row, bins=edges)
    return {
        "spec": str(spec), "shape": shape, "dtype": dtype, "block": p.block,
        "density": p.density(), "visible_pairs": int(p.visible_pairs()),
        "q_blocks": p.n_q_blocks, "k_blocks": p.n_k_blocks, "plan_rows": p.rows,
        "shared_across": {"batch": p.plan_b == 1 and B > 1, "heads": p.plan_h == 1 and Hq > 1},
        "blocks_kept": nnz_all, "blocks_dense": dense_blocks, "block_fraction": nnz_all / dense_blocks,
        "masked_blocks": int((p.mask_idx >= 0).sum()) * share,
        "blocks_per_row": {"min": int(per_row.min()), "mean": float(per_row.mean()), "max": int(per_row.max())},
        "bytes": {"plan": plan_bytes, "kv_gathered_per_layer": kv_gathered,
                  "kv_dense_per_layer": dense_blocks * p.block * D * 2 * elt,
                  "kv_gathered_model": kv_gathered * layers, "layers": layers},
        "histogram": {"edges": [int(e) for e in edges], "rows": [int(c) for c in counts]},
    }


def _mb(n):
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 1024:,.1f} KiB"


def run(args) -> int:
    prof = profiles.get(args.profile, args.profiles_dir)
    shape = prof.shape(args.quick, **shape_overrides(args))
    elements = shape["B"] * max(shape["Hq"] * shape["Lq"], shape["Hkv"] * shape["Lk"]) * shape["D"]
    if elements > 2**28:
        print(f"sattn plan: note: random inputs of {elements * 4 / 2**30:.1f} GiB each; --quick or "
              "--seq-len/--heads make it smaller", file=sys.stderr)
    st = plan_stats(prof.spec(args.quick), shape, prof.data["dtype"], seed=args.seed, threads=args.threads,
                    layers=prof.data["model"].get("layers", 1))
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    sh = st["shape"]
    print(f"{prof.name}: {st['spec']}")
    print(f"  shape B={sh['B']} Hq={sh['Hq']} Hkv={sh['Hkv']} Lq={sh['Lq']} Lk={sh['Lk']} D={sh['D']} {st['dtype']}")
    print(f"  density {st['density']:.4f} ({st['visible_pairs']:,} visible pairs)")
    print(f"  blocks  {st['blocks_kept']:,} of {st['blocks_dense']:,} kept ({st['block_fraction']:.4f}), "
          f"block {st['block']}, {st['q_blocks']} x {st['k_blocks']} per head, {st['masked_blocks']:,} partial")
    bpr = st["blocks_per_row"]
    print(f"  per row {bpr['min']} / {bpr['mean']:.1f} / {bpr['max']} key blocks (min / mean / max)")
    if args.stats:
        b = st["bytes"]
        print(f"  bytes   plan {_mb(b['plan'])}; K+V gathered {_mb(b['kv_gathered_per_layer'])} per layer "
              f"(dense {_mb(b['kv_dense_per_layer'])}), {_mb(b['kv_gathered_model'])} over {b['layers']} layers")
        h = st["histogram"]
        top = max(h["rows"]) or 1
        print("  key blocks per row   rows")
        for lo, hi, n in zip(h["edges"][:-1], h["edges"][1:], h["rows"]):
            bar = "#" * int(round(40 * n / top))
            print(f"  [{lo:>5}, {hi:>5}{']' if hi == h['edges'][-1] else ')'} {n:>9,} {bar}")
    return 0
