"""Measures the rocc backend's error against the float64 reference: the numbers behind the
tolerance and the quantized-call table in docs/backends/rocc.md.

    bazel run //rtl:error_sweep [-- --amps 0.5,1,2,4 --json rows.jsonl]

(a) The contract suite's specs and edge cases with q, k ~ N(0, amp^2), v ~ N(0, 1); (b) the
outlier-heavy inputs of sattn.quant.synthetic (amp * t(3) values, 4 K channels at ~20 amp), Dense
causal, B=1, Hq=4, Hkv=2, L=256, D=64. Columns: the plain forward (`fixed`: per-block amax scales,
no smoothing) and the quantized path with sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8",
granularity="block"), K smoothed, with dynamic scales or static ones calibrated (max, percentile,
kl) on 4 other draws of the same distribution (same heads and head dim, 256 tokens); beside them
the float64 error model (sattn.quant.attention, dynamic scales) of the int8 Q/K/V roundings alone
(pv="fp32") per block (`model_block`) and per token (`model_token`): the floor of those roundings. Error: worst max|out - ref| / max|v|.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

import sattn
from sattn import _inputs
from sattn import quant as Q
from sattn.backends import rocc
from tests.contract_suite import EDGE_CASES, all_specs, make_inputs

COLUMNS = ("fixed", "dynamic", "max", "percentile", "kl", "model_block", "model_token")


def scheme(tile: int = 64) -> sattn.Quant:
    return sattn.Quant(qk="int8", pv="fp8_e4m3", v="int8", granularity="block", smooth_k=True, block=tile)


def normal(shape, amp, seed):
    """The contract suite's N(0, 1) draw (make_inputs) with q and k scaled by amp."""
    q, k, v = (x.numpy() for x in make_inputs(*shape, seed=seed))
    return q * np.float32(amp), k * np.float32(amp), v


def outliers(amp, seed, Hq=4, Hkv=2, L=256, D=64):
    """The contract's outlier-heavy draw (sattn.quant.synthetic), float32."""
    return tuple(x.astype(np.float32) for x in Q.synthetic("outlier", amp, (1, Hq, Hkv, L, D), seed))


def errors(q, k, v, spec, cal):
    """{column: max|out - ref| / max|v|} for one problem; cal: the calibration batches."""
    ref = np.asarray(sattn.reference.attention(q, k, v, spec), np.float64)
    vmax = float(np.abs(v).max())
    fixed = rocc.attention(q, k, v, spec, scale=1.0 / np.sqrt(q.shape[-1]), return_lse=False)
    res = {"fixed": fixed.out}
    quant = scheme(rocc._sim_tile(fixed.plan.block))
    for method in ("dynamic", "max", "percentile", "kl"):
        scales = None if method == "dynamic" else sattn.calibrate(cal, quant, method)
        res[method] = sattn.sparse_attention(q, k, v, spec, backend="rocc", quant=quant, scales=scales)
    # the float64 error model (sattn.quant) of the int8 Q/K/V roundings alone (P.V in fp32), per
    # block and per token: what any datapath with these int8 roundings can reach
    exact_pv = dataclasses.replace(quant, pv="fp32")
    res["model_block"] = Q.attention(q, k, v, spec, exact_pv)
    res["model_token"] = Q.attention(q, k, v, spec, dataclasses.replace(exact_pv, granularity="token"))
    return {c: float(np.abs(_inputs.to_numpy(o, np.float64) - ref).max()) / vmax for c, o in res.items()}


def sweep(amps):
    rows = []
    for amp in amps:
        worst = dict.fromkeys(COLUMNS, 0.0)
        for name, B, Hq, Hkv, Lq, Lk, D, block in EDGE_CASES:
            shape = (B, Hq, Hkv, Lq, Lk, D)
            q, k, v = normal(shape, amp, 0)
            # calibration draws: same heads and head dim, 256 tokens (calibrate takes any L)
            cal = [normal((B, Hq, Hkv, 256, 256, D), amp, s) for s in (1, 2, 3, 4)]
            for spec in all_specs(Lk, block):
                for c, e in errors(q, k, v, spec, cal).items():
                    worst[c] = max(worst[c], e)
        rows.append({"input": "normal", "amp": amp, **worst})
        yield rows[-1]
    spec = sattn.Dense(causal=True)
    for amp in amps:
        q, k, v = outliers(amp, 0)
        cal = [outliers(amp, s) for s in (1, 2, 3, 4)]
        yield {"input": "outliers", "amp": amp, **errors(q, k, v, spec, cal)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--amps", default="0.5,1,2,4", help="comma-separated input amplitudes")
    ap.add_argument("--json", help="write one JSON row per (input, amp) here")
    a = ap.parse_args(argv)
    amps = [float(x) for x in a.amps.split(",")]
    print("| input | amp | " + " | ".join(COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS))
    rows = []
    for row in sweep(amps):
        rows.append(row)
        label = "N(0, amp²), every spec × edge case" if row["input"] == "normal" else "outliers, Dense causal"
        print(f"| {label} | {row['amp']:g} | " + " | ".join(f"{100 * row[c]:.2f}%" for c in COLUMNS) + " |")
        sys.stdout.flush()
    if a.json:
        path = os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), a.json)
        with open(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
