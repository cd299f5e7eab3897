"""sattn as an attention implementation of Hugging Face transformers models (docs/transformers.md).

    import sattn
    from sattn.integrations import transformers as sattn_hf
    sattn_hf.register()                                    # once per process
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sattn")
    sattn_hf.configure(model, specs={"default": sattn.SlidingWindow(window=512), 0: sattn.Dense()})

Every layer runs sattn.sparse_attention on the model's own q, k, v (k and v keep their Hkv heads:
GQA is native), in prefill, in generate() with a DynamicCache (the queries are the last Lq of the
keys, docs/contract.md) and in training (the backward of sattn's op). A layer without a spec gets
the model's own pattern: Dense(causal=True), or SlidingWindow(window=W, causal=True) where the
model attends within a sliding window of W keys. What sattn cannot honour (padding, custom masks,
attention dropout, returned attention weights, static caches, other model families) raises
sattn.errors.AttentionNotSupported naming it.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from sattn import specs as S
from sattn import _op
from sattn.api import sparse_attention
from sattn.errors import AttentionNotSupported

NAME = "sattn"
# Decoder families whose attention is the causal (or causal sliding-window) softmax attention of
# q, k, v with the model's scaling and nothing else (no softcap, sinks, bias or chunking).
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
SPECS_ATTR = "sattn_specs"
BACKEND_ATTR = "sattn_backend"

# Spec text (what config.sattn_specs holds, so the config stays JSON) -> the spec object. Filled by
# configure(); the attention function only looks texts up, which torch.compile traces.
_SPECS_BY_TEXT: dict = {}


def register() -> None:
    """Registers the "sattn" attention function and its mask function with transformers, so that
    `attn_implementation="sattn"` works in from_pretrained / from_config. Idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, mask_check)


def configure(model_or_config, specs=None, *, backend: str = "auto"):
    """Sets the per-layer spec map: `specs` maps a layer index (int) or "default" to a sattn spec;
    layers not named take "default", and with no "default" the model's own pattern (Dense causal,
    or the model's sliding window). The model is a causal decoder, so every spec runs causal:
    a contract spec with causal=True, a spec you write intersected with Dense(causal=True).

    `backend` is sparse_attention's backend ('auto': cpu on host tensors, triton on CUDA). The map
    is stored in the config as spec text (config.sattn_specs, JSON like every config field);
    configure(model) with specs=None re-reads that text, e.g. after from_pretrained in a new
    process. Returns model_or_config."""
    config = getattr(model_or_config, "config", model_or_config)
    _check_model_type(config)
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a string such as 'auto' or 'cpu', got {type(backend).__name__}")
    if specs is None:
        texts = getattr(config, SPECS_ATTR, None) or {}
        if not isinstance(texts, dict):
            raise TypeError(f"config.{SPECS_ATTR}: expected a dict of spec texts, got {type(texts).__name__}")
        specs = {key: _spec_of_text(key, text) for key, text in texts.items()}
    if not isinstance(specs, dict):
        raise TypeError(f"specs: expected a dict {{layer index or 'default': spec}}, got {type(specs).__name__}")
    n_layers = config.num_hidden_layers
    stored = {}
    for key, spec in specs.items():
        name = _layer_key(key, n_layers)
        S.check_spec(spec, f"specs[{key!r}]")
        spec = _causal(spec)
        text = _op._spec_text(spec)
        _SPECS_BY_TEXT[text] = spec
        stored[name] = text
    setattr(config, SPECS_ATTR, stored)
    setattr(config, BACKEND_ATTR, backend)
    return model_or_config


