"""A BlockPlan mapped onto CIM arrays: which K/V block sits in which arrays, reuse, rewrites.

Dataflow (key-block stationary): for each batch b and kv head g, every key block c that some
query head of g's group keeps is written once (K block into `arrays_k` arrays as Kᵀ: D rows x
block weights; V block into `arrays_v` arrays: block rows x D weights); then every query
vector of every (query head, query block) plan entry that keeps it streams through: Q·Kᵀ on
the K arrays, the digital softmax, P·V on the V arrays, with the partial outputs merged online
(flash-attention style). A *slot* is the arrays_k + arrays_v arrays holding one block pair.
A block read by many queries (a global block, a causal plan's first blocks) is written into
several slots and its queries split between the copies: with spare slots, the fewest copies
that bring every copy down to the smallest common bound the slots allow; otherwise copies of at
most the mean per-slot load (at most `slots` extra writes). The copies, heaviest first, are
dealt to the slots in snake order (0, 1, .., n-1, n-1, .., 0, ...), each after a slot's first
a rewrite. Everything is numpy over the plan's entries: no Python loop
over blocks or rows.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from sattn.imc.arch import Arch, ArchError


@dataclasses.dataclass(frozen=True)
class Entries:
    """The plan's kept (query block, key block) tiles, aggregated to what the cost depends on.

    Everything a tile costs the arrays is a function of its key block's key count (kcols) times
    its query vectors, so tiles are summed per key block c (`queries_c`); what a block costs to
    write and how often it is read is summed per K/V block id (`reuse_id`, `queries_id`), ids
    being ((b * id_heads) + g) * n_k_blocks + c over the batches and kv heads the plan tells apart
    (`kv_share` (b, g) per id when the plan is shared across batch or heads)."""

    B: int
    Hq: int
    Hkv: int
    Lq: int
    Lk: int
    D: int
    block: int
    n_k_blocks: int
    visible_pairs: int       # over all B*Hq heads (the plan's visible_pairs())
    executed_pairs: int      # query rows x keys of every kept tile (what the arrays compute)
    queries_c: np.ndarray    # float64 [n_k_blocks]: query vectors (x every (b, h)) through key block c
    kcols_c: np.ndarray      # int64 [n_k_blocks]: keys in key block c
    reuse_id: np.ndarray     # int64 [ids]: (query head, query block) tiles reading each id, per (b, g)
    queries_id: np.ndarray   # int64 [ids]: query vectors streaming through each id, per (b, g)
    kv_share: int
    id_heads: int
    id_batches: int


def _kcols(n_k_blocks: int, block: int, Lk: int) -> np.ndarray:
    c = np.arange(n_k_blocks, dtype=np.int64)
    return np.minimum((c + 1) * block, Lk) - c * block


def entries_from_plan(plan, Hkv: int, D: int) -> Entries:
    """The entry table of a sattn.BlockPlan (docs/bsr.md) for Hkv kv heads of size D."""
    if plan.Hq % Hkv:
        raise ValueError(f"k: expected Hkv dividing Hq={plan.Hq}, got {Hkv}")
    blk, nqb, nkb = plan.block, plan.n_q_blocks, plan.n_k_blocks
    counts = np.diff(plan.row_ptr.astype(np.int64))
    rows = np.arange(plan.rows, dtype=np.int64)
    r = rows % nqb
    a = r + plan.q_block_begin
    qrows_row = np.minimum((a + 1) * blk, plan.Lk) - np.maximum(a * blk, plan.Lk - plan.Lq)
    mult = (plan.B // plan.plan_b) * (plan.Hq // plan.plan_h)
    group = plan.Hq // Hkv
    c = plan.col_idx
    qrows = np.repeat(qrows_row, counts)                       # per entry
    kcols_c = _kcols(nkb, blk, plan.Lk)
    queries_c = np.bincount(c, weights=qrows, minlength=nkb) * mult
    masked = plan.mask_idx >= 0
    if masked.any():
        per_mask = np.bitwise_count(plan.bitmaps.reshape(-1, blk * plan.words_per_row)).sum(axis=1, dtype=np.int64)
        full = ~masked
        vis = int(np.dot(np.bincount(c[full], weights=qrows[full], minlength=nkb), kcols_c))
        vis += int(np.dot(np.bincount(plan.mask_idx[masked], minlength=per_mask.size), per_mask))
    else:
        vis = int(np.dot(queries_c / mult, kcols_c))
    executed = int(round(float(np.dot(queries_c, kcols_c))))
    if plan.plan_h == 1:                                       # the same blocks for every kv head
        base = (rows // (nqb * plan.plan_h)) * nkb
        kv_share, readers, id_heads = (plan.B // plan.plan_b) * Hkv, group, 1
    else:
        hp = (rows // nqb) % plan.plan_h
        base = ((rows // (nqb * plan.plan_h)) * Hkv + hp // group) * nkb
        kv_share, readers, id_heads = plan.B // plan.plan_b, 1, Hkv
    kv_id = np.repeat(base, counts) + c
    n_ids = plan.plan_b * id_heads * nkb
    reuse = np.bincount(kv_id, minlength=n_ids) * readers
    queries = np.bincount(kv_id, weights=qrows, minlength=n_ids).astype(np.int64) * readers
    return Entries(B=plan.B, Hq=plan.Hq, Hkv=Hkv, Lq=plan.Lq, Lk=plan.Lk, D=D, block=blk, n_k_blocks=nkb,
                   visible_pairs=vis * mult, executed_pairs=executed, queries_c=queries_c, kcols_c=kcols_c,
                   reuse_id=reuse, queries_id=queries, kv_share=kv_share, id_heads=id_heads,
                   id_batches=plan.plan_b)


def dense_entries(B: int, Hq: int, Hkv: int, Lq: int, Lk: int, D: int, block: int, causal: bool) -> Entries:
    """The entry table of dense attention (every pair, or every causal pair), built directly."""
    nkb = -(-Lk // block)
    qbb = (Lk - Lq) // block
    a = np.arange(qbb, nkb, dtype=np.int64)
    lo = np.maximum(a * block, Lk - Lq)
    hi = np.minimum((a + 1) * block, Lk)
    qrows_row = hi - lo
    kcols_c = _kcols(nkb, block, Lk)
    c = np.arange(nkb, dtype=np.int64)
    if causal:
        # Query position p sees keys j <= p: clip(p + 1 - c*block, 0, kcols) of key block c.
        pairs = _sum_clipped(lo[:, None] + 1 - c[None, :] * block, qrows_row[:, None], kcols_c[None, :])
    else:
        pairs = qrows_row[:, None] * kcols_c[None, :]
    kept = pairs > 0                                           # [query block, key block]
    queries_c = (kept * qrows_row[:, None]).sum(axis=0).astype(np.float64) * (B * Hq)
    group = Hq // Hkv
    return Entries(B=B, Hq=Hq, Hkv=Hkv, Lq=Lq, Lk=Lk, D=D, block=block, n_k_blocks=nkb,
                   visible_pairs=int(pairs.sum()) * B * Hq,
                   executed_pairs=int(round(float(np.dot(queries_c, kcols_c)))),
                   queries_c=queries_c, kcols_c=kcols_c, reuse_id=kept.sum(axis=0).astype(np.int64) * group,
                   queries_id=(kept * qrows_row[:, None]).sum(axis=0).astype(np.int64) * group,
                   kv_share=B * Hkv, id_heads=1, id_batches=1)


def _sum_clipped(x0, n, cap):
    """sum_{t=0}^{n-1} clip(x0 + t, 0, cap), elementwise over int64 arrays."""
    x0, n, cap = (np.asarray(v, dtype=np.int64) for v in (x0, n, cap))
    last = x0 + n - 1

    def ramp_sum(lo, hi):  # sum of t for t in [lo, hi] (0 where hi < lo)
        cnt = np.maximum(hi - lo + 1, 0)
        return np.where(cnt > 0, (lo + hi) * cnt // 2, 0)

    lo_r = np.maximum(x0, 1)
    hi_r = np.minimum(last, cap)
    below_cap = ramp_sum(lo_r, hi_r)
    at_cap = np.maximum(last - np.maximum(x0, cap + 1) + 1, 0) * cap
    return below_cap + at_cap


@dataclasses.dataclass(frozen=True)
class Mapping:
    """Where the plan's K/V blocks live on the arrays, and how much each one is read.

    The `kv_*` arrays have one element per distinct K/V block id of the plan (a plan shared
    across batch or heads stands for `kv_share` blocks per id, written separately); the
    `write_*` arrays one element per block write, in schedule order."""

    arrays_k: int            # arrays one K block takes: ceil(D/rows) x ceil(block/weights_per_row)
    arrays_v: int            # arrays one V block takes: ceil(block/rows) x ceil(D/weights_per_row)
    slots: int               # block pairs resident at once: array.count // (arrays_k + arrays_v)
    slots_used: int
    blocks_distinct: int     # distinct (b, g, key block) K/V pairs the plan reads
    copies_max: int          # most slots one block is written to (hot blocks spread over spare slots)
    blocks_written: int      # K/V block pairs written: every distinct one once, plus the copies
    rewrites: int            # writes into a slot that already held a block
    kv_id: np.ndarray        # distinct ids: ((b * id_heads) + g) * n_k_blocks + c
    kv_reuse: np.ndarray     # (query head, query block) tiles reading each id, per (b, g)
    kv_queries: np.ndarray   # query vectors streaming through each id, per (b, g)
    kv_kcols: np.ndarray     # keys in each block
    write_kv: np.ndarray     # per write: index into kv_*
    write_queries: np.ndarray  # per write: query vectors this copy serves
    write_slot: np.ndarray   # per write: its slot (arrays [slot*(arrays_k+arrays_v), ...))
    write_wave: np.ndarray   # per write: the how-many-th block of its slot
    n_k_blocks: int
    id_heads: int
    id_batches: int
    cell_utilisation: float  # cells holding K/V over the cells of the arrays they take

    def summary(self) -> dict:
        reuse = self.kv_reuse
        return {"arrays_per_k_block": self.arrays_k, "arrays_per_v_block": self.arrays_v,
                "slots": self.slots, "slots_used": self.slots_used,
                "blocks_distinct": self.blocks_distinct, "copies_max": self.copies_max,
                "blocks_written": self.blocks_written,
                "rewrites": self.rewrites,
                "reuse_per_block": {"min": int(reuse.min()) if reuse.size else 0,
                                    "mean": float(reuse.mean()) if reuse.size else 0.0,
                                    "max": int(reuse.max()) if reuse.size else 0},
                "queries_per_block_mean": float(self.kv_queries.mean()) if reuse.size else 0.0,
                "cell_utilisation": self.cell_utilisation}

    def placement(self, limit: int = 0) -> list:
        """Per block write in schedule order (the first `limit`; 0: all): batch, kv head (-1: the
        plan is shared, so the same for each), key block, slot, first array, wave, reuse."""
        n = self.write_kv.size if limit <= 0 else min(limit, self.write_kv.size)
        per_slot = self.arrays_k + self.arrays_v
        out = []
        for w in range(n):
            i = int(self.write_kv[w])
            kid = int(self.kv_id[i])
            c, rest = kid % self.n_k_blocks, kid // self.n_k_blocks
            g = rest % self.id_heads if self.id_heads > 1 else -1
            b = rest // self.id_heads if self.id_batches > 1 else -1
            s = int(self.write_slot[w])
            out.append({"b": b, "g": g, "key_block": c, "slot": s, "first_array": s * per_slot,
                        "wave": int(self.write_wave[w]), "reuse": int(self.kv_reuse[i])})
        return out


def map_entries(ent: Entries, arch: Arch, replicate: bool = True) -> Mapping:
    """Places the entries' K/V blocks on `arch`'s arrays (module docstring: the dataflow);
    replicate=False writes every block once even when slots are spare."""
    R, wpr = arch.array["rows"], arch.weights_per_row
    blk, D = ent.block, ent.D
    arrays_k = math.ceil(D / R) * math.ceil(blk / wpr)
    arrays_v = math.ceil(blk / R) * math.ceil(D / wpr)
    per_slot = arrays_k + arrays_v
    slots = arch.array["count"] // per_slot
    if slots < 1:
        raise ArchError(f"array.count: one K and one V block (block={blk}, D={D}) take {per_slot} arrays of "
                        f"{R}x{arch.array['cols']} cells ({arch.slices} cells per weight); the design has "
                        f"{arch.array['count']}")
    ids = np.flatnonzero(ent.reuse_id)
    reuse = ent.reuse_id[ids]
    queries = ent.queries_id[ids]
    kcols = ent.kcols_c[ids % ent.n_k_blocks]
    copies = _copies(queries, slots, ent.kv_share) if replicate else np.ones(ids.size, dtype=np.int64)
    # One write per copy (a shared id once per (b, g) it stands for), heaviest first.
    per_share = np.repeat(np.arange(ids.size, dtype=np.int64), copies)
    write_kv = np.tile(per_share, ent.kv_share)
    write_queries = np.tile(np.repeat(queries / copies, copies), ent.kv_share)
    heavy = np.argsort(-write_queries, kind="stable")
    write_kv, write_queries = write_kv[heavy], write_queries[heavy]
    order = np.arange(write_kv.size, dtype=np.int64)
    wave = order // slots
    slot = np.where(wave % 2 == 0, order % slots, slots - 1 - order % slots)
    n_written = int(write_kv.size)
    cells_used = 2.0 * D * float(kcols.sum()) * arch.slices
    cells_taken = float(ids.size) * per_slot * R * arch.array["cols"]
    return Mapping(arrays_k=arrays_k, arrays_v=arrays_v, slots=slots, slots_used=min(slots, n_written),
                   blocks_distinct=int(ids.size) * ent.kv_share,
                   copies_max=int(copies.max()) if copies.size else 0,
                   blocks_written=n_written, rewrites=max(0, n_written - slots), kv_id=ids, kv_reuse=reuse,
                   kv_queries=queries, kv_kcols=kcols, write_kv=write_kv, write_queries=write_queries,
                   write_slot=slot, write_wave=wave, n_k_blocks=ent.n_k_blocks, id_heads=ent.id_heads,
                   id_batches=ent.id_batches,
                   cell_utilisation=cells_used / cells_taken if cells_taken else 0.0)


def _copies(queries: np.ndarray, slots: int, share: int) -> np.ndarray:
    """Copies per block. Spare slots: the fewest that bring the queries per copy down to the
    smallest bound T with share * sum(ceil(queries / T)) <= slots. Otherwise copies of at most
    the mean per-slot load T = share * sum(queries) / slots (sum(ceil(q / T)) <= n + slots / share)."""
    n = queries.size
    ones = np.ones(n, dtype=np.int64)
    if n == 0 or queries.max() <= 1:
        return ones
    q = queries.astype(np.float64)
    if share * n >= slots:
        mean = share * q.sum() / slots
        return np.maximum(np.ceil(q / mean), 1).astype(np.int64)
    lo, hi = 1.0, float(q.max())            # hi always fits (one copy each)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        if share * np.ceil(q / mid).sum() <= slots:
            hi = mid
        else:
            lo = mid
        if hi - lo < 0.5:
            break
    return np.maximum(np.ceil(q / hi), 1).astype(np.int64)
