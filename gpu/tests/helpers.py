"""Shared helpers of the gpu/ tests: device choice, the float64 torch reference, tolerances.

Import this module before anything that imports Triton: without a CUDA device it turns on
TRITON_INTERPRET=1 so the same kernels run on CPU tensors (Triton reads the variable when a
kernel is decorated).
"""
import math
import os
import sys

import numpy as np
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

# Outside Bazel (e.g. `python -m pytest gpu/tests` on the GPU machine) find the packages in-tree.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "gpu"), os.path.join(_ROOT, "python")):
    if _p not in sys.path:
        sys.path.append(_p)

import sattn  # noqa: E402
from sattn import _schema  # noqa: E402
from sattn.mask import dense_mask  # noqa: E402

# A machine without Bazel (the GPU box) can be handed a prebuilt sattn/_cc.so in this folder.
if os.environ.get("SATTN_CC_DIR") and os.path.exists(os.path.join(os.environ["SATTN_CC_DIR"], "_cc.so")):
    sattn.__path__.append(os.environ["SATTN_CC_DIR"])

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ON_GPU = DEVICE.type == "cuda"


def has_host_planner() -> bool:
    try:
        from sattn import _cc  # noqa: F401
        return True
    except ImportError:
        return False


# Max error allowed, relative to max(1, max |reference|) of the compared tensor. The inputs are
# rounded to the dtype first and the reference sees the same rounded values in float64, so the
# error is the kernel's own: fp32 accumulation plus P (and dS) rounded to the input dtype before
# the second matmul. bf16 keeps 8 mantissa bits (2^-8 = 3.9e-3 relative per rounding).
# The values are spec/schema.json's tolerances.gpu (docs/backends/gpu.md shows the table).
TOL = {getattr(torch, name): dict(t) for name, t in _schema.TOLERANCES["gpu"]["dtypes"].items()}


def make_qkv(B, Hq, Hkv, Lq, Lk, D, dtype, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, Lq, D, generator=g).to(dtype).to(DEVICE)
    k = torch.randn(B, Hkv, Lk, D, generator=g).to(dtype).to(DEVICE)
    v = torch.randn(B, Hkv, Lk, D, generator=g).to(dtype).to(DEVICE)
    return [x.requires_grad_(requires_grad) for x in (q, k, v)]


def reference(q, k, v, spec, scale=None, mask=None):
    """float64 torch attention over sattn.dense_mask (the contract), differentiable: the autograd
    judge for gradients. Returns (out, lse) as float64 CPU tensors that track q, k, v copies."""
    D = q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    if mask is None:
        mask = dense_mask(spec, q.detach().float().cpu(), k.detach().float().cpu(), scale=scale)
    m = torch.from_numpy(np.ascontiguousarray(mask))
    g = q.shape[1] // k.shape[1]
    kk = k.repeat_interleave(g, 1)
    vv = v.repeat_interleave(g, 1)
    s = scale * q @ kk.transpose(-1, -2)
    s = s.masked_fill(~m, -math.inf)
    lse = torch.logsumexp(s, -1)
    safe = torch.where(torch.isinf(lse), 0.0, lse)
    p = torch.where(m, torch.exp(s - safe[..., None]), 0.0)
    return p @ vv, lse


def leaf64(x):
    return x.detach().double().cpu().requires_grad_()


def rel_err(got, ref) -> float:
    got = got.detach().double().cpu()
    ref = ref.detach().double().cpu()
    both_inf = torch.isinf(got) & torch.isinf(ref) & (torch.sign(got) == torch.sign(ref))
    diff = torch.where(both_inf, 0.0, (got - ref).abs())
    finite = ref[torch.isfinite(ref)]
    denom = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
    return float(diff.max()) / denom if diff.numel() else 0.0
