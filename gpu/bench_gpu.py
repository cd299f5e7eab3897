"""H100 benchmark of the triton backend against FlexAttention and SDPA flash, in one process.

  python gpu/bench_gpu.py --lengths 32768,8192 --cases static,sliding --out /tmp/bench
  (or bazel run //gpu:bench_gpu -- ...)

Cases (B=1, H=16, D=128, bf16 unless flags say otherwise), each timed forward and
forward+backward with CUDA events: --rounds interleaved rounds (ours, peer, ours, peer, ...),
each the median of --repeat calls after a warm-up; the median round is reported.
  static_block_sparse  12.5% of 128-blocks per query block, random per head (seed 0), non-causal;
                       sattn uses a plan built once from the block table, Flex a BlockMask built
                       from the same table (all kept blocks full, as create_block_mask finds).
  sliding_window       SlidingWindow(1024, causal=True): sattn's planless path vs Flex with a
                       BlockMask from full/partial block tables plus the mask_mod for partial
                       blocks (checked equal to create_block_mask's at L=1024 in the run).
  block_topk_e2e       BlockTopK(block=128, keep=0.125): sattn (device selection + attention)
                       vs torch selection (same pooled scores, topk) + create_block_mask + Flex.
  dense                Dense (non-causal and causal) vs SDPA flash.
  decode               Lq=1, Lk=131072, 12.5% static blocks: GB/s of K/V read vs HBM peak; also
                       dense and GQA 4:1 dense decode (packed groups vs SATTN_GQA_PACK=0).
  sweep                tile sweeps of sattn alone (--sweep_cases at --sweep_len), all ranked by
                       kernel time (torch.profiler): forward configs, dq and dk/dv configs with
                       delta fused or separate, and the one-launch backward (SATTN_BWD_FUSED);
                       the best are used for the later cases of the same run (and recorded).
                       Lists can be replaced with SWEEP_FWD / SWEEP_DQ / SWEEP_KV
                       ("m,n,warps,stages;..."), the delta modes with SWEEP_DELTA; SWEEP_PREFETCH (0,1)
                       repeats the static sweep with plan entries read one tile ahead
                       (SATTN_PLAN_PREFETCH), SWEEP_WALK_LOOPS (3,2,1) the sliding one per
                       planless loop structure (SATTN_WALK_LOOPS); each kernel keeps the setting
                       it was fastest under.
  timeline             kernel timeline of two static-plan fwd+bwd steps, sattn and Flex.
  hostprof             cProfile of the host side of eager calls (L=4096).
One-off costs (Triton JIT, BlockMask construction, torch.compile of flex_attention) are timed
separately and never included in the medians. Extra memory is torch.cuda.max_memory_allocated
above the inputs. Rows go to <out>/bench_gpu.json as they are measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_HERE, os.path.join(os.path.dirname(_HERE), "python")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import sattn  # noqa: E402
from sattn_triton import ops  # noqa: E402
from sattn_triton import plans as P  # noqa: E402

ROWS = []
H100_HBM3_GBPS = 3350.0   # NVIDIA H100 SXM5 80GB HBM3 datasheet peak


def cuda_time(fn, repeat):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def b2b_time(fn, repeat):
    """(device ms per call, host ms per call) for `repeat` calls issued back to back with no sync
    between them (triton.testing.do_bench style): the host's Python/launch work overlaps the GPU's,
    so the device time is what a training loop sees once the GPU is the bottleneck. The host time
    is the Python + launch cost of one call (measured before the final sync)."""
    fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    host = (time.perf_counter() - t0) * 1e3 / repeat
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / repeat, host


def first_call(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = fn()
    torch.cuda.synchronize()
    return r, time.perf_counter() - t0


def extra_memory(fn):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def record(out_dir, **row):
    row.setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    ROWS.append(row)
    print(json.dumps(row), flush=True)
    with open(os.path.join(out_dir, "bench_gpu.json"), "w") as f:
        json.dump({"env": ENV, "rows": ROWS}, f, indent=1)


def fwd_bwd(attn, q, k, v, dout):
    def run():
        for x in (q, k, v):
            x.grad = None
        out = attn(q, k, v)
        out.backward(dout)
    return run


def sw_pairs(L, window):
    # causal window: query p sees min(p + 1, window) keys
    w = min(window, L)
    return w * (w + 1) // 2 + (L - w) * w


def flex_setup():
    """A fresh compiled flex_attention per case: every case has its own mask_mod, and dynamo's
    recompile limit (8) would otherwise drop later cases to the unfused eager fallback."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    torch._dynamo.reset()
    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 64)
    return create_block_mask, torch.compile(flex_attention)


# Backward sweep: dq configs and dk/dv configs are timed per kernel (torch.profiler) in the same
# fwd+bwd call, so N runs rate N dq configs and N dk/dv configs; the best of each is combined.
# (BLOCK_M, BLOCK_N, num_warps, num_stages); dq tiles are (queries, keys), dk/dv (queries, keys).
DQ_CONFIGS = [(64, 64, 4, 3), (128, 64, 8, 3), (128, 32, 4, 3), (128, 64, 8, 2),
              (64, 32, 4, 4), (128, 128, 8, 2), (64, 64, 4, 4), (128, 32, 8, 4)]
