"""`sattn::host_attention`: the one differentiable entry point of every host backend.

  sattn::host_attention(q, k, v, <plan tensors or None>, backend, spec, options, scale, grad_for)
      -> (out, lse, row_ptr, col_idx, mask_idx, bitmaps, geometry)
  sattn::host_attention_backward(dout, dlse, q, k, v, out, lse, <plan tensors>, geometry, backend,
      spec, options, scale) -> (dq, dk, dv)

sattn.sparse_attention calls the first for torch tensors on the reference, cpu, rvv and rocc
backends ('auto' on host tensors). The forward runs the backend's attention() and returns the
plan it ran as tensors; register_autograd saves them with q, k, v, out and lse, and the backward
op hands that plan (never re-planned) to the backend's attention_backward(). A backend without
attention_backward raises sattn.GradientNotSupported, but only when a gradient is needed (an
input requires grad with grad mode on). Both ops have fake implementations (the plan's sizes are
data-dependent: unbacked sizes), so torch.compile(fullgraph=True) traces a call and its backward
without a graph break. The spec and the scalar backend options travel as their repr() text.

The contract's non-finite policy for gradients (docs/contract.md, "Gradients") is applied here,
once for every backend: backends only ever see finite values.

This module imports torch; sattn.api imports it only for torch inputs.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from sattn import _inputs
from sattn import specs as S
from sattn.errors import GradientNotSupported
from sattn.plan import BlockPlan

# The registry package (the name sattn.backends is the listing function once sattn is imported).
_backends = importlib.import_module("sattn.backends")
HOST_BACKENDS = ("reference", "cpu", "rvv", "rocc")
_GEOMETRY = ("block", "B", "Hq", "Lq", "Lk", "plan_b", "plan_h", "q_block_begin", "n_q_blocks", "n_k_blocks",
             "words_per_row")
_SPECS = {"Dense": S.Dense, "SlidingWindow": S.SlidingWindow, "BlockTopK": S.BlockTopK, "BigBird": S.BigBird,
          "TopKPerQuery": S.TopKPerQuery}


# ---- what travels through the op's schema -------------------------------------------------------

# Specs other than the five contract classes travel by key: the object is kept here.
_OTHER_SPECS: dict = {}


def _spec_text(spec) -> str:
    """`Kind(field=value, ...)`: the spec's dataclass repr (built here: dataclass __repr__ asks
    for the thread id, which torch.compile does not trace)."""
    if type(spec) not in _SPECS.values():
        key = f"<{type(spec).__name__} at {id(spec):#x}>"
        _OTHER_SPECS[key] = spec
        return key
    args = ", ".join(f"{f.name}={getattr(spec, f.name)!r}" for f in dataclasses.fields(spec))
    return f"{type(spec).__name__}({args})"


def _spec_of(text: str):
    return _OTHER_SPECS[text] if text in _OTHER_SPECS else _contract_spec_of(text)


@functools.lru_cache(maxsize=256)
def _contract_spec_of(text: str) -> S.Spec:
    """The spec whose repr() is `text` (a call of one spec class with literal keyword arguments)."""
    node = ast.parse(text, mode="eval").body
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SPECS
            and not node.args):
        raise ValueError(f"spec: cannot read {text!r}")
    return _SPECS[node.func.id](**{kw.arg: ast.literal_eval(kw.value) for kw in node.keywords})


def _options_text(options: dict) -> str:
    items = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, np.generic):
            value = value.item()
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise TypeError(f"{key}: expected a number, string, bool or None (backend options travel through "
                            f"the sattn::host_attention op), got {type(value).__name__}")
        items.append((key, value))
    return repr(tuple(items))


@functools.lru_cache(maxsize=256)
def _options_of(text: str) -> tuple:
    return ast.literal_eval(text)


def _plan_tensors(plan: BlockPlan):
    return (torch.from_numpy(plan.row_ptr), torch.from_numpy(plan.col_idx), torch.from_numpy(plan.mask_idx),
            torch.from_numpy(plan.bitmaps.view(np.int64)),
            torch.tensor([getattr(plan, f) for f in _GEOMETRY], dtype=torch.int32))


def _plan_of(row_ptr, col_idx, mask_idx, bitmaps, geometry) -> BlockPlan:
    geo = dict(zip(_GEOMETRY, (int(x) for x in geometry.tolist())))
    return BlockPlan(**geo, row_ptr=row_ptr.numpy(), col_idx=col_idx.numpy(), mask_idx=mask_idx.numpy(),
                     bitmaps=bitmaps.numpy().view(np.uint64))


def _backend(name: str):
    if name == "auto":
        name = "cpu" if "cpu" in _backends.available() else "reference"
    return name, _backends.get(name)


def _to_torch(x, dtype) -> Tensor:
    t = x if _inputs._is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(dtype=dtype).contiguous()


def _lse_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---- forward ------------------------------------------------------------------------------------

@torch.library.custom_op("sattn::host_attention", mutates_args=())
def host_attention(q: Tensor, k: Tensor, v: Tensor, row_ptr: Optional[Tensor], col_idx: Optional[Tensor],
                   mask_idx: Optional[Tensor], bitmaps: Optional[Tensor], geometry: Optional[Tensor],
                   backend: str, spec: str, options: str, scale: float, grad_for: str
                   ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    name, mod = _backend(backend)
    spec_obj = _spec_of(spec)
    opts = dict(_options_of(options))
    if grad_for and not hasattr(mod, "attention_backward"):
        raise GradientNotSupported(
            f"{grad_for[0]}: requires_grad=True, but the {name} backend has no backward for {spec_obj} (the "
            f"output would get no gradient); use backend='cpu' or 'reference', or call under torch.no_grad() or "
            f"with {grad_for[0]}.detach()")
    if row_ptr is not None:
        opts["plan"] = _plan_of(row_ptr, col_idx, mask_idx, bitmaps, geometry)
    res = mod.attention(q.detach(), k.detach(), v.detach(), spec_obj, scale=scale, return_lse=True, **opts)
    out = _to_torch(res.out, q.dtype)
    lse = _to_torch(res.lse, _lse_dtype(q.dtype))
    given = opts.get("plan")
    plan = res.plan if res.plan is not None else given
    if not grad_for:  # nothing will run the backward: no plan to keep
        plan_t = tuple(torch.zeros(0, dtype=d) for d in (torch.int32,) * 3 + (torch.int64,)) + (
            torch.zeros(len(_GEOMETRY), dtype=torch.int32),)
    elif plan is None:
        raise RuntimeError(f"the {name} backend returned no plan from attention(); attention_backward needs the "
                           f"forward's plan (sattn.backends.base.BackendResult.plan)")
    else:
        plan_t = _plan_tensors(plan)
        if plan is given:  # views of this call's input tensors: an op's outputs may not alias its inputs
            plan_t = tuple(t.clone() for t in plan_t)
    return (out, lse) + plan_t


@host_attention.register_fake
def _(q, k, v, row_ptr, col_idx, mask_idx, bitmaps, geometry, backend, spec, options, scale, grad_for):
    ctx = torch.library.get_ctx()
    B, Hq, Lq, D = q.shape
    sizes = [ctx.new_dynamic_size() for _ in range(4)]
    return (q.new_empty((B, Hq, Lq, D)), q.new_empty((B, Hq, Lq), dtype=_lse_dtype(q.dtype)),
            q.new_empty(sizes[0], dtype=torch.int32), q.new_empty(sizes[1], dtype=torch.int32),
            q.new_empty(sizes[2], dtype=torch.int32), q.new_empty(sizes[3], dtype=torch.int64),
            q.new_empty(len(_GEOMETRY), dtype=torch.int32))


# ---- backward -----------------------------------------------------------------------------------

def _finite(a: np.ndarray) -> bool:
    return bool(np.isfinite(a).all())


def _keys_seen(plan: BlockPlan, b: int, h: int, i: int) -> np.ndarray:
    """Key positions visible to query row i of (b, h) under `plan`."""
    blk = plan.block
    p = i + plan.Lk - plan.Lq
    a = p // blk
    row = plan.row_of(b, h, a - plan.q_block_begin)
    keys = []
    for e in range(int(plan.row_ptr[row]), int(plan.row_ptr[row + 1])):
        c = int(plan.col_idx[e])
        j = np.arange(c * blk, min((c + 1) * blk, plan.Lk))
        m = int(plan.mask_idx[e])
        if m >= 0:
            words = plan.bitmaps[(m * blk + (p - a * blk)) * plan.words_per_row:][:plan.words_per_row]
            jj = j - c * blk
            j = j[((words[jj // 64] >> (jj % 64).astype(np.uint64)) & np.uint64(1)).astype(bool)]
        keys.append(j)
    return np.concatenate(keys) if keys else np.zeros(0, np.int64)


def _backward_arrays(mod, plan, scale, opts, q, k, v, out, lse, dout, dlse):
    """The backend's gradients under the contract's non-finite policy for gradients.

    A row is poisoned when it sees a key and its lse is NaN (the forward poisoned it) or its dout
    or dlse holds a non-finite value. The backend gets every non-finite value set to 0 and the
    poisoned rows handed over with lse = +inf (exp(s - lse) = 0: they contribute nothing) and
    zero dout/dlse; then dq of a poisoned row is NaN, and dk, dv of every key it sees."""
    Hq, Hkv = q.shape[1], k.shape[1]
    poisoned = np.isnan(lse) | ~np.isfinite(dout).all(axis=-1)
    if dlse is not None:
        poisoned |= ~np.isfinite(dlse)
    poisoned &= ~np.isneginf(lse)
    clean = all(_finite(x) for x in (q, k, v, out)) and not poisoned.any()
    if not clean:
        q, k, v, out, dout = (np.where(np.isfinite(x), x, 0).astype(x.dtype) for x in (q, k, v, out, dout))
        lse = np.where(poisoned, np.inf, lse).astype(lse.dtype)
        dout[poisoned] = 0
        out[poisoned] = 0
        if dlse is not None:
            dlse = np.where(poisoned | ~np.isfinite(dlse), 0, dlse).astype(dlse.dtype)
    g = mod.attention_backward(q, k, v, out, lse, dout, dlse, plan, scale=scale, **opts)
    dq, dk, dv = (np.array(x, copy=not clean) for x in (g.dq, g.dk, g.dv))
    if poisoned.any():
        group = Hq // Hkv
        for b, h, i in zip(*np.nonzero(poisoned)):
            dq[b, h, i] = np.nan
            keys = _keys_seen(plan, int(b), int(h), int(i))
            dk[b, h // group, keys] = np.nan
            dv[b, h // group, keys] = np.nan
    return dq, dk, dv


@torch.library.custom_op("sattn::host_attention_backward", mutates_args=())
def host_attention_backward(dout: Tensor, dlse: Optional[Tensor], q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                            lse: Tensor, row_ptr: Tensor, col_idx: Tensor, mask_idx: Tensor, bitmaps: Tensor,
                            geometry: Tensor, backend: str, spec: str, options: str, scale: float
                            ) -> Tuple[Tensor, Tensor, Tensor]:
    name, mod = _backend(backend)
    opts = dict(_options_of(options))
    plan = _plan_of(row_ptr, col_idx, mask_idx, bitmaps, geometry)
    dt = getattr(mod, "GRAD_DTYPE", np.float32)
    arrays = [None if x is None else _inputs.to_numpy(x, dt) for x in (q, k, v, out, lse, dout, dlse)]
    dq, dk, dv = _backward_arrays(mod, plan, scale, opts, *arrays)
    return _to_torch(dq, q.dtype), _to_torch(dk, k.dtype), _to_torch(dv, v.dtype)


@host_attention_backward.register_fake
def _(dout, dlse, q, k, v, out, lse, row_ptr, col_idx, mask_idx, bitmaps, geometry, backend, spec, options, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v = inputs[:3]
    out, lse, *plan_t = output
    ctx.save_for_backward(q, k, v, out, lse, *plan_t)
    ctx.args = inputs[8:12]  # backend, spec, options, scale


def _backward(ctx, dout, dlse, *unused):
    q, k, v, out, lse, *plan_t = ctx.saved_tensors
    if dout is None:
        dout = torch.zeros_like(out)
    dq, dk, dv = host_attention_backward(dout, dlse, q, k, v, out, lse, *plan_t, *ctx.args)
    return (dq, dk, dv) + (None,) * 10


torch.library.register_autograd("sattn::host_attention", _backward, setup_context=_setup_context)


# ---- the entry point sattn.sparse_attention calls ------------------------------------------------

def sparse_attention(q, k, v, spec, prob, backend: str, scale: float, return_lse: bool, options: dict):
    """sattn.sparse_attention for torch tensors on a host backend (arguments already checked)."""
    options = dict(options)
    plan = options.pop("plan", None)
    plan_t = (None,) * 5
    if plan is not None:
        if not isinstance(plan, BlockPlan):
            raise TypeError(f"plan: expected a sattn.BlockPlan (from sattn.plan(spec, q, k)), got "
                            f"{type(plan).__name__}")
        if plan.source is not None:
            from sattn.plan import check_plan, check_tile
            tile = options.get("tile")
            check_plan(plan, spec, prob, tile=None if tile is None else check_tile(tile), scale=scale)
        plan_t = _plan_tensors(plan)
    grad_for = ""
    if torch.is_grad_enabled():
        grad_for = "".join(n for n, x in zip("qkv", (q, k, v)) if x.requires_grad)
    out, lse, *_ = host_attention(q, k, v, *plan_t, backend, _spec_text(spec), _options_text(options), float(scale),
                                  grad_for)
    if not return_lse:
        return out
    return out, lse if lse.dtype == torch.float32 else lse.to(torch.float32)
