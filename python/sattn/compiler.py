"""The MLIR compiler path from Python: `sattn.compile(spec, shape, target=...)`.

    res = sattn.compile(sattn.BlockTopK(block=64, keep=0.125), (1, 4, 4, 2048, 2048, 64), target="rvv")
    res.lowered      # the LLVM-dialect module sattn-opt produced
    res.llvm_ir      # LLVM IR (mlir-translate)
    res.object_path  # riscv64 ELF object defining `res.function` (and `_mlir_ciface_<function>`)

The function takes (q, k, v, out) as memrefs of the static shape: q/out (B, Hq, Lq, D), k/v
(B, Hkv, Lk, D), float32, row-major (MLIR's C interface: one descriptor pointer per argument).
Data-dependent plans call `sattn_rt_plan_*` (mlir/runtime/sattn_rt.h) at run time; the RoCC
target calls `sattn_rocc_attention_f32`. docs/mlir.md describes the pipeline.

`spec=None` asks --sattn-select-spec to choose (at `density`) for the target's profile; the
chosen spec is returned in `res.chosen_spec`.

Tools: sattn-opt from $SATTN_OPT, else Bazel runfiles (//mlir:sattn_opt_host), else PATH;
mlir-translate and clang from $SATTN_MLIR_TRANSLATE / $SATTN_CLANG, else mlir-translate-19 and
clang-19 on PATH.
"""
from __future__ import annotations

import dataclasses
import numbers
import os
import re
import shutil
import subprocess
import tempfile

from sattn import specs as S

TARGETS = {
    # target: (sattn-opt pipeline flags, select-spec profile, clang -march)
    "rvv": ("--sattn-rvv-pipeline=profile=rvv", "rvv", "rv64gcv_zvl256b"),
    "rvv-vlen128": ("--sattn-rvv-pipeline=profile=lowpower vector-width=32", "lowpower", "rv64gcv"),
    "rvv-vlen512": ("--sattn-rvv-pipeline=profile=highperf vector-width=128", "highperf", "rv64gcv_zvl512b"),
    # vector-length agnostic: scalable vector<[16]xf32> rows, any VLEN >= 128
    "rvv-vla": ("--sattn-rvv-pipeline=profile=rvv scalable=true vector-width=16", "rvv", "rv64gcv"),
    "rocc": ("--sattn-rocc-pipeline", "rocc", "rv64gc"),
}


class CompileError(RuntimeError):
    """A tool of the pipeline failed; the message has its command and stderr."""


@dataclasses.dataclass
class CompileResult:
    target: str
    shape: tuple            # (B, Hq, Hkv, Lq, Lk, D)
    function: str
    mlir: str               # the input module (sattn dialect)
    lowered: str            # after sattn-opt: LLVM dialect
    llvm_ir: str
    object_path: str        # riscv64 ELF relocatable object
    chosen_spec: str | None  # the #sattn attribute --sattn-select-spec picked (spec=None), else None
    commands: list          # the commands that ran, for reproduction


def _find_tool(env: str, runfile: str | None, names: tuple) -> str:
    path = os.environ.get(env)
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"${env}={path}: no such file")
        return path
    if runfile:
        here = os.path.dirname(os.path.abspath(__file__))
        roots = [os.environ.get("RUNFILES_DIR"), os.environ.get("TEST_SRCDIR"),
                 os.path.normpath(os.path.join(here, "..", "..", ".."))]
        for root in filter(None, roots):
            p = os.path.join(root, "sattn", runfile)
            if os.path.exists(p):
                return p
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    raise FileNotFoundError(f"{names[0]} not found: set ${env}, or build it (bazel build //mlir:sattn-opt) "
                            "and run under Bazel, or install the LLVM 19 tools (tools/setup.sh)")


def _bool(b: bool) -> str:
    return "true" if b else "false"


def spec_attr(spec) -> str:
    """The #sattn attribute text of a sattn spec."""
    if isinstance(spec, S.Dense):
        return f"#sattn.dense<causal = {_bool(spec.causal)}>"
    if isinstance(spec, S.SlidingWindow):
        return (f"#sattn.sliding_window<window = {spec.window}, causal = {_bool(spec.causal)}, "
                f"dilation = {spec.dilation}, global_tokens = {spec.global_tokens}>")
    if isinstance(spec, S.BlockTopK):
        return (f"#sattn.block_topk<block = {spec.block}, keep = {float(spec.keep)!r}, "
                f"global_blocks = {spec.global_blocks}, local_blocks = {spec.local_blocks}, "
                f"causal = {_bool(spec.causal)}, score = \"{spec.score}\">")
    if isinstance(spec, S.BigBird):
        return (f"#sattn.bigbird<block = {spec.block}, window_blocks = {spec.window_blocks}, "
                f"global_blocks = {spec.global_blocks}, random_blocks = {spec.random_blocks}, "
                f"seed = {spec.seed}, causal = {_bool(spec.causal)}>")
    if isinstance(spec, S.TopKPerQuery):
        return f"#sattn.topk_per_query<k = {spec.k}, causal = {_bool(spec.causal)}>"
    raise TypeError(f"spec: expected a sattn spec (Dense, SlidingWindow, BlockTopK, BigBird, "
                    f"TopKPerQuery) or None, got {type(spec).__name__}")


