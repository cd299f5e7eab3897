"""The GPU backend: Triton kernels of gpu/sattn_triton (forward, backward, decode, device planners).

Takes torch CUDA tensors (or CPU tensors under TRITON_INTERPRET=1, the CI mode) and returns torch
tensors; differentiable in q, k, v through the `sattn::sparse_attention` op. Options:
  plan=<sattn.BlockPlan | GpuPlan>  reuse a plan (across layers/steps); else planned on the device
  tile=64                           block edge for specs without their own block (TopKPerQuery,
                                    BigBird/Dense/SlidingWindow when force_plan=True)
  force_plan=False                  run Dense/SlidingWindow through a plan instead of the
                                    specialised planless kernels
  fwd_tiles=None                    the forward's launch (BLOCK_M, BLOCK_N, num_warps, num_stages)
                                    instead of the kernels' table; a call without it (and
                                    without plan/tile) runs what `sattn autotune --backend triton`
                                    cached for this GPU, shape, spec and dtype (sattn.tuning)
docs/backends/gpu.md has the design, tolerances and the H100 benchmark table.
"""
from __future__ import annotations

import os
import sys
import time

from sattn import _inputs, tuning
from sattn import specs as S
from sattn.backends.base import BackendResult
from sattn.plan import BlockPlan, check_plan, check_tile

NAME = "triton"
TAKES_TORCH = True


def _import_kernels():
    import importlib.util
    if "sattn_triton" not in sys.modules and importlib.util.find_spec("sattn._triton") is not None:
        # Installed from the wheel, the kernels are sattn/_triton; they import one another as
        # sattn_triton (their name in the repository), so that name is this package.
        sys.modules["sattn_triton"] = importlib.import_module("sattn._triton")
    try:
        import sattn_triton  # noqa: F401  (Bazel puts gpu/ on the path)
    except ImportError:
        # Running from a source checkout without Bazel: gpu/ sits beside python/.
        here = os.path.dirname(os.path.abspath(__file__))
        gpu = os.path.normpath(os.path.join(here, "..", "..", "..", "gpu"))
        if os.path.isdir(os.path.join(gpu, "sattn_triton")) and gpu not in sys.path:
            sys.path.insert(0, gpu)
    from sattn_triton import ops
    return ops


def available():
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as e:
        return False, f"torch/triton not importable ({e})"
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if not torch.cuda.is_available() and not interp:
        return False, "no CUDA device (TRITON_INTERPRET=1 runs the kernels on CPU tensors, slowly)"
    try:
        _import_kernels()
    except ImportError as e:
        return False, f"gpu/sattn_triton not importable ({e})"
    return True, ""


