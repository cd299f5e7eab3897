"""Quality against cost: small language models trained from scratch with each spec (`sattn eval`).

Every run trains the same tiny decoder-only transformer (torch.nn; its attention through
sattn.sparse_attention, or sattn.NSA) from the same seed on the same batches for the same number
of steps, with one attention spec, and reports what the model learned against what its
attention cost. Tasks:

- ``text``: next-byte prediction on the running CPython's standard library source (the ``*.py``
  files directly under ``sysconfig.get_paths()["stdlib"]``, sorted by name; every 10th file held
  out for validation). Metric: validation loss in bits per byte (lower is better).
- ``mqar``: multi-query associative recall (Arora et al., "Zoology", arXiv:2312.04927): key-value
  pairs at the start, filler, then queries of those keys; the model must give each key's value.
  Metric: accuracy over the answers (higher is better).
- ``passkey``: a 5-digit passkey inside filler at a random place, asked for at the end.
  Metric: accuracy over the digits.

Cost, per row: ``visible_pairs`` (the (query, key) pairs the plans of one validation sequence
keep, summed over the layers and query heads; for NSA the compressed-token pairs too),
``attn_flops`` = 4 * visible_pairs * D (QK^T and PV of the forward pass, 2 flops per
multiply-add), the training wall time, and the peak memory of one training step
(``peak_mem_bytes``: on CPU the growth of the process's peak resident set over the step,
/proc/self/status VmHWM after resetting it; on CUDA torch.cuda.max_memory_allocated over the step).
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import math
import os
import platform
import sysconfig
import time
from typing import Callable, Optional

import numpy as np

from sattn import specs as S

TASKS = ("text", "mqar", "passkey")
FAMILIES = ("dense", "sliding_window", "block_topk", "bigbird", "topk_per_query", "moba", "nsa")
HIGHER_IS_BETTER = {"text": False, "mqar": True, "passkey": True}
METRIC = {"text": "val_bpb", "mqar": "accuracy", "passkey": "accuracy"}
ROW_FIELDS = ("kind", "task", "system", "family", "spec", "spec_params", "budget", "backend", "device",
              "seed", "steps", "batch", "Lq", "Lk", "layers", "d_model", "Hq", "Hkv", "D", "vocab",
              "metric", "value", "val_loss_nats", "val_bpb", "accuracy", "train_loss_first", "train_loss_last",
              "visible_pairs", "density", "attn_flops", "attn_flops_vs_dense", "train_s", "step_ms",
              "eval_s", "peak_mem_bytes", "peak_mem_kind", "corpus", "machine", "date")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One evaluation matrix: model size, sequence length, step budget and the specs' budgets."""

    name: str
    seq_len: int
    steps: int
    batch: int
    d_model: int
    heads: int
    kv_heads: int
    layers: int
    block: int                 # block edge of the block specs (BlockTopK, BigBird, MoBA, NSA's selection)
    budgets: tuple             # fractions of L each sparse spec is sized to (see spec_for)
    tasks: tuple = TASKS
    lr: float = 3e-3
    eval_batches: int = 4      # validation batches of `batch` sequences
    text_train_bytes: int = 2_000_000
    text_val_bytes: int = 200_000
    mqar_pairs: int = 8
    mqar_queries: int = 8
    recall_vocab: int = 64


PRESETS = {
    # The test's matrix: every field of every row in seconds.
    "micro": Preset("micro", seq_len=64, steps=10, batch=4, d_model=32, heads=2, kv_heads=1, layers=1, block=16,
                    budgets=(0.25,), eval_batches=1, text_train_bytes=200_000, text_val_bytes=20_000,
                    mqar_pairs=4, mqar_queries=4),
    # CI on a CPU: a minute or two.
    "ci": Preset("ci", seq_len=128, steps=100, batch=8, d_model=32, heads=2, kv_heads=1, layers=2, block=16,
                 budgets=(0.25,), eval_batches=2, mqar_pairs=8, mqar_queries=8),
    # A few minutes on one CPU core: two budgets, 300 steps (where the recall tasks leave chance).
    "cpu": Preset("cpu", seq_len=128, steps=300, batch=8, d_model=64, heads=4, kv_heads=2, layers=2, block=8,
                  budgets=(0.125, 0.25), eval_batches=4, mqar_pairs=8, mqar_queries=8),
    # The GPU machine (--device cuda): long context, three budgets.
    "full": Preset("full", seq_len=4096, steps=2000, batch=16, d_model=256, heads=8, kv_heads=2, layers=4,
                   block=64, budgets=(0.0625, 0.125, 0.25), eval_batches=16, text_train_bytes=20_000_000,
                   text_val_bytes=1_000_000, mqar_pairs=64, mqar_queries=64, recall_vocab=512, lr=1e-3),
}