def _shape6(shape) -> tuple:
    if not isinstance(shape, (tuple, list)) or len(shape) not in (4, 6):
        raise ValueError(f"shape: expected (B, H, L, D) or (B, Hq, Hkv, Lq, Lk, D), got {shape!r}")
    for i, x in enumerate(shape):
        if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1:
            raise ValueError(f"shape[{i}]: expected an integer >= 1, got {x!r}")
    if len(shape) == 4:
        B, H, L, D = (int(x) for x in shape)
        return (B, H, H, L, L, D)
    B, Hq, Hkv, Lq, Lk, D = (int(x) for x in shape)
    if Hq % Hkv:
        raise ValueError(f"shape: Hq={Hq} must be a multiple of Hkv={Hkv}")
    if Lq > Lk:
        raise ValueError(f"shape: Lq={Lq} must be <= Lk={Lk}")
    return (B, Hq, Hkv, Lq, Lk, D)


def module_text(spec, shape, *, function="sattn_attention", scale=None, density=None, causal=False) -> str:
    """The sattn-dialect module compile() feeds to sattn-opt."""
    B, Hq, Hkv, Lq, Lk, D = _shape6(shape)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", function or ""):
        raise ValueError(f"function: expected a C identifier, got {function!r}")
    attrs = []
    if spec is not None:
        attrs.append(f"spec = {spec_attr(spec)}")
        if density is not None:
            raise ValueError("density: only used when spec=None (select-spec chooses the spec)")
    else:
        if density is None:
            raise ValueError("density: spec=None needs the kept fraction of key blocks to aim for")
        if not isinstance(density, numbers.Real) or not 0.0 < float(density) <= 1.0:
            raise ValueError(f"density: expected a value in (0, 1], got {density!r}")
        attrs.append(f"density = {float(density)!r} : f64")
        if causal:
            attrs.append("causal")
    if scale is not None:
        if not isinstance(scale, numbers.Real) or not float(scale) > 0.0:
            raise ValueError(f"scale: expected a number > 0, got {scale!r}")
        attrs.append(f"scale = {float(scale)!r} : f64")
    qt = f"memref<{B}x{Hq}x{Lq}x{D}xf32>"
    kt = f"memref<{B}x{Hkv}x{Lk}x{D}xf32>"
    return (f"func.func @{function}(%q: {qt}, %k: {kt}, %v: {kt}, %o: {qt}) "
            f"attributes {{llvm.emit_c_interface}} {{\n"
            f"  sattn.attention %q, %k, %v, %o {{{', '.join(attrs)}}} : {qt}, {kt}, {kt}, {qt}\n"
            f"  return\n}}\n")


def _run(cmd, commands, stdin=None):
    commands.append(" ".join(cmd))
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def compile(spec, shape, target: str = "rvv", *, scale=None, density=None, causal: bool = False,
            function: str = "sattn_attention", out_dir: str | None = None, fuse: bool = True) -> CompileResult:
    """Lowers attention with `spec` for `shape` through sattn-opt, mlir-translate and clang.

    target: "rvv" (VLEN >= 256, 64-lane vectors), "rvv-vlen128", "rvv-vlen512", "rvv-vla"
    (scalable vectors, any VLEN) or "rocc".
    spec=None: --sattn-select-spec picks dense or block_topk at `density` (and `causal`).
    out_dir: where the .mlir/.ll/.o files go (default: a new temporary directory, kept).
    """
    if target not in TARGETS:
        raise ValueError(f"target: expected one of {sorted(TARGETS)}, got {target!r}")
    if spec is not None and not isinstance(spec, S.Spec):
        spec_attr(spec)  # raises the TypeError naming `spec`
    if spec is None and causal not in (True, False):
        raise TypeError(f"causal: expected a bool, got {causal!r}")
    shape6 = _shape6(shape)
    text = module_text(spec, shape6, function=function, scale=scale, density=density, causal=causal)
    pipeline, profile, march = TARGETS[target]
    if not fuse:
        if target == "rocc":
            raise ValueError("fuse: the rocc target has no tile-level code to leave unfused")
        pipeline += " fuse=false"
    opt = _find_tool("SATTN_OPT", "mlir/sattn-opt-host", ("sattn-opt",))
    translate = _find_tool("SATTN_MLIR_TRANSLATE", None, ("mlir-translate-19", "mlir-translate"))
    clang = _find_tool("SATTN_CLANG", None, ("clang-19", "clang"))
    out_dir = out_dir or tempfile.mkdtemp(prefix="sattn-compile-")
    os.makedirs(out_dir, exist_ok=True)
    src = os.path.join(out_dir, function + ".mlir")
    low = os.path.join(out_dir, function + ".llvm.mlir")
    ll = os.path.join(out_dir, function + ".ll")
    obj = os.path.join(out_dir, function + ".o")
    with open(src, "w") as f:
        f.write(text)
    commands = []
    chosen = None
    if spec is None:
        picked = _run([opt, src, f"--sattn-select-spec=profile={profile}"], commands)
        m = re.search(r"spec = (#sattn\.[a-z_]+<[^>]*>)", picked)
        chosen = m.group(1) if m else None
    _run([opt, src, pipeline, "-o", low], commands)
    _run([translate, "--mlir-to-llvmir", low, "-o", ll], commands)
    _run([clang, "--target=riscv64-linux-gnu", f"-march={march}", "-O2", "-Wno-override-module", "-c", ll,
          "-o", obj], commands)
    with open(low) as f:
        lowered = f.read()
    with open(ll) as f:
        llvm_ir = f.read()
    return CompileResult(target=target, shape=shape6, function=function, mlir=text, lowered=lowered,
                         llvm_ir=llvm_ir, object_path=obj, chosen_spec=chosen, commands=commands)
