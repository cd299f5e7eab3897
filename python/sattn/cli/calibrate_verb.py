"""`sattn calibrate`: static quantization scales from samples, each method's error side by side.

Reads q/k/v batches (an .npz file, or a profile's shape filled with one of the contract's
synthetic distributions: N(0, 1) or the outlier-heavy one of LLM activations), calibrates the
scheme with max, percentile and kl (sattn.calibrate), writes the scales of --method to --output
(sattn.load_scales reads it), and prints the error of every method and of dynamic scales on a
held-out batch: max and median-row |out - float64 out| / max |v| (docs/contract.md,
"Quantization"), computed with the scheme's float64 model on the spec.
"""
from __future__ import annotations

import json
import sys

import numpy as np

METHODS = ("max", "percentile", "kl")
EVAL_ROWS = 256  # query rows the held-out error is measured on (evenly spread)


def add_parser(sub, positive_int):
    p = sub.add_parser("calibrate", help="static quantization scales from samples; each method's error",
                       description=__doc__.split("\n\n", 1)[1].strip())
    src = p.add_argument_group("samples (one of)")
    src.add_argument("--samples", metavar="FILE.npz",
                     help="arrays q, k, v of one batch (B, H, L, D) or of N batches (N, B, H, L, D); the last "
                          "batch is held out for the error when N > 1")
    src.add_argument("--profile", metavar="NAME", help="a profile (sattn profiles list): its shape and spec, "
                                                       "filled with --distribution")
    src.add_argument("--profiles-dir", action="append", default=[], metavar="DIR", help="also read profiles here")
    src.add_argument("--quick", action="store_true", help="the profile's small shape")
    src.add_argument("--seq-len", type=positive_int, metavar="N", help="override the profile's L")
    src.add_argument("--distribution", choices=["normal", "outlier"], default="outlier",
                     help="profile inputs: N(0, 1), or outlier (amp * t(3), a few K channels at 20 amp; default)")
    src.add_argument("--amp", type=float, default=1.0, help="outlier: amplitude (default 1)")
    src.add_argument("--batches", type=positive_int, default=4,
                     help="profile: calibration batches (default 4), plus one held out")
    src.add_argument("--seed", type=int, default=0, help="profile: seed of the first batch")
    s = p.add_argument_group("scheme")
    s.add_argument("--scheme", default="int8/bf16/token", metavar="QK/PV/GRAN[/v=..][/no-smooth]",
                   help="the sattn.Quant, as qk/pv/granularity[/v=int8|int4][/no-smooth][/block=N] "
                        "(default int8/bf16/token)")
    s.add_argument("--method", choices=METHODS, default="percentile",
                   help="the method whose scales are written (default percentile); all are measured")
    s.add_argument("--percentile", type=float, default=99.99, help="percentile method: p (default 99.99)")
    p.add_argument("-o", "--output", required=True, metavar="SCALES.json", help="the scales file to write")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    return p


def _log(msg):
    print(f"[calibrate] {msg}", file=sys.stderr, flush=True)


