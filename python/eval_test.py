"""`sattn eval` (sattn.eval_lm, sattn.cli.eval_verb) on the micro preset (5 steps, L = 64): rows
carry every field, attention FLOPs are 4 * D * the plans' visible pairs (Dense's exactly the causal
count), Dense costs more than every sparse spec, the recall generators' answers are recoverable
from their sequences, runs reproduce, the Pareto frontier, and bad flags exit 2."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from sattn import eval_lm as E
from sattn.cli import main

# One thread each for torch and the cpu backend: the test's time does not depend on the machine's load.
torch.set_num_threads(1)
MICRO = dataclasses.replace(E.PRESETS["micro"], steps=5)
SPARSE = ("sliding_window", "block_topk", "bigbird", "topk_per_query", "moba")


@pytest.fixture(scope="module")
def text_rows():
    return list(E.evaluate(MICRO, tasks=("text",), families=("dense",) + SPARSE, threads=1))


def test_rows_have_every_field_and_the_flops_of_their_plans(text_rows):
    L, D = MICRO.seq_len, MICRO.d_model // MICRO.heads
    for r in text_rows:
        assert set(E.ROW_FIELDS) <= set(r), set(E.ROW_FIELDS) - set(r)
        assert r["attn_flops"] == 4 * r["visible_pairs"] * D
        assert r["value"] == r["val_bpb"] and 0 < r["val_bpb"] < 8
        assert r["train_s"] > 0 and r["step_ms"] > 0 and r["peak_mem_bytes"] is not None
        assert r["corpus"]["train_bytes"] == MICRO.text_train_bytes
    dense = text_rows[0]
    assert dense["family"] == "dense"
    # Causal dense: query t sees t + 1 keys, in every layer and query head of one sequence.
    assert dense["visible_pairs"] == MICRO.layers * MICRO.heads * L * (L + 1) // 2
    assert dense["attn_flops_vs_dense"] == 1.0
    for r in text_rows[1:]:
        assert r["attn_flops"] < dense["attn_flops"], r["system"]


def test_sliding_window_pairs_are_the_closed_form(text_rows):
    r = next(r for r in text_rows if r["family"] == "sliding_window")
    w, L = r["spec_params"]["window"], MICRO.seq_len
    assert r["visible_pairs"] == MICRO.layers * MICRO.heads * sum(min(t + 1, w) for t in range(L))


def test_a_run_reproduces(text_rows):
    again = E.run_one("text", "sliding_window", 0.25, E.spec_for("sliding_window", 0.25, MICRO.seq_len, MICRO.block),
                      MICRO, threads=1)
    first = next(r for r in text_rows if r["family"] == "sliding_window")
    for key in ("val_loss_nats", "train_loss_first", "train_loss_last", "visible_pairs"):
        assert again[key] == first[key], key


def test_mqar_answers_are_the_values_of_their_keys():
    g = np.random.default_rng(3)
    pairs, queries, L, V = 6, 5, 64, 64
    tok, ans = E.mqar_batch(g, 16, L, V, pairs, queries)
    assert tok.shape == ans.shape == (16, L + 1) and ans.sum(1).tolist() == [queries] * 16
    for seq, a in zip(tok, ans):
        keys, vals = seq[0:2 * pairs:2], seq[1:2 * pairs:2]
        assert len(set(keys.tolist())) == pairs
        table = dict(zip(keys.tolist(), vals.tolist()))
        for t in np.flatnonzero(a):
            assert table[int(seq[t - 1])] == int(seq[t])


def test_passkey_answers_are_the_digits_after_the_marker():
    g = np.random.default_rng(4)
    tok, ans = E.passkey_batch(g, 16, 64, 64)
    for seq, a in zip(tok, ans):
        at = int(np.flatnonzero(seq == E.MARK)[0])
        key = seq[at + 1:at + 6]
        assert ((E.DIGIT0 <= key) & (key < E.DIGIT0 + 10)).all()
        assert seq[np.flatnonzero(a)[0] - 1] == E.ASK
        assert seq[a].tolist() == key.tolist()


def test_recall_and_nsa_rows():
    row = E.run_one("passkey", "nsa", 0.25, E.spec_for("nsa", 0.25, MICRO.seq_len, MICRO.block), MICRO,
                   threads=1)
    assert set(E.ROW_FIELDS) <= set(row) and row["spec"] == "NSA"
    assert row["value"] == row["accuracy"] and 0.0 <= row["accuracy"] <= 1.0
    assert row["attn_flops"] == 4 * row["visible_pairs"] * (MICRO.d_model // MICRO.heads)


def test_pareto_frontier():
    def row(f, v):
        return {"task": "text", "attn_flops": f, "value": v}
    rows = [row(10, 5.0), row(5, 6.0), row(7, 6.5), row(20, 4.0), row(20, 4.5)]
    assert [(r["attn_flops"], r["value"]) for r in E.pareto_frontier(rows)] == [(5, 6.0), (10, 5.0), (20, 4.0)]
    acc = [dict(r, task="mqar") for r in rows]
    assert [(r["attn_flops"], r["value"]) for r in E.pareto_frontier(acc)] == [(5, 6.0), (7, 6.5)]


def test_cli_rows_table_and_report(tmp_path, capsys):
    out, page = tmp_path / "rows.jsonl", tmp_path / "eval.html"
    rc = main(["eval", "--preset", "micro", "--tasks", "mqar", "--specs", "dense,block_topk", "--steps", "3",
               "--threads", "1", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "BlockTopK(block=16" in text and "accuracy" in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["family"] for r in rows] == ["dense", "block_topk"] and all(r["steps"] == 3 for r in rows)
    pytest.importorskip("matplotlib")
    assert main(["report", str(out), "-o", str(page)]) == 0
    assert "Quality vs attention FLOPs" in page.read_text()


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:          # argparse's own errors
        return e.code


@pytest.mark.parametrize("flags", [
    ["--tasks", "poetry"], ["--specs", "dense,flash"], ["--budgets", "0"], ["--budgets", "1.5"],
    ["--budgets", "x"], ["--steps", "0"], ["--seq-len", "50"], ["--preset", "huge"], ["--seed", "-1"],
    ["--backend", "gpu"], ["--backend", "triton"], ["--threads", "0"],
])
def test_bad_flags_exit_2(flags, capsys):
    assert _exit_code(["eval", "--preset", "micro", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flags[0] in err


def test_spec_for_rejects_an_unknown_family():
    with pytest.raises(ValueError, match="family"):
        E.spec_for("linear", 0.25, 64, 16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_fails_with_one_line(capsys):
    assert _exit_code(["eval", "--preset", "micro", "--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().err