# ---- specs -------------------------------------------------------------------------------------

def spec_for(family: str, budget: float, L: int, block: int):
    """The spec (or, for 'nsa', the sattn.NSA keyword arguments) of `family` sized to keep about
    `budget` * L keys per query (causal throughout). Dense ignores the budget."""
    n_blocks = max(1, L // block)
    per_row = max(1, round(budget * L))
    blocks = max(1, round(budget * n_blocks))
    if family == "dense":
        return S.Dense(causal=True)
    if family == "sliding_window":
        return S.SlidingWindow(window=per_row, causal=True)
    if family == "block_topk":
        return S.BlockTopK(block=block, keep=budget, causal=True)
    if family == "bigbird":
        # 1 global block, the diagonal and the previous block (window_blocks=3, causal), the rest random.
        return S.BigBird(block=block, window_blocks=3, global_blocks=1, random_blocks=max(0, blocks - 3),
                         causal=True)
    if family == "topk_per_query":
        return S.TopKPerQuery(k=per_row, causal=True)
    if family == "moba":
        return S.MoBA(block=block, topk=max(1, blocks), causal=True)
    if family == "nsa":
        # The selected blocks and the window take a third of the budget each (n_sel at least 3: the
        # initial and 2 local blocks); compressed tokens of 2 blocks every block, about L / block.
        third = max(1, per_row // 3)
        return {"block_cmp": 2 * block, "stride": block, "block_sel": block,
                "n_sel": max(3, round(third / block)), "window": third}
    raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")


def matrix(preset: Preset, families=FAMILIES, budgets=None) -> list:
    """[(family, budget, spec)]: Dense once, every other family at every budget."""
    out = []
    for fam in families:
        if fam == "dense":
            out.append((fam, 1.0, spec_for(fam, 1.0, preset.seq_len, preset.block)))
            continue
        for b in (preset.budgets if budgets is None else budgets):
            out.append((fam, float(b), spec_for(fam, float(b), preset.seq_len, preset.block)))
    return out


def spec_label(family: str, spec) -> str:
    if family == "nsa":
        return "NSA(" + ", ".join(f"{k}={v}" for k, v in spec.items()) + ")"
    return str(spec)


# ---- data --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Corpus:
    train: np.ndarray          # uint8
    val: np.ndarray            # uint8
    files: int
    sha256: str
    root: str

    def describe(self) -> dict:
        return {"source": "cpython stdlib *.py", "root": self.root, "python": platform.python_version(),
                "files": self.files, "train_bytes": int(self.train.size), "val_bytes": int(self.val.size),
                "sha256": self.sha256}


def stdlib_corpus(train_bytes: int, val_bytes: int, root: Optional[str] = None) -> Corpus:
    """The running interpreter's standard library source: the *.py files directly under `root`
    (default sysconfig's stdlib path), sorted by name, each file's bytes followed by a NUL.
    Files 9, 19, 29, ... are the validation split; both splits cut to the byte budgets."""
    root = root or sysconfig.get_paths()["stdlib"]
    try:
        names = sorted(n for n in os.listdir(root) if n.endswith(".py"))
    except OSError as e:
        raise FileNotFoundError(f"stdlib corpus: cannot list {root}: {e.strerror}") from None
    train, val = [], []
    n_train = n_val = 0
    for i, name in enumerate(names):
        with open(os.path.join(root, name), "rb") as f:
            data = f.read() + b"\0"
        if i % 10 == 9:
            if n_val < val_bytes:
                val.append(data)
                n_val += len(data)
        elif n_train < train_bytes:
            train.append(data)
            n_train += len(data)
    tr = np.frombuffer(b"".join(train)[:train_bytes], np.uint8)
    va = np.frombuffer(b"".join(val)[:val_bytes], np.uint8)
    if tr.size < 4096 or va.size < 4096:
        raise FileNotFoundError(f"stdlib corpus: too little source under {root} ({tr.size} train, {va.size} "
                                "validation bytes)")
    digest = hashlib.sha256(tr.tobytes() + b"|" + va.tobytes()).hexdigest()[:16]
    return Corpus(tr, va, len(names), digest, root)


def text_batches(data: np.ndarray, L: int, batch: int, steps: int, seed: int):
    """`steps` batches of `batch` random windows of L + 1 bytes (int64 (batch, L + 1))."""
    g = np.random.default_rng(seed)
    for _ in range(steps):
        starts = g.integers(0, data.size - L - 1, batch)
        yield np.stack([data[s:s + L + 1] for s in starts]).astype(np.int64)


def text_val_windows(data: np.ndarray, L: int, n: int) -> np.ndarray:
    """n windows of L + 1 bytes spread evenly over the validation split (fixed: no seed)."""
    starts = np.linspace(0, data.size - L - 1, n).astype(np.int64)
    return np.stack([data[s:s + L + 1] for s in starts]).astype(np.int64)


# Recall tasks: token 0 is filler's floor; the layout of the vocabulary (V tokens):
#   0: padding/separator, 1: passkey marker, 2: query marker, [3, 13): digits,
#   [13, 13 + (V - 13) // 2): keys, the rest: values (mqar) / filler words (both tasks).
SEP, MARK, ASK, DIGIT0 = 0, 1, 2, 3
FIRST_FREE = 13


def _recall_ranges(V: int):
    if V < FIRST_FREE + 8:
        raise ValueError(f"recall_vocab: expected at least {FIRST_FREE + 8}, got {V}")
    half = (V - FIRST_FREE) // 2
    return range(FIRST_FREE, FIRST_FREE + half), range(FIRST_FREE + half, V)


def mqar_batch(g: np.random.Generator, batch: int, L: int, V: int, pairs: int, queries: int):
    """Multi-query associative recall: (tokens int64 (batch, L + 1), answer mask bool (batch, L + 1)).

    Sequence: k1 v1 ... kn vn (n = pairs distinct keys), filler of values, then `queries` key-value
    pairs asked again in random order (each a key of the first part followed by its value).
    answer[t] is True where tokens[t] is a value the model must recall (predicted from t - 1)."""
    keys, vals = _recall_ranges(V)
    if 2 * pairs + 2 * queries > L + 1:
        raise ValueError(f"mqar: {pairs} pairs and {queries} queries do not fit L={L}")
    if pairs > len(keys):
        raise ValueError(f"mqar: {pairs} distinct keys need recall_vocab >= {FIRST_FREE + 2 * pairs}")
    tok = g.integers(vals.start, vals.stop, (batch, L + 1))
    ans = np.zeros((batch, L + 1), bool)
    q0 = L + 1 - 2 * queries
    for b in range(batch):
        k = g.choice(np.arange(keys.start, keys.stop), pairs, replace=False)
        v = g.integers(vals.start, vals.stop, pairs)
        tok[b, 0:2 * pairs:2], tok[b, 1:2 * pairs:2] = k, v
        pick = g.integers(0, pairs, queries)
        tok[b, q0::2], tok[b, q0 + 1::2] = k[pick], v[pick]
        ans[b, q0 + 1::2] = True
    return tok, ans


def passkey_batch(g: np.random.Generator, batch: int, L: int, V: int, digits: int = 5):
    """Passkey retrieval: filler, MARK d1..d5 at a random place, filler, then ASK d1..d5 at the end.
    answer marks the digits after ASK (predicted from the token before each)."""
    _, words = _recall_ranges(V)
    if 2 * digits + 2 > L + 1:
        raise ValueError(f"passkey: L={L} is too short for {digits} digits")
    tok = g.integers(words.start, words.stop, (batch, L + 1))
    ans = np.zeros((batch, L + 1), bool)
    end = L + 1 - digits - 1
    for b in range(batch):
        key = g.integers(DIGIT0, DIGIT0 + 10, digits)
        at = int(g.integers(0, end - digits - 1))
        tok[b, at], tok[b, at + 1:at + 1 + digits] = MARK, key
        tok[b, end], tok[b, end + 1:] = ASK, key
        ans[b, end + 1:] = True
    return tok, ans


def recall_batch(task: str, preset: Preset, g: np.random.Generator, batch: int):
    if task == "mqar":
        return mqar_batch(g, batch, preset.seq_len, preset.recall_vocab, preset.mqar_pairs, preset.mqar_queries)
    return passkey_batch(g, batch, preset.seq_len, preset.recall_vocab)


# ---- model -------------------------------------------------------------------------------------

def _torch():
    import torch
    return torch


def build_model(preset: Preset, vocab: int, attention: Callable, seed: int, nsa_kwargs: Optional[dict] = None):
    """The tiny decoder: embeddings + learned positions, `layers` pre-LayerNorm blocks (GQA
    attention through `attention(q, k, v, layer)`, a GELU MLP), a linear head. The base weights
    depend on `seed` only (NSA's own parameters are drawn after them from seed + 1), so every spec
    starts from the same model."""
    torch = _torch()
    nn = torch.nn
    DM, HQ, HKV = preset.d_model, preset.heads, preset.kv_heads
    D = DM // HQ

    class Block(nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.n1, self.n2 = nn.LayerNorm(DM), nn.LayerNorm(DM)
            self.q = nn.Linear(DM, DM)
            self.kv = nn.Linear(DM, 2 * D * HKV)
            self.o = nn.Linear(DM, DM)
            self.mlp = nn.Sequential(nn.Linear(DM, 4 * DM), nn.GELU(), nn.Linear(4 * DM, DM))

        def forward(self, x):
            B, T, _ = x.shape
            h = self.n1(x)
            q = self.q(h).view(B, T, HQ, D).transpose(1, 2)
            k, v = self.kv(h).view(B, T, 2, HKV, D).permute(2, 0, 3, 1, 4)
            a = attention(q, k, v, self.index).transpose(1, 2).reshape(B, T, DM)
            x = x + self.o(a)
            return x + self.mlp(self.n2(x))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, DM)
            self.pos = nn.Parameter(torch.randn(preset.seq_len, DM) * 0.02)
            self.blocks = nn.ModuleList([Block(i) for i in range(preset.layers)])
            self.norm = nn.LayerNorm(DM)
            self.head = nn.Linear(DM, vocab)

        def forward(self, x):
            h = self.emb(x) + self.pos[: x.shape[1]]
            for b in self.blocks:
                h = b(h)
            return self.head(self.norm(h))

    torch.manual_seed(seed)
    model = Decoder()
    if nsa_kwargs is not None:
        from sattn.nsa import NSA
        torch.manual_seed(seed + 1)
        model.nsa = nn.ModuleList([NSA(D, **nsa_kwargs) for _ in range(preset.layers)])
    return model


class Attention:
    """attention(q, k, v, layer) of one run; records each layer's q, k (and NSA's choice) when
    `recording`, for the cost of the plans."""

    def __init__(self, family, spec, backend, model_ref=None, threads: int = 0):
        self.family, self.spec, self.backend = family, spec, backend
        self.threads = threads
        self.model_ref = model_ref
        self.recording = False
        self.seen = {}

    def __call__(self, q, k, v, layer):
        if self.recording:
            self.seen[layer] = (q.detach(), k.detach())
        host = q.device.type == "cpu" and self.backend in ("auto", "cpu")
        if self.family == "nsa":
            return self.model_ref().nsa[layer](q, k, v, backend=self.backend, threads=self.threads if host else 0)
        from sattn.api import sparse_attention
        opts = {"threads": self.threads} if host and self.threads else {}
        return sparse_attention(q, k, v, self.spec, backend=self.backend, **opts)


def nsa_visible_pairs(nsa, q, k) -> int:
    """The (query, key) pairs NSA's three branches attend to (compressed tokens counted as keys)."""
    torch = _torch()
    from sattn.plan import plan as make_plan
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(D)
    with torch.no_grad():
        kc = nsa.compress(k, "k")
        n = kc.shape[2]
        pos = torch.arange(Lq) + (Lk - Lq)
        vis = torch.arange(n)[None, :] * nsa.stride + nsa.block_cmp - 1 <= pos[:, None]
        cmp_pairs = int(vis.sum()) * B * Hq
        _, p_cmp = nsa._compressed(q, k, k, scale)
        chosen = nsa.selection(p_cmp, Lq, Lk)                              # (B, Hkv, Lq, n_sel)
        lo = chosen.clamp(min=0) * nsa.block_sel
        hi = torch.minimum(lo + nsa.block_sel, (pos + 1)[None, None, :, None])
        sel = torch.where(chosen >= 0, (hi - lo).clamp(min=0), 0)
        sel_pairs = int(sel.sum()) * (Hq // Hkv)
    win = make_plan(S.SlidingWindow(window=nsa.window, causal=True), q, k).visible_pairs()
    return cmp_pairs + sel_pairs + win


def attention_cost(attn: Attention, model, D: int) -> tuple:
    """(visible_pairs, attn_flops) of the recorded forward: plans of each layer's q, k."""
    from sattn.plan import plan as make_plan
    pairs = 0
    for layer in sorted(attn.seen):
        q, k = attn.seen[layer]
        q, k = q.cpu(), k.cpu()
        if attn.family == "nsa":
            pairs += nsa_visible_pairs(model.nsa[layer].cpu(), q, k)
        else:
            pairs += make_plan(attn.spec, q, k).visible_pairs()
    return pairs, 4 * pairs * D


# ---- memory ------------------------------------------------------------------------------------

def _proc_status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


class PeakMemory:
    """Peak memory of a region: CUDA allocator peak, or the host's peak RSS growth (Linux)."""

    def __init__(self, device: str):
        self.device, self.kind, self.bytes = device, None, None

    def __enter__(self):
        torch = _torch()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")                       # resets VmHWM to the current RSS
            self._base = _proc_status()["VmRSS"]
        except (OSError, KeyError):
            self._base = None
        return self

    def __exit__(self, *exc):
        torch = _torch()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.bytes = int(torch.cuda.max_memory_allocated() - self._base)
            self.kind = "cuda max_memory_allocated growth"
        elif self._base is not None:
            self.bytes = int(_proc_status()["VmHWM"] - self._base)
            self.kind = "host peak RSS growth (VmHWM)"
        return False


# ---- one run -----------------------------------------------------------------------------------

def _loss(logits, targets, mask=None):
    torch = _torch()
    flat = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                             reduction="none")
    if mask is None:
        return flat.mean()
    m = mask.reshape(-1)
    return flat[m].mean()


def machine() -> dict:
    return {"host_cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": _torch().__version__}


def run_one(task: str, family: str, budget: float, spec, preset: Preset, *, seed: int = 0, backend: str = "auto",
            device: str = "cpu", corpus: Optional[Corpus] = None, progress: Optional[Callable] = None,
            threads: int = 0) -> dict:
    """Train one model for preset.steps steps and evaluate it: one row (ROW_FIELDS). `threads`:
    the cpu backend's threads (0: all cores)."""
    torch = _torch()
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    L = preset.seq_len
    D = preset.d_model // preset.heads
    vocab = 256 if task == "text" else preset.recall_vocab
    model_box = []
    attn = Attention(family, None if family == "nsa" else spec, backend, model_ref=lambda: model_box[0],
                     threads=threads)
    model = build_model(preset, vocab, attn, seed, nsa_kwargs=spec if family == "nsa" else None).to(device)
    model_box.append(model)
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)

    data_seed = seed * 1000 + TASKS.index(task)
    if task == "text":
        if corpus is None:
            corpus = stdlib_corpus(preset.text_train_bytes, preset.text_val_bytes)
        batches = ((b, None) for b in text_batches(corpus.train, L, preset.batch, preset.steps, data_seed))
    else:
        g = np.random.default_rng(data_seed)
        batches = (recall_batch(task, preset, g, preset.batch) for _ in range(preset.steps))

    def step(x, m):
        x = torch.from_numpy(x).to(device)
        logits = model(x[:, :-1])
        loss = _loss(logits, x[:, 1:], None if m is None else torch.from_numpy(m[:, 1:]).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    losses, step_times = [], []
    last = None
    t0 = time.perf_counter()
    for i, (x, m) in enumerate(batches):
        ts = time.perf_counter()
        losses.append(step(x, m))
        step_times.append(time.perf_counter() - ts)
        last = (x, m)
        if progress is not None and (i + 1) % max(1, preset.steps // 4) == 0:
            progress(f"step {i + 1}/{preset.steps} loss {losses[-1]:.3f}")
    train_s = time.perf_counter() - t0

    with PeakMemory(device) as mem:            # one more step, warm: its peak memory
        step(*last)

    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        if task == "text":
            val = text_val_windows(corpus.val, L, preset.eval_batches * preset.batch)
            tot, n = 0.0, 0
            for i in range(0, val.shape[0], preset.batch):
                x = torch.from_numpy(val[i:i + preset.batch]).to(device)
                loss = _loss(model(x[:, :-1]), x[:, 1:])
                tot += loss.item() * x[:, 1:].numel()
                n += x[:, 1:].numel()
            val_loss, accuracy = tot / n, None
            first = torch.from_numpy(val[:1]).to(device)
        else:
            g = np.random.default_rng(10_000 + data_seed)  # held-out sequences, disjoint stream from training
            correct = total = 0
            tot = 0.0
            first = None
            for _ in range(preset.eval_batches):
                x, m = recall_batch(task, preset, g, preset.batch)
                xt, mt = torch.from_numpy(x).to(device), torch.from_numpy(m[:, 1:]).to(device)
                logits = model(xt[:, :-1])
                tot += _loss(logits, xt[:, 1:], mt).item() * int(mt.sum())
                correct += int((logits.argmax(-1)[mt] == xt[:, 1:][mt]).sum())
                total += int(mt.sum())
                if first is None:
                    first = xt[:1]
            val_loss, accuracy = tot / total, correct / total
        eval_s = time.perf_counter() - t0
        attn.recording = True
        model(first[:, :-1])
        attn.recording = False
    pairs, flops = attention_cost(attn, model, D)
    dense_pairs = preset.layers * preset.heads * L * (L + 1) // 2
    params = {} if family == "nsa" else spec.params()
    row = {
        "kind": "eval", "task": task, "system": spec_label(family, spec), "family": family,
        "spec": "NSA" if family == "nsa" else spec.kind, "spec_params": spec if family == "nsa" else params,
        "budget": budget, "backend": backend, "device": device, "seed": seed, "steps": preset.steps,
        "batch": preset.batch, "Lq": L, "Lk": L, "layers": preset.layers, "d_model": preset.d_model,
        "Hq": preset.heads, "Hkv": preset.kv_heads, "D": D, "vocab": vocab,
        "metric": METRIC[task], "val_loss_nats": val_loss,
        "val_bpb": val_loss / math.log(2) if task == "text" else None, "accuracy": accuracy,
        "train_loss_first": losses[0], "train_loss_last": losses[-1],
        "visible_pairs": pairs, "density": pairs / (preset.layers * preset.heads * L * L),
        "attn_flops": flops, "attn_flops_vs_dense": pairs / dense_pairs,
        "train_s": train_s, "step_ms": 1e3 * float(np.median(step_times)), "eval_s": eval_s,
        "peak_mem_bytes": mem.bytes, "peak_mem_kind": mem.kind,
        "corpus": corpus.describe() if task == "text" else None,
        "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    row["value"] = row[METRIC[task]]
    return row


def evaluate(preset: Preset, *, tasks=None, families=FAMILIES, budgets=None, seed: int = 0, backend: str = "auto",
             device: str = "cpu", progress: Optional[Callable] = None, threads: int = 0):
    """Yields one row per (task, spec) of the preset's matrix, in order."""
    tasks = tuple(tasks or preset.tasks)
    runs = [(t, f, b, s) for t in tasks for f, b, s in matrix(preset, families, budgets)]
    corpus = stdlib_corpus(preset.text_train_bytes, preset.text_val_bytes) if "text" in tasks else None
    for i, (task, fam, budget, spec) in enumerate(runs):
        label = f"[{i + 1}/{len(runs)}] {task} {spec_label(fam, spec)}"
        say = (lambda msg, label=label: progress(f"{label}: {msg}")) if progress else None
        if progress:
            progress(f"{label}: training {preset.steps} steps")
        row = run_one(task, fam, budget, spec, preset, seed=seed, backend=backend, device=device, corpus=corpus,
                      progress=say, threads=threads)
        if progress:
            progress(f"{label}: {row['metric']} {row['value']:.4f}, attn {row['attn_flops']:.3g} flops, "
                     f"{row['train_s']:.1f} s")
        yield row


def pareto_frontier(rows: list) -> list:
    """The rows of one task no other row beats in both attention FLOPs and metric, by FLOPs."""
    if not rows:
        return []
    higher = HIGHER_IS_BETTER[rows[0]["task"]]
    best, out = None, []
    for r in sorted(rows, key=lambda r: (r["attn_flops"], -r["value"] if higher else r["value"])):
        if best is None or (r["value"] > best if higher else r["value"] < best):
            out.append(r)
            best = r["value"]
    return out
