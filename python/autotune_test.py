"""The autotune cache read path: backends run a cached configuration for the matching key only,
and `sattn autotune` searches of the simulated backends cache what the backends then run."""
import json
import warnings

import numpy as np
import pytest

import sattn
from sattn import _inputs, tuning
from sattn import specs as S
from sattn.backends import cpu, rocc, rvv
from sattn import cli


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def qkv(B=1, H=2, Hkv=1, L=128, D=16, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, L, D), dtype=np.float32)
    k = rng.standard_normal((B, Hkv, L, D), dtype=np.float32)
    v = rng.standard_normal((B, Hkv, L, D), dtype=np.float32)
    return q, k, v


SPEC = S.SlidingWindow(window=48, causal=True)


def store(backend, device, q, k, v, config, spec=SPEC, version=None):
    prob = _inputs.check_qkv(q, k, v)
    key = tuning.key(backend, device, spec, tuning.shape_of(prob), prob.dtype)
    tuning.store(key, {"config": config})
    if version is not None:  # an entry written by another release under this key
        data = tuning.read()
        data["entries"][key]["sattn_version"] = version
        tuning.write(data)
    return key


def capture_cpu_kernel(monkeypatch):
    """Records the plan block and threads the cpu backend hands sattn._cc.attention_cpu."""
    from sattn import _cc
    seen = []
    real = _cc.attention_cpu

    def spy(q, k, v, plan, shape, scale, dtype, threads, *rest):
        seen.append({"block": plan["block"], "threads": threads})
        return real(q, k, v, plan, shape, scale, dtype, threads, *rest)
    monkeypatch.setattr(_cc, "attention_cpu", spy)
    return seen


def test_cpu_runs_the_cached_config_for_its_key(monkeypatch):
    q, k, v = qkv()
    seen = capture_cpu_kernel(monkeypatch)
    base = cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert seen[-1] == {"block": 64, "threads": 0} and base.counters["tuned"] == 0
    store("cpu", tuning.cpu_device(), q, k, v, {"tile": 32, "threads": 1})
    res = cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert seen[-1] == {"block": 32, "threads": 1}
    assert res.counters["tuned"] == 1 and res.plan.block == 32
    np.testing.assert_allclose(res.out, base.out, atol=1e-5)
    # sattn.sparse_attention goes through the same backend call.
    sattn.sparse_attention(q, k, v, SPEC, backend="cpu")
    assert seen[-1] == {"block": 32, "threads": 1}
    # Any tunable given: exactly what was given, the cache is not consulted.
    cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False, threads=2)
    assert seen[-1] == {"block": 64, "threads": 2}
    cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False, tile=128)
    assert seen[-1] == {"block": 128, "threads": 0}


def test_cpu_ignores_other_keys_and_other_versions(monkeypatch):
    q, k, v = qkv()
    seen = capture_cpu_kernel(monkeypatch)
    store("cpu", tuning.cpu_device(), q, k, v, {"tile": 32, "threads": 1}, version="0.0.0-another-release")
    store("cpu", "another machine x64", q, k, v, {"tile": 128, "threads": 1})
    store("cpu", tuning.cpu_device(), q, k, v, {"tile": 128, "threads": 1}, spec=S.SlidingWindow(window=16))
    q2, k2, v2 = qkv(L=96)
    store("cpu", tuning.cpu_device(), q2, k2, v2, {"tile": 128, "threads": 1})
    store("rvv", tuning.cpu_device(), q, k, v, {"tile": 128, "chunk_keys": 64})
    res = cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert seen[-1] == {"block": 64, "threads": 0} and res.counters["tuned"] == 0


