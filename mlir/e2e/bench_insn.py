"""Dynamic instruction counts of the MLIR path vs the hand-written RVV kernel (docs/mlir.md).

    bazel run //mlir/e2e:bench_insn [-- --json out.json]

One problem (BlockTopK block=64 keep=0.125, L=2048, D=64, B=H=1, fp32, seed 0) goes to both
runners under qemu-riscv64 (VLEN=256) with rvv/plugin's counter in the same run:
  * rvv/runner (hand-written RVV 1.0 kernels) and mlir_runner `plan_bt64` both execute the
    problem file's plan, and both count only the attention region;
  * the select-spec grid (`grid_*`: dense and block_topk block 16/32/64/128 at keep 0.125, each
    planning inside the call) and `auto` (the block --sattn-select-spec chose) count the whole
    call, planning included; `cgrid_*` / `cauto` repeat that for causal attention, and
    `hgrid_*` / `hauto` (causal, L=1024, keep 0.25) were not used to fit the cost model.
The vector-length-agnostic build of `plan_bt64` and the hand-written kernel also run at VLEN 128
and 512 (the same VLA binary at every VLEN). The backward (`grad_plan_bt64`, fixed-length and VLA
builds, vs `rvv/runner --mode backward`) runs on the same plan, from the hand kernel's forward out
and lse and one upstream dout (dlse = 0), each counting the backward region only. Every output is
also checked against the float64 reference.

    --rows forward|backward|all   which rows to run (default all)
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import sattn
from sattn import _cc, reference
from sattn import specs as S

VLEN = 256
VLA_VLENS = (128, 256, 512)  # the vector-length-agnostic build and the hand kernel at each


def cpu(vlen):
    return f"rv64,v=true,vext_spec=v1.0,vlen={vlen},elen=64"

SHAPE = (1, 1, 1, 2048, 2048, 64)
GRID = ["grid_dense", "grid_bt16", "grid_bt32", "grid_bt64", "grid_bt128"]
CGRID = ["c" + g for g in GRID]  # the same grid, causal
HGRID = ["h" + g for g in GRID]  # held out from the cost-model fit: causal, L=1024, keep 0.25
HSHAPE = (1, 1, 1, 1024, 1024, 64)


def runfile(rel):
    # This file runs from <runfiles>/sattn/mlir/e2e/; the data deps sit beside it.
    roots = [os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))]
    if os.environ.get("RUNFILES_DIR"):
        roots.append(os.path.join(os.environ["RUNFILES_DIR"], "sattn"))
    for root in roots:
        p = os.path.join(root, rel)
        if os.path.exists(p):
            return p
    sys.exit(f"bench_insn: {rel} not found in runfiles; use bazel run //mlir/e2e:bench_insn")


def run(cmd_tail, runner, plugin, tmp, vlen=VLEN):
    counts = os.path.join(tmp, "counts.txt")
    cmd = [shutil.which("qemu-riscv64"), "-cpu", cpu(vlen), "-plugin", f"{plugin},out={counts}", runner] + cmd_tail
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_insn: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    out = {}
    for line in open(counts):
        key, val = line.split()
        out[key] = int(val)
    if out.get("region.valid") != 1:
        sys.exit(f"bench_insn: no valid instruction-count region in {runner}")
    return out["region.insns"], time.time() - t0


def problem(shape, spec, seed=0):
    B, Hq, Hkv, Lq, Lk, D = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, Lk, D), dtype=np.float32)
    scale = 1.0 / np.sqrt(D)
    plan = sattn.plan(spec, q, k, scale=scale, threads=1)
    return q, k, v, scale, _cc.serialize_problem(spec.to_fields(), shape, float(scale), q, k, v, plan.to_dict())


def backward_rows(spec, q, k, v, scale, pin, pout, plugin, rvv_runner, mlir_runner, vla_runner, tmp):
    """The backward rows; `pout` holds the hand kernel's forward Result (out, lse) of `pin`."""
    out, lse, _ = _cc.parse_result(open(pout, "rb").read())
    out, lse = np.asarray(out, np.float32), np.asarray(lse, np.float32)
    shape = SHAPE
    dout = np.random.default_rng(1).standard_normal(q.shape, dtype=np.float32)
    fwd, up, gin, gout = (os.path.join(tmp, n) for n in ("fwd.bin", "up.bin", "g.bin", "go.bin"))
    dq_p, dk_p, dv_p = (os.path.join(tmp, n) for n in ("dq.bin", "dk.bin", "dv.bin"))
    with open(fwd, "wb") as f:
        f.write(_cc.serialize_result(shape, out, lse, {}))
    with open(up, "wb") as f:
        f.write(_cc.serialize_result(shape, dout, np.zeros_like(lse), {}))
    with open(gin, "wb") as f:
        f.write(np.concatenate([out.ravel(), lse.ravel(), dout.ravel()]).astype("<f4").tobytes())
    mask = sattn.plan(spec, q, k, scale=scale, threads=1).to_dense_mask()
    ref = reference.backward(q, k, v, out, lse, dout, None, mask, scale=scale)

    def err(got):
        e = max(float(np.max(np.abs(g.reshape(r.shape) - r))) for g, r in zip(got, ref))
        if e > 1e-3:
            sys.exit(f"bench_insn: backward: max error {e:.3g} vs the float64 reference")
        return e

    rows = {}
    for vl in VLA_VLENS:
        sfx = "" if vl == VLEN else f"@{vl}"
        n, s = run(["--mode", "backward", "--problem", pin, "--forward", fwd, "--upstream", up, "--result", dq_p,
                    "--result-dk", dk_p, "--result-dv", dv_p, "--dtype", "fp32"], rvv_runner, plugin, tmp, vl)
        got = [_cc.parse_result(open(x, "rb").read())[0] for x in (dq_p, dk_p, dv_p)]
        rows["rvv_kernel_bwd" + sfx] = {"insns": n, "err": err(got), "qemu_s": s}
        builds = [("grad_plan_bt64_vla", vla_runner)] + ([("grad_plan_bt64", mlir_runner)] if vl == VLEN else [])
        for name, runner in builds:
            n, s = run(["--case", "grad_plan_bt64", "--problem", pin, "--grad", gin, "--grad-out", gout], runner,
                       plugin, tmp, vl)
            g = np.fromfile(gout, dtype="<f4")
            nq = q.size
            got = [g[:nq], g[nq:nq + k.size], g[nq + k.size:]]
            rows[name + sfx] = {"insns": n, "err": err(got), "qemu_s": s}
    return rows


