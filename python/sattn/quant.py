"""Quantized attention: the scheme (Quant), its float64 error model (attention), calibration.

The error model is the contract of every backend's quantized path (docs/contract.md,
"Quantization"): it applies exactly the scheme's roundings and nothing else, then computes in
float64. For a call with scheme `quant` and optional static `scales`:

1. K smoothing (smooth_k): K <- K - mean over tokens of K, per (batch, kv head, channel). Each
   row's scores shift by a constant q.mean, so softmax is unchanged; the quantizer sees a centred K.
2. Scales: dynamic (no `scales`): symmetric, scale = amax / qmax over each group (granularity:
   "block" = `block` consecutive tokens x all channels, "token" = one token, "channel" = K per
   channel over the call's tokens, with K's channel scales folded into Q before Q is quantized
   per token, so an integer dot product stays exact). Static (scales from sattn.calibrate): no
   runtime amax at all; scale = clip / qmax with the calibrated clip per head (per head and
   channel for k and v under granularity="channel"; q's clip is then that of the folded Q), and
   values beyond the clip saturate.
3. Q, K to `qk`. int8: codes rint(x/scale) (round half to even) clipped to
   [-127, 127]; fp8_e4m3: x/scale rounded to float8 e4m3fn (round to nearest even, qmax 448).
   S = scale_attn * dequant(Q) . dequant(K)^T, exact in float64 (what an int32 accumulator holds).
4. V to `v` (the KV-cache format) when set: int8 codes in [-127, 127] or int4 codes in [-7, 7]
   (symmetric around 0, so -8 is never used), groups as in 3 (per block / token / channel);
   int4 codes are packed two per byte (pack_int4) and unpacked before use.
5. P = exp(S - rowmax) on visible pairs; the P.V operands are rounded to `pv`: fp32 rounds P and V
   to float32; bf16 rounds P (via float32) and V to bfloat16; fp8_e4m3 rounds 448*P to e4m3 (then
   /448) and V with one scale per (kv head, channel), amax / 448. out = (P~ . V~) / sum(P), with
   the unrounded float64 row sum (the accumulator a flash kernel keeps); lse = rowmax + log sum(P)
   + scale * q.mean(K) (the smoothing's row shift added back with unquantized q, so lse is that
   of the unsmoothed scores).

The visible set is the spec's (sattn.mask on the inputs as given), as in sattn.reference.
Quantized calls take finite inputs only: a scale computed over a NaN or Inf is meaningless, so
non-finite q, k or v is a ValueError naming the argument.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from sattn import _inputs
from sattn.mask import dense_mask_numpy

QK_FORMATS = ("int8", "fp8_e4m3")
PV_FORMATS = ("fp8_e4m3", "bf16", "fp32")
V_FORMATS = ("int8", "int4", None)
GRANULARITIES = ("block", "token", "channel")
METHODS = ("max", "percentile", "kl")
QMAX = {"int8": 127.0, "int4": 7.0, "fp8_e4m3": 448.0}
SCALES_SCHEMA = 1
HIST_BINS = 2048


class ScalesMismatch(ValueError):
    """A scales object (or file) that does not belong to this scheme, shape or dtype."""


@dataclasses.dataclass(frozen=True)
class Quant:
    """A quantization scheme: formats of Q.K^T (qk), of P.V (pv), of the stored V (v, None = V
    kept in the input dtype up to pv's rounding), the scale groups, K smoothing and the token
    block of granularity="block"."""

    qk: str = "int8"
    pv: str = "bf16"
    v: Optional[str] = None
    granularity: str = "block"
    smooth_k: bool = True
    block: int = 64

    def __post_init__(self):
        for name, allowed in (("qk", QK_FORMATS), ("pv", PV_FORMATS), ("v", V_FORMATS),
                              ("granularity", GRANULARITIES)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"quant.{name}: expected a string, got {type(value).__name__} {value!r}")
            if value not in allowed:
                raise ValueError(f"quant.{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        if not isinstance(self.smooth_k, (bool, np.bool_)):
            raise TypeError(f"quant.smooth_k: expected a bool, got {type(self.smooth_k).__name__} {self.smooth_k!r}")
        _inputs.check_int("quant.block", self.block, 1, 1 << 20)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def error_budget(quant: Quant) -> float:
    """The contract's bound on max |out - float64 out| / max |v| for N(0, 1) inputs with dynamic
    scales (docs/contract.md, "Quantization"; measured by tools/quant_error.py)."""
    check_quant(quant)
    if quant.v == "int4":
        return 0.08
    if "fp8_e4m3" in (quant.qk, quant.pv):
        return 0.05
    return 0.01 if quant.granularity in ("token", "channel") else 0.015


def check_quant(quant) -> Quant:
    if not isinstance(quant, Quant):
        raise TypeError(f"quant: expected a sattn.Quant, got {type(quant).__name__}")
    return quant


# ---- roundings ------------------------------------------------------------------------------------

def round_e4m3(x) -> np.ndarray:
    """x (float64) rounded to the nearest float8 e4m3fn value (ties to even), saturated at +-448.

    Numpy emulation, equal to torch's float8_e4m3fn cast (tested): 3 mantissa bits, exponent
    bias 7, subnormal step 2^-9."""
    x = np.clip(np.asarray(x, dtype=np.float64), -448.0, 448.0)
    _, e = np.frexp(x)                                    # |x| = f * 2^e, f in [0.5, 1)
    step = np.ldexp(1.0, np.maximum(e - 1, -6) - 3)       # normals: 2^(e-1-3); subnormals: 2^-9
    return np.rint(x / step) * step


def round_bf16(x) -> np.ndarray:
    """x rounded to float32, then to bfloat16 (ties to even), returned as float64."""
    u = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return u.view(np.float32).astype(np.float64)


def quantize_int(x, scale, qmax: float) -> np.ndarray:
    """Symmetric integer codes: rint(x / scale) (ties to even) clipped to [-qmax, qmax]."""
    return np.clip(np.rint(x / scale), -qmax, qmax)


def pack_int4(codes) -> np.ndarray:
    """int4 codes (..., D) in [-8, 7], D even -> uint8 (..., D/2): element 2i in the low nibble."""
    c = np.asarray(codes)
    if c.shape[-1] % 2:
        raise ValueError(f"codes: int4 packing needs an even last dimension, got {c.shape[-1]}")
    if c.size and (c.min() < -8 or c.max() > 7):
        raise ValueError("codes: int4 codes must lie in [-8, 7]")
    n = (c.astype(np.int64) & 0xF).astype(np.uint8)
    return n[..., 0::2] | (n[..., 1::2] << 4)


def unpack_int4(packed) -> np.ndarray:
    p = np.asarray(packed, dtype=np.uint8)
    lo = (p & 0xF).astype(np.int64)
    hi = (p >> 4).astype(np.int64)
    out = np.empty(p.shape[:-1] + (2 * p.shape[-1],), dtype=np.int64)
    out[..., 0::2] = np.where(lo > 7, lo - 16, lo)
    out[..., 1::2] = np.where(hi > 7, hi - 16, hi)
    return out


def _group_amax(x, granularity: str, block: int) -> np.ndarray:
    """amax broadcastable to x (B, H, L, D) over the scale groups."""
    a = np.abs(x)
    if granularity == "token":
        return a.max(axis=-1, keepdims=True)
    if granularity == "channel":
        return a.max(axis=-2, keepdims=True)
    B, H, L, D = x.shape
    nb = -(-L // block)
    pad = np.zeros((B, H, nb * block, D))
    pad[:, :, :L] = a
    m = pad.reshape(B, H, nb, block * D).max(axis=-1)            # (B, H, nb)
    return np.repeat(m, block, axis=-1)[:, :, :L, None]


def _safe(scale):
    return np.where(scale > 0, scale, 1.0)


def quantize_v(v, fmt: str, granularity: str, block: int, scale=None):
    """(codes, scale) of V in the KV-cache format, with dynamic group scales or the given static
    scale; int4 codes come back packed (uint8)."""
    if scale is None:
        scale = _safe(_group_amax(v, granularity, block) / QMAX[fmt])
    codes = quantize_int(v, scale, QMAX[fmt])
    return (pack_int4(codes) if fmt == "int4" else codes.astype(np.int8)), scale


def _static(c, channel: bool, qmax: float):
    """The static scale clip / qmax, broadcastable to (B, H, L, D): per head (H,) or per head and
    channel (H, D)."""
    c = np.asarray(c, dtype=np.float64) / qmax
    return c[None, :, None, :] if channel else c[None, :, None, None]


def _group_scale(x, fmt, granularity, block):
    return _safe(_group_amax(x, granularity, block) / QMAX[fmt])


def _codes(x, fmt):
    """x (already divided by its scale) on fmt's grid: e4m3 values, or integer codes."""
    return round_e4m3(x) if fmt == "fp8_e4m3" else quantize_int(x, 1.0, QMAX[fmt])


def _check_finite(name, x):
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: quantized attention takes finite values only (a scale over NaN/Inf is "
                         f"meaningless); this {name} holds NaN or Inf")


def smooth_k(k, on: bool):
    """Step 1 for a backend's float32 K: (K - its mean over tokens as float32, the mean (B, Hkv,
    1, D) float64); K unchanged and a zero mean when not `on`."""
    if not on:
        return k, np.zeros_like(k[:, :, :1], dtype=np.float64)
    kmean = k.astype(np.float64).mean(axis=-2, keepdims=True)
    return (k - kmean).astype(np.float32), kmean


def smoothing_shift(q, kmean, scale: float):
    """scale * q . mean(K) per row (B, Hq, Lq) float64: the row shift smoothing took out of the
    scores, added to the smoothed lse to give the unsmoothed one."""
    group = q.shape[1] // kmean.shape[1]
    return scale * np.einsum("bhqd,bhd->bhq", np.asarray(q, np.float64), np.repeat(kmean[:, :, 0], group, axis=1))


def require_scheme(quant: Quant, backend: str, wants) -> None:
    """QuantNotSupported naming the first (field, value, why) of `wants` that `quant` differs from."""
    from sattn.errors import QuantNotSupported
    for field, want, why in wants:
        got = getattr(quant, field)
        if got != want:
            raise QuantNotSupported(f"quant.{field}: the {backend} backend runs {field}={want!r} ({why}), got {got!r}")


def operands(q, k, v, quant: Quant, scales=None):
    """(Qeff, Keff, Veff, kmean) float64 with S = scale * Qeff . Keff^T and out ~ P~ . Veff: steps
    1-4 of the module's model (Keff, Veff, kmean (B, Hkv, 1, D) per kv head; kmean 0 without
    smooth_k)."""
    qn, kn, vn = (_inputs.to_numpy(x, np.float64) for x in (q, k, v))
    for name, x in (("q", qn), ("k", kn), ("v", vn)):
        _check_finite(name, x)
    group = qn.shape[1] // kn.shape[1]
    kmean = kn.mean(axis=-2, keepdims=True) if quant.smooth_k else np.zeros_like(kn[:, :, :1])
    kn = kn - kmean
    channel = quant.granularity == "channel"
    static = scales is not None
    if channel:
        # K per channel; its channel scales folded into Q, which is then quantized per token
        sk = (_static(scales.k, True, QMAX[quant.qk]) if static
              else _safe(np.abs(kn).max(axis=-2, keepdims=True) / QMAX[quant.qk]))        # (B|1, Hkv, 1, D)
        keff = _codes(kn / sk, quant.qk)
        qf = qn * np.repeat(sk, group, axis=1)
        sq = _static(scales.q, False, QMAX[quant.qk]) if static else _group_scale(qf, quant.qk, "token", quant.block)
        qeff = _codes(qf / sq, quant.qk) * sq
    else:
        sq, sk = ((_static(scales.q, False, QMAX[quant.qk]), _static(scales.k, False, QMAX[quant.qk])) if static
                  else (_group_scale(x, quant.qk, quant.granularity, quant.block) for x in (qn, kn)))
        qeff = _codes(qn / sq, quant.qk) * sq
        keff = _codes(kn / sk, quant.qk) * sk
    if quant.v is not None:
        vs = _static(scales.v, channel, QMAX[quant.v]) if static else None
        codes, vs = quantize_v(vn, quant.v, quant.granularity, quant.block, scale=vs)
        vn = (unpack_int4(codes) if quant.v == "int4" else codes.astype(np.float64)) * vs
    if quant.pv == "fp32":
        veff = vn.astype(np.float32).astype(np.float64)
    elif quant.pv == "bf16":
        veff = round_bf16(vn)
    else:
        vsc = (_static(scales.v, channel, QMAX["fp8_e4m3"]) if static
               else _safe(np.abs(vn).max(axis=-2, keepdims=True) / QMAX["fp8_e4m3"]))
        veff = round_e4m3(vn / vsc) * vsc
    return qeff, keff, veff, kmean


def _round_p(p, pv: str):
    if pv == "fp32":
        return p.astype(np.float32).astype(np.float64)
    if pv == "bf16":
        return round_bf16(p)
    return round_e4m3(p * 448.0) / 448.0


def attention(q, k, v, spec, quant: Quant, *, scale=None, scales=None, return_lse=False, rows=None):
    """The float64 quantized reference: out (B, Hq, R, D) [and lse (B, Hq, R)] numpy float64."""
    check_quant(quant)
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    if scales is not None:
        check_scales(scales, quant, prob)
    rows = np.arange(prob.Lq) if rows is None else np.asarray(rows, dtype=np.int64)
    mask = dense_mask_numpy(spec, q, k, rows=rows, scale=scale)
    qeff, keff, veff, kmean = operands(q, k, v, quant, scales)
    group = prob.Hq // prob.Hkv
    keff = np.repeat(keff, group, axis=1)
    veff = np.repeat(veff, group, axis=1)
    s = scale * np.einsum("bhqd,bhkd->bhqk", qeff[:, :, rows], keff)
    s = np.where(mask, s, -np.inf)
    empty = ~mask.any(axis=-1, keepdims=True)
    m = np.where(empty, 0.0, s.max(axis=-1, keepdims=True))
    p = np.exp(s - m)
    denom = p.sum(axis=-1, keepdims=True)
    safe = np.where(denom > 0, denom, 1.0)
    out = np.einsum("bhqk,bhkd->bhqd", _round_p(p, quant.pv), veff) / safe
    out = np.where(empty, 0.0, out)
    if not return_lse:
        return out
    # the scores before smoothing: add back scale * q.mean(k) (unquantized) per row
    shift = smoothing_shift(_inputs.to_numpy(q, np.float64)[:, :, rows], kmean, scale)
    return out, np.where(empty[..., 0], -np.inf, (m + np.log(safe))[..., 0] + shift)


def scheme_name(quant: Quant) -> str:
    """quant as qk/pv/granularity[/v=..][/no-smooth][/block=N] (fp8_e4m3 written fp8), the names
    of docs/contract.md's table; parse_scheme reads them back."""
    short = {"fp8_e4m3": "fp8"}
    parts = [short.get(quant.qk, quant.qk), short.get(quant.pv, quant.pv), quant.granularity]
    if quant.v is not None:
        parts.append(f"v={quant.v}")
    if not quant.smooth_k:
        parts.append("no-smooth")
    if quant.block != Quant.block:
        parts.append(f"block={quant.block}")
    return "/".join(parts)


def parse_scheme(name: str) -> Quant:
    """A Quant from its scheme_name (e.g. "int8/bf16/block/v=int8"); ValueError naming what is wrong."""
    if not isinstance(name, str):
        raise TypeError(f"scheme: expected a string like 'int8/bf16/block', got {type(name).__name__}")
    parts = name.split("/")
    if len(parts) < 3:
        raise ValueError(f"scheme: expected qk/pv/granularity[/v=int8|int4][/no-smooth][/block=N], got {name!r}")
    long = {"fp8": "fp8_e4m3"}
    fields = {"qk": long.get(parts[0], parts[0]), "pv": long.get(parts[1], parts[1]), "granularity": parts[2]}
    for extra in parts[3:]:
        if extra == "no-smooth":
            fields["smooth_k"] = False
        elif extra.startswith("v="):
            fields["v"] = extra[2:]
        elif extra.startswith("block=") and extra[6:].isdigit():
            fields["block"] = int(extra[6:])
        else:
            raise ValueError(f"scheme: unknown part {extra!r} in {name!r} (expected v=int8|int4, no-smooth or block=N)")
    return Quant(**fields)


# ---- synthetic inputs -----------------------------------------------------------------------------

SYNTHETIC_KINDS = ("normal", "outlier")


def outlier_channels(D: int) -> list:
    """The K channels synthetic("outlier") makes large: 3, 17, 40, 61 of 64, scaled to D."""
    return sorted({min(D - 1, c * D // 64) for c in (3, 17, 40, 61)})


def synthetic(kind: str, amp: float, shape, seed: int):
    """(q, k, v) float64 of shape (B, Hq, Hkv, L, D) = `shape`, the contract's two input
    distributions (docs/contract.md, "Quantization"): "normal", N(0, 1); "outlier", like LLM
    activations: q, k, v ~ amp * t(nu=3), and the outlier_channels(D) of K (the same in every
    head) at +-20 amp with a t(3) spread of 2 amp, mostly a per-channel offset (what K smoothing
    removes)."""
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, SYNTHETIC_KINDS))}, got {kind!r}")
    B, Hq, Hkv, L, D = (int(x) for x in shape)
    r = np.random.default_rng(seed)
    if kind == "normal":
        return tuple(r.standard_normal((B, h, L, D)) for h in (Hq, Hkv, Hkv))
    q, k, v = (amp * r.standard_t(3, size=(B, h, L, D)) for h in (Hq, Hkv, Hkv))
    ch = outlier_channels(D)
    k[..., ch] = 20.0 * amp * (np.sign(r.standard_normal(len(ch))) + 0.1 * k[..., ch] / amp)
    return q, k, v


def cache_bytes_per_token(quant: Optional["Quant"], D: int, dtype_bytes: int = 2) -> float:
    """Bytes one cached token (K and V of one kv head) takes under `quant` (None: unquantized,
    `dtype_bytes` per value): one-byte codes for K (int8 or e4m3), V in quant.v (int8, packed int4) or pv's
    precision, plus the scales (float32) the granularity stores per token (token: one each for
    K and V; block: one per `block` tokens; channel: per channel, amortised to 0 per token)."""
    if quant is None:
        return 2.0 * D * dtype_bytes
    k = float(D)  # int8 or e4m3: one byte a value
    v = {"int8": D * 1.0, "int4": D / 2.0}.get(quant.v, D * {"fp32": 4.0, "bf16": 2.0, "fp8_e4m3": 1.0}[quant.pv])
    per_tok = {"token": 4.0, "block": 4.0 / quant.block, "channel": 0.0}[quant.granularity]
    return k + v + per_tok * (2 if quant.v is not None else 1)


# ---- calibration ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Scales:
    """Static clip values from sattn.calibrate (scale = clip / qmax, module docstring step 2): q
    (Hq,), k and v (Hkv,) or (Hkv, D) under granularity="channel"; v is None when the scheme
    stores V unquantized with pv != fp8."""

    quant: Quant
    method: str
    q: np.ndarray
    k: np.ndarray
    v: Optional[np.ndarray]
    Hq: int
    Hkv: int
    D: int
    dtype: str
    percentile: float = 99.99

    def save(self, path) -> None:
        """Writes the versioned JSON scales file (schema, shapes, dtype, scheme, method, clips)."""
        doc = {"schema": "sattn.scales", "version": SCALES_SCHEMA, "quant": self.quant.to_dict(),
               "method": self.method, "percentile": self.percentile,
               "shape": {"Hq": self.Hq, "Hkv": self.Hkv, "D": self.D}, "dtype": self.dtype,
               "q": self.q.tolist(), "k": self.k.tolist(), "v": None if self.v is None else self.v.tolist()}
        with open(os.fspath(path), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


def _expected_shapes(quant: Quant, Hq: int, Hkv: int, D: int):
    per = (Hkv, D) if quant.granularity == "channel" else (Hkv,)
    return (Hq,), per, (per if _v_format(quant) is not None else None)


def _v_format(quant: Quant):
    return quant.v if quant.v is not None else ("fp8_e4m3" if quant.pv == "fp8_e4m3" else None)


def check_scales(scales, quant: Quant, prob=None) -> None:
    """ScalesMismatch unless `scales` was calibrated for `quant` and, given prob, for its heads,
    head dim and dtype."""
    if not isinstance(scales, Scales):
        raise TypeError(f"scales: expected a sattn.Scales (sattn.calibrate / sattn.load_scales), got "
                        f"{type(scales).__name__}")
    if scales.quant != quant:
        raise ScalesMismatch(f"scales: calibrated for {scales.quant}, but the call's quant is {quant}")
    if prob is not None:
        got = (scales.Hq, scales.Hkv, scales.D)
        want = (prob.Hq, prob.Hkv, prob.D)
        if got != want:
            raise ScalesMismatch(f"scales: calibrated for (Hq, Hkv, D) = {got}, but q, k are {want}")
        if scales.dtype != prob.dtype:
            raise ScalesMismatch(f"scales: calibrated on {scales.dtype} inputs, but q is {prob.dtype}")


def load_scales(path, quant: Optional[Quant] = None, *, shape=None, dtype: Optional[str] = None) -> Scales:
    """Reads a scales file; with quant / shape=(Hq, Hkv, D) / dtype given, refuses a file that
    does not match them (ScalesMismatch)."""
    with open(os.fspath(path)) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ScalesMismatch(f"path: {path} is not a sattn scales file ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != "sattn.scales":
        raise ScalesMismatch(f"path: {path} is not a sattn scales file")
    if doc.get("version") != SCALES_SCHEMA:
        raise ScalesMismatch(f"path: {path} has scales schema version {doc.get('version')!r}; this sattn reads "
                             f"version {SCALES_SCHEMA}")
    try:
        fq = Quant(**doc["quant"])
        sh = doc["shape"]
        Hq, Hkv, D = int(sh["Hq"]), int(sh["Hkv"]), int(sh["D"])
        arrs = [None if doc[n] is None else np.asarray(doc[n], dtype=np.float64) for n in ("q", "k", "v")]
        out = Scales(fq, doc["method"], arrs[0], arrs[1], arrs[2], Hq, Hkv, D, doc["dtype"],
                     float(doc["percentile"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ScalesMismatch(f"path: {path} is a malformed scales file ({type(e).__name__}: {e})") from None
    want = _expected_shapes(fq, Hq, Hkv, D)
    for n, a, w in zip(("q", "k", "v"), arrs, want):
        if (a is None) != (w is None) or (a is not None and (a.shape != w or not np.isfinite(a).all()
                                                                or (a <= 0).any())):
            raise ScalesMismatch(f"path: {path}: clips {n!r} should be positive finite values of shape {w}, "
                                 f"got {None if a is None else a.shape}")
    if quant is not None:
        check_quant(quant)
        if fq != quant:
            raise ScalesMismatch(f"path: {path} was calibrated for {fq}, not for {quant}")
    if shape is not None and tuple(shape) != (Hq, Hkv, D):
        raise ScalesMismatch(f"path: {path} was calibrated for (Hq, Hkv, D) = {(Hq, Hkv, D)}, not {tuple(shape)}")
    if dtype is not None and dtype != out.dtype:
        raise ScalesMismatch(f"path: {path} was calibrated on {out.dtype} inputs, not {dtype}")
    return out


def _codes_of(centres, t, fmt):
    """The quantized value index of each histogram bin centre for clip t (monotone in the centre)."""
    x = centres / t * QMAX[fmt]
    return round_e4m3(x) if fmt == "fp8_e4m3" else np.rint(x)


def _kl_threshold(hist, width, fmt) -> float:
    """TensorRT entropy calibration on one histogram of |x| (HIST_BINS bins of `width`): for each
    candidate clip i bins wide, P = hist[:i] with the clipped tail added to its last bin, Q = the
    same bins merged by quantized value (int levels or e4m3 values over [0, clip]) and spread
    evenly over each merged group's non-empty bins; the clip minimising KL(P || Q). Candidates
    run from 128 bins, every 16th then every one around the best."""
    hist = hist.astype(np.float64)
    nz = np.nonzero(hist)[0]
    if nz.size == 0:
        return width * HIST_BINS
    centres = (np.arange(HIST_BINS) + 0.5) * width

    def kl(i):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        codes = _codes_of(centres[:i], i * width, fmt)
        _, inv = np.unique(codes, return_inverse=True)
        used = (hist[:i] > 0).astype(np.float64)
        mass = np.bincount(inv, weights=hist[:i])
        count = np.bincount(inv, weights=used)
        qd = np.where(used > 0, mass[inv] / np.maximum(count[inv], 1.0), 0.0)
        ps, qs = p.sum(), qd.sum()
        if qs == 0:
            return np.inf
        p, qd = p / ps, qd / qs
        on = p > 0
        qd = np.where(on & (qd == 0), 1e-12, qd)      # TensorRT smooths empty Q bins the same way
        return float(np.sum(p[on] * np.log(p[on] / qd[on])))

    start = min(128, HIST_BINS)
    coarse = list(range(start, HIST_BINS + 1, 16)) + [HIST_BINS]
    best = min(coarse, key=kl)
    fine = range(max(start, best - 15), min(HIST_BINS, best + 15) + 1)
    best = min(fine, key=kl)
    return (best + 0.5) * width if best < HIST_BINS else best * width


def calibrate(samples, quant: Quant, method: str = "max", *, percentile: float = 99.99) -> Scales:
    """Static clips for `quant` from an iterable of (q, k, v) batches (shapes as sparse_attention's,
    the same Hq, Hkv, D and dtype in every batch; B and L may vary).

    method: "max" (the largest |x| seen), "percentile" (the `percentile`-th percentile of |x|,
    from a HIST_BINS-bin histogram, the bin's upper edge) or "kl" (TensorRT entropy calibration
    over the histogram, _kl_threshold). Statistics are per head (per head and channel for k and v
    under granularity="channel"), of k after smoothing when quant.smooth_k. The batches are held
    in memory for the two passes (amax, then histograms over [0, amax])."""
    check_quant(quant)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if isinstance(percentile, (bool, np.bool_)) or not isinstance(percentile, (int, float, np.floating)):
        raise TypeError(f"percentile: expected a number, got {type(percentile).__name__}")
    if not 0.0 < float(percentile) <= 100.0 or not np.isfinite(percentile):
        raise ValueError(f"percentile: expected a value in (0, 100], got {percentile!r}")
    if isinstance(samples, (str, bytes)) or not hasattr(samples, "__iter__"):
        raise TypeError(f"samples: expected an iterable of (q, k, v) batches, got {type(samples).__name__}")
    batches = []
    ref = None
    for i, item in enumerate(samples):
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise TypeError(f"samples[{i}]: expected a (q, k, v) tuple, got {type(item).__name__}")
        prob = _inputs.check_qkv(*item)
        key = (prob.Hq, prob.Hkv, prob.D, prob.dtype)
        if ref is None:
            ref = key
        elif key != ref:
            raise ValueError(f"samples[{i}]: (Hq, Hkv, D, dtype) = {key}, but samples[0] has {ref}")
        arrs = []
        for name, x in zip("qkv", item):
            a = _inputs.to_numpy(x, np.float64)
            if not np.isfinite(a).all():
                raise ValueError(f"samples[{i}].{name}: calibration data holds NaN or Inf")
            arrs.append(a)
        if quant.smooth_k:
            arrs[1] = arrs[1] - arrs[1].mean(axis=-2, keepdims=True)
        batches.append(arrs)
    if not batches:
        raise ValueError("samples: no (q, k, v) batch to calibrate on")
    Hq, Hkv, D, dtype = ref
    channel = quant.granularity == "channel"
    vfmt = _v_format(quant)

    def groups(a, per_channel):
        # (groups, values) view of |a| over batch and tokens: per head, or per head and channel
        a = np.abs(a).transpose(1, 3, 0, 2) if per_channel else np.abs(a).transpose(1, 0, 2, 3)
        return a.reshape(a.shape[0] * (a.shape[1] if per_channel else 1), -1)

    def clips(index, fmt, per_channel, H):
        shape = (H, D) if per_channel else (H,)
        amax = np.max([groups(b[index], per_channel).max(axis=1) for b in batches], axis=0)
        if method == "max":
            return np.where(amax > 0, amax, 1.0).reshape(shape)
        width = np.where(amax > 0, amax, 1.0) / HIST_BINS
        hist = np.zeros((amax.size, HIST_BINS))
        for b in batches:
            g = groups(b[index], per_channel)
            idx = np.minimum((g / width[:, None]).astype(np.int64), HIST_BINS - 1)
            for r in range(g.shape[0]):
                hist[r] += np.bincount(idx[r], minlength=HIST_BINS)
        out = np.empty(amax.size)
        for r in range(amax.size):
            if method == "percentile":
                cdf = np.cumsum(hist[r]) / hist[r].sum()
                out[r] = (np.searchsorted(cdf, float(percentile) / 100.0 - 1e-12) + 1) * width[r]
            else:
                out[r] = _kl_threshold(hist[r], width[r], fmt)
        return np.minimum(out, np.where(amax > 0, amax, 1.0)).reshape(shape)

    ck = clips(1, quant.qk, channel, Hkv)
    if channel:
        # Q is quantized after K's channel scales are folded in: calibrate that product
        group = Hq // Hkv
        sk = np.repeat(_static(ck, True, QMAX[quant.qk]), group, axis=1)
        for b in batches:
            b[0] = b[0] * sk
    cq = clips(0, quant.qk, False, Hq)
    cv = clips(2, vfmt, channel, Hkv) if vfmt is not None else None
    return Scales(quant, method, cq, ck, cv, Hq, Hkv, D, dtype, float(percentile))
