"""sattn benchmark: one backend (and with --compare its peers) on one spec and shape.

  bazel run //tools:bench -- --backend cpu --spec block_topk --seq_len 8192 --compare

Writes one JSON row per system (schema: docs/bench.md) to --out and prints a table or JSON.
Performance is measured here, never asserted in tests.
"""
from __future__ import annotations

import datetime
import gc
import math
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time

from absl import app, flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string("backend", "cpu", "Backend to run: reference, cpu, triton, rvv, rocc.")
flags.DEFINE_enum("spec", "block_topk", ["dense", "sliding_window", "block_topk", "bigbird", "topk_per_query"],
                  "Attention spec (docs/contract.md).")
flags.DEFINE_bool("causal", False, "Causal variant of the spec.")
flags.DEFINE_integer("window", 1024, "SlidingWindow: window.")
flags.DEFINE_integer("dilation", 1, "SlidingWindow: dilation.")
flags.DEFINE_integer("global_tokens", 0, "SlidingWindow: global tokens.")
flags.DEFINE_integer("block", 64, "BlockTopK/BigBird: block size.")
flags.DEFINE_float("keep", 0.125, "BlockTopK: fraction of key blocks kept.")
flags.DEFINE_integer("global_blocks", 1, "BlockTopK/BigBird: global blocks.")
flags.DEFINE_integer("local_blocks", 1, "BlockTopK: local blocks.")
flags.DEFINE_enum("score", "mean", ["mean", "max"], "BlockTopK: block score.")
flags.DEFINE_integer("window_blocks", 3, "BigBird: window blocks.")
flags.DEFINE_integer("random_blocks", 2, "BigBird: random blocks per row.")
flags.DEFINE_integer("seed", 0, "BigBird: generator seed; also seeds the random inputs.")
flags.DEFINE_integer("topk", 64, "TopKPerQuery: keys per query.")
flags.DEFINE_integer("batch", 1, "B.")
flags.DEFINE_integer("heads", 4, "Hq (query heads).")
flags.DEFINE_integer("kv_heads", None, "Hkv (default: heads).")
flags.DEFINE_integer("seq_len", 2048, "Lk (key length).")
flags.DEFINE_integer("q_len", None, "Lq (default: seq_len; 1 for decode).")
flags.DEFINE_integer("head_dim", 64, "D.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16", "float16"], "Input dtype.")
flags.DEFINE_string("device", "cpu", "Tensor device: cpu or cuda.")
flags.DEFINE_integer("tile", 64, "Plan tile for specs without a block of their own.")
flags.DEFINE_integer("repeat", 5, "Timed repetitions (median reported).")
flags.DEFINE_integer("warmup", 1, "Untimed warm-up calls.")
flags.DEFINE_integer("threads", 0, "Threads for CPU work (0: all cores).")
flags.DEFINE_integer("check_rows", None, "Query rows checked against the float64 reference "
                     "(default: all when Lq <= 2048, else 64 sampled rows; 0 disables).")
flags.DEFINE_bool("compare", False, "Also run the backend's peers (torch SDPA, FlexAttention, baselines) "
                  "in this process.")
flags.DEFINE_enum("mode", "fwd", ["fwd", "fwdbwd"], "fwd: the forward; fwdbwd: forward + backward through "
                  "sattn.sparse_attention (host backends with attention_backward), with torch SDPA dense "
                  "forward + backward as the --compare peer, and peak RSS of forward vs backward.")
flags.DEFINE_enum("format", "table", ["table", "json"], "Output format on stdout.")
flags.DEFINE_string("out", None, "Write the JSON rows to this file (one JSON list).")
flags.DEFINE_integer("vlen", None, "RVV vector length in bits (128, 256, 512): shorthand for --option vlen=N.")
flags.DEFINE_enum("normalizer", "softmax", ["softmax", "sigmoid", "relu2"],
                  "Score normalizer (docs/contract.md, \"Normalizers\"); rows are checked against the reference's.")
