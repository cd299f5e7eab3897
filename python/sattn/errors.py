"""Typed errors of the sattn API beyond TypeError/ValueError."""
from __future__ import annotations


class GradientNotSupported(NotImplementedError):
    """A call asked for gradients (torch grad mode on and q, k or v requiring grad) from a backend
    that has no backward: its output would come back detached and the loss would get no gradient
    through it. The message names the backend and the input."""


class QuantNotSupported(NotImplementedError):
    """A quantized call (sparse_attention(..., quant=...)) to a backend with no quantized path; the
    message names the backend and the scheme."""
