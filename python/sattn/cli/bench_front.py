"""`sattn bench`: the front of tools/bench.py (the rows of docs/bench.md), run in this process.

A profile (or --spec) becomes the bench's own flags; arguments after `--` go to the bench as they
are. The bench's table goes to the terminal, its rows to --out as JSON lines (appended, one row
per line), so sweeps and repeated runs collect into one file for `sattn report`.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time

from sattn.cli import Failure, UsageError, profiles, shape_overrides


def load_bench():
    """tools/bench.py: shipped in the wheel as sattn._bench, on the path as `bench` under Bazel."""
    missing = []
    for mod in ("absl", "torch"):
        try:
            __import__(mod)
        except ImportError:
            missing.append({"absl": "absl-py"}.get(mod, mod))
    if missing:
        raise Failure(f"sattn bench needs {' and '.join(missing)} (pip install 'sattn[bench]')")
    try:
        from sattn import _bench as bench
    except ImportError:
        import bench  # tools/bench.py through //tools:bench_lib
    return bench


def bench_argv(args, extra: list, FLAGS) -> list:
    """The bench flags for one run (profile's shape, spec, dtype; then the user's)."""
    out = [f"--backend={args.backend}"]
    if args.profile:
        if args.spec:
            raise UsageError("--profile and --spec: give one of them")
        prof = profiles.get(args.profile, args.profiles_dir)
        out += prof.bench_args(args.quick, **shape_overrides(args))
        opts = prof.data.get("backend_options", {}).get(args.backend, {})
        for key, val in sorted(opts.items()):
            # The bench's own flags (tile, threads, vlen) as flags; anything else as a backend option.
            out.append(f"--{key}={val}" if key in FLAGS else f"--option={key}={val}")
    elif args.spec:
        if args.quick:
            raise UsageError("--quick needs --profile")
        out.append(f"--spec={args.spec}")
        for key, val in shape_overrides(args).items():
            if val is not None:
                out.append(f"--{key}={val}")
    else:
        raise UsageError("give --profile NAME or --spec KIND")
    if args.compare:
        out.append("--compare")
    return out + extra


def _mode_args(FLAGS, mode: str) -> list:
    if mode == "decode":
        return ["--q_len=1"]
    if "mode" in FLAGS:
        return [f"--mode={mode}"]
    if mode != "fwd":
        raise UsageError(f"--mode {mode}: this bench has no --mode flag (forward only)")
    return []


def _tuned_args(args, argv: list, FLAGS) -> list:
    """--tile/--threads from the autotune cache for the workload the bench flags describe."""
    from sattn import specs, tuning
    if args.backend != "cpu":
        raise UsageError(f"--tuned: the bench passes --tile to every backend, which turns the cache off; "
                         f"--tuned fills it in for the cpu backend only, not {args.backend!r}")
    spec = specs.from_options(FLAGS.spec, FLAGS.flag_values_dict())
    Lk = FLAGS.seq_len
    shape = {"B": FLAGS.batch, "Hq": FLAGS.heads, "Hkv": FLAGS.kv_heads or FLAGS.heads,
             "Lq": FLAGS.q_len or Lk, "Lk": Lk, "D": FLAGS.head_dim}
    try:
        cfg = tuning.lookup(tuning.key("cpu", tuning.cpu_device(), spec, shape, FLAGS.dtype), "cpu", args.cache_dir)
    except tuning.CacheError as e:
        raise Failure(str(e)) from None
    if cfg is None:
        raise Failure(f"--tuned: no cached configuration for this workload on this machine; run "
                      f"sattn autotune --backend cpu with the same profile and shape first")
    print(f"[sattn bench] tuned configuration: tile={cfg['tile']} threads={cfg['threads']}", file=sys.stderr)
    return [f"--tile={cfg['tile']}", f"--threads={cfg['threads']}"]


def _parse(FLAGS, argv: list):
    from absl import flags
    FLAGS.unparse_flags()
    try:
        FLAGS(["sattn-bench"] + argv)
    except flags.Error as e:
        raise UsageError(f"bench flag: {e}") from None


def run_once(bench, args, argv: list) -> list:
    FLAGS = bench.FLAGS
    _parse(FLAGS, argv)
    if args.tuned:
        argv = argv + _tuned_args(args, argv, FLAGS)
        _parse(FLAGS, argv)
    with tempfile.TemporaryDirectory(prefix="sattn-bench-") as tmp:
        out_path = os.path.join(tmp, "rows.json")
        _parse(FLAGS, argv + [f"--out={out_path}", "--format=table"])
        saved = sys.argv
        sys.argv = ["bench"] + argv  # the rows' "command" field: the equivalent bench command
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink if args.format == "jsonl" else sys.stdout):
                rc = bench.main([])
        finally:
            sys.argv = saved
        if rc:
            raise Failure(f"the bench exited {rc} (its message is above)")
        with open(out_path) as f:
            return json.load(f)


def run(args) -> int:
    extra = list(args.bench_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    elif extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (bench flags go after --)")
    bench = load_bench()
    base = bench_argv(args, extra, bench.FLAGS)
    base += _mode_args(bench.FLAGS, args.mode)
    runs = [base]
    if args.sweep:
        if not args.profile:
            raise UsageError("--sweep needs --profile (the profile's sweep lists the L values)")
        prof = profiles.get(args.profile, args.profiles_dir)
        sweep = prof.data.get("sweep", {}).get("seq_len")
        if not sweep:
            raise UsageError(f"--sweep: profile {prof.name} has no sweep")
        runs = [base + [f"--seq_len={L}"] + ([] if prof.data["shape"].get("q_len") or args.mode == "decode"
                                               else [f"--q_len={L}"]) for L in sweep]
    t0 = time.perf_counter()
    all_rows = []
    for i, argv in enumerate(runs):
        if len(runs) > 1:
            done = int(24 * i / len(runs))
            label = next(a for a in reversed(argv) if a.startswith("--seq_len="))
            print(f"[sattn bench] [{'#' * done:<24}] run {i + 1}/{len(runs)} ({label}), "
                  f"{time.perf_counter() - t0:.0f} s elapsed", file=sys.stderr, flush=True)
        rows = run_once(bench, args, argv)
        all_rows += rows
        if args.out:
            with open(args.out, "a") as f:
                for r in rows:
                    f.write(json.dumps(r, default=float) + "\n")
        if args.format == "jsonl":
            for r in rows:
                print(json.dumps(r, default=float), flush=True)
    if len(runs) > 1:
        print(f"[sattn bench] [{'#' * 24}] {len(runs)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.out:
        print(f"[sattn bench] appended {len(all_rows)} rows to {args.out}", file=sys.stderr)
    return 0
