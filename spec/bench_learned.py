"""NSA and MoBA vs Dense causal through sattn, forward and forward+backward, on one shape.

    bazel run //spec:bench_learned -- --seq_len 8192 --heads 4 --kv_heads 1 --dim 64 --threads 2

Runs sattn.Dense(causal=True), MoBA (the paper's block 512, top-3: sattn.moba_attention, or with
--methods moba_plan sparse_attention(..., sattn.MoBA())) and sattn.NSA (the paper's l=32, d=16,
l'=64, n=16, w=512) on the same float32 q, k, v (B=1), on --device (cpu, or
cuda: backend 'auto' is triton there). Each time is the best of --repeat runs after a warm-up;
forward+backward is out.backward(g) with leaves q, k, v (and NSA's parameters). MoBA and NSA times
include building their plans (the selection is per call). Prints one JSON row per (method, pass)
on stdout (also to --out) and a table on stderr; speedup is Dense's time over the method's.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq_len", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=4, help="query heads Hq")
    ap.add_argument("--kv_heads", type=int, default=1, help="key/value heads Hkv (Hq a multiple)")
    ap.add_argument("--dim", type=int, default=64, help="head dim D")
    ap.add_argument("--threads", type=int, default=0, help="cpu backend and torch threads (0 = one per core)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--methods", default="dense,moba,nsa",
                    help="comma-separated: dense, moba (sattn.moba_attention), moba_plan (sparse_attention with "
                         "sattn.MoBA()), nsa")
    ap.add_argument("--out", default=None, help="also write the JSON rows to this file")
    args = ap.parse_args(argv)
    import torch
    import sattn
    if args.threads:
        torch.set_num_threads(args.threads)
    L, H, Hkv, D = args.seq_len, args.heads, args.kv_heads, args.dim
    g = torch.Generator().manual_seed(0)
    q, k, v, dout = (torch.randn(1, h, L, D, generator=g).to(args.device) for h in (H, Hkv, Hkv, H))
    opts = {"threads": args.threads} if args.device == "cpu" else {}
    nsa = sattn.NSA(D).to(args.device)

    def method(name):
        if name == "dense":
            return lambda q, k, v: sattn.sparse_attention(q, k, v, sattn.Dense(causal=True), **opts)
        if name == "moba":
            return lambda q, k, v: sattn.moba_attention(q, k, v, threads=args.threads)
        if name == "moba_plan":
            return lambda q, k, v: sattn.sparse_attention(q, k, v, sattn.MoBA(), **opts)
        if name == "nsa":
            return lambda q, k, v: nsa(q, k, v, threads=args.threads)
        raise SystemExit(f"--methods: unknown method {name!r}; expected dense, moba, moba_plan or nsa")

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn):
        fn()
        sync()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    def fwd(f):
        with torch.no_grad():
            f(q, k, v)

    def fwdbwd(f):
        leaves = [x.detach().requires_grad_() for x in (q, k, v)]
        f(*leaves).backward(dout)

    base = dict(seq_len=L, Hq=H, Hkv=Hkv, D=D, B=1, dtype="float32", device=args.device, threads=args.threads,
                machine=f"{platform.machine()} {platform.processor() or ''}".strip(), cpus=os.cpu_count(),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                torch=torch.__version__, sattn=sattn.__version__)
    rows = []
    for name in args.methods.split(","):
        f = method(name)
        for pas, run in (("fwd", fwd), ("fwd+bwd", fwdbwd)):
            print(f"{name} {pas} L={L} ...", file=sys.stderr, flush=True)
            rows.append(dict(base, method=name, pass_=pas, time_s=timed(lambda: run(f))))
    dense = {r["pass_"]: r["time_s"] for r in rows if r["method"] == "dense"}
    out = open(args.out, "w") if args.out else None
    for r in rows:
        r["pass"] = r.pop("pass_")
        r["speedup_vs_dense"] = dense[r["pass"]] / r["time_s"] if r["pass"] in dense else None
        line = json.dumps(r)
        print(line)
        if out:
            out.write(line + "\n")
    print(f"\nL={L} Hq={H} Hkv={Hkv} D={D} {args.device} threads={args.threads}", file=sys.stderr)
    print(f"{'method':8} {'pass':8} {'time_s':>9} {'vs dense':>9}", file=sys.stderr)
    for r in rows:
        sp = "" if r["speedup_vs_dense"] is None else f"{r['speedup_vs_dense']:.2f}x"
        print(f"{r['method']:8} {r['pass']:8} {r['time_s']:9.3f} {sp:>9}", file=sys.stderr)


if __name__ == "__main__":
    main()