flags.DEFINE_multi_string("option", [], "Backend option key=value (e.g. --option vlen=256); repeatable.")
flags.DEFINE_multi_string("quant", [], "Quantization scheme qk/pv/granularity[/v=int8|int4][/no-smooth] (e.g. "
                          "int8/bf16/block; sattn.quant.parse_scheme): the backend's quantized forward, one row per "
                          "scheme (repeatable), with the backend's unquantized forward as a peer in the same run "
                          "(docs/bench.md).")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse_options(items):
    out = {}
    for item in items:
        if "=" not in item:
            raise app.UsageError(f"--option: expected key=value, got {item!r}")
        key, val = item.split("=", 1)
        for conv in (int, float):
            try:
                val = conv(val)
                break
            except ValueError:
                pass
        else:
            val = {"true": True, "false": False}.get(val.lower(), val)
        out[key] = val
    return out


def make_spec(sattn):
    """The --spec with its fields from the flags of the same names (--seed also seeds BigBird)."""
    return sattn.specs.from_options(FLAGS.spec, FLAGS.flag_values_dict())


def make_inputs(B, Hq, Hkv, Lq, Lk, D, dtype, device):
    import torch
    g = torch.Generator().manual_seed(FLAGS.seed)
    tdtype = getattr(torch, dtype)
    q = torch.randn(B, Hq, Lq, D, generator=g).to(tdtype)
    k = torch.randn(B, Hkv, Lk, D, generator=g).to(tdtype)
    v = torch.randn(B, Hkv, Lk, D, generator=g).to(tdtype)
    if device != "cpu":
        q, k, v = q.to(device), k.to(device), v.to(device)
    return q, k, v


def machine_info():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"host_cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}
    try:
        import torch
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


