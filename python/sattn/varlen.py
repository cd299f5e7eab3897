"""Packed batches of documents (varlen) and paged KV caches, through one BlockPlan (docs/varlen.md).

Both calls plan every document with the shared planner (sattn.plan, so every spec means the same
as in sparse_attention) and place the document plans into one plan over a combined layout:

- keys: each document's keys start on a block boundary (padded with zero keys to a multiple of
  the block), so a document's key block c is one key block of the combined plan;
- queries: varlen places each document's queries at the offset within a block that its first
  query position has in the document (zero rows between documents), so its plan rows are whole
  combined rows; paged keeps (B, Hq, Lq, D), where a sequence's rows can sit at another offset
  within the block, so its plan rows are re-tiled onto the combined rows.

Per-pair bitmaps carry the document edges and diagonals.

Nothing is visible across documents: an entry of the combined plan only ever holds pairs of one
document. The combined plan runs through sparse_attention's plan= path, so the forward and the
backward (autograd through the host op, or the Triton op) are the backends' own.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from sattn import specs as S
from sattn.plan import BlockPlan, check_tile, plan as doc_plan


# ---- argument checks ----------------------------------------------------------------------------

def _check_cu(name: str, cu, total: int) -> np.ndarray:
    """cu_seqlens as int64 numpy: 1-D int32/int64, starts at 0, non-decreasing, ends at `total`."""
    import torch
    if isinstance(cu, torch.Tensor):
        if cu.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name}: expected an int32 or int64 tensor, got {cu.dtype}")
        a = cu.detach().cpu().numpy()
    elif isinstance(cu, np.ndarray):
        if cu.dtype not in (np.int32, np.int64):
            raise TypeError(f"{name}: expected an int32 or int64 array, got {cu.dtype}")
        a = cu
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray of int32/int64, got {type(cu).__name__}")
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name}: expected a 1-D array of n_documents + 1 offsets (at least 2), got shape {a.shape}")
    a = a.astype(np.int64)
    if a[0] != 0:
        raise ValueError(f"{name}: expected offsets starting at 0, got {int(a[0])}")
    steps = np.diff(a)
    if (steps < 0).any():
        d = int(np.argmax(steps < 0))
        raise ValueError(f"{name}: expected non-decreasing offsets, got {int(a[d])} then {int(a[d + 1])} "
                         f"(document {d})")
    if a[-1] != total:
        raise ValueError(f"{name}: expected the last offset to be the packed length {total}, got {int(a[-1])}")
    return a


def _check_max(name: str, value, lengths: np.ndarray, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer or None, got {type(value).__name__}")
    longest = int(lengths.max()) if lengths.size else 0
    if longest > value:
        d = int(np.argmax(lengths))
        raise ValueError(f"{name}: document {d} has {longest} {what}, more than {name}={value}")


def _check_packed(name: str, x, what: str):
    import torch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor {what}, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{name}: expected rank 3 {what}, got shape {tuple(x.shape)}")


def _plan_block(spec, tile) -> int:
    from sattn import custom
    return custom.spec_block(spec) or check_tile(tile)


def _check_doc_lengths(arg: str, lq: np.ndarray, lk: np.ndarray, spec, block: int) -> None:
    """Lq <= Lk per document; a document with queries has at least the spec's own block of keys."""
    from sattn import custom
    bad = np.nonzero(lq > lk)[0]
    if bad.size:
        d = int(bad[0])
        raise ValueError(f"{arg}: document {d} has {int(lq[d])} queries but {int(lk[d])} keys; each document "
                         f"needs Lq <= Lk (queries are its last Lq positions)")
    own = custom.spec_block(spec)
    short = np.nonzero((lq > 0) & (lk < (own or 0)))[0]
    if short.size:
        d = int(short[0])
        raise ValueError(f"{arg}: document {d} has {int(lk[d])} keys, fewer than the spec's block {own} "
                         f"(a document's blocks would be empty)")


# ---- re-tiling document plans onto one combined plan --------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Doc:
    """One document in the combined layout: batch row `b`, query position shift `delta` (combined
    position = document position + delta) and key block shift `kappa` (in blocks)."""

    plan: BlockPlan
    b: int
    delta: int
    kappa: int
    Lq: int
    Lk: int


