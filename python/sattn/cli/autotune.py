"""`sattn autotune --backend X --profile NAME`: a search over a backend's tunables, cached for its calls.

Every candidate runs the profile's workload once (CPU, Triton: timed, median of --repeat; RVV,
RoCC: deterministic simulations run once); the default configuration is always a candidate, so
the configuration chosen is never worse than it in the measurement made here. What is searched
and what "better" means:

  cpu     tile {32, 64, 128} x threads {1, 2, 4, ..., cores, 0}   wall time (median ms)
  rvv     tile {32, 64, 128} x chunk_keys {128, 256, 512, 1024}   QEMU instructions of the kernel region
  rocc    tile {16, 32, 48, 64} x path {fused, unfused}           Verilator cycles of the accelerator
  triton  fwd_tiles (BLOCK_M {64, 128} x BLOCK_N {32, 64, 128} x  CUDA-event time (median ms),
          num_warps {4, 8} x num_stages {2, 3, 4})                a CUDA GPU only

The tile is searched only for specs without a block of their own (Dense, SlidingWindow,
TopKPerQuery); BlockTopK and BigBird plan with their spec's block. The RVV kernels' register
grouping (LMUL 8) is fixed when they are compiled, so it is not a run-time choice to search.

The best configuration goes into the autotune cache (sattn.tuning: one JSON file in
$XDG_CACHE_HOME/sattn or --cache-dir) under a key of backend, device, shape, spec, dtype and sattn
version; a backend call on that workload that gives none of the tunables runs it.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import time

import numpy as np

from sattn import tuning
from sattn.cli import Failure, UsageError, profiles, shape_overrides

BACKENDS = ("cpu", "rvv", "rocc", "triton")
# What each search minimises: (result field, unit shown in the table).
OBJECTIVE = {"cpu": ("time_ms", "median ms"), "triton": ("time_ms", "median ms"),
             "rvv": ("instructions", "instructions"), "rocc": ("cycles", "cycles")}


def _own_block(spec) -> bool:
    from sattn import specs as S
    return isinstance(spec, (S.BlockTopK, S.BigBird))


def candidates(backend: str, spec, cores: int = 1) -> list:
    """The configurations searched, the default first."""
    tiles = lambda options: [64] if _own_block(spec) else options  # noqa: E731
    if backend == "cpu":
        threads = sorted({t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= cores} | {cores})
        grid = [{"tile": t, "threads": n} for t in tiles([32, 64, 128]) for n in threads]
    elif backend == "rvv":
        grid = [{"tile": t, "chunk_keys": c} for t in tiles([32, 64, 128]) for c in (128, 256, 512, 1024)]
    elif backend == "rocc":
        from sattn.backends.rocc import _consts
        edges = [t for t in (16, 32, 48, 64) if t <= _consts().MAX_BLK]
        grid = [{"tile": t, "path": p} for t in tiles(edges) for p in ("fused", "unfused")]
    elif backend == "triton":
        grid = [{"fwd_tiles": list(c)} for c in itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3, 4))]
    else:
        raise UsageError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    default = dict(tuning.DEFAULTS[backend])
    if _own_block(spec) and "tile" in default:
        default["tile"] = spec.block
        grid = [dict(c, tile=spec.block) for c in grid]
    return [default] + [c for c in grid if c != default]


def _inputs(shape: dict, dtype: str, device: str | None = None, seed: int = 0):
    """q, k, v of the shape: numpy float32, or torch tensors in `dtype` (on `device`) when the
    profile's dtype is not float32 or a device is asked for. Returns (q, k, v, dtype run)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((shape["B"], shape["Hq"], shape["Lq"], shape["D"]), dtype=np.float32)
    k = rng.standard_normal((shape["B"], shape["Hkv"], shape["Lk"], shape["D"]), dtype=np.float32)
    v = rng.standard_normal((shape["B"], shape["Hkv"], shape["Lk"], shape["D"]), dtype=np.float32)
    if dtype == "float32" and device is None:
        return q, k, v, dtype
    try:
        import torch
    except ImportError:
        if device is not None:
            raise Failure("the triton search needs torch") from None
        return q, k, v, "float32"
    t = getattr(torch, dtype)
    return tuple(torch.from_numpy(x).to(device=device or "cpu", dtype=t) for x in (q, k, v)) + (dtype,)


def _to_numpy(out) -> np.ndarray:
    if hasattr(out, "detach"):
        return out.detach().float().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def _measure(backend: str, mod, q, k, v, spec, scale: float, config: dict, repeat: int) -> dict:
    """One candidate: the objective and the output (to check candidates agree)."""
    call = lambda: mod.attention(q, k, v, spec, scale=scale, return_lse=False, **config)  # noqa: E731
    if backend in ("rvv", "rocc"):  # deterministic simulations: one run gives the counters
        res = call()
        return {"instructions" if backend == "rvv" else "cycles":
                int(res.counters["instructions" if backend == "rvv" else "cycles"]),
                "proxy_cycles": res.counters.get("proxy_cycles"), "_out": res.out}
    timer = mod.cuda_time if backend == "triton" else mod.median_time  # warm-up, then the median
    res, seconds = timer(call, repeat)
    return {"time_ms": seconds * 1e3, "_out": res.out}


