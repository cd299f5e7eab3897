"""sattn.imc: sparse attention mapped onto compute-in-memory arrays (docs/imc.md).

    import sattn, sattn.imc
    r = sattn.imc.estimate(sattn.BlockTopK(block=64, keep=0.125), q, k, "isaac-reram-32nm")
    print(r.table()); r["energy_j"], r["dense"]["energy_j"]
    sattn.imc.designs()          # the shipped architecture files

Modules: arch (description files, validation), mapping (BlockPlan -> arrays), cost (energy,
latency, area), numerics (the quantised array model vs float64), report.
"""
from __future__ import annotations

from sattn.imc.arch import Arch, ArchError, designs, load
from sattn.imc.report import Report

__all__ = ["estimate", "designs", "load", "peak", "accuracy", "Arch", "ArchError", "Report"]


def _shape_of(x, name):
    if isinstance(x, tuple) and all(isinstance(v, int) for v in x):
        shape = x
    elif hasattr(x, "shape"):
        shape = tuple(int(s) for s in x.shape)
    else:
        raise TypeError(f"{name}: expected an array or a shape tuple, got {type(x).__name__}")
    if len(shape) != 4:
        raise ValueError(f"{name}: expected 4 dimensions (B, H, L, D), got shape {shape}")
    return shape


def _costs(ent, arch, replicate):
    from sattn.imc import cost, mapping
    mp = mapping.map_entries(ent, arch, replicate)
    act = cost.attention_activity(ent, mp, arch)
    priced = cost.price(act, arch)
    visible, executed = ent.visible_pairs, ent.executed_pairs
    out = {"visible_pairs": visible, "density": visible / float(ent.B * ent.Hq * ent.Lq * ent.Lk),
           "macs": 2 * visible * ent.D, "macs_executed": 2 * executed * ent.D, **priced,
           **cost.area(arch), "activity": act.to_dict()}
    out["tops_per_w"] = 2.0 * out["macs"] / out["energy_j"] / 1e12 if out["energy_j"] else 0.0
    out["mapping"] = mp.summary()
    return out, mp


def estimate(spec_or_plan, q, k, arch, *, v=None, tile: int = 64, scale=None, threads: int = 0,
             accuracy: bool = False, noise_sigma=None, seed: int = 0, replicate: bool = True) -> Report:
    """Energy, latency and area of attention under `spec_or_plan` on the CIM design `arch`.

    spec_or_plan: a sattn spec (planned here with sattn.plan(spec, q, k, tile=, scale=)) or a
    BlockPlan from sattn.plan; q (B, Hq, Lq, D) and k (B, Hkv, Lk, D) as arrays (any sattn
    input), or with a plan their shape tuples. arch: a name from designs(), a .json path, a dict
    or an Arch. The "dense" entry prices dense attention of the same shape and block (causal when
    the spec is). accuracy=True (needs v and arrays) also runs the numerical array model against
    the float64 reference (noise_sigma: cell variation, default the design's; seed).
    replicate=False writes each K/V block once even when arrays are spare (fewer writes, longer
    latency: a block read by many queries serialises them).
    """
    import sattn
    from sattn import specs as S
    from sattn.imc import mapping, numerics
    a = load(arch)
    if isinstance(spec_or_plan, sattn.BlockPlan):
        plan = spec_or_plan
        spec = plan.source.spec if plan.source is not None else None
        qs, ks = _shape_of(q, "q"), _shape_of(k, "k")
        if (plan.B, plan.Hq, plan.Lq, plan.Lk) != (qs[0], qs[1], qs[2], ks[2]):
            raise ValueError(f"plan: built for (B, Hq, Lq, Lk)={(plan.B, plan.Hq, plan.Lq, plan.Lk)}, "
                             f"got {(qs[0], qs[1], qs[2], ks[2])}")
        if ks[3] != qs[3] or ks[0] != qs[0]:
            raise ValueError(f"k: expected shape (B={qs[0]}, Hkv, Lk, D={qs[3]}), got {ks}")
    elif isinstance(spec_or_plan, S.Spec):
        spec = spec_or_plan
        plan = sattn.plan(spec, q, k, tile=tile, scale=scale, threads=threads)
        qs, ks = _shape_of(q, "q"), _shape_of(k, "k")
    else:
        raise TypeError(f"spec_or_plan: expected a sattn spec or a sattn.BlockPlan, got {type(spec_or_plan).__name__}")
    B, Hq, Lq, D = qs
    Hkv = ks[1]
    if Hkv < 1 or Hq % Hkv:
        raise ValueError(f"k: expected Hkv dividing Hq={Hq}, got {Hkv}")
    ent = mapping.entries_from_plan(plan, Hkv, D)
    sparse, mp = _costs(ent, a, replicate)
    causal = bool(getattr(spec, "causal", False))
    dense, _ = _costs(mapping.dense_entries(B, Hq, Hkv, Lq, ent.Lk, D, plan.block, causal), a, replicate)
    rep = Report(design=a.name, spec=str(spec) if spec is not None else "BlockPlan",
                 shape={"B": B, "Hq": Hq, "Hkv": Hkv, "Lq": Lq, "Lk": ent.Lk, "D": D}, block=plan.block,
                 **sparse, dense={kk: vv for kk, vv in dense.items() if kk != "mapping"} | {"causal": causal},
                 savings={"energy": dense["energy_j"] / sparse["energy_j"] if sparse["energy_j"] else None,
                          "latency": dense["latency_s"] / sparse["latency_s"] if sparse["latency_s"] else None},
                 accuracy=None)
    rep.mapping_detail = mp
    if accuracy:
        if v is None or isinstance(q, tuple) or isinstance(k, tuple):
            raise ValueError("accuracy: needs the arrays q, k and v (v=...)")
        from sattn import _inputs
        sc = _inputs.resolve_scale(scale, D)
        mask = plan.to_dense_mask()
        rep["accuracy"] = numerics.errors(_inputs.to_numpy(q, "float64"), _inputs.to_numpy(k, "float64"),
                                          _inputs.to_numpy(v, "float64"), mask, plan.block, a, scale=sc,
                                          noise_sigma=noise_sigma, seed=seed)
    return rep


def peak(arch) -> dict:
    """The design's peak efficiency as the model prices it (every array one MVM, weights resident):
    {"tops_per_w", "tops_per_mm2", ...}; the shipped files' test compares it with the paper."""
    from sattn.imc import cost
    return cost.peak(load(arch))


def accuracy(spec_or_plan, q, k, v, arch, *, tile: int = 64, scale=None, noise_sigma=None, seed: int = 0) -> dict:
    """The numerical array model vs the float64 reference: {"max_abs_err", "mean_abs_err", ...}."""
    import sattn
    from sattn import _inputs
    from sattn.imc import numerics
    a = load(arch)
    plan = spec_or_plan if isinstance(spec_or_plan, sattn.BlockPlan) else sattn.plan(
        spec_or_plan, q, k, tile=tile, scale=scale)
    sc = _inputs.resolve_scale(scale, _shape_of(q, "q")[3])
    return numerics.errors(_inputs.to_numpy(q, "float64"), _inputs.to_numpy(k, "float64"),
                           _inputs.to_numpy(v, "float64"), plan.to_dense_mask(), plan.block, a, scale=sc,
                           noise_sigma=noise_sigma, seed=seed)
