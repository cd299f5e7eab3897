"""Times sattn.imc on a 128k-token plan: BlockTopK(block=64, keep=0.125, causal=True), 32 query
heads, 8 kv heads. Prints the best of 3 for the mapping and cost alone and for the whole
estimate (dense baseline included); planning is not timed. docs/imc.md quotes its output:

    taskset -c 1 python examples/imc/time_mapping.py
"""
import time

import numpy as np

import sattn
import sattn.imc as imc
from sattn.imc import cost, mapping

B, Hq, Hkv, L, D = 1, 32, 8, 131072, 128
PLAN_D = 16   # the plan's selection needs q and k; the mapping's work does not depend on D


def main():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((B, Hq, L, PLAN_D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, L, PLAN_D), dtype=np.float32)
    plan = sattn.plan(sattn.BlockTopK(block=64, keep=0.125, causal=True), q, k)
    del q, k
    print(f"plan: {plan.nnz} entries, density {plan.density():.4f}")
    for name in imc.designs():
        a = imc.load(name)
        best_map = best_all = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            ent = mapping.entries_from_plan(plan, Hkv, D)
            mp = mapping.map_entries(ent, a)
            cost.price(cost.attention_activity(ent, mp, a), a)
            best_map = min(best_map, time.perf_counter() - t)
            t = time.perf_counter()
            imc.estimate(plan, (B, Hq, L, D), (B, Hkv, L, D), a)
            best_all = min(best_all, time.perf_counter() - t)
        print(f"{name}: map+cost {best_map:.2f} s, estimate with dense baseline {best_all:.2f} s")


if __name__ == "__main__":
    main()
