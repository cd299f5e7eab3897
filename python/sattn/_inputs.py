"""Input checking shared by every entry point: rank, dtype, device, head and length agreement.

Accepts torch tensors and numpy arrays. Every error names the argument and what was expected,
and is raised before any work is done.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import numbers

import numpy as np

from sattn import _limits
from sattn.errors import GradientNotSupported

SUPPORTED_DTYPES = ("float32", "bfloat16", "float16", "float64")

# Keywords of torch's scaled_dot_product_attention, FlexAttention and flash-attn that sattn does
# not take, with what does the same job here: a call passing them must not silently drop them.
FOREIGN_KEYWORDS = {
    "is_causal": "causality is part of the spec: spec=sattn.Dense(causal=True), or causal=True on any spec",
    "causal": "causality is part of the spec: spec=sattn.Dense(causal=True), or causal=True on any spec",
    "attn_mask": "the visible set comes from the spec (Dense, SlidingWindow, BlockTopK, BigBird, TopKPerQuery; "
                 "sattn.dense_mask(spec, q, k) shows it) or from plan=sattn.plan(spec, q, k)",
    "mask": "the visible set comes from the spec (sattn.dense_mask(spec, q, k) shows it) or from "
            "plan=sattn.plan(spec, q, k)",
    "block_mask": "the visible set comes from the spec or from plan=sattn.plan(spec, q, k)",
    "window_size": "a local window is spec=sattn.SlidingWindow(window=..., causal=...)",
    "dropout_p": "attention dropout is not supported",
    "dropout": "attention dropout is not supported",
    "score_mod": "score modifications are not supported (the contract's scores are scale * q.k)",
    "softmax_scale": "pass scale=",
    "enable_gqa": "GQA is automatic: q may have any multiple of k's heads (Hq % Hkv == 0)",
}


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
    return x.dtype.name  # '>f4' is float32 too: numpy converts the byte order on the way in


def describe(x) -> str:
    if _is_torch(x) or isinstance(x, np.ndarray):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {dtype_name(x)}"
    return type(x).__name__


def check_qkv(q, k, v) -> Problem:
    """The validated Problem of q, k, v; TypeError/ValueError naming the argument otherwise."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not (_is_torch(x) or isinstance(x, np.ndarray)):
            raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {describe(x)}")
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{name}: expected a plain numpy.ndarray, got a MaskedArray (its mask would be "
                            "ignored; the visible set comes from the spec)")
        if _is_torch(x) and str(x.layout) != "torch.strided":
            raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {x.layout}")
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
    _limits.check_sizes(int(B), int(Hq), int(Hkv), int(Lq), int(Lk), int(D))
    if framework == "torch" and device.startswith("meta"):
        raise ValueError("q, k, v: expected tensors with data, got device 'meta'")
    return Problem(int(B), int(Hq), int(Hkv), int(Lq), int(Lk), int(D), dtype_name(q), framework, device)


def resolve_scale(scale, D: int) -> float:
    """The call's scale as a float: 1/sqrt(D) for None; any real number (Python, numpy scalar or
    0-d array, 0-d torch tensor) that float32 represents as a normal number in [2^-126, 2^127]:
    the kernels compute scale * q.k in float32, so a larger one overflows every score."""
    if scale is None:
        return 1.0 / math.sqrt(D)
    if type(scale) in (float, int):  # checked first: torch.compile traces this, not _is_torch's module name
        return _checked_scale(scale, scale)
    if _is_torch(scale):
        if scale.ndim != 0:
            raise TypeError(f"scale: expected a number or a 0-d tensor, got a tensor of shape {tuple(scale.shape)}")
        if scale.requires_grad and _grad_enabled():
            raise GradientNotSupported("scale: requires_grad=True, but no sattn backend differentiates "
                                       "with respect to scale; pass scale.detach() or a float")
        if scale.dtype.is_complex or str(scale.dtype) == "torch.bool":
            raise TypeError(f"scale: expected a real number, got a tensor of dtype {scale.dtype}")
        scale = scale.item()
    elif isinstance(scale, np.ndarray):
        if scale.ndim != 0:
            raise TypeError(f"scale: expected a number or a 0-d array, got an array of shape {scale.shape}")
        scale = scale[()]
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale: expected a real number or None, got {type(scale).__name__} {scale!r}")
    return _checked_scale(float(scale), scale)


def _checked_scale(value, given) -> float:
    value = float(value)
    if not (math.isfinite(value) and _limits.MIN_SCALE <= value <= _limits.MAX_SCALE):
        raise ValueError(f"scale: expected a finite float > 0 in float32's normal range [2^-126, 2^127], "
                         f"got {given!r}")
    return value


def _grad_enabled() -> bool:
    import torch
    return torch.is_grad_enabled()


def check_no_grad(backend: str, q, k, v) -> None:
    """GradientNotSupported when a backend module's attention() is called directly on inputs that
    require grad (torch grad mode on): its output is detached. sattn.sparse_attention is the
    differentiable entry point (sattn._op)."""
    if not _is_torch(q) or not _grad_enabled():
        return
    for name, x in (("q", q), ("k", k), ("v", v)):
        if _is_torch(x) and x.requires_grad:
            raise GradientNotSupported(
                f"{name}: requires_grad=True, but sattn.backends.{backend}.attention() returns a detached output "
                f"(no gradient); call sattn.sparse_attention(..., backend={backend!r}) for gradients, or pass "
                f"{name}.detach()")


def check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_int(name: str, value, lo: int, hi: int) -> int:
    """value as an int; TypeError for non-integers (bools too), ValueError outside [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {value}")
    return int(value)


def check_threads(threads) -> int:
    return check_int("threads", threads, 0, _limits.MAX_THREADS)


@functools.lru_cache(maxsize=None)
def keyword_options(fn) -> tuple:
    """The options a backend's attention() takes: its keyword parameters past scale/return_lse."""
    params = inspect.signature(fn).parameters.values()
    return tuple(sorted(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY
                        and p.name not in ("scale", "return_lse")))


def check_options(where: str, options: dict, accepted=()) -> None:
    """TypeError naming the first keyword of `options` not in `accepted`, listing the accepted
    ones; torch SDPA / FlexAttention / flash-attn keywords say what does their job in sattn."""
    for key in sorted(options):
        if key in accepted:
            continue
        if key in FOREIGN_KEYWORDS:
            raise TypeError(f"{key}: not a sattn keyword ({where}): {FOREIGN_KEYWORDS[key]}")
        close = difflib.get_close_matches(key, accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(accepted) if accepted else "none"
        raise TypeError(f"{key}: unknown option for {where}{hint}; accepted options: {listed}")


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
