"""The RISC-V vector backend: RVV 1.0 kernels cross-built for riscv64, run under qemu-riscv64.

`attention(...)` plans on the host with the shared planner, writes a Problem file (docs/bsr.md),
runs `//rvv:runner` under `qemu-riscv64 -cpu rv64,v=true,vlen=N,elen=64` with the instruction-
counting plugin (`//rvv:librvv_insn_count.so`), and reads the Result file back. Counters are the
runner's (visible pairs, gathered bytes, ...) plus the plugin's exact dynamic instruction counts
for the kernel region, and the cycle/energy proxy below. docs/backends/rvv.md has the details.

Options: vlen (128..1024, power of two; default 256), variant ("rvv", or the baselines "scalar"
and "autovec"), dtype ("fp32", "bf16", "int8": the kernels' storage type; default from the
inputs: bf16 for bfloat16 tensors, else fp32), plan_on_target (re-plan with the planner built for
RISC-V and report whether it matched), check_selection (BlockTopK: compare the RVV block top-k
selection kernel with the plan), region ("attention", default, or "selection": which of the two
the instruction counters measure; BlockTopK only), chunk_keys (online-softmax chunk), tile,
timeout_s.
"""
from __future__ import annotations

import math
import numbers
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import numpy as np

from sattn import _inputs, tuning
from sattn.backends.base import BackendGrads, BackendResult
from sattn.errors import GradientNotSupported
from sattn import specs as S
from sattn.plan import BlockPlan, check_plan, check_tile, plan as build_plan
from sattn.specs import BlockTopK

NAME = "rvv"
VARIANTS = {"rvv": "runner_riscv64", "scalar": "runner_scalar_riscv64", "autovec": "runner_autovec_riscv64"}
PLUGIN = "librvv_insn_count.so"
DTYPES = ("fp32", "bf16", "int8")
# What the counters measure (the runner's --region): the attention over the plan, or the BlockTopK
# block selection run with the kernels on target (the attention still runs, uncounted).
REGIONS = ("attention", "selection")
VLENS = (128, 256, 512, 1024)  # QEMU 7.2 implements VLEN up to 1024

# ---- Cycle and energy proxy (the one implementation; parameters in docs/backends/rvv.md) ----
# An in-order, single-issue core with a vector unit whose datapath is `dlen_bits` wide: a vector
# arithmetic instruction occupies it for LMUL * VLEN / DLEN cycles (vec_arith_reg_ops counts LMUL
# per instruction); vector memory moves `vmem_bytes_per_cycle` (unit stride) or
# `vmem_nonunit_bytes_per_cycle` (strided/indexed: element by element). These are modelling
# assumptions chosen to represent two classes of core, not measurements of any chip.
PROFILES = {
    "low_power": {
        "scalar_alu_cycles": 1.0, "scalar_mem_cycles": 2.0, "branch_cycles": 2.0, "vec_cfg_cycles": 1.0,
        "vec_issue_cycles": 1.0, "dlen_bits": 64, "vmem_bytes_per_cycle": 8.0, "vmem_nonunit_bytes_per_cycle": 4.0,
        "scalar_insn_pj": 8.0, "scalar_mem_byte_pj": 1.5, "vec_insn_pj": 10.0, "vec_lane64_op_pj": 3.0,
        "vec_mem_byte_pj": 1.0,
    },
    "high_perf": {
        "scalar_alu_cycles": 1.0, "scalar_mem_cycles": 1.0, "branch_cycles": 1.2, "vec_cfg_cycles": 1.0,
        "vec_issue_cycles": 1.0, "dlen_bits": 256, "vmem_bytes_per_cycle": 32.0, "vmem_nonunit_bytes_per_cycle": 8.0,
        "scalar_insn_pj": 25.0, "scalar_mem_byte_pj": 2.5, "vec_insn_pj": 30.0, "vec_lane64_op_pj": 5.0,
        "vec_mem_byte_pj": 1.5,
    },
}


