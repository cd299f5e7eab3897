"""Bad input gets a clear, typed error naming the argument, raised before any work."""
import math

import numpy as np
import pytest

import sattn


def qkv(B=1, Hq=2, Hkv=2, Lq=8, Lk=8, D=4, dtype=np.float32):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, Hq, Lq, D)).astype(dtype), rng.standard_normal((B, Hkv, Lk, D)).astype(dtype),
            rng.standard_normal((B, Hkv, Lk, D)).astype(dtype))


@pytest.mark.parametrize("make,exc,match", [
    (lambda: sattn.BlockTopK(keep=0.0), ValueError, r"keep: expected a float in \(0, 1\]"),
    (lambda: sattn.BlockTopK(keep=1.5), ValueError, "keep"),
    (lambda: sattn.BlockTopK(keep=float("nan")), ValueError, "keep"),
    (lambda: sattn.BlockTopK(block=0), ValueError, "block"),
    (lambda: sattn.BlockTopK(block=8192), ValueError, "block"),
    (lambda: sattn.BlockTopK(score="median"), ValueError, "score"),
    (lambda: sattn.BlockTopK(global_blocks=-1), ValueError, "global_blocks"),
    (lambda: sattn.SlidingWindow(window=0), ValueError, "window"),
    (lambda: sattn.SlidingWindow(window=4, dilation=0), ValueError, "dilation"),
    (lambda: sattn.SlidingWindow(window=4, global_tokens=-2), ValueError, "global_tokens"),
    (lambda: sattn.SlidingWindow(window=2.5), TypeError, "window"),
    (lambda: sattn.BigBird(random_blocks=-1), ValueError, "random_blocks"),
    (lambda: sattn.BigBird(seed=-1), ValueError, "seed"),
    (lambda: sattn.TopKPerQuery(k=0), ValueError, "k"),
    (lambda: sattn.Dense(causal=1), TypeError, "causal"),
])
def test_spec_validation(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_specs_are_frozen():
    s = sattn.BlockTopK()
    with pytest.raises(Exception):
        s.keep = 0.5


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda q, k, v: (q[0], k, v), ValueError, "q: expected rank 4"),
    (lambda q, k, v: (q, k[..., :3], v), ValueError, "k: head_dim"),
    (lambda q, k, v: (q, k, v[:, :, :4]), ValueError, "v: expected the shape of k"),
    (lambda q, k, v: (q.astype(np.int32), k, v), TypeError, "q: expected dtype"),
    (lambda q, k, v: (q, k.astype(np.float64), v), TypeError, "one dtype"),
    (lambda q, k, v: (q.tolist(), k, v), TypeError, "q: expected a torch.Tensor or numpy.ndarray"),
    (lambda q, k, v: (np.concatenate([q, q[:, :1]], axis=1), k, v), ValueError, "multiple of kv heads"),
    (lambda q, k, v: (np.concatenate([q, q], axis=2), k, v), ValueError, "Lq=16 must be <= Lk=8"),
    (lambda q, k, v: (q, np.concatenate([k, k]), np.concatenate([v, v])), ValueError, "k: batch"),
])
def test_input_validation(mutate, exc, match):
    q, k, v = mutate(*qkv())
    with pytest.raises(exc, match=match):
        sattn.sparse_attention(q, k, v, sattn.Dense(), backend="reference")


@pytest.mark.parametrize("scale", [float("nan"), -1.0, 0.0, math.inf])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        sattn.sparse_attention(*qkv(), sattn.Dense(), backend="reference", scale=scale)


def test_block_larger_than_sequence():
    with pytest.raises(ValueError, match="block: expected at most the key length Lk=8, got 64"):
        sattn.sparse_attention(*qkv(), sattn.BlockTopK(block=64), backend="reference")


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="backend: expected one of reference, cpu, triton, rvv, rocc"):
        sattn.sparse_attention(*qkv(), sattn.Dense(), backend="tpu")


def test_spec_must_be_a_spec():
    with pytest.raises(TypeError, match="spec: expected a sattn spec"):
        sattn.sparse_attention(*qkv(), {"kind": "dense"})


def test_backends_lists_reference_and_cpu():
    names = sattn.backends()
    assert "reference" in names and "cpu" in names


def test_spec_from_command_line_options():
    opts = dict(causal=True, window=64, dilation=2, global_tokens=3, block=32, keep=0.5, global_blocks=0,
                local_blocks=2, score="max", window_blocks=5, random_blocks=1, seed=7, topk=9,
                heads=4, seq_len=128)   # options of other specs and of the tool are ignored
    assert sattn.specs.from_options("dense", opts) == sattn.Dense(causal=True)
    assert sattn.specs.from_options("sliding_window", opts) == sattn.SlidingWindow(
        window=64, causal=True, dilation=2, global_tokens=3)
    assert sattn.specs.from_options("block_topk", opts) == sattn.BlockTopK(
        block=32, keep=0.5, global_blocks=0, local_blocks=2, causal=True, score="max")
    assert sattn.specs.from_options("bigbird", opts) == sattn.BigBird(
        block=32, window_blocks=5, global_blocks=0, random_blocks=1, seed=7, causal=True)
    assert sattn.specs.from_options("topk_per_query", opts) == sattn.TopKPerQuery(k=9, causal=True)
    assert sattn.specs.from_options("BlockTopK", {}) == sattn.BlockTopK()   # contract defaults
    with pytest.raises(ValueError, match="spec: expected one of"):
        sattn.specs.from_options("sparse", opts)
    with pytest.raises(ValueError, match="keep"):
        sattn.specs.from_options("block_topk", dict(keep=1.5))
