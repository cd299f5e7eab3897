"""Hypothesis draws malformed calls of the Python API; each must raise a typed error naming the
argument it broke (TypeError/ValueError or a sattn error subclass), never anything else."""
import keyword

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sattn
from sattn import _inputs
from sattn.backends import cpu, reference

TYPED = (TypeError, ValueError, sattn.GradientNotSupported)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

B, HQ, HKV, L, D = 1, 2, 2, 12, 4
RNG = np.random.default_rng(0)
Q = RNG.standard_normal((B, HQ, L, D)).astype(np.float32)
K = RNG.standard_normal((B, HKV, L, D)).astype(np.float32)
V = RNG.standard_normal((B, HKV, L, D)).astype(np.float32)

GOOD_SPECS = [sattn.Dense(causal=True), sattn.SlidingWindow(window=3), sattn.BlockTopK(block=4, keep=0.5),
              sattn.BigBird(block=4, random_blocks=1), sattn.TopKPerQuery(k=3)]
ACCEPTED = {"backend", "scale", "return_lse", "plan", "tile", "threads", "q", "k", "v", "spec"}
SPEC_INT_FIELDS = {
    sattn.SlidingWindow: ("window", "dilation", "global_tokens"),
    sattn.BlockTopK: ("block", "global_blocks", "local_blocks"),
    sattn.BigBird: ("block", "window_blocks", "global_blocks", "random_blocks", "seed"),
    sattn.TopKPerQuery: ("k",),
}
NOT_A_NUMBER = st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2), st.just({}), st.just(b"1"),
                         st.just(1 + 2j))


def call(q=Q, k=K, v=V, spec=GOOD_SPECS[0], **kw):
    return lambda: sattn.sparse_attention(q, k, v, spec, **kw)


@st.composite
def bad_kwargs(draw):
    """An unknown keyword (random identifier or a torch SDPA / flash-attn one)."""
    key = draw(st.one_of(st.sampled_from(sorted(_inputs.FOREIGN_KEYWORDS)),
                         st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)))
    if key in ACCEPTED or keyword.iskeyword(key):
        key += "_x"
    backend = draw(st.sampled_from(["auto", "cpu", "reference"]))
    return key, call(backend=backend, **{key: draw(st.one_of(st.booleans(), st.floats(), st.none()))})


@st.composite
def bad_shapes(draw):
    """q/k/v with a broken rank, batch, head_dim, head ratio, length order or an empty dimension."""
    what = draw(st.sampled_from(["rank", "batch", "head_dim", "heads", "lengths", "empty", "v_shape"]))
    q, k, v = Q, K, V
    if what == "rank":
        name = draw(st.sampled_from("qkv"))
        shape = draw(st.sampled_from([(-1,), (1, -1, D), (1, 1, 1, 1, -1)]))
        arrs = {n: (x.reshape(shape) if n == name else x) for n, x in zip("qkv", (q, k, v))}
        return name, call(arrs["q"], arrs["k"], arrs["v"])
    if what == "batch":
        return "k", call(q, np.concatenate([k, k]), np.concatenate([v, v]))
    if what == "head_dim":
        return "k", call(q, k[..., : draw(st.integers(1, D - 1))], v[..., :1])
    if what == "heads":
        return "q", call(np.concatenate([q, q[:, :1]], axis=1), k, v)
    if what == "lengths":
        return "q", call(np.concatenate([q, q[:, :, : draw(st.integers(1, L))]], axis=2), k, v)
    if what == "empty":
        axis = draw(st.integers(0, 3))
        return "q", call(np.take(q, [], axis=axis), k, v)
    return "v", call(q, k, v[:, :, : draw(st.integers(1, L - 1))])


@st.composite
def bad_dtypes(draw):
    """One of q/k/v of a dtype no backend takes, as numpy or torch, or a list; or a framework mix."""
    name = draw(st.sampled_from("qkv"))
    arrs = dict(q=Q, k=K, v=V)
    form = draw(st.sampled_from(["numpy", "torch", "list", "mix"]))
    if form == "mix":
        arrs[name] = torch.from_numpy(arrs[name])
        return ("q, k, v",), call(arrs["q"], arrs["k"], arrs["v"])
    dtype = draw(st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64]))
    bad = arrs[name].astype(dtype)
    arrs = {n: (torch.from_numpy(x) if form == "torch" else x) for n, x in arrs.items()}
    arrs[name] = {"numpy": bad, "torch": torch.from_numpy(bad), "list": bad.tolist()}[form]
    return (name,), call(arrs["q"], arrs["k"], arrs["v"])


