"""The interface every sattn backend module implements.

A backend lives in `sattn/backends/<name>.py` and defines:

    NAME: str
    def available() -> tuple[bool, str]
        Whether the backend can run here, and if not, a one-line reason (e.g. "no CUDA device",
        "//rvv:runner not built"). Must be cheap and must not raise.
    def attention(q, k, v, spec, *, scale: float, return_lse: bool, **options) -> BackendResult
        q (B,Hq,Lq,D), k and v (B,Hkv,Lk,D), already validated by sattn.api; numpy float32
        arrays for host/out-of-process backends (or torch tensors for backends that declare
        TAKES_TORCH = True). `scale` is resolved (never None).
    def bench_peers(q, k, v, spec, *, scale: float, repeat: int, **options) -> list[BackendResult]
        Optional. The peers `bench --compare` runs in the same process for this backend (torch
        SDPA, FlexAttention, scalar/autovectorised RVV builds, the CPU backend beside RoCC, ...).

The bench turns each BackendResult into one JSON row (docs/bench.md).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class BackendResult:
    out: Any                        # (B,Hq,Lq,D), same dtype as q
    lse: Optional[Any] = None       # (B,Hq,Lq) float32, -inf for rows with no visible key
    counters: dict = dataclasses.field(default_factory=dict)  # instructions, cycles, bytes, ...
    time_s: Optional[float] = None  # median wall time when the backend timed itself
    name: Optional[str] = None      # peer name for bench_peers rows ("sdpa_dense", "rvv_scalar")
    note: str = ""                  # free text shown in the table (e.g. "mask build 34 s one-off")