def _col_words(n_valid: np.ndarray, words: int) -> np.ndarray:
    """(n, words) uint64 with the low `n_valid` bits of each row set."""
    bits = np.clip(n_valid[:, None] - 64 * np.arange(words)[None, :], 0, 64).astype(np.uint64)
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    return np.where(bits == 64, full, (np.uint64(1) << np.minimum(bits, np.uint64(63))) - np.uint64(1))


def _rect(row_lo, row_hi, n_cols, block, words) -> np.ndarray:
    """(n, block, words) bitmaps: rows [row_lo, row_hi) x the first n_cols keys."""
    rows = np.arange(block)[None, :]
    valid = (rows >= row_lo[:, None]) & (rows < row_hi[:, None])
    return np.where(valid[:, :, None], _col_words(n_cols, words)[:, None, :], np.uint64(0))


def _doc_tiles(doc: _Doc):
    """The document plan's entries as (head, query block, key block, bitmap) in its own positions,
    every entry with an explicit bitmap of its visible pairs."""
    p = doc.plan
    blk, w = p.block, p.words_per_row
    counts = np.diff(p.row_ptr.astype(np.int64))
    row = np.repeat(np.arange(counts.size), counts)
    h = row // p.n_q_blocks
    a = row % p.n_q_blocks + p.q_block_begin
    c = p.col_idx.astype(np.int64)
    m = p.mask_idx.astype(np.int64)
    bits = np.empty((c.size, blk, w), np.uint64)
    has = m >= 0
    if has.any():
        bits[has] = p.bitmaps.reshape(-1, blk, w)[m[has]]
    full = ~has
    if full.any():
        lo = np.clip(doc.Lk - doc.Lq - a[full] * blk, 0, blk)
        hi = np.clip(doc.Lk - a[full] * blk, 0, blk)
        bits[full] = _rect(lo, hi, np.clip(doc.Lk - c[full] * blk, 0, blk), blk, w)
    return h, a, c, bits


def _shifted(doc: _Doc, h, a, c, bits):
    """The tiles moved to the combined layout: rows shift by delta (a tile splits over two combined
    query blocks when delta is not a multiple of the block), keys by kappa blocks."""
    blk = doc.plan.block
    qb, sigma = divmod(doc.delta, blk)
    c = c + doc.kappa
    if sigma == 0:
        return h, a + qb, c, bits
    upper = np.zeros_like(bits)
    upper[:, sigma:] = bits[:, :blk - sigma]
    lower = np.zeros_like(bits)
    lower[:, :sigma] = bits[:, blk - sigma:]
    return (np.concatenate([h, h]), np.concatenate([a + qb, a + qb + 1]), np.concatenate([c, c]),
            np.concatenate([upper, lower]))


def combine(docs, *, block: int, B: int, Hq: int, Lq: int, Lk: int) -> BlockPlan:
    """One BlockPlan for (B, Hq, Lq, Lk) holding every document's plan at its place (`_Doc`)."""
    words = -(-block // 64)
    n_k_blocks = -(-Lk // block)
    qbb = (Lk - Lq) // block
    nqb = n_k_blocks - qbb
    plan_h = max([d.plan.plan_h for d in docs], default=1)
    plan_b = 1 if B == 1 else B
    parts = []
    for doc in docs:
        h, a, c, bits = _shifted(doc, *_doc_tiles(doc))
        if doc.plan.plan_h < plan_h:   # a head-independent document plan in a per-head combined plan
            n = h.size
            h = np.repeat(np.arange(plan_h), n)
            a, c, bits = np.tile(a, plan_h), np.tile(c, plan_h), np.tile(bits, (plan_h, 1, 1))
        keep = bits.reshape(bits.shape[0], -1).any(axis=1) & (a >= qbb) & (a < n_k_blocks)
        row = ((doc.b if plan_b > 1 else 0) * plan_h + h[keep]) * nqb + (a[keep] - qbb)
        parts.append((row, c[keep], bits[keep]))
    if parts:
        row, col, bits = (np.concatenate(x) for x in zip(*parts))
    else:
        row, col, bits = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, block, words), np.uint64)
    order = np.lexsort((col, row))
    row, col, bits = row[order], col[order], bits[order]
    if row.size:   # one combined entry can receive two document tiles (a split row): OR them
        key = row * n_k_blocks + col
        starts = np.concatenate([[0], np.nonzero(np.diff(key))[0] + 1])
        if starts.size < key.size:
            bits = np.bitwise_or.reduceat(bits, starts, axis=0)
            row, col = row[starts], col[starts]
    # Entries whose bitmap covers every in-range pair of their block need no bitmap.
    a = row % nqb + qbb
    lo = np.clip(Lk - Lq - a * block, 0, block)
    hi = np.clip(Lk - a * block, 0, block)
    whole = _rect(lo, hi, np.clip(Lk - col * block, 0, block), block, words)
    is_full = (bits == whole).reshape(bits.shape[0], -1).all(axis=1)
    mask_idx = np.full(row.size, -1, np.int64)
    flat = bits[~is_full].reshape(-1, block * words)
    if flat.shape[0]:
        uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
        mask_idx[~is_full] = inverse.reshape(-1)
    else:
        uniq = np.zeros((0, block * words), np.uint64)
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=plan_b * plan_h * nqb))])
    return BlockPlan(block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk, plan_b=plan_b, plan_h=plan_h, q_block_begin=qbb,
                     n_q_blocks=nqb, n_k_blocks=n_k_blocks, words_per_row=words, row_ptr=row_ptr,
                     col_idx=col, mask_idx=mask_idx, bitmaps=uniq.reshape(-1))


