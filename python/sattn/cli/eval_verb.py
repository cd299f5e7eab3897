"""`sattn eval`: what each spec costs in model quality -- small language models trained from scratch.

For each task (--tasks) and each spec of the matrix (Dense once, every other family at every
--budgets fraction), trains the same tiny decoder-only transformer from the same seed on the same
batches for the same number of steps, then reports the validation metric (text: bits per byte on
held-out CPython stdlib source; mqar, passkey: recall accuracy) against the attention's cost (FLOPs
from the plans' visible pairs, wall time, peak memory). One progress line per run on stderr; a
table (or JSON lines) on stdout; --out appends the rows for `sattn report` (a Pareto plot of the
metric against FLOPs); --plot writes that page directly. docs/eval.md has the numbers.
"""
from __future__ import annotations

import dataclasses
import json
import sys

from sattn.cli import Failure, UsageError


def add_parser(sub, positive_int):
    from sattn import eval_lm as E
    p = sub.add_parser("eval", help="train small LMs with each spec: validation loss / recall vs FLOPs, time, memory",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("--preset", choices=sorted(E.PRESETS), default="ci",
                   help="the matrix: micro (tests, seconds), ci (CPU, a minute or two; default), cpu (CPU, "
                        "minutes), full (the GPU machine, with --device cuda)")
    p.add_argument("--tasks", metavar="LIST", help=f"comma-separated, of {','.join(E.TASKS)} (default: all)")
    p.add_argument("--specs", metavar="LIST",
                   help=f"comma-separated families, of {','.join(E.FAMILIES)} (default: all)")
    p.add_argument("--budgets", metavar="LIST",
                   help="comma-separated fractions of L in (0, 1] each sparse spec is sized to keep per query "
                        "(default: the preset's)")
    p.add_argument("--steps", type=positive_int, help="training steps per run (default: the preset's)")
    p.add_argument("--seq-len", type=positive_int, metavar="L", help="sequence length (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches (default 0)")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "reference", "triton"],
                   help="sattn.sparse_attention's backend (default auto: cpu on host, triton on CUDA)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the models train (default cpu)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of torch and of the cpu backend (default: torch's; the backend: all cores)")
    p.add_argument("--format", choices=["table", "jsonl"], default="table", help="stdout: a table or JSON lines")
    p.add_argument("--out", metavar="FILE.jsonl", help="append one JSON row per run (input of sattn report)")
    p.add_argument("--plot", metavar="FILE.html", help="also write the Pareto plots (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _list(text, allowed, flag):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UsageError(f"{flag}: expected a comma-separated list of {', '.join(allowed)}, got {text!r}")
    return tuple(dict.fromkeys(items))


def _budgets(text):
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--budgets: expected comma-separated numbers in (0, 1], got {text!r}") from None
    if not vals or any(not 0.0 < v <= 1.0 for v in vals):
        raise UsageError(f"--budgets: expected comma-separated numbers in (0, 1], got {text!r}")
    return vals


def configure(args):
    """(preset, tasks, families, budgets) from the flags; UsageError on a bad one."""
    from sattn import eval_lm as E
    preset = E.PRESETS[args.preset]
    if args.steps is not None:
        preset = dataclasses.replace(preset, steps=args.steps)
    if args.seq_len is not None:
        if args.seq_len < 2 * preset.block or args.seq_len % preset.block:
            raise UsageError(f"--seq-len: expected a multiple of the preset's block {preset.block}, at least "
                             f"{2 * preset.block}, got {args.seq_len}")
        preset = dataclasses.replace(preset, seq_len=args.seq_len)
    tasks = _list(args.tasks, E.TASKS, "--tasks") if args.tasks else preset.tasks
    families = _list(args.specs, E.FAMILIES, "--specs") if args.specs else E.FAMILIES
    budgets = _budgets(args.budgets) if args.budgets else None
    if args.seed < 0:
        raise UsageError(f"--seed: expected an integer >= 0, got {args.seed}")
    if (args.device, args.backend) in (("cuda", "cpu"), ("cpu", "triton")):
        raise UsageError(f"--backend {args.backend}: runs on {'host' if args.backend == 'cpu' else 'CUDA'} tensors, "
                         f"the models train on --device {args.device}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, got {args.threads}")
    if "mqar" in tasks and 2 * (preset.mqar_pairs + preset.mqar_queries) > preset.seq_len:
        raise UsageError(f"--seq-len: mqar's {preset.mqar_pairs} pairs and {preset.mqar_queries} queries need "
                         f"L >= {2 * (preset.mqar_pairs + preset.mqar_queries)}")
    return preset, tasks, families, budgets


def table(rows) -> str:
    head = ("task", "spec", "budget", "pairs/dense", "metric", "value", "attn MFLOP", "train s", "step ms",
            "peak MiB")
    lines = [head]
    for r in rows:
        mem = "-" if r["peak_mem_bytes"] is None else f"{r['peak_mem_bytes'] / 2 ** 20:.1f}"
        lines.append((r["task"], r["system"], "-" if r["family"] == "dense" else f"{r['budget']:g}",
                      f"{r['attn_flops_vs_dense']:.3f}", r["metric"], f"{r['value']:.4f}",
                      f"{r['attn_flops'] / 1e6:.3f}", f"{r['train_s']:.1f}", f"{r['step_ms']:.1f}", mem))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for j, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) if i < 2 or i == 4 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths))).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run(args) -> int:
    from sattn import eval_lm as E
    preset, tasks, families, budgets = configure(args)
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        raise Failure("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    progress = None if args.quiet else (lambda msg: print(f"sattn eval: {msg}", file=sys.stderr, flush=True))
    rows = []
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    try:
        for row in E.evaluate(preset, tasks=tasks, families=families, budgets=budgets, seed=args.seed,
                              backend=args.backend, device=args.device, progress=progress,
                              threads=args.threads or 0):
            rows.append(row)
            line = json.dumps(row, sort_keys=True)
            if out is not None:
                out.write(line + "\n")
                out.flush()
            if args.format == "jsonl":
                print(line, flush=True)
    finally:
        if out is not None:
            out.close()
    if args.format == "table":
        print(table(rows))
    if args.plot:
        from sattn.cli import report
        page, n, _ = report.render(rows, f"sattn eval --preset {preset.name}")
        with open(args.plot, "w", encoding="utf-8") as f:
            f.write(page)
        if progress:
            progress(f"wrote {args.plot}: {n} plots from {len(rows)} rows")
    return 0