def _layer_key(key, n_layers: int) -> str:
    if key == "default":
        return key
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int):
        raise TypeError(f"specs: keys are layer indices (int) or 'default', got {key!r}")
    if not 0 <= key < n_layers:
        raise ValueError(f"specs: layer index {key} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
    return str(key)


def _spec_of_text(key, text):
    if text in _SPECS_BY_TEXT:
        return _SPECS_BY_TEXT[text]
    if not isinstance(text, str) or text.startswith("<"):
        raise AttentionNotSupported(
            f"config.{SPECS_ATTR}[{key!r}]: {text!r} is not a contract spec's text (a spec you write, such as "
            f"MaskFn, lives only in the process that configured it); call configure(model, specs=...) again")
    return _op._contract_spec_of(text)


def _causal(spec):
    if isinstance(spec, S.USER_SPECS):
        return spec & S.Dense(causal=True)
    return spec if spec.causal else dataclasses.replace(spec, causal=True)


def _check_model_type(config) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise AttentionNotSupported(
            f"model_type: sattn's transformers attention supports {', '.join(SUPPORTED_MODEL_TYPES)}, got "
            f"{model_type!r} (its attention may add what sattn does not compute: softcapping, sinks, biases, "
            f"chunked or bidirectional masks)")


# ---- the attention function transformers calls --------------------------------------------------

def attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      sliding_window=None, softcap=None, **kwargs):
    """transformers' attention interface: query (B, Hq, Lq, D), key and value (B, Hkv, Lk, D) ->
    (output (B, Lq, Hq, D), None). The layer's spec comes from config.sattn_specs."""
    config = module.config
    _check_model_type(config)
    _check_call(module, attention_mask, dropout, softcap, kwargs)
    spec = layer_spec(config, module.layer_idx, sliding_window, key.shape[2])
    backend = getattr(config, BACKEND_ATTR, "auto")
    # Every supported family scales by head_dim ** -0.5, sattn's default: passing None keeps the
    # call free of the module's float, which torch.compile(dynamic=True) makes symbolic.
    scale = None if scaling is None or abs(scaling * math.sqrt(query.shape[-1]) - 1.0) < 1e-12 else scaling
    out = sparse_attention(query, key, value, spec, backend=backend, scale=scale)
    return out.transpose(1, 2).contiguous(), None


def _check_call(module, attention_mask, dropout, softcap, kwargs) -> None:
    if attention_mask is not None:
        raise AttentionNotSupported(
            "attention_mask: sattn computes the visible set from the layer's spec and takes no mask tensor; a 4D "
            "custom mask (or a BlockMask) cannot be honoured: pass no mask, or an all-ones padding mask")
    if dropout:
        raise AttentionNotSupported(
            f"dropout: sattn has no attention dropout, the layer asked for {dropout} (config.attention_dropout "
            f"in training); set config.attention_dropout = 0.0")
    if softcap is not None:
        raise AttentionNotSupported(f"softcap: sattn has no logit softcapping (the layer asked for {softcap})")
    if kwargs.get("output_attentions"):
        raise AttentionNotSupported(
            "output_attentions: sattn never forms the attention matrix, so it cannot return attention weights; "
            "use attn_implementation='eager' to inspect them")
    for name in ("head_mask", "s_aux", "position_bias", "cu_seq_lens_q", "cu_seq_lens_k"):
        if kwargs.get(name) is not None:
            raise AttentionNotSupported(f"{name}: not supported by sattn's attention (it would be ignored)")
    is_causal = kwargs.get("is_causal")
    if is_causal is False or not getattr(module, "is_causal", True):
        raise AttentionNotSupported("is_causal=False: sattn's transformers attention runs causal decoders only")


def layer_spec(config, layer_idx: int, sliding_window, key_len: int):
    """The spec layer `layer_idx` runs: config.sattn_specs[layer_idx], else its "default", else the
    model's own pattern. A BlockTopK or BigBird whose block is longer than the keys (early decode
    steps, short prompts) has one key block, always kept: Dense(causal=True)."""
    specs = getattr(config, SPECS_ATTR, None) or {}
    text = specs.get(str(layer_idx), specs.get("default"))
    if text is None:
        if sliding_window is None:
            return S.Dense(causal=True)
        return S.SlidingWindow(window=sliding_window, causal=True)
    spec = _SPECS_BY_TEXT.get(text)
    if spec is None:
        raise AttentionNotSupported(
            f"config.{SPECS_ATTR}: {text!r} was not configured in this process; call "
            f"sattn.integrations.transformers.configure(model) (it re-reads the config) before running the model")
    if sliding_window is not None:
        _check_within_window(spec, layer_idx, sliding_window)
    if isinstance(spec, (S.BlockTopK, S.BigBird)) and spec.block > key_len:
        return S.Dense(causal=True)
    return spec


