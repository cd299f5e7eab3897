"""sattn.varlen_attention and sattn.paged_attention (docs/varlen.md) against the per-document
float64 reference, and paged against contiguous keys bit for bit."""
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import sattn
from sattn import varlen as V

SPECS = [
    sattn.Dense(causal=True),
    sattn.Dense(),
    sattn.SlidingWindow(window=7, causal=True),
    sattn.BlockTopK(block=8, keep=0.5, causal=True),
    sattn.BigBird(block=8, global_blocks=1, window_blocks=1, random_blocks=1),
    sattn.TopKPerQuery(k=5, causal=True),
]


def _cu(lengths):
    return torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int32)


def _per_document(q, k, v, lq, lk, spec, dtype=torch.float64):
    """The contract per document: sparse_attention on the reference backend, concatenated."""
    cq, ck = _cu(lq).tolist(), _cu(lk).tolist()
    outs = []
    for d in range(len(lq)):
        if lq[d] == 0:
            continue
        qd, kd, vd = (x[c[d]:c[d + 1]].to(dtype).transpose(0, 1)[None] for x, c in ((q, cq), (k, ck), (v, ck)))
        outs.append(sattn.sparse_attention(qd, kd, vd, spec, backend="reference")[0].transpose(0, 1))
    return torch.cat(outs) if outs else q.new_zeros(q.shape).to(dtype)


@st.composite
def documents(draw, min_keys):
    n = draw(st.integers(1, 4))
    lk = [draw(st.integers(min_keys, 40)) for _ in range(n)]
    lq = [draw(st.sampled_from([0, 1, lk[d], draw(st.integers(0, lk[d]))])) for d in range(n)]
    if sum(lq) == 0:
        lq[0] = lk[0]
    return lq, lk


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__ + ("c" if s.causal else ""))
@settings(max_examples=6, deadline=None)
@given(docs=documents(min_keys=1), seed=st.integers(0, 2**16))
def test_forward_matches_per_document_reference(spec, docs, seed):
    lq, lk = docs
    own = getattr(spec, "block", 0) if isinstance(spec, (sattn.BlockTopK, sattn.BigBird)) else 0
    lk = [max(x, own) for x in lk]
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(lq), 4, 16, generator=g, dtype=torch.float64)
    k = torch.randn(sum(lk), 2, 16, generator=g, dtype=torch.float64)
    v = torch.randn(sum(lk), 2, 16, generator=g, dtype=torch.float64)
    want = _per_document(q, k, v, lq, lk, spec)
    got = sattn.varlen_attention(q, k, v, _cu(lq), _cu(lk), spec, backend="reference", tile=8)
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    got32 = sattn.varlen_attention(q.float(), k.float(), v.float(), _cu(lq), _cu(lk), spec, backend="cpu", tile=8)
    assert (got32.double() - want).abs().max() < 2e-5


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__ + ("c" if s.causal else ""))
def test_backward_matches_per_document_autograd(spec):
    lq, lk = [9, 0, 1, 20], [9, 12, 30, 20]   # every document at least one BlockTopK/BigBird block
    g = torch.Generator().manual_seed(1)
    q = torch.randn(sum(lq), 4, 16, generator=g, dtype=torch.float64)
    k, v = (torch.randn(sum(lk), 2, 16, generator=g, dtype=torch.float64) for _ in range(2))
    dout = torch.randn(sum(lq), 4, 16, generator=g, dtype=torch.float64)
    ref = [x.clone().requires_grad_() for x in (q, k, v)]
    (_per_document(*ref, lq, lk, spec) * dout).sum().backward()
    got = [x.float().requires_grad_() for x in (q, k, v)]
    (sattn.varlen_attention(*got, _cu(lq), _cu(lk), spec, backend="cpu", tile=8) * dout.float()).sum().backward()
    for r, x in zip(ref, got):
        assert (x.grad.double() - r.grad).abs().max() < 2e-5


def test_plan_is_valid_and_stays_inside_documents():
    lq, lk = [3, 17, 0, 8], [10, 17, 5, 30]
    q, k = torch.zeros(sum(lq), 2, 8), torch.zeros(sum(lk), 2, 8)
    plan, layout = V.varlen_plan(sattn.Dense(), q, k, _cu(lq), _cu(lk), tile=8)
    plan.validate()
    rows = plan.to_dense_mask()[0, 0]                          # (padded queries, padded keys)
    seen = rows[layout.q_dst]
    assert not np.delete(rows, layout.q_dst, axis=0).any()     # the padding rows see nothing
    doc_q = np.repeat(np.arange(4), lq)
    doc_k = np.full(layout.padded_len, -1)
    doc_k[layout.dst] = np.repeat(np.arange(4), lk)[layout.src]
    assert (seen == (doc_q[:, None] == doc_k[None, :])).all()


