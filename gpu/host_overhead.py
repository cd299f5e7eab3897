"""Host time of sattn's own Python per eager `ops.attention` call, with the Triton launches stubbed.

Runs on any machine (CPU tensors; no kernel runs, so the numbers are Python + torch bookkeeping
only, not Triton's launcher and not GPU time):

  .venv/bin/python gpu/host_overhead.py [--seq_len 4096] [--profile]

Prints microseconds per forward and per forward+backward call for a static 12.5% plan and for
SlidingWindow(1024, causal); --profile adds a cProfile table of the forward.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "1"   # CPU tensors pass the triton backend's device check
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "python")]

import torch  # noqa: E402

import sattn  # noqa: E402
from sattn_triton import backward as Bw  # noqa: E402
from sattn_triton import forward as F  # noqa: E402
from sattn_triton import ops  # noqa: E402
from sattn_triton import plans as P  # noqa: E402


class _NoLaunch:
    """Stands in for a @triton.jit kernel: kernel[grid](...) does nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def stub_kernels() -> None:
    F._fwd_kernel = _NoLaunch()
    for name in ("_bwd_dq_kernel", "_bwd_dkdv_kernel"):
        setattr(Bw, name, _NoLaunch())


def best_us(fn, n: int) -> float:
    """Best of 5 means over n calls, in microseconds (after 20 warm-up calls)."""
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq_len", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--head_dim", type=int, default=128)
    ap.add_argument("--profile", action="store_true", help="cProfile the static-plan forward")
    args = ap.parse_args()
    stub_kernels()
    B, H, L, D = 1, args.heads, args.seq_len, args.head_dim
    q, k, v = (torch.randn(B, H, L, D, requires_grad=True) for _ in range(3))
    kept = torch.rand(1, H, L // 128, L // 128, generator=torch.Generator().manual_seed(0)) < 0.125
    kept[..., 0] = True
    plan = P.from_block_table(kept, B=B, Hq=H, Lq=L, Lk=L, block=128, causal=False)
    dout = torch.randn(B, H, L, D)
    cases = {"static 12.5% plan": (sattn.Dense(), plan),
             "SlidingWindow(1024, causal)": (sattn.SlidingWindow(window=1024, causal=True), None)}
    for name, (spec, pl) in cases.items():
        def fwd():
            with torch.no_grad():
                ops.attention(q, k, v, spec, plan=pl)

        def fwd_bwd():
            for x in (q, k, v):
                x.grad = None
            out, _ = ops.attention(q, k, v, spec, plan=pl)
            out.backward(dout)
        print(f"{name}: forward {best_us(fwd, 300):.0f} us, forward+backward {best_us(fwd_bwd, 100):.0f} us",
              flush=True)
    if args.profile:
        import cProfile
        import pstats
        spec, pl = cases["static 12.5% plan"]
        prof = cProfile.Profile()
        prof.enable()
        with torch.no_grad():
            for _ in range(2000):
                ops.attention(q, k, v, spec, plan=pl)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