def _check_within_window(spec, layer_idx: int, sliding_window: int) -> None:
    # The model's cache keeps only the last sliding_window - 1 keys of such a layer, so a spec that
    # looks farther would see all keys in prefill and a truncated past in decode.
    if (isinstance(spec, S.SlidingWindow) and spec.dilation == 1 and spec.global_tokens == 0
            and spec.window <= sliding_window):
        return
    raise AttentionNotSupported(
        f"specs[{layer_idx}]: layer {layer_idx} of this model attends within a sliding window of {sliding_window} "
        f"keys and its cache keeps only those, so it can run SlidingWindow(window <= {sliding_window}, causal=True) "
        f"only, not {spec}; set config.sliding_window = None (or use_sliding_window = False) to give the layer "
        f"full attention and a spec of its own")


# ---- the mask function transformers calls when it builds the model's masks -----------------------

def mask_check(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None, attention_mask=None,
               local_size=None, allow_is_causal_skip=True, **kwargs):
    """transformers' mask interface for "sattn": it builds no mask (the spec is the mask) and
    raises where the model's mask would hold more than causal or sliding-window causal attention:
    padding, packed sequences, or keys past the queries (a static cache)."""
    if isinstance(q_offset, torch.Tensor) or q_offset + q_length != kv_offset + kv_length:
        raise AttentionNotSupported(
            f"cache: the queries must be the last {q_length} of the {kv_length} keys (a DynamicCache); this cache "
            f"holds keys past them (a StaticCache or pre-allocated cache), use the default DynamicCache")
    if not allow_is_causal_skip:
        # transformers materialises the mask when it holds more than causal attention: in eager
        # mode it has checked the data (packed sequences found); under torch.compile it always
        # does so when it is given position_ids, so the one thing these families add there, a
        # sequence restarting inside a row, is probed for in the graph.
        if not torch.compiler.is_compiling():
            raise AttentionNotSupported(_PACKED_MESSAGE)
        if q_length > 1 and local_size != 1:
            torch._assert_async(_no_sequence_break(mask_function, batch_size, q_length, q_offset), _PACKED_MESSAGE)
    if attention_mask is not None:
        _check_no_padding(attention_mask)
    return None


_PACKED_MESSAGE = ("position_ids: packed sequences (position_ids restarting inside a row) need a block-diagonal "
                   "mask, which sattn's attention cannot honour; run one sequence per row")


def _no_sequence_break(mask_function, batch_size, q_length, q_offset):
    # Causal attention sees key i - 1 from query i; a packed-sequence mask hides it where a new
    # sequence starts. O(B * L) probes of the model's mask function, no L x L mask.
    rows = torch.arange(batch_size)[:, None]
    pos = torch.arange(1, q_length)[None, :] + q_offset
    return mask_function(rows, torch.zeros((), dtype=torch.long), pos, pos - 1).all()


_PADDING_MESSAGE = ("attention_mask: padding (zeros in the attention mask) is not supported by sattn's attention; "
                    "run unpadded sequences (batch size 1, or equal lengths) or pass no attention_mask")


def _check_no_padding(padding_mask) -> None:
    every = padding_mask.all()
    if torch.compiler.is_compiling():  # a data-dependent check stays in the graph
        torch._assert_async(every, _PADDING_MESSAGE)
    elif not bool(every):
        raise AttentionNotSupported(_PADDING_MESSAGE)
