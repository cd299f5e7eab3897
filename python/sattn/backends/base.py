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
    def attention_backward(q, k, v, out, lse, dout, dlse, plan, *, scale: float, **options)
            -> BackendGrads
        Optional (a backend without it raises sattn.GradientNotSupported when asked for
        gradients). The gradients of the forward call that returned `out` and `lse` with `plan`
        (that call's BackendResult.plan, reused, never re-planned). numpy float32 arrays: q, out,
        dout (B,Hq,Lq,D); k, v (B,Hkv,Lk,D); lse (B,Hq,Lq) (-inf for empty rows); dlse
        (B,Hq,Lq) or None (no gradient through lse). Returns dq (B,Hq,Lq,D) and dk, dv
        (B,Hkv,Lk,D), float32, dk/dv summed over each query group (GQA). With P = exp(S - lse)
        over the visible pairs and delta_i = sum_d dout[i,d] * out[i,d] - dlse[i]:
          dv_j = sum_i P_ij dout_i,  dS_ij = P_ij (dout_i . v_j - delta_i),
          dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i;
        rows with no visible key contribute nothing (docs/contract.md, "Gradients").
        `options` are the forward's backend options.
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
    plan: Any = None                # the sattn.BlockPlan the forward ran (attention_backward reuses it)


@dataclasses.dataclass
class BackendGrads:
    dq: Any                         # (B,Hq,Lq,D) float32
    dk: Any                         # (B,Hkv,Lk,D) float32, summed over each query group
    dv: Any                         # (B,Hkv,Lk,D) float32
    counters: dict = dataclasses.field(default_factory=dict)
    time_s: Optional[float] = None