@st.composite
def bad_specs(draw):
    """A spec field out of its range (negative, past int32/uint64) or of the wrong type."""
    cls = draw(st.sampled_from(sorted(SPEC_INT_FIELDS, key=lambda c: c.__name__)))
    field = draw(st.sampled_from(SPEC_INT_FIELDS[cls]))
    hi = 2**64 - 1 if field == "seed" else (4096 if field == "block" else 2**31 - 1)
    value = draw(st.one_of(st.integers(hi + 1, 2**70), st.integers(-2**40, -1), st.floats(allow_nan=True),
                           NOT_A_NUMBER, st.booleans()))
    return field, lambda: cls(**{field: value})


@st.composite
def bad_scales(draw):
    value = draw(st.one_of(st.floats(max_value=2.0**-127, allow_subnormal=True), st.floats(min_value=2.0**128),
                           st.just(float("nan")), st.floats(max_value=0.0), st.booleans(), NOT_A_NUMBER,
                           st.floats(min_value=0.1, max_value=1).map(lambda x: np.array([x, x]))))
    wrap = draw(st.sampled_from([lambda x: x, np.float64, np.asarray])) if isinstance(value, float) else (lambda x: x)
    return "scale", call(scale=wrap(value), backend=draw(st.sampled_from(["cpu", "reference"])))


@st.composite
def bad_plans(draw):
    """A plan of another spec, tile or shape, or something that is not a plan."""
    built = draw(st.sampled_from(GOOD_SPECS))
    used = draw(st.sampled_from([s for s in GOOD_SPECS if s != built]))
    kind = draw(st.sampled_from(["spec", "not_a_plan", "shape"]))
    plan = sattn.plan(built, Q, K, tile=4)
    if kind == "not_a_plan":
        plan = draw(st.sampled_from([plan.to_dict(), "plan", 0, [plan]]))
        used = built
    elif kind == "shape":
        plan = sattn.plan(built, Q[:, :, :8], K[:, :, :8], tile=4)
        used = built
    backend = draw(st.sampled_from(["cpu", "reference"]))
    return "plan", call(spec=used, plan=plan, backend=backend)


@st.composite
def bad_grads(draw):
    flags = draw(st.lists(st.booleans(), min_size=3, max_size=3).filter(any))
    tensors = [torch.from_numpy(x).requires_grad_(g) for x, g in zip((Q, K, V), flags)]
    first = "qkv"[flags.index(True)]
    # sparse_attention differentiates on these backends; a backend module's attention() called
    # directly returns a detached result, so it refuses inputs that require grad.
    mod = draw(st.sampled_from([cpu, reference]))
    return first, lambda: mod.attention(*tensors, GOOD_SPECS[0], scale=0.5, return_lse=False)


def check(names, fn):
    names = (names,) if isinstance(names, str) else names
    with pytest.raises(TYPED) as info:
        fn()
    msg = str(info.value)
    assert any(msg.startswith(n + ":") or msg.startswith(n + ".") for n in names), (names, msg)


@SETTINGS
@given(bad_kwargs())
def test_unknown_keywords(case):
    check(*case)


@SETTINGS
@given(bad_shapes())
def test_bad_shapes(case):
    # The message names the input the check reads first (an empty q batch reads "k: batch ...").
    check(("q", "k", "v", "q, k"), case[1])


@SETTINGS
@given(bad_dtypes())
def test_bad_dtypes(case):
    check(*case)


@SETTINGS
@given(bad_specs())
def test_bad_spec_fields(case):
    check(*case)


@SETTINGS
@given(bad_scales())
def test_bad_scales(case):
    check(*case)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_plans())
def test_bad_plans(case):
    check(*case)


@settings(max_examples=15, deadline=None)
@given(bad_grads())
def test_gradients_requested_from_backend_modules_directly(case):
    check(*case)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([cpu, reference]), st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                                                          st.integers(), min_size=1, max_size=2))
def test_backends_called_directly_reject_unknown_keywords(mod, options):
    options = {k: v for k, v in options.items() if k not in ACCEPTED and not keyword.iskeyword(k)}
    if not options:
        return
    with pytest.raises(TypeError) as info:
        mod.attention(Q, K, V, GOOD_SPECS[0], scale=0.5, return_lse=False, **options)
    assert str(info.value).split(":")[0] in options
