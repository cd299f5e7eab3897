"""//tools:bench end to end: the JSON row schema of docs/bench.md, and the exit-2 error paths."""
import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench")

SCHEMA = {"backend", "system", "spec", "spec_params", "B", "Hq", "Hkv", "Lq", "Lk", "D", "dtype", "device",
          "density", "visible_pairs", "flops", "time_ms", "time_kind", "gflops_effective", "max_abs_err",
          "max_abs_err_lse", "rows_checked", "counters", "peak_rss_mb", "note", "machine", "versions", "date",
          "command"}


def run(*args):
    return subprocess.run([BENCH, *args], capture_output=True, text=True)


def test_unknown_backend_is_a_one_line_error_with_exit_2():
    res = run("--backend", "tpu")
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.startswith("bench:")]
    assert len(lines) == 1 and "unknown backend 'tpu'" in lines[0] and "cpu" in lines[0]


def test_cpu_row_schema_and_error_vs_reference(tmp_path):
    out = tmp_path / "rows.json"
    res = run("--backend", "cpu", "--spec", "sliding_window", "--window", "16", "--causal", "--seq_len", "96",
              "--heads", "4", "--kv_heads", "2", "--head_dim", "32", "--repeat", "2", "--format", "json",
              "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())
    assert rows == json.loads(res.stdout)
    (row,) = rows
    assert SCHEMA <= set(row), SCHEMA - set(row)
    assert row["backend"] == "cpu" and row["spec"] == "SlidingWindow" and row["Hkv"] == 2
    assert row["rows_checked"] == 96 and row["max_abs_err"] < 1e-4
    # FLOPs count visible pairs only: a causal window of 16 over 96 tokens.
    visible = sum(min(p + 1, 16) for p in range(96)) * 4
    assert row["visible_pairs"] == visible and row["flops"] == 4 * 32 * visible
    assert row["time_ms"] > 0 and row["gflops_effective"] > 0
    assert "[bench]" in res.stderr  # progress goes to stderr


def test_compare_runs_peers_in_the_same_process(tmp_path):
    res = run("--backend", "cpu", "--spec", "block_topk", "--block", "16", "--seq_len", "64", "--repeat", "1",
              "--compare", "--format", "json")
    assert res.returncode == 0, res.stderr
    systems = [r["system"] for r in json.loads(res.stdout)]
    assert systems[:3] == ["cpu", "sdpa_dense", "sdpa_masked"]


def test_quant_rows_per_scheme_with_the_unquantized_peer():
    res = run("--backend", "cpu", "--spec", "block_topk", "--block", "16", "--seq_len", "64", "--head_dim", "32",
              "--repeat", "1", "--quant", "int8/bf16/block", "--quant", "int8/fp32/token/v=int4", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["system"] for r in rows] == ["cpu_int8/bf16/block", "cpu_int8/fp32/token/v=int4", "cpu_unquantized"]
    for r in rows:
        assert SCHEMA <= set(r), SCHEMA - set(r)
        assert r["speedup_vs_unquantized"] > 0 and r["err_rel_max_abs_v"] is not None
    assert rows[0]["quant"]["pv"] == "bf16" and rows[0]["max_abs_err_vs_quant_model"] < 2e-3 * 5
    assert rows[0]["err_rel_max_abs_v"] <= rows[0]["error_budget_rel_max_abs_v"]
    # int8 K + bf16 V + a float32 scale per 64 tokens, against 2 * 32 float32 values
    assert rows[0]["cache_bytes_per_token"] == 32 + 64 + 4 / 64 and rows[2]["cache_bytes_per_token"] == 256
    assert rows[1]["cache_bytes_per_token"] == 32 + 16 + 8
    bad = run("--backend", "cpu", "--seq_len", "64", "--quant", "int8/bf16")
    assert bad.returncode == 2 and "--quant" in bad.stderr


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
