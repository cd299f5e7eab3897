"""Context-parallel sparse attention over torch.distributed (docs/distributed.md).

The sequence is sharded over the ranks of a process group. Every rank computes the block plan of
the whole sequence (from the shapes for the data-independent specs, from gathered q and k for the
value-dependent ones), takes the rows of its own query blocks, and fetches from each peer only the
key/value rows of the key blocks those rows reference, with point-to-point isend/irecv sized by
the plan. The part over local keys is computed while the peers' rows are in flight; partial
results merge by log-sum-exp. The backward returns each fetched row's dk/dv to its owner.

    out = sattn.distributed.context_parallel_attention(q_shard, k_shard, v_shard, spec)
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
from typing import Optional

import numpy as np

from sattn import _inputs
from sattn import specs as S
from sattn.errors import PeerFailure, ShardMismatch

__all__ = ["context_parallel_attention", "CommStats", "CommModel", "communication_model", "even_lengths",
           "shard_ranges", "positions", "shard", "unshard", "LAYOUTS"]

LAYOUTS = ("contiguous", "zigzag")
DEFAULT_TIMEOUT_S = 120.0
_FINGERPRINT_FIELDS = ("status", "q_len", "k_len", "v_len", "B", "Hq", "Hkv", "D", "dtype", "layout", "tile",
                       "scale", "spec")
_TAGS = {"kv": 23001, "grad": 23002}
_DTYPE_CODES = {"float32": 1, "float64": 2, "bfloat16": 3, "float16": 4}


# ---------------------------------------------------------------------------------------------
# Layouts: which global positions each rank holds.

def _check_layout(layout) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected 'contiguous' or 'zigzag', got {layout!r}")
    return layout


def even_lengths(seq_len: int, world_size: int, layout: str = "contiguous") -> list:
    """Shard lengths that split `seq_len` as evenly as the layout allows (zigzag: 2·world_size
    chunks, rank r holding chunks r and 2·world_size − 1 − r)."""
    _check_layout(layout)
    if layout == "contiguous":
        return [seq_len // world_size + (r < seq_len % world_size) for r in range(world_size)]
    n = 2 * world_size
    chunk = [seq_len // n + (i < seq_len % n) for i in range(n)]
    return [chunk[r] + chunk[n - 1 - r] for r in range(world_size)]


def shard_ranges(lengths, layout: str = "contiguous") -> list:
    """Per rank, the global [start, stop) ranges of its shard, in the order its rows hold them.
    Zigzag: rank r's first ceil(n_r / 2) rows are chunk r, the rest chunk 2N − 1 − r."""
    _check_layout(layout)
    lengths = [int(n) for n in lengths]
    if layout == "contiguous":
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        return [[(int(s), int(s) + n)] for s, n in zip(starts, lengths)]
    world = len(lengths)
    first = [(n + 1) // 2 for n in lengths]
    chunk_len = first + [lengths[r] - first[r] for r in reversed(range(world))]
    starts = np.concatenate([[0], np.cumsum(chunk_len)[:-1]]).astype(int)
    return [[(int(starts[r]), int(starts[r]) + first[r]),
             (int(starts[2 * world - 1 - r]), int(starts[2 * world - 1 - r]) + lengths[r] - first[r])]
            for r in range(world)]


def positions(lengths, rank: int, layout: str = "contiguous") -> np.ndarray:
    """Global positions (int64) of rank `rank`'s rows, in its local order (always ascending)."""
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in shard_ranges(lengths, layout)[rank]])


def shard(x, rank: int, world_size: int, layout: str = "contiguous", *, dim: int = 2, lengths=None):
    """Rank `rank`'s shard of the full-sequence tensor `x` (sequence along `dim`)."""
    lengths = even_lengths(x.shape[dim], world_size, layout) if lengths is None else list(lengths)
    if sum(lengths) != x.shape[dim] or len(lengths) != world_size:
        raise ValueError(f"lengths: expected {world_size} shard lengths summing to {x.shape[dim]}, got {lengths}")
    import torch
    idx = torch.from_numpy(positions(lengths, rank, layout)).to(x.device)
    return x.index_select(dim, idx)


def unshard(shards, layout: str = "contiguous", *, dim: int = 2):
    """The full-sequence tensor from every rank's shard (the inverse of shard)."""
    import torch
    lengths = [s.shape[dim] for s in shards]
    order = np.concatenate([positions(lengths, r, layout) for r in range(len(shards))])
    cat = torch.cat(list(shards), dim=dim)
    return cat.index_select(dim, torch.from_numpy(np.argsort(order, kind="stable")).to(cat.device))


# ---------------------------------------------------------------------------------------------
# The communication model: what each rank receives from each peer, from the plan.

def _block_owned_counts(ranges, blk: int, nkb: int) -> np.ndarray:
    """Rows of each key block that lie in `ranges`."""
    own = np.zeros(nkb, dtype=np.int64)
    for a, b in ranges:
        if b <= a:
            continue
        c0, c1 = a // blk, (b - 1) // blk
        cs = np.arange(c0, c1 + 1)
        own[cs] += np.minimum((cs + 1) * blk, b) - np.maximum(cs * blk, a)
    return own


