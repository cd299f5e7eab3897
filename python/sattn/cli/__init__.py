"""`sattn`: the command line (also `python -m sattn`). docs/cli.md has every verb with output.

    sattn doctor                                 which backends are usable here, and why not
    sattn profiles list | show NAME | check FILE named workloads (model shape, spec, dtype)
    sattn plan --profile NAME --stats            density, blocks, bytes, per-row histogram
    sattn bench --profile NAME --backend cpu     the benchmark (tools/bench.py), JSON lines out
    sattn autotune --backend X --profile NAME    search a backend's tunables, cache the best
    sattn report RESULTS.jsonl -o report.html    plots in one self-contained HTML page
    sattn imc --spec block_topk --keep 0.125     sparse attention on compute-in-memory arrays
    sattn bench-cp --world 2 | --simulate        context parallel over N processes; scaling model
    sattn calibrate --profile NAME -o scales.json  static quantization scales; each method's error
    sattn eval --preset ci                       small LMs trained per spec: loss / recall vs FLOPs

Usage errors exit 2 with one line on stderr; failures exit 1 with one line (--debug: traceback).
"""
from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """A bad flag value found after parsing (exit 2, like argparse's own errors)."""


class Failure(Exception):
    """The command could not do its work (exit 1), e.g. a backend that is not usable here."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, no usage dump: `sattn <verb> --help` has the rest.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_profile_args(p, required=True):
    g = p.add_argument_group("workload")
    g.add_argument("--profile", required=required, metavar="NAME",
                   help="a profile name (sattn profiles list) or a profile .json file")
    g.add_argument("--profiles-dir", action="append", default=[], metavar="DIR",
                   help="also read profiles from DIR (repeatable; see sattn profiles --help)")
    g.add_argument("--quick", action="store_true",
                   help="the profile's small variant (its 'quick' shape): seconds, not minutes")
    for flag, what in (("--batch", "B"), ("--heads", "Hq"), ("--kv-heads", "Hkv"), ("--seq-len", "Lk"),
                       ("--q-len", "Lq"), ("--head-dim", "D")):
        g.add_argument(flag, type=_positive_int, metavar="N", help=f"override the profile's {what}")


def _positive_int(text):
    try:
        val = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if val < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {val}")
    return val


def shape_overrides(args) -> dict:
    return {"batch": args.batch, "heads": args.heads, "kv_heads": args.kv_heads, "seq_len": args.seq_len,
            "q_len": args.q_len, "head_dim": args.head_dim}


def build_parser() -> argparse.ArgumentParser:
    from sattn._version import __version__
    ap = _Parser(prog="sattn", description=__doc__.split("\n\n")[0],
                 epilog="Each verb has --help. docs/cli.md: the full guide.")
    ap.add_argument("--version", action="version", version=f"sattn {__version__}")
    ap.add_argument("--debug", action="store_true", help="show Python tracebacks on failure")
    sub = ap.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("doctor", help="which backends are usable here and, for each one that is not, why",
                       description="Lists every backend sattn knows: usable here, or why not.")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")

    p = sub.add_parser("profiles", help="named workload profiles (list, show, check)",
                       description=_profiles_doc())
    psub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    psub.required = True
    for name, hlp in (("list", "every profile: name, source, model, spec, L"),
                      ("show", "one profile's JSON and the spec and shape it gives"),
                      ("check", "validate profile files against the schema")):
        q = psub.add_parser(name, help=hlp, description=hlp)
        q.add_argument("--profiles-dir", action="append", default=[], metavar="DIR",
                       help="also read profiles from DIR (repeatable)")
        if name == "show":
            q.add_argument("name", help="profile name (or a .json file)")
        if name == "check":
            q.add_argument("files", nargs="+", help="profile .json files")
        if name != "check":
            q.add_argument("--json", action="store_true", help="JSON out")

    p = sub.add_parser("plan", help="plan a profile: density, blocks, bytes, per-row histogram",
                       description="Builds the block plan of a profile's spec on random inputs of its "
                                   "shape (the shared C++ planner) and prints what it keeps.")
    _add_profile_args(p)
    p.add_argument("--stats", action="store_true", help="also the bytes and the per-row histogram")
    p.add_argument("--seed", type=int, default=0, help="seed of the random q, k (default 0)")
    p.add_argument("--threads", type=int, default=0, help="planner threads (0: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")

    p = sub.add_parser("bench", help="benchmark a profile or a spec (front to tools/bench.py)",
                       description="Runs tools/bench.py (the same rows as `bazel run //tools:bench --`, "
                                   "docs/bench.md) on a profile or on --spec. Arguments after `--` go to "
                                   "the bench unchanged (e.g. -- --repeat 3 --option vlen=512).")
    _add_profile_args(p, required=False)
    p.add_argument("--spec", choices=["dense", "sliding_window", "block_topk", "bigbird", "topk_per_query"],
                   help="a spec instead of --profile (its fields: bench flags after --)")
    p.add_argument("--backend", default="cpu", help="reference, cpu, triton, rvv or rocc (default cpu)")
    p.add_argument("--compare", action="store_true", help="also run the backend's peers")
    p.add_argument("--mode", choices=["fwd", "fwdbwd", "decode"], default="fwd",
                   help="fwd; fwdbwd (forward + backward, where the bench has it); decode (Lq = 1)")
    p.add_argument("--sweep", action="store_true", help="run every L of the profile's sweep (progress on stderr)")
    p.add_argument("--tuned", action="store_true",
                   help="use the configuration `sattn autotune` cached for this workload and machine")
    p.add_argument("--cache-dir", metavar="DIR", help="autotune cache folder (default: XDG cache)")
    p.add_argument("--out", metavar="FILE.jsonl", help="append the rows to FILE as JSON lines")
    p.add_argument("--format", choices=["table", "jsonl"], default="table",
                   help="stdout: the bench's table (default) or JSON lines")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    p = sub.add_parser("autotune", help="search a backend's tunables for a profile; cache the best",
                       description="Runs every candidate configuration of the backend's tunables on the "
                                   "profile and caches the best, keyed by device, shape, spec, dtype and "
                                   "sattn version; the backend's calls on that workload that give none of "
                                   "the tunables then run it. cpu: tile x threads (wall time); rvv: tile x "
                                   "chunk_keys (QEMU instructions); rocc: tile x path (Verilator cycles); "
                                   "triton: fwd_tiles BLOCK_M x BLOCK_N x num_warps x num_stages (CUDA "
                                   "time; needs a CUDA GPU).")
    _add_profile_args(p)
    p.add_argument("--backend", default="cpu", choices=["cpu", "rvv", "rocc", "triton"],
                   help="the backend whose tunables are searched (default cpu)")
    p.add_argument("--repeat", type=_positive_int, default=3,
                   help="timed calls per candidate, median (cpu, triton; simulations run once)")
    p.add_argument("--vlen", type=int, default=256, choices=[128, 256, 512, 1024],
                   help="rvv: the QEMU VLEN the search counts at (part of the cache key; default 256)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $XDG_CACHE_HOME/sattn)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")

    p = sub.add_parser("report", help="plots of bench results in one self-contained HTML page",
                       description="Reads bench rows (JSON lines from `sattn bench --out`, or the JSON "
                                   "list of `bazel run //tools:bench -- --out`; or `sattn eval --out` rows) "
                                   "and writes one HTML page "
                                   "with the plots embedded (needs matplotlib: pip install 'sattn[plot]').")
    p.add_argument("results", nargs="+", help="result files (.jsonl or .json)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html", help="the page to write")
    p.add_argument("--title", default="sattn benchmark report", help="page title")

    from sattn.cli import cp_bench
    cp_bench.add_parser(sub, _positive_int)
    from sattn.cli import calibrate_verb
    calibrate_verb.add_parser(sub, _positive_int)
    from sattn.cli import imc_verb
    imc_verb.add_parser(sub, _positive_int)
    from sattn.cli import eval_verb
    eval_verb.add_parser(sub, _positive_int)
    return ap


def _profiles_doc():
    from sattn.cli import profiles
    return profiles.__doc__.split("\n\n")[0] + (
        f"\n\nShipped: {profiles.SHIPPED_DIR}\nUser:    {profiles.user_dir()}\n"
        f"Schema:  {profiles.SCHEMA_PATH}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    args = ap.parse_args(argv)
    from sattn.cli import profiles
    try:
        if args.verb == "doctor":
            from sattn.cli.doctor import run
        elif args.verb == "profiles":
            from sattn.cli.profile_verbs import run
        elif args.verb == "plan":
            from sattn.cli.plan_stats import run
        elif args.verb == "bench":
            from sattn.cli.bench_front import run
        elif args.verb == "autotune":
            from sattn.cli.autotune import run
        elif args.verb == "bench-cp":
            from sattn.cli.cp_bench import run
        elif args.verb == "calibrate":
            from sattn.cli.calibrate_verb import run
        elif args.verb == "imc":
            from sattn.cli.imc_verb import run
        elif args.verb == "eval":
            from sattn.cli.eval_verb import run
        else:
            from sattn.cli.report import run
        return int(run(args) or 0)
    except (UsageError, profiles.ProfileError) as e:
        if args.debug:
            raise
        print(f"sattn {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sattn {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # one line, never a traceback (unless --debug)
        if args.debug:
            raise
        msg = str(e).strip().splitlines()
        kind = "" if isinstance(e, Failure) else f"{type(e).__name__}: "
        print(f"sattn {args.verb}: error: {kind}{msg[0] if msg else ''}", file=sys.stderr)
        return 1
