"""sattn.distributed on gloo: every spec against single-process sattn (forward and backward),
2 and 4 processes, both layouts, ragged shards; bytes moved equal the communication model; a
mismatch, a raising rank and a killed rank end every rank with a typed error in bounded time.

One group of processes per world size runs many cases (forked, so nothing is imported twice)."""
import multiprocessing
import os
import re
import socket
import tempfile
import time
import traceback

import numpy as np
import pytest
import torch

import sattn
from sattn import distributed as D
from sattn.errors import PeerFailure, ShardMismatch

torch.set_num_threads(1)
TOL_OUT, TOL_GRAD = 1e-4, 2e-5
L = 37  # not a multiple of any block: partial last blocks and shards straddling blocks


def _lower_triangle(b, h, q_idx, kv_idx):
    return (q_idx >= kv_idx) & ((q_idx - kv_idx) % 3 != 1)


_FIXED_MASK = np.random.default_rng(5).random((L, L)) < 0.3


def _specs():
    return {
        "dense": sattn.Dense(),
        "dense_causal": sattn.Dense(causal=True),
        "window_causal_dilated_global": sattn.SlidingWindow(window=5, causal=True, dilation=2, global_tokens=1),
        "window": sattn.SlidingWindow(window=4),
        "blocktopk_causal": sattn.BlockTopK(block=8, keep=0.3, causal=True),
        "blocktopk_max": sattn.BlockTopK(block=4, keep=0.4, score="max"),
        "blocktopk_mean": sattn.BlockTopK(block=5, keep=0.5, global_blocks=0, local_blocks=2),
        "bigbird": sattn.BigBird(block=4, seed=3),
        "topk_per_query": sattn.TopKPerQuery(k=5, causal=True),
        "maskfn": sattn.MaskFn(_lower_triangle, array="numpy"),
        "frommask": sattn.FromMask(_FIXED_MASK),
        "union_dynamic": sattn.SlidingWindow(window=3) | sattn.BlockTopK(block=4, keep=0.2),
        "perhead": sattn.PerHead([sattn.SlidingWindow(window=3, causal=True), sattn.BigBird(block=8)]),
    }


FOUR_RANK_SPECS = ("dense_causal", "window_causal_dilated_global", "blocktopk_causal", "blocktopk_mean", "bigbird",
                   "topk_per_query", "maskfn")


def _ragged(world, layout):
    lengths = D.even_lengths(L, world, layout)
    return [lengths[0] + 3, lengths[1] - 3] + lengths[2:]


def _inputs(B=1, Hq=2, Hkv=1, Dh=8):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*s, generator=g) for s in ((B, Hq, L, Dh), (B, Hkv, L, Dh), (B, Hkv, L, Dh), (B, Hq, L, Dh),
                                                   (B, Hq, L))]


def _one_case(rank, world, spec, layout, lengths, shape=(1, 2, 1, 8)):
    q, k, v, gout, glse = _inputs(*shape)
    full = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_out, ref_lse = sattn.sparse_attention(*full, spec, backend="cpu", return_lse=True, threads=1)
    ((ref_out * gout).sum() + (ref_lse * glse).sum()).backward()
    sh = lambda t: D.shard(t, rank, world, layout, lengths=lengths)  # noqa: E731
    mine = [sh(t).clone().requires_grad_() for t in (q, k, v)]
    out, lse, stats = D.context_parallel_attention(*mine, spec, layout=layout, tile=8, threads=1, timeout=30,
                                                   return_lse=True, return_stats=True)
    ((out * sh(gout)).sum() + (lse * sh(glse)).sum()).backward()
    errs = {"out": (out - sh(ref_out)).abs().max().item(), "lse": (lse - sh(ref_lse)).abs().max().item()}
    for name, a, b in zip(("dq", "dk", "dv"), mine, full):
        errs[name] = (a.grad - sh(b.grad)).abs().max().item()
    return {"errs": errs, "sent": dict(stats.sent), "recv": dict(stats.recv),
            "model_sent": {p: stats.model.sent[p][rank] for p in stats.sent},
            "model_recv": {p: stats.model.recv[p][rank] for p in stats.recv},
            "ring": stats.ring_bytes, "lengths": stats.lengths}


def _cases(world):
    specs = _specs()
    names = list(specs) if world == 2 else FOUR_RANK_SPECS
    cases = [(n, lay) for n in names for lay in D.LAYOUTS]
    return specs, cases


