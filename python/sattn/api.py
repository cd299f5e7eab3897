"""sattn's front door: sparse_attention() dispatches one validated call to a backend."""
from __future__ import annotations

import numpy as np

from sattn import _inputs
from sattn import backends as _backends
from sattn import specs as S
from sattn.plan import check_block_fits


def backends() -> list:
    """Names of the backends that are built and usable here (e.g. ['reference', 'cpu'])."""
    return _backends.available()


def _pick_auto(prob) -> str:
    if prob.framework == "torch" and prob.device.startswith("cuda"):
        return "triton"
    return "cpu" if "cpu" in _backends.available() else "reference"


def _like(x, template, dtype_of):
    """Converts a backend's output to the framework, device and dtype of the caller's input."""
    if _inputs._is_torch(template):
        import torch
        t = x if _inputs._is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
        return t.to(device=template.device, dtype=dtype_of)
    a = _inputs.to_numpy(x) if _inputs._is_torch(x) else np.asarray(x)
    return a.astype(dtype_of, copy=False)


def sparse_attention(q, k, v, spec, *, backend: str = "auto", scale=None, return_lse: bool = False, quant=None,
                     scales=None, normalizer: str = "softmax", **options):
    """Attention restricted to `spec`'s visible pairs (docs/contract.md).

    q (B, Hq, Lq, D); k, v (B, Hkv, Lk, D); torch tensors or numpy arrays. Returns out with q's
    dtype (and framework/device), plus LSE (B, Hq, Lq) float32 when return_lse=True.

    Keywords: backend ('auto', or one of sattn.backends()); scale (a real number in float32's
    normal range [2^-126, 2^127], default 1/sqrt(D)); return_lse (bool); and the backend's own
    options, e.g. plan= (a sattn.plan() to reuse, checked against the call: sattn.plan.check_plan),
    tile= and threads= on cpu (the backend modules list theirs). Any other keyword is a TypeError
    naming it: torch SDPA's is_causal is the spec's causal=True (e.g. sattn.Dense(causal=True)),
    attn_mask is the spec (or plan=), enable_gqa is automatic (Hq a multiple of Hkv), dropout_p
    is not supported.

    Gradients (docs/contract.md, "Gradients"): differentiable in q, k, v (and through lse) on
    torch tensors. Host backends (reference, cpu, rvv, rocc, 'auto' on host tensors) go through
    the one custom op sattn::host_attention (sattn._op; torch.compile traces it without a graph
    break), whose backward reuses the forward's plan and LSE; triton has its own op. A backend
    with no backward raises sattn.GradientNotSupported naming it and the spec when a gradient is
    needed (an input requires grad with grad mode on).

    Quantization (docs/contract.md, "Quantization"): quant=sattn.Quant(...) runs the scheme, with
    dynamic scales, or static clips from scales=sattn.calibrate(...) / sattn.load_scales(...).
    Backends with a quantized path: sattn.api.QUANT_BACKENDS (each backend's page says which
    schemes it runs); others raise sattn.QuantNotSupported. Quantized calls have no backward
    (GradientNotSupported when a gradient is needed).

    Normalizers (docs/contract.md, "Normalizers"): normalizer='softmax' (the default), 'sigmoid'
    (out_i = sum_j sigmoid(s_ij - log Lk) v_j) or 'relu2' (out_i = sum_j relu(s_ij)^2 v_j / Lk)
    over the spec's visible pairs, forward and backward, on sattn.normalizers.BACKENDS; other
    backends, return_lse=True and quant= with a non-softmax normalizer raise
    sattn.NormalizerNotSupported.
    """
    S.check_spec(spec)
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a string, got {type(backend).__name__}")
    # SDPA keywords get their pointer before anything else; each backend's attention() checks
    # the rest against its own options.
    foreign = {key: val for key, val in options.items() if key in _inputs.FOREIGN_KEYWORDS}
    _inputs.check_options("sattn.sparse_attention", foreign)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    check_block_fits(spec, prob)
    if _check_normalizer(normalizer, backend, prob, return_lse, quant, scales) != "softmax":
        options = dict(options, normalizer=normalizer)
    if quant is not None or scales is not None:
        return _quantized(q, k, v, spec, prob, backend, scale, return_lse, quant, scales, options)
    if prob.framework == "torch" and backend != "triton" and not (backend == "auto" and prob.device.startswith("cuda")):
        from sattn import _op  # imports torch: only for torch inputs
        return _op.sparse_attention(q, k, v, spec, prob, backend, scale, return_lse, options)
    name = _pick_auto(prob) if backend == "auto" else backend
    mod = _backends.get(name)
    res = mod.attention(q, k, v, spec, scale=scale, return_lse=return_lse, **options)
    out_dtype = q.dtype
    out = _like(res.out, q, out_dtype)
    if not return_lse:
        return out
    if _inputs._is_torch(q):
        import torch
        lse = _like(res.lse, q, torch.float32)
    else:
        lse = np.asarray(_inputs.to_numpy(res.lse) if _inputs._is_torch(res.lse) else res.lse, dtype=np.float32)
    return out, lse


