"""A training run, not only unit gradients: a 2-layer tiny transformer trained on the CPU with the
sattn cpu backend (fp32) and, from the same seed and batches, with the float64 masked-softmax
attention of tests/grad_suite.judge's formula written in torch. The loss curves agree within
LOSS_TOL at every step and the loss falls.

Task: sequences with x_t = (x_{t-1} + x_{t-3}) mod V from three random tokens; next-token
prediction needs the previous three positions, which SlidingWindow(4, causal) sees.
"""
import math

import numpy as np
import torch

import sattn

V, L, DM, HQ, HKV, STEPS, BATCH = 16, 32, 32, 4, 2, 300, 16
SPEC = sattn.SlidingWindow(window=4, causal=True)
# Largest |loss_sattn - loss_float64| over the 300 steps, measured 2026-12-03 on the 2-core dev
# VM: 1.2e-6 (the loss falls 3.04 -> 0.646 in both runs); the bound leaves ~8x.
LOSS_TOL = 1e-5


def masked_attention_f64(q, k, v):
    mask = torch.as_tensor(sattn.mask.dense_mask_numpy(SPEC, q.detach(), k.detach()))
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.softmax(s.masked_fill(~mask, -torch.inf), -1) @ v


def sattn_attention(q, k, v):
    return sattn.sparse_attention(q, k, v, SPEC, backend="cpu")


class Block(torch.nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.attn = attn
        self.n1, self.n2 = torch.nn.LayerNorm(DM), torch.nn.LayerNorm(DM)
        self.q = torch.nn.Linear(DM, DM)
        self.kv = torch.nn.Linear(DM, 2 * DM * HKV // HQ)
        self.o = torch.nn.Linear(DM, DM)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(DM, 4 * DM), torch.nn.GELU(), torch.nn.Linear(4 * DM, DM))

    def forward(self, x):
        B, T, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, HQ, DM // HQ).transpose(1, 2)             # non-contiguous views
        k, v = self.kv(h).view(B, T, 2, HKV, DM // HQ).permute(2, 0, 3, 1, 4)
        a = self.attn(q, k, v).transpose(1, 2).reshape(B, T, DM)
        x = x + self.o(a)
        return x + self.mlp(self.n2(x))


class Model(torch.nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.emb = torch.nn.Embedding(V, DM)
        self.pos = torch.nn.Parameter(torch.zeros(L, DM))
        self.blocks = torch.nn.ModuleList([Block(attn), Block(attn)])
        self.head = torch.nn.Linear(DM, V)

    def forward(self, x):
        h = self.emb(x) + self.pos[: x.shape[1]]
        for b in self.blocks:
            h = b(h)
        return self.head(h)


def batches(seed):
    g = np.random.default_rng(seed)
    for _ in range(STEPS):
        x = np.zeros((BATCH, L + 1), np.int64)
        x[:, :3] = g.integers(0, V, (BATCH, 3))
        for t in range(3, L + 1):
            x[:, t] = (x[:, t - 1] + x[:, t - 3]) % V
        yield torch.from_numpy(x)


def train(model, dtype):
    model = model.to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for x in batches(7):
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V).to(torch.float64), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


def test_training_with_the_cpu_backend_follows_the_float64_reference():
    torch.manual_seed(0)
    ref_model = Model(masked_attention_f64)
    sattn_model = Model(sattn_attention)
    sattn_model.load_state_dict(ref_model.state_dict())
    ref = train(ref_model.double(), torch.float64)
    got = train(sattn_model, torch.float32)
    diff = np.abs(got - ref).max()
    print(f"loss {ref[0]:.4f} -> {ref[-1]:.4f} (float64 reference), {got[-1]:.4f} (sattn cpu); "
          f"max |loss difference| over {STEPS} steps = {diff:.3g}")
    assert diff <= LOSS_TOL
    assert got[-20:].mean() < 0.5 * got[:5].mean()