def _doc_plans(spec, docs_qk, block, tile, scale):
    """sattn.plan per document; a data-independent spec's plans are shared by documents of one
    shape. `docs_qk` yields (q view (1,Hq,Lq,D), k view (1,Hkv,Lk,D)) per document."""
    from sattn import custom
    dynamic = custom.is_dynamic(spec)
    cache = {}
    out = []
    for qd, kd in docs_qk:
        key = (qd.shape[2], kd.shape[2])
        if dynamic or key not in cache:
            cache[key] = doc_plan(spec, qd.detach(), kd.detach(), tile=tile, scale=scale)
        out.append(cache[key])
    return out


# ---- running a combined plan --------------------------------------------------------------------

def _run(q4, k4, v4, spec, plan: BlockPlan, backend: str, scale, return_lse: bool):
    """sparse_attention over the combined plan. The Triton kernels read the plan's bitmaps (not a
    spec's token rule): the plan alone says what is visible."""
    from sattn import api
    on_gpu = backend == "triton" or (backend == "auto" and q4.device.type == "cuda")
    if on_gpu:
        from sattn.backends import triton as tb
        gp = tb._import_kernels().P.from_host(plan, q4.device, bitmap_masks=True)
        return api.sparse_attention(q4, k4, v4, S.Dense(), backend=backend, scale=scale, return_lse=return_lse,
                                    plan=gp)
    return api.sparse_attention(q4, k4, v4, spec, backend=backend, scale=scale, return_lse=return_lse, plan=plan)


def _resolved_scale(scale, D):
    from sattn import _inputs
    return _inputs.resolve_scale(scale, D)