KV_CONFIGS = [(64, 64, 4, 3), (64, 128, 8, 3), (32, 128, 4, 3), (64, 128, 8, 2),
              (32, 64, 4, 4), (128, 128, 8, 2), (32, 128, 4, 5), (64, 128, 4, 3)]
FWD_CONFIGS = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2), (128, 64, 4, 3),
               (64, 64, 4, 3), (128, 32, 4, 4), (64, 128, 4, 3), (128, 64, 8, 4)]
if os.environ.get("SWEEP_DQ"):   # "m,n,w,s;m,n,w,s;..." replaces the lists above for one run
    DQ_CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ["SWEEP_DQ"].split(";")]
    KV_CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ["SWEEP_KV"].split(";")]
    FWD_CONFIGS = [tuple(int(x) for x in c.split(",")) for c in os.environ["SWEEP_FWD"].split(";")]
BEST = {}   # case -> {"fwd": cfg, "bwd": cfg8}


def kernel_times(fn, names, iters=3):
    """Mean device time (ms) per call of the kernels whose name contains each of `names`."""
    from torch.profiler import ProfilerActivity, profile as tprof
    fn()
    torch.cuda.synchronize()
    with tprof(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    out = {n: 0.0 for n in names}
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None)
        if t is None:
            t = getattr(e, "cuda_time_total", 0.0)
        for n in names:
            if n in e.key:
                out[n] += t / 1e3 / iters
    return out


def sweep_case(args, case, L):
    """Fills BEST[case] from forward and backward tile sweeps of sattn alone (no peers), once per
    setting of one knob: static, the plan prefetch (SWEEP_PREFETCH "0", "1" or "0,1";
    SATTN_PLAN_PREFETCH for every kernel); sliding, the planless loop structure (SWEEP_WALK_LOOPS,
    default "3,2,1"; SATTN_WALK_LOOPS for every kernel). Each setting only changes the kernel it
    is applied to, so the forward, dq and dk/dv choices are made separately, each with the setting
    it was fastest under (`choose_sweep`); the one-launch backward wins only if it beats that."""
    B, Hh, D = 1, args.heads, args.head_dim
    q, k, v = make(B, Hh, L, L, D)
    dout = torch.randn_like(q)
    if case == "static":
        kept, _ = static_table(L, Hh, 128)
        plan = P.from_block_table(kept, B=B, Hq=Hh, Lq=L, Lk=L, block=128, causal=False)
        ours = lambda q, k, v: ops.attention(q, k, v, sattn.Dense(), plan=plan)[0]  # noqa: E731
    else:
        spec = sattn.SlidingWindow(window=1024, causal=True)
        ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
    parts = {}   # part -> (cost ms, config, setting[, delta mode])
    # Prefetch only changes plan walks, the loop structure only planless ones.
    if case == "static":
        knob, settings = "SATTN_PLAN_PREFETCH", os.environ.get("SWEEP_PREFETCH", "0,1").split(",")
    else:
        knob, settings = "SATTN_WALK_LOOPS", os.environ.get("SWEEP_WALK_LOOPS", "3,2,1").split(",")
    for setting in settings:
        os.environ[knob] = setting
        for part, found in _sweep_tiles(args, case, L, ours, q, k, v, dout, knob, setting).items():
            if found is not None and (part not in parts or found[0] < parts[part][0]):
                parts[part] = found
    BEST[case] = choose_sweep(parts, knob)
    ENV.setdefault("chosen_tiles", {})[f"{case}_L{L}"] = BEST[case]
    print(f"# {case} L={L}: chosen {BEST[case]}", flush=True)
    for name in ("SATTN_FWD_TILES", "SATTN_BWD_TILES", "SATTN_PLAN_PREFETCH", "SATTN_WALK_LOOPS"):
        os.environ.pop(name, None)


def choose_sweep(parts, knob="SATTN_PLAN_PREFETCH"):
    """The tiles BEST holds for a case, from each part's best over the knob's settings
    ({'fwd': (ms, cfg, setting), 'dq': (ms, cfg, setting, delta), 'dkdv': (ms, cfg, setting),
    'fused': (ms, cfg, setting)}, as `_sweep_tiles` returns them): forward, dq and dk/dv each
    with the setting it was fastest under; the one-launch backward only if it beats the split.
    knob SATTN_PLAN_PREFETCH: settings "0"/"1", BEST's 'prefetch' lists the kernels that read
    ahead; SATTN_WALK_LOOPS: settings "1"/"2"/"3", BEST's 'walk_loops' is "fwd=n,dq=n,dkdv=n"
    (the one-launch backward runs its dq and dk/dv halves with its own setting). None if a part
    never ran."""
    if not {"fwd", "dq", "dkdv"} <= parts.keys():
        return None
    split = parts["dq"][0] + parts["dkdv"][0]
    fused = "fused" in parts and parts["fused"][0] < split
    best = dict(fwd=parts["fwd"][1], bwd=parts["dq"][1] + parts["dkdv"][1], delta=parts["dq"][3],
                fused=False, prefetch="0", cost_ms=parts["fwd"][0] + split)
    setting = {name: parts[name][2] for name in ("fwd", "dq", "dkdv")}
    if fused:
        best.update(bwd=parts["fused"][1], delta="separate", fused=True,
                    cost_ms=parts["fwd"][0] + parts["fused"][0])
        setting.update(dq=parts["fused"][2], dkdv=parts["fused"][2], fused=parts["fused"][2])
    if knob == "SATTN_WALK_LOOPS":
        best["walk_loops"] = ",".join(f"{name}={setting[name]}" for name in ("fwd", "dq", "dkdv"))
    else:
        kernels = ("fwd", "fused") if fused else ("fwd", "dq", "dkdv")
        best["prefetch"] = ",".join(name for name in kernels if setting[name] == "1") or "0"
    return best


