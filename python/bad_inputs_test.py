"""What a call cannot honour raises a typed error naming the argument, before any work (issue 16).

Each CASES row is one bad call as a careful user would write it; the count of rows is the
Python layer's figure of bad-input cases in docs (all must give TypeError/ValueError or a sattn
error subclass whose message names the argument).
"""
import fractions
import time

import numpy as np
import pytest
import torch

import sattn
from sattn import _cc, _limits
from sattn.backends import cpu, reference, rocc, rvv, triton

INT32_TOO_BIG = 2**31


def qkv(B=1, Hq=2, Hkv=2, Lq=16, Lk=16, D=8, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, Hq, Lq, D)).astype(dtype), rng.standard_normal((B, Hkv, Lk, D)).astype(dtype),
            rng.standard_normal((B, Hkv, Lk, D)).astype(dtype))


def tqkv(requires_grad=(False, False, False), **kw):
    return tuple(torch.from_numpy(x).requires_grad_(g) for x, g in zip(qkv(**kw), requires_grad))


def sa(*args, **kw):
    return lambda: sattn.sparse_attention(*args, **kw)


def huge(shape):
    """A float32 array of `shape` that owns one element (stride 0): a size test without memory."""
    return np.broadcast_to(np.zeros((), np.float32), shape)


Q, K, V = qkv()
DENSE = sattn.Dense()
PLAN_DENSE = sattn.plan(DENSE, Q, K, tile=8)
PLAN_TOPK = sattn.plan(sattn.BlockTopK(block=4, keep=0.5), Q, K, scale=0.25)
L_HUGE = 2**31 - 64