def _accuracy_worker(rank, world, report):
    specs, cases = _cases(world)
    res = {}
    for name, layout in cases:
        try:
            res[(name, layout)] = _one_case(rank, world, specs[name], layout, _ragged(world, layout))
        except Exception:
            res[(name, layout)] = traceback.format_exc()
    try:
        res[("dense_causal_gqa_b2", "zigzag")] = _one_case(rank, world, sattn.Dense(causal=True), "zigzag",
                                                           _ragged(world, "zigzag"), shape=(2, 4, 2, 8))
    except Exception:
        res[("dense_causal_gqa_b2", "zigzag")] = traceback.format_exc()
    return res


def _call_error(fn):
    t0 = time.monotonic()
    try:
        fn()
    except Exception as e:  # the test inspects what was raised
        return {"type": type(e).__name__, "msg": str(e), "peer": getattr(e, "peer", None),
                "step": getattr(e, "step", None), "elapsed": time.monotonic() - t0}
    return {"type": None, "elapsed": time.monotonic() - t0}


def _fault_worker(rank, world, report):
    import torch.distributed as dist
    q, k, v, _, _ = _inputs()
    sh = lambda t: D.shard(t, rank, world)  # noqa: E731
    mq, mk, mv = sh(q), sh(k), sh(v)
    res = {}
    window = 5 if rank == 0 else 4
    res["spec_mismatch"] = _call_error(lambda: D.context_parallel_attention(
        mq, mk, mv, sattn.SlidingWindow(window=window), timeout=30))
    short_k = mk if rank == 0 else mk[:, :, :-1]
    res["own_input_refused"] = _call_error(lambda: D.context_parallel_attention(
        mq, short_k, mv, sattn.Dense(), timeout=30))

    # Rank 1 raises after posting its sends and stays alive: rank 0 finishes its forward, then
    # waits for dk/dv that never come and must give up after its timeout.
    original = D._Run._attend

    def raising(self, *a):
        raise RuntimeError("injected failure")
    if rank == 1:
        D._Run._attend = raising

    def forward_backward(timeout):
        qs = mq.clone().requires_grad_()
        out = D.context_parallel_attention(qs, mk, mv, sattn.Dense(causal=True), timeout=timeout)
        out.sum().backward()
    res["raising_peer"] = _call_error(lambda: forward_backward(1.0))
    if rank == 1:
        time.sleep(1.5)
    D._Run._attend = original

    # Rank 1 dies in the middle of a call (a fresh group: the old one holds the abandoned receive).
    group = dist.new_group(list(range(world)), backend="gloo")
    if rank == 1:
        report(res)
        D._Run._attend = lambda self, *a: os._exit(3)

    def call_in_group():
        qs = mq.clone().requires_grad_()
        out = D.context_parallel_attention(qs, mk, mv, sattn.Dense(causal=True), group=group, timeout=20)
        out.sum().backward()
    res["killed_peer"] = _call_error(call_in_group)
    return res


def _entry(rank, world, store_path, target, queue):
    import torch.distributed as dist
    def report(res):
        queue.put((rank, res))
        queue.close()
        queue.join_thread()  # in the pipe before the process ends

    try:
        dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world)
        report(target(rank, world, report))
    except Exception:
        report(traceback.format_exc())
    os._exit(0)  # skip teardown: peers of a killed rank must not wait on it


def _run(world, target, budget_s=120):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_entry, args=(r, world, store, target, queue)) for r in range(world)]
        for p in procs:
            p.start()
        results = {}
        deadline = time.monotonic() + budget_s
        alive = set(range(world))
        while alive and time.monotonic() < deadline:
            try:
                rank, res = queue.get(timeout=1)
                results[rank] = res
                alive.discard(rank)
            except Exception:
                if all(not p.is_alive() for p in procs):
                    break
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    return results


@pytest.fixture(scope="module")
def warm():
    # The first sattn call registers its torch ops; do it once here, before the forks.
    q = torch.randn(1, 1, 8, 8)
    sattn.sparse_attention(q, q, q, sattn.Dense(), backend="cpu", threads=1)


def _check_accuracy(results, world):
    assert sorted(results) == list(range(world)), results
    for rank, res in results.items():
        assert isinstance(res, dict), res
        for case, r in res.items():
            assert isinstance(r, dict), f"rank {rank} {case}:\n{r}"
            e = r["errs"]
            assert e["out"] <= TOL_OUT and e["lse"] <= TOL_OUT, (rank, case, e)
            assert max(e["dq"], e["dk"], e["dv"]) <= TOL_GRAD, (rank, case, e)
            assert r["sent"] == r["model_sent"] and r["recv"] == r["model_recv"], (rank, case, r)
            if case[0] == "dense":
                assert r["recv"]["kv"] == r["ring"], (rank, case, r)  # dense: ring attention's volume
            assert r["lengths"] == _ragged(world, case[1])


