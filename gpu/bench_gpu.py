"""GPU benchmark of the triton backend against FlexAttention and SDPA (FLASH, cuDNN), in one process.

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
  dense                Dense (non-causal and causal) vs SDPA's FLASH and cuDNN backends.
  decode               Lq=1, Lk=131072, 12.5% static blocks: GB/s of K/V read vs HBM peak; also
                       dense and GQA 4:1 dense decode (one program per group).
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
    full, part = sliding_tables(L, W, 128)
    bm, t_mask = first_call(lambda: flex_block_mask(full, part, 128, L, mask_mod))
    flex_fn = lambda q, k, v: flex(q, k, v, block_mask=bm)  # noqa: E731
    o2, t_comp = first_call(lambda: flex_fn(q, k, v))
    diff = (o1.float() - o2.float()).abs().max().item()
    timed_pair(args, "sliding_window_1024_causal", L, ours, flex_fn, "flex_attention", q, k, v, flops,
               density, dict(ours_jit_s=t_jit, flex_block_mask_s=t_mask, flex_compile_s=t_comp,
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

        for backend, peer_name in ((SDPBackend.FLASH_ATTENTION, "sdpa_flash"),
                                   (SDPBackend.CUDNN_ATTENTION, "sdpa_cudnn")):
            def sdpa(q, k, v, backend=backend):
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            try:
                o2 = sdpa(q, k, v)
            except RuntimeError as e:      # e.g. a torch build without cuDNN attention
                print(f"# {peer_name} unavailable: {e}", flush=True)
                continue
            diff = (o1.float() - o2.float()).abs().max().item()
            density = 0.5 if causal else 1.0
            flops = 4.0 * B * Hh * L * L * D * density
            timed_pair(args, "dense" + ("_causal" if causal else ""), L, ours, sdpa, peer_name, q, k, v, flops,
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
    # GQA 4:1 (Hq = heads, Hkv = heads / 4) dense decode: one program per group reads K/V once.
    Hkv = max(1, Hh // 4)
    g = torch.Generator(device="cuda").manual_seed(2)
    qg = torch.randn(B, Hh, 1, D, device="cuda", dtype=torch.bfloat16, generator=g)
    kg, vg = (torch.randn(B, Hkv, Lk, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(2))
    gqa = lambda: ops.attention(qg, kg, vg, sattn.Dense(causal=True))  # noqa: E731
    gqa_bytes = 2 * B * Hkv * Lk * D * qg.element_size()
    first_call(gqa)
    t_e, t_g = cuda_time(gqa, args.repeat * 4), graph_time(gqa, args.repeat * 4)
    record(args.out, case=f"decode_dense_gqa_{Hh}x{Hkv}", Lq=1, Lk=Lk, system="sattn_triton",
           fwd_ms=t_e, fwd_ms_cuda_graph=t_g, kv_bytes=gqa_bytes,
           GBps_cuda_graph=None if t_g is None else gqa_bytes / (t_g * 1e-3) / 1e9)


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
        # Opt-in, after the timings: a profiler session might perturb later eager launches.
        extra["kernel_ms"] = kernel_times(fwd_bwd(ours, q, k, v, dout),
                                          ["_fwd_kernel", "_bwd_dq_kernel", "_bwd_dkdv_kernel"])
    m1 = extra_memory(fwd_bwd(ours, q, k, v, dout)) if not args.no_backward else extra_memory(lambda: ours(q, k, v))
    common = dict(case=case, L=L, B=1, H=args.heads, D=args.head_dim, dtype="bfloat16", density=density,
                  peer=peer_name)
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


def main(argv=None):
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
    ap.add_argument("--no_backward", action="store_true")
    ap.add_argument("--out", default=".")
    args = ap.parse_args(argv)
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
