"""The autotune cache: the configurations `sattn autotune` measured best, read back by the backends.

One JSON file, `$XDG_CACHE_HOME/sattn/autotune.json` (default `~/.cache/sattn`), holding
{"version": LAYOUT_VERSION, "entries": {key: entry}}. A key names the backend, the device (CPU
model and cores, QEMU VLEN, the accelerator's memory model, the GPU's name), the shape, the spec,
the input dtype and the sattn version, so an entry measured by another release or on another
machine never matches. An entry holds "config" (the backend's tunable options) and the figures the
search measured.

A backend call that gives none of its tunable options (TUNABLES) takes the cached configuration of
its key as a whole, and says so in its counters ("tuned": 1); a call that gives any of them runs
exactly what it was given. A cache file that cannot be read is skipped with one warning: a call
never fails because of it.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import warnings

CACHE_FILE = "autotune.json"
LAYOUT_VERSION = 1

# Per backend: the options a search chooses (and a call's cache lookup fills), and their defaults.
TUNABLES = {
    "cpu": ("tile", "threads"),
    "rvv": ("tile", "chunk_keys"),
    "rocc": ("tile", "path"),
    "triton": ("fwd_tiles",),
}
DEFAULTS = {
    "cpu": {"tile": 64, "threads": 0},
    "rvv": {"tile": 64, "chunk_keys": 512},
    "rocc": {"tile": 64, "path": "fused"},
    "triton": {"fwd_tiles": None},  # None: the kernels' shape rule (sattn_triton.forward.fwd_tiles)
}


def cache_dir(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sattn")


def cache_path(directory: str | None = None) -> str:
    return os.path.join(cache_dir(directory), CACHE_FILE)


@functools.lru_cache(maxsize=1)
def cpu_device() -> str:
    """The host CPU: its model name and core count (what the CPU backend's speed depends on)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} x{os.cpu_count()}"


def rvv_device(vlen: int) -> str:
    """QEMU's riscv64 core at `vlen`: instruction counts depend on VLEN only, not on the host."""
    return f"qemu-riscv64 VLEN={int(vlen)}"


def rocc_device(latency: int, bytes_per_cycle: float, mac_rows: int, mac_cols: int) -> str:
    """The simulated accelerator: its MAC array and the memory model its cycles depend on."""
    return f"rocc {mac_rows}x{mac_cols} latency={int(latency)} bytes_per_cycle={float(bytes_per_cycle):g}"


def triton_device(device) -> str:
    import torch
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"triton interpreter {cpu_device()}"


def shape_of(prob) -> dict:
    return {"B": prob.B, "Hq": prob.Hq, "Hkv": prob.Hkv, "Lq": prob.Lq, "Lk": prob.Lk, "D": prob.D}


def key(backend: str, device: str, spec, shape: dict, dtype: str) -> str:
    from sattn._version import __version__
    sh = ",".join(f"{k}={shape[k]}" for k in ("B", "Hq", "Hkv", "Lq", "Lk", "D"))
    return f"{backend}|{device}|{sh}|{spec!r}|{dtype}|sattn {__version__}"


def empty() -> dict:
    return {"version": LAYOUT_VERSION, "entries": {}}


class CacheError(ValueError):
    """The cache file exists but is not a cache of this layout (or not JSON)."""


def read(directory: str | None = None) -> dict:
    """The whole cache ({"version", "entries"}); empty when there is no file; CacheError when the
    file is not one this release can read."""
    path = cache_path(directory)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return empty()
    return _read_file(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _read_file(path: str, mtime_ns: int, size: int) -> dict:
    # Keyed by mtime and size: a call re-reads the file only after `sattn autotune` rewrote it.
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CacheError(f"autotune cache {path} is unreadable ({e}); delete it to start over") from e
    if not isinstance(data, dict) or data.get("version") != LAYOUT_VERSION or not isinstance(data.get("entries"), dict):
        version = data.get("version") if isinstance(data, dict) else None
        raise CacheError(f"autotune cache {path} has another layout (version {version!r}, this release reads "
                         f"{LAYOUT_VERSION}); delete it")
    return data


def write(data: dict, directory: str | None = None) -> str:
    """Replaces the cache file atomically (a reader never sees half a file); returns its path."""
    path = cache_path(directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def store(entry_key: str, entry: dict, directory: str | None = None) -> str:
    """Adds or replaces one entry (entry["config"] is the configuration); returns the file's path."""
    from sattn._version import __version__
    data = read(directory)
    data["entries"][entry_key] = dict(entry, sattn_version=__version__)
    return write(data, directory)


def lookup(entry_key: str, backend: str, directory: str | None = None) -> dict | None:
    """The cached configuration under `entry_key`, or None (no file, no entry, or an entry whose
    configuration is not `backend`'s tunables or was written by another sattn version)."""
    from sattn._version import __version__
    data = read(directory)
    entry = data["entries"].get(entry_key)
    if not isinstance(entry, dict) or entry.get("sattn_version") != __version__:
        return None
    config = entry.get("config")
    if not isinstance(config, dict) or set(config) != set(TUNABLES[backend]):
        return None
    return dict(config)


_warned = set()


def tuned_options(backend: str, given: dict, device: str, spec, prob) -> dict | None:
    """For a backend call: the cached configuration when the caller gave none of the backend's
    tunables (`given`: option name -> value, None when not given) and the cache has one for this
    call's key; else None. An unreadable cache file warns once and is skipped."""
    if any(given.get(name) is not None for name in TUNABLES[backend]):
        return None
    try:
        return lookup(key(backend, device, spec, shape_of(prob), prob.dtype), backend)
    except CacheError as e:
        if str(e) not in _warned:
            _warned.add(str(e))
            warnings.warn(f"{e}; calls run the default configuration", RuntimeWarning, stacklevel=3)
        return None
