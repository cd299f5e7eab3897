"""`sattn autotune --backend cpu --profile NAME`: a timed search over the CPU backend's tunables.

Candidates: threads in {1, 2, 4, ..., cores} and 0 (one per core, the default), times tile in
{32, 64, 128} for specs without a block of their own (Dense, SlidingWindow, TopKPerQuery; BlockTopK
and BigBird plan with their spec's block). The default (tile 64, threads 0) is always a
candidate, so the chosen configuration is never slower than it in the measurement made here.

The best configuration is cached in one JSON file, $XDG_CACHE_HOME/sattn/autotune.json (default
~/.cache/sattn) or --cache-dir, under a key of backend, device, shape, spec, dtype and sattn
version; `sattn bench --tuned` reads it back.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

from sattn.cli import Failure, UsageError, profiles, shape_overrides

CACHE_FILE = "autotune.json"
CACHE_VERSION = 1
DEFAULT = {"tile": 64, "threads": 0}


def cache_dir(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sattn")


def device_id() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} x{os.cpu_count()}"


def cache_key(backend: str, spec, shape: dict, dtype: str) -> str:
    from sattn._version import __version__
    sh = ",".join(f"{k}={shape[k]}" for k in ("B", "Hq", "Hkv", "Lq", "Lk", "D"))
    return f"{backend}|{device_id()}|{sh}|{spec!r}|{dtype}|sattn {__version__}"


def read_cache(directory: str) -> dict:
    path = os.path.join(directory, CACHE_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {"version": CACHE_VERSION, "entries": {}}
    except (OSError, json.JSONDecodeError) as e:
        raise Failure(f"autotune cache {path} is unreadable ({e}); delete it to start over") from e
    if data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        raise Failure(f"autotune cache {path} has another layout (version {data.get('version')}); delete it")
    return data


def write_cache(directory: str, data: dict) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CACHE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return path


def lookup(backend: str, spec, shape: dict, dtype: str, directory: str | None = None):
    """The cached configuration ({'tile': .., 'threads': ..}) for this workload here, or None."""
    entry = read_cache(cache_dir(directory))["entries"].get(cache_key(backend, spec, shape, dtype))
    return None if entry is None else dict(entry["config"])


def candidates(spec, cores: int) -> list:
    from sattn import specs as S
    threads = sorted({t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= cores} | {cores})
    tiles = [64] if isinstance(spec, (S.BlockTopK, S.BigBird)) else [32, 64, 128]
    out = [dict(DEFAULT)]
    for tile in tiles:
        for t in threads:
            c = {"tile": tile, "threads": t}
            if c not in out:
                out.append(c)
    return out


def _inputs(shape: dict, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((shape["B"], shape["Hq"], shape["Lq"], shape["D"]), dtype=np.float32)
    k = rng.standard_normal((shape["B"], shape["Hkv"], shape["Lk"], shape["D"]), dtype=np.float32)
    v = rng.standard_normal((shape["B"], shape["Hkv"], shape["Lk"], shape["D"]), dtype=np.float32)
    if dtype != "float32":
        try:
            import torch
        except ImportError:
            return q, k, v, "float32 (torch absent: no bfloat16 arrays)"
        t = getattr(torch, dtype)
        return (torch.from_numpy(q).to(t), torch.from_numpy(k).to(t), torch.from_numpy(v).to(t), dtype)
    return q, k, v, dtype


def tune_cpu(spec, shape: dict, dtype: str, repeat: int, progress=None) -> dict:
    import importlib
    cpu = importlib.import_module("sattn.backends").get("cpu")
    q, k, v, used_dtype = _inputs(shape, dtype)
    scale = 1.0 / float(np.sqrt(shape["D"]))
    cands = candidates(spec, os.cpu_count() or 1)
    results = []
    for i, c in enumerate(cands):
        cpu.attention(q, k, v, spec, scale=scale, return_lse=False, **c)  # warm-up (planning, threads)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            cpu.attention(q, k, v, spec, scale=scale, return_lse=False, **c)
            times.append(time.perf_counter() - t0)
        results.append({"config": c, "time_ms": statistics.median(times) * 1e3})
        if progress:
            progress(i + 1, len(cands), c, results[-1]["time_ms"])
    best = min(results, key=lambda r: r["time_ms"])
    default = next(r for r in results if r["config"] == DEFAULT)
    return {"best": best, "default": default, "candidates": results, "dtype_run": used_dtype}


def _progress(i, n, cfg, ms):
    bar = "#" * int(20 * i / n)
    print(f"\r[{bar:<20}] {i}/{n} tile={cfg['tile']} threads={cfg['threads']}: {ms:.2f} ms   ",
          end="" if i < n else "\n", file=sys.stderr, flush=True)


def run(args) -> int:
    if args.backend != "cpu":
        raise UsageError(f"--backend {args.backend!r}: only the cpu backend has a tuner here "
                         "(Triton tiles, RVV LMUL and RoCC tiling are not searched by this command)")
    prof = profiles.get(args.profile, args.profiles_dir)
    shape = prof.shape(args.quick, **shape_overrides(args))
    spec = prof.spec(args.quick)
    dtype = prof.data["dtype"]
    res = tune_cpu(spec, shape, dtype, args.repeat, None if args.json else _progress)
    directory = cache_dir(args.cache_dir)
    data = read_cache(directory)
    key = cache_key("cpu", spec, shape, dtype)
    data["entries"][key] = {"config": res["best"]["config"], "time_ms": res["best"]["time_ms"],
                            "default_time_ms": res["default"]["time_ms"], "profile": prof.name,
                            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = write_cache(directory, data)
    out = {"profile": prof.name, "key": key, "cache": path, **res,
           "speedup_vs_default": res["default"]["time_ms"] / res["best"]["time_ms"]}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{prof.name}: {spec}, B={shape['B']} Hq={shape['Hq']} Hkv={shape['Hkv']} Lq={shape['Lq']} "
          f"Lk={shape['Lk']} D={shape['D']} {res['dtype_run']}")
    print(f"{'tile':>5} {'threads':>8} {'median ms':>10}")
    for r in sorted(res["candidates"], key=lambda r: r["time_ms"]):
        mark = " <- best" if r is res["best"] else (" (default)" if r["config"] == DEFAULT else "")
        print(f"{r['config']['tile']:>5} {r['config']['threads']:>8} {r['time_ms']:>10.3f}{mark}")
    print(f"tuned {res['best']['time_ms']:.3f} ms vs default {res['default']['time_ms']:.3f} ms "
          f"({out['speedup_vs_default']:.2f}x); cached in {path}")
    return 0