def _check_normalizer(normalizer, backend, prob, return_lse, quant, scales) -> str:
    """The normalizer's name; NormalizerNotSupported for what a non-softmax one cannot do."""
    from sattn import normalizers as N
    from sattn.errors import NormalizerNotSupported
    normalizer = N.check(normalizer)
    if normalizer == "softmax":
        return normalizer
    name = _pick_auto(prob) if backend == "auto" else backend
    if name not in N.BACKENDS:
        raise NormalizerNotSupported(f"backend: {name!r}{' (auto)' if backend == 'auto' else ''} runs only "
                                     f"normalizer='softmax', got {normalizer!r}; backends with every normalizer: "
                                     f"{', '.join(N.BACKENDS)}")
    if return_lse:
        raise NormalizerNotSupported(f"return_lse: normalizer={normalizer!r} has no log-sum-exp (only softmax "
                                     f"has one); call with return_lse=False")
    if quant is not None or scales is not None:
        raise NormalizerNotSupported(f"quant: quantized calls run normalizer='softmax' only, got {normalizer!r}")
    return normalizer


# Backends with a quantized path; the reference's is the float64 error model (sattn.quant), the
# others' modules define quantized_attention(q, k, v, spec, *, quant, scales, scale, **options).
QUANT_BACKENDS = ("reference", "cpu", "rocc", "rvv")


def _quantized(q, k, v, spec, prob, backend, scale, return_lse, quant, scales, options):
    from sattn import quant as Q
    from sattn.errors import QuantNotSupported
    if quant is None:
        raise ValueError("scales: given without quant=; pass the sattn.Quant the scales were calibrated for")
    Q.check_quant(quant)
    if scales is not None:
        Q.check_scales(scales, quant, prob)
    name = _pick_auto(prob) if backend == "auto" else backend
    if name not in QUANT_BACKENDS:
        raise QuantNotSupported(f"backend: {name!r}{' (auto)' if backend == 'auto' else ''} has no quantized path "
                                f"for {quant}; backends with one: {', '.join(QUANT_BACKENDS)}")
    if prob.framework == "torch":
        _inputs.check_no_grad(name, q, k, v)
    if name == "reference":
        _inputs.check_options(f"the quantized {name} backend", options)
        out, lse = Q.attention(q, k, v, spec, quant, scale=scale, scales=scales, return_lse=True)
    else:
        res = _backends.get(name).quantized_attention(q, k, v, spec, quant=quant, scales=scales, scale=scale,
                                                      **options)
        out, lse = res.out, res.lse
    out = _like(out, q, q.dtype)
    if not return_lse:
        return out
    if _inputs._is_torch(q):
        import torch
        return out, _like(lse, q, torch.float32)
    return out, lse.astype(np.float32)