def report_backward(rows, args):
    if args is not None:
        print("| program | region instructions | max abs err vs float64 |")
        print("|---|---:|---:|")
        for name, r in rows.items():
            print(f"| {name} | {r['insns']:,} | {r['err']:.2g} |")
    base = rows["rvv_kernel_bwd"]["insns"]
    out = {"bwd_ratio_vs_rvv": rows["grad_plan_bt64"]["insns"] / base, "bwd_vla_ratio_vs_rvv": {}}
    print(f"\nMLIR grad_plan_bt64 / hand-written RVV backward: {out['bwd_ratio_vs_rvv']:.3f}x (target <= 1.3x)")
    for vl in VLA_VLENS:
        sfx = "" if vl == VLEN else f"@{vl}"
        r = rows["grad_plan_bt64_vla" + sfx]["insns"] / rows["rvv_kernel_bwd" + sfx]["insns"]
        out["bwd_vla_ratio_vs_rvv"][vl] = r
        print(f"VLA backward / hand-written RVV backward at VLEN={vl}: {r:.3f}x")
    if args is not None and args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, **out}, f, indent=1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--rows", choices=["forward", "vla", "backward", "all"], default="all",
                    help="forward: the forward rows; vla: only the VLA build and the hand kernel at each VLEN; "
                         "backward: the backward rows (plus the forward they start from)")
    args = ap.parse_args()
    do_fwd, do_bwd = args.rows in ("forward", "vla", "all"), args.rows in ("backward", "all")
    spec = S.BlockTopK(block=64, keep=0.125)
    q, k, v, scale, blob = problem(SHAPE, spec)
    hq, hk, hv, hscale, hblob = problem(HSHAPE, S.BlockTopK(block=64, keep=0.25, causal=True))
    plugin = runfile("rvv/librvv_insn_count.so")
    mlir_runner = runfile("mlir/e2e/runner_bench_riscv64")
    rvv_runner = runfile("rvv/runner_riscv64")
    vla_runner = runfile("mlir/e2e/runner_bench_vla_riscv64")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        pin, pout = os.path.join(tmp, "p.bin"), os.path.join(tmp, "r.bin")
        hin = os.path.join(tmp, "h.bin")
        with open(pin, "wb") as f:
            f.write(blob)
        with open(hin, "wb") as f:
            f.write(hblob)

        def check(name, spec_for_ref, held_out=False):
            out, _, _ = _cc.parse_result(open(pout, "rb").read())
            if held_out:
                ref = reference.attention(hq, hk, hv, spec_for_ref, scale=hscale)
            else:
                ref = reference.attention(q, k, v, spec_for_ref, scale=scale)
            err = float(np.max(np.abs(out - ref)))
            if err > 1e-4:
                sys.exit(f"bench_insn: {name}: max error {err:.3g} vs the float64 reference")
            return err

        n, s = run(["--problem", pin, "--result", pout, "--dtype", "fp32"], rvv_runner, plugin, tmp)
        rows["rvv_kernel"] = {"insns": n, "err": check("rvv_kernel", spec), "qemu_s": s}
        if do_bwd:
            rows.update(backward_rows(spec, q, k, v, scale, pin, pout, plugin, rvv_runner, mlir_runner, vla_runner,
                                      tmp))
        if not do_fwd:
            return report_backward(rows, args)
        n, s = run(["--case", "plan_bt64", "--problem", pin, "--result", pout], vla_runner, plugin, tmp)
        rows["plan_bt64_vla"] = {"insns": n, "err": check("plan_bt64_vla", spec), "qemu_s": s}
        for vl in VLA_VLENS:
            if vl == VLEN:
                continue
            n, s = run(["--problem", pin, "--result", pout, "--dtype", "fp32"], rvv_runner, plugin, tmp, vl)
            rows[f"rvv_kernel@{vl}"] = {"insns": n, "err": check(f"rvv_kernel@{vl}", spec), "qemu_s": s}
            n, s = run(["--case", "plan_bt64", "--problem", pin, "--result", pout], vla_runner, plugin, tmp, vl)
            rows[f"plan_bt64_vla@{vl}"] = {"insns": n, "err": check(f"plan_bt64_vla@{vl}", spec), "qemu_s": s}
        if args.rows == "vla":
            for name, r in rows.items():
                print(f"| {name} | {r['insns']:,} | {r['err']:.2g} |")
            for vl in VLA_VLENS:
                sfx = "" if vl == VLEN else f"@{vl}"
                print(f"VLA build / hand-written RVV kernel at VLEN={vl}: "
                      f"{rows['plan_bt64_vla' + sfx]['insns'] / rows['rvv_kernel' + sfx]['insns']:.3f}x")
            return
        for case in ["plan_bt64"] + GRID + ["auto"] + CGRID + ["cauto"] + HGRID + ["hauto"]:
            held = case.startswith("h")
            n, s = run(["--case", case, "--problem", hin if held else pin, "--result", pout], mlir_runner, plugin,
                       tmp)
            causal = case.startswith("c") or held
            keep = 0.25 if held else 0.125
            kind = case.split("_")[-1]
            ref_spec = (S.Dense(causal=causal) if kind == "dense" else
                        S.BlockTopK(block=int(kind[2:]), keep=keep, causal=causal) if kind.startswith("bt") else spec)
            err = check(case, ref_spec, held) if not case.endswith("auto") else None
            rows[case] = {"insns": n, "err": err, "qemu_s": s}
    ratio = rows["plan_bt64"]["insns"] / rows["rvv_kernel"]["insns"]
    bwd = report_backward(rows, None) if do_bwd else {}
    best = min(GRID, key=lambda c: rows[c]["insns"])
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.machine()} qemu-riscv64 VLEN={VLEN}")
    print("| program | region instructions | max abs err vs float64 |")
    print("|---|---:|---:|")
    for name, r in rows.items():
        e = "-" if r["err"] is None else f"{r['err']:.2g}"
        print(f"| {name} | {r['insns']:,} | {e} |")
    print(f"\nMLIR plan_bt64 / hand-written RVV kernel: {ratio:.3f}x (target <= 1.2x)")
    vla = {}
    for vl in VLA_VLENS:
        sfx = "" if vl == VLEN else f"@{vl}"
        vla[vl] = rows["plan_bt64_vla" + sfx]["insns"] / rows["rvv_kernel" + sfx]["insns"]
        print(f"VLA build / hand-written RVV kernel at VLEN={vl}: {vla[vl]:.3f}x (target <= 1.2x)")
    print(f"grid best: {best} ({rows[best]['insns']:,}); auto: {rows['auto']['insns']:,} = "
          f"{rows['auto']['insns'] / rows[best]['insns']:.3f}x of best (target <= 1.1x)")
    cbest = min(CGRID, key=lambda c: rows[c]["insns"])
    print(f"causal grid best: {cbest} ({rows[cbest]['insns']:,}); cauto: {rows['cauto']['insns']:,} = "
          f"{rows['cauto']['insns'] / rows[cbest]['insns']:.3f}x of best (target <= 1.1x)")
    hbest = min(HGRID, key=lambda c: rows[c]["insns"])
    print(f"held-out grid best: {hbest} ({rows[hbest]['insns']:,}); hauto: {rows['hauto']['insns']:,} = "
          f"{rows['hauto']['insns'] / rows[hbest]['insns']:.3f}x of best (target <= 1.1x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "ratio_vs_rvv": ratio, "vla_ratio_vs_rvv": vla, "grid_best": best, "causal_grid_best": cbest,
                       "held_out_grid_best": hbest, **bwd}, f,
                      indent=1)


if __name__ == "__main__":
    main()