def _check_call(where, q, k, v, spec, scale, plan, tile, force_plan, options):
    """The shared argument checks; returns (scale, tile, plan) resolved."""
    import torch
    _inputs.check_options(where, options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: the triton backend takes torch tensors, got {type(x).__name__}")
    prob = _inputs.check_qkv(q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    checked_tile = None if tile is None else check_tile(tile)
    _inputs.check_bool("force_plan", force_plan)
    if isinstance(plan, BlockPlan):
        plan = check_plan(plan, spec, prob, tile=checked_tile, scale=scale)
    if isinstance(spec, S.USER_SPECS):
        # The specs users write (and MoBA) are planned on the host, with per-pair bitmaps that the
        # kernels must read: the device planners know only the five contract specs.
        if plan is None:
            from sattn.plan import plan as host_plan
            plan = host_plan(spec, q, k, tile=64 if checked_tile is None else checked_tile, scale=scale)
        if isinstance(plan, BlockPlan):
            plan = _import_kernels().P.from_host(plan, q.device, bitmap_masks=True)
    return scale, 64 if checked_tile is None else checked_tile, plan


def attention(q, k, v, spec, *, scale, return_lse, plan=None, tile: int | None = None,
              force_plan: bool = False, fwd_tiles=None, **options):
    given_tile = tile
    scale, tile, plan = _check_call("the triton backend", q, k, v, spec, scale, plan, tile, force_plan, options)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    tuned = None
    if plan is None and given_tile is None:
        tuned = tuning.tuned_options(NAME, {"fwd_tiles": fwd_tiles}, tuning.triton_device(q.device), spec,
                                     _inputs.check_qkv(q, k, v))
    if tuned is not None:
        fwd_tiles = None if tuned["fwd_tiles"] is None else tuple(tuned["fwd_tiles"])
    out, lse = _import_kernels().attention(q, k, v, spec, scale=scale, plan=plan, tile=tile, force_plan=force_plan,
                                           fwd_tiles=fwd_tiles)
    return BackendResult(out=out, lse=lse if return_lse else None, counters={"tuned": int(tuned is not None)})


def visible_pairs(q, k, spec, *, scale, plan=None, tile: int | None = None, force_plan: bool = False, **options):
    """Visible pairs this backend attends, counted on the device (`bench` uses it for FLOPs where
    the host planner cannot load, e.g. a GPU machine whose Python differs from this build's)."""
    scale, tile, plan = _check_call("the triton backend's visible_pairs", q, k, k, spec, scale, plan, tile,
                                    force_plan, options)
    return _import_kernels().visible_pairs(q, k, spec, scale=scale, plan=plan, tile=tile,
                                           force_plan=force_plan)


# ---- peers for `bench --compare` -----------------------------------------------------------------

def cuda_time(fn, repeat: int):
    """(fn()'s last result, median seconds of fn() over `repeat` runs), timed with CUDA events
    after one warm-up call."""
    import torch
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(max(1, repeat)):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        out = fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return out, times[len(times) // 2]


def flex_mask_mod(spec, q, k, *, scale, plan=None, tile: int = 128):
    """(mask_mod, block) for FlexAttention expressing the same visible set as `spec`.

    Token-rule specs become a closed-form mask_mod; block-selected specs (BlockTopK, BigBird) a
    lookup into the kept-block table computed by torch ops (for BlockTopK: the same pooled scores
    and top-k as our device planner, i.e. "torch selection").
    """
    ops = _import_kernels()
    from sattn_triton import plans as P
    Lq, Lk = q.shape[2], k.shape[2]
    off = Lk - Lq
    kind = type(spec).__name__
    causal = bool(spec.causal)
    if kind in ("Dense", "SlidingWindow"):
        launch = ops.spec_launch(spec)

        def mask_mod(b, h, qi, kj):   # the kernels' token rule, in torch (ops.token_rule)
            return ops.token_rule(qi + off, kj, Lk, launch)
        return mask_mod, tile
    gp = plan if plan is not None else ops.make_plan(q, k, spec, scale=scale, tile=tile)
    if not isinstance(gp, P.GpuPlan):
        gp = P.from_host(gp, q.device, bitmap_masks=kind == "TopKPerQuery")
    table = P.to_block_table(gp)            # (plan_b, plan_h, nqb, nkb) bool on the device
    blk, qbb = gp.block, gp.q_block_begin
    pb, ph = gp.plan_b, gp.plan_h
    if gp.bitmap_masks:
        raise ValueError("spec: FlexAttention peer needs a block-level spec (not TopKPerQuery)")

    def mask_mod(b, h, qi, kj):
        p = qi + off
        keep = table[b if pb > 1 else 0, h if ph > 1 else 0, p // blk - qbb, kj // blk]
        return keep & (kj <= p) if causal else keep
    return mask_mod, blk


def _flex_peer(q, k, v, spec, *, scale, repeat: int, **options):
    """FlexAttention with a BlockMask of the same visible set, built once outside the timing (for
    BlockTopK from our device plan's block table: the timed row has no selection in it)."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    t0 = time.perf_counter()
    mask_mod, blk = flex_mask_mod(spec, q, k, scale=scale, plan=options.get("plan"),
                                  tile=options.get("tile", 128))
    # Compiled mask construction: eager create_block_mask evaluates mask_mod on all Lq x Lk pairs.
    bm = create_block_mask(mask_mod, B, Hq, Lq, k.shape[2], device=q.device, BLOCK_SIZE=blk, _compile=True)
    torch.cuda.synchronize()
    t_mask = time.perf_counter() - t0
    flex = torch.compile(flex_attention)
    t0 = time.perf_counter()
    out = flex(q, k, v, block_mask=bm, scale=scale, enable_gqa=Hq != Hkv)
    torch.cuda.synchronize()
    t_compile = time.perf_counter() - t0
    _, t = cuda_time(lambda: flex(q, k, v, block_mask=bm, scale=scale, enable_gqa=Hq != Hkv), repeat)
    selected = type(spec).__name__ in ("BlockTopK", "TopKPerQuery")
    return BackendResult(out=out, time_s=t, name="flex_attention",
                         note=(("mask from our selection, built once, not timed; " if selected else "")
                               + f"create_block_mask {t_mask:.2f} s + first-call compile {t_compile:.1f} s one-off"))


def bench_peers(q, k, v, spec, *, scale, repeat: int, **options):
    """FlexAttention (create_block_mask with the same mask) and SDPA flash (dense) on the same
    tensors. Each row's note gives the one-off mask/compile cost measured in this process."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    rows = []
    if q.device.type != "cuda":
        return rows
    if type(spec).__name__ in ("BlockTopK", "TopKPerQuery") and options.get("plan") is None:
        # Our own attention with the selection done once outside the timing: the like-for-like
        # row for the Flex peer below, whose mask is also built once (the backend's own row
        # selects on every call).
        ops = _import_kernels()
        gp = ops.make_plan(q, k, spec, scale=scale, tile=options.get("tile", 64))
        fixed = lambda: ops.attention(q, k, v, spec, scale=scale, plan=gp)  # noqa: E731
        (out, _), t = cuda_time(fixed, repeat)
        rows.append(BackendResult(out=out, time_s=t, name="triton_plan_reused",
                                  note="selection once, not timed (like the flex row)"))
    try:
        rows.append(_flex_peer(q, k, v, spec, scale=scale, repeat=repeat, **options))
    except Exception as e:  # a peer that cannot run is reported, never the end of the bench
        first = (str(e).strip().splitlines() or [""])[0][:200]
        rows.append(BackendResult(out=None, time_s=None, name="flex_attention",
                                  note=f"failed: {type(e).__name__}: {first}"))
    B, Hq, Lq, D = q.shape
    Hkv = k.shape[1]
    causal = bool(spec.causal)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fn = lambda: F.scaled_dot_product_attention(q, k, v, scale=scale, is_causal=causal and Lq == k.shape[2],
                                                    enable_gqa=Hq != Hkv)
        out, t = cuda_time(fn, repeat)
    rows.append(BackendResult(out=out, time_s=t, name="sdpa_flash_dense" + ("_causal" if causal else ""),
                              note="dense (all keys" + (", causal" if causal else "") + ")"))
    return rows
