"""Error of each quantization scheme against float64 attention (docs/contract.md, "Quantization").

    bazel run //tools:quant_error -- [--seq_len 512] [--json rows.jsonl]

Inputs: (a) N(0, 1) q, k, v; (b) outlier-heavy, like LLM activations: q, k, v ~ amp * t(nu=3),
with 4 of the D channels of K (the same in every head) at ~20 x amp: an offset of +-20 amp with
a t(3) spread of 2 amp, as in LLM keys; amp in 0.5, 1, 2, 4. For each
scheme and input, the scales are dynamic ("dynamic") or static from sattn.calibrate with max,
percentile (99.99) or kl, calibrated on 4 batches drawn from the same distribution with other
seeds. Error: max |out - float64 out| / max |v| over all rows (Dense causal, B=1, Hq=4, Hkv=2,
D=64), printed as a markdown table and optionally written as JSON rows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import sattn
from sattn import quant as Q
from sattn import reference

SCHEMES = {
    "int8/fp32/block": sattn.Quant(qk="int8", pv="fp32", granularity="block"),
    "int8/bf16/block": sattn.Quant(qk="int8", pv="bf16", granularity="block"),
    "int8/fp8/block": sattn.Quant(qk="int8", pv="fp8_e4m3", granularity="block"),
    "fp8/fp8/block": sattn.Quant(qk="fp8_e4m3", pv="fp8_e4m3", granularity="block"),
    "int8/bf16/token": sattn.Quant(qk="int8", pv="bf16", granularity="token"),
    "int8/bf16/channel": sattn.Quant(qk="int8", pv="bf16", granularity="channel"),
    "int8/bf16/token/v=int8": sattn.Quant(qk="int8", pv="bf16", v="int8", granularity="token"),
    "int8/bf16/token/v=int4": sattn.Quant(qk="int8", pv="bf16", v="int4", granularity="token"),
    "int8/bf16/block/v=int8/no-smooth": sattn.Quant(qk="int8", pv="bf16", v="int8", smooth_k=False),
}
METHODS = ("dynamic", "max", "percentile", "kl")


def draw(kind, amp, L, seed, Hq=4, Hkv=2, D=64):
    # the contract's inputs (sattn.quant.synthetic: K channels 3, 17, 40, 61 of 64 are the outliers)
    return Q.synthetic(kind, amp, (1, Hq, Hkv, L, D), seed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq_len", type=int, default=512)
    ap.add_argument("--schemes", default="all", help="comma-separated names (qk/pv/granularity[/v=..]) of SCHEMES, or all")
    ap.add_argument("--json", help="write one JSON row per (scheme, input, method) here")
    a = ap.parse_args(argv)
    names = list(SCHEMES) if a.schemes == "all" else a.schemes.split(",")
    inputs = [("normal", 1.0)] + [("outlier", amp) for amp in (0.5, 1.0, 2.0, 4.0)]
    spec = sattn.Dense(causal=True)
    rows = []
    print(f"| scheme | input | budget | {' | '.join(METHODS)} |\n|---|---|---|" + "---|" * len(METHODS))
    for name in names:
        quant = SCHEMES[name]
        for kind, amp in inputs:
            q, k, v = draw(kind, amp, a.seq_len, seed=0)
            ref = reference.attention(q, k, v, spec)
            cal = [draw(kind, amp, a.seq_len, seed=s) for s in (1, 2, 3, 4)]
            errs = []
            for method in METHODS:
                scales = None if method == "dynamic" else sattn.calibrate(cal, quant, method)
                out = Q.attention(q, k, v, spec, quant, scales=scales)
                diff = np.abs(out - ref)
                err = float(diff.max() / np.abs(v).max())
                errs.append(err)
                rows.append({"scheme": name, "quant": quant.to_dict(), "input": kind, "amp": amp, "method": method,
                             "seq_len": a.seq_len, "max_err_rel_max_abs_v": err,
                             "median_row_err_rel_max_abs_v": float(np.median(diff.max(axis=-1)) / np.abs(v).max())})
            label = "N(0,1)" if kind == "normal" else f"outliers, amp {amp:g}"
            budget = f"{100 * Q.error_budget(quant):g}%" if kind == "normal" else "-"
            print(f"| {name} | {label} | {budget} | " + " | ".join(f"{100 * e:.2f}%" for e in errs) + " |")
            sys.stdout.flush()
    if a.json:
        # `bazel run` starts in the runfiles tree; a relative path means the caller's directory
        path = os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), a.json)
        with open(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
