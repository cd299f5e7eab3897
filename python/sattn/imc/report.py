"""The estimate's report: one dict (JSON-ready), a text table, and rows for `sattn report`."""
from __future__ import annotations

import json

ENERGY_KEYS = ("array_read", "dac", "adc", "accumulate", "write", "digital", "interconnect", "static")


class Report(dict):
    """sattn.imc.estimate's result: a dict (json.dumps works) with the Mapping kept aside.

    Keys: design, spec, shape, block, visible_pairs, density, macs (2 x visible pairs x D: Q·Kᵀ
    and P·V), macs_executed (what the arrays compute, whole tiles), energy_j, energy_split_j,
    latency_s, latency_split_s, bottleneck, area_mm2, area_split_mm2, tops_per_w, mapping,
    dense (the same keys for dense attention of the same shape), savings, accuracy (or None)."""

    mapping_detail = None   # the sattn.imc.mapping.Mapping of the sparse plan

    def table(self) -> str:
        d = self["dense"]
        sh = self["shape"]
        lines = [f"{self['design']}: {self['spec']}",
                 f"  shape B={sh['B']} Hq={sh['Hq']} Hkv={sh['Hkv']} Lq={sh['Lq']} Lk={sh['Lk']} D={sh['D']}, "
                 f"block {self['block']}, density {self['density']:.4f}",
                 f"  {'':<16}{'sparse':>14}{'dense':>14}{'dense/sparse':>14}"]

        def row(name, a, b, fmt):
            ratio = b / a if a else float("inf")
            lines.append(f"  {name:<16}{fmt(a):>14}{fmt(b):>14}{ratio:>13.2f}x")

        row("MACs", self["macs"], d["macs"], lambda x: f"{x:.4g}")
        row("energy (J)", self["energy_j"], d["energy_j"], lambda x: f"{x:.4g}")
        for key in ENERGY_KEYS:
            a, b = self["energy_split_j"][key], d["energy_split_j"][key]
            if a or b:
                row(f"  {key}", a, b, lambda x: f"{x:.3g}")
        row("latency (s)", self["latency_s"], d["latency_s"], lambda x: f"{x:.4g}")
        for key, a in self["latency_split_s"].items():
            row(f"  {key}", a, d["latency_split_s"][key], lambda x: f"{x:.3g}")
        lines.append(f"  bottleneck      {self['bottleneck']:>14}{d['bottleneck']:>14}")
        lines.append(f"  area            {self['area_mm2']:>11.4g} mm^2 (" + ", ".join(
            f"{k} {v:.3g}" for k, v in self["area_split_mm2"].items()) + ")")
        m = self["mapping"]
        lines.append(f"  mapping         {m['arrays_per_k_block']} + {m['arrays_per_v_block']} arrays per K/V block, "
                     f"{m['slots']} slots ({m['slots_used']} used), {m['blocks_written']} blocks written, "
                     f"{m['rewrites']} rewrites, reuse {m['reuse_per_block']['min']}/"
                     f"{m['reuse_per_block']['mean']:.1f}/{m['reuse_per_block']['max']} tiles per block, "
                     f"cells used {100 * m['cell_utilisation']:.0f}%")
        if self.get("accuracy"):
            a = self["accuracy"]
            lines.append(f"  accuracy        max |err| {a['max_abs_err']:.3g}, mean {a['mean_abs_err']:.3g} "
                         f"(vs float64; |ref| max {a['ref_max_abs']:.3g}; noise sigma {a['noise_sigma']:g}, seed {a['seed']})")
        return "\n".join(lines)

    def row(self) -> dict:
        """One flat JSON row (`sattn report` plots energy and latency vs density from these)."""
        sh = self["shape"]
        r = {"system": f"imc:{self['design']}", "backend": "imc", "design": self["design"], "spec": self["spec"],
             **sh, "block": self["block"], "density": self["density"], "macs": self["macs"],
             "energy_j": self["energy_j"], "latency_s": self["latency_s"], "area_mm2": self["area_mm2"],
             "dense_energy_j": self["dense"]["energy_j"], "dense_latency_s": self["dense"]["latency_s"],
             "energy_split_j": self["energy_split_j"], "bottleneck": self["bottleneck"],
             "mapping": self["mapping"]}
        if self.get("accuracy"):
            r["imc_max_abs_err"] = self["accuracy"]["max_abs_err"]
            r["imc_mean_abs_err"] = self["accuracy"]["mean_abs_err"]
        return r

    def json(self) -> str:
        return json.dumps(self, sort_keys=True)
