"""sattn.imc: CIM mapping, cost model, numerical array model, design files, CLI, report plot."""
import base64
import copy
import json
import os
import re

import numpy as np
import pytest

import sattn
import sattn.imc as imc
from sattn.imc import arch as imc_arch
from sattn.imc import mapping as imc_mapping

DESIGNS = imc.designs()


def _qkv(B, Hq, Hkv, Lq, Lk, D, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, Hq, Lq, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Lk, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Lk, D)).astype(np.float32))


SPECS = [
    sattn.Dense(),
    sattn.Dense(causal=True),
    sattn.SlidingWindow(window=40, causal=True),
    sattn.SlidingWindow(window=33, dilation=2),
    sattn.BlockTopK(block=32, keep=0.3, causal=True),
    sattn.BlockTopK(block=16, keep=0.5, score="max"),
    sattn.BigBird(block=16, window_blocks=3, global_blocks=1, random_blocks=2, seed=3),
    sattn.TopKPerQuery(k=24, causal=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
@pytest.mark.parametrize("shape", [(1, 4, 2, 200, 200, 16), (2, 6, 3, 70, 150, 8), (1, 2, 2, 1, 96, 32)])
def test_macs_are_twice_visible_pairs_times_d(spec, shape):
    B, Hq, Hkv, Lq, Lk, D = shape
    q, k, _ = _qkv(*shape)
    plan = sattn.plan(spec, q, k, tile=32)
    for name in DESIGNS:
        r = imc.estimate(plan, q, k, name)
        assert r["visible_pairs"] == plan.visible_pairs()
        assert r["macs"] == 2 * plan.visible_pairs() * D
        assert r["macs_executed"] >= r["macs"]
        causal = getattr(spec, "causal", False)
        dense = sattn.dense_mask(sattn.Dense(causal=causal), q, k).sum()
        assert r["dense"]["macs"] == 2 * int(dense) * D
        assert r["density"] == pytest.approx(plan.density())
        assert r["energy_j"] == pytest.approx(sum(r["energy_split_j"].values()))
        assert r["area_mm2"] == pytest.approx(sum(r["area_split_mm2"].values()))
        json.dumps(r)


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("causal", [False, True])
def test_energy_monotone_in_density(name, causal):
    q, k, _ = _qkv(1, 4, 2, 512, 512, 32)
    prev = None
    for keep in (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0):
        r = imc.estimate(sattn.BlockTopK(block=32, keep=keep, causal=causal), q, k, name)
        if prev is not None:
            assert r["density"] >= prev["density"]
            assert r["energy_j"] >= prev["energy_j"] * (1 - 1e-12), (keep, r["energy_j"], prev["energy_j"])
            assert r["macs"] >= prev["macs"]
        prev = r
    assert prev["energy_j"] <= prev["dense"]["energy_j"] * (1 + 1e-12)


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("shape,causal", [((1, 4, 2, 256, 256, 32), False), ((2, 4, 1, 100, 300, 16), True)])
def test_dense_plan_equals_dense_estimate(name, shape, causal):
    q, k, _ = _qkv(*shape)
    r = imc.estimate(sattn.Dense(causal=causal), q, k, name, tile=32)
    d = r["dense"]
    for key in ("macs", "macs_executed", "visible_pairs", "energy_j", "latency_s"):
        assert r[key] == pytest.approx(d[key], rel=1e-12), key
    assert r["bottleneck"] == d["bottleneck"]
    for key, val in r["energy_split_j"].items():
        assert val == pytest.approx(d["energy_split_j"][key], rel=1e-12, abs=1e-30), key
    assert r["savings"]["energy"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("block,D", [(16, 8), (64, 64), (64, 128), (128, 96)])
def test_mapping_respects_array_capacity(name, block, D):
    a = imc.load(name)
    q, k, _ = _qkv(1, 4, 2, 512, 512, D)
    try:
        r = imc.estimate(sattn.BlockTopK(block=block, keep=0.25, causal=True), q, k, a)
    except imc.ArchError as e:
        assert str(e).startswith("array.count:")
        return
    m = r.mapping_detail
    R, C, wpr = a.array["rows"], a.array["cols"], a.weights_per_row
    # A K block is D rows x block weights (Kᵀ), a V block block rows x D weights: the arrays each
    # takes hold it without overflow, and no fewer would.
    assert m.arrays_k * R * wpr >= D * block and m.arrays_v * R * wpr >= block * D
    assert m.arrays_k == -(-D // R) * -(-block // wpr) and m.arrays_v == -(-block // R) * -(-D // wpr)
    assert m.slots * (m.arrays_k + m.arrays_v) <= a.array["count"]
    assert wpr * a.slices <= C
    # One block per slot at a time: every (slot, wave) is written once.
    pairs = m.write_slot * (m.write_wave.max() + 1) + m.write_wave
    assert np.unique(pairs).size == pairs.size
    assert m.write_slot.max() < m.slots
    for pl in m.placement(50):
        assert pl["first_array"] + m.arrays_k + m.arrays_v <= a.array["count"]
    assert r["mapping"]["blocks_written"] >= r["mapping"]["blocks_distinct"]
    assert r["mapping"]["rewrites"] == max(0, r["mapping"]["blocks_written"] - m.slots)
    # Every query vector is served once: the copies of a block split its queries.
    share = m.blocks_distinct // m.kv_id.size
    assert m.write_queries.sum() == pytest.approx(float(m.kv_queries.sum()) * share, rel=1e-12)


def test_too_small_architecture_names_array_count():
    d = imc.load("cimple-sram-28nm").to_dict()
    d["array"]["count"] = 2
    q, k, _ = _qkv(1, 2, 1, 128, 128, 64)
    with pytest.raises(imc.ArchError, match=r"^array\.count: one K and one V block"):
        imc.estimate(sattn.Dense(), q, k, d)


def _ideal(name, bits=52):
    d = imc.load(name).to_dict()
    d["operands"].update(input_bits=bits, weight_bits=bits)
    d["array"]["bits_per_cell"] = bits
    d["dac"]["bits"] = bits
    if d["technology"]["compute"] == "analog":
        d["adc"]["bits"] = 128
    d["noise"]["cell_sigma"] = 0.0
    return d


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("spec", [sattn.BlockTopK(block=16, keep=0.4, causal=True), sattn.SlidingWindow(window=20)],
                         ids=str)
def test_ideal_numerical_model_matches_float64(name, spec):
    q, k, v = _qkv(1, 4, 2, 40, 72, 16, seed=1)
    ideal = imc.accuracy(spec, q, k, v, _ideal(name), tile=16)
    assert ideal["max_abs_err"] < 1e-12, ideal
    real = imc.accuracy(spec, q, k, v, name, tile=16)
    assert 0 < real["mean_abs_err"] <= real["max_abs_err"] < 0.1 * real["ref_max_abs"], real


def test_numerical_model_blocking_is_exact_without_quantisation():
    from sattn.imc import numerics
    q, k, v = _qkv(2, 4, 2, 33, 80, 8, seed=2)
    spec = sattn.BlockTopK(block=16, keep=0.5)
    plan = sattn.plan(spec, q, k)
    mask = plan.to_dense_mask()
    got = numerics.simulate(q, k, v, mask, 16, imc.load("isaac-reram-32nm"), scale=8 ** -0.5, exact=True)
    ref = sattn.reference.attention(q, k, v, spec, mask=mask)
    assert np.abs(got - ref).max() < 1e-13


def test_noise_is_seeded_and_costs_accuracy():
    q, k, v = _qkv(1, 2, 1, 48, 48, 16, seed=3)
    spec = sattn.SlidingWindow(window=24)
    clean = imc.accuracy(spec, q, k, v, "isaac-reram-32nm", tile=16)
    a = imc.accuracy(spec, q, k, v, "isaac-reram-32nm", tile=16, noise_sigma=0.05, seed=7)
    b = imc.accuracy(spec, q, k, v, "isaac-reram-32nm", tile=16, noise_sigma=0.05, seed=7)
    c = imc.accuracy(spec, q, k, v, "isaac-reram-32nm", tile=16, noise_sigma=0.05, seed=8)
    assert a == b and a["max_abs_err"] != c["max_abs_err"]
    assert a["mean_abs_err"] > 10 * clean["mean_abs_err"]


def test_estimate_accuracy_field():
    q, k, v = _qkv(1, 2, 1, 64, 64, 16)
    r = imc.estimate(sattn.BlockTopK(block=16, keep=0.5), q, k, "cimple-sram-28nm", v=v, accuracy=True)
    assert r["accuracy"]["max_abs_err"] > 0 and "accuracy" in r.table()
    with pytest.raises(ValueError, match="accuracy"):
        imc.estimate(sattn.BlockTopK(block=16, keep=0.5), q, k, "cimple-sram-28nm", accuracy=True)


def _good():
    with open(os.path.join(imc_arch.DESIGNS_DIR, "isaac-reram-32nm.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("edit,field", [
    (lambda d: d["adc"].pop("bits"), r"^adc\.bits: missing"),
    (lambda d: d.pop("write"), r"^write: missing"),
    (lambda d: d["array"].update(rows="128"), r"^array\.rows: expected a number"),
    (lambda d: d["array"].update(rows=12.5), r"^array\.rows: expected an integer"),
    (lambda d: d["array"].update(count=0), r"^array\.count: expected a value in"),
    (lambda d: d["dac"].update(energy_j=-1e-12), r"^dac\.energy_j: expected a value in"),
    (lambda d: d["adc"].update(energy_j=float("nan")), r"^adc\.energy_j: expected a finite number"),
    (lambda d: d["write"].update(overlapped="no"), r"^write\.overlapped: expected true or false"),
    (lambda d: d["technology"].update(cell="DRAM"), r"^technology\.cell: expected one of"),
    (lambda d: d["array"].update(colums=128), r"^array\.colums: unknown field"),
    (lambda d: d.update(extra=1), r"^extra: unknown field"),
    (lambda d: d["array"].update(cols=4), r"^array\.cols: one 16-bit weight needs 8 cells"),
    (lambda d: d["adc"].update(per_array=0), r"^adc\.per_array: an analog array needs"),
    (lambda d: d["provenance"].update({"adc.speed": "x"}), r"^provenance\.adc\.speed: names no field"),
    (lambda d: d["source"].pop("title"), r"^source\.title: missing"),
])
def test_bad_architecture_rejected_naming_the_field(edit, field, tmp_path):
    d = _good()
    edit(d)
    with pytest.raises(imc.ArchError, match=field):
        imc.load(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(imc.ArchError, match="^bad.json: " + field[1:]):
        imc.load(str(path))


def test_unknown_design_and_bad_types():
    with pytest.raises(imc.ArchError, match="unknown design 'nope'"):
        imc.load("nope")
    with pytest.raises(TypeError, match="arch: expected"):
        imc.load(3)
    q, k, _ = _qkv(1, 2, 1, 32, 32, 8)
    with pytest.raises(TypeError, match="spec_or_plan"):
        imc.estimate("dense", q, k, DESIGNS[0])


@pytest.mark.parametrize("name", DESIGNS)
def test_published_design_reproduces_its_headline(name):
    a = imc.load(name)
    assert a.source["title"] and a.source["venue"] and a.source["year"]
    pk = imc.peak(a)
    assert "tops_per_w" in a.source
    assert pk["tops_per_w"] == pytest.approx(a.source["tops_per_w"], rel=0.15)
    if "tops_per_mm2" in a.source:
        assert pk["tops_per_mm2"] == pytest.approx(a.source["tops_per_mm2"], rel=0.15)


def test_cli_imc_rows_and_report_plot(tmp_path, capsys):
    from sattn import cli
    out = tmp_path / "imc.jsonl"
    assert cli.main(["imc", "--spec", "block_topk", "--option", "causal=true", "--seq-len", "1024",
                     "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--keep", "0.125,0.5",
                     "--format", "jsonl", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * len(DESIGNS)
    assert {r["design"] for r in rows} == set(DESIGNS)
    assert all(r["system"].startswith("imc:") and r["energy_j"] > 0 for r in rows)
    assert len(out.read_text().splitlines()) == len(rows)
    assert cli.main(["imc", "--spec", "sliding_window", "--option", "window=32", "--seq-len", "128",
                     "--heads", "2", "--kv-heads", "1", "--head-dim", "16", "--design", DESIGNS[0],
                     "--accuracy", "--placement", "2"]) == 0
    text = capsys.readouterr().out
    assert "dense/sparse" in text and "accuracy" in text and "-> slot" in text
    assert cli.main(["imc", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in DESIGNS)
    assert cli.main(["imc", "--spec", "dense", "--keep", "0.1"]) == 2
    assert "--keep" in capsys.readouterr().err
    assert cli.main(["imc", "--spec", "block_topk", "--option", "keep=7"]) == 2
    html = tmp_path / "r.html"
    assert cli.main(["report", str(out), "-o", str(html)]) == 0
    page = html.read_text()
    assert "IMC energy and latency vs density" in page.split("Not plotted")[0]
    img = re.findall(r'alt="IMC energy and latency vs density" src="data:image/png;base64,([^"]+)"', page)
    assert img and base64.b64decode(img[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_lists_imc(capsys):
    from sattn import cli
    with pytest.raises(SystemExit):
        cli.main(["imc", "--help"])
    assert "--design" in capsys.readouterr().out


def test_doc_page_examples_run():
    src = os.path.join(os.environ.get("TEST_SRCDIR", ""), "sattn", "docs", "imc.md")
    if not os.path.exists(src):
        src = os.path.join(os.path.dirname(__file__), "..", "docs", "imc.md")
    with open(src) as f:
        code = re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)
    assert code
    ns = {"__name__": "__doc_example__"}
    for i, block in enumerate(code):
        exec(compile(block, f"docs/imc.md#block{i}", "exec"), ns)
