"""`sattn report RESULTS.jsonl -o report.html`: bench rows as plots in one self-contained page.

Plots (each drawn when the rows have what it needs; the page says which were left out and why):
  time and speedup vs L  every system of a (spec, backend) group, and the backend's speedup over
                         each wall-time peer (peer time / backend time);
  density vs L           what the spec keeps;
  error vs tolerance     max |out - float64 reference| per system, against the bf16/fp32 scale;
  RoCC roofline          MAC/cycle achieved vs arithmetic intensity (MACs per DMA byte);
  RVV instruction mix    the counting plugin's classes per system;
  IMC energy, latency    `sattn imc` rows: energy and latency vs density per design, dense dashed.
  quality vs FLOPs       `sattn eval` rows: each task's metric (bits per byte, recall accuracy)
                         against attention FLOPs per spec, the Pareto frontier drawn.
Images are PNGs embedded as base64 data URIs: the page needs no other file.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict

from sattn.cli import Failure, UsageError

INSN_CLASSES = ("scalar_alu", "scalar_mem", "branch", "vec_cfg", "vec_arith", "vec_mem")


def read_rows(paths) -> list:
    rows = []
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"{path}: {e.strerror}") from None
        stripped = text.lstrip()
        try:
            if stripped.startswith("["):
                got = json.loads(stripped)
            else:
                got = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}: not JSON lines or a JSON list of bench rows ({e})") from None
        for i, r in enumerate(got):
            if not isinstance(r, dict) or "system" not in r or "Lk" not in r:
                raise UsageError(f"{path}: row {i + 1} is not a bench row (docs/bench.md): no 'system'/'Lk'")
        rows += got
    if not rows:
        raise UsageError("no rows in " + ", ".join(paths))
    return rows


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _group(r):
    # Rows of one curve differ in L only: same spec (and fields), backend, dtype, heads, head size.
    return (r["spec"], r["backend"], r.get("dtype"), r.get("Hq"), r.get("D"),
            json.dumps(r.get("spec_params", {}), sort_keys=True))


def plot_time_speedup(rows, plt):
    groups = defaultdict(list)
    for r in rows:
        if r.get("time_ms") is not None and r.get("time_kind") == "wall time":
            groups[_group(r)].append(r)
    groups = {g: rs for g, rs in groups.items() if len({r["Lk"] for r in rs}) >= 1}
    if not groups:
        return None, "time vs L: no wall-time rows"
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.6 * len(groups)), squeeze=False)
    for (ax_t, ax_s), (g, rs) in zip(axes, sorted(groups.items(), key=lambda kv: str(kv[0]))):
        by_sys = defaultdict(dict)
        for r in rs:
            by_sys[r["system"]][r["Lk"]] = r["time_ms"]
        for system, pts in sorted(by_sys.items()):
            Ls = sorted(pts)
            ax_t.plot(Ls, [pts[L] for L in Ls], marker="o", label=system)
        main = by_sys.get(g[1], {})
        for system, pts in sorted(by_sys.items()):
            if system == g[1]:
                continue
            Ls = sorted(L for L in pts if L in main)
            if Ls:
                ax_s.plot(Ls, [pts[L] / main[L] for L in Ls], marker="o", label=f"vs {system}")
        ax_t.set(xscale="log", yscale="log", xlabel="L (keys)", ylabel="time (ms)",
                 title=f"{g[0]} on {g[1]} ({g[2]}, Hq={g[3]}, D={g[4]})")
        ax_s.axhline(1.0, color="grey", lw=0.8)
        ax_s.set(xscale="log", xlabel="L (keys)", ylabel=f"speedup of {g[1]} (peer time / its time)",
                 title="speedup vs peers")
        ax_t.legend(fontsize=8)
        if ax_s.lines[1:]:
            ax_s.legend(fontsize=8)
        else:
            ax_s.text(0.5, 0.5, "no wall-time peers in these rows (--compare)", ha="center",
                      transform=ax_s.transAxes)
    fig.tight_layout()
    return fig, None


def plot_density(rows, plt):
    pts = defaultdict(dict)
    for r in rows:
        if r.get("density") is not None and r["system"] == r["backend"]:
            pts[r["spec"] + " " + json.dumps(r.get("spec_params", {}), sort_keys=True)[:60]][r["Lk"]] = r["density"]
    if not pts:
        return None, "density vs L: no rows with a density"
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for label, d in sorted(pts.items()):
        Ls = sorted(d)
        ax.plot(Ls, [d[L] for L in Ls], marker="o", label=label)
    ax.set(xscale="log", xlabel="L (keys)", ylabel="density (visible pairs / Lq*Lk)", title="density vs L")
    ax.legend(fontsize=7)
    return fig, None


def plot_errors(rows, plt):
    rs = [r for r in rows if r.get("max_abs_err") is not None]
    if not rs:
        return None, "error vs tolerance: no rows checked against the reference"
    labels = [f"{r['system']}\nL={r['Lk']} {r.get('dtype', '')}" for r in rs]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rs) + 2), 3.8))
    ax.bar(range(len(rs)), [max(r["max_abs_err"], 1e-12) for r in rs], color="tab:blue")
    # Unit roundoff of each input format: what a kernel that keeps the inputs' precision can reach.
    for name, eps, color in (("float32 eps", 2.0 ** -23, "tab:green"), ("bfloat16 eps", 2.0 ** -8, "tab:red")):
        ax.axhline(eps, ls="--", color=color, lw=1, label=name)
    ax.set(yscale="log", ylabel="max |out - float64 ref|", title="error vs tolerance scale")
    ax.set_xticks(range(len(rs)), labels, rotation=60, fontsize=7)
    ax.legend(fontsize=8)
    return fig, None


def plot_roofline(rows, plt):
    rs = [r for r in rows if {"macs", "cycles", "param_mac_rows", "param_mac_cols"} <= set(r.get("counters", {}))]
    if not rs:
        return None, "RoCC roofline: no rows with the accelerator's counters (--backend rocc)"
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rs:
        c = r["counters"]
        dma = c.get("dma_bytes", c.get("dma_rd_bytes", 0) + c.get("dma_wr_bytes", 0))
        ai = c["macs"] / max(1, dma)
        ax.scatter([ai], [c["macs"] / max(1, c["cycles"])], label=f"{r['system']} L={r['Lk']}")
    c = rs[0]["counters"]
    peak = c["param_mac_rows"] * c["param_mac_cols"]
    bw = float(c.get("bytes_per_cycle", 16.0))
    xs = [10 ** (i / 10) for i in range(-20, 41)]
    ax.plot(xs, [min(peak, bw * x) for x in xs], color="k", lw=1, label=f"roof: {peak} MAC/cycle, {bw:g} B/cycle")
    ax.set(xscale="log", yscale="log", xlabel="MACs per DMA byte", ylabel="MACs per cycle", title="RoCC roofline")
    ax.legend(fontsize=7)
    return fig, None


def plot_insn_mix(rows, plt):
    rs = [r for r in rows if any(f"insn_{k}" in r.get("counters", {}) for k in INSN_CLASSES)]
    if not rs:
        return None, "RVV instruction mix: no rows with the plugin's counts (--backend rvv)"
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rs) + 2), 4))
    bottom = [0.0] * len(rs)
    for k in INSN_CLASSES:
        vals = [float(r["counters"].get(f"insn_{k}", 0)) for r in rs]
        ax.bar(range(len(rs)), vals, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(rs)), [f"{r['system']}\nVLEN={r['counters'].get('vlen', '?')} L={r['Lk']}"
                                   for r in rs], rotation=45, fontsize=7)
    ax.set(ylabel="dynamic instructions (kernel region)", title="RVV instruction mix")
    ax.legend(fontsize=7)
    return fig, None


def plot_imc(rows, plt):
    rs = [r for r in rows if r.get("backend") == "imc" and r.get("energy_j") is not None]
    if not rs:
        return None, "IMC energy and latency vs density: no `sattn imc` rows"
    groups = defaultdict(list)
    for r in rs:
        groups[(r["design"], r.get("B"), r.get("Hq"), r.get("Hkv"), r["Lk"], r.get("D"))].append(r)
    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    for (design, B, Hq, Hkv, Lk, D), g in sorted(groups.items(), key=lambda kv: str(kv[0])):
        g = sorted(g, key=lambda r: r["density"])
        dens = [r["density"] for r in g]
        label = f"{design} (B={B} Hq={Hq} Hkv={Hkv} L={Lk} D={D})"
        line, = ax_e.plot(dens, [r["energy_j"] for r in g], marker="o", label=label)
        ax_t.plot(dens, [r["latency_s"] for r in g], marker="o", color=line.get_color(), label=label)
        ax_e.axhline(g[-1]["dense_energy_j"], ls="--", lw=0.8, color=line.get_color())
        ax_t.axhline(g[-1]["dense_latency_s"], ls="--", lw=0.8, color=line.get_color())
    ax_e.set(yscale="log", xlabel="density (visible pairs / Lq*Lk)", ylabel="energy (J)",
             title="IMC energy vs density (dashed: dense)")
    ax_t.set(yscale="log", xlabel="density (visible pairs / Lq*Lk)", ylabel="latency (s)",
             title="IMC latency vs density (dashed: dense)")
    ax_e.legend(fontsize=7)
    fig.tight_layout()
    return fig, None


def plot_pareto(rows, plt):
    from sattn.eval_lm import HIGHER_IS_BETTER, pareto_frontier
    tasks = defaultdict(list)
    for r in rows:
        if r.get("kind") == "eval" and r.get("value") is not None and r.get("attn_flops"):
            tasks[r["task"]].append(r)
    if not tasks:
        return None, "quality vs FLOPs: no `sattn eval` rows"
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, (task, rs) in zip(axes[0], sorted(tasks.items())):
        by_family = defaultdict(list)
        for r in rs:
            by_family[r["family"]].append(r)
        for family, fr in sorted(by_family.items()):
            ax.scatter([r["attn_flops"] for r in fr], [r["value"] for r in fr], label=family,
                       marker="*" if family == "dense" else "o", s=80 if family == "dense" else 30)
        front = pareto_frontier(rs)
        ax.step([r["attn_flops"] for r in front], [r["value"] for r in front], where="post", color="k", lw=1,
                label="Pareto frontier")
        better = "higher" if HIGHER_IS_BETTER[task] else "lower"
        ax.set(xscale="log", xlabel="attention FLOPs per sequence (forward)",
               ylabel=f"{rs[0]['metric']} ({better} is better)",
               title=f"{task}: L={rs[0]['Lk']}, {rs[0]['steps']} steps")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, None


PLOTS = (("Time and speedup vs L", plot_time_speedup), ("Density vs L", plot_density),
         ("Error vs tolerance", plot_errors), ("RoCC roofline", plot_roofline),
         ("RVV instruction mix", plot_insn_mix), ("IMC energy and latency vs density", plot_imc),
         ("Quality vs attention FLOPs", plot_pareto))


def _fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    return html.escape(str(x))


def render(rows, title: str) -> tuple:
    try:
        import matplotlib
    except ImportError:
        raise Failure("sattn report needs matplotlib (pip install 'sattn[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sections, skipped = [], []
    for name, fn in PLOTS:
        fig, why = fn(rows, plt)
        if fig is None:
            skipped.append(why)
            continue
        sections.append(f'<h2>{html.escape(name)}</h2>\n<img alt="{html.escape(name)}" '
                        f'src="data:image/png;base64,{_png(fig)}">')
    cols = ("date", "system", "backend", "spec", "dtype", "B", "Hq", "Lq", "Lk", "D", "density", "time_ms",
            "gflops_effective", "max_abs_err")
    if all(r.get("kind") == "eval" for r in rows):
        cols = ("date", "task", "system", "budget", "Lk", "steps", "metric", "value", "attn_flops",
                "attn_flops_vs_dense", "train_s", "step_ms", "peak_mem_bytes")
    table = "<table><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>\n" + "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>\n" for r in rows) + "</table>"
    machines = sorted({f"{r.get('machine', {}).get('host_cpu', '?')} ({r.get('machine', {}).get('cores', '?')} cores)"
                       for r in rows})
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:75em}} img{{max-width:100%}}
table{{border-collapse:collapse;font-size:80%}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{len(rows)} rows; machine: {html.escape(", ".join(machines))}.</p>
{"".join(s + chr(10) for s in sections)}
{"<h2>Not plotted</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>" if skipped else ""}
<h2>Rows</h2>
{table}
</body></html>
"""
    return page, len(sections), skipped


def run(args) -> int:
    rows = read_rows(args.results)
    page, n, skipped = render(rows, args.title)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.output}: {n} plots from {len(rows)} rows ({len(page) / 1024:.0f} KiB)"
          + (f"; not plotted: {len(skipped)} (listed in the page)" if skipped else ""))
    return 0