# (id, call, exception type, regex the message must match: it names the argument)
CASES = [
    # -- a backend module's attention() returns a detached output (sparse_attention is the
    # differentiable entry point): refuse inputs that require grad
    ("grad_cpu_direct", lambda: cpu.attention(*tqkv((True, True, True)), DENSE, scale=0.3, return_lse=False),
     sattn.GradientNotSupported, r"^q: .*cpu"),
    ("grad_rvv_direct", lambda: rvv.attention(*tqkv((True, False, False)), DENSE, scale=0.3, return_lse=False),
     sattn.GradientNotSupported, r"^q: .*rvv"),
    ("grad_rocc_direct", lambda: rocc.attention(*tqkv((True, False, False)), DENSE, scale=0.3, return_lse=False),
     sattn.GradientNotSupported, r"^q: .*rocc"),
    ("grad_scale_tensor", sa(Q, K, V, DENSE, scale=torch.tensor(0.3, requires_grad=True)), sattn.GradientNotSupported,
     r"^scale: requires_grad"),
    # -- torch SDPA / flash-attn keywords: say what does their job
    ("sdpa_is_causal", sa(Q, K, V, DENSE, is_causal=True), TypeError, r"^is_causal: .*Dense\(causal=True\)"),
    ("sdpa_attn_mask", sa(Q, K, V, DENSE, attn_mask=np.ones((16, 16), bool)), TypeError,
     r"^attn_mask: .*spec.*dense_mask"),
    ("sdpa_dropout_p", sa(Q, K, V, DENSE, dropout_p=0.1), TypeError, r"^dropout_p: .*not supported"),
    ("sdpa_dropout_p_zero", sa(Q, K, V, DENSE, dropout_p=0.0), TypeError, r"^dropout_p: "),
    ("sdpa_enable_gqa", sa(Q, K, V, DENSE, enable_gqa=True), TypeError,
     r"^enable_gqa: not a sattn keyword.*GQA is automatic"),
    ("sdpa_scale_alias", sa(Q, K, V, DENSE, softmax_scale=0.1), TypeError, r"^softmax_scale: .*pass scale="),
    ("flash_causal", sa(Q, K, V, DENSE, causal=True), TypeError, r"^causal: .*spec"),
    ("flash_window_size", sa(Q, K, V, DENSE, window_size=(4, 0)), TypeError, r"^window_size: .*SlidingWindow"),
    ("flex_block_mask", sa(Q, K, V, DENSE, block_mask=None), TypeError, r"^block_mask: "),
    ("flex_score_mod", sa(Q, K, V, DENSE, score_mod=None), TypeError, r"^score_mod: .*not supported"),
    ("sdpa_on_reference", sa(Q, K, V, DENSE, backend="reference", is_causal=False), TypeError, r"^is_causal: "),
    # -- unknown options: name them, list the accepted ones
    ("typo_tilee", sa(Q, K, V, DENSE, backend="cpu", tilee=32), TypeError,
     r"^tilee: unknown option for the cpu backend \(did you mean 'tile'\?\); accepted options: normalizer, plan, "
     r"threads, tile"),
    ("rvv_option_on_cpu", sa(Q, K, V, DENSE, backend="cpu", vlen=128), TypeError, r"^vlen: unknown option"),
    ("unknown_on_reference", sa(Q, K, V, DENSE, backend="reference", foo=1), TypeError,
     r"^foo: unknown option for the reference backend"),
    ("unknown_cpu_direct", lambda: cpu.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, is_causal=True),
     TypeError, r"^is_causal: "),
    ("unknown_reference_direct", lambda: reference.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, x=1),
     TypeError, r"^x: unknown option"),
    ("unknown_rvv_direct", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, vlenn=128),
     TypeError, r"^vlenn: unknown option for the rvv backend \(did you mean 'vlen'\?\)"),
    ("unknown_rocc_direct", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, attn_mask=None),
     TypeError, r"^attn_mask: "),
    ("unknown_triton_direct", lambda: triton.attention(*tqkv(), DENSE, scale=0.3, return_lse=False, dropout_p=0.5),
     TypeError, r"^dropout_p: "),
    # -- a plan serves the call it was built for
    ("plan_other_causal", sa(Q, K, V, sattn.Dense(causal=True), plan=PLAN_DENSE), ValueError,
     r"^plan: built for Dense\(causal=False\).*; this call is Dense\(causal=True\)"),
    ("plan_other_spec_kind", sa(Q, K, V, sattn.SlidingWindow(window=4), plan=PLAN_DENSE, backend="cpu"),
     ValueError, r"^plan: built for Dense.*this call is SlidingWindow"),
    ("plan_other_keep", sa(Q, K, V, sattn.BlockTopK(block=4, keep=0.25), plan=PLAN_TOPK, scale=0.25), ValueError,
     r"^plan: built for BlockTopK\(block=4, keep=0.5.*this call is BlockTopK\(block=4, keep=0.25"),
    ("plan_other_scale", sa(Q, K, V, sattn.BlockTopK(block=4, keep=0.5), plan=PLAN_TOPK), ValueError,
     r"^plan: built for .*scale=0.25; this call is .*scale=0.35"),
    ("plan_other_tile", sa(Q, K, V, DENSE, plan=PLAN_DENSE, tile=4), ValueError, r"^plan: .*tile=8; .*tile=4"),
    ("plan_other_kv_heads", sa(Q, K[:, :1], V[:, :1], DENSE, plan=PLAN_DENSE), ValueError,
     r"^plan: .*\(1, 2, 2, 16, 16, 8\).*\(1, 2, 1, 16, 16, 8\)"),
    ("plan_other_length", sa(Q[:, :, :8], K[:, :, :8], V[:, :, :8], DENSE, plan=PLAN_DENSE), ValueError,
     r"^plan: built for \(B, Hq, Lq, Lk\)"),
    ("plan_on_reference", sa(Q, K, V, sattn.Dense(causal=True), plan=PLAN_DENSE, backend="reference"), ValueError,
     r"^plan: built for"),
    ("plan_rvv_direct", lambda: rvv.attention(Q, K, V, sattn.Dense(causal=True), scale=0.3, return_lse=False,
                                              plan=PLAN_DENSE), ValueError, r"^plan: built for"),
    ("plan_is_a_dict", sa(Q, K, V, DENSE, plan=PLAN_DENSE.to_dict()), TypeError, r"^plan: expected a sattn.BlockPlan"),
    ("plan_is_a_gpu_kind", sa(Q, K, V, DENSE, plan="auto"), TypeError, r"^plan: expected a sattn.BlockPlan"),
    ("blockplan_float_arrays", lambda: sattn.BlockPlan(**{**PLAN_DENSE.to_dict(), "col_idx": np.zeros(1)}),
     TypeError, r"^plan.col_idx: expected a 1-D integer array"),
    ("blockplan_wrapping_values", lambda: sattn.BlockPlan(**{**PLAN_DENSE.to_dict(),
                                                            "col_idx": np.array([2**32], np.int64)}),
     ValueError, r"^plan.col_idx: expected values that fit int32"),
    ("blockplan_str_field", lambda: sattn.BlockPlan(**{**PLAN_DENSE.to_dict(), "B": "1"}), TypeError, r"^plan.B: "),
    ("blockplan_from_dict_missing", lambda: sattn.BlockPlan.from_dict({"block": 8}), ValueError,
     r"^plan: missing field\(s\) B, Hq"),
    ("blockplan_bad_rows", lambda: cpu.attention(Q, K, V, DENSE, scale=0.3, return_lse=False,
                                                 plan=sattn.BlockPlan(**{**PLAN_DENSE.to_dict(),
                                                                         "row_ptr": PLAN_DENSE.row_ptr[:-1]})),
     ValueError, r"^plan.row_ptr: "),
    # -- scale: a number float32 represents as a normal number
    ("scale_1e300", sa(Q, K, V, DENSE, scale=1e300), ValueError, r"^scale: .*\[2\^-126, 2\^127\], got 1e\+300"),
    ("scale_2_128", sa(Q, K, V, DENSE, scale=2.0**128), ValueError, r"^scale: "),
    ("scale_subnormal", sa(Q, K, V, DENSE, scale=1e-40), ValueError, r"^scale: "),
    ("scale_negative_np", sa(Q, K, V, DENSE, scale=np.float32(-1)), ValueError, r"^scale: "),
    ("scale_nan_tensor", sa(Q, K, V, DENSE, scale=torch.tensor(float("nan"))), ValueError, r"^scale: "),
    ("scale_bool", sa(Q, K, V, DENSE, scale=True), TypeError, r"^scale: expected a real number"),
    ("scale_np_bool", sa(Q, K, V, DENSE, scale=np.bool_(True)), TypeError, r"^scale: "),
    ("scale_str", sa(Q, K, V, DENSE, scale="0.5"), TypeError, r"^scale: expected a real number or None, got str"),
    ("scale_list", sa(Q, K, V, DENSE, scale=[0.5]), TypeError, r"^scale: "),
    ("scale_array_1d", sa(Q, K, V, DENSE, scale=np.array([0.5])), TypeError, r"^scale: .*0-d array"),
    ("scale_tensor_1d", sa(Q, K, V, DENSE, scale=torch.tensor([0.5])), TypeError, r"^scale: .*0-d tensor"),
    ("scale_complex", sa(Q, K, V, DENSE, scale=0.5 + 0j), TypeError, r"^scale: "),
    ("scale_on_plan", lambda: sattn.plan(DENSE, Q, K, scale=1e300), ValueError, r"^scale: "),
    ("scale_cpu_direct", lambda: cpu.attention(Q, K, V, DENSE, scale=1e300, return_lse=False), ValueError,
     r"^scale: "),
    # -- spec integers are int32 (seed uint64): a ValueError at construction, not pybind's cast error
    ("spec_window_int32", lambda: sattn.SlidingWindow(window=INT32_TOO_BIG), ValueError,
     r"^window: expected an integer in \[1, 2147483647\], got 2147483648"),
    ("spec_dilation_int32", lambda: sattn.SlidingWindow(dilation=INT32_TOO_BIG), ValueError, r"^dilation: "),
    ("spec_global_tokens_int32", lambda: sattn.SlidingWindow(global_tokens=2**40), ValueError, r"^global_tokens: "),
    ("spec_topk_global_blocks", lambda: sattn.BlockTopK(global_blocks=INT32_TOO_BIG), ValueError, r"^global_blocks: "),
    ("spec_topk_local_blocks", lambda: sattn.BlockTopK(local_blocks=np.int64(2**40)), ValueError, r"^local_blocks: "),
    ("spec_bigbird_window_blocks", lambda: sattn.BigBird(window_blocks=INT32_TOO_BIG), ValueError,
     r"^window_blocks: "),
    ("spec_bigbird_random_blocks", lambda: sattn.BigBird(random_blocks=INT32_TOO_BIG), ValueError,
     r"^random_blocks: "),
    ("spec_bigbird_global_blocks", lambda: sattn.BigBird(global_blocks=INT32_TOO_BIG), ValueError,
     r"^global_blocks: "),
    ("spec_seed_uint64", lambda: sattn.BigBird(seed=2**64), ValueError, r"^seed: expected an integer in \[0, "),
    ("spec_topk_k_int32", lambda: sattn.TopKPerQuery(k=INT32_TOO_BIG), ValueError, r"^k: "),
    ("spec_score_not_str", lambda: sattn.BlockTopK(score=1), TypeError, r"^score: "),
    ("spec_score_unhashable", lambda: sattn.BlockTopK(score=["mean"]), TypeError, r"^score: "),
    ("spec_keep_str", lambda: sattn.BlockTopK(keep="0.5"), TypeError, r"^keep: "),
    ("spec_block_float", lambda: sattn.BigBird(block=64.0), TypeError, r"^block: expected an integer"),
    ("spec_causal_np_bool", lambda: sattn.Dense(causal=np.bool_(True)), TypeError, r"^causal: "),
    ("spec_is_a_class", sa(Q, K, V, sattn.Dense), TypeError, r"^spec: expected a spec instance such as Dense\(\)"),
    ("spec_is_none", sa(Q, K, V, None), TypeError, r"^spec: expected a sattn spec"),
    ("spec_is_a_string", sa(Q, K, V, "dense"), TypeError, r"^spec: expected a sattn spec"),
    ("spec_subclass", sa(Q, K, V, type("MySpec", (sattn.Spec,), {})()), TypeError, r"^spec: .*got MySpec"),
    ("spec_on_plan", lambda: sattn.plan(sattn.Dense, Q, K), TypeError, r"^spec: "),
    ("spec_rvv_direct", lambda: rvv.attention(Q, K, V, "dense", scale=0.3, return_lse=False), TypeError, r"^spec: "),
    # -- the C++ layer's dict readers name the key (what a caller of sattn._cc passes wrong)
    ("cc_spec_field_int32", lambda: _cc.build_plan({**DENSE.to_fields(), "window": INT32_TOO_BIG},
                                                   (1, 1, 1, 8, 8, 4), None, None), ValueError, r"^spec.window: "),
    ("cc_spec_field_type", lambda: _cc.build_plan({**DENSE.to_fields(), "keep": "x"}, (1, 1, 1, 8, 8, 4), None, None),
     TypeError, r"^spec.keep: expected a number"),
    ("cc_spec_kind_missing", lambda: _cc.build_plan({}, (1, 1, 1, 8, 8, 4), None, None), KeyError, r"spec.kind"),
    ("cc_spec_seed_negative", lambda: _cc.build_plan({**sattn.BigBird(block=4).to_fields(), "seed": -1},
                                                     (1, 1, 1, 8, 8, 4), None, None), ValueError, r"spec.seed: "),
    ("cc_shape_int32", lambda: _cc.build_plan(DENSE.to_fields(), (1, 1, 1, 8, INT32_TOO_BIG, 4), None, None),
     ValueError, r"^shape.Lk: "),
    ("cc_plan_key_missing", lambda: _cc.validate_plan({k: v for k, v in PLAN_DENSE.to_dict().items() if k != "Lq"}),
     KeyError, r"plan.Lq: missing"),
    ("cc_plan_float_array", lambda: _cc.validate_plan({**PLAN_DENSE.to_dict(), "row_ptr": np.zeros(3)}),
     TypeError, r"^plan.row_ptr: expected an integer array"),
    ("cc_plan_wrapping_entry", lambda: _cc.validate_plan({**PLAN_DENSE.to_dict(),
                                                          "col_idx": PLAN_DENSE.col_idx + np.int64(2**32)}),
     ValueError, r"^plan.col_idx: entry 0 = 4294967296 does not fit int32"),
    ("cc_plan_field_type", lambda: _cc.validate_plan({**PLAN_DENSE.to_dict(), "block": 8.0}), TypeError,
     r"^plan.block: expected an integer"),
    # -- sizes beyond int32 element indexing: refused at once, before any allocation or planning
    ("size_L_2_31_torch", lambda: sattn.sparse_attention(
        *(torch.zeros(()).expand(1, 1, L_HUGE, 64),) * 3, DENSE), ValueError,
     r"^q: expected at most 2147483647 elements \(int32 indexing\)"),
    ("size_L_2_31_numpy_cpu", sa(*(huge((1, 1, L_HUGE, 64)),) * 3, sattn.SlidingWindow(window=8), backend="cpu"),
     ValueError, r"^q: expected at most"),
    ("size_kv_only", sa(huge((1, 1, 8, 64)), *(huge((1, 1, 2**26, 64)),) * 2, DENSE), ValueError, r"^k: "),
    ("size_plan", lambda: sattn.plan(DENSE, *(huge((4, 8, 2**20, 64)),) * 2), ValueError, r"^q: "),
    ("size_plan_entries_dense", lambda: sattn.plan(DENSE, *(huge((1, 1, 2**22, 1)),) * 2, tile=64), ValueError,
     r"^Lk: expected plan rows x key blocks <= 2147483647 \(block 64"),
    ("size_plan_entries_topk_per_head", lambda: sattn.plan(sattn.BlockTopK(block=16, keep=0.5),
                                                           *(huge((2, 64, 2**16, 1)),) * 2), ValueError, r"^Lk: "),
    ("size_plan_entries_cpu", sa(*(huge((1, 1, 2**22, 1)),) * 3, sattn.SlidingWindow(window=4), backend="cpu"),
     ValueError, r"^Lk: "),
    ("size_reference_scores", sa(*(huge((1, 1, 2**16, 1)),) * 3, DENSE, backend="reference"), ValueError,
     r"^q, k: the reference backend holds all 4294967296 scores"),
    # -- inputs and options of every kind
    ("q_masked_array", sa(np.ma.masked_array(Q), K, V, DENSE), TypeError, r"^q: expected a plain numpy.ndarray"),
    ("k_sparse_tensor", sa(torch.from_numpy(Q), torch.from_numpy(K).to_sparse(), torch.from_numpy(V), DENSE),
     TypeError, r"^k: expected a dense \(strided\) tensor"),
    ("qkv_meta_device", sa(*(torch.empty(1, 1, 8, 4, device="meta"),) * 3, DENSE, backend="reference"), ValueError,
     r"^q, k, v: expected tensors with data, got device 'meta'"),
    ("q_complex", sa(Q.astype(np.complex64), K, V, DENSE), TypeError, r"^q: expected dtype"),
    ("v_int_tensor", sa(torch.from_numpy(Q), torch.from_numpy(K), torch.zeros(1, 2, 16, 8, dtype=torch.int64),
                        DENSE), TypeError, r"^v: expected dtype"),
    ("q_numpy_int", sa(np.zeros((1, 2, 16, 8), np.int16), K, V, DENSE), TypeError, r"^q: expected dtype"),
    ("k_python_list", sa(Q, K.tolist(), V, DENSE), TypeError,
     r"^k: expected a torch.Tensor or numpy.ndarray, got list"),
    ("v_scalar", sa(Q, K, 1.0, DENSE), TypeError, r"^v: "),
    ("mixed_frameworks", sa(torch.from_numpy(Q), K, V, DENSE), TypeError, r"^q, k, v: expected all torch"),
    ("zero_length", sa(Q[:, :, :0], K, V, DENSE), ValueError, r"every dimension must be >= 1"),
    ("zero_heads", sa(Q, K[:, :0], V[:, :0], DENSE), ValueError, r"every dimension must be >= 1"),
    ("backend_none", sa(Q, K, V, DENSE, backend=None), TypeError, r"^backend: expected a string"),
    ("backend_unknown", sa(Q, K, V, DENSE, backend="CPU"), ValueError, r"^backend: expected one of"),
    ("return_lse_str", sa(Q, K, V, DENSE, return_lse="no"), TypeError, r"^return_lse: expected a bool"),
    ("return_lse_int_direct", lambda: cpu.attention(Q, K, V, DENSE, scale=0.3, return_lse=1), TypeError,
     r"^return_lse: "),
    ("tile_zero", sa(Q, K, V, DENSE, tile=0), ValueError, r"^tile: expected an integer in \[1, 4096\]"),
    ("tile_float", sa(Q, K, V, DENSE, tile=8.0), TypeError, r"^tile: "),
    ("tile_bool", lambda: sattn.plan(DENSE, Q, K, tile=True), TypeError, r"^tile: "),
    ("tile_huge_rocc", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, tile=2**40),
     ValueError, r"^tile: "),
    ("threads_negative", sa(Q, K, V, DENSE, threads=-1), ValueError, r"^threads: expected an integer in \[0, 1024\]"),
    ("threads_int64_overflow", sa(Q, K, V, DENSE, threads=2**40), ValueError, r"^threads: "),
    ("threads_str", lambda: sattn.plan(DENSE, Q, K, threads="2"), TypeError, r"^threads: "),
    ("rvv_vlen_str", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, vlen="256"), ValueError,
     r"^vlen: "),
    ("rvv_variant_list", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, variant=["rvv"]),
     ValueError, r"^variant: "),
    ("rvv_dtype_empty", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, dtype=""),
     ValueError, r"^dtype: "),
    ("rvv_timeout_negative", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, timeout_s=-1),
     ValueError, r"^timeout_s: "),
    ("rvv_region_list", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, region=[]), ValueError,
     r"^region: "),
    ("rvv_plan_on_target_str", lambda: rvv.attention(Q, K, V, DENSE, scale=0.3, return_lse=False,
                                                     plan_on_target="yes"), TypeError, r"^plan_on_target: "),
    ("rocc_path", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, path="fast"), ValueError,
     r"^path: expected 'fused' or 'unfused'"),
    ("rocc_latency_str", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, latency="40"),
     TypeError, r"^latency: "),
    ("rocc_latency_int64", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, latency=2**40),
     ValueError, r"^latency: "),
    ("rocc_bytes_per_cycle_str", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False,
                                                        bytes_per_cycle="16"), TypeError, r"^bytes_per_cycle: "),
    ("rocc_check_golden_int", lambda: rocc.attention(Q, K, V, DENSE, scale=0.3, return_lse=False, check_golden=1),
     TypeError, r"^check_golden: "),
    ("triton_force_plan_int", lambda: triton.attention(*tqkv(), DENSE, scale=0.3, return_lse=False, force_plan=1),
     TypeError, r"^force_plan: "),
    ("triton_numpy", lambda: triton.attention(Q, K, V, DENSE, scale=0.3, return_lse=False), TypeError,
     r"^q: the triton backend takes torch tensors"),
    ("triton_plan_other_spec", lambda: triton.attention(*tqkv(), sattn.Dense(causal=True), scale=0.3,
                                                        return_lse=False, plan=PLAN_DENSE), ValueError,
     r"^plan: built for Dense\(causal=False\)"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_call_gives_a_typed_error_naming_the_argument(call, exc, match):
    t0 = time.perf_counter()
    with pytest.raises(exc, match=match):
        call()
    assert time.perf_counter() - t0 < 2.0   # refused before any real work


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES)


