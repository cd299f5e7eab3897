"""H100 benchmark of the triton backend against FlexAttention and SDPA flash, in one process.

  python gpu/bench_gpu.py --lengths 8192,32768 --out /tmp/bench   (or bazel run //gpu:bench_gpu)

Cases (B=1, H=16, D=128, bf16 unless flags say otherwise), each timed forward and
forward+backward with CUDA events (median of --repeat after a warm-up):
  static_block_sparse  12.5% of 128-blocks per query block, random per head (seed 0), non-causal;
                       sattn uses a plan built once from the block table, Flex a BlockMask from
                       create_block_mask over the same table.
  sliding_window       SlidingWindow(1024, causal=True): sattn's planless path vs Flex mask_mod.
  block_topk_e2e       BlockTopK(block=128, keep=0.125): sattn (device selection + attention)
                       vs torch selection (same pooled scores, topk) + create_block_mask + Flex.
  dense                Dense (non-causal and causal) vs SDPA flash.
  decode               Lq=1, Lk=131072, 12.5% static blocks: GB/s of K/V read vs HBM peak.
One-off costs (Triton JIT, create_block_mask, torch.compile of flex_attention) are timed
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


BWD_CONFIGS = [  # dq BLOCK_M, dq BLOCK_N, dk/dv BLOCK_M, dk/dv BLOCK_N, num_warps, num_stages
    (128, 64, 64, 128, 8, 3), (128, 64, 64, 128, 8, 2), (64, 64, 64, 64, 4, 3), (128, 64, 32, 128, 4, 3),
    (64, 128, 64, 128, 8, 2), (128, 32, 32, 128, 4, 4), (128, 64, 128, 128, 8, 2), (64, 64, 64, 128, 4, 3),
]


def bwd_sweep(args):
    """Times forward+backward (Dense, L=8192) for each backward tile config; keeps the fastest
    for the rest of the run (SATTN_BWD_TILES) and records every result."""
    L = 8192
    q, k, v = make(1, args.heads, L, L, args.head_dim)
    dout = torch.randn_like(q)
    spec = sattn.Dense()
    ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
    best = None
    for cfg in BWD_CONFIGS:
        os.environ["SATTN_BWD_TILES"] = ",".join(map(str, cfg))
        try:
            t = cuda_time(fwd_bwd(ours, q, k, v, dout), args.repeat)
        except Exception as e:  # a config may not fit shared memory
            print(f"# bwd config {cfg} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        record(args.out, case="bwd_tile_sweep_dense", L=L, system="sattn_triton", config=list(cfg), fwd_bwd_ms=t)
        if best is None or t < best[0]:
            best = (t, cfg)
    os.environ["SATTN_BWD_TILES"] = ",".join(map(str, best[1]))
    ENV["bwd_tiles"] = list(best[1])
    print(f"# chosen backward tiles {best[1]} ({best[0]:.3f} ms)", flush=True)


def case_static(args, L, create_block_mask, flex):
    B, Hh, D, blk = 1, args.heads, args.head_dim, 128
    q, k, v = make(B, Hh, L, L, D)
    nkb = L // blk
    g = torch.Generator(device="cuda").manual_seed(0)
    per = max(1, nkb // 8)
    idx = torch.rand(1, Hh, nkb, nkb, generator=g, device="cuda").argsort(-1)[..., :per]
    kept = torch.zeros(1, Hh, nkb, nkb, dtype=torch.bool, device="cuda").scatter_(-1, idx, True)
    plan = P.from_block_table(kept, B=B, Hq=Hh, Lq=L, Lk=L, block=blk, causal=False)
    density = per / nkb
    flops = 4.0 * B * Hh * L * L * D * density
    spec = sattn.Dense()   # the token rule inside kept blocks: everything visible
    ours = lambda q, k, v: ops.attention(q, k, v, spec, plan=plan)[0]  # noqa: E731
    (o1, t_jit) = first_call(lambda: ours(q, k, v))

    def mask_mod(b, h, qi, kj):
        return kept[0, h, qi // blk, kj // blk]
    bm, t_mask = first_call(lambda: create_block_mask(mask_mod, B, Hh, L, L, device="cuda", BLOCK_SIZE=blk,
                                                      _compile=True))
    flex_fn = lambda q, k, v: flex(q, k, v, block_mask=bm)  # noqa: E731
    o2, t_comp = first_call(lambda: flex_fn(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    timed_pair(args, "static_block_sparse_12.5%", L, ours, flex_fn, "flex_attention", q, k, v, flops,
               density, dict(ours_jit_s=t_jit, flex_create_block_mask_s=t_mask, flex_compile_s=t_comp,
                             max_abs_diff_vs_peer=diff, block=blk))


def case_sliding(args, L, create_block_mask, flex):
    B, Hh, D, W = 1, args.heads, args.head_dim, 1024
    q, k, v = make(B, Hh, L, L, D)
    spec = sattn.SlidingWindow(window=W, causal=True)
    density = sw_pairs(L, W) / (L * L)
    flops = 4.0 * B * Hh * L * L * D * density
    ours = lambda q, k, v: ops.attention(q, k, v, spec)[0]  # noqa: E731
    o1, t_jit = first_call(lambda: ours(q, k, v))

    def mask_mod(b, h, qi, kj):
        return (kj <= qi) & (qi - kj < W)
    bm, t_mask = first_call(lambda: create_block_mask(mask_mod, B, Hh, L, L, device="cuda", _compile=True))
    flex_fn = lambda q, k, v: flex(q, k, v, block_mask=bm)  # noqa: E731
    o2, t_comp = first_call(lambda: flex_fn(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    timed_pair(args, "sliding_window_1024_causal", L, ours, flex_fn, "flex_attention", q, k, v, flops,
               density, dict(ours_jit_s=t_jit, flex_create_block_mask_s=t_mask, flex_compile_s=t_comp,
                             max_abs_diff_vs_peer=diff))


def case_topk_e2e(args, L, create_block_mask, flex):
    B, Hh, D, blk = 1, args.heads, args.head_dim, 128
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
    dout = torch.randn_like(q)
    with torch.no_grad():
        f1 = cuda_time(lambda: ours(q, k, v), args.repeat)
        f2 = cuda_time(lambda: peer(q, k, v), args.repeat)
        extra = dict(extra, fwd_ms_cuda_graph=graph_time(lambda: ours(q, k, v), args.repeat))
    b1 = b2 = None
    if not args.no_backward:
        b1 = cuda_time(fwd_bwd(ours, q, k, v, dout), args.repeat)
        b2 = cuda_time(fwd_bwd(peer, q, k, v, dout), args.repeat)
    m1 = extra_memory(fwd_bwd(ours, q, k, v, dout)) if not args.no_backward else extra_memory(lambda: ours(q, k, v))
    common = dict(case=case, L=L, B=1, H=args.heads, D=args.head_dim, dtype="bfloat16", density=density)
    record(args.out, system="sattn_triton", fwd_ms=f1, fwd_bwd_ms=b1, fwd_tflops=flops / f1 / 1e9,
           fwd_bwd_tflops=None if b1 is None else 2.5 * flops / b1 / 1e9, extra_mem_mib=m1,
           speedup_fwd=f2 / f1, speedup_fwd_bwd=None if b1 is None else b2 / b1, **common, **extra)
    record(args.out, system=peer_name, fwd_ms=f2, fwd_bwd_ms=b2, fwd_tflops=flops / f2 / 1e9,
           fwd_bwd_tflops=None if b2 is None else 2.5 * flops / b2 / 1e9, **common)
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


def main():
    global ENV
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="8192,32768")
    ap.add_argument("--cases", default="static,sliding,topk,dense,decode")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head_dim", type=int, default=128)
    ap.add_argument("--decode_len", type=int, default=131072)
    ap.add_argument("--repeat", type=int, default=10)
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
    if "sweep" in cases:
        bwd_sweep(args)
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
