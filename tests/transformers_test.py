"""sattn.integrations.transformers: attn_implementation="sattn" in tiny random Llama, Mistral, Qwen2
and Qwen3 models (hidden 64, 2 layers, GQA 4:2, no weight downloads) against transformers' own
SDPA and eager attention: logits, greedy generate() through the KV cache, sliding-window masking,
training gradients, torch.compile(fullgraph=True) with bounded recompiles, and the typed errors
for what sattn cannot honour. Also runs docs/transformers.md's example and the benchmark (sattn.integrations.transformers_bench)."""
import copy
import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

import sattn
from sattn.errors import AttentionNotSupported
from sattn.integrations import transformers as sattn_hf

sattn_hf.register()
torch.set_num_threads(1)  # tiny matrices: one thread; more only wait on each other on a busy machine
SRC = os.path.join(os.environ.get("TEST_SRCDIR", ""), "sattn") if os.environ.get("TEST_SRCDIR") else \
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = {
    "llama": transformers.LlamaConfig,
    "mistral": transformers.MistralConfig,
    "qwen2": transformers.Qwen2Config,
    "qwen3": transformers.Qwen3Config,
}
VOCAB = 128


def tiny_config(family, **overrides):
    # initializer_range 0.2 (not 0.02) so attention is far from uniform and a wrong mask shows.
    kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=512, initializer_range=0.2,
              attention_dropout=0.0)
    if family != "llama":
        kw["sliding_window"] = None
    kw.update(overrides)
    return FAMILIES[family](**kw)


def models(config, *impls, seed=0):
    """One model per attention implementation, same weights (each gets its own copy of the config:
    from_config writes the implementation into the config it is given)."""
    torch.manual_seed(seed)
    out = [AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impls[0]).eval()]
    for impl in impls[1:]:
        m = AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=impl).eval()
        m.load_state_dict(out[0].state_dict())
        out.append(m)
    return out


def tokens(batch, length, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def greedy(model, ids, n):
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                          pad_token_id=0)


def logits(model, ids, **kw):
    with torch.no_grad():
        return model(ids, **kw).logits


