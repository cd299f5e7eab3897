"""Prefill and decode speed of a transformers model with attn_implementation="sattn" against
transformers' own implementations (sdpa, eager, flex_attention), random weights, one JSON row per
(implementation, spec) on stdout; progress on stderr. docs/transformers.md has the numbers.

    python -m sattn.integrations.transformers_bench --model llama --layers 2 --seq-len 2048 \\
        --spec dense --spec sliding_window:256 --spec block_topk:0.125 --impl sdpa

    # the 1B-class Llama at 32k on a GPU:
    python -m sattn.integrations.transformers_bench --device cuda --dtype bfloat16 --model llama --layers 16 \\
        --hidden 2048 --heads 32 --kv-heads 8 --intermediate 8192 --vocab 128256 --seq-len 32768 \\
        --spec block_topk:0.125 --spec dense --impl sdpa --impl flex_attention

Row fields: impl, spec (sattn's spec as text, null for the peers), model shape, device, dtype,
prefill_s (the fastest of --repeats prefills of --seq-len tokens: time to first token),
prefill_tokens_per_s, decode_tokens, decode_s and decode_tokens_per_s (greedy steps of one token
against the prefilled cache), peak_memory_bytes (CUDA only, else null).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONFIGS = {"llama": "LlamaConfig", "mistral": "MistralConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config"}
PEERS = ("sdpa", "eager", "flex_attention")


def parse_spec(text: str):
    """dense | sliding_window:W | block_topk:KEEP[:BLOCK] -> a sattn spec (causal)."""
    import sattn
    name, _, rest = text.partition(":")
    args = [a for a in rest.split(":") if a]
    try:
        if name == "dense" and not args:
            return sattn.Dense(causal=True)
        if name == "sliding_window" and len(args) == 1:
            return sattn.SlidingWindow(window=int(args[0]), causal=True)
        if name == "block_topk" and len(args) in (1, 2):
            block = int(args[1]) if len(args) == 2 else 64
            return sattn.BlockTopK(block=block, keep=float(args[0]), causal=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    raise argparse.ArgumentTypeError(
        f"expected dense, sliding_window:W or block_topk:KEEP[:BLOCK], got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", choices=sorted(CONFIGS), default="llama", help="model family (default llama)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8, help="query heads")
    ap.add_argument("--kv-heads", type=int, default=2, help="key/value heads (GQA)")
    ap.add_argument("--intermediate", type=int, default=None, help="MLP width (default 4 x hidden)")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq-len", type=int, default=1024, help="prompt length (prefill)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--decode-tokens", type=int, default=16, help="greedy steps after the prefill")
    ap.add_argument("--repeats", type=int, default=3, help="prefills timed; the fastest is reported")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ap.add_argument("--spec", action="append", type=parse_spec, default=None, metavar="SPEC",
                    help="a sattn spec for every layer: dense, sliding_window:W, block_topk:KEEP[:BLOCK] "
                         "(repeatable; default dense)")
    ap.add_argument("--impl", action="append", choices=PEERS, default=None,
                    help="a transformers implementation to time in the same run (repeatable; default sdpa)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def make_model(args, impl: str):
    import torch
    import transformers
    cls = getattr(transformers, CONFIGS[args.model])
    head_dim = args.hidden // args.heads
    config = cls(hidden_size=args.hidden, intermediate_size=args.intermediate or 4 * args.hidden,
                 num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                 head_dim=head_dim, vocab_size=args.vocab,
                 max_position_embeddings=max(args.seq_len + args.decode_tokens, 2048))
    if args.model != "llama":
        config.sliding_window = None
    torch.manual_seed(args.seed)
    with torch.device(args.device):
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=impl)
    return model.to(getattr(torch, args.dtype)).eval()


def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_model(model, args) -> dict:
    import torch
    ids = torch.randint(0, args.vocab, (args.batch, args.seq_len), device=args.device,
                        generator=torch.Generator(device=args.device).manual_seed(args.seed))
    cuda = str(args.device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    with torch.no_grad():
        for _ in range(args.repeats):
            _sync(args.device)
            t = time.perf_counter()
            out = model(ids, use_cache=True, logits_to_keep=1)
            _sync(args.device)
            best = min(best, time.perf_counter() - t)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        _sync(args.device)
        t = time.perf_counter()
        for _ in range(args.decode_tokens):
            out = model(token, past_key_values=cache, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        _sync(args.device)
        decode_s = time.perf_counter() - t
    return {"prefill_s": best, "prefill_tokens_per_s": args.batch * args.seq_len / best,
            "decode_tokens": args.decode_tokens, "decode_s": decode_s,
            "decode_tokens_per_s": args.batch * args.decode_tokens / decode_s if args.decode_tokens else None,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None}


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    from sattn.integrations import transformers as sattn_hf
    sattn_hf.register()
    base = {"model": args.model, "layers": args.layers, "hidden": args.hidden, "heads": args.heads,
            "kv_heads": args.kv_heads, "seq_len": args.seq_len, "batch": args.batch, "device": args.device,
            "dtype": args.dtype}
    runs = [("sattn", spec) for spec in (args.spec or [parse_spec("dense")])]
    runs += [(impl, None) for impl in (args.impl or ["sdpa"])]
    for impl, spec in runs:
        print(f"[transformers_bench] {impl} {spec or ''} L={args.seq_len} ...", file=sys.stderr, flush=True)
        model = make_model(args, impl)
        if spec is not None:
            sattn_hf.configure(model, specs={"default": spec})
        row = {"impl": impl, "spec": None if spec is None else str(spec), **base, **time_model(model, args)}
        print(json.dumps(row), flush=True)
        del model


if __name__ == "__main__":
    main()