def test_errors_name_the_argument():
    q, k = torch.zeros(4, 2, 8), torch.zeros(6, 2, 8)
    spec = sattn.Dense()
    with pytest.raises(TypeError, match="cu_seqlens_q"):
        sattn.varlen_attention(q, k, k, torch.tensor([0., 4.]), _cu([6]), spec)
    with pytest.raises(ValueError, match="cu_seqlens_k: expected the last offset"):
        sattn.varlen_attention(q, k, k, _cu([4]), _cu([5]), spec)
    with pytest.raises(ValueError, match="cu_seqlens_q: expected non-decreasing"):
        sattn.varlen_attention(q, k, k, torch.tensor([0, 5, 4], dtype=torch.int32), _cu([3, 3]), spec)
    with pytest.raises(ValueError, match="cu_seqlens_k: expected 2 documents"):
        sattn.varlen_attention(q, k, k, _cu([2, 2]), _cu([6]), spec)
    with pytest.raises(ValueError, match="document 1 has 3 queries but 2 keys"):
        sattn.varlen_attention(q, k, k, _cu([1, 3]), _cu([4, 2]), spec)
    with pytest.raises(ValueError, match="max_seqlen_k"):
        sattn.varlen_attention(q, k, k, _cu([4]), _cu([6]), spec, max_seqlen_k=5)
    with pytest.raises(ValueError, match="fewer than the spec's block 8"):
        sattn.varlen_attention(q, k, k, _cu([4]), _cu([6]), sattn.BigBird(block=8))


def test_no_queries_at_all():
    k = torch.randn(6, 2, 8)
    out, lse = sattn.varlen_attention(torch.zeros(0, 2, 8), k, k, _cu([0, 0]), _cu([2, 4]), sattn.Dense(),
                                      return_lse=True)
    assert out.shape == (0, 2, 8) and lse.shape == (2, 0)


def _paged(B, lens, page, Hq, Hkv, D, Lq, seed):
    g = torch.Generator().manual_seed(seed)
    pages = [-(-n // page) for n in lens]
    num_pages = sum(pages) + 3
    perm = torch.randperm(num_pages, generator=g)
    table = torch.zeros(B, max(pages), dtype=torch.int32)
    at = 0
    for b, n in enumerate(pages):
        table[b, :n] = perm[at:at + n]
        at += n
    k_cache = torch.randn(num_pages, page, Hkv, D, generator=g)
    v_cache = torch.randn(num_pages, page, Hkv, D, generator=g)
    q = torch.randn(B, Hq, Lq, D, generator=g)
    return q, k_cache, v_cache, table, torch.tensor(lens, dtype=torch.int32)


def _contiguous(cache, table, lens, b):
    page = cache.shape[1]
    n = -(-lens[b] // page)
    return cache[table[b, :n].long()].reshape(-1, cache.shape[2], cache.shape[3])[:lens[b]].transpose(0, 1)[None]


@pytest.mark.parametrize("page,Lq,spec", [(16, 1, sattn.Dense(causal=True)), (64, 1, sattn.Dense()),
                                          (16, 5, sattn.SlidingWindow(window=20, causal=True)),
                                          (16, 3, sattn.BlockTopK(block=16, keep=0.5, causal=True))])
def test_paged_matches_contiguous_bit_for_bit(page, Lq, spec):
    lens = [37, 130, 16]
    q, kc, vc, table, seq = _paged(3, lens, page, 8, 2, 32, Lq, seed=page + Lq)
    out = sattn.paged_attention(q, kc, vc, table, seq, spec, page_size=page, backend="cpu", tile=page)
    workspace = {}
    for _ in range(2):   # the second call gathers into the first call's buffers
        again = sattn.paged_attention(q, kc, vc, table, seq, spec, page_size=page, backend="cpu", tile=page,
                                      workspace=workspace)
        assert torch.equal(again, out)
    assert set(workspace) == {"k", "v"}
    for b in range(3):
        k, v = _contiguous(kc, table, lens, b), _contiguous(vc, table, lens, b)
        want = sattn.sparse_attention(q[b:b + 1], k, v, spec, backend="cpu", tile=page, threads=1)
        # Bit for bit when the sequence's query rows keep their block alignment (decode always);
        # otherwise its rows share a block with masked tiles of a neighbouring row block, which
        # changes the online softmax's rounding only.
        aligned = Lq == 1 or (max(-(-n // page) * page for n in lens) - lens[b]) % page == 0
        if aligned:
            assert torch.equal(out[b:b + 1], want), (b, (out[b:b + 1] - want).abs().max())
        else:
            assert (out[b:b + 1] - want).abs().max() < 1e-6
        ref = sattn.sparse_attention(q[b:b + 1].double(), k.double(), v.double(), spec, backend="reference")
        assert (out[b:b + 1].double() - ref).abs().max() < 2e-5


def test_paged_errors():
    q, kc, vc, table, seq = _paged(2, [20, 9], 16, 4, 2, 8, 1, seed=0)
    with pytest.raises(ValueError, match="page_size"):
        sattn.paged_attention(q, kc, vc, table, seq, sattn.Dense(), page_size=32)
    bad = table.clone()
    bad[0, 1] = kc.shape[0]
    with pytest.raises(ValueError, match=r"block_table: entry \[0, 1\]"):
        sattn.paged_attention(q, kc, vc, bad, seq, sattn.Dense())
    with pytest.raises(ValueError, match="seq_lens: sequence 1"):
        sattn.paged_attention(q.expand(2, 4, 10, 8), kc, vc, table, seq, sattn.Dense())


def test_doc_examples_run():
    """docs/varlen.md's python blocks, in order, in one namespace."""
    path = os.path.join(os.environ.get("TEST_SRCDIR", ""), "sattn", "docs", "varlen.md")
    if not os.path.exists(path):   # run from a source checkout
        path = os.path.join(os.path.dirname(__file__), "..", "docs", "varlen.md")
    with open(path) as f:
        code = re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)
    assert code
    namespace = {"__name__": "__doc_example__"}
    for i, block in enumerate(code):
        exec(compile(block, f"docs/varlen.md#block{i}", "exec"), namespace)
