"""The fast CPU backend: shared planner + fused online-softmax kernels (cc/cpu), via sattn._cc."""
from __future__ import annotations

import time

import numpy as np

from sattn import _inputs, tuning
from sattn import normalizers as N
from sattn import specs as S
from sattn.backends.base import BackendGrads, BackendResult
from sattn.plan import BlockPlan, check_plan, check_tile, plan as build_plan

NAME = "cpu"
DTYPES = ("float32", "bfloat16")


def available():
    try:
        from sattn import _cc  # noqa: F401
    except ImportError as e:
        return False, f"sattn._cc extension not built ({e})"
    return True, ""


def _as_kernel_input(x, dtype: str) -> np.ndarray:
    """fp32 as is; bf16 as its uint16 bit pattern (numpy has no bf16)."""
    if dtype == "bfloat16":
        import torch
        return np.ascontiguousarray(x.detach().cpu().contiguous().view(torch.int16).numpy().view(np.uint16))
    return _inputs.to_numpy(x, np.float32)


def attention(q, k, v, spec, *, scale, return_lse, plan: BlockPlan | None = None, tile: int | None = None,
              threads: int | None = None, normalizer: str = "softmax", **options):
    """Options: plan (a sattn.plan() to reuse, checked against the call), tile (block edge for
    specs without their own block; default 64, or the plan's), threads (0 = one per core, the
    default), normalizer ('softmax', 'sigmoid' or 'relu2': sattn.normalizers; the last two
    return lse = 0 on rows that see a key, -inf on rows that see none, as a row marker). A call with neither tile nor threads (nor a plan) runs the configuration `sattn
    autotune --backend cpu` cached for this machine, shape, spec and dtype, if any (sattn.tuning;
    counter "tuned")."""
    from sattn import _cc
    _inputs.check_options("the cpu backend", options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    prob = _host_problem(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    tuned = None if plan is not None else tuning.tuned_options(
        NAME, {"tile": tile, "threads": threads}, tuning.cpu_device(), spec, prob)
    if tuned is not None:
        tile, threads = tuned["tile"], tuned["threads"]
    threads = 0 if threads is None else threads
    tile = None if tile is None else check_tile(tile)
    threads = _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    normalizer = N.check(normalizer)
    if normalizer == "relu2":
        _check_relu2_range(q, k, v, scale)
    dtype = prob.dtype if prob.dtype in DTYPES else "float32"
    t0 = time.perf_counter()
    plan = _call_plan(plan, spec, q, k, prob, tile, scale, threads)
    t1 = time.perf_counter()
    out, lse = _cc.attention_cpu(_as_kernel_input(q, dtype), _as_kernel_input(k, dtype), _as_kernel_input(v, dtype),
                                 plan.to_dict(), prob.shape_tuple, scale, dtype, threads, return_lse, normalizer)
    t2 = time.perf_counter()
    if dtype == "bfloat16":
        import torch
        out = torch.from_numpy(out.view(np.int16)).view(torch.bfloat16)
    counters = {"plan_ns": int((t1 - t0) * 1e9), "kernel_ns": int((t2 - t1) * 1e9), "nnz_blocks": plan.nnz,
                "tuned": int(tuned is not None), "tile": plan.block, "threads": threads}
    return BackendResult(out=out, lse=lse, counters=counters, plan=plan)


def _host_problem(q, k, v):
    """The call's checked shape; q, k, v on the host and none of them asking for a gradient."""
    prob = _inputs.check_qkv(q, k, v)
    if prob.device != "cpu":
        raise ValueError(f"q: the cpu backend needs host tensors, got device {prob.device}")
    _inputs.check_no_grad(NAME, q, k, v)
    return prob


def _call_plan(plan, spec, q, k, prob, tile, scale, threads) -> BlockPlan:
    """The plan to run: `plan` checked against the call, or one built with `tile` (default 64)."""
    if plan is None:
        return build_plan(spec, q, k, tile=64 if tile is None else tile, scale=scale, threads=threads)
    return check_plan(plan, spec, prob, tile=tile, scale=scale)


def _check_relu2_range(q, k, v, scale) -> None:
    """ValueError naming scale when relu(s)^2 * |v| could overflow float32: the float32 range rule
    of docs/contract.md ("Non-finite inputs", rule 3) for the squared score. Finite rows only."""
    norms = []
    for x in (q, k, v):
        a = _inputs.to_numpy(x, np.float64)
        n = np.sqrt((np.where(np.isfinite(a), a, 0.0) ** 2).sum(axis=-1))
        norms.append(float(n.max()) if n.size else 0.0)
    bound = (float(scale) * norms[0] * norms[1]) ** 2 * norms[2]
    if bound > float(np.finfo(np.float32).max) / 2:
        raise ValueError(f"scale: normalizer='relu2' squares scores up to {float(scale) * norms[0] * norms[1]:.3g} "
                         f"(scale * max|q| * max|k|), times max|v| = {norms[2]:.3g}: past float32's range; use a "
                         f"smaller scale or inputs")


# What the quantized kernel runs (cc/cpu/kernel_int8.inc): int8 Q.K^T, P.V in fp32 or bf16,
# V unquantized or as int8 / int4 codes, every granularity, with or without K smoothing.
QUANT_SUPPORTED = {"qk": ("int8",), "pv": ("fp32", "bf16"), "v": (None, "int8", "int4")}
_V_QMAX = {None: 0, "int8": 127, "int4": 7}
QUANT_ISAS = ("avx512_vnni", "avx2", "portable")


def check_quant_supported(quant) -> None:
    """sattn.QuantNotSupported naming the first field of `quant` the cpu backend cannot run."""
    from sattn.errors import QuantNotSupported
    for field, allowed in QUANT_SUPPORTED.items():
        value = getattr(quant, field)
        if value not in allowed:
            raise QuantNotSupported(f"quant.{field}: the cpu backend runs {field} in "
                                    f"{', '.join(map(repr, allowed))}, got {value!r} (backend='reference' runs "
                                    f"every scheme)")


def quant_isa() -> str:
    """The quantized kernel this CPU runs: 'avx512_vnni', 'avx2' or 'portable'."""
    from sattn import _cc
    return _cc.quant_cpu_isa()


def quantized_attention(q, k, v, spec, *, quant, scales=None, scale, return_lse: bool = True,
                        plan: BlockPlan | None = None, tile: int | None = None, threads: int = 0,
                        isa: str | None = None, **options):
    """The quantized forward (docs/contract.md, "Quantization"; model: sattn.quant.attention):
    int8 Q.K^T with exact int32 dot products (AVX-512 VNNI vpdpbusd or AVX2 vpmaddubsw, chosen
    at run time), softmax in fp32, P.V in quant.pv (bf16: vdpbf16ps where the CPU has it), over
    the same plan as attention(). q, k, v are quantized per call (dynamic scales) or with the
    static clips of `scales`. Options as attention(), and isa: None (the best kernel this CPU
    runs, quant_isa()) or one of QUANT_ISAS. out is float32 numpy."""
    from sattn import _cc
    from sattn import quant as Q
    _inputs.check_options("the quantized cpu backend", options, _inputs.keyword_options(quantized_attention))
    S.check_spec(spec)
    Q.check_quant(quant)
    check_quant_supported(quant)
    prob = _host_problem(q, k, v)
    if scales is not None:
        Q.check_scales(scales, quant, prob)
    scale = _inputs.resolve_scale(scale, prob.D)
    tile = None if tile is None else check_tile(tile)
    threads = _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    if isa is not None and isa not in QUANT_ISAS:
        raise ValueError(f"isa: expected None or one of {', '.join(map(repr, QUANT_ISAS))}, got {isa!r}")
    t0 = time.perf_counter()
    plan = _call_plan(plan, spec, q, k, prob, tile, scale, threads)
    t1 = time.perf_counter()
    clips = (None, None, None) if scales is None else (scales.q, scales.k, scales.v if quant.v else None)
    qa, ka, va = (_inputs.to_numpy(x, np.float32) for x in (q, k, v))
    out, lse = _cc.attention_cpu_quant(qa, ka, va, plan.to_dict(), prob.shape_tuple, scale, threads, return_lse,
                                       quant.granularity, quant.block, bool(quant.smooth_k), quant.pv,
                                       _V_QMAX[quant.v], *clips, isa=isa or "")
    t2 = time.perf_counter()
    counters = {"plan_ns": int((t1 - t0) * 1e9), "kernel_ns": int((t2 - t1) * 1e9), "nnz_blocks": plan.nnz}
    return BackendResult(out=out, lse=lse, counters=counters, plan=plan, note=f"quantized kernel {isa or quant_isa()}")


def attention_backward(q, k, v, out, lse, dout, dlse, plan, *, scale, tile: int | None = None, threads: int = 0,
                       normalizer: str = "softmax", **options):
    """dq, dk, dv (float32) over the forward's plan: the multithreaded kernels of
    cc/cpu/attention_backward.cc (dq by query block, dk/dv by key block over the transposed plan;
    deterministic, no atomics). Inputs are float32 arrays (sattn._op widens bf16/fp16 exactly);
    a row whose lse is not finite contributes nothing. tile is the forward's option (unused here);
    normalizer is the forward's (dlse is ignored unless softmax: the others return no lse)."""
    from sattn import _cc
    _inputs.check_options("the cpu backend's attention_backward", options, ())
    if not isinstance(plan, BlockPlan):
        raise TypeError(f"plan: expected the forward's sattn.BlockPlan, got {type(plan).__name__}")
    threads = _inputs.check_threads(threads)
    B, Hq, Lq, D = q.shape
    shape = (B, Hq, k.shape[1], Lq, k.shape[2], D)
    arrays = [None if x is None else np.ascontiguousarray(x, dtype=np.float32) for x in (q, k, v, out, lse, dout, dlse)]
    t0 = time.perf_counter()
    normalizer = N.check(normalizer)
    if normalizer != "softmax":
        arrays[-1] = None
    dq, dk, dv = _cc.attention_backward_cpu(*arrays, plan.to_dict(), shape, float(scale), threads, normalizer)
    t1 = time.perf_counter()
    return BackendGrads(dq=dq, dk=dk, dv=dv, counters={"kernel_ns": int((t1 - t0) * 1e9)})


def median_time(fn, repeat):
    """(fn()'s last result, median wall seconds of fn() over `repeat` runs) after one warm-up call
    (the first allocates, compiles or plans)."""
    fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return out, times[len(times) // 2]


def bench_peers(q, k, v, spec, *, scale, repeat, tile=64, **options):
    """torch SDPA dense (and causal), SDPA given the equivalent boolean mask, and FlexAttention on CPU."""
    import torch
    import torch.nn.functional as F

    prob = _inputs.check_qkv(q, k, v)
    scale = float(scale)
    tq, tk, tv = (x if _inputs._is_torch(x) else torch.from_numpy(np.asarray(x)) for x in (q, k, v))
    gqa = prob.Hq != prob.Hkv
    peers = []

    def sdpa(**kw):
        return F.scaled_dot_product_attention(tq, tk, tv, scale=scale, enable_gqa=gqa, **kw)

    with torch.no_grad():
        dense_flops = 4.0 * prob.D * prob.B * prob.Hq * prob.Lq * prob.Lk
        _, t = median_time(lambda: sdpa(), repeat)
        peers.append(BackendResult(out=None, time_s=t, name="sdpa_dense", counters={"flops": dense_flops},
                                   note="dense attention (different function)"))
        if spec.causal or isinstance(spec, S.SlidingWindow):
            if prob.Lq == prob.Lk:
                _, t = median_time(lambda: sdpa(is_causal=True), repeat)
                causal_flops = 4.0 * prob.D * prob.B * prob.Hq * prob.Lq * (prob.Lq + 1) / 2
                peers.append(BackendResult(out=None, time_s=t, name="sdpa_causal", counters={"flops": causal_flops},
                                           note="dense causal (different function)"))
        elements = prob.B * prob.Hq * prob.Lq * prob.Lk
        if elements > 2**31:
            peers.append(BackendResult(out=None, name="sdpa_masked", note=f"skipped: L x L mask of {elements} elements"))
            return peers
        mask = torch.from_numpy(build_plan(spec, q, k, tile=tile, scale=scale).to_dense_mask())
        out, t = median_time(lambda: sdpa(attn_mask=mask), repeat)
        # SDPA gives NaN on rows with no visible key; the contract says zeros.
        out = torch.nan_to_num(out, nan=0.0)
        peers.append(BackendResult(out=out, time_s=t, name="sdpa_masked", note="SDPA with the boolean mask"))
        peers.append(_flex_peer(tq, tk, tv, mask, scale, gqa, repeat))
    return peers


def _flex_peer(tq, tk, tv, mask, scale, gqa, repeat):
    """FlexAttention (torch.compile'd, CPU inductor) with a block mask built from the same mask."""
    try:
        import torch
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        B, H, Lq, Lk = mask.shape

        def mask_mod(b, h, q_idx, kv_idx):
            return mask[b, h, q_idx, kv_idx]

        t0 = time.perf_counter()
        block_mask = create_block_mask(mask_mod, B, H, Lq, Lk, device="cpu")
        compiled = torch.compile(flex_attention)
        compiled(tq, tk, tv, block_mask=block_mask, scale=scale, enable_gqa=gqa)
        setup = time.perf_counter() - t0
        out, t = median_time(lambda: compiled(tq, tk, tv, block_mask=block_mask, scale=scale, enable_gqa=gqa), repeat)
        return BackendResult(out=torch.nan_to_num(out, nan=0.0), time_s=t, name="flex_attention",
                             note=f"one-off mask build + compile {setup:.1f} s")
    except Exception as e:  # report, don't hide: the row says why there is no number
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        return BackendResult(out=None, name="flex_attention", note=f"did not run on CPU: {type(e).__name__}: {msg}")