def proxy(counts: dict, vlen: int, profile: str) -> dict:
    """Proxy cycles and energy (nJ) of a plugin count dict (keys without the region. prefix)."""
    p = PROFILES[profile]
    c = lambda k: float(counts.get(k, 0))  # noqa: E731
    groups = c("vec_arith_reg_ops")  # LMUL-weighted vector arithmetic
    unit_bytes = c("vec_mem_bytes") - c("vec_mem_nonunit_bytes")
    cycles = (c("scalar_alu") * p["scalar_alu_cycles"] + c("scalar_mem") * p["scalar_mem_cycles"]
              + c("branch") * p["branch_cycles"] + c("vec_cfg") * p["vec_cfg_cycles"]
              + groups * max(1.0, vlen / p["dlen_bits"]) + c("vec_arith") * (p["vec_issue_cycles"] - 1.0)
              + c("vec_mem") * p["vec_issue_cycles"] + unit_bytes / p["vmem_bytes_per_cycle"]
              + c("vec_mem_nonunit_bytes") / p["vmem_nonunit_bytes_per_cycle"])
    scalar_insns = c("scalar_alu") + c("scalar_mem") + c("branch")
    vec_insns = c("vec_cfg") + c("vec_arith") + c("vec_mem")
    energy_pj = (scalar_insns * p["scalar_insn_pj"] + c("scalar_mem_bytes") * p["scalar_mem_byte_pj"]
                 + vec_insns * p["vec_insn_pj"] + groups * (vlen / 64.0) * p["vec_lane64_op_pj"]
                 + c("vec_mem_bytes") * p["vec_mem_byte_pj"])
    return {"cycles": int(round(cycles)), "energy_nj": energy_pj / 1e3}


def parse_counts(text: str) -> dict:
    """The plugin's "key value" lines -> {key: int}; raises ValueError on anything else."""
    lines = text.strip().splitlines()
    if not lines or lines[0].strip() != "sattn_rvv_counts 1":
        raise ValueError("plugin output: missing 'sattn_rvv_counts 1' header")
    out = {}
    for line in lines[1:]:
        key, _, val = line.partition(" ")
        out[key] = int(val)
    return out


# ---- Locating the cross-built runners (Bazel runfiles) and QEMU ----
def _runfiles_roots():
    roots = []
    if os.environ.get("SATTN_RVV_DIR"):
        roots.append(pathlib.Path(os.environ["SATTN_RVV_DIR"]))
    for env in ("RUNFILES_DIR", "TEST_SRCDIR"):
        if os.environ.get(env):
            roots.append(pathlib.Path(os.environ[env]) / "sattn" / "rvv")
    # This file sits at <runfiles>/sattn/python/sattn/backends/rvv.py (not resolved: in runfiles
    # it is a symlink into the source tree, which has no binaries).
    here = pathlib.Path(os.path.abspath(__file__))
    roots.append(here.parents[3] / "rvv")
    # An installed wheel carries them beside the package (//python:sattn_wheel).
    roots.append(here.parents[1] / "_rvv")
    import sys
    if sys.argv and sys.argv[0]:
        main = pathlib.Path(os.path.abspath(sys.argv[0]))
        roots.append(pathlib.Path(str(main) + ".runfiles") / "sattn" / "rvv")
    return roots


def _find(name: str):
    for root in _runfiles_roots():
        p = root / name
        if p.is_file():
            return p
    return None


def _qemu():
    return shutil.which(os.environ.get("SATTN_QEMU_RISCV64", "qemu-riscv64"))


def available():
    if _qemu() is None:
        return False, "qemu-riscv64 not found (install qemu-user: tools/setup.sh)"
    for name in list(VARIANTS.values()) + [PLUGIN]:
        if _find(name) is None:
            return False, f"//rvv:{name} not built (depend on //python/sattn/backends:rvv)"
    try:
        from sattn import _cc  # noqa: F401
    except ImportError as e:
        return False, f"sattn._cc extension not built ({e})"
    return True, ""


def _check_options(vlen, variant, dtype):
    if isinstance(vlen, bool) or not isinstance(vlen, numbers.Integral) or vlen not in VLENS:
        raise ValueError(f"vlen: expected one of {VLENS}, got {vlen!r}")
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {tuple(VARIANTS)}, got {variant!r}")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")


