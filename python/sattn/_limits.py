"""Size limits of a call, checked before any allocation or work: the Python copy of the C++
ones (cc/include/sattn/spec.h, kMax*). `sattn._cc.limits()` exposes the C++ values and
python/bad_inputs_test.py asserts both sides agree.

The kernels and the plan/problem files index elements with int32, so every tensor's element count
fits it (and with it every dimension and the B*Hq*Lq query rows); the plan's int32 row_ptr and
col_idx bound its worst case, plan rows x key blocks.
"""
from __future__ import annotations

INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1

# Elements of any one tensor (q, k, v, out): B*Hq*Lq*D and B*Hkv*Lk*D.
MAX_ELEMENTS = INT32_MAX
# Worst-case plan entries: plan rows x key blocks (kMaxPlanEntries).
MAX_PLAN_ENTRIES = INT32_MAX
# Worker threads a call may ask for (0 = one per hardware thread).
MAX_THREADS = 1024
# float32's normal range: a scale outside it rounds to 0 or inf in the float32 kernels.
MIN_SCALE = 2.0**-126
MAX_SCALE = 2.0**127


def check_sizes(B: int, Hq: int, Hkv: int, Lq: int, Lk: int, D: int) -> None:
    """ValueError naming the tensor whose size exceeds a limit (Python ints: no overflow)."""
    for name, shape in (("q", (B, Hq, Lq, D)), ("k", (B, Hkv, Lk, D)), ("v", (B, Hkv, Lk, D))):
        n = shape[0] * shape[1] * shape[2] * shape[3]
        if n > MAX_ELEMENTS:
            raise ValueError(f"{name}: expected at most {MAX_ELEMENTS} elements (int32 indexing), got "
                             f"{n} for shape {shape}")


def check_plan_size(B: int, Hq: int, Lq: int, Lk: int, block: int, per_head: bool) -> None:
    """ValueError naming Lk when the plan's worst case (rows x key blocks; rows per (batch, head)
    for the value-dependent specs) exceeds MAX_PLAN_ENTRIES: the C++ ValidatePlanSize rule."""
    n_k_blocks = -(-Lk // block)
    n_q_blocks = n_k_blocks - (Lk - Lq) // block
    entries = (B * Hq if per_head else 1) * n_q_blocks * n_k_blocks
    if entries > MAX_PLAN_ENTRIES:
        raise ValueError(f"Lk: expected plan rows x key blocks <= {MAX_PLAN_ENTRIES} (block {block}; use a "
                         f"larger block or tile), got {entries} for B*Hq={B * Hq}, Lq={Lq}, Lk={Lk}")