def _rows_matrix(needs: np.ndarray, ranges_by_rank, blk: int) -> np.ndarray:
    """rows[r, s]: key/value rows rank r receives from rank s (0 on the diagonal)."""
    world, nkb = needs.shape
    own = np.stack([_block_owned_counts(ranges_by_rank[s], blk, nkb) for s in range(world)])  # (S, nkb)
    # float64 products are exact here (counts far below 2^53) and take the BLAS path
    rows = np.rint(needs.astype(np.float64) @ own.T.astype(np.float64)).astype(np.int64)
    np.fill_diagonal(rows, 0)
    return rows


@dataclasses.dataclass
class CommModel:
    """Bytes per rank predicted from the plan, by phase: "meta" (the fingerprint, and for
    value-dependent specs the gathered q and k), "kv" (forward key/value rows) and "grad"
    (backward dk/dv rows returned to their owners). Each a list indexed by rank. `ring` is what
    ring attention's forward receives per rank (every other shard's k and v)."""

    sent: dict
    recv: dict
    ring: list
    rows: np.ndarray  # rows[r, s]: key/value rows r receives from s

    def total_recv(self, rank: int, phases=("meta", "kv")) -> int:
        return int(sum(self.recv[p][rank] for p in phases))


def _model(needs, lengths, layout, blk, row_bytes, meta_chunk_bytes) -> CommModel:
    world = len(lengths)
    rows = _rows_matrix(needs, shard_ranges(lengths, layout), blk)
    kv_recv = (rows.sum(1) * row_bytes).tolist()
    kv_sent = (rows.sum(0) * row_bytes).tolist()
    meta = [(world - 1) * int(meta_chunk_bytes)] * world
    total = int(sum(lengths))
    ring = [(total - n) * row_bytes for n in lengths]
    return CommModel(sent={"meta": list(meta), "kv": kv_sent, "grad": list(kv_recv)},
                     recv={"meta": list(meta), "kv": kv_recv, "grad": list(kv_sent)}, ring=ring, rows=rows)


def _needs_of(plan, lengths, layout) -> np.ndarray:
    """(world, nkb) bool: the key blocks each rank's query rows reference in the global plan."""
    world = len(lengths)
    nkb = plan.n_k_blocks
    needs = np.zeros((world, nkb), dtype=bool)
    for r, ranges in enumerate(shard_ranges(lengths, layout)):
        _, cols, _ = _plan_rows(plan, _query_blocks(ranges, plan.block))
        needs[r, cols] = True
    return needs


def _selection_input(spec) -> str:
    """What a spec's selection needs from the peers: nothing ("shape"), the float64 sums of q and
    k over each block ("block_sums": BlockTopK with score="mean"), or q and k ("qk")."""
    from sattn import custom
    if not custom.is_dynamic(spec):
        return "shape"
    return "block_sums" if type(spec) is S.BlockTopK and spec.score == "mean" else "qk"


def _max_block_slots(lengths, layout, blk) -> int:
    return max(_query_blocks(r, blk).size for r in shard_ranges(lengths, layout))


def _meta_chunk_bytes(spec, lengths, layout, blk, B, Hq, Hkv, D, elt) -> int:
    """Bytes each rank contributes to the metadata all_gathers (sent to every peer)."""
    kind = _selection_input(spec)
    if kind == "qk":
        extra = max(lengths) * B * (Hq + Hkv) * D * elt
    elif kind == "block_sums":
        extra = _max_block_slots(lengths, layout, blk) * B * (Hq + Hkv) * D * 8
    else:
        extra = 0
    return 8 * len(_FINGERPRINT_FIELDS) + extra


def communication_model(spec, lengths, *, B: int = 1, Hq: int = 1, Hkv: int = 1, D: int = 64,
                        element_size: int = 4, layout: str = "contiguous", tile: int = 64, plan=None) -> CommModel:
    """The bytes context_parallel_attention moves per rank for shard `lengths`, without running it.
    Value-dependent specs (BlockTopK, TopKPerQuery) need `plan`: sattn.plan(spec, q, k) of the full
    sequence."""
    from sattn import custom
    lengths = [int(n) for n in lengths]
    L = sum(lengths)
    dynamic = custom.is_dynamic(spec)
    if plan is None:
        if dynamic:
            raise ValueError(f"plan: {spec} depends on the values of q and k; pass plan=sattn.plan(spec, q, k)")
        plan = _shape_plan(spec, B, Hq, Hkv, L, D, tile)
    needs = _needs_of(plan, lengths, _check_layout(layout))
    meta = _meta_chunk_bytes(spec, lengths, layout, plan.block, B, Hq, Hkv, D, element_size)
    return _model(needs, lengths, layout, plan.block, 2 * B * Hkv * D * element_size, meta)


# ---------------------------------------------------------------------------------------------
# Plans: the global plan, the rows of this rank's query blocks, and one sub-plan per KV source.

def _shape_plan(spec, B, Hq, Hkv, L, D, tile):
    """The global plan of a data-independent spec, from the shape alone (stride-0 inputs)."""
    import torch
    from sattn.plan import plan as build_plan
    z = torch.zeros(())
    return build_plan(spec, z.expand(B, Hq, L, D), z.expand(B, Hkv, L, D), tile=tile)


