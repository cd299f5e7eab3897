"""Times sattn.varlen_attention and sattn.paged_attention against their plain alternatives.

  bazel run //tools:varlen_bench -- varlen --docs 16 --min_len 256 --max_len 4096
  bazel run //tools:varlen_bench -- paged --batch 4 --hq 32 --hkv 8 --dim 128 --seq_len 65536 --page 64

varlen: one packed call vs one sparse_attention call per document vs one right-padded batch
(B = documents, L = the longest), forward, same spec. paged: paged decode vs contiguous decode
(the same keys as a (B, Hkv, Lk, D) tensor), with the K/V bytes each reads over its time.
Prints one JSON row per system to stdout; progress goes to stderr. Median of --repeat runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

import sattn

SPECS = {
    "dense_causal": lambda a: sattn.Dense(causal=True),
    "sliding_causal": lambda a: sattn.SlidingWindow(window=a.window, causal=True),
}


def _median_s(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(**fields):
    print(json.dumps(fields), flush=True)


def run_varlen(a) -> None:
    rng = np.random.default_rng(a.seed)
    lens = rng.integers(a.min_len, a.max_len + 1, size=a.docs)
    lens[0], lens[-1] = a.min_len, a.max_len
    cu = torch.tensor(np.concatenate([[0], np.cumsum(lens)]), dtype=torch.int32)
    g = torch.Generator().manual_seed(a.seed)
    T, Lmax = int(lens.sum()), int(lens.max())
    q = torch.randn(T, a.heads, a.dim, generator=g)
    k, v = (torch.randn(T, a.heads, a.dim, generator=g) for _ in range(2))
    qp, kp, vp = (torch.zeros(a.docs, a.heads, Lmax, a.dim) for _ in range(3))
    for d in range(a.docs):
        for src, dst in ((q, qp), (k, kp), (v, vp)):
            dst[d, :, :lens[d]] = src[cu[d]:cu[d + 1]].transpose(0, 1)
    for name in a.specs:
        spec = SPECS[name](a)
        shape = dict(docs=a.docs, total_tokens=T, longest=Lmax, heads=a.heads, dim=a.dim, spec=str(spec))
        systems = {
            "varlen": lambda: sattn.varlen_attention(q, k, v, cu, cu, spec, backend="cpu"),
            "per_document": lambda: [sattn.sparse_attention(
                q[cu[d]:cu[d + 1]].transpose(0, 1)[None], k[cu[d]:cu[d + 1]].transpose(0, 1)[None],
                v[cu[d]:cu[d + 1]].transpose(0, 1)[None], spec, backend="cpu", tile=64) for d in range(a.docs)],
            "padded_batch": lambda: sattn.sparse_attention(qp, kp, vp, spec, backend="cpu", tile=64),
        }
        plan = sattn.varlen_plan(spec, q, k, cu, cu)
        systems["varlen_reused_plan"] = lambda: sattn.varlen_attention(q, k, v, cu, cu, spec, backend="cpu",
                                                                       plan=plan)
        for system, fn in systems.items():
            print(f"varlen: {name} {system} ...", file=sys.stderr, flush=True)
            _row(bench="varlen", system=system, seconds=_median_s(fn, a.repeat), **shape)


def run_paged(a) -> None:
    g = torch.Generator().manual_seed(a.seed)
    B, page = a.batch, a.page
    pages = -(-a.seq_len // page)
    num_pages = B * pages
    k_cache = torch.randn(num_pages, page, a.hkv, a.dim, generator=g)
    v_cache = torch.randn(num_pages, page, a.hkv, a.dim, generator=g)
    table = torch.randperm(num_pages, generator=g).reshape(B, pages).to(torch.int32)
    seq = torch.full((B,), a.seq_len, dtype=torch.int32)
    q = torch.randn(B, a.hq, 1, a.dim, generator=g)
    flat = lambda c: c[table.long()].reshape(B, pages * page, a.hkv, a.dim)[:, :a.seq_len].permute(0, 2, 1, 3)
    k, v = flat(k_cache).contiguous(), flat(v_cache).contiguous()
    spec = sattn.Dense(causal=True)
    kv_bytes = 2 * B * a.hkv * a.seq_len * a.dim * k.element_size()
    plan = sattn.paged_plan(spec, q, k_cache, table, seq, page_size=page)
    workspace = {}   # kept across calls, as a decode loop keeps it across steps
    systems = {
        "contiguous": lambda: sattn.sparse_attention(q, k, v, spec, backend="cpu", tile=page),
        "paged": lambda: sattn.paged_attention(q, k_cache, v_cache, table, seq, spec, page_size=page,
                                               backend="cpu"),
        "paged_reused_plan": lambda: sattn.paged_attention(q, k_cache, v_cache, table, seq, spec, page_size=page,
                                                           backend="cpu", plan=plan),
        "paged_workspace": lambda: sattn.paged_attention(q, k_cache, v_cache, table, seq, spec, page_size=page,
                                                         backend="cpu", workspace=workspace),
    }
    for system, fn in systems.items():
        print(f"paged: {system} ...", file=sys.stderr, flush=True)
        t = _median_s(fn, a.repeat)
        _row(bench="paged_decode", system=system, seconds=t, kv_gb_per_s=kv_bytes / t / 1e9, batch=B, hq=a.hq,
             hkv=a.hkv, dim=a.dim, seq_len=a.seq_len, page=page)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="bench", required=True)
    v = sub.add_parser("varlen", help="packed documents vs per-document calls vs a padded batch")
    v.add_argument("--docs", type=int, default=16)
    v.add_argument("--min_len", type=int, default=256)
    v.add_argument("--max_len", type=int, default=4096)
    v.add_argument("--heads", type=int, default=4)
    v.add_argument("--dim", type=int, default=64)
    v.add_argument("--window", type=int, default=256, help="sliding_causal: window")
    v.add_argument("--specs", nargs="+", choices=sorted(SPECS), default=["sliding_causal", "dense_causal"])
    pg = sub.add_parser("paged", help="paged decode vs contiguous decode")
    pg.add_argument("--batch", type=int, default=4)
    pg.add_argument("--hq", type=int, default=32)
    pg.add_argument("--hkv", type=int, default=8)
    pg.add_argument("--dim", type=int, default=128)
    pg.add_argument("--seq_len", type=int, default=65536)
    pg.add_argument("--page", type=int, default=64)
    for s in (v, pg):
        s.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--torch_threads", type=int, default=1,
                       help="torch's intra-op threads for the copies around the kernels (the sattn kernels "
                            "run their own threads); 1 avoids torch's pool waking on a busy 2-core machine")
    a = p.parse_args(argv)
    torch.set_num_threads(a.torch_threads)
    (run_varlen if a.bench == "varlen" else run_paged)(a)


if __name__ == "__main__":
    main()