def varlen_plan(spec, q, k, cu_seqlens_q, cu_seqlens_k, *, tile: int = 64, scale=None):
    """(plan, layout) of a varlen call: the combined BlockPlan and where each document's keys go
    (`VarlenLayout`). Build once and pass to varlen_attention(plan=...) to reuse across calls of
    the same documents (BlockTopK/TopKPerQuery keep their selection, as with sparse_attention)."""
    S.check_spec(spec)
    _check_packed("q", q, "(total_q, Hq, D)")
    _check_packed("k", k, "(total_k, Hkv, D)")
    cq = _check_cu("cu_seqlens_q", cu_seqlens_q, q.shape[0])
    ck = _check_cu("cu_seqlens_k", cu_seqlens_k, k.shape[0])
    if cq.size != ck.size:
        raise ValueError(f"cu_seqlens_k: expected {cq.size - 1} documents like cu_seqlens_q, got {ck.size - 1}")
    block = _plan_block(spec, tile)
    lq, lk = np.diff(cq), np.diff(ck)
    _check_doc_lengths("cu_seqlens_k", lq, lk, spec, block)
    scale = _resolved_scale(scale, q.shape[-1])
    used = lq > 0
    padded = np.where(used, -(-lk // block) * block, 0)
    koff = np.concatenate([[0], np.cumsum(padded)])
    TK = int(koff[-1])
    # Queries: each document's rows start at its own offset within a block (its first query
    # position mod block), so its plan rows map onto whole combined rows (no tile splits).
    qoff = np.zeros(lq.size, np.int64)
    end = 0
    for d in np.nonzero(used)[0]:
        qoff[d] = end + (int(lk[d] - lq[d]) - end) % block
        end = int(qoff[d] + lq[d])
    TQ = -(-end // block) * block
    docs_qk = [(q[cq[d]:cq[d + 1]].transpose(0, 1).unsqueeze(0), k[ck[d]:ck[d + 1]].transpose(0, 1).unsqueeze(0))
               for d in np.nonzero(used)[0]]
    plans = _doc_plans(spec, docs_qk, block, tile, scale)
    docs = [_Doc(plan=p, b=0, delta=int(TK - TQ + qoff[d] - (lk[d] - lq[d])), kappa=int(koff[d] // block),
                 Lq=int(lq[d]), Lk=int(lk[d]))
            for p, d in zip(plans, np.nonzero(used)[0])]
    plan = combine(docs, block=block, B=1, Hq=q.shape[1], Lq=TQ, Lk=max(TK, 1))
    # Key token t of a document with queries goes to padded position t - cu_k[d] + koff[d].
    doc_of = np.repeat(np.arange(lk.size), lk)
    src = np.nonzero(used[doc_of])[0]
    dst = src - ck[doc_of[src]] + koff[doc_of[src]]
    q_doc = np.repeat(np.arange(lq.size), lq)
    q_dst = np.arange(q.shape[0]) - cq[q_doc] + qoff[q_doc]
    return plan, VarlenLayout(src=src, dst=dst, padded_len=max(TK, 1), q_dst=q_dst, q_len=TQ)


@dataclasses.dataclass(frozen=True)
class VarlenLayout:
    """Where the packed tokens go in the combined plan's layout: key `src[i]` to key position
    `dst[i]` of `padded_len`, query `i` to query row `q_dst[i]` of `q_len` (zeros elsewhere)."""

    src: np.ndarray
    dst: np.ndarray
    padded_len: int
    q_dst: np.ndarray
    q_len: int

    def place(self, x):
        """(total_k, H, D) -> contiguous (1, H, padded_len, D), differentiable: one zeroed buffer
        and one index_copy_ of the used keys, transposed on the way (the layout the kernels read)."""
        import torch
        src = torch.from_numpy(self.src).to(x.device)
        dst = torch.from_numpy(self.dst).to(x.device)
        out = x.new_zeros((x.shape[1], self.padded_len, x.shape[2]))
        used = x if self.src.size == x.shape[0] else x.index_select(0, src)
        out.index_copy_(1, dst, used.transpose(0, 1))
        return out.unsqueeze(0)

    def place_queries(self, q):
        """(total_q, Hq, D) -> contiguous (1, Hq, q_len, D), differentiable."""
        import torch
        out = q.new_zeros((q.shape[1], self.q_len, q.shape[2]))
        out.index_copy_(1, torch.from_numpy(self.q_dst).to(q.device), q.transpose(0, 1))
        return out.unsqueeze(0)

    def take_rows(self, out4, lse4):
        """The combined call's (1, Hq, q_len, D) output and (1, Hq, q_len) lse back at the packed
        queries: (total_q, Hq, D) contiguous and (Hq, total_q)."""
        import torch
        rows = torch.from_numpy(self.q_dst).to(out4.device)
        out = out4[0].transpose(0, 1).index_select(0, rows)
        return out, None if lse4 is None else lse4[0].index_select(1, rows)


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, spec, *, max_seqlen_q=None, max_seqlen_k=None,
                     backend: str = "auto", scale=None, return_lse: bool = False, tile: int = 64, plan=None):
    """Attention over packed documents, each with `spec`'s mask inside it and nothing across.

    q (total_q, Hq, D), k and v (total_k, Hkv, D) torch tensors, as FlashAttention's varlen API:
    document d holds queries cu_seqlens_q[d]:cu_seqlens_q[d+1] and keys cu_seqlens_k[d]:...[d+1]
    (int32/int64, starting at 0, non-decreasing, ending at the packed length; the same number of
    documents). Per document the contract holds as for sparse_attention: Lq <= Lk, and the
    queries are the document's last Lq positions (a document may have no queries; its keys are
    then unused). max_seqlen_q/max_seqlen_k, when given, are checked as upper bounds.

    Returns out (total_q, Hq, D) with q's dtype, plus lse (Hq, total_q) float32 when return_lse.
    Differentiable in q, k, v on every backend with a backward ('auto', 'cpu', 'reference',
    'triton'). plan= takes the (plan, layout) of varlen_plan() for the same documents and shapes.
    Every error is raised before any work, naming the argument (TypeError / ValueError).
    """
    _check_packed("v", v, "(total_k, Hkv, D)")
    if tuple(v.shape) != tuple(k.shape):
        raise ValueError(f"v: expected k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
    if plan is None:
        if q.shape[0] == 0:   # no queries at all: check the call, nothing to plan
            S.check_spec(spec)
            _check_packed("q", q, "(total_q, Hq, D)")
            _check_packed("k", k, "(total_k, Hkv, D)")
            _check_cu("cu_seqlens_k", cu_seqlens_k, k.shape[0])
            layout = None
        else:
            plan, layout = varlen_plan(spec, q, k, cu_seqlens_q, cu_seqlens_k, tile=tile, scale=scale)
    else:
        if not (isinstance(plan, tuple) and len(plan) == 2 and isinstance(plan[0], BlockPlan)
                and isinstance(plan[1], VarlenLayout)):
            raise TypeError("plan: expected the (plan, layout) pair of sattn.varlen_plan(...)")
        plan, layout = plan
        if layout.q_dst.size != q.shape[0] or plan.Hq != q.shape[1] or layout.src.size > k.shape[0]:
            raise ValueError(f"plan: built for total_q={plan.Lq}, Hq={plan.Hq}; got q of shape {tuple(q.shape)}")
    lq = np.diff(_check_cu("cu_seqlens_q", cu_seqlens_q, q.shape[0]))
    lk = np.diff(_check_cu("cu_seqlens_k", cu_seqlens_k, k.shape[0]))
    _check_max("max_seqlen_q", max_seqlen_q, lq, "queries")
    _check_max("max_seqlen_k", max_seqlen_k, lk, "keys")
    if q.shape[0] == 0:
        out = q.new_zeros(q.shape)
        if return_lse:
            import torch
            return out, torch.full((q.shape[1], 0), float("-inf"), dtype=torch.float32, device=q.device)
        return out
    res = _run(layout.place_queries(q), layout.place(k), layout.place(v), spec, plan, backend, scale, return_lse)
    out, lse = layout.take_rows(*(res if return_lse else (res, None)))
    return (out, lse) if return_lse else out


# ---- paged KV cache -----------------------------------------------------------------------------

def _check_paged(q, k_cache, v_cache, block_table, seq_lens, page_size):
    import torch
    for name, x, what in (("q", q, "(B, Hq, Lq, D)"), ("k_cache", k_cache, "(num_pages, page_size, Hkv, D)"),
                          ("v_cache", v_cache, "(num_pages, page_size, Hkv, D)")):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor {what}, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name}: expected rank 4 {what}, got shape {tuple(x.shape)}")
    if tuple(v_cache.shape) != tuple(k_cache.shape):
        raise ValueError(f"v_cache: expected k_cache's shape {tuple(k_cache.shape)}, got {tuple(v_cache.shape)}")
    num_pages, page, _, D = k_cache.shape
    if page_size is not None and page_size != page:
        raise ValueError(f"page_size: {page_size} does not match k_cache's page size {page} (dimension 1)")
    if D != q.shape[3]:
        raise ValueError(f"k_cache: head_dim {D} does not match q's {q.shape[3]}")
    B, Lq = q.shape[0], q.shape[2]
    if not isinstance(block_table, torch.Tensor) or block_table.dtype not in (torch.int32, torch.int64) \
            or block_table.ndim != 2 or block_table.shape[0] != B:
        raise TypeError(f"block_table: expected an int32/int64 tensor (B={B}, max_pages)")
    if not isinstance(seq_lens, torch.Tensor) or seq_lens.dtype not in (torch.int32, torch.int64) \
            or tuple(seq_lens.shape) != (B,):
        raise TypeError(f"seq_lens: expected an int32/int64 tensor of shape ({B},)")
    lens = seq_lens.detach().cpu().numpy().astype(np.int64)
    if (lens < Lq).any():
        b = int(np.argmax(lens < Lq))
        raise ValueError(f"seq_lens: sequence {b} has {int(lens[b])} keys, fewer than q's Lq={Lq} "
                         f"(queries are each sequence's last Lq positions)")
    pages = -(-lens // page)
    if (pages > block_table.shape[1]).any():
        b = int(np.argmax(pages > block_table.shape[1]))
        raise ValueError(f"block_table: sequence {b} needs {int(pages[b])} pages of {page}, the table has "
                         f"{block_table.shape[1]}")
    table = block_table.detach().cpu().numpy().astype(np.int64)
    used = np.arange(table.shape[1])[None, :] < pages[:, None]
    if ((table < 0) | (table >= num_pages))[used].any():
        b, j = (int(x[0]) for x in np.nonzero(used & ((table < 0) | (table >= num_pages))))
        raise ValueError(f"block_table: entry [{b}, {j}] = {int(table[b, j])} is not a page of k_cache "
                         f"(0 .. {num_pages - 1})")
    return lens, table, page


def paged_plan(spec, q, k_cache, block_table, seq_lens, *, page_size=None, tile=None, scale=None,
               workspace=None):
    """(plan, layout) of a paged call: the combined BlockPlan over (B, Hq, Lq, Lk) with Lk the
    longest sequence rounded up to the block, and the PagedLayout saying which cache rows fill it.
    Pass it to paged_attention(plan=...) to reuse across calls with the same table and lengths.
    `workspace` (a dict the caller keeps across calls, or None) holds the gather buffers."""
    S.check_spec(spec)
    lens, table, page = _check_paged(q, k_cache, k_cache, block_table, seq_lens, page_size)
    block = _plan_block(spec, page if tile is None else tile)
    B, Hq, Lq, _ = q.shape
    _check_doc_lengths("seq_lens", np.full(B, Lq), lens, spec, block)
    scale = _resolved_scale(scale, q.shape[-1])
    Lk = int(-(-int(lens.max()) // block) * block)
    j = np.arange(Lk)
    jp = np.minimum(j // page, table.shape[1] - 1)
    token = table[:, jp] * page + (j % page)[None, :]
    token = np.where(j[None, :] < lens[:, None], token, -1)
    import torch
    if workspace is not None and not isinstance(workspace, dict):
        raise TypeError(f"workspace: expected a dict kept across calls, or None, got {type(workspace).__name__}")
    layout = PagedLayout(token=token, lens=lens, page=page, buffers={} if workspace is None else workspace)
    kd_all = _gather(k_cache, layout) if _needs_values(spec) else None
    docs_qk = []
    for b in range(B):
        kd = kd_all[b:b + 1, :, :int(lens[b])] if kd_all is not None else \
            torch.zeros((), dtype=q.dtype).expand(1, k_cache.shape[2], int(lens[b]), k_cache.shape[3])
        qd = q[b:b + 1] if kd_all is not None else torch.zeros((), dtype=q.dtype).expand(1, Hq, Lq, q.shape[3])
        docs_qk.append((qd, kd))
    plans = _doc_plans(spec, docs_qk, block, block if tile is None else tile, scale)
    docs = [_Doc(plan=p, b=b, delta=int(Lk - lens[b]), kappa=0, Lq=Lq, Lk=int(lens[b]))
            for b, p in enumerate(plans)]
    return combine(docs, block=block, B=B, Hq=Hq, Lq=Lq, Lk=Lk), layout


def _needs_values(spec) -> bool:
    from sattn import custom
    return custom.is_dynamic(spec)


@dataclasses.dataclass(frozen=True, eq=False)
class PagedLayout:
    """Where a paged call's keys come from: `token` (B, Lk) rows of the flattened cache, -1 past
    each sequence's end; `lens` (B,) the sequences' key counts; `page` the page size; `buffers`
    the gather buffers of calls that need no gradient (the caller's workspace dict, if given), so
    a reused plan or workspace allocates nothing."""

    token: np.ndarray
    lens: np.ndarray
    page: int
    buffers: dict = dataclasses.field(default_factory=dict, repr=False)


def _gather(cache, layout: PagedLayout, name: str = "k"):
    """(B, Hkv, Lk, D) contiguous keys from the paged cache, zero past each sequence's end. When
    Lk is a whole number of pages (the plan block a multiple of the page size) the pages are
    gathered whole: one index_select of page rows, then one transposing copy. Without a gradient
    to track, both land in buffers kept by `layout` (fresh large allocations cost page faults)."""
    import torch
    num_pages, page, H, D = cache.shape
    B, Lk = layout.token.shape
    reuse = not (torch.is_grad_enabled() and cache.requires_grad)
    shape = (B, H, Lk, D)
    bufs = layout.buffers.get(name) if reuse else None
    if bufs is None or tuple(bufs[1].shape) != shape or bufs[1].dtype != cache.dtype \
            or bufs[1].device != cache.device:
        bufs = (cache.new_empty((B * Lk, H, D)), cache.new_empty(shape))
        if reuse:
            layout.buffers[name] = bufs
    rows, out = bufs
    if Lk % page == 0:
        first = layout.token[:, ::page]
        pages = torch.from_numpy(np.where(first < 0, 0, first // page).reshape(-1)).to(cache.device)
        if reuse:
            torch.index_select(cache, 0, pages, out=rows.view(-1, page, H, D))
        else:
            rows = cache.index_select(0, pages)
    else:
        t = torch.from_numpy(np.maximum(layout.token, 0).reshape(-1)).to(cache.device)
        flat = cache.reshape(num_pages * page, H, D)
        rows = torch.index_select(flat, 0, t, out=rows) if reuse else flat.index_select(0, t)
    rows = rows.reshape(B, Lk, H, D).transpose(1, 2)
    out = out.copy_(rows) if reuse else rows.contiguous()
    for b in np.nonzero(layout.lens < Lk)[0]:   # the ragged tails only
        out[int(b), :, int(layout.lens[b]):] = 0
    return out


def paged_attention(q, k_cache, v_cache, block_table, seq_lens, spec, *, page_size=None, backend: str = "auto",
                    scale=None, return_lse: bool = False, tile=None, plan=None, workspace=None):
    """Attention of q against a paged KV cache: decode (Lq = 1) and chunked prefill (Lq > 1).

    q (B, Hq, Lq, D): the last Lq positions of each sequence; k_cache, v_cache (num_pages,
    page_size, Hkv, D); block_table (B, max_pages) int32/int64: page j of sequence b is
    k_cache[block_table[b, j]]; seq_lens (B,): keys of each sequence (>= Lq; ragged is fine).
    page_size, when given, must equal k_cache.shape[1]. The plan block is the spec's own block or
    `tile` (default: page_size). Returns out (B, Hq, Lq, D), plus lse (B, Hq, Lq) float32 when
    return_lse. plan= takes the (plan, layout) pair of paged_plan() to reuse it. workspace= (a
    dict kept by the caller across decode steps) keeps the gather buffers between calls without
    a gradient: one K and one V copy of (B, Hkv, Lk, D), replaced when that shape changes.

    The kernels do not index pages themselves: before the kernel call the used pages are gathered
    into one (B, Hkv, Lk, D) key tensor and one value tensor (Lk = the longest sequence rounded up
    to the block): one index_select of whole pages (per token when the block is not a multiple of
    page_size) and one transposing copy, the tails past each sequence zeroed.
    """
    _check_paged(q, k_cache, v_cache, block_table, seq_lens, page_size)
    if plan is None:
        plan, layout = paged_plan(spec, q, k_cache, block_table, seq_lens, page_size=page_size, tile=tile,
                                 scale=scale, workspace=workspace)
    else:
        if not (isinstance(plan, tuple) and len(plan) == 2 and isinstance(plan[0], BlockPlan)
                and isinstance(plan[1], PagedLayout)):
            raise TypeError("plan: expected the (plan, layout) pair of sattn.paged_plan(...)")
        plan, layout = plan
        if (plan.B, plan.Hq, plan.Lq) != tuple(q.shape[:3]):
            raise ValueError(f"plan: built for (B, Hq, Lq)={(plan.B, plan.Hq, plan.Lq)}, got {tuple(q.shape[:3])}")
    return _run(q, _gather(k_cache, layout, "k"), _gather(v_cache, layout, "v"), spec, plan, backend, scale, return_lse)