def _npz_batches(path):
    from sattn.cli import UsageError
    try:
        data = np.load(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--samples: cannot read {path} as .npz ({e})") from None
    missing = [n for n in "qkv" if n not in data.files]
    if missing:
        raise UsageError(f"--samples: {path} has no array named {', '.join(missing)} (it has {', '.join(data.files)})")
    q, k, v = (data[n] for n in "qkv")
    if q.ndim == 4:
        q, k, v = q[None], k[None], v[None]
    if not (q.ndim == k.ndim == v.ndim == 5 and q.shape[0] == k.shape[0] == v.shape[0]):
        raise UsageError(f"--samples: q, k, v must be (B, H, L, D) or (N, B, H, L, D) with the same N; got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    return [(q[i], k[i], v[i]) for i in range(q.shape[0])]


def _profile_batches(args):
    from sattn import quant as Q
    from sattn.cli import profiles
    prof = profiles.get(args.profile, args.profiles_dir)
    sh = prof.shape(args.quick, seq_len=args.seq_len)
    shape = (sh["B"], sh["Hq"], sh["Hkv"], sh["Lk"], sh["D"])
    if sh["Lq"] != sh["Lk"]:
        _log(f"profile {prof.name} has Lq={sh['Lq']}; calibrating on prefill batches (Lq = Lk = {sh['Lk']})")
    out = []
    for i in range(args.batches + 1):
        out.append(tuple(x.astype(np.float32) for x in Q.synthetic(args.distribution, args.amp, shape, args.seed + i)))
    return out, prof.spec(args.quick), f"profile {prof.name}, {args.distribution}" + (
        f" amp {args.amp:g}" if args.distribution == "outlier" else "")


def _error(q, k, v, spec, quant, scales):
    from sattn import quant as Q
    from sattn import reference
    Lq = q.shape[2]
    rows = np.unique(np.linspace(0, Lq - 1, num=min(EVAL_ROWS, Lq)).astype(np.int64))
    ref = reference.attention(q, k, v, spec, rows=rows)
    out = Q.attention(q, k, v, spec, quant, scales=scales, rows=rows)
    vmax = float(np.abs(v).max()) or 1.0
    diff = np.abs(out - ref)
    return float(diff.max() / vmax), float(np.median(diff.max(axis=-1)) / vmax)


def run(args) -> int:
    import sattn
    from sattn import quant as Q
    from sattn.cli import UsageError
    if (args.samples is None) == (args.profile is None):
        raise UsageError("give exactly one of --samples FILE.npz and --profile NAME")
    try:
        quant = Q.parse_scheme(args.scheme)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--scheme: {e}") from None
    if not (0.0 < args.percentile <= 100.0):
        raise UsageError(f"--percentile: expected a value in (0, 100], got {args.percentile}")
    if not (args.amp > 0.0 and np.isfinite(args.amp)):
        raise UsageError(f"--amp: expected a positive number, got {args.amp}")
    if args.samples:
        batches = _npz_batches(args.samples)
        spec, source = sattn.Dense(causal=True), f"{args.samples}"
    else:
        batches, spec, source = _profile_batches(args)
    cal, held = (batches[:-1], batches[-1]) if len(batches) > 1 else (batches, batches[0])
    B, Hq, L, D = held[0].shape
    _log(f"{source}: {len(cal)} calibration batch(es) of (B, Hq, Hkv, L, D) = "
         f"{(B, Hq, held[1].shape[1], L, D)}, {'one held out' if len(batches) > 1 else 'error measured on the same batch'}")
    _log(f"scheme {Q.scheme_name(quant)}; error on {spec}")
    results, chosen = [], None
    for method in ("dynamic",) + METHODS:
        scales = None
        if method != "dynamic":
            _log(f"calibrating with {method}" + (f" (p = {args.percentile:g})" if method == "percentile" else ""))
            scales = sattn.calibrate(cal, quant, method, percentile=args.percentile)
            if method == args.method:
                chosen = scales
        _log(f"measuring {method} on the held-out batch")
        err, med = _error(*held, spec, quant, scales)
        results.append({"method": method, "max_err_rel_max_abs_v": err, "median_row_err_rel_max_abs_v": med})
    chosen.save(args.output)
    _log(f"wrote the {args.method} scales to {args.output}")
    doc = {"scheme": Q.scheme_name(quant), "quant": quant.to_dict(), "samples": source, "spec": str(spec),
           "written": {"method": args.method, "path": args.output}, "error_budget": Q.error_budget(quant),
           "results": results}
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"scheme {doc['scheme']}  samples: {source}  spec: {spec}")
    print(f"{'method':<12} {'max err':>9} {'median row':>11}   (of max|v|; budget on N(0,1): "
          f"{100 * doc['error_budget']:g}%)")
    for r in results:
        mark = "  <- written" if r["method"] == args.method else ""
        print(f"{r['method']:<12} {100 * r['max_err_rel_max_abs_v']:8.2f}% "
              f"{100 * r['median_row_err_rel_max_abs_v']:10.2f}%{mark}")
    return 0