def _sweep_tiles(args, case, L, ours, q, k, v, dout, knob, setting):
    """One sweep (forward configs, dq x dk/dv configs with delta fused or separate, the one-launch
    backward) under the current environment (knob=setting); returns each part's best as
    {'fwd': (ms, cfg, setting), 'dq': (dq + delta ms, cfg, setting, delta mode), 'dkdv': (ms, cfg,
    setting), 'fused': (delta + fused ms, dq cfg + dk/dv cfg, setting)}, a part missing if nothing
    ran."""
    tag = {knob.lower().replace("sattn_", ""): setting}   # recorded with every row
    best = {}
    for cfg in FWD_CONFIGS:
        os.environ["SATTN_FWD_TILES"] = ",".join(map(str, cfg))
        try:
            # Kernel time (profiler), not event time around the call: host overhead is the same
            # for every config and only added noise to this choice (run 9 picked a slower tile).
            with torch.no_grad():
                t = kernel_times(lambda: ours(q, k, v), ["_fwd_kernel"])["_fwd_kernel"]
        except Exception as e:  # a config may not fit shared memory / registers
            print(f"# fwd config {cfg} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        record(args.out, case=f"sweep_fwd_{case}", L=L, system="sattn_triton", config=list(cfg), fwd_ms=t,
               **tag)
        if "fwd" not in best or t < best["fwd"][0]:
            best["fwd"] = (t, cfg, setting)
    if "fwd" not in best:
        return best
    os.environ["SATTN_FWD_TILES"] = ",".join(map(str, best["fwd"][1]))
    # delta = rowsum(dO*O) either inside the dq kernel ("fused") or in its own launch ("separate"):
    # the dq cost compared is dq + delta kernel time.
    for delta_mode in os.environ.get("SWEEP_DELTA", "fused,separate").split(","):
        os.environ["SATTN_BWD_DELTA"] = delta_mode
        for dq_cfg, kv_cfg in zip(DQ_CONFIGS, KV_CONFIGS):
            os.environ["SATTN_BWD_TILES"] = ",".join(map(str, dq_cfg + kv_cfg))
            try:
                kt = kernel_times(fwd_bwd(ours, q, k, v, dout),
                                  ["_bwd_dq_kernel", "_bwd_dkdv_kernel", "_bwd_delta_kernel"])
                total = cuda_time(fwd_bwd(ours, q, k, v, dout), args.repeat)
            except Exception as e:
                print(f"# bwd configs {dq_cfg} {kv_cfg} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
                continue
            dq_cost = kt["_bwd_dq_kernel"] + kt["_bwd_delta_kernel"]
            record(args.out, case=f"sweep_bwd_{case}", L=L, system="sattn_triton", delta=delta_mode,
                   dq_config=list(dq_cfg), dkdv_config=list(kv_cfg), dq_ms=kt["_bwd_dq_kernel"],
                   dkdv_ms=kt["_bwd_dkdv_kernel"], delta_ms=kt["_bwd_delta_kernel"], fwd_bwd_ms=total,
                   **tag)
            if "dq" not in best or dq_cost < best["dq"][0]:
                best["dq"] = (dq_cost, dq_cfg, setting, delta_mode)
            if "dkdv" not in best or kt["_bwd_dkdv_kernel"] < best["dkdv"][0]:
                best["dkdv"] = (kt["_bwd_dkdv_kernel"], kv_cfg, setting)
    os.environ.pop("SATTN_BWD_DELTA", None)
    if "dq" not in best or "dkdv" not in best:
        return best
    # The one-launch backward (SATTN_BWD_FUSED=1): dq and dk/dv programs in one grid, with the
    # pair's dk/dv warps/stages for both halves.
    best_split = best["dq"][0] + best["dkdv"][0]
    os.environ["SATTN_BWD_FUSED"] = "1"
    for dq_cfg, kv_cfg in zip(DQ_CONFIGS, KV_CONFIGS):
        os.environ["SATTN_BWD_TILES"] = ",".join(map(str, dq_cfg + kv_cfg))
        try:
            kt = kernel_times(fwd_bwd(ours, q, k, v, dout), ["_bwd_fused_kernel", "_bwd_delta_kernel"])
        except Exception as e:
            print(f"# fused bwd configs {dq_cfg} {kv_cfg} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        cost = kt["_bwd_fused_kernel"] + kt["_bwd_delta_kernel"]
        record(args.out, case=f"sweep_bwd_fused_{case}", L=L, system="sattn_triton", dq_config=list(dq_cfg),
               dkdv_config=list(kv_cfg), fused_ms=kt["_bwd_fused_kernel"], delta_ms=kt["_bwd_delta_kernel"],
               best_split_ms=best_split, **tag)
        if "fused" not in best or cost < best["fused"][0]:
            best["fused"] = (cost, dq_cfg + kv_cfg, setting)
    os.environ.pop("SATTN_BWD_FUSED", None)
    return best


TUNED_ENV = ("SATTN_FWD_TILES", "SATTN_BWD_TILES", "SATTN_BWD_DELTA", "SATTN_BWD_FUSED",
             "SATTN_PLAN_PREFETCH", "SATTN_WALK_LOOPS")
# What the caller set (e.g. SATTN_WALK_LOOPS=3 for an A/B run): cases that were not swept use it.
CALLER_ENV = {name: os.environ[name] for name in TUNED_ENV if name in os.environ}


def use_tiles(case):
    """Sets the swept tiles of `case` for sattn, or else the caller's settings (the built-in
    defaults where the caller set none)."""
    for name in TUNED_ENV:
        os.environ.pop(name, None)
    os.environ.update(CALLER_ENV)
    if BEST.get(case):
        os.environ["SATTN_PLAN_PREFETCH"] = BEST[case]["prefetch"]
        if BEST[case].get("walk_loops"):
            os.environ["SATTN_WALK_LOOPS"] = BEST[case]["walk_loops"]
        os.environ["SATTN_FWD_TILES"] = ",".join(map(str, BEST[case]["fwd"]))
        os.environ["SATTN_BWD_TILES"] = ",".join(map(str, BEST[case]["bwd"]))
        os.environ["SATTN_BWD_DELTA"] = BEST[case]["delta"]
        os.environ["SATTN_BWD_FUSED"] = "1" if BEST[case]["fused"] else "0"


def static_table(L, Hh, blk):
    """12.5% of the key blocks per (head, query block), random (seed 0)."""
    nkb = L // blk
    g = torch.Generator(device="cuda").manual_seed(0)
    per = max(1, nkb // 8)
    idx = torch.rand(1, Hh, nkb, nkb, generator=g, device="cuda").argsort(-1)[..., :per]
    kept = torch.zeros(1, Hh, nkb, nkb, dtype=torch.bool, device="cuda").scatter_(-1, idx, True)
    return kept, per / nkb


def flex_block_mask(full, partial, blk, L, mask_mod):
    """FlexAttention BlockMask straight from block tables (B, H, n_q_blocks, n_k_blocks) of full
    blocks (no mask_mod call) and partial blocks (mask_mod applied): what create_block_mask
    derives from mask_mod, without its compile (30-50 s per mask on the H100 machine) or its
    L x L evaluation. `check_flex_block_mask` compares the two at a small L."""
    from torch.nn.attention.flex_attention import BlockMask

    def kv(table):
        num = table.sum(-1, dtype=torch.int32)
        idx = torch.argsort((~table).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return num, idx
    n, i = kv(partial)
    fn, fi = kv(full)
    return BlockMask.from_kv_blocks(n, i, fn, fi, BLOCK_SIZE=blk, mask_mod=mask_mod, seq_lengths=(L, L))


def sliding_tables(L, W, blk):
    """Full / partial block tables (1, 1, nb, nb) of the causal window W (query p sees key j iff
    j <= p < j + W), from each block pair's extreme positions."""
    nb = -(-L // blk)
    b = torch.arange(nb, device="cuda")
    lo = b * blk
    hi = torch.clamp(lo + blk - 1, max=L - 1)
    qlo, qhi, klo, khi = lo[:, None], hi[:, None], lo[None, :], hi[None, :]
    some = (klo <= qhi) & (torch.clamp(qlo - khi, min=0) < W)
    full = (khi <= qlo) & (qhi - klo < W)
    return full[None, None], (some & ~full)[None, None]


def check_flex_block_mask(create_block_mask):
    """Our from-table BlockMasks equal create_block_mask's at L=1024 (blocks, full and partial)."""
    L, W, blk = 1024, 200, 128

    def mm(b, h, qi, kj):
        return (kj <= qi) & (qi - kj < W)
    ref = create_block_mask(mm, None, None, L, L, device="cuda", BLOCK_SIZE=blk, _compile=False)
    full, part = sliding_tables(L, W, blk)
    ours = flex_block_mask(full, part, blk, L, mm)
    for a, b in ((ref.kv_num_blocks, ours.kv_num_blocks), (ref.full_kv_num_blocks, ours.full_kv_num_blocks)):
        assert torch.equal(a.cpu(), b.cpu()), (a, b)
    assert torch.equal(ref.to_dense().cpu(), ours.to_dense().cpu())
    print("# flex block masks from tables match create_block_mask at L=1024", flush=True)


def case_static(args, L, create_block_mask, flex):
    B, Hh, D, blk = 1, args.heads, args.head_dim, 128
    use_tiles("static")
    q, k, v = make(B, Hh, L, L, D)
    kept, density = static_table(L, Hh, blk)
    plan = P.from_block_table(kept, B=B, Hq=Hh, Lq=L, Lk=L, block=blk, causal=False)
    flops = 4.0 * B * Hh * L * L * D * density
    spec = sattn.Dense()   # the token rule inside kept blocks: everything visible
    ours = lambda q, k, v: ops.attention(q, k, v, spec, plan=plan)[0]  # noqa: E731
    (o1, t_jit) = first_call(lambda: ours(q, k, v))

    def mask_mod(b, h, qi, kj):
        return kept[0, h, qi // blk, kj // blk]
    # Kept blocks are wholly visible: all full, none partial (as create_block_mask would find).
    bm, t_mask = first_call(lambda: flex_block_mask(kept, torch.zeros_like(kept), blk, L, mask_mod))
    flex_fn = lambda q, k, v: flex(q, k, v, block_mask=bm)  # noqa: E731
    o2, t_comp = first_call(lambda: flex_fn(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    timed_pair(args, "static_block_sparse_12.5%", L, ours, flex_fn, "flex_attention", q, k, v, flops,
               density, dict(ours_jit_s=t_jit, flex_block_mask_s=t_mask, flex_compile_s=t_comp,
                             max_abs_diff_vs_peer=diff, block=blk, tiles=BEST.get("static")))


def case_sliding(args, L, create_block_mask, flex):
    B, Hh, D, W = 1, args.heads, args.head_dim, 1024
    q, k, v = make(B, Hh, L, L, D)
    use_tiles("sliding")
    spec = sattn.SlidingWindow(window=W, causal=True)
    density = sw_pairs(L, W) / (L * L)
    flops = 4.0 * B * Hh * L * L * D * density
    ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
    o1, t_jit = first_call(lambda: ours(q, k, v))

    def mask_mod(b, h, qi, kj):
        return (kj <= qi) & (qi - kj < W)
    full, part = sliding_tables(L, W, 128)
    bm, t_mask = first_call(lambda: flex_block_mask(full, part, 128, L, mask_mod))
    flex_fn = lambda q, k, v: flex(q, k, v, block_mask=bm)  # noqa: E731
    o2, t_comp = first_call(lambda: flex_fn(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    timed_pair(args, "sliding_window_1024_causal", L, ours, flex_fn, "flex_attention", q, k, v, flops,
               density, dict(ours_jit_s=t_jit, flex_block_mask_s=t_mask, flex_compile_s=t_comp,
                             max_abs_diff_vs_peer=diff, tiles=BEST.get("sliding")))


def case_topk_e2e(args, L, create_block_mask, flex):
    B, Hh, D, blk = 1, args.heads, args.head_dim, 128
    use_tiles("topk")
    q, k, v = make(B, Hh, L, L, D)
    scale = 1 / math.sqrt(D)
    spec = sattn.BlockTopK(block=blk, keep=0.125)
    nkb = L // blk
    ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
    o1, t_jit = first_call(lambda: ours(q, k, v))
    forced, n = P.block_topk_counts(L, L, blk, 0.125, 1, 1, False)
    forced_t = torch.from_numpy(forced).cuda()
    n_keep = int(n.max())

    def torch_select(q, k):
        # Same selection as the contract: mean-pooled scores, forced blocks, top-k per query block.
        s = P.block_topk_scores(q, k, blk, scale)
        s = torch.where(forced_t, torch.inf, s)
        top = torch.topk(s, n_keep, dim=-1).indices
        return torch.zeros(B, Hh, nkb, nkb, dtype=torch.bool, device="cuda").scatter_(-1, top, True)

    kept_buf = torch.zeros(B, Hh, nkb, nkb, dtype=torch.bool, device="cuda")

    def mask_mod(b, h, qi, kj):
        return kept_buf[b, h, qi // blk, kj // blk]

    def flex_e2e(q, k, v):
        # One fixed mask_mod over a buffer refreshed each call, so create_block_mask compiles once.
        kept_buf.copy_(torch_select(q.detach(), k.detach()))
        bm = create_block_mask(mask_mod, B, Hh, L, L, device="cuda", BLOCK_SIZE=blk, _compile=True)
        return flex(q, k, v, block_mask=bm)
    o2, t_first = first_call(lambda: flex_e2e(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    density = n_keep / nkb
    flops = 4.0 * B * Hh * L * L * D * density
    timed_pair(args, "block_topk_0.125_end_to_end", L, ours, flex_e2e, "torch_select+create_block_mask+flex",
               q, k, v, flops, density, dict(ours_jit_s=t_jit, peer_first_call_s=t_first,
                                             max_abs_diff_vs_peer=diff, block=blk))
    # Selection alone (ours: device planner op), for the breakdown.
    t_sel = cuda_time(lambda: ops.make_plan(q, k, spec, scale=scale), args.repeat)
    t_tsel = cuda_time(lambda: torch_select(q, k), args.repeat)
    record(args.out, case="block_topk_selection_only", L=L, system="sattn_triton_device_planner", fwd_ms=t_sel)
    record(args.out, case="block_topk_selection_only", L=L, system="torch_selection", fwd_ms=t_tsel)


def case_dense(args, L):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    B, Hh, D = 1, args.heads, args.head_dim
    use_tiles("dense")
    q, k, v = make(B, Hh, L, L, D)
    for causal in (False, True):
        spec = sattn.Dense(causal=causal)
        ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
        o1, t_jit = first_call(lambda: ours(q, k, v))

        def sdpa(q, k, v):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        o2 = sdpa(q, k, v)
        diff = (o1.float() - o2.float()).abs().max().item()
        density = 0.5 if causal else 1.0
        flops = 4.0 * B * Hh * L * L * D * density
        timed_pair(args, "dense" + ("_causal" if causal else ""), L, ours, sdpa, "sdpa_flash", q, k, v, flops,
                   density, dict(ours_jit_s=t_jit, max_abs_diff_vs_peer=diff))


def case_decode(args):
    B, Hh, D, blk, Lk = 1, args.heads, args.head_dim, 128, args.decode_len
    q, k, v = make(B, Hh, 1, Lk, D, grad=False)
    nkb = Lk // blk
    per = nkb // 8
    g = torch.Generator(device="cuda").manual_seed(1)
    idx = torch.rand(1, Hh, 1, nkb, generator=g, device="cuda").argsort(-1)[..., :per]
    kept = torch.zeros(1, Hh, 1, nkb, dtype=torch.bool, device="cuda").scatter_(-1, idx, True)
    plan = P.from_block_table(kept, B=B, Hq=Hh, Lq=1, Lk=Lk, block=blk, causal=True)
    ours = lambda: ops.attention(q, k, v, sattn.Dense(causal=True), plan=plan)  # noqa: E731
    _, t_jit = first_call(ours)
    t = cuda_time(ours, args.repeat * 4)
    kv_bytes = 2 * B * Hh * per * blk * D * q.element_size()
    gbps = kv_bytes / (t * 1e-3) / 1e9
    spec = sattn.BlockTopK(block=blk, keep=0.125, causal=True)
    e2e = lambda: ops.attention(q, k, v, spec)  # noqa: E731
    first_call(e2e)
    t2 = cuda_time(e2e, args.repeat * 4)
    dense = lambda: ops.attention(q, k, v, sattn.Dense(causal=True))  # noqa: E731
    first_call(dense)
    t3 = cuda_time(dense, args.repeat * 4)
    dense_bytes = 2 * B * Hh * Lk * D * q.element_size()
    tg = graph_time(ours, args.repeat * 4)
    record(args.out, case="decode_static_12.5%", Lq=1, Lk=Lk, system="sattn_triton", fwd_ms=t,
           kv_bytes=kv_bytes, GBps=gbps, fraction_of_hbm_peak=gbps / H100_HBM3_GBPS, ours_jit_s=t_jit,
           fwd_ms_cuda_graph=tg, GBps_cuda_graph=None if tg is None else kv_bytes / (tg * 1e-3) / 1e9)
    record(args.out, case="decode_block_topk_0.125_end_to_end", Lq=1, Lk=Lk, system="sattn_triton", fwd_ms=t2,
           GBps_attention_bytes_only=kv_bytes / (t2 * 1e-3) / 1e9)
    tg3 = graph_time(dense, args.repeat * 4)
    record(args.out, case="decode_dense", Lq=1, Lk=Lk, system="sattn_triton", fwd_ms=t3, fwd_ms_cuda_graph=tg3,
           GBps=dense_bytes / (t3 * 1e-3) / 1e9, fraction_of_hbm_peak=dense_bytes / (t3 * 1e-3) / 1e9 / H100_HBM3_GBPS)
    # GQA 4:1 (Hq = heads, Hkv = heads / 4) dense decode: the packed forward (one program per
    # group, K/V read once per group) against the one-head layout (SATTN_GQA_PACK=0).
    Hkv = max(1, Hh // 4)
    g = torch.Generator(device="cuda").manual_seed(2)
    qg = torch.randn(B, Hh, 1, D, device="cuda", dtype=torch.bfloat16, generator=g)
    kg, vg = (torch.randn(B, Hkv, Lk, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(2))
    gqa = lambda: ops.attention(qg, kg, vg, sattn.Dense(causal=True))  # noqa: E731
    gqa_bytes = 2 * B * Hkv * Lk * D * qg.element_size()
    for pack in ("1", "0"):
        os.environ["SATTN_GQA_PACK"] = pack
        first_call(gqa)
        t_e, t_g = cuda_time(gqa, args.repeat * 4), graph_time(gqa, args.repeat * 4)
        record(args.out, case=f"decode_dense_gqa_{Hh}x{Hkv}", Lq=1, Lk=Lk, system="sattn_triton",
               gqa_pack=pack == "1", fwd_ms=t_e, fwd_ms_cuda_graph=t_g, kv_bytes=gqa_bytes,
               GBps_cuda_graph=None if t_g is None else gqa_bytes / (t_g * 1e-3) / 1e9)
    os.environ.pop("SATTN_GQA_PACK", None)


def make(B, Hh, Lq, Lk, D, grad=True):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, Hh, Lq, D, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(B, Hh, Lk, D, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(B, Hh, Lk, D, device="cuda", dtype=torch.bfloat16, generator=g)
    return [x.requires_grad_(grad) for x in (q, k, v)]


def graph_time(fn, repeat):
    """Forward replayed from a CUDA graph: GPU time without Python/launch overhead."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return cuda_time(g.replay, repeat)
    except Exception as e:  # selection paths that cannot be captured report why
        print(f"# graph capture failed: {type(e).__name__}: {e}", flush=True)
        return None


def timed_pair(args, case, L, ours, peer, peer_name, q, k, v, flops, density, extra):
    """Times sattn and the peer in `args.rounds` interleaved rounds (ours, peer, ours, peer, ...;
    each a median of `args.repeat` calls) and reports the median round, so clock drift over the run
    hits both sides alike. Also records sattn's per-kernel device times (torch.profiler)."""
    dout = torch.randn_like(q)
    f1s, f2s, b1s, b2s = [], [], [], []
    for _ in range(args.rounds):
        with torch.no_grad():
            f1s.append(cuda_time(lambda: ours(q, k, v), args.repeat))
            f2s.append(cuda_time(lambda: peer(q, k, v), args.repeat))
        if not args.no_backward:
            b1s.append(cuda_time(fwd_bwd(ours, q, k, v, dout), args.repeat))
            b2s.append(cuda_time(fwd_bwd(peer, q, k, v, dout), args.repeat))
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None  # noqa: E731
    f1, f2, b1, b2 = med(f1s), med(f2s), med(b1s), med(b2s)
    # Back-to-back timings (host overhead hidden behind the GPU), ours and peer interleaved too.
    bb = {"ours_fwd": [], "peer_fwd": [], "ours_fwd_bwd": [], "peer_fwd_bwd": []}
    for _ in range(args.rounds):
        with torch.no_grad():
            bb["ours_fwd"].append(b2b_time(lambda: ours(q, k, v), args.repeat))
            bb["peer_fwd"].append(b2b_time(lambda: peer(q, k, v), args.repeat))
        if not args.no_backward:
            bb["ours_fwd_bwd"].append(b2b_time(fwd_bwd(ours, q, k, v, dout), args.repeat))
            bb["peer_fwd_bwd"].append(b2b_time(fwd_bwd(peer, q, k, v, dout), args.repeat))
    bbm = {n: (med([x[0] for x in xs]), med([x[1] for x in xs])) if xs else (None, None)
           for n, xs in bb.items()}
    with torch.no_grad():
        extra = dict(extra, fwd_ms_cuda_graph=graph_time(lambda: ours(q, k, v), args.repeat))
    if args.kernel_times and not args.no_backward:
        # Opt-in, after the timings: a profiler session might perturb later eager launches (run 5
        # of docs/backends/gpu.md saw a larger eager overhead; cause not established).
        extra["kernel_ms"] = kernel_times(fwd_bwd(ours, q, k, v, dout),
                                          ["_fwd_kernel", "_bwd_delta_kernel", "_bwd_dq_kernel", "_bwd_dkdv_kernel",
                                           "_bwd_fused_kernel"])
    m1 = extra_memory(fwd_bwd(ours, q, k, v, dout)) if not args.no_backward else extra_memory(lambda: ours(q, k, v))
    common = dict(case=case, L=L, B=1, H=args.heads, D=args.head_dim, dtype="bfloat16", density=density)
    record(args.out, system="sattn_triton", fwd_ms=f1, fwd_bwd_ms=b1, fwd_tflops=flops / f1 / 1e9,
           fwd_bwd_tflops=None if b1 is None else 2.5 * flops / b1 / 1e9, extra_mem_mib=m1,
           speedup_fwd=f2 / f1, speedup_fwd_bwd=None if b1 is None else b2 / b1,
           rounds_fwd_ms=f1s, rounds_fwd_bwd_ms=b1s,
           b2b_fwd_ms=bbm["ours_fwd"][0], b2b_fwd_bwd_ms=bbm["ours_fwd_bwd"][0],
           host_fwd_ms=bbm["ours_fwd"][1], host_fwd_bwd_ms=bbm["ours_fwd_bwd"][1],
           b2b_speedup_fwd=bbm["peer_fwd"][0] / bbm["ours_fwd"][0],
           b2b_speedup_fwd_bwd=None if b1 is None else bbm["peer_fwd_bwd"][0] / bbm["ours_fwd_bwd"][0],
           **common, **extra)
    record(args.out, system=peer_name, fwd_ms=f2, fwd_bwd_ms=b2, fwd_tflops=flops / f2 / 1e9,
           fwd_bwd_tflops=None if b2 is None else 2.5 * flops / b2 / 1e9, rounds_fwd_ms=f2s,
           rounds_fwd_bwd_ms=b2s, b2b_fwd_ms=bbm["peer_fwd"][0], b2b_fwd_bwd_ms=bbm["peer_fwd_bwd"][0],
           host_fwd_ms=bbm["peer_fwd"][1], host_fwd_bwd_ms=bbm["peer_fwd_bwd"][1], **common)
    for x in (q, k, v):
        x.grad = None


def profile(args):
    """Kernel-level CUDA times of one forward and one forward+backward (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile as tprof
    L = 8192
    q, k, v = make(1, args.heads, L, L, args.head_dim)
    dout = torch.randn_like(q)
    for spec in (sattn.Dense(), sattn.SlidingWindow(window=1024, causal=True)):
        ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
        fwd_bwd(ours, q, k, v, dout)()
        torch.cuda.synchronize()
        with tprof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            with torch.no_grad():
                ours(q, k, v)
            fwd_bwd(ours, q, k, v, dout)()
            torch.cuda.synchronize()
        print(f"# profile {spec} L={L}", flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10), flush=True)


def timeline(args):
    """GPU kernel timeline (start, duration, idle gap before it) of two back-to-back static-plan
    forward+backward calls at the first --lengths L, with FlexAttention's for comparison: shows
    any device time outside the attention kernels."""
    from torch.profiler import ProfilerActivity, profile as tprof
    import tempfile
    L, blk, Hh, D = int(args.lengths.split(",")[0]), 128, args.heads, args.head_dim
    q, k, v = make(1, Hh, L, L, D)
    dout = torch.randn_like(q)
    kept, _ = static_table(L, Hh, blk)
    plan = P.from_block_table(kept, B=1, Hq=Hh, Lq=L, Lk=L, block=blk, causal=False)
    _, flex = flex_setup()

    def mask_mod(b, h, qi, kj):
        return kept[0, h, qi // blk, kj // blk]
    bm = flex_block_mask(kept, torch.zeros_like(kept), blk, L, mask_mod)
    for name, fn in (("sattn", lambda q, k, v: ops.attention(q, k, v, sattn.Dense(), plan=plan)[0]),
                     ("flex", lambda q, k, v: flex(q, k, v, block_mask=bm))):
        run = fwd_bwd(fn, q, k, v, dout)
        run()
        run()
        torch.cuda.synchronize()
        with tprof(activities=[ProfilerActivity.CUDA]) as prof:
            run()
            run()
            torch.cuda.synchronize()
        path = os.path.join(tempfile.mkdtemp(), "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            ev = [e for e in json.load(f)["traceEvents"] if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
        ev.sort(key=lambda e: e["ts"])
        t0 = ev[0]["ts"] if ev else 0.0
        end = t0
        print(f"# timeline {name} static L={L}: start_us dur_us gap_us name", flush=True)
        for e in ev:
            print(f"{e['ts'] - t0:10.1f} {e['dur']:9.1f} {e['ts'] - end:8.1f} {e['name'][:70]}", flush=True)
            end = max(end, e["ts"] + e["dur"])


def host_profile(args):
    """Where the host time of one eager call goes: cProfile over 50 forward+backward calls at
    L=4096 (small, so the host is the bottleneck) for a static plan, the sliding window and
    BlockTopK with device selection; top functions by own time."""
    import cProfile
    import pstats
    L, blk = 4096, 128
    q, k, v = make(1, args.heads, L, L, args.head_dim)
    dout = torch.randn_like(q)
    kept, _ = static_table(L, args.heads, blk)
    plan = P.from_block_table(kept, B=1, Hq=args.heads, Lq=L, Lk=L, block=blk, causal=False)
    for name, spec, pl in (("static", sattn.Dense(), plan),
                           ("sliding", sattn.SlidingWindow(window=1024, causal=True), None),
                           ("block_topk (device selection each call)", sattn.BlockTopK(block=128, keep=0.125), None)):
        run = fwd_bwd(lambda q, k, v: ops.attention(q, k, v, spec, plan=pl)[0], q, k, v, dout)
        for _ in range(3):
            run()
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(50):
            run()
        torch.cuda.synchronize()
        prof.disable()
        print(f"# host profile {name} fwd+bwd x50, L={L}", flush=True)
        pstats.Stats(prof).sort_stats("tottime").print_stats(22)


def main():
    global ENV
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="8192,32768")
    ap.add_argument("--cases", default="static,sliding,topk,dense,decode")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head_dim", type=int, default=128)
    ap.add_argument("--decode_len", type=int, default=131072)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved ours/peer rounds per case")
    ap.add_argument("--kernel_times", action="store_true",
                    help="also record sattn's per-kernel times (torch.profiler) after each pair")
    ap.add_argument("--sweep_cases", default="static,sliding", help="cases the 'sweep' tunes")
    ap.add_argument("--sweep_len", type=int, default=32768, help="L of the tile sweeps (cases 'sweep')")
    ap.add_argument("--no_backward", action="store_true")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import triton
    ENV = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, triton=triton.__version__,
               cuda=torch.version.cuda, python=platform.python_version(), command=" ".join(sys.argv))
    print(json.dumps(ENV), flush=True)
    cases = args.cases.split(",")
    if "profile" in cases:
        profile(args)
    if "hostprof" in cases:
        host_profile(args)
    if "timeline" in cases:
        timeline(args)
    if "sweep" in cases:
        for case in args.sweep_cases.split(","):
            sweep_case(args, case, args.sweep_len)
    if "sliding" in cases:
        check_flex_block_mask(flex_setup()[0])
    for L in [int(x) for x in args.lengths.split(",")]:
        for name, fn in (("static", case_static), ("sliding", case_sliding), ("topk", case_topk_e2e)):
            if name in cases:
                t0 = time.perf_counter()
                create_block_mask, flex = flex_setup()
                fn(args, L, create_block_mask, flex)
                print(f"# {name} L={L} took {time.perf_counter() - t0:.1f} s", flush=True)
        if "dense" in cases:
            case_dense(args, L)
    if "decode" in cases:
        case_decode(args)


ENV: dict = {}

if __name__ == "__main__":
    main()
