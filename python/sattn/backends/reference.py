"""The float64 reference as a backend (slow, O(L^2) memory): for checking and small problems."""
from __future__ import annotations

import numpy as np

from sattn import reference
from sattn.backends.base import BackendResult

NAME = "reference"


def available():
    return True, ""


def attention(q, k, v, spec, *, scale, return_lse, **options):
    out, lse = reference.attention(q, k, v, spec, scale=scale, return_lse=True)
    return BackendResult(out=out, lse=lse.astype(np.float32) if return_lse else None)