# ---- Dense: the model's own attention --------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dense_logits_match_sdpa_and_eager(family):
    ours, sdpa, eager = models(tiny_config(family), "sattn", "sdpa", "eager")
    ids = tokens(2, 45)
    want = logits(sdpa, ids)
    assert want.abs().max() > 1.0  # attention matters at this init
    torch.testing.assert_close(logits(ours, ids), want, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(logits(ours, ids), logits(eager, ids), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_greedy_generate_same_tokens_as_sdpa(family):
    ours, sdpa = models(tiny_config(family), "sattn", "sdpa")
    ids = tokens(1, 19, seed=3)
    want = greedy(sdpa, ids, 12)
    got = greedy(ours, ids, 12)             # prefill, then 11 decode steps (Lq = 1) on the DynamicCache
    assert torch.equal(got, want)


def test_decode_step_logits_match_sdpa():
    ours, sdpa = models(tiny_config("llama"), "sattn", "sdpa")
    ids = tokens(2, 30, seed=4)
    out = []
    for m in (ours, sdpa):
        with torch.no_grad():
            prefill = m(ids[:, :25], use_cache=True)
            step = m(ids[:, 25:], past_key_values=prefill.past_key_values, use_cache=True)  # Lq 5, Lk 30
        out.append(step.logits)
    torch.testing.assert_close(out[0], out[1], atol=2e-5, rtol=1e-5)


# ---- sliding windows: transformers' own masking ----------------------------------------------------

def test_mistral_sliding_window_matches_transformers_mask():
    config = tiny_config("mistral", sliding_window=8)
    ours, sdpa, eager = models(config, "sattn", "sdpa", "eager")
    ids = tokens(2, 40, seed=5)
    want = logits(eager, ids)
    torch.testing.assert_close(logits(ours, ids), want, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(logits(ours, ids), logits(sdpa, ids), atol=2e-5, rtol=1e-5)
    # the window matters: full attention gives other logits
    dense, = models(tiny_config("mistral"), "sattn")
    assert (logits(dense, ids) - want).abs().max() > 1e-2
    # generate() past the window: the cache keeps the last window - 1 keys of each layer
    assert torch.equal(greedy(ours, ids[:1, :20], 10), greedy(sdpa, ids[:1, :20], 10))


def test_qwen2_mixed_sliding_and_full_layers():
    config = tiny_config("qwen2", use_sliding_window=True, sliding_window=6, max_window_layers=1)
    assert config.layer_types == ["full_attention", "sliding_attention"]
    ours, eager = models(config, "sattn", "eager")
    ids = tokens(1, 33, seed=6)
    torch.testing.assert_close(logits(ours, ids), logits(eager, ids), atol=2e-5, rtol=1e-5)


def test_sliding_window_off_by_one_against_transformers_mask_function():
    from transformers.masking_utils import sliding_window_causal_mask_function
    window, L = 5, 12
    keep = sliding_window_causal_mask_function(window)
    zero, pos = torch.tensor(0), torch.arange(L)
    want = keep(zero, zero, pos[:, None], pos[None, :])
    q = torch.zeros(1, 1, L, 8)
    got = sattn.dense_mask(sattn.SlidingWindow(window=window, causal=True), q, q)[0, 0]
    assert torch.equal(got, want)


# ---- per-layer specs -------------------------------------------------------------------------------

def masked_sdpa_attention(module, query, key, value, attention_mask, scaling=None, sliding_window=None, **kwargs):
    """Judge: SDPA over sattn.dense_mask of the spec the layer resolves to (same config map)."""
    spec = sattn_hf.layer_spec(module.config, module.layer_idx, sliding_window, key.shape[2])
    mask = sattn.dense_mask(spec, query, key, scale=scaling)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                                           enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


transformers.AttentionInterface.register("sattn_test_judge", masked_sdpa_attention)
transformers.masking_utils.AttentionMaskInterface.register("sattn_test_judge", sattn_hf.mask_check)


def test_per_layer_spec_map_prefill_and_generate():
    config = tiny_config("llama", num_hidden_layers=3)
    specs = {"default": sattn.SlidingWindow(window=7), 0: sattn.Dense(), 2: sattn.BlockTopK(block=8, keep=0.5)}
    ours, judge = models(config, "sattn", "sattn_test_judge")
    for m in (ours, judge):
        sattn_hf.configure(m, specs=specs)
    assert ours.config.sattn_specs["default"] == "SlidingWindow(window=7, causal=True, dilation=1, global_tokens=0)"
    json.loads(ours.config.to_json_string())        # the config stays JSON
    ids = tokens(1, 41, seed=7)
    torch.testing.assert_close(logits(ours, ids), logits(judge, ids), atol=2e-5, rtol=1e-5)
    assert torch.equal(greedy(ours, ids, 8), greedy(judge, ids, 8))
    # a block longer than the keys (a 5-token prompt, BlockTopK block 8) is one kept block: Dense
    assert torch.equal(greedy(ours, ids[:, :5], 4), greedy(judge, ids[:, :5], 4))


def test_configure_rereads_spec_text_of_a_saved_config():
    config = tiny_config("llama")
    sattn_hf.configure(config, specs={"default": sattn.SlidingWindow(window=3)})
    loaded = transformers.LlamaConfig.from_dict(json.loads(config.to_json_string()))
    sattn_hf._SPECS_BY_TEXT.clear()
    sattn_hf.configure(loaded)
    assert sattn_hf.layer_spec(loaded, 1, None, 10) == sattn.SlidingWindow(window=3, causal=True)


# ---- training --------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_training_step_gradients_match_eager(family):
    ours, eager = models(tiny_config(family), "sattn", "eager")
    ids = tokens(2, 24, seed=8)
    grads = []
    for m in (ours, eager):
        m.train()
        m(ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[1].items():
        torch.testing.assert_close(grads[0][name], g, atol=5e-5, rtol=1e-4, msg=name)
    q_proj = grads[0]["model.layers.0.self_attn.q_proj.weight"]
    assert q_proj.abs().max() > 0       # the gradient flows through sattn's op into q


# ---- torch.compile -----------------------------------------------------------------------------------

def test_compile_fullgraph_forward_backward_bounded_recompiles():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters
    ours, eager = models(tiny_config("llama", num_hidden_layers=1), "sattn", "eager")
    ours.train()
    eager.train()
    torch._dynamo.reset()
    counters.clear()
    count = CompileCounterWithBackend("aot_eager")      # AOTAutograd traces the backward too
    compiled = torch.compile(ours, fullgraph=True, backend=count)  # a graph break is an error
    for L in (16, 23, 40, 57):
        ids = tokens(1, L, seed=L)
        torch._dynamo.mark_dynamic(ids, 1)              # L symbolic from the first call
        ours.zero_grad()
        compiled(ids, labels=ids, use_cache=False).loss.backward()
        got = ours.model.layers[0].self_attn.k_proj.weight.grad.clone()
        eager.zero_grad()
        eager(ids, labels=ids, use_cache=False).loss.backward()
        torch.testing.assert_close(got, eager.model.layers[0].self_attn.k_proj.weight.grad, atol=5e-5, rtol=1e-4)
    # one graph, symbolic in L, serves every length: no recompile
    assert count.frame_count == 1, (count.frame_count, dict(counters["stats"]))
    assert counters["stats"]["unique_graphs"] == 1


# ---- what sattn cannot honour ------------------------------------------------------------------------

def test_padding_mask_raises():
    ours, = models(tiny_config("llama"), "sattn")
    ids = tokens(2, 10)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with pytest.raises(AttentionNotSupported, match=r"^attention_mask: padding"):
        logits(ours, ids, attention_mask=mask)
    logits(ours, ids, attention_mask=torch.ones_like(ids))   # an all-ones mask is fine


def test_custom_4d_mask_raises():
    ours, = models(tiny_config("llama"), "sattn")
    ids = tokens(1, 6)
    mask = torch.tril(torch.ones(6, 6, dtype=torch.bool))[None, None]
    with pytest.raises(AttentionNotSupported, match=r"^attention_mask: sattn computes the visible set"):
        logits(ours, ids, attention_mask=mask)


def test_dropout_in_training_raises():
    ours, = models(tiny_config("llama", attention_dropout=0.1), "sattn")
    ids = tokens(1, 6)
    logits(ours, ids)                                # eval: dropout is 0
    ours.train()
    with pytest.raises(AttentionNotSupported, match=r"^dropout: sattn has no attention dropout, .* 0\.1"):
        ours(ids)


def test_output_attentions_raises():
    ours, = models(tiny_config("llama"), "sattn")
    with pytest.raises(AttentionNotSupported, match=r"^output_attentions"):
        logits(ours, tokens(1, 6), output_attentions=True)


def test_static_cache_raises():
    ours, = models(tiny_config("llama"), "sattn")
    with pytest.raises(AttentionNotSupported, match=r"^cache: the queries must be the last"):
        ours.generate(tokens(1, 6), attention_mask=torch.ones(1, 6, dtype=torch.long), max_new_tokens=2,
                      do_sample=False, cache_implementation="static", pad_token_id=0)


def test_unsupported_model_type_raises():
    config = transformers.GemmaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=VOCAB)
    with pytest.raises(AttentionNotSupported, match=r"^model_type: .* got 'gemma'"):
        sattn_hf.configure(config)
    gemma = AutoModelForCausalLM.from_config(config, attn_implementation="sattn")
    with pytest.raises(AttentionNotSupported, match=r"^model_type: .* got 'gemma'"):
        logits(gemma, tokens(1, 4))


def test_spec_wider_than_the_models_sliding_window_raises():
    ours, = models(tiny_config("mistral", sliding_window=8), "sattn")
    sattn_hf.configure(ours, specs={0: sattn.Dense()})
    with pytest.raises(AttentionNotSupported, match=r"^specs\[0\]: layer 0 of this model attends within a sliding "
                                                    r"window of 8 keys"):
        logits(ours, tokens(1, 12))
    sattn_hf.configure(ours, specs={0: sattn.SlidingWindow(window=4)})   # inside the window: fine
    logits(ours, tokens(1, 12))


def test_bad_spec_maps_raise():
    config = tiny_config("llama")
    with pytest.raises(ValueError, match=r"^specs: layer index 2 out of range: the model has 2 layers"):
        sattn_hf.configure(config, specs={2: sattn.Dense()})
    with pytest.raises(TypeError, match=r"^specs: keys are layer indices"):
        sattn_hf.configure(config, specs={"all": sattn.Dense()})
    with pytest.raises(TypeError, match=r"^specs\['default'\]: expected a sattn spec"):
        sattn_hf.configure(config, specs={"default": "dense"})


# ---- the doc page's example and the benchmark ------------------------------------------------------

def test_doc_page_python_blocks_run():
    with open(os.path.join(SRC, "docs/transformers.md")) as f:
        code = re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)
    assert code
    namespace = {"__name__": "__doc_page__"}
    for i, block in enumerate(code):
        exec(compile(block, f"docs/transformers.md#block{i}", "exec"), namespace)


def test_bench_script_prints_json_rows(capsys):
    from sattn.integrations import transformers_bench as bench
    bench.main(["--model", "llama", "--layers", "1", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
                "--vocab", "128", "--seq-len", "64", "--decode-tokens", "2", "--repeats", "1",
                "--spec", "dense", "--spec", "sliding_window:16", "--impl", "sdpa"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["impl"], r["spec"]) for r in rows] == [("sattn", "Dense(causal=True)"),
                                                      ("sattn", "SlidingWindow(window=16, causal=True, dilation=1, global_tokens=0)"),
                                                      ("sdpa", None)]
    for r in rows:
        assert r["prefill_tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["seq_len"] == 64
