"""The float64 reference as a backend (slow, O(L^2) memory): for checking and small problems."""
from __future__ import annotations

import numpy as np

from sattn import _inputs, _limits, reference
from sattn import specs as S
from sattn.backends.base import BackendResult
from sattn.plan import check_plan, check_tile

NAME = "reference"


def available():
    return True, ""


def attention(q, k, v, spec, *, scale, return_lse, plan=None, tile: int | None = None, threads: int = 0,
              **options):
    """Options: plan (a sattn.plan() whose visible set is used, checked against the call). tile and
    threads are checked but change nothing here (the reference has no tiles and one thread): they
    are accepted so one call runs on every backend."""
    _inputs.check_options("the reference backend", options, _inputs.keyword_options(attention))
    S.check_spec(spec)
    prob = _inputs.check_qkv(q, k, v)
    _inputs.check_no_grad(NAME, q, k, v)
    scale = _inputs.resolve_scale(scale, prob.D)
    tile = None if tile is None else check_tile(tile)
    _inputs.check_threads(threads)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    scores = prob.B * prob.Hq * prob.Lq * prob.Lk
    if scores > _limits.MAX_ELEMENTS:
        raise ValueError(f"q, k: the reference backend holds all {scores} scores B*Hq*Lq*Lk in memory, at most "
                         f"{_limits.MAX_ELEMENTS}; use sattn.reference.attention(..., rows=...) on a sample of rows")
    mask = None
    if plan is not None:
        mask = check_plan(plan, spec, prob, tile=tile, scale=scale).to_dense_mask()
    out, lse = reference.attention(q, k, v, spec, scale=scale, return_lse=True, mask=mask)
    return BackendResult(out=out, lse=lse.astype(np.float32) if return_lse else None)