def versions():
    import sattn
    out = {"sattn": sattn.__version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "triton"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            pass
    return out


def timed(fn, repeat, warmup, sync, once=None):
    """`warmup` untimed calls, then `repeat` timed ones. If `once(result)` holds for the first
    call's result (a deterministic simulation: its counters are the same every run), that call is
    the only one and its wall time the only time."""
    result = None
    times = []
    for i in range(warmup + repeat):
        t0 = time.perf_counter()
        result = fn()
        sync()
        dt = time.perf_counter() - t0
        if i == 0 and once is not None and once(result):
            log("  deterministic simulation: run once (warm-up and repeats would give the same counters)")
            return result, [dt]
        if i >= warmup:
            times.append(dt)
            j = i - warmup
            if repeat >= 5 and (j + 1) % max(1, repeat // 5) == 0:
                log(f"  repeat {j + 1}/{repeat}: {dt * 1e3:.2f} ms")
    return result, times


def simulated(result) -> bool:
    return bool(getattr(result, "counters", None) and result.counters.get("simulated", 0))


# Backends whose builds (RISC-V runners + QEMU plugin, the Verilator model) only the bench_<name>
# targets carry; //tools:bench hands such a run to that target (tools/BUILD).
SIM_BENCH_TARGETS = {"rvv": "//tools:bench_rvv", "rocc": "//tools:bench_rocc"}


def reexec_for_backend(name: str) -> None:
    """Under `bazel run //tools:bench`, a backend whose build this target does not carry: the same
    arguments through the target that does (the outer `bazel run` has released Bazel's lock by the
    time this program runs). Returns if there is nothing to do; otherwise does not return."""
    import importlib.util
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if (name not in SIM_BENCH_TARGETS or not workspace or os.environ.get("SATTN_BENCH_REEXEC")
            or importlib.util.find_spec(f"sattn.backends.{name}") is not None):
        return
    target = SIM_BENCH_TARGETS[name]
    log(f"backend {name}: running through {target}, which carries its build")
    os.environ["SATTN_BENCH_REEXEC"] = "1"
    os.chdir(workspace)
    argv = ["bazel", "run", target, "--"] + sys.argv[1:]
    try:
        os.execvp("bazel", argv)
    except OSError as e:
        print(f"bench: --backend {name}: could not run {target} ({e}); run `bazel run {target} -- ...`",
              file=sys.stderr)
        sys.exit(2)


def error_vs_reference(sattn, q, k, v, spec, scale, out, lse, rows):
    from sattn import _inputs
    ref_out, ref_lse = sattn.reference.attention(q, k, v, spec, scale=scale, return_lse=True, rows=rows,
                                                 normalizer=FLAGS.normalizer)
    got = _inputs.to_numpy(out, np.float64)[:, :, rows]
    err = float(np.max(np.abs(got - ref_out))) if got.size else 0.0
    err_lse = None
    if lse is not None and FLAGS.normalizer == "softmax":  # the others have no lse to check
        gl = _inputs.to_numpy(lse, np.float64)[:, :, rows]
        both_inf = np.isneginf(gl) & np.isneginf(ref_lse)
        diff = np.where(both_inf, 0.0, np.abs(gl - ref_lse))
        err_lse = float(np.max(diff)) if diff.size else 0.0
    return err, err_lse


def main(argv):
    del argv
    import importlib

    import sattn
    # `sattn.backends` is the listing function; the registry is the sattn.backends package.
    registry = importlib.import_module("sattn.backends")

    name = FLAGS.backend
    if name not in registry.KNOWN:
        print(f"bench: unknown backend {name!r}; known: {', '.join(registry.KNOWN)}; "
              f"available here: {', '.join(registry.available()) or 'none'}", file=sys.stderr)
        return 2
    reexec_for_backend(name)
    try:
        mod = registry.get(name)
    except registry.BackendUnavailable as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    options = parse_options(FLAGS.option)
    if FLAGS.normalizer != "softmax":
        if FLAGS.quant:
            print("bench: --quant runs normalizer=softmax only", file=sys.stderr)
            return 2
        options["normalizer"] = FLAGS.normalizer
    if FLAGS.vlen is not None:
        options["vlen"] = FLAGS.vlen
    if FLAGS.threads:
        options.setdefault("threads", FLAGS.threads)
        import torch
        torch.set_num_threads(FLAGS.threads)
    Hkv = FLAGS.kv_heads or FLAGS.heads
    Lk = FLAGS.seq_len
    Lq = FLAGS.q_len or Lk
    B, Hq, D = FLAGS.batch, FLAGS.heads, FLAGS.head_dim
    spec = make_spec(sattn)
    log(f"{name} {spec} B={B} Hq={Hq} Hkv={Hkv} Lq={Lq} Lk={Lk} D={D} {FLAGS.dtype}")
    q, k, v = make_inputs(B, Hq, Hkv, Lq, Lk, D, FLAGS.dtype, FLAGS.device)
    scale = 1.0 / math.sqrt(D)
    sync = lambda: None  # noqa: E731
    if FLAGS.device.startswith("cuda"):
        import torch
        sync = torch.cuda.synchronize
    if name != "triton" and not getattr(mod, "TAKES_TORCH", False) and FLAGS.dtype == "float16":
        log("note: float16 inputs are widened to float32 by host backends")

    log("planning (for density and FLOP count)")
    try:
        plan = sattn.plan(spec, q if FLAGS.device == "cpu" else q.cpu(), k if FLAGS.device == "cpu" else k.cpu(),
                          tile=FLAGS.tile, threads=FLAGS.threads)
        visible = plan.visible_pairs()
        del plan
    except ImportError as e:
        # e.g. a GPU machine whose Python cannot load this build's sattn._cc: a backend that can
        # count what it attends on its own device (triton) supplies the count; else no FLOPs.
        visible = None
        if hasattr(mod, "visible_pairs"):
            log(f"no host planner here ({e}); counting visible pairs with the {name} backend's own plan")
            visible = int(mod.visible_pairs(q, k, spec, scale=scale, tile=FLAGS.tile, **options))
        else:
            log(f"no host planner here ({e}); density, FLOPs and GFLOP/s are not reported")
    density = None if visible is None else visible / float(B * Hq * Lq * Lk)
    flops = None if visible is None else 4.0 * D * visible

    if FLAGS.mode == "fwdbwd":
        return run_fwdbwd(sattn, mod, name, spec, q, k, v, scale, options, visible)
    if FLAGS.quant:
        return run_quant(sattn, mod, name, spec, q, k, v, scale, options, flops)
    call = lambda: mod.attention(q, k, v, spec, scale=scale, return_lse=True, tile=FLAGS.tile, **options)  # noqa: E731
    log(f"running {name}: {FLAGS.warmup} warm-up + {FLAGS.repeat} timed")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res, times = timed(call, FLAGS.repeat, FLAGS.warmup, sync, once=simulated)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_check = FLAGS.check_rows if FLAGS.check_rows is not None else (Lq if Lq <= 2048 else 64)
    rows = np.unique(np.linspace(0, Lq - 1, num=min(n_check, Lq)).astype(np.int64)) if n_check else np.array([], np.int64)

    common = {
        "spec": spec.kind, "spec_params": spec.params(), "B": B, "Hq": Hq, "Hkv": Hkv, "Lq": Lq, "Lk": Lk, "D": D,
        "dtype": FLAGS.dtype, "device": FLAGS.device, "density": density, "visible_pairs": visible, "flops": flops,
        "machine": machine_info(), "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "bazel run //tools:bench -- " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }

    def make_row(system, result, wall_times, peak=None):
        simulated = bool(result.counters.get("simulated", 0))
        row_flops = result.counters.get("flops", flops)
        row_flops = None if row_flops is None else float(row_flops)  # peers computing another function report their own
        t = result.time_s if result.time_s is not None else (statistics.median(wall_times) if wall_times else None)
        err = err_lse = None
        if len(rows) and result.out is not None:
            log(f"checking {len(rows)} rows of {system} against the float64 reference")
            err, err_lse = error_vs_reference(sattn, q, k, v, spec, scale, result.out, result.lse, rows)
        row = dict(common)
        row.update({
            "backend": name, "system": system, "time_ms": None if t is None else t * 1e3,
            "time_kind": "simulation wall time" if simulated else "wall time",
            "gflops_effective": None if (t is None or simulated or row_flops is None) else row_flops / t / 1e9,
            "max_abs_err": err, "max_abs_err_lse": err_lse, "rows_checked": int(len(rows)),
            "counters": result.counters, "note": result.note, "peak_rss_mb": peak,
        })
        return row

    out_rows = [make_row(name, res, times, peak_rss_mb)]
    del res
    if FLAGS.compare:
        peers = getattr(mod, "bench_peers", None)
        if peers is None:
            log(f"backend {name} has no peers to compare with")
        else:
            log(f"running peers of {name}")
            for peer in peers(q, k, v, spec, scale=scale, repeat=FLAGS.repeat, tile=FLAGS.tile, **options):
                out_rows.append(make_row(peer.name, peer, []))
    emit_rows(out_rows)
    return 0


def run_quant(sattn, mod, name, spec, q, k, v, scale, options, flops):
    """--quant: each scheme's quantized forward and the backend's unquantized one, interleaved
    rounds in this process (medians), each row with its error against float64 and against the
    scheme's float64 model (sattn.quant.attention) on the checked rows, and the bytes a cached
    token (K and V of one kv head) takes."""
    from sattn import _inputs
    from sattn import quant as Q
    if not hasattr(mod, "quantized_attention"):
        print(f"bench: --quant: backend {name} has no quantized path", file=sys.stderr)
        return 2
    try:
        schemes = [(s_, Q.parse_scheme(s_)) for s_ in FLAGS.quant]
    except ValueError as e:
        print(f"bench: --quant: {e}", file=sys.stderr)
        return 2
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    systems = [(f"{name}_{label}", quant) for label, quant in schemes] + [(f"{name}_unquantized", None)]

    def call(quant):
        if quant is None:
            return mod.attention(q, k, v, spec, scale=scale, return_lse=True, tile=FLAGS.tile, **options)
        return mod.quantized_attention(q, k, v, spec, quant=quant, scale=scale, tile=FLAGS.tile,
                                       **options)

    results, times = {}, {s_: [] for s_, _ in systems}
    log(f"running {', '.join(s_ for s_, _ in systems)}: {FLAGS.warmup} warm-up + {FLAGS.repeat} timed rounds, "
        "interleaved")
    for rnd in range(FLAGS.warmup + FLAGS.repeat):
        for system, quant in systems:
            t0 = time.perf_counter()
            results[system] = call(quant)
            if rnd >= FLAGS.warmup:
                times[system].append(time.perf_counter() - t0)
        if rnd >= FLAGS.warmup:
            log(f"  round {rnd + 1 - FLAGS.warmup}/{FLAGS.repeat}: " + ", ".join(
                f"{s_} {times[s_][-1] * 1e3:.1f} ms" for s_, _ in systems))
    n_check = FLAGS.check_rows if FLAGS.check_rows is not None else (Lq if Lq <= 2048 else 64)
    rows = np.unique(np.linspace(0, Lq - 1, num=min(n_check, Lq)).astype(np.int64)) if n_check else np.array([], np.int64)
    vmax = float(np.abs(_inputs.to_numpy(v, np.float64)).max())
    ref = sattn.reference.attention(q, k, v, spec, scale=scale, rows=rows) if len(rows) else None
    base_ms = statistics.median(times[systems[-1][0]]) * 1e3
    common = {
        "spec": spec.kind, "spec_params": spec.params(), "B": B, "Hq": Hq, "Hkv": Hkv, "Lq": Lq, "Lk": Lk, "D": D,
        "dtype": FLAGS.dtype, "device": FLAGS.device, "flops": flops,
        "density": None if flops is None else flops / (4.0 * D * B * Hq * Lq * Lk),
        "visible_pairs": None if flops is None else int(flops / (4.0 * D)),
        "machine": machine_info(), "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "bazel run //tools:bench -- " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    out_rows = []
    for system, quant in systems:
        res = results[system]
        t = statistics.median(times[system])
        row = dict(common)
        got = _inputs.to_numpy(res.out, np.float64)[:, :, rows] if len(rows) else None
        err = float(np.abs(got - ref).max()) if got is not None and got.size else None
        err_model = None
        if quant is not None and got is not None and got.size:
            log(f"checking {len(rows)} rows of {system} against the scheme's float64 model")
            model = Q.attention(q, k, v, spec, quant, scale=scale, rows=rows)
            err_model = float(np.abs(got - model).max())
        row.update({
            "backend": name, "system": system, "quant": None if quant is None else quant.to_dict(),
            "time_ms": t * 1e3, "time_kind": "wall time", "speedup_vs_unquantized": base_ms / (t * 1e3),
            "gflops_effective": None if flops is None else flops / t / 1e9,
            "max_abs_err": err, "err_rel_max_abs_v": None if err is None else err / vmax,
            "max_abs_err_vs_quant_model": err_model, "max_abs_err_lse": None,
            "error_budget_rel_max_abs_v": None if quant is None else Q.error_budget(quant),
            "cache_bytes_per_token": Q.cache_bytes_per_token(quant, D, dtype_bytes=2 if FLAGS.dtype != "float32" else 4),
            "rows_checked": int(len(rows)), "counters": res.counters, "note": res.note, "peak_rss_mb": None,
        })
        out_rows.append(row)
    emit_rows(out_rows)
    if FLAGS.format != "json":
        print("cache bytes per token (K+V, one kv head): " + ", ".join(
            f"{r['system']} {r['cache_bytes_per_token']:g}" for r in out_rows))
    return 0


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Sets the process's peak RSS (VmHWM) to its current RSS (Linux clear_refs 5); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def phase_peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024.0


def run_fwdbwd(sattn, mod, name, spec, q, k, v, scale, options, visible):
    """--mode fwdbwd: sparse_attention forward + backward (one backward of random dout), the
    forward alone before it (for its peak RSS; ru_maxrss only grows, so it is read first), and
    with --compare torch SDPA dense forward + backward on the same inputs. FLOPs: the contract's
    2.5x the forward count (docs/contract.md)."""
    import torch
    import torch.nn.functional as F
    if FLAGS.device != "cpu" or not hasattr(mod, "attention_backward"):
        print(f"bench: --mode fwdbwd needs a host backend with attention_backward; {name} has none here",
              file=sys.stderr)
        return 2
    B, Hq, Hkv, Lq, Lk, D = q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3]
    g = torch.Generator().manual_seed(FLAGS.seed + 1)
    dout = torch.randn(q.shape, generator=g).to(q.dtype)
    leaves = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    opts = dict(options, tile=FLAGS.tile)

    def forward():
        with torch.no_grad():
            return sattn.sparse_attention(*leaves, spec, backend=name, scale=scale, **opts)

    def fwd_bwd():
        for x in leaves:
            x.grad = None
        t0 = time.perf_counter()
        out = sattn.sparse_attention(*leaves, spec, backend=name, scale=scale, **opts)
        t1 = time.perf_counter()
        out.backward(dout)
        return out, t1 - t0, time.perf_counter() - t1

    # Warm-ups of both first (one-off loading and allocator growth is not either phase's), then
    # each phase's peak RSS from a reset high-water mark (VmHWM): what that phase itself needs.
    log(f"warming up: {FLAGS.warmup} forward and {FLAGS.warmup} forward + backward calls")
    splits = []
    for _ in range(FLAGS.warmup):
        forward()
        fwd_bwd()
    gc.collect()
    per_phase = reset_peak_rss()
    rss0 = current_rss_mb()
    log(f"running {name} forward: {FLAGS.repeat} timed")
    out_fwd, fwd_times = timed(forward, FLAGS.repeat, 0, lambda: None)
    peak_fwd = phase_peak_rss_mb() if per_phase else peak_rss_mb()
    del out_fwd
    gc.collect()
    per_phase = per_phase and reset_peak_rss()
    rss1 = current_rss_mb()
    log(f"running {name} forward + backward: {FLAGS.repeat} timed")
    res, fb_times = timed(lambda: splits.append(fwd_bwd()) or splits[-1][0], FLAGS.repeat, 0, lambda: None)
    peak_fb = phase_peak_rss_mb() if per_phase else peak_rss_mb()
    out_fwd = res.detach()
    fwd_flops = None if visible is None else 4.0 * D * visible
    n_check = FLAGS.check_rows if FLAGS.check_rows is not None else (Lq if Lq <= 2048 else 64)
    rows = np.unique(np.linspace(0, Lq - 1, num=min(n_check, Lq)).astype(np.int64)) if n_check else np.array([], np.int64)
    common = {
        "spec": spec.kind, "spec_params": spec.params(), "B": B, "Hq": Hq, "Hkv": Hkv, "Lq": Lq, "Lk": Lk, "D": D,
        "dtype": FLAGS.dtype, "device": FLAGS.device, "mode": "fwdbwd", "visible_pairs": visible,
        "density": None if visible is None else visible / float(B * Hq * Lq * Lk),
        "machine": machine_info(), "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "bazel run //tools:bench -- " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }

    def row(system, t, flops, counters, note="", err=None, peak=None):
        r = dict(common)
        r.update({"backend": name, "system": system, "time_ms": None if t is None else t * 1e3,
                  "time_kind": "wall time" if t is not None else "simulated (counters only)",
                  "flops": flops, "gflops_effective": None if flops is None or t is None else flops / t / 1e9,
                  "max_abs_err": err, "max_abs_err_lse": None, "rows_checked": int(len(rows)) if err is not None else 0,
                  "counters": counters, "note": note, "peak_rss_mb": peak})
        return r

    err = None
    if len(rows):
        log(f"checking {len(rows)} rows of the forward output against the float64 reference")
        err, _ = error_vs_reference(sattn, q, k, v, spec, scale, out_fwd, None, rows)
    counters = {
        "fwd_ms": statistics.median(fwd_times) * 1e3,
        "fwd_in_fwdbwd_ms": statistics.median(s[1] for s in splits) * 1e3,
        "bwd_ms": statistics.median(s[2] for s in splits) * 1e3,
        "peak_rss_per_phase": int(per_phase),
        "rss_before_fwd_mb": rss0, "rss_before_fwdbwd_mb": rss1,
        "peak_rss_fwd_mb": peak_fwd, "peak_rss_fwdbwd_mb": peak_fb, "peak_rss_ratio": peak_fb / peak_fwd,
        "peak_above_start_fwd_mb": peak_fwd - rss0, "peak_above_start_fwdbwd_mb": peak_fb - rss1,
    }
    note = (f"fwd {counters['fwd_ms']:.1f} ms alone; bwd {counters['bwd_ms']:.1f} ms; peak RSS fwd "
            f"{peak_fwd:.0f} MB, fwd+bwd {peak_fb:.0f} MB ({counters['peak_rss_ratio']:.2f}x; above the phase's "
            f"start: {peak_fwd - rss0:.0f} vs {peak_fb - rss1:.0f} MB)")
    out_rows = [row(name, statistics.median(fb_times), None if fwd_flops is None else 2.5 * fwd_flops, counters,
                    note, err, peak_fb)]
    del res, splits
    if FLAGS.compare:
        log("running torch SDPA dense forward + backward")
        tq, tk, tv = (x.detach().clone().requires_grad_() for x in (q, k, v))

        def sdpa():
            for x in (tq, tk, tv):
                x.grad = None
            o = F.scaled_dot_product_attention(tq, tk, tv, scale=scale, enable_gqa=Hq != Hkv)
            o.backward(dout)
            return o

        _, t_sdpa = timed(sdpa, FLAGS.repeat, FLAGS.warmup, lambda: None)
        dense_flops = 2.5 * 4.0 * D * B * Hq * Lq * Lk
        out_rows.append(row("sdpa_dense_fwdbwd", statistics.median(t_sdpa), dense_flops, {},
                            f"dense attention forward + backward (different function); process peak RSS after "
                            f"it {peak_rss_mb():.0f} MB"))
        # Simulated backends (rvv: QEMU) report their builds' instruction counts instead of times.
        sim_peers = getattr(mod, "bench_fwdbwd_peers", None)
        if sim_peers is not None:
            log(f"running the forward + backward peers of {name}")
            for peer in sim_peers(q, k, v, dout, spec, scale=scale, tile=FLAGS.tile, **options):
                out_rows.append(row(peer.name, peer.time_s, None, peer.counters, peer.note))
    emit_rows(out_rows)
    return 0


# Counters worth a column in the table (all counters are in the JSON rows).
TABLE_COUNTERS = ("instructions", "vector_fraction", "bytes", "cycles", "mac_utilization", "dma_bytes",
                  "roofline_cycles")


def fmt(x, spec):
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return format("-", f">{width}") if x is None else format(x, spec)


def emit_rows(out_rows) -> None:
    """The rows to --out (JSON) and to stdout: JSON with --format json, else the table."""
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(out_rows, f, indent=1, default=float)
        log(f"wrote {len(out_rows)} rows to {FLAGS.out}")
    if FLAGS.format == "json":
        print(json.dumps(out_rows, indent=1, default=float))
    else:
        print_table(out_rows)


def print_table(rows):
    r0 = rows[0]
    print(f"{r0['spec']} {r0['spec_params']}  B={r0['B']} Hq={r0['Hq']} Hkv={r0['Hkv']} Lq={r0['Lq']} "
          f"Lk={r0['Lk']} D={r0['D']} {r0['dtype']}  density={fmt(r0['density'], '.4f')}")
    print(f"machine: {r0['machine'].get('host_cpu')} ({r0['machine'].get('cores')} cores)  {r0['date']}")
    header = f"{'system':<22} {'time ms':>10} {'eff GFLOP/s':>12} {'max err':>10} {'speedup':>8}  notes"
    print(header)
    print("-" * len(header))
    t_ref = r0["time_ms"]
    for r in rows:
        # Wall-time ratios are meaningless against a simulator: compare its counters instead.
        real_times = r0["time_kind"] == r["time_kind"] == "wall time"
        speed = (r["time_ms"] / t_ref) if (t_ref and r["time_ms"] and r is not r0 and real_times) else None
        c = r["counters"]
        notes = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()
                          if k in TABLE_COUNTERS or k.startswith("proxy_"))
        notes = "; ".join(x for x in (notes, r["note"], f"peak RSS {r['peak_rss_mb']:.0f} MB" if r["peak_rss_mb"] else "") if x)
        speed_s = fmt(speed, "7.2f") + "x" if speed else "-"
        print(f"{r['system']:<22} {fmt(r['time_ms'], '10.3f')} {fmt(r['gflops_effective'], '12.1f')} "
              f"{fmt(r['max_abs_err'], '10.2e')} {speed_s:>8}  {notes}")
    if len(rows) > 1:
        print(f"speedup = peer time / {r0['system']} time (wall-time rows only; simulators compare counters); "
              "a peer's GFLOP/s counts the FLOPs of what it computes")


if __name__ == "__main__":
    app.run(main)