def _device(backend: str, mod, q, args) -> str:
    if backend == "cpu":
        return tuning.cpu_device()
    if backend == "rvv":
        storage = "bf16" if getattr(q, "dtype", None) is not None and "bfloat16" in str(q.dtype) else "fp32"
        return mod.tuning_device(args.vlen, "rvv", storage)
    if backend == "rocc":
        return mod.tuning_device(40, 16.0)
    return tuning.triton_device(q.device)


def _backend(name: str):
    import importlib
    backends = importlib.import_module("sattn.backends")  # the package; sattn.backends is also a function
    if name == "triton":
        try:
            import torch
            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
        if not cuda:
            raise Failure("--backend triton: the search times the Triton kernels on a CUDA GPU and none is "
                          "visible here (torch.cuda.is_available() is False); run it on the GPU machine")
    try:
        return backends.get(name)
    except backends.BackendUnavailable as e:
        raise Failure(str(e)) from None


def tune(backend: str, spec, shape: dict, dtype: str, args, progress=None) -> dict:
    """Runs every candidate; returns best, default, candidates (each with its objective, or its
    error for a configuration the backend refused), the dtype run and the cache key."""
    from sattn import _inputs as I
    mod = _backend(backend)
    q, k, v, used_dtype = _inputs(shape, dtype, "cuda" if backend == "triton" else None)
    scale = 1.0 / float(np.sqrt(shape["D"]))
    field = OBJECTIVE[backend][0]
    cands = candidates(backend, spec, os.cpu_count() or 1)
    # Every candidate names its options: a call without them would read the cache being rebuilt.
    extra = {"vlen": args.vlen} if backend == "rvv" else {"tile": 64} if backend == "triton" else {}
    results, ref = [], None
    for i, c in enumerate(cands):
        try:
            r = _measure(backend, mod, q, k, v, spec, scale, dict(c, **extra), args.repeat)
        except Exception as e:  # e.g. a Triton launch out of shared memory: that candidate only
            if i == 0:
                raise
            r = {field: None, "error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"}
        out = r.pop("_out", None)
        if out is not None:
            out = _to_numpy(out)
            ref = out if ref is None else ref
            r["max_abs_diff_vs_default"] = float(np.max(np.abs(out - ref))) if out.size else 0.0
        results.append({"config": c, **r})
        if progress:
            progress(i + 1, len(cands), c, r.get(field), OBJECTIVE[backend][1])
    ok = [r for r in results if r.get(field) is not None]
    best = min(ok, key=lambda r: r[field])
    prob = I.check_qkv(q, k, v)
    key = tuning.key(backend, _device(backend, mod, q, args), spec, tuning.shape_of(prob), prob.dtype)
    return {"best": best, "default": results[0], "candidates": results, "dtype_run": used_dtype,
            "objective": field, "key": key}


def _progress(i, n, cfg, value, unit):
    bar = "#" * int(20 * i / n)
    shown = "failed" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
    print(f"\r[{bar:<20}] {i}/{n} {_config_text(cfg)}: {shown} {unit}   ",
          end="" if i < n else "\n", file=sys.stderr, flush=True)


def _config_text(cfg: dict) -> str:
    return " ".join(f"{k}={'default' if v is None else ','.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in cfg.items())


def run(args) -> int:
    if args.backend not in BACKENDS:
        raise UsageError(f"--backend {args.backend!r}: expected one of {', '.join(BACKENDS)}")
    prof = profiles.get(args.profile, args.profiles_dir)
    shape = prof.shape(args.quick, **shape_overrides(args))
    spec = prof.spec(args.quick)
    dtype = prof.data["dtype"]
    res = tune(args.backend, spec, shape, dtype, args, None if args.json else _progress)
    field = res["objective"]
    best, default = res["best"], res["default"]
    try:
        path = tuning.store(res["key"], {"config": best["config"], field: best[field],
                                         f"default_{field}": default[field], "profile": prof.name,
                                         "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, args.cache_dir)
    except tuning.CacheError as e:
        raise Failure(str(e)) from None
    gain = default[field] / best[field] if best[field] else 1.0
    out = {"profile": prof.name, "backend": args.backend, "cache": path, **res, "improvement_vs_default": gain}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    unit = OBJECTIVE[args.backend][1]
    print(f"{prof.name} on {args.backend}: {spec}, B={shape['B']} Hq={shape['Hq']} Hkv={shape['Hkv']} "
          f"Lq={shape['Lq']} Lk={shape['Lk']} D={shape['D']} {res['dtype_run']}")
    rows = sorted(res["candidates"], key=lambda r: (r.get(field) is None, r.get(field) or 0))
    width = max(len(_config_text(r["config"])) for r in rows)
    print(f"{'configuration':<{width}} {unit:>14} {'max|diff| vs default':>21}")
    for r in rows:
        mark = (" <- best" if r is best else "") + (" (default)" if r is default else "")
        val = r.get(field)
        shown = r.get("error", "failed") if val is None else (f"{val:.3f}" if isinstance(val, float) else str(val))
        diff = r.get("max_abs_diff_vs_default")
        print(f"{_config_text(r['config']):<{width}} {shown:>14} {'' if diff is None else f'{diff:.2e}':>21}{mark}")
    fmt = (lambda x: f"{x:.3f} ms") if isinstance(best[field], float) else (lambda x: f"{x} {unit}")
    print(f"tuned {fmt(best[field])} ({_config_text(best['config'])}) vs default {fmt(default[field])} "
          f"({gain:.2f}x); cached in {path}")
    return 0