def _run_runner(inputs: dict, outputs: tuple, args, *, vlen: int, variant: str, dtype: str,
                timeout_s: float | None):
    """Writes `inputs` ({file name: bytes}) to a temporary folder and runs the `variant` runner under
    QEMU with the counting plugin; `args(path)` gives the runner's arguments, `path(name)` naming
    a file in that folder. Returns ({name: bytes} for `outputs}`, counters, wall seconds)."""
    qemu, runner, plugin = _qemu(), _find(VARIANTS[variant]), _find(PLUGIN)
    if qemu is None or runner is None or plugin is None:
        raise RuntimeError(f"rvv backend unavailable: {available()[1]}")
    with tempfile.TemporaryDirectory(prefix="sattn-rvv-") as tmp:
        path = lambda name: os.path.join(tmp, name)  # noqa: E731
        for name, data in inputs.items():
            with open(path(name), "wb") as f:
                f.write(data)
        cnt_path = path("counts.txt")
        cmd = [qemu, "-cpu", f"rv64,v=true,vext_spec=v1.0,vlen={vlen},elen=64",
               "-plugin", f"{plugin},out={cnt_path}", str(runner), *args(path), "--dtype", dtype]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"rvv runner ({variant}, VLEN={vlen}) failed with exit {proc.returncode}: "
                               f"{proc.stderr.strip()[-2000:]}")
        files = {}
        for name in outputs:
            with open(path(name), "rb") as f:
                files[name] = f.read()
        with open(cnt_path) as f:
            counts = parse_counts(f.read())
    if not counts.get("region.valid"):
        raise RuntimeError("rvv plugin: the runner's kernel region markers were not seen exactly once")
    region = {k[len("region."):]: v for k, v in counts.items() if k.startswith("region.") and k != "region.valid"}
    insns = region["insns"]
    vec = region["vec_cfg"] + region["vec_arith"] + region["vec_mem"]
    counters = {
        "simulated": 1, "vlen": vlen, "variant": variant,
        "instructions": insns,
        "vector_fraction": vec / insns if insns else 0.0,
        "bytes": region["scalar_mem_bytes"] + region["vec_mem_bytes"],
        "process_instructions": counts["total.insns"],
    }
    counters.update({f"insn_{k}": v for k, v in region.items() if k != "insns"})
    for prof in PROFILES:
        pr = proxy(region, vlen, prof)
        counters[f"proxy_cycles_{prof}"] = pr["cycles"]
        counters[f"proxy_energy_nj_{prof}"] = pr["energy_nj"]
    counters["proxy_cycles"] = counters["proxy_cycles_low_power"]
    return files, counters, wall


def run_problem(problem: bytes, *, vlen: int = 256, variant: str = "rvv", dtype: str = "fp32",
                extra_args=(), timeout_s: float | None = None):
    """Runs one serialized Problem under QEMU; returns (out, lse, counters, wall seconds)."""
    from sattn import _cc
    files, counters, wall = _run_runner(
        {"problem.bin": problem}, ("result.bin",),
        lambda path: ["--problem", path("problem.bin"), "--result", path("result.bin"), *extra_args],
        vlen=vlen, variant=variant, dtype=dtype, timeout_s=timeout_s)
    out, lse, runner_counters = _cc.parse_result(files["result.bin"])
    return out, lse, {**dict(runner_counters), **counters}, wall


def run_backward(problem: bytes, forward: bytes, upstream: bytes, *, vlen: int = 256, variant: str = "rvv",
                 dtype: str = "fp32", chunk_keys: int = 512, timeout_s: float | None = None):
    """The runner's --mode backward on serialized files: `forward` a Result holding (out, lse),
    `upstream` a Result holding (dout, dlse). Returns (dq, dk, dv, delta, counters, wall seconds);
    dk and dv come back (B, Hkv, Lk, D)."""
    from sattn import _cc
    files, counters, wall = _run_runner(
        {"problem.bin": problem, "forward.bin": forward, "upstream.bin": upstream},
        ("dq.bin", "dk.bin", "dv.bin"),
        lambda path: ["--mode", "backward", "--problem", path("problem.bin"), "--forward", path("forward.bin"),
                      "--upstream", path("upstream.bin"), "--result", path("dq.bin"), "--result-dk", path("dk.bin"),
                      "--result-dv", path("dv.bin"), "--chunk-keys", str(chunk_keys)],
        vlen=vlen, variant=variant, dtype=dtype, timeout_s=timeout_s)
    dq, delta, runner_counters = _cc.parse_result(files["dq.bin"])
    dk = _cc.parse_result(files["dk.bin"])[0]
    dv = _cc.parse_result(files["dv.bin"])[0]
    return dq, dk, dv, delta, {**dict(runner_counters), **counters}, wall


def tuning_device(vlen: int, variant: str, dtype: str) -> str:
    """The autotune cache's device for a call: QEMU at `vlen`, the kernel build and storage type
    (instruction counts depend on these, not on the host)."""
    return f"{tuning.rvv_device(vlen)} {variant} {dtype}"


def _default_dtype(prob) -> str:
    return "bf16" if prob.dtype == "bfloat16" else "fp32"


