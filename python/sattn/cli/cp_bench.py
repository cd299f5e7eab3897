"""`sattn bench-cp`: context-parallel attention (sattn.distributed), measured and modelled.

Measured: N processes on this machine (gloo on CPU; NCCL on CUDA GPUs, one per process) run
context_parallel_attention forward and forward+backward on one sequence sharded over them, and
one process runs sattn.sparse_attention on L / N tokens (the work one rank holds) with the same
threads, alone and then on every rank at once (as busy a machine as the parallel call makes);
the table gives the times and the bytes each rank moved, next to ring attention's.

Simulated (--simulate): the communication model (sattn.distributed.communication_model) for
every rank count of --ranks, without processes: key/value bytes each rank receives against ring
attention's (every other shard's k and v).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import traceback

SPECS = ("dense", "sliding_window", "block_topk", "bigbird", "topk_per_query")


def add_parser(sub, positive_int):
    p = sub.add_parser("bench-cp", help="context-parallel attention over N processes, and its scaling model",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("--spec", choices=SPECS, default="sliding_window", help="the spec (default sliding_window)")
    p.add_argument("--window", type=positive_int, default=256, help="sliding_window: keys per side")
    p.add_argument("--keep", type=float, default=0.125, help="block_topk: fraction of key blocks kept")
    p.add_argument("--block", type=positive_int, default=64, help="block_topk, bigbird: block edge")
    p.add_argument("--causal", action="store_true", help="causal masking")
    p.add_argument("--seq-len", type=positive_int, default=8192, help="tokens of the whole sequence")
    p.add_argument("--batch", type=positive_int, default=1, help="B")
    p.add_argument("--heads", type=positive_int, default=4, help="Hq")
    p.add_argument("--kv-heads", type=positive_int, default=1, help="Hkv")
    p.add_argument("--head-dim", type=positive_int, default=64, help="D")
    p.add_argument("--tile", type=positive_int, default=64, help="block edge of specs without their own")
    p.add_argument("--layout", choices=["contiguous", "zigzag"], default="contiguous", help="sharding layout")
    p.add_argument("--world", type=positive_int, default=2,
                   help="processes (default 2; 1 measures the call's own cost against sparse_attention)")
    p.add_argument("--dist-backend", choices=["gloo", "nccl"], default="gloo",
                   help="gloo (CPU tensors) or nccl (one CUDA GPU per process)")
    p.add_argument("--local-backend", default=None,
                   help="sattn backend of the local blocks (default: cpu on gloo, triton on nccl)")
    p.add_argument("--threads", type=int, default=0,
                   help="cpu threads per process (0: cores / world); the single-process run uses the same")
    p.add_argument("--repeat", type=positive_int, default=3, help="timed calls, median")
    p.add_argument("--simulate", action="store_true", help="the communication model only, no processes")
    p.add_argument("--ranks", default="8,64,512", help="--simulate: rank counts (default 8,64,512)")
    p.add_argument("--element-size", type=positive_int, default=2,
                   help="--simulate: bytes per element of k and v (default 2, bf16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    return p


def _spec(args):
    import sattn
    if args.spec == "dense":
        return sattn.Dense(causal=args.causal)
    if args.spec == "sliding_window":
        return sattn.SlidingWindow(window=args.window, causal=args.causal)
    if args.spec == "block_topk":
        return sattn.BlockTopK(block=args.block, keep=args.keep, causal=args.causal)
    if args.spec == "bigbird":
        return sattn.BigBird(block=args.block, causal=args.causal)
    return sattn.TopKPerQuery(k=args.window, causal=args.causal)


def run(args):
    from sattn.cli import UsageError
    if args.simulate:
        try:
            ranks = [int(x) for x in args.ranks.split(",")]
        except ValueError:
            raise UsageError(f"--ranks: expected comma-separated integers, got {args.ranks!r}") from None
        if any(n < 1 or n > args.seq_len for n in ranks):
            raise UsageError(f"--ranks: expected rank counts in [1, --seq-len], got {args.ranks}")
        return _simulate(args, ranks)
    return _measure(args)


# ---------------------------------------------------------------------------------------------
# The model, no processes.

def _simulate(args, ranks):
    import numpy as np
    import torch
    import sattn
    from sattn import custom
    from sattn import distributed as D
    spec = _spec(args)
    plan = None
    if custom.is_dynamic(spec):
        print(f"planning {spec} on random q, k of L={args.seq_len} ...", file=sys.stderr, flush=True)
        g = torch.Generator().manual_seed(args.seed)
        q = torch.randn(args.batch, args.heads, args.seq_len, args.head_dim, generator=g)
        k = torch.randn(args.batch, args.kv_heads, args.seq_len, args.head_dim, generator=g)
        plan = sattn.plan(spec, q, k, tile=args.tile)
        del q, k
    rows = []
    for n in ranks:
        t0 = time.perf_counter()
        lengths = D.even_lengths(args.seq_len, n, args.layout)
        m = D.communication_model(spec, lengths, B=args.batch, Hq=args.heads, Hkv=args.kv_heads, D=args.head_dim,
                                  element_size=args.element_size, layout=args.layout, tile=args.tile, plan=plan)
        kv, ring = np.array(m.recv["kv"], dtype=np.float64), np.array(m.ring, dtype=np.float64)
        rows.append({"mode": "simulate", "spec": str(spec), "seq_len": args.seq_len, "ranks": n,
                     "layout": args.layout,
                     "row_bytes": 2 * args.batch * args.kv_heads * args.head_dim * args.element_size,
                     "kv_recv_bytes_max": int(kv.max()), "kv_recv_bytes_mean": float(kv.mean()),
                     "meta_recv_bytes": int(m.recv["meta"][0]), "ring_recv_bytes_max": int(ring.max()),
                     "kv_over_ring_max": float(kv.max() / ring.max()) if ring.max() else 0.0,
                     "kv_over_ring_total": float(kv.sum() / ring.sum()) if ring.sum() else 0.0})
        print(f"  {n} ranks: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    _emit(args, rows, ("ranks", "kv_recv_bytes_max", "kv_recv_bytes_mean", "ring_recv_bytes_max",
                       "kv_over_ring_max", "kv_over_ring_total", "meta_recv_bytes"))
    return 0


def _emit(args, rows, cols):
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"{rows[0]['spec']}  L={rows[0]['seq_len']}  layout={rows[0]['layout']}")
    print("  ".join(f"{c:>20}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>20.4g}" if isinstance(r[c], float) else f"{r[c]:>20}" for c in cols))


# ---------------------------------------------------------------------------------------------
# Measured: N processes.

def _worker(rank, args, store, queue):
    import torch
    import torch.distributed as dist
    import sattn
    from sattn import distributed as D
    try:
        world, nccl = args.world, args.dist_backend == "nccl"
        threads = args.threads or max(1, (os.cpu_count() or 1) // world)
        torch.set_num_threads(threads)
        device = torch.device(f"cuda:{rank}") if nccl else torch.device("cpu")
        if nccl:
            torch.cuda.set_device(device)
        dist.init_process_group(args.dist_backend, init_method=f"file://{store}", rank=rank, world_size=world)
        local = args.local_backend or ("triton" if nccl else "cpu")
        opts = {} if local != "cpu" else {"threads": threads}
        spec = _spec(args)
        g = torch.Generator().manual_seed(args.seed)
        L = args.seq_len
        q = torch.randn(args.batch, args.heads, L, args.head_dim, generator=g)
        k = torch.randn(args.batch, args.kv_heads, L, args.head_dim, generator=g)
        v = torch.randn(args.batch, args.kv_heads, L, args.head_dim, generator=g)
        mine = [D.shard(t, rank, world, args.layout).to(device) for t in (q, k, v)]
        sync = torch.cuda.synchronize if nccl else (lambda: None)
        stats = {}

        def fwd():
            with torch.no_grad():
                _, st = D.context_parallel_attention(*mine, spec, layout=args.layout, backend=local, tile=args.tile,
                                                     threads=opts.get("threads"), return_stats=True)
            sync()
            stats["fwd"] = st

        def fwdbwd():
            leaves = [t.clone().requires_grad_() for t in mine]
            out, st = D.context_parallel_attention(*leaves, spec, layout=args.layout, backend=local, tile=args.tile,
                                                   threads=opts.get("threads"), return_stats=True)
            out.sum().backward()
            sync()
            stats["fwdbwd"] = st

        single = None
        n = L // world
        part = [t[:, :, :n].to(device) for t in (q, k, v)]

        def single_fb():  # one process, the tokens one rank holds, the same threads
            leaves = [t.clone().requires_grad_() for t in part]
            out = sattn.sparse_attention(*leaves, spec, backend=local, **opts)
            out.sum().backward()
            sync()

        # Interleaved, so a change in the machine's load hits all three alike.
        # "single": rank 0 alone, the others idle; "concurrent": every rank runs its own single
        # process at once, so the machine is as busy as under the context-parallel call.
        times = {"fwd": [], "fwdbwd": [], "single": [], "concurrent": []}
        for i in range(args.repeat + 1):  # the first round warms (plans, op registration)
            for name, fn in (("fwd", fwd), ("fwdbwd", fwdbwd), ("single", single_fb), ("concurrent", single_fb)):
                dist.barrier()
                if name == "single" and rank != 0:
                    continue
                t0 = time.perf_counter()
                fn()
                if i:
                    times[name].append(time.perf_counter() - t0)
        dist.barrier()
        t_fwd, t_fb = statistics.median(times["fwd"]), statistics.median(times["fwdbwd"])
        single = statistics.median(times["single"]) if rank == 0 else None
        concurrent = statistics.median(times["concurrent"])
        st = stats["fwdbwd"]
        queue.put((rank, {"fwd_s": t_fwd, "fwdbwd_s": t_fb, "single_fwdbwd_s": single,
                          "concurrent_fwdbwd_s": concurrent,
                          "threads": threads,
                          "sent": st.sent, "recv": st.recv, "model_recv": {p: st.model.recv[p][rank] for p in st.recv},
                          "ring_recv_bytes": st.ring_bytes, "lengths": st.lengths}))
        dist.destroy_process_group()
    except Exception:
        queue.put((rank, traceback.format_exc()))


def _measure(args):
    import multiprocessing
    from sattn.cli import Failure
    if args.dist_backend == "nccl":
        import torch
        if torch.cuda.device_count() < args.world:
            raise Failure(f"--dist-backend nccl: {args.world} processes need {args.world} CUDA GPUs, "
                          f"this machine has {torch.cuda.device_count()}")
    ctx = multiprocessing.get_context("spawn" if args.dist_backend == "nccl" else "fork")
    queue = ctx.Queue()
    print(f"running {args.world} processes ({args.dist_backend}), L={args.seq_len} ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_worker, args=(r, args, os.path.join(tmp, "store"), queue))
                 for r in range(args.world)]
        for p in procs:
            p.start()
        results = dict(queue.get() for _ in procs)
        for p in procs:
            p.join()
    errors = [f"rank {r}:\n{res}" for r, res in sorted(results.items()) if isinstance(res, str)]
    if errors:
        raise Failure("a rank failed:\n" + "\n".join(errors))
    spec = _spec(args)
    rows = []
    for r, res in sorted(results.items()):
        rows.append({"mode": "measure", "spec": str(spec), "seq_len": args.seq_len, "layout": args.layout,
                     "dist_backend": args.dist_backend, "rank": r, "world": args.world, "shard": res["lengths"][r],
                     "threads": res["threads"], "fwd_ms": 1e3 * res["fwd_s"], "fwdbwd_ms": 1e3 * res["fwdbwd_s"],
                     "single_half_fwdbwd_ms": 1e3 * results[0]["single_fwdbwd_s"],
                     "fwdbwd_over_single": res["fwdbwd_s"] / results[0]["single_fwdbwd_s"],
                     "concurrent_single_fwdbwd_ms": 1e3 * res["concurrent_fwdbwd_s"],
                     "fwdbwd_over_concurrent": res["fwdbwd_s"] / res["concurrent_fwdbwd_s"],
                     "kv_recv_bytes": res["recv"]["kv"], "kv_recv_model": res["model_recv"]["kv"],
                     "grad_recv_bytes": res["recv"]["grad"], "meta_recv_bytes": res["recv"]["meta"],
                     "ring_recv_bytes": res["ring_recv_bytes"]})
    _emit(args, rows, ("rank", "shard", "fwd_ms", "fwdbwd_ms", "single_half_fwdbwd_ms", "fwdbwd_over_single",
                       "concurrent_single_fwdbwd_ms", "fwdbwd_over_concurrent", "kv_recv_bytes", "kv_recv_model",
                       "ring_recv_bytes"))
    return 0
