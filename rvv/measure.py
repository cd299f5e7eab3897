"""RVV instruction-count measurement for docs/backends/rvv.md (the issue-6 targets).

  bazel run //rvv:measure -- --seq_len 2048 --head_dim 64 --block 64 --keep 0.125 --vlens 128,256,512
  bazel run //rvv:measure -- --mode backward     # the backward's counts (each run: forward, then backward)

Runs BlockTopK (or --spec) through the RVV kernels at each VLEN and through the scalar and
auto-vectorised baselines at --baseline_vlen, all under QEMU with the counting plugin, checks each
output against the float64 reference, and prints one row per run plus the target ratios.
The same rows come out of `bazel run //tools:bench -- --backend rvv --option vlen=N --compare`.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import sys

from absl import app, flags
import numpy as np

import sattn
from sattn.backends import rvv

FLAGS = flags.FLAGS
flags.DEFINE_enum("spec", "block_topk", ["dense", "block_topk", "sliding_window", "bigbird"], "Spec.")
flags.DEFINE_bool("causal", False, "Causal variant.")
flags.DEFINE_integer("seq_len", 2048, "L (Lq = Lk).")
flags.DEFINE_integer("head_dim", 64, "D.")
flags.DEFINE_integer("heads", 1, "Hq = Hkv.")
flags.DEFINE_integer("block", 64, "Block (BlockTopK, BigBird).")
flags.DEFINE_float("keep", 0.125, "BlockTopK keep.")
flags.DEFINE_enum("score", "mean", ["mean", "max"], "BlockTopK block score.")
flags.DEFINE_enum("region", "attention", ["attention", "selection"],
                  "What is counted: the attention over the plan, or BlockTopK's block selection "
                  "run with the kernels on target.")
flags.DEFINE_enum("mode", "forward", ["forward", "backward"],
                  "forward: count the attention; backward: run the forward, then count attention_backward "
                  "(random dout and dlse) and check dq, dk, dv against float64 torch autograd.")
flags.DEFINE_integer("window", 256, "SlidingWindow window.")
flags.DEFINE_string("vlens", "128,256,512", "VLENs for the RVV kernels.")
flags.DEFINE_integer("baseline_vlen", 256, "VLEN for the scalar/autovec baselines.")
flags.DEFINE_enum("dtype", "fp32", ["fp32", "bf16", "int8"], "Kernel storage type.")
flags.DEFINE_integer("seed", 0, "Input seed.")
flags.DEFINE_string("out", None, "Write the rows as JSON here.")


def make_spec():
    """The --spec with its fields from the flags of the same names; --seed seeds the inputs only."""
    options = {k: v for k, v in FLAGS.flag_values_dict().items() if k != "seed"}
    return sattn.specs.from_options(FLAGS.spec, options)


def autograd_grads(spec, q, k, v, dout, dlse, scale):
    """dq, dk, dv of sum(out * dout) + sum(lse * dlse) by float64 torch autograd of the masked
    softmax (mask: sattn.mask.dense_mask_numpy, the contract's visible pairs)."""
    import torch
    mask = torch.from_numpy(sattn.mask.dense_mask_numpy(spec, q, k, scale=scale))
    tq, tk, tv = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    s = (scale * tq @ tk.repeat_interleave(group, 1).transpose(-1, -2)).masked_fill(~mask, float("-inf"))
    seen = mask.any(-1)
    s = torch.where(seen[..., None], s, torch.zeros_like(s))
    lse = torch.logsumexp(s, -1)
    p = torch.where(mask, torch.exp(s - lse[..., None]), torch.zeros_like(s))
    loss = ((p @ tv.repeat_interleave(group, 1)) * torch.from_numpy(dout).double()).sum()
    loss = loss + (torch.where(seen, lse, torch.zeros_like(lse)) * torch.from_numpy(dlse).double()).sum()
    loss.backward()
    return tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()


def main(argv):
    del argv
    L, D, H = FLAGS.seq_len, FLAGS.head_dim, FLAGS.heads
    rng = np.random.default_rng(FLAGS.seed)
    q, k, v = (rng.standard_normal((1, H, L, D), dtype=np.float32) for _ in range(3))
    spec = make_spec()
    scale = 1.0 / math.sqrt(D)
    plan = sattn.plan(spec, q, k, tile=FLAGS.block, scale=scale)
    ref, ref_lse = sattn.reference.attention(q, k, v, spec, return_lse=True)
    backward = FLAGS.mode == "backward"
    if backward:
        if FLAGS.region != "attention":
            raise app.UsageError("--mode backward counts the backward; --region is forward-only")
        dout = rng.standard_normal(q.shape, dtype=np.float32)
        dlse = rng.standard_normal(q.shape[:3], dtype=np.float32)
        grads_ref = autograd_grads(spec, q, k, v, dout, dlse, scale)
    runs = [("rvv", vl) for vl in (int(x) for x in FLAGS.vlens.split(","))]
    runs += [("scalar", FLAGS.baseline_vlen), ("autovec", FLAGS.baseline_vlen)]
    rows = []
    print(f"{spec} L={L} D={D} H={H} {FLAGS.dtype} visible pairs={plan.visible_pairs()}; counted: "
          f"{'backward' if backward else FLAGS.region}", flush=True)
    hdr = f"{'variant':<8} {'VLEN':>5} {'instructions':>14} {'vec frac':>8} {'vec bytes':>12} {'scalar bytes':>13} " \
          f"{'cyc low-power':>14} {'cyc high-perf':>14} {'nJ low-power':>13} {'max err':>9} {'qemu s':>7}"
    print(hdr)
    for variant, vl in runs:
        res = rvv.attention(q, k, v, spec, scale=scale, return_lse=True, vlen=vl, variant=variant,
                            dtype=FLAGS.dtype, plan=plan, region=FLAGS.region)
        c = res.counters
        if FLAGS.region == "selection" and c["selection_mismatched_rows"] != 0:
            raise RuntimeError(f"{variant} VLEN={vl}: the on-target selection differs from the plan in "
                               f"{c['selection_mismatched_rows']} rows")
        err = float(np.max(np.abs(res.out - ref)))
        if backward:
            g = rvv.attention_backward(q, k, v, res.out, res.lse, dout, dlse, res.plan, scale=scale, vlen=vl,
                                       variant=variant, dtype=FLAGS.dtype)
            c = dict(g.counters, fwd_instructions=c["instructions"])
            # Largest |error| relative to the gradient's largest magnitude, over dq, dk and dv.
            err = max(float(np.max(np.abs(x - r)) / np.max(np.abs(r))) for x, r in zip((g.dq, g.dk, g.dv), grads_ref))
        row = {"variant": variant, "vlen": vl, "mode": FLAGS.mode, "err": err, **c}
        rows.append(row)
        print(f"{variant:<8} {vl:>5} {c['instructions']:>14,} {c['vector_fraction']:>8.3f} {c['insn_vec_mem_bytes']:>12,} "
              f"{c['insn_scalar_mem_bytes']:>13,} {c['proxy_cycles_low_power']:>14,} {c['proxy_cycles_high_perf']:>14,} "
              f"{c['proxy_energy_nj_low_power']:>13.0f} {err:>9.2e} {c['qemu_wall_ms'] / 1e3:>7.1f}", flush=True)
    by = {(r["variant"], r["vlen"]): r["instructions"] for r in rows}
    bv = FLAGS.baseline_vlen
    # The issue-6 targets are about the attention; the selection's ratios are printed bare.
    target = (lambda t: f" (target >= {t})") if FLAGS.region == "attention" else (lambda t: "")  # noqa: E731
    if backward:  # issue 17's targets: >= 8x vs scalar and >= 2x vs autovec; no VLEN-scaling target
        target = (lambda t: f" (target >= {t})" if t != 3 else "")  # noqa: E731
    if ("rvv", bv) in by:
        print(f"scalar / rvv @VLEN {bv}:  {by[('scalar', bv)] / by[('rvv', bv)]:.2f}x fewer instructions{target(8)}")
        print(f"autovec / rvv @VLEN {bv}: {by[('autovec', bv)] / by[('rvv', bv)]:.2f}x fewer instructions{target(2)}")
    if ("rvv", 128) in by and ("rvv", 512) in by:
        print(f"rvv VLEN 128 / VLEN 512:  {by[('rvv', 128)] / by[('rvv', 512)]:.2f}x{target(3)}")
    print(f"host: {platform.node()} {platform.processor() or platform.machine()}; "
          f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}")
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(rows, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
