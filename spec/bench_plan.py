"""Plan construction from mask functions: sattn.plan(MaskFn(fn)) vs FlexAttention's
create_block_mask with the same mask_mod, in the same run. JSON rows, one per (mask, tool).

    bazel run //spec:bench_plan -- --seq_len 131072 --block 128 --threads 2 --flex causal

Each row: mask, tool ("sattn" or "flex"), seq_len, block, first_s (first call: for sattn an
uncached plan, for Flex its first call in this process), again_s (a second call: sattn's cache
hit, Flex's rebuild), nnz blocks, partial blocks, threads, machine, date.
"""
import argparse
import datetime
import json
import platform
import sys
import time


def masks(L):
    import torch
    doc = torch.repeat_interleave(torch.arange(16), -(-L // 16))[:L]
    return {
        "causal": lambda b, h, q, kv: q >= kv,
        "document16": lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv),
        "sliding1024": lambda b, h, q, kv: (q >= kv) & (q - kv < 1024),
        "prefix_lm4096": lambda b, h, q, kv: (kv < 4096) | (q >= kv),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq_len", type=int, default=131072)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--masks", default="causal,document16,sliding1024,prefix_lm4096")
    ap.add_argument("--flex", default="", help="comma-separated masks to also build with create_block_mask "
                                               "(seconds to minutes each at 131072 on a CPU)")
    ap.add_argument("--out", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    import torch
    import sattn
    torch.set_num_threads(args.threads)
    L, blk = args.seq_len, args.block
    q = torch.zeros(1, 1, L, 8)
    table = masks(L)
    base = dict(seq_len=L, block=blk, threads=args.threads, machine=f"{platform.machine()} "
                f"{platform.processor() or ''}".strip(), cpus=__import__("os").cpu_count(),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                torch=torch.__version__)
    rows = []
    for name in args.masks.split(","):
        fn = table[name]
        t0 = time.perf_counter()
        plan = sattn.plan(sattn.MaskFn(fn), q, q, tile=blk)
        t1 = time.perf_counter()
        sattn.plan(sattn.MaskFn(fn), q, q, tile=blk)
        t2 = time.perf_counter()
        rows.append(dict(base, mask=name, tool="sattn", first_s=t1 - t0, again_s=t2 - t1, nnz=plan.nnz,
                         partial=int((plan.mask_idx >= 0).sum())))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for name in filter(None, args.flex.split(",")):
        from torch.nn.attention.flex_attention import create_block_mask
        fn = table[name]
        t0 = time.perf_counter()
        bm = create_block_mask(fn, None, None, L, L, device="cpu", BLOCK_SIZE=blk)
        t1 = time.perf_counter()
        create_block_mask(fn, None, None, L, L, device="cpu", BLOCK_SIZE=blk)
        t2 = time.perf_counter()
        full = 0 if bm.full_kv_num_blocks is None else int(bm.full_kv_num_blocks.sum())
        rows.append(dict(base, mask=name, tool="flex", first_s=t1 - t0, again_s=t2 - t1,
                         nnz=int(bm.kv_num_blocks.sum()) + full, partial=int(bm.kv_num_blocks.sum())))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
