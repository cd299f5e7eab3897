"""Measures the rocc backend's error against the float64 reference over the contract suite's specs
and edge cases, at several input amplitudes: the numbers behind the tolerance in
docs/backends/rocc.md.  bazel run //rtl:error_sweep
"""
import numpy as np

import sattn
from sattn import _inputs
from tests.contract_suite import EDGE_CASES, all_specs, make_inputs


def main():
    print(f"{'case':<26} {'amp':>4} {'max|out-ref|/max|v|':>20} {'max|lse-ref|':>13}")
    for amp in (0.5, 1.0, 2.0):
        worst_o = worst_l = 0.0
        for name, B, Hq, Hkv, Lq, Lk, D, block in EDGE_CASES:
            q, k, v = make_inputs(B, Hq, Hkv, Lq, Lk, D)
            q, k = q * amp, k * amp
            vmax = float(np.abs(v.numpy()).max())
            eo = el = 0.0
            for spec in all_specs(Lk, block):
                out, lse = sattn.sparse_attention(q, k, v, spec, backend="rocc", return_lse=True)
                ro, rl = sattn.reference.attention(q, k, v, spec, return_lse=True)
                out = _inputs.to_numpy(out, np.float64)
                lse = _inputs.to_numpy(lse, np.float64)
                ro, rl = np.asarray(ro, np.float64), np.asarray(rl, np.float64)
                eo = max(eo, float(np.max(np.abs(out - ro))) / vmax)
                fin = ~np.isneginf(rl)
                if fin.any():
                    el = max(el, float(np.max(np.abs(lse[fin] - rl[fin]))))
            print(f"{name:<26} {amp:>4.1f} {eo:>20.4f} {el:>13.4f}")
            worst_o, worst_l = max(worst_o, eo), max(worst_l, el)
        print(f"{'worst':<26} {amp:>4.1f} {worst_o:>20.4f} {worst_l:>13.4f}")


if __name__ == "__main__":
    main()