def test_an_unreadable_cache_warns_once_and_runs_the_defaults(cache_home, monkeypatch):
    q, k, v = qkv()
    seen = capture_cpu_kernel(monkeypatch)
    path = cache_home / "sattn" / "autotune.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": 99, "entries": {}}))
    with pytest.warns(RuntimeWarning, match="another layout"):
        cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert seen[-1] == {"block": 64, "threads": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    rc = cli.main(["autotune", "--profile", "bigbird-base-4k", "--quick", "--seq-len", "256", "--heads", "1",
                   "--kv-heads", "1", "--repeat", "1"])
    assert rc == 1  # the verb does not overwrite a file it cannot read


def test_rvv_runs_the_cached_tile_and_chunk(monkeypatch):
    q, k, v = qkv(L=96)
    passed = []
    real = rvv.run_problem

    def spy(problem, **kw):
        passed.append(kw["extra_args"])
        return real(problem, **kw)
    monkeypatch.setattr(rvv, "run_problem", spy)
    store("rvv", rvv.tuning_device(256, "rvv", "fp32"), q, k, v, {"tile": 32, "chunk_keys": 64})
    store("rvv", rvv.tuning_device(512, "rvv", "fp32"), q, k, v, {"tile": 16, "chunk_keys": 16})
    res = rvv.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert passed[-1][:2] == ["--chunk-keys", "64"] and res.plan.block == 32 and res.counters["tuned"] == 1
    res = rvv.attention(q, k, v, SPEC, scale=0.25, return_lse=False, variant="scalar")
    assert passed[-1][:2] == ["--chunk-keys", "512"] and res.plan.block == 64 and res.counters["tuned"] == 0


def test_rocc_runs_the_cached_tile_and_path():
    q, k, v = qkv(L=96)
    store("rocc", rocc.tuning_device(40, 16.0), q, k, v, {"tile": 32, "path": "unfused"})
    res = rocc.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert (res.counters["tuned"], res.counters["path"], res.plan.block) == (1, "unfused", 32)
    res = rocc.attention(q, k, v, SPEC, scale=0.25, return_lse=False, latency=80)  # another memory model
    assert (res.counters["tuned"], res.counters["path"], res.plan.block) == (0, "fused", 64)


@pytest.mark.parametrize("backend,field", [("rocc", "cycles"), ("rvv", "instructions")])
def test_autotune_of_a_simulator_caches_what_the_backend_then_runs(backend, field, capsys):
    rc = cli.main(["autotune", "--backend", backend, "--profile", "mistral-7b-sliding-4k", "--quick",
                   "--seq-len", "64", "--heads", "1", "--kv-heads", "1", "--head-dim", "16", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    best, default = res["best"], res["default"]
    assert res["objective"] == field and best[field] <= default[field]
    assert default["config"] == tuning.DEFAULTS[backend]
    assert len(res["candidates"]) == (12 if backend == "rvv" else 8)
    # Every candidate computes the same attention (tiles and chunks change the order of the sums).
    assert max(c["max_abs_diff_vs_default"] for c in res["candidates"]) < (0.1 if backend == "rocc" else 1e-4)
    from sattn.cli import profiles
    prof = profiles.get("mistral-7b-sliding-4k")
    shape = prof.shape(True, seq_len=64, heads=1, kv_heads=1, head_dim=16)
    mod = rvv if backend == "rvv" else rocc
    import torch
    rng = np.random.default_rng(1)
    q, k, v = (torch.from_numpy(rng.standard_normal((1, h, 64, 16), dtype=np.float32)).bfloat16()
               for h in (shape["Hq"], shape["Hkv"], shape["Hkv"]))
    out = mod.attention(q, k, v, prof.spec(True), scale=0.25, return_lse=False)
    assert out.counters["tuned"] == 1 and out.counters[field] == best[field]


def test_autotune_table_says_tuned_vs_default(capsys):
    rc = cli.main(["autotune", "--backend", "rocc", "--profile", "bigbird-base-4k", "--quick", "--seq-len", "256",
                   "--heads", "1", "--kv-heads", "1", "--head-dim", "16"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "(default)" in out or "<- best" in out
    assert "tuned " in out and " vs default " in out and "cycles" in out


def test_triton_search_without_cuda_exits_1_with_the_reason(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the search would run")
    rc = cli.main(["autotune", "--backend", "triton", "--profile", "bigbird-base-4k", "--quick"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1
    assert "CUDA GPU" in err and "torch.cuda.is_available() is False" in err


def test_triton_candidates_cover_tiles_warps_and_stages():
    from sattn.cli import autotune
    cands = autotune.candidates("triton", SPEC)
    assert cands[0] == {"fwd_tiles": None} and len(cands) == 1 + 2 * 3 * 2 * 3
    assert {tuple(c["fwd_tiles"])[2] for c in cands[1:]} == {4, 8}
    assert {tuple(c["fwd_tiles"])[3] for c in cands[1:]} == {2, 3, 4}


def test_triton_passes_the_cached_fwd_tiles_to_the_kernels(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    from sattn.backends import triton as tb
    calls = []

    class Kernels:
        @staticmethod
        def attention(q, k, v, spec, **kw):
            calls.append(kw)
            return torch.zeros_like(q), None
    monkeypatch.setattr(tb, "_import_kernels", lambda: Kernels)
    q, k, v = (torch.from_numpy(x) for x in qkv())
    store("triton", tuning.triton_device(q.device), q, k, v, {"fwd_tiles": [64, 32, 4, 2]})
    res = tb.attention(q, k, v, SPEC, scale=0.25, return_lse=False)
    assert calls[-1]["fwd_tiles"] == (64, 32, 4, 2) and res.counters["tuned"] == 1
    tb.attention(q, k, v, SPEC, scale=0.25, return_lse=False, fwd_tiles=(128, 64, 8, 3))
    assert calls[-1]["fwd_tiles"] == (128, 64, 8, 3)
    tb.attention(q, k, v, SPEC, scale=0.25, return_lse=False, tile=64)
    assert calls[-1]["fwd_tiles"] is None
