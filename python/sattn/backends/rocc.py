"""The RoCC accelerator backend: the shared planner picks the blocks on the host, and the
cycle-accurate Verilator model of the accelerator (rtl/) runs attention over the plan in int8 /
fixed point, driven through the same C driver a RISC-V core would use.

Numbers (docs/backends/rocc.md): int8 Q/K with one scale per 64-row block, int8 V with one scale
per (batch, kv head), base-2 fixed-point scores, 8-bit softmax weights, int16 output. Outputs agree
with the float64 reference to the documented int8 tolerance, not to float precision.
"""
from __future__ import annotations

import numbers
import time

import numpy as np

from sattn import _inputs, tuning
from sattn import specs as S
from sattn.backends.base import BackendGrads, BackendResult
from sattn.plan import BlockPlan, check_plan, check_tile, plan as build_plan

NAME = "rocc"

# Documented tolerance of the int8 datapath against the float64 reference (docs/backends/rocc.md):
# |out - ref| <= OUT_ATOL_REL * max|v| per (batch, kv head), |lse - ref| <= LSE_ATOL.
OUT_ATOL_REL = 0.03
LSE_ATOL = 0.05
# Documented tolerance of the backward (ATTN_BWD) against float64 autograd: for each of dq, dk, dv,
# max|g - ref| <= GRAD_ATOL_REL * max(max|ref|, one product term) (docs/backends/rocc.md, "Backward").
GRAD_ATOL_REL = 0.05


def _rtl_module(name: str):
    """sattn._rocc.<name> where a wheel installed it, else <name> from the path (Bazel runfiles of
    //rtl:rocc_py). ImportError naming both places when neither has it."""
    import importlib
    try:
        return importlib.import_module(f"sattn._rocc.{name}")
    except ModuleNotFoundError as installed:
        if installed.name not in ("sattn._rocc", f"sattn._rocc.{name}"):
            raise
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            raise ImportError(f"{name}: neither sattn._rocc.{name} (a wheel) nor {name} (Bazel) is "
                              f"importable ({e})") from e


def _sim():
    return _rtl_module("sattn_rocc_sim")  # pybind11 module built by //rtl:sattn_rocc_sim


def _consts():
    return _rtl_module("sattn_rocc_consts")  # generated from rtl/spec/commands.json


class RoccFault(RuntimeError):
    """The accelerator answered an error code of rtl/spec/commands.json: `code`, `fault` (its
    name, e.g. "ROW_TOO_LONG") and `doc` (what it means)."""

    def __init__(self, code: int):
        errors = _consts().ERRORS
        self.code = int(code)
        self.fault = errors.get(self.code, "UNKNOWN")
        self.doc = _consts().ERROR_DOCS.get(self.fault, "not an error code of rtl/spec/commands.json")
        super().__init__(f"rocc accelerator answered {self.fault} ({self.code}): {self.doc}")


def raise_for_fault(res: dict) -> dict:
    """`res` from sattn_rocc_sim.run, or RoccFault when the accelerator answered an error code."""
    if res.get("error", 0):
        raise RoccFault(res["error"])
    return res


def available():
    try:
        _sim()
        _consts()
    except ImportError as e:
        return False, f"//rtl:sattn_rocc_sim not built into this installation ({e})"
    return True, ""


def roofline(counters: dict, bytes_per_cycle: float) -> dict:
    """Derived figures from the accelerator's counters: the compute bound is the MAC work at the
    array's peak (MAC_ROWS*MAC_COLS per cycle), the memory bound is the bytes moved at the
    configured bandwidth; the roofline bound is the larger of the two."""
    peak = counters["param_mac_rows"] * counters["param_mac_cols"]
    macs = counters["macs"]
    dma = counters["dma_rd_bytes"] + counters["dma_wr_bytes"]
    cycles = max(1, counters["cycles"])
    compute = macs / peak
    memory = dma / bytes_per_cycle
    bound = max(compute, memory, 1.0)
    return {
        "dma_bytes": int(dma),
        "mac_utilization": compute / cycles,
        "spdot_mac_utilization": counters["spdot_mac_busy"] / max(1, counters["spdot_cycles"]),
        "ops_per_cycle": 2.0 * macs / cycles,
        "compute_bound_cycles": int(round(compute)),
        "memory_bound_cycles": int(round(memory)),
        "roofline_cycles": int(round(bound)),
        "cycles_over_roofline": cycles / bound,
        "bound": "compute" if compute >= memory else "memory",
    }