# ---- what must keep working beside the refusals ----

def test_gradients_off_or_detached_inputs_run():
    q, k, v = tqkv((True, True, True))
    with torch.no_grad():
        out = sattn.sparse_attention(q, k, v, DENSE)
    assert not out.requires_grad
    ref = sattn.sparse_attention(q.detach(), k.detach(), v.detach(), DENSE, backend="reference")
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("scale", [np.float32(0.25), np.float64(0.25), np.array(0.25), np.array(0.25, np.float32),
                                   torch.tensor(0.25), torch.tensor(0.25, dtype=torch.float64),
                                   fractions.Fraction(1, 4), 2.0**-126 * 2**124, 0.25])
def test_real_scales_of_every_kind_are_accepted(scale):
    out = sattn.sparse_attention(Q, K, V, DENSE, scale=scale)
    np.testing.assert_array_equal(out, sattn.sparse_attention(Q, K, V, DENSE, scale=0.25))


def test_float32_scale_range_edges_are_accepted():
    for scale in (2.0**-126, 2.0**127):
        sattn.sparse_attention(Q, K, V, DENSE, scale=scale, backend="reference")


def test_numpy_spec_integers_are_accepted_as_ints():
    s = sattn.BigBird(block=np.int64(4), seed=np.uint64(2**63), random_blocks=np.int32(1))
    assert s == sattn.BigBird(block=4, seed=2**63, random_blocks=1) and type(s.block) is int
    sattn.plan(s, Q, K)   # the C++ layer takes the largest seeds
    assert sattn.SlidingWindow(window=2**31 - 1).window == 2**31 - 1


