"""What turns a row's scores into weights (docs/contract.md, "Normalizers").

  softmax  w_ij = exp(s_ij - lse_i) over the visible keys (the default);
  sigmoid  w_ij = sigmoid(s_ij + b), b = -log(Lk): sigmoid attention as in Ramapuram et al. 2024,
           "Theory, Analysis, and Best Practices for Sigmoid Self-Attention" (arXiv:2409.04431),
           whose bias -log(n) keeps the row sum near 1 at initialisation;
  relu2    w_ij = relu(s_ij)^2 / Lk: the squared-ReLU attention of the Gated Attention Unit, Hua et
           al. 2022, "Transformer Quality in Linear Time" (arXiv:2202.10447), with the 1/n of its
           A = relu^2(.) / n. (Implementations that divide the score by n before squaring are
           this normalizer with scale / Lk and the output times Lk.)

with s_ij = scale * q_i . k_j. Masked pairs weigh 0 and rows with no visible key give out = 0 for
every normalizer. Only softmax has a log-sum-exp: sparse_attention(..., return_lse=True) with
another normalizer raises sattn.NormalizerNotSupported.
"""
from __future__ import annotations

import math

import numpy as np

NAMES = ("softmax", "sigmoid", "relu2")
# Backends that run every normalizer; the others raise NormalizerNotSupported for all but softmax.
BACKENDS = ("reference", "cpu")


def check(normalizer) -> str:
    """The normalizer's name, or ValueError/TypeError naming `normalizer`."""
    if not isinstance(normalizer, str):
        raise TypeError(f"normalizer: expected one of {', '.join(map(repr, NAMES))}, got "
                        f"{type(normalizer).__name__}")
    if normalizer not in NAMES:
        raise ValueError(f"normalizer: expected one of {', '.join(map(repr, NAMES))}, got {normalizer!r}")
    return normalizer


def sigmoid_bias(Lk: int) -> float:
    """b = -log(Lk), the sigmoid normalizer's bias."""
    return -math.log(Lk)


def weights(s: np.ndarray, mask: np.ndarray, normalizer: str, Lk: int) -> np.ndarray:
    """float64 weights w_ij (0 on masked pairs) of a non-softmax normalizer from scores s."""
    if normalizer == "sigmoid":
        u = s + sigmoid_bias(Lk)
        with np.errstate(over="ignore"):
            w = np.where(u >= 0, 1.0 / (1.0 + np.exp(-np.abs(u))), np.exp(-np.abs(u)) / (1.0 + np.exp(-np.abs(u))))
    elif normalizer == "relu2":
        w = np.maximum(s, 0.0) ** 2 / Lk
    else:
        raise ValueError(f"normalizer: {normalizer!r} has no elementwise weights")
    return np.where(mask, w, 0.0)


def weight_derivative(s: np.ndarray, mask: np.ndarray, normalizer: str, Lk: int) -> np.ndarray:
    """dw_ij / ds_ij (0 on masked pairs)."""
    if normalizer == "sigmoid":
        w = weights(s, mask, normalizer, Lk)
        d = w * (1.0 - w)
    elif normalizer == "relu2":
        d = 2.0 * np.maximum(s, 0.0) / Lk
    else:
        raise ValueError(f"normalizer: {normalizer!r} has no elementwise weights")
    return np.where(mask, d, 0.0)
