"""Backend registry: names -> modules implementing sattn.backends.base (imported lazily)."""
from __future__ import annotations

import importlib

# Every backend sattn knows; which ones are usable here is `available()`.
KNOWN = ("reference", "cpu", "triton", "rvv", "rocc")


class BackendUnavailable(RuntimeError):
    """A known backend that is not built or cannot run on this machine."""


def _load(name: str):
    try:
        return importlib.import_module(f"sattn.backends.{name}")
    except ImportError as e:
        raise BackendUnavailable(f"backend '{name}' is not built into this installation ({e})") from e


def status() -> dict:
    """{name: (usable, reason)} for every known backend."""
    out = {}
    for name in KNOWN:
        try:
            mod = _load(name)
            ok, reason = mod.available()
        except BackendUnavailable as e:
            ok, reason = False, str(e)
        except Exception as e:  # a backend's probe must not break listing
            ok, reason = False, f"{type(e).__name__}: {e}"
        out[name] = (bool(ok), reason)
    return out


def available() -> list:
    return [name for name, (ok, _) in status().items() if ok]


def get(name: str):
    """The backend module for `name`; ValueError for unknown names, BackendUnavailable if not usable."""
    if name not in KNOWN:
        raise ValueError(f"backend: expected one of {', '.join(KNOWN)}, got {name!r}")
    mod = _load(name)
    ok, reason = mod.available()
    if not ok:
        usable = ", ".join(available()) or "none"
        raise BackendUnavailable(f"backend '{name}' is not available here: {reason} (available: {usable})")
    return mod