def test_plan_reused_with_other_values_of_the_same_shape_keeps_its_selection():
    spec = sattn.BlockTopK(block=4, keep=0.5)
    q2, k2, v2 = qkv(seed=7)
    out = sattn.sparse_attention(q2, k2, v2, spec, plan=PLAN_TOPK, scale=0.25)
    ref = sattn.sparse_attention(q2, k2, v2, spec, plan=PLAN_TOPK, scale=0.25, backend="reference")
    np.testing.assert_allclose(out, ref, atol=1e-4)
    mask = PLAN_TOPK.to_dense_mask()
    np.testing.assert_allclose(ref, sattn.reference.attention(q2, k2, v2, spec, scale=0.25, mask=mask), atol=1e-12)


def test_plan_tile_is_taken_from_the_plan_when_the_call_gives_none():
    out = sattn.sparse_attention(Q, K, V, DENSE, plan=PLAN_DENSE)
    np.testing.assert_allclose(out, sattn.reference.attention(Q, K, V, DENSE), atol=1e-4)


def test_hand_made_plan_has_no_source_and_is_checked_by_layout_only():
    edited = sattn.BlockPlan.from_dict(PLAN_DENSE.to_dict())
    assert edited.source is None and PLAN_DENSE.source is not None
    sattn.sparse_attention(Q, K, V, sattn.Dense(causal=True), plan=edited)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_layouts_careful_users_pass_are_accepted(backend):
    """Non-contiguous, reversed (negative strides), big-endian and float64 inputs: same values, same answer."""
    ref = sattn.reference.attention(Q, K, V, DENSE)
    flipped = sattn.sparse_attention(Q[:, :, ::-1].copy()[:, :, ::-1], K, V, DENSE, backend=backend)
    swapped = sattn.sparse_attention(Q.astype(">f4"), K.astype(">f4"), V.astype(">f4"), DENSE, backend=backend)
    strided = np.asfortranarray(Q)
    f64 = sattn.sparse_attention(Q.astype(np.float64), K.astype(np.float64), V.astype(np.float64), DENSE,
                                 backend=backend)
    assert f64.dtype == np.float64
    t = torch.from_numpy(np.ascontiguousarray(Q.transpose(0, 2, 1, 3))).transpose(1, 2)   # non-contiguous
    for out in (flipped, swapped, sattn.sparse_attention(strided, K, V, DENSE, backend=backend), f64,
                sattn.sparse_attention(t, torch.from_numpy(K), torch.from_numpy(V), DENSE, backend=backend).numpy()):
        np.testing.assert_allclose(out, ref, atol=1e-4)


def test_python_and_cc_limits_agree():
    assert _cc.limits() == {"max_tensor_elements": _limits.MAX_ELEMENTS,
                            "max_plan_entries": _limits.MAX_PLAN_ENTRIES, "max_threads": _limits.MAX_THREADS}
