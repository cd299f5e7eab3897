"""A downstream py_test using @sattn//python:sattn."""
import numpy as np

import sattn


def main():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 4, 64, 32)).astype(np.float32) for _ in range(3))
    spec = sattn.BlockTopK(block=16, keep=0.5, causal=True)
    out = sattn.sparse_attention(q, k, v, spec, backend="cpu")
    err = float(np.abs(out - sattn.reference.attention(q, k, v, spec)).max())
    assert err < 1e-4, err
    print("downstream ok, max err", err)


if __name__ == "__main__":
    main()
