"""Times torch SDPA on the CPU microbenchmark's shapes, as the peer for //cc/cpu:attention_bench.

  .venv/bin/python cc/cpu/sdpa_peer.py [--seq_len 8192] [--heads 4] [--dim 64] [--threads 2] [--repeats 5]

Dense SDPA, and SDPA given a boolean mask: SlidingWindow(1024, causal=True) as a mask, and a
block mask keeping 12.5% of 64x64 blocks (SDPA's masked path costs the same whatever the
pattern, so a random pattern of BlockTopK's density stands in for the data-dependent one).
Effective GFLOP/s use the same count as the C++ bench: 4 * D * visible pairs / time.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def timeit(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq_len", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    L, H, D = a.seq_len, a.heads, a.dim
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, H, L, D, generator=g) for _ in range(3))
    print(f"torch {torch.__version__} SDPA: B=1 H={H} L={L} D={D} fp32 threads={a.threads} repeats={a.repeats}")

    def report(name, t, pairs):
        print(f"{name:44s} median {t * 1e3:9.2f} ms  {4 * D * pairs / t / 1e9:7.1f} effective GFLOP/s")

    with torch.no_grad():
        t = timeit(lambda: F.scaled_dot_product_attention(q, k, v), a.repeats)
        report("SDPA dense", t, H * L * L)
        i = torch.arange(L)
        win = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < 1024)
        t = timeit(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=win), a.repeats)
        report("SDPA bool mask SlidingWindow(1024, causal)", t, H * int(win.sum()))
        del win
        nb = (L + 63) // 64
        blocks = torch.rand(nb, nb, generator=g) < 0.125
        blocks |= torch.eye(nb, dtype=torch.bool)
        blk = blocks.repeat_interleave(64, 0).repeat_interleave(64, 1)[:L, :L]
        t = timeit(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=blk), a.repeats)
        report("SDPA bool mask 12.5% of 64x64 blocks", t, H * int(blk.sum()))


if __name__ == "__main__":
    main()