def _get_plan(spec, q, k, prob, scale, plan, tile, threads):
    if plan is None:
        return build_plan(spec, q, k, tile=64 if tile is None else tile, scale=scale, threads=threads)
    return check_plan(plan, spec, prob, tile=tile, scale=scale)


def _check_sim_options(path, latency, bytes_per_cycle, check_golden) -> None:
    """Types of the simulator's options (their ranges are the simulator's own checks)."""
    if not isinstance(path, str) or path not in ("fused", "unfused"):
        raise ValueError(f"path: expected 'fused' or 'unfused', got {path!r}")
    _inputs.check_int("latency", latency, 1, 2**31 - 1)
    if isinstance(bytes_per_cycle, bool) or not isinstance(bytes_per_cycle, numbers.Real):
        raise TypeError(f"bytes_per_cycle: expected a number, got {type(bytes_per_cycle).__name__} {bytes_per_cycle!r}")
    _inputs.check_bool("check_golden", check_golden)


def tuning_device(latency, bytes_per_cycle) -> str:
    """The autotune cache's device for a call: this build's MAC array and the memory model."""
    c = _consts()
    return tuning.rocc_device(latency, bytes_per_cycle, c.MAC_ROWS, c.MAC_COLS)


def attention(q, k, v, spec, *, scale, return_lse, plan: BlockPlan | None = None, tile: int | None = None,
              threads: int = 0, path: str | None = None, latency: int = 40, bytes_per_cycle: float = 16.0,
              check_golden: bool = False, **options):
    """Runs on the simulated accelerator. Options: `path` "fused" (SOFTMAX_FUSED, the default) or
    "unfused" (SPDOT_BSR then SPMM_BSR, scores through memory); `tile` the plan block for specs
    without their own (a multiple of 16 up to MAX_BLK; default 64); the memory model's `latency`
    (cycles) and `bytes_per_cycle`; `check_golden` also runs the bit-exact golden model and reports
    whether the RTL matched it (counter golden_match). A call with neither tile nor path (nor a
    plan) runs the configuration `sattn autotune --backend rocc` cached for this memory model,
    shape and spec, if any (sattn.tuning; counter "tuned")."""
    _inputs.check_options("the rocc backend", options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, v)
    if prob.device != "cpu":
        raise ValueError(f"q: the rocc backend simulates on the host, got device {prob.device}")
    _inputs.check_no_grad(NAME, q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    threads = _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    _check_sim_options("fused" if path is None else path, latency, bytes_per_cycle, check_golden)
    tuned = None if plan is not None else tuning.tuned_options(
        NAME, {"tile": tile, "path": path}, tuning_device(latency, bytes_per_cycle), spec, prob)
    if tuned is not None:
        tile, path = tuned["tile"], tuned["path"]
    path = "fused" if path is None else path
    tile = None if tile is None else check_tile(tile)
    if tile is not None and (tile % 16 != 0 or tile > _consts().MAX_BLK):
        raise ValueError(f"tile: the rocc accelerator needs a multiple of 16 up to {_consts().MAX_BLK}, got {tile}")
    from sattn import _cc
    qa, ka, va = (_inputs.to_numpy(x, np.float32) for x in (q, k, v))
    # The int8 datapath has no NaN: the contract's non-finite policy runs here, on the host
    # (docs/backends/rocc.md): zeroed copies in, poisoned rows set to NaN after.
    nonfinite = _cc.nonfinite_prepare(qa, ka, va, prob.shape_tuple, float(scale), threads)
    t0 = time.perf_counter()
    pl = _get_plan(spec, q, k, prob, scale, plan, tile, threads)
    t1 = time.perf_counter()
    if nonfinite is not None:
        qa, ka, va = nonfinite[:3]
    res = _sim().run(qa, ka, va, pl.to_dict(), float(scale), path=path, latency=int(latency),
                     bytes_per_cycle=float(bytes_per_cycle), check_golden=bool(check_golden))
    raise_for_fault(res)
    if nonfinite is not None:
        _cc.nonfinite_poison(res["out"], res["lse"], pl.to_dict(), prob.shape_tuple, *nonfinite[3:])
    t2 = time.perf_counter()
    counters = {k: int(v) for k, v in res["counters"].items()}
    counters.update(roofline(counters, float(bytes_per_cycle)))
    counters.update({"simulated": 1, "plan_ns": int((t1 - t0) * 1e9), "sim_ns": int((t2 - t1) * 1e9), "nnz_blocks": pl.nnz,
                     "bytes_per_cycle": float(bytes_per_cycle), "latency": int(latency),
                     "tuned": int(tuned is not None), "tile": pl.block, "path": path})
    if check_golden:
        counters["golden_match"] = bool(res["golden_match"])
    note = (f"{path}: {counters['cycles']} cycles = {counters['cycles_over_roofline']:.3f}x roofline "
            f"({counters['roofline_cycles']}, {counters['bound']}-bound), {counters['ops_per_cycle']:.0f} ops/cycle, "
            f"Q.K^T MAC util {counters['spdot_mac_utilization']:.3f}, simulated")
    return BackendResult(out=res["out"], lse=res["lse"] if return_lse else None, counters=counters,
                         time_s=t2 - t1, note=note, plan=pl)


def _grad_input(name, x, shape):
    a = np.ascontiguousarray(_inputs.to_numpy(x, np.float32), dtype=np.float32)
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    return a


def attention_backward(q, k, v, out, lse, dout, dlse, plan, *, scale, tile: int | None = None, threads: int = 0,
                       path: str | None = None, latency: int = 40, bytes_per_cycle: float = 16.0,
                       check_golden: bool = False, **options):
    """dq, dk, dv computed by the accelerator's ATTN_BWD command (docs/backends/rocc.md,
    "Backward") on the forward's plan: int8 Q/K/V quantised as the forward did, int8 dO, 8-bit P
    from the forward's lse, 9-bit block-floating-point dS, int64 accumulators. The host computes
    only the per-row delta = dout.out - dlse and the scales. Options are the forward's (`path`
    and `tile` do not change the backward); `check_golden` also runs the bit-exact golden model
    (counter golden_match). Non-finite out, lse rows aside (-inf lse = a row without keys),
    dout or dlse raise ValueError naming the argument."""
    _inputs.check_options("the rocc backend's attention_backward", options, ())
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan: expected the forward's sattn.BlockPlan, got {type(plan).__name__}")
    prob = _inputs.check_qkv(q, k, v)
    if not plan.matches(prob):
        raise ValueError(f"plan: built for (B, Hq, Lq, Lk)={(plan.B, plan.Hq, plan.Lq, plan.Lk)}, "
                         f"got {(prob.B, prob.Hq, prob.Lq, prob.Lk)}")
    _check_sim_options("fused" if path is None else path, latency, bytes_per_cycle, check_golden)
    _inputs.check_threads(threads)
    del tile  # forward option: the plan is the forward's
    if not (isinstance(scale, numbers.Real) and not isinstance(scale, bool) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    B, Hq, Lq, D = prob.B, prob.Hq, prob.Lq, prob.D
    qa, ka, va = (_inputs.to_numpy(x, np.float32) for x in (q, k, v))
    for name, a in (("q", qa), ("k", ka), ("v", va)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: the rocc backward needs finite inputs (the forward's non-finite rows have no gradient here)")
    oa = _grad_input("out", out, (B, Hq, Lq, D))
    ga = _grad_input("dout", dout, (B, Hq, Lq, D))
    la = _grad_input("lse", lse, (B, Hq, Lq))
    dla = None if dlse is None else _grad_input("dlse", dlse, (B, Hq, Lq))
    for name, a in (("out", oa), ("dout", ga), ("dlse", dla)):
        if a is not None and not np.isfinite(a).all():
            raise ValueError(f"{name}: the rocc backward needs finite values")
    if np.isnan(la).any() or np.isposinf(la).any():
        raise ValueError("lse: expected finite values or -inf (a row without keys)")
    t0 = time.perf_counter()
    res = _sim().run_bwd(qa, ka, va, plan.to_dict(), float(scale), oa, la, ga, dla, latency=int(latency),
                         bytes_per_cycle=float(bytes_per_cycle), check_golden=bool(check_golden))
    raise_for_fault(res)
    t1 = time.perf_counter()
    counters = {k: int(v) for k, v in res["counters"].items()}
    peak = counters["param_mac_rows"] * counters["param_mac_cols"]
    dma = counters["dma_rd_bytes"] + counters["dma_wr_bytes"]
    compute, memory = counters["macs"] / peak, dma / float(bytes_per_cycle)
    bound = max(compute, memory, 1.0)
    counters.update({"simulated": 1, "sim_ns": int((t1 - t0) * 1e9), "dma_bytes": int(dma),
                     "mac_utilization": compute / max(1, counters["cycles"]),
                     "roofline_cycles": int(round(bound)), "cycles_over_roofline": counters["cycles"] / bound,
                     "bytes_per_cycle": float(bytes_per_cycle), "latency": int(latency)})
    if check_golden:
        counters["golden_match"] = bool(res["golden_match"])
    return BackendGrads(dq=res["dq"], dk=res["dk"], dv=res["dv"], counters=counters, time_s=t1 - t0)


def bench_peers(q, k, v, spec, *, scale, repeat: int = 1, **options):
    """Beside the accelerator: the CPU backend on the same problem in the same run, the
    accelerator's unfused path (SPDOT_BSR + SPMM_BSR) to show how many bytes fusion saves, and
    its backward (ATTN_BWD, row "rocc_bwd") on the forward's plan with dout ~ N(0, 1): cycles,
    MAC utilisation and roofline of the backward alone."""
    from sattn.backends import get
    peers = []
    cpu = get("cpu")
    times = []
    res = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        res = cpu.attention(q, k, v, spec, scale=scale, return_lse=False,
                            **{k: v for k, v in options.items() if k in ("tile", "threads")})
        times.append(time.perf_counter() - t0)
    res.time_s = float(np.median(times))
    res.name = "cpu"
    peers.append(res)
    sim_opts = {k: v for k, v in options.items() if k in ("tile", "latency", "bytes_per_cycle", "plan", "threads")}
    unfused = attention(q, k, v, spec, scale=scale, return_lse=False, path="unfused", **sim_opts)
    unfused.name = "rocc_unfused"
    peers.append(unfused)
    fwd = attention(q, k, v, spec, scale=scale, return_lse=True, **sim_opts)
    qa = _inputs.to_numpy(q, np.float32)
    dout = np.random.default_rng(0).standard_normal(qa.shape).astype(np.float32)
    bwd_opts = {k: v for k, v in sim_opts.items() if k in ("latency", "bytes_per_cycle", "threads")}
    g = attention_backward(q, k, v, fwd.out, fwd.lse, dout, None, fwd.plan, scale=scale, **bwd_opts)
    c = dict(g.counters)
    c["flops"] = 2 * c["macs"]  # the five products as executed (masked pairs of a tile included)
    note = (f"backward: {c['cycles']} cycles = {c['cycles_over_roofline']:.3f}x roofline ({c['roofline_cycles']}), "
            f"MAC util {c['mac_utilization']:.3f}, {c['t_nnz']} entries, simulated")
    peers.append(BackendResult(out=None, counters=c, time_s=g.time_s, name="rocc_bwd", note=note))
    return peers


# ---- quantized path (sparse_attention(..., quant=sattn.Quant(...), scales=...)) -------------------

# Documented tolerance of quantized calls for N(0, 1) inputs (docs/backends/rocc.md, "Quantized
# calls"), indexed by whether the scales are static (calibrated clips per head, which saturate
# values beyond the calibrated range) or dynamic (amax per block): |out - ref| <=
# QUANT_OUT_ATOL_REL[static] * max|v|, |lse - ref| <= QUANT_LSE_ATOL[static].
QUANT_OUT_ATOL_REL = (0.03, 0.05)
QUANT_LSE_ATOL = (0.05, 0.1)


def check_quant_scheme(quant, tile: int) -> None:
    """QuantNotSupported unless the accelerator's datapath runs `quant` (docs/backends/rocc.md,
    "Quantized calls"): int8 Q.K^T with one scale per `tile`-row block of Q and of K, int8 V,
    8-bit P (pv="fp8_e4m3" names the 8-bit P.V operands; P is the datapath's 8-bit fixed point,
    not e4m3); K smoothing either way."""
    from sattn import quant as Q
    Q.require_scheme(quant, "rocc", (
        ("qk", "int8", "the MAC array multiplies int8 Q and K"),
        ("granularity", "block", "the descriptor carries one Q and one K scale per plan block"),
        ("v", "int8", "the P.V operands are int8 V and 8-bit P"),
        ("pv", "fp8_e4m3", "P.V runs on 8-bit P and int8 V (no bf16 or fp32 P.V on the accelerator)"),
        ("block", tile, f"the scale groups are the accelerator's {tile}-row tiles of this plan")))


def quantized_attention(q, k, v, spec, *, quant, scales=None, scale, plan: BlockPlan | None = None,
                        tile: int | None = None, threads: int = 0, path: str = "fused", latency: int = 40,
                        bytes_per_cycle: float = 16.0, check_golden: bool = False, **options):
    """The scheme `quant` on the accelerator: K smoothed on the host (its mean over tokens
    subtracted, the row shift scale*q.mean(K) added back to lse), Q and K quantized to int8 with
    one scale per plan block (dynamic: amax / 127 of the block; static, from `scales`: the
    calibrated clip / 127 of the head, saturating), int8 V with one scale per (batch, kv head)
    (dynamic: amax / 127; static: the head's clip / 127), then the forward datapath unchanged.
    Options are attention()'s. Returns out and lse (always)."""
    from sattn import quant as Q
    _inputs.check_options("the quantized rocc backend", options,
                          tuple(o for o in _inputs.keyword_options(quantized_attention) if o not in ("quant", "scales")))
    S.check_spec(spec)
    Q.check_quant(quant)
    prob = _inputs.check_qkv(q, k, v)
    if prob.device != "cpu":
        raise ValueError(f"q: the rocc backend simulates on the host, got device {prob.device}")
    if scales is not None:
        Q.check_scales(scales, quant, prob)
    scale = _inputs.resolve_scale(scale, prob.D)
    threads = _inputs.check_threads(threads)
    _check_sim_options(path, latency, bytes_per_cycle, check_golden)
    tile = None if tile is None else check_tile(tile)
    if tile is not None and (tile % 16 != 0 or tile > _consts().MAX_BLK):
        raise ValueError(f"tile: the rocc accelerator needs a multiple of 16 up to {_consts().MAX_BLK}, got {tile}")
    qa, ka, va = (np.ascontiguousarray(_inputs.to_numpy(x, np.float32)) for x in (q, k, v))
    for name, a in (("q", qa), ("k", ka), ("v", va)):
        Q._check_finite(name, a)
    t0 = time.perf_counter()
    pl = _get_plan(spec, q, k, prob, scale, plan, tile, threads)
    run_tile = _sim_tile(pl.block)
    check_quant_scheme(quant, run_tile)
    t1 = time.perf_counter()
    ka, kmean = Q.smooth_k(ka, quant.smooth_k)
    clips = {}
    if scales is not None:
        clips = {"q_clip": np.asarray(scales.q, np.float64), "k_clip": np.asarray(scales.k, np.float64),
                 "v_clip": np.asarray(scales.v, np.float64)}
    res = _sim().run(qa, ka, va, pl.to_dict(), float(scale), path=path, latency=int(latency),
                     bytes_per_cycle=float(bytes_per_cycle), check_golden=bool(check_golden), **clips)
    raise_for_fault(res)
    t2 = time.perf_counter()
    lse = (res["lse"].astype(np.float64) + Q.smoothing_shift(qa, kmean, scale)).astype(np.float32)
    counters = {k: int(v) for k, v in res["counters"].items()}
    counters.update(roofline(counters, float(bytes_per_cycle)))
    counters.update({"simulated": 1, "plan_ns": int((t1 - t0) * 1e9), "sim_ns": int((t2 - t1) * 1e9),
                     "nnz_blocks": pl.nnz, "bytes_per_cycle": float(bytes_per_cycle), "latency": int(latency),
                     "static_scales": int(scales is not None), "smooth_k": int(quant.smooth_k)})
    if check_golden:
        counters["golden_match"] = bool(res["golden_match"])
    note = (f"{path}, {'static' if scales is not None else 'dynamic'} scales"
            f"{', K smoothed' if quant.smooth_k else ''}: {counters['cycles']} cycles, simulated")
    return BackendResult(out=res["out"], lse=lse, counters=counters, time_s=t2 - t1, note=note, plan=pl)


def _sim_tile(block: int) -> int:
    """The tile edge the accelerator runs a plan of `block` at (rocc_model.cc AcceleratorTile)."""
    mx = _consts().MAX_BLK
    return mx if block >= mx else max(16, (block + 15) // 16 * 16)