def attention(q, k, v, spec, *, scale, return_lse, vlen: int = 256, variant: str = "rvv", dtype: str | None = None,
              plan: BlockPlan | None = None, tile: int | None = None, plan_on_target: bool = False,
              check_selection: bool = False, chunk_keys: int | None = None, timeout_s: float | None = None,
              threads: int = 0, region: str = "attention", **options):
    """A call with neither tile nor chunk_keys (nor a plan) runs the configuration `sattn autotune
    --backend rvv` cached for this VLEN, kernel build, storage type, shape and spec, if any
    (sattn.tuning; counter "tuned"); else tile 64, chunk_keys 512."""
    from sattn import _cc
    _inputs.check_options("the rvv backend", options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, v)
    if prob.device != "cpu":
        raise ValueError(f"q: the rvv backend needs host tensors, got device {prob.device}")
    _inputs.check_no_grad(NAME, q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    dtype = _default_dtype(prob) if dtype is None else dtype
    _check_options(vlen, variant, dtype)
    tuned = None if plan is not None else tuning.tuned_options(
        NAME, {"tile": tile, "chunk_keys": chunk_keys}, tuning_device(vlen, variant, dtype), spec, prob)
    if tuned is not None:
        tile, chunk_keys = tuned["tile"], tuned["chunk_keys"]
    chunk_keys = 512 if chunk_keys is None else chunk_keys
    tile = None if tile is None else check_tile(tile)
    threads = _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    plan_on_target = _inputs.check_bool("plan_on_target", plan_on_target)
    check_selection = _inputs.check_bool("check_selection", check_selection)
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real)
                                  or not math.isfinite(timeout_s) or timeout_s <= 0):
        raise ValueError(f"timeout_s: expected None or a finite number of seconds > 0, got {timeout_s!r}")
    if not isinstance(region, str) or region not in REGIONS:
        raise ValueError(f"region: expected one of {REGIONS}, got {region!r}")
    if region == "selection" and not isinstance(spec, BlockTopK):
        raise ValueError(f"region: 'selection' counts the BlockTopK block selection, got spec {spec}")
    if isinstance(chunk_keys, bool) or not isinstance(chunk_keys, int) or not 1 <= chunk_keys <= 1 << 20:
        raise ValueError(f"chunk_keys: expected an integer in [1, 1048576], got {chunk_keys!r}")
    qa, ka, va = (_inputs.to_numpy(x, np.float32) for x in (q, k, v))
    # The runner applies the non-finite policy on target; this raises a score overflow (ValueError
    # naming scale) before any planning or QEMU start.
    _cc.nonfinite_prepare(qa, ka, va, prob.shape_tuple, float(scale), threads)
    if plan is None:
        plan = build_plan(spec, q, k, tile=64 if tile is None else tile, scale=scale, threads=threads)
    else:
        plan = check_plan(plan, spec, prob, tile=tile, scale=scale)
    problem = _cc.serialize_problem(spec.to_fields(), prob.shape_tuple, float(scale), qa, ka, va, plan.to_dict())
    extra = ["--chunk-keys", str(chunk_keys)]
    if plan_on_target:
        extra.append("--plan-on-target")
    if check_selection:
        extra.append("--check-selection")
    if region != "attention":
        extra += ["--region", region]
    out, lse, counters, wall = run_problem(problem, vlen=vlen, variant=variant, dtype=dtype, extra_args=extra,
                                           timeout_s=timeout_s)
    # QEMU wall time says nothing about a core's speed (vector instructions simulate slowly), so
    # it is a counter, not time_s: the bench then shows no misleading "speedup" between builds.
    counters["qemu_wall_ms"] = int(wall * 1e3)
    counters["region"] = region
    counters.update({"tuned": int(tuned is not None), "tile": plan.block, "chunk_keys": chunk_keys})
    return BackendResult(out=out, lse=lse, counters=counters, time_s=None,
                         name=f"rvv_{variant}" if variant != "rvv" else None,
                         note=f"QEMU VLEN={vlen} {dtype}; compare instructions, not time", plan=plan)


def _grad_array(name: str, x, shape: tuple) -> np.ndarray:
    a = _inputs.to_numpy(x, np.float32)
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    return np.ascontiguousarray(a)


