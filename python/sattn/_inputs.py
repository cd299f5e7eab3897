"""Input checking shared by every entry point: rank, dtype, device, head and length agreement.

Accepts torch tensors and numpy arrays. Every error names the argument and what was expected,
and is raised before any work is done.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

SUPPORTED_DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclasses.dataclass(frozen=True)
class Problem:
    """Validated shape of a call: q (B,Hq,Lq,D), k/v (B,Hkv,Lk,D)."""

    B: int
    Hq: int
    Hkv: int
    Lq: int
    Lk: int
    D: int
    dtype: str            # "float32", "bfloat16", ...
    framework: str        # "torch" or "numpy"
    device: str           # "cpu", "cuda:0", ...

    @property
    def shape_tuple(self):
        return (self.B, self.Hq, self.Hkv, self.Lq, self.Lk, self.D)


def _is_torch(x) -> bool:
    t = type(x)
    return t.__module__.startswith("torch") and t.__name__ in ("Tensor", "Parameter", "FakeTensor", "FunctionalTensor")


def dtype_name(x) -> str:
    if _is_torch(x):
        return str(x.dtype).replace("torch.", "")
    return str(x.dtype)


def describe(x) -> str:
    if _is_torch(x) or isinstance(x, np.ndarray):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {dtype_name(x)}"
    return type(x).__name__


def check_qkv(q, k, v) -> Problem:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not (_is_torch(x) or isinstance(x, np.ndarray)):
            raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {describe(x)}")
        if x.ndim != 4:
            what = "(B, Hq, Lq, D)" if name == "q" else "(B, Hkv, Lk, D)"
            raise ValueError(f"{name}: expected rank 4 {what}, got rank {x.ndim} with shape {tuple(x.shape)}")
        if dtype_name(x) not in SUPPORTED_DTYPES:
            raise TypeError(f"{name}: expected dtype in {SUPPORTED_DTYPES}, got {dtype_name(x)}")
    frameworks = {"torch" if _is_torch(x) else "numpy" for x in (q, k, v)}
    if len(frameworks) != 1:
        raise TypeError("q, k, v: expected all torch tensors or all numpy arrays, got a mix")
    if len({dtype_name(x) for x in (q, k, v)}) != 1:
        raise TypeError(f"q, k, v: expected one dtype, got q={dtype_name(q)}, k={dtype_name(k)}, v={dtype_name(v)}")
    framework = frameworks.pop()
    device = "cpu"
    if framework == "torch":
        devices = {str(x.device) for x in (q, k, v)}
        if len(devices) != 1:
            raise ValueError(f"q, k, v: expected one device, got {sorted(devices)}")
        device = devices.pop()
    B, Hq, Lq, D = q.shape
    Bk, Hkv, Lk, Dk = k.shape
    if Bk != B:
        raise ValueError(f"k: batch {Bk} does not match q's batch {B}")
    if Dk != D:
        raise ValueError(f"k: head_dim {Dk} does not match q's head_dim {D}")
    if tuple(v.shape) != tuple(k.shape):
        raise ValueError(f"v: expected the shape of k {tuple(k.shape)}, got {tuple(v.shape)}")
    if min(B, Hq, Lq, D, Hkv, Lk) < 1:
        raise ValueError(f"q, k: every dimension must be >= 1, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if Hq % Hkv != 0:
        raise ValueError(f"q: query heads Hq={Hq} must be a multiple of kv heads Hkv={Hkv} (GQA)")
    if Lq > Lk:
        raise ValueError(f"q: Lq={Lq} must be <= Lk={Lk} (queries are the last Lq positions)")
    return Problem(int(B), int(Hq), int(Hkv), int(Lq), int(Lk), int(D), dtype_name(q), framework, device)


def resolve_scale(scale, D: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale: expected a float or None, got {type(scale).__name__}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale: expected a finite float > 0, got {scale}")
    return float(scale)


def to_numpy(x, dtype=None) -> np.ndarray:
    """Host numpy view/copy of a tensor (bfloat16 is widened to float32: numpy has no bf16)."""
    if _is_torch(x):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        x = t.numpy()
    a = np.asarray(x)
    return np.ascontiguousarray(a if dtype is None else a.astype(dtype, copy=False))