def _query_blocks(ranges, blk: int) -> np.ndarray:
    blocks = [np.arange(a // blk, (b - 1) // blk + 1) for a, b in ranges if b > a]
    return np.unique(np.concatenate(blocks)) if blocks else np.zeros(0, dtype=np.int64)


def _plan_rows(plan, qblocks: np.ndarray):
    """Entries of the plan rows of query blocks `qblocks` (for every plan batch and head):
    (local row index, key block, mask index), rows ordered (b', h', slot)."""
    nq = qblocks.size
    heads = plan.plan_b * plan.plan_h
    rows = (np.arange(heads)[:, None] * plan.n_q_blocks + (qblocks[None, :] - plan.q_block_begin)).reshape(-1)
    starts = plan.row_ptr[rows].astype(np.int64)
    counts = plan.row_ptr[rows + 1].astype(np.int64) - starts
    local_row = np.repeat(np.arange(heads * nq), counts)
    entry = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    return local_row, plan.col_idx[entry].astype(np.int64), plan.mask_idx[entry].astype(np.int64)


def _column_words(offsets: np.ndarray, blk: int, wpr: int) -> np.ndarray:
    bits = np.zeros(wpr * 64, dtype=bool)
    bits[offsets] = True
    return np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)


@dataclasses.dataclass
class _Step:
    source: int               # group rank that owns these keys
    key_rows: np.ndarray      # row in the step's key buffer of each received key (ascending positions)
    n_key_rows: int
    plan: object              # BlockPlan over (query slots, key slots)
    q_rows: Optional[np.ndarray] = None  # rows of the query slot buffer this step runs (None: all)


def _step_plans(plan, my_ranges, ranges_by_rank, needs_mine) -> tuple:
    """The query slot rows of this rank's rows and one _Step per source rank with needed keys."""
    from sattn.plan import BlockPlan
    blk, wpr = plan.block, plan.words_per_row
    qblocks = _query_blocks(my_ranges, blk)
    my_pos = np.concatenate([np.arange(a, b) for a, b in my_ranges])
    q_rows = np.searchsorted(qblocks, my_pos // blk) * blk + my_pos % blk
    local_row, cols, masks = _plan_rows(plan, qblocks)
    n_rows = plan.plan_b * plan.plan_h * qblocks.size
    base = plan.bitmaps.reshape(-1, blk, wpr) if plan.bitmaps.size else np.zeros((0, blk, wpr), np.uint64)
    ones = np.full((blk, wpr), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    steps = []
    for s, ranges in enumerate(ranges_by_rank):
        own = _block_owned_counts(ranges, blk, plan.n_k_blocks)
        kblocks = np.nonzero(needs_mine & (own > 0))[0]
        if kblocks.size == 0:
            continue
        slot = np.full(plan.n_k_blocks, -1, dtype=np.int64)
        slot[kblocks] = np.arange(kblocks.size)
        s_pos = np.concatenate([np.arange(a, b) for a, b in ranges if b > a])
        s_pos = s_pos[needs_mine[s_pos // blk]]
        key_rows = slot[s_pos // blk] * blk + s_pos % blk
        sel = own[cols] > 0
        e_row, e_col, e_mask = local_row[sel], cols[sel], masks[sel].copy()
        extra, extra_index, keep = [], {}, np.ones(e_col.size, dtype=bool)
        partial = np.nonzero(own[e_col] < blk)[0]
        colmask = {}
        for e in partial:
            c, m = int(e_col[e]), int(e_mask[e])
            if c not in colmask:
                offs = s_pos[s_pos // blk == c] - c * blk
                colmask[c] = _column_words(offs, blk, wpr)
            words = (ones if m < 0 else base[m]) & colmask[c][None, :]
            if not words.any():
                keep[e] = False
                continue
            key = words.tobytes()
            if key not in extra_index:
                extra_index[key] = base.shape[0] + len(extra)
                extra.append(words)
            e_mask[e] = extra_index[key]
        e_row, e_col, e_mask = e_row[keep], e_col[keep], e_mask[keep]
        # Only the query slots that see one of these keys run this step (a neighbour's window edge
        # touches a few); at least one, so that every fetched row gets its (zero) dk/dv back.
        nq = qblocks.size
        active = np.unique(e_row % nq) if e_row.size else np.zeros(1, dtype=np.int64)
        step_q_rows = None
        if active.size < nq:
            pos_in = np.full(nq, -1, dtype=np.int64)
            pos_in[active] = np.arange(active.size)
            e_row = (e_row // nq) * active.size + pos_in[e_row % nq]
            step_q_rows = (active[:, None] * blk + np.arange(blk)).reshape(-1)
        nq_step = active.size
        nkb_local = max(kblocks.size, nq_step)
        bitmaps = np.concatenate([base] + [w[None] for w in extra]).reshape(-1) if extra else plan.bitmaps
        row_ptr = np.concatenate([[0], np.cumsum(np.bincount(e_row, minlength=plan.plan_b * plan.plan_h * nq_step))])
        sub = BlockPlan(block=blk, B=plan.B, Hq=plan.Hq, Lq=nq_step * blk, Lk=nkb_local * blk,
                        plan_b=plan.plan_b, plan_h=plan.plan_h, q_block_begin=nkb_local - nq_step,
                        n_q_blocks=nq_step, n_k_blocks=nkb_local, words_per_row=wpr,
                        row_ptr=row_ptr, col_idx=slot[e_col], mask_idx=e_mask, bitmaps=bitmaps)
        steps.append(_Step(source=s, key_rows=key_rows, n_key_rows=nkb_local * blk, plan=sub, q_rows=step_q_rows))
    return q_rows, qblocks.size * blk, steps


# ---------------------------------------------------------------------------------------------
# Communication with bounded waits and byte counting.

class _Comm:
    def __init__(self, group, timeout_s: float):
        import torch.distributed as dist
        self.dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.sent = {"meta": 0, "kv": 0, "grad": 0}
        self.recv = {"meta": 0, "kv": 0, "grad": 0}

    def _global(self, r: int) -> int:
        return r if self.group is None else self.dist.get_global_rank(self.group, r)

    def wait(self, work, step: str, peer: Optional[int] = None):
        try:
            ok = work.wait(self.timeout)
        except Exception as e:  # gloo/NCCL report a dead peer or a timeout as RuntimeError
            raise PeerFailure(self.rank, step, peer, str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        if ok is False:
            raise PeerFailure(self.rank, step, peer, f"no answer within {self.timeout.total_seconds():g} s")

    def all_gather(self, t, step: str, phase: str = "meta"):
        import torch
        out = [torch.empty_like(t) for _ in range(self.world)]
        work = self._post(lambda: self.dist.all_gather(out, t.contiguous(), group=self.group, async_op=True), step)
        self.wait(work, step)
        nbytes = t.numel() * t.element_size() * (self.world - 1)
        self.sent[phase] += nbytes
        self.recv[phase] += nbytes
        return out

    def _post(self, start, step: str, peer: Optional[int] = None):
        """Starts an operation; a peer already gone fails here rather than in the wait."""
        try:
            return start()
        except Exception as e:
            raise PeerFailure(self.rank, step, peer, str(e).splitlines()[0] if str(e) else type(e).__name__) from e

    def batch(self, ops, step: str) -> list:
        """Posts ops, (kind "send"/"recv", tensor, peer, phase), as one batch_isend_irecv (NCCL
        needs a pair's sends and receives in one group); returns, per op, the works to wait on."""
        p2p = []
        for kind, t, peer, phase in ops:
            (self.sent if kind == "send" else self.recv)[phase] += t.numel() * t.element_size()
            fn = self.dist.isend if kind == "send" else self.dist.irecv
            p2p.append(self.dist.P2POp(fn, t, self._global(peer), group=self.group, tag=_TAGS[phase]))
        if not p2p:
            return []
        works = self._post(lambda: self.dist.batch_isend_irecv(p2p), step)
        if len(works) == len(p2p):
            return [[w] for w in works]
        return [works] * len(p2p)  # one work for the whole batch (NCCL coalescing)

    def wait_all(self, works, step: str, peer: int):
        for w in works:
            self.wait(w, step, peer)


# ---------------------------------------------------------------------------------------------
# Cross-rank checks before any exchange.

def _spec_digest(spec) -> int:
    h = hashlib.sha256()

    def feed(sp):
        h.update(type(sp).__name__.encode())
        if isinstance(sp, S.CONTRACT_SPECS):
            h.update(sp.trace_key.encode())
        elif isinstance(sp, S.FromMask):
            h.update(str(sp.mask.shape).encode() + np.packbits(sp.mask).tobytes())
        elif isinstance(sp, S.MaskFn):
            h.update((getattr(sp.fn, "__module__", "") + "." + S._fn_name(sp.fn) + sp.array).encode())
        elif isinstance(sp, S.FlexBlockMask):
            h.update(repr(sp).encode())
            for part in (sp.partial, sp.full):
                if part is not None:
                    h.update(part[0].tobytes() + part[1].tobytes())
        elif isinstance(sp, S._Combination):
            h.update(sp._op.encode())
            for p in sp.parts:
                feed(p)
        elif isinstance(sp, S.PerHead):
            for p in sp.specs:
                feed(p)
    feed(spec)
    return int.from_bytes(h.digest()[:7], "little")


def _fingerprint(q, k, v, spec, scale, layout, tile, status: int):
    import torch
    vals = [status, q.shape[2], k.shape[2], v.shape[2], q.shape[0], q.shape[1], k.shape[1], q.shape[3],
            _DTYPE_CODES.get(str(q.dtype).replace("torch.", ""), 0), LAYOUTS.index(layout), tile,
            int(np.float64(scale).view(np.int64)), _spec_digest(spec)]
    return torch.tensor(vals, dtype=torch.int64)


def _check_fingerprints(prints, rank: int) -> list:
    """Shard lengths per rank, or ShardMismatch naming the first field and ranks that disagree."""
    table = np.stack([p.cpu().numpy() for p in prints])
    bad = np.nonzero(table[:, 0] != 0)[0]
    if bad.size:
        raise ShardMismatch(rank, "fingerprint", f"rank {int(bad[0])} rejected its own inputs before the exchange")
    for r in range(table.shape[0]):
        if not table[r, 1] == table[r, 2] == table[r, 3]:
            raise ShardMismatch(rank, "fingerprint", f"rank {r}: q, k and v shards need one length, got "
                                f"{int(table[r, 1])}, {int(table[r, 2])}, {int(table[r, 3])}")
    for j, name in enumerate(_FINGERPRINT_FIELDS[4:], start=4):
        diff = np.nonzero(table[:, j] != table[0, j])[0]
        if diff.size:
            shown = "spec digest" if name == "spec" else name
            raise ShardMismatch(rank, "fingerprint", f"{shown} differs across ranks: rank 0 has "
                                f"{int(table[0, j])}, rank {int(diff[0])} has {int(table[diff[0], j])}")
    return [int(n) for n in table[:, 1]]


# ---------------------------------------------------------------------------------------------
# The forward and backward of one call.

def _merge(outs, lses):
    """Log-sum-exp merge of partial attention results over disjoint key sets."""
    import torch
    if len(outs) == 1:
        return outs[0].float(), lses[0]
    stack = torch.stack(lses)
    m = stack.amax(0)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    w = torch.exp(stack - m)
    total = w.sum(0)
    nonzero = total != 0
    safe = torch.where(nonzero, total, torch.ones_like(total))
    lse = torch.where(nonzero, m + torch.log(safe), torch.full_like(m, -math.inf))
    out = sum((w[i] / safe)[..., None] * outs[i].float() for i in range(len(outs)))
    return out, lse


def torch_arange(n):
    import torch
    return torch.arange(n)


class _Run:
    """One call's exchange schedule, its sub-graphs for the backward, and its byte counts."""

    def __init__(self, comm, steps, q_rows, lq_slots, needs, lengths, layout, scale, backend, threads, grad):
        import torch
        self.comm, self.steps, self.lq_slots = comm, steps, lq_slots
        self.q_rows = torch.from_numpy(q_rows)
        self.needs, self.lengths, self.layout = needs, lengths, layout
        self.scale, self.backend, self.threads, self.grad = scale, backend, threads, grad
        self.my_pos = positions(lengths, comm.rank, layout)

    def _send_rows(self, peer: int, blk: int) -> "torch.Tensor":
        import torch
        return torch.from_numpy(np.nonzero(self.needs[peer][self.my_pos // blk])[0])

    def _attend(self, qs, ks, vs, plan):
        from sattn.api import sparse_attention
        opts = {} if self.threads is None else {"threads": self.threads}
        return sparse_attention(qs, ks, vs, S.Dense(), plan=plan, scale=self.scale, backend=self.backend,
                                return_lse=True, **opts)

    def _step(self, qs, ks, vs, st):
        """One step's (out, lse) over every query slot row (rows it does not run: 0 and -inf)."""
        import torch
        if st.q_rows is None:
            return tuple(self._attend(qs, ks, vs, st.plan))
        idx = torch.from_numpy(st.q_rows).to(qs.device)
        o, lse = self._attend(qs.index_select(2, idx), ks, vs, st.plan)
        n = qs.shape[2]
        out = o.new_zeros(o.shape[:2] + (n,) + o.shape[3:]).index_copy(2, idx, o)
        return out, lse.new_full(lse.shape[:2] + (n,), -math.inf).index_copy(2, idx, lse)

    @staticmethod
    def _slots(x, rows, n):
        """x's rows placed at `rows` of a zero buffer of n rows; x itself when that is the same."""
        if n == x.shape[2] and bool((rows == torch_arange(n)).all()):
            return x
        return x.new_zeros(x.shape[:2] + (n,) + x.shape[3:]).index_copy(2, rows.to(x.device), x)

    def forward(self, q, k, v):
        import torch
        comm, blk = self.comm, self.steps[0].plan.block if self.steps else 1
        me = comm.rank
        B, Hkv, D = k.shape[0], k.shape[1], k.shape[3]
        ops, recvs, sends = [], {}, []
        for st in self.steps:  # every receive and send is posted before anything is computed
            if st.source != me:
                buf = k.new_empty((2, B, Hkv, st.key_rows.size, D))
                recvs[st.source] = (buf, len(ops))
                ops.append(("recv", buf, st.source, "kv"))
        for peer in range(comm.world):
            if peer != me and self.needs[peer].any():
                idx = self._send_rows(peer, blk).to(k.device)
                if idx.numel():
                    buf = torch.stack([k.index_select(2, idx), v.index_select(2, idx)]).contiguous()
                    sends.append((peer, len(ops)))
                    ops.append(("send", buf, peer, "kv"))
        works = comm.batch(ops, "forward: posting the key/value exchange")
        self.qd = q.detach().requires_grad_(self.grad)
        self.kd = k.detach().requires_grad_(self.grad)
        self.vd = v.detach().requires_grad_(self.grad)
        self.parts = []  # (step, key leaf, value leaf, out, lse)
        local = [st for st in self.steps if st.source == me]
        remote = sorted((st for st in self.steps if st.source != me), key=lambda st: (st.source - me) % comm.world)
        with torch.set_grad_enabled(self.grad):
            qs = self._slots(self.qd, self.q_rows, self.lq_slots)
            for st in local:
                mine = torch.from_numpy(np.nonzero(self.needs[me][self.my_pos // blk])[0])
                rows = torch.from_numpy(st.key_rows)
                every = mine.numel() == k.shape[2]
                ks = self._slots(self.kd if every else self.kd.index_select(2, mine.to(k.device)), rows, st.n_key_rows)
                vs = self._slots(self.vd if every else self.vd.index_select(2, mine.to(k.device)), rows, st.n_key_rows)
                self.parts.append((st, None, None) + self._step(qs, ks, vs, st))
            for st in remote:
                buf, i = recvs[st.source]
                comm.wait_all(works[i], "forward: receiving keys/values", st.source)
                kr, vr = buf[0].detach().requires_grad_(self.grad), buf[1].detach().requires_grad_(self.grad)
                rows = torch.from_numpy(st.key_rows)
                ks, vs = self._slots(kr, rows, st.n_key_rows), self._slots(vr, rows, st.n_key_rows)
                self.parts.append((st, kr, vr) + self._step(qs, ks, vs, st))
            for peer, i in sends:
                comm.wait_all(works[i], "forward: sending keys/values", peer)
            if self.parts:
                out, lse = _merge([p[3] for p in self.parts], [p[4] for p in self.parts])
                if not (out.shape[2] == q.shape[2] and bool((self.q_rows == torch_arange(q.shape[2])).all())):
                    rows = self.q_rows.to(q.device)
                    out, lse = out.index_select(2, rows), lse.index_select(2, rows)
                out = out.to(q.dtype)
            else:
                out = q.new_zeros(q.shape)
                lse = torch.full(q.shape[:3], -math.inf, dtype=torch.float32, device=q.device)
        self.out, self.lse = out, lse
        return out.detach(), lse.detach()

    def backward(self, dout, dlse):
        import torch
        comm, me = self.comm, self.comm.rank
        blk = self.steps[0].plan.block if self.steps else 1
        if not self.parts:
            return torch.zeros_like(self.qd), torch.zeros_like(self.kd), torch.zeros_like(self.vd)
        dq = dk = dv = None

        def add(acc, g):
            return g if acc is None else acc + g
        flat = [t for p in self.parts for t in (p[3], p[4])]
        grads = torch.autograd.grad([self.out, self.lse], flat, [dout, dlse], allow_unused=True)
        g_parts = [(grads[2 * i], grads[2 * i + 1]) for i in range(len(self.parts))]
        ops, recvs, sends = [], [], []
        for peer in range(comm.world):  # dk/dv of this rank's rows that peers fetched
            if peer != me and self.needs[peer].any():
                idx = self._send_rows(peer, blk).to(self.kd.device)
                if idx.numel():
                    buf = self.kd.new_empty((2,) + self.kd.shape[:2] + (idx.numel(), self.kd.shape[3]))
                    recvs.append((peer, idx, buf, len(ops)))
                    ops.append(("recv", buf, peer, "grad"))
        remote = [i for i, p in enumerate(self.parts) if p[1] is not None]
        local = [i for i, p in enumerate(self.parts) if p[1] is None]
        works = None
        for i in remote + local:  # remote parts first: their dk/dv travel while the local part runs
            if i in local and works is None:
                works = comm.batch(ops, "backward: posting the dk/dv exchange")
            st, kr, vr, out_s, lse_s = self.parts[i]
            go, gl = g_parts[i]
            go = torch.zeros_like(out_s) if go is None else go
            gl = torch.zeros_like(lse_s) if gl is None else gl
            leaves = [self.qd] + ([kr, vr] if kr is not None else [self.kd, self.vd])
            g = torch.autograd.grad([out_s, lse_s], leaves, [go, gl], allow_unused=True, retain_graph=True)
            g = [torch.zeros_like(t) if x is None else x for x, t in zip(g, leaves)]
            dq = add(dq, g[0])
            if kr is not None:
                buf = torch.stack([g[1], g[2]]).to(self.kd.dtype).contiguous()
                sends.append((st.source, len(ops)))
                ops.append(("send", buf, st.source, "grad"))
            else:
                dk, dv = add(dk, g[1]), add(dv, g[2])
        if works is None:
            works = comm.batch(ops, "backward: posting the dk/dv exchange")
        dk = torch.zeros_like(self.kd) if dk is None else dk
        dv = torch.zeros_like(self.vd) if dv is None else dv
        for peer, idx, buf, i in recvs:
            comm.wait_all(works[i], "backward: receiving dk/dv", peer)
            dk.index_add_(2, idx, buf[0])
            dv.index_add_(2, idx, buf[1])
        for peer, i in sends:
            comm.wait_all(works[i], "backward: sending dk/dv", peer)
        self.parts = []
        return dq, dk, dv


def _function():
    import torch

    class ContextParallelAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, run):
            ctx.run = run
            return run.forward(q, k, v)

        @staticmethod
        def backward(ctx, dout, dlse):
            dq, dk, dv = ctx.run.backward(dout, dlse)
            return dq, dk, dv, None

    return ContextParallelAttention


_FUNCTION = None


@dataclasses.dataclass
class CommStats:
    """Bytes this rank moved in one call, by phase ("meta", "kv", "grad"; "grad" fills in when the
    backward runs), counted from the tensors handed to torch.distributed, and `model`, the
    communication model's prediction for every rank of the group."""

    rank: int
    world_size: int
    lengths: list
    sent: dict
    recv: dict
    model: CommModel

    @property
    def ring_bytes(self) -> int:
        """What ring attention's forward receives on this rank."""
        return int(self.model.ring[self.rank])


def _timeout_seconds(timeout) -> float:
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout: expected a positive number of seconds or a timedelta, got {timeout!r}")
    return float(timeout)


def context_parallel_attention(q, k, v, spec, *, group=None, layout: str = "contiguous", backend: str = "cpu",
                               scale=None, tile: int = 64, threads: Optional[int] = None,
                               timeout=DEFAULT_TIMEOUT_S, return_lse: bool = False, return_stats: bool = False):
    """Sparse attention over a sequence sharded across the ranks of `group` (default: the default
    process group). q (B, Hq, n_r, D), k and v (B, Hkv, n_r, D) are this rank's shards (ragged
    lengths allowed; layout "contiguous": rank r holds one run of positions, "zigzag": chunks r
    and 2N − 1 − r of 2N, for causal balance; see shard_ranges). Returns this rank's output shard
    (out, and lse when return_lse=True, and a CommStats when return_stats=True), differentiable
    in q, k, v. Computes what sattn.sparse_attention(q_full, k_full, v_full, spec) computes, on
    this rank's rows; `backend` runs the local blocks (any backend that takes plan=), `tile` is
    the block edge of specs without their own block.

    Faults: every wait on a peer is bounded by `timeout` (seconds); a peer that dies or does not
    answer raises sattn.errors.PeerFailure naming this rank, the step and the peer. Shard shapes,
    dtypes, layout, tile, scale and spec are compared across ranks (one small all_gather) before
    any exchange: a difference raises sattn.errors.ShardMismatch on every rank."""
    import torch
    global _FUNCTION
    from sattn import custom
    from sattn.plan import check_tile
    S.check_spec(spec)
    layout = _check_layout(layout)
    timeout_s = _timeout_seconds(timeout)
    return_lse = _inputs.check_bool("return_lse", return_lse)
    return_stats = _inputs.check_bool("return_stats", return_stats)
    if not all(isinstance(x, torch.Tensor) for x in (q, k, v)):
        raise TypeError("q, k, v: context_parallel_attention takes torch tensors")
    comm = _Comm(group, timeout_s)
    status, local_error = 0, None
    try:
        tile = check_tile(tile)
        prob = _inputs.check_qkv(q, k, v)
        scale = _inputs.resolve_scale(scale, prob.D)
        if prob.Lq != prob.Lk:
            raise ValueError(f"k: expected this rank's k and v shards to match q's length {prob.Lq}, got {prob.Lk}")
    except (TypeError, ValueError) as e:
        status, local_error = 1, e
        scale = 1.0 if not isinstance(scale, float) else scale
    prints = comm.all_gather(_fingerprint(q, k, v, spec, scale, layout, tile, status).to(q.device),
                             "fingerprint all_gather")
    if local_error is not None:
        raise local_error
    lengths = _check_fingerprints(prints, comm.rank)
    L, ranges = sum(lengths), shard_ranges(lengths, layout)
    B, Hq, Hkv, D = q.shape[0], q.shape[1], k.shape[1], q.shape[3]
    selection = _selection_input(spec)
    if selection == "block_sums":
        plan = _block_topk_plan(comm, q, k, spec, lengths, layout, scale)
    elif selection == "qk":
        plan = _gathered_plan(comm, q, k, spec, lengths, layout, tile, scale)
    else:
        plan = _shape_plan(spec, B, Hq, Hkv, L, D, tile)
    # Every rank holds the same global plan, so each derives every rank's needs without asking.
    needs = _needs_of(plan, lengths, layout)
    q_rows, lq_slots, steps = _step_plans(plan, ranges[comm.rank], ranges, needs[comm.rank])
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    run = _Run(comm, steps, q_rows, lq_slots, needs, lengths, layout, scale, backend, threads, grad)
    if _FUNCTION is None:
        _FUNCTION = _function()
    out, lse = _FUNCTION.apply(q, k, v, run)
    result = (out, lse) if return_lse else (out,)
    if return_stats:
        meta = _meta_chunk_bytes(spec, lengths, layout, plan.block, B, Hq, Hkv, D, q.element_size())
        model = _model(needs, lengths, layout, plan.block, 2 * B * Hkv * D * k.element_size(), meta)
        result += (CommStats(rank=comm.rank, world_size=comm.world, lengths=lengths, sent=comm.sent,
                             recv=comm.recv, model=model),)
    return result[0] if len(result) == 1 else result


def _gathered_plan(comm, q, k, spec, lengths, layout, tile, scale):
    """The global plan of a value-dependent spec: q and k gathered from every rank, then planned
    exactly as one process would (the selection is not differentiated)."""
    import torch
    from sattn.plan import plan as build_plan
    n = max(lengths)

    def padded(x):
        pad = x.new_zeros(x.shape[:2] + (n - x.shape[2],) + x.shape[3:])
        return torch.cat([x.detach(), pad], dim=2)

    qs = comm.all_gather(padded(q), "q all_gather (selection)")
    ks = comm.all_gather(padded(k), "k all_gather (selection)")
    qg = unshard([t[:, :, :m] for t, m in zip(qs, lengths)], layout)
    kg = unshard([t[:, :, :m] for t, m in zip(ks, lengths)], layout)
    return build_plan(spec, qg, kg, tile=tile, scale=scale)


def _block_topk_plan(comm, q, k, spec, lengths, layout, scale):
    """The global plan of BlockTopK(score="mean") from the block means alone: each rank sends the
    float64 sums of its q and k rows over every block it overlaps (one all_gather, 1/block of the
    rows), every rank adds them up in rank order and selects as the planner does
    (docs/contract.md: scores scale * mean(q_a) . mean(k_c) in float64, NaN below every number,
    ties to the lower block). Sums of a block split between ranks are added in another order
    than one process adds them, so the scores may differ in the last bit of float64."""
    import torch
    blk, L = spec.block, sum(lengths)
    nb = -(-L // blk)
    B, Hq, Hkv, D = q.shape[0], q.shape[1], k.shape[1], q.shape[3]
    ranges = shard_ranges(lengths, layout)
    slots = _max_block_slots(lengths, layout, blk)
    mine = _query_blocks(ranges[comm.rank], blk)
    pos = positions(lengths, comm.rank, layout)
    slot_of_row = torch.from_numpy(np.searchsorted(mine, pos // blk)).to(q.device)
    x = torch.cat([q.detach(), k.detach()], dim=1).double()
    sums = x.new_zeros((B, Hq + Hkv, slots, D)).index_add_(2, slot_of_row, x)
    gathered = comm.all_gather(sums, "block-sum all_gather (selection)")
    total = np.zeros((B, Hq + Hkv, nb, D))
    for r, g in enumerate(gathered):
        blocks = _query_blocks(ranges[r], blk)
        total[:, :, blocks] += g.cpu().numpy()[:, :, :blocks.size]
    count = np.minimum((np.arange(nb) + 1) * blk, L) - np.arange(nb) * blk
    means = total / count[None, None, :, None]
    qm, km = means[:, :Hq], means[:, Hq:]
    a = np.arange(nb)[:, None]
    c = np.arange(nb)[None, :]
    eligible = (c <= a) if spec.causal else np.ones((nb, nb), dtype=bool)
    local = ((a - c >= 0) & (a - c < spec.local_blocks)) if spec.causal else (np.abs(a - c) < spec.local_blocks)
    forced = eligible & ((c < spec.global_blocks) | local)
    budget = np.minimum(eligible.sum(1), np.maximum(forced.sum(1), math.ceil(spec.keep * nb)))
    extra = budget - forced.sum(1)
    group = Hq // Hkv
    keep = np.zeros((B, Hq, nb, nb), dtype=bool)
    idx = np.broadcast_to(c, (nb, nb))
    for b in range(B):
        for h in range(Hq):
            score = scale * (qm[b, h] @ km[b, h // group].T)
            candidate = eligible & ~forced
            nan = np.isnan(score)
            order = np.lexsort((idx, np.where(nan, 0.0, -score), nan, ~candidate), axis=-1)
            rank_of = np.empty_like(order)
            np.put_along_axis(rank_of, order, np.arange(nb)[None, :].repeat(nb, 0), axis=-1)
            keep[b, h] = forced | (candidate & (rank_of < extra[:, None]))
    return _plan_from_keep(keep, blk, L, spec.causal)


def _pack_rows(bits: np.ndarray) -> np.ndarray:
    """Bool (rows, words·64) as the plan's little-endian uint64 words, row after row."""
    return np.packbits(bits, axis=1, bitorder="little").view("<u8").astype(np.uint64).reshape(-1)


def _plan_from_keep(keep, blk, L, causal):
    """A BlockPlan (plan_b = B, plan_h = Hq) keeping blocks keep[b, h, a, c]; causal diagonal
    entries get the lower-triangle bitmap (a partial last block its own)."""
    from sattn.plan import BlockPlan
    B, Hq, nb, _ = keep.shape
    wpr = -(-blk // 64)
    rows, cols = np.nonzero(keep.reshape(B * Hq * nb, nb))
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=B * Hq * nb))])
    mask_idx = np.full(cols.size, -1, dtype=np.int64)
    bitmaps = np.zeros(0, dtype=np.uint64)
    if causal:
        tri = np.arange(wpr * 64)[None, :] <= np.arange(blk)[:, None]
        last_len = L - (nb - 1) * blk
        tri_last = tri & (np.arange(blk)[:, None] < last_len)
        bitmaps = np.concatenate([_pack_rows(tri), _pack_rows(tri_last)])
        a = rows % nb
        diag = cols == a
        mask_idx[diag] = np.where(a[diag] == nb - 1, 1, 0)
    return BlockPlan(block=blk, B=B, Hq=Hq, Lq=L, Lk=L, plan_b=B, plan_h=Hq, q_block_begin=0, n_q_blocks=nb,
                     n_k_blocks=nb, words_per_row=wpr, row_ptr=row_ptr, col_idx=cols, mask_idx=mask_idx,
                     bitmaps=bitmaps)