def attention_backward(q, k, v, out, lse, dout, dlse, plan, *, scale, vlen: int = 256, variant: str = "rvv",
                       dtype: str | None = None, chunk_keys: int = 512, timeout_s: float | None = None,
                       tile: int | None = None, threads: int = 0, plan_on_target: bool = False,
                       check_selection: bool = False, region: str = "attention", **options):
    """dq, dk, dv of the forward that returned (out, lse) with `plan`, computed by the runner's
    --mode backward under QEMU with the same kernel build (`variant`) at `vlen`; counters are the
    plugin's for the backward kernels alone (docs/backends/rvv.md, "Backward"). dtype "bf16"
    rounds q, k, v to bfloat16 as the forward did; int8 storage has no gradient. tile,
    plan_on_target, check_selection and region are forward options the backward takes unchanged
    and does not use (the plan is the forward's). A row whose lse is not finite contributes
    nothing. No non-finite policy: finite inputs give finite gradients; NaN/Inf inputs propagate
    through the arithmetic they meet (which entries become NaN is not specified)."""
    from sattn import _cc
    _inputs.check_options("the rvv backend's attention_backward", options, ())
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan: expected the forward's sattn.BlockPlan, got {type(plan).__name__}")
    prob = _inputs.check_qkv(q, k, v)
    B, Hq, Lq, D = prob.B, prob.Hq, prob.Lq, prob.D
    if not plan.matches(prob):
        raise ValueError(f"plan: built for (B, Hq, Lq, Lk)={(plan.B, plan.Hq, plan.Lq, plan.Lk)}, "
                         f"got {(prob.B, prob.Hq, prob.Lq, prob.Lk)}")
    dtype = "fp32" if dtype is None else dtype
    _check_options(vlen, variant, dtype)
    if dtype == "int8":
        raise GradientNotSupported("dtype: the rvv backend has no gradient for int8 storage (quantised q and k); "
                                   "use dtype='fp32' or 'bf16'")
    if isinstance(chunk_keys, bool) or not isinstance(chunk_keys, int) or not 1 <= chunk_keys <= 1 << 20:
        raise ValueError(f"chunk_keys: expected an integer in [1, 1048576], got {chunk_keys!r}")
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real)
                                  or not math.isfinite(timeout_s) or timeout_s <= 0):
        raise ValueError(f"timeout_s: expected None or a finite number of seconds > 0, got {timeout_s!r}")
    _inputs.check_threads(threads)
    del tile, plan_on_target, check_selection, region  # forward-only: the plan is the forward's
    if not (isinstance(scale, numbers.Real) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    qa, ka, va = (_inputs.to_numpy(x, np.float32) for x in (q, k, v))
    oa = _grad_array("out", out, (B, Hq, Lq, D))
    ga = _grad_array("dout", dout, (B, Hq, Lq, D))
    la = _grad_array("lse", lse, (B, Hq, Lq))
    dla = np.zeros((B, Hq, Lq), np.float32) if dlse is None else _grad_array("dlse", dlse, (B, Hq, Lq))
    # The runner needs a valid spec in the Problem file but does not re-plan: the plan's own spec
    # when sattn.plan() built it, else Dense (any spec passes).
    spec = plan.source.spec if plan.source is not None else S.Dense()
    problem = _cc.serialize_problem(spec.to_fields(), prob.shape_tuple, float(scale), qa, ka, va, plan.to_dict())
    forward = _cc.serialize_result(prob.shape_tuple, oa, la, {})
    upstream = _cc.serialize_result(prob.shape_tuple, ga, dla, {})
    dq, dk, dv, _delta, counters, wall = run_backward(problem, forward, upstream, vlen=vlen, variant=variant,
                                                      dtype=dtype, chunk_keys=chunk_keys, timeout_s=timeout_s)
    counters["qemu_wall_ms"] = int(wall * 1e3)
    counters["region"] = "backward"
    return BackendGrads(dq=dq, dk=dk, dv=dv, counters=counters, time_s=None)


def bench_peers(q, k, v, spec, *, scale, repeat, vlen: int = 256, dtype: str | None = None, tile: int = 64,
                **options):
    """The same problem through the scalar (-march=rv64gc) and auto-vectorised (-march=rv64gcv -O3)
    builds of the same algorithm, at the same VLEN."""
    options.pop("variant", None)
    peers = []
    for variant in ("scalar", "autovec"):
        res = attention(q, k, v, spec, scale=scale, return_lse=True, vlen=vlen, variant=variant, dtype=dtype,
                        tile=tile, **options)
        res.name = f"rvv_{variant}"
        peers.append(res)
    return peers


def bench_fwdbwd_peers(q, k, v, dout, spec, *, scale, vlen: int = 256, dtype: str | None = None, tile: int = 64,
                       **options):
    """`bench --mode fwdbwd --compare` rows: forward then backward (of `dout`, no gradient through
    lse) through each kernel build (the RVV kernels, the scalar and the auto-vectorised baselines)
    at the same VLEN. `instructions` and the other region counters are the backward's; the
    forward's count is `fwd_instructions`. Times are QEMU's and say nothing about a core."""
    options.pop("variant", None)
    ga = _inputs.to_numpy(dout, np.float32)
    rows = []
    for variant in ("rvv", "scalar", "autovec"):
        fwd = attention(q, k, v, spec, scale=scale, return_lse=True, vlen=vlen, variant=variant, dtype=dtype,
                        tile=tile, **options)
        g = attention_backward(q, k, v, fwd.out, fwd.lse, ga, None, fwd.plan, scale=scale, vlen=vlen,
                               variant=variant, dtype=dtype, tile=tile, **options)
        c = dict(g.counters)
        c.update({"fwd_instructions": fwd.counters["instructions"], "bwd_instructions": g.counters["instructions"],
                  "fwdbwd_instructions": fwd.counters["instructions"] + g.counters["instructions"],
                  "fwd_proxy_cycles": fwd.counters["proxy_cycles"]})
        rows.append(BackendResult(out=None, counters=c, time_s=None, name="rvv_bwd" if variant == "rvv" else f"rvv_{variant}_bwd",
                                  note=f"QEMU VLEN={vlen}; instructions = backward region; compare instructions, "
                                       f"not time"))
    return rows


# ---- quantized path (sparse_attention(..., quant=sattn.Quant(...))) --------------------------------

def check_quant_scheme(quant, scales, block: int) -> None:
    """QuantNotSupported unless the int8 kernels run `quant` (docs/backends/rvv.md, "Quantized
    calls"): int8 Q.K^T with one dynamic scale per `block`-row plan block of Q and of K (computed
    on target), fp32 softmax and P.V on unquantized V; K smoothing either way."""
    from sattn import quant as Q
    from sattn.errors import QuantNotSupported
    Q.require_scheme(quant, "rvv", (("qk", "int8", "the kernels multiply int8 q and k (vwmul/vwadd)"),
                                    ("pv", "fp32", "P.V runs in fp32"),
                                    ("v", None, "V stays fp32"),
                                    ("granularity", "block", "the scale groups are plan blocks"),
                                    ("block", block, f"the scale groups are this plan's {block}-row blocks")))
    if scales is not None:
        raise QuantNotSupported("scales: the rvv int8 kernels compute their scales on target per call (dynamic); "
                                "static scales are not supported")


def quantized_attention(q, k, v, spec, *, quant, scales=None, scale, plan: BlockPlan | None = None,
                        tile: int | None = None, threads: int = 0, **options):
    """The scheme `quant` on the int8 kernels (dtype="int8"): K smoothed on the host (its mean
    over tokens subtracted; the row shift scale*q.mean(K) added back to lse), then q and k
    quantized on target to int8 with one scale (amax / 127, round to nearest even) per plan
    block, fp32 softmax and P.V. Options are attention()'s except dtype. Returns out and lse."""
    from sattn import quant as Q
    if "dtype" in options:
        raise TypeError("dtype: a quantized rvv call runs the int8 kernels; quant= chooses the formats")
    S.check_spec(spec)
    Q.check_quant(quant)
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    qa, ka, va = (np.ascontiguousarray(_inputs.to_numpy(x, np.float32)) for x in (q, k, v))
    for name, a in (("q", qa), ("k", ka), ("v", va)):
        Q._check_finite(name, a)
    threads = _inputs.check_threads(threads)
    # planned on the inputs as given: smoothing shifts each row's block scores by one constant
    if plan is None:
        plan = build_plan(spec, q, k, tile=64 if tile is None else check_tile(tile), scale=scale, threads=threads)
    else:
        plan = check_plan(plan, spec, prob, tile=tile, scale=scale)
    check_quant_scheme(quant, scales, plan.block)
    ka, kmean = Q.smooth_k(ka, quant.smooth_k)
    res = attention(qa, ka, va, spec, scale=scale, return_lse=True, dtype="int8", plan=plan, threads=threads,
                    **options)
    res.lse = (np.asarray(res.lse, np.float64) + Q.smoothing_shift(qa, kmean, scale)).astype(np.float32)
    res.counters["smooth_k"] = int(quant.smooth_k)
    return res