def test_two_ranks_every_spec(warm):
    _check_accuracy(_run(2, _accuracy_worker), 2)


def test_four_ranks(warm):
    _check_accuracy(_run(4, _accuracy_worker), 4)


def test_sliding_window_fetches_only_neighbour_edges():
    lengths = D.even_lengths(4096, 4)
    m = D.communication_model(sattn.SlidingWindow(window=64), lengths, D=8, tile=16)
    row = 2 * 8 * 4  # k and v rows of one head, float32
    assert m.recv["kv"] == [64 * row, 128 * row, 128 * row, 64 * row]
    assert m.ring == [3072 * row] * 4


def test_faults(warm):
    results = _run(2, _fault_worker)
    assert set(results) == {0, 1}, results
    r0, r1 = results[0], results[1]
    assert isinstance(r0, dict) and isinstance(r1, dict), results
    for r in (r0, r1):
        assert r["spec_mismatch"]["type"] == ShardMismatch.__name__, r["spec_mismatch"]
        assert "spec digest differs across ranks" in r["spec_mismatch"]["msg"]
    assert r0["own_input_refused"]["type"] == ShardMismatch.__name__
    assert "rank 1 rejected its own inputs" in r0["own_input_refused"]["msg"]
    assert r1["own_input_refused"]["type"] == "ValueError"
    raised = r0["raising_peer"]
    assert raised["type"] == PeerFailure.__name__ and raised["peer"] == 1, raised
    # Rank 1's sends may or may not have left before it raised: rank 0 stops in either wait.
    assert raised["step"] in ("forward: receiving keys/values", "backward: receiving dk/dv"), raised
    assert raised["msg"].startswith(f"rank 0: {raised['step']} from rank 1 failed"), raised
    assert raised["elapsed"] < 1.0 + 3, raised
    assert r1["raising_peer"]["msg"] == "injected failure"
    killed = r0["killed_peer"]
    assert killed["type"] == PeerFailure.__name__ and killed["peer"] == 1, killed
    assert "rank 0: " in killed["msg"] and killed["step"], killed
    assert killed["elapsed"] < 10, killed  # the closed connection, not the 20 s timeout


def _doc_example():
    root = os.environ.get("TEST_SRCDIR")
    path = os.path.join(root, "sattn", "docs", "distributed.md") if root else \
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "distributed.md")
    with open(path) as f:
        return re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)[0]


def _example_entry(rank, world, port, code, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    try:
        exec(compile(code, "docs/distributed.md#example", "exec"), {"__name__": "__main__"})
        queue.put((rank, "ok"))
    except BaseException:
        queue.put((rank, traceback.format_exc()))
    queue.close()
    queue.join_thread()
    os._exit(0)


def test_doc_example_runs(warm):
    """docs/distributed.md's example, as torchrun would run it (env:// rendezvous), 2 ranks."""
    code = _doc_example()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_example_entry, args=(r, 2, port, code, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=5)
    assert results == {0: "ok", 1: "ok"}, results


def test_bench_cp_verb(warm, capsys):
    import json
    from sattn import cli
    with pytest.raises(SystemExit) as e:
        cli.main(["bench-cp", "--help"])
    assert e.value.code == 0 and "--simulate" in capsys.readouterr().out
    assert cli.main(["bench-cp", "--simulate", "--ranks", "4,x"]) == 2
    assert "--ranks" in capsys.readouterr().err
    assert cli.main(["bench-cp", "--simulate", "--spec", "sliding_window", "--window", "64", "--seq-len", "4096",
                     "--ranks", "2,4", "--heads", "1", "--head-dim", "8", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row_bytes = 2 * 8 * 2  # k and v, one kv head, D = 8, bf16
    assert [r["kv_recv_bytes_max"] for r in rows] == [64 * row_bytes, 128 * row_bytes]
    assert [r["ring_recv_bytes_max"] for r in rows] == [2048 * row_bytes, 3072 * row_bytes]
    assert cli.main(["bench-cp", "--world", "2", "--spec", "dense", "--causal", "--seq-len", "256", "--heads", "2",
                     "--head-dim", "8", "--repeat", "1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in rows] == [0, 1]
    for r in rows:
        assert r["kv_recv_bytes"] == r["kv_recv_model"] and r["fwdbwd_ms"] > 0 and r["single_half_fwdbwd_ms"] > 0
    assert rows[1]["kv_recv_bytes"] == rows[1]["ring_recv_bytes"]  # causal: rank 1 needs all of rank 0
