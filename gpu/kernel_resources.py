"""Registers, spills and shared memory of the triton backend's kernels, without a GPU.

  python gpu/kernel_resources.py --kernel dkdv --tiles 64,128,8,2 --mode plan
  python gpu/kernel_resources.py --defaults            (every kernel at its default D=128 tiles)
  (or bazel run //gpu:kernel_resources -- ...)

Compiles one kernel variant for an NVIDIA target (sm_90 unless --arch says otherwise) with the
Triton installed here and reads the cubin with the `cuobjdump` Triton ships: registers per
thread, local-memory stack (spill space), the number of local loads/stores (LDL/STL) in the SASS
and the shared memory the launch needs. Device time is scarce; this says before a GPU run whether
a change adds or removes spills (it found the bounds-mask spills the EVEN launches remove).
It does not time anything: a spill outside the hot loop costs little (see docs/backends/gpu.md).
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
import sys
import tempfile

# Triton 3.9 warns unless this is set; 1 is the behaviour the kernels are compiled with on the GPU.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from sattn_triton import backward as B  # noqa: E402
from sattn_triton import forward as F  # noqa: E402
from sattn_triton.common import (MODE_DENSE, MODE_PLAN, MODE_SLIDING, SW_NONE, SW_PLAIN,  # noqa: E402
                                 padded_head_dim)

KERNELS = {"fwd": F._fwd_kernel, "dq": B._bwd_dq_kernel, "dkdv": B._bwd_dkdv_kernel}
MODES = {"plan": MODE_PLAN, "sliding": MODE_SLIDING, "dense": MODE_DENSE}
# Pointer arguments by element type; every other upper-case argument is an int32 plan array.
_FLOAT_PTRS = {"LSE", "DELTA", "DLSE"}
_DATA_PTRS = {"Q", "K", "V", "O", "DO", "DQ", "DK", "DV"}
_FLOAT_SCALARS = {"qk_scale", "sm_scale"}
# Stride tuples by argument name: how many int32 strides each holds.
_STRIDE_TUPLES = {"sq": 3, "sk": 3, "sv": 3, "so": 3, "sl": 3, "sdo": 3, "sdq": 3, "sdk": 3, "sdv": 3}
_STRIDE_TUPLES_FWD = dict(_STRIDE_TUPLES, so=4)     # the forward's O strides include the split's


# Launch-time specialisation as the GPU machine's Triton applied it to a D=128, L=32768 launch
# (its cached TTIR): every pointer and integer argument is marked divisible by 16,
# except integers equal to 1, which become constants (MHA's `group`, the plain `dilation`).
_ONE_VALUED = {"group": 1, "dilation": 1}


def _signature(fn, constexprs: dict, dtype: str) -> dict:
    """Triton type of every argument of `fn`: constexprs, pointers by name, scalars int32."""
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in _DATA_PTRS:
            sig[name] = "*" + dtype
        elif name in _FLOAT_PTRS:
            sig[name] = "*fp32"
        elif name.isupper():
            sig[name] = "*i32"
        elif name in _FLOAT_SCALARS:
            sig[name] = "fp32"
        elif name in _STRIDE_TUPLES:
            sig[name] = ("i32",) * (_STRIDE_TUPLES_FWD if fn is F._fwd_kernel else _STRIDE_TUPLES)[name]
        else:
            sig[name] = "i32"
    return sig


def constexprs_for(kernel: str, tiles, mode: str, causal: bool, even: bool, head_dim: int,
                   block: int) -> dict:
    """The constexpr arguments a launch of `kernel` would get for these settings (plan walks: no
    token rule unless causal, no bitmaps; sliding: the plain window)."""
    m, n = tiles[0], tiles[1]
    md = MODES[mode]
    sliding = md == MODE_SLIDING
    c = dict(D=head_dim, DP=padded_head_dim(head_dim), BLK=block if md == MODE_PLAN else max(m, n),
             BLOCK_M=m, BLOCK_N=n, MODE=md, CAUSAL=causal, SW=SW_PLAIN if sliding else SW_NONE,
             BITMAP=False, WORDS=1, DOT_F32=False, PREC="ieee", EVEN=even,
             HAS_MASK=md != MODE_PLAN or causal)
    if kernel == "fwd":
        c.update(NUM_SPLITS=1, PACK=1)
    elif kernel == "dq":
        c.update(HAS_DLSE=False)
    else:
        c.update(GROUP_LOOP=False)
    return c


def _ptxas(arch: int) -> str:
    """The ptxas Triton itself runs for sm_<arch> (Triton 3.9 uses its newer `ptxas-blackwell` for
    sm_90 too: the PTX it emits is too new for the plain `ptxas` it also ships)."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        return get_ptxas(arch).path
    except (ImportError, AttributeError):
        return _tool("ptxas")


def _tool(name: str) -> str:
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: not shipped with this Triton ({path})")
    return path


_SASS_LINE = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


def sass_loops(sass: str) -> list[dict]:
    """The loops of a SASS listing that issue tensor-core MMAs (HGMMA): for each, its address range,
    instruction count, the most frequent opcodes and the sequence of MMA groups and waits in
    program order (`WAIT gsb0 n` for a wgmma wait, `LOADWAIT n` for a cp.async wait, `BAR` for a
    CTA barrier, `LDGSTS xk` for k async copies, `EX2 xk`). A loop is a backward branch's range."""
    ins = [(int(m.group(1), 16), m.group(2)) for m in map(_SASS_LINE.match, sass.splitlines()) if m]
    loops = []
    for addr, text in ins:
        m = re.search(r"\bBRA\s+(?:`\()?\s*0x([0-9a-f]+)", text)
        if not m or int(m.group(1), 16) >= addr:
            continue
        body = [t for a, t in ins if int(m.group(1), 16) <= a <= addr]
        if not any("HGMMA" in t for t in body):
            continue
        ops = {}
        steps = []
        for t in body:
            op = re.sub(r"^@!?U?P\w+\s+", "", t).split()[0]
            ops[op.split(".")[0]] = ops.get(op.split(".")[0], 0) + 1
            if op.startswith("HGMMA"):
                step = "MMA " + op.split(".")[1]
            elif op.startswith("WARPGROUP.DEPBAR"):
                step = "WAIT gsb0 " + t.split()[-1]
            elif op.startswith("DEPBAR"):
                step = "LOADWAIT " + t.split()[-1]
            elif op.startswith("BAR.SYNC"):
                step = "BAR"
            elif op.startswith("LDGSTS"):
                step = "LDGSTS"
            elif op.startswith("MUFU.EX2"):
                step = "EX2"
            else:
                continue
            if steps and steps[-1][0] == step:
                steps[-1][1] += 1
            else:
                steps.append([step, 1])
        loops.append(dict(start=int(m.group(1), 16), end=addr, instructions=len(body),
                          top_ops=sorted(ops.items(), key=lambda kv: -kv[1])[:10],
                          sequence=" ".join(f"{s} x{n}" if n > 1 else s for s, n in steps)))
    return loops


def cubin_sass(path: str) -> str:
    """SASS of a cubin file (e.g. one from a Triton cache dump of FlexAttention's kernels)."""
    return subprocess.run([_tool("cuobjdump"), "-sass", path], capture_output=True, text=True,
                          check=True).stdout


def resources(kernel: str, tiles, *, mode: str = "plan", causal: bool = False, even: bool = True,
              head_dim: int = 128, block: int = 128, dtype: str = "bf16", arch: int = 90,
              sass_path: str | None = None, maxnreg: int | None = None) -> dict:
    """Compiles `kernel` ('fwd', 'dq' or 'dkdv') with tiles (BLOCK_M, BLOCK_N, warps, stages) for
    sm_<arch> and returns {'registers', 'stack_bytes', 'local_loads', 'local_stores',
    'shared_bytes', 'load_waits', 'loops' (`sass_loops`)}; sass_path, if given, receives the
    disassembly.
    'load_waits' lists the distinct cp.async waits (`DEPBAR.LE SB0, n`): n > 0 means the loop
    keeps n load groups in flight while it computes (deeper pipelining). 'wgmma_serialized' is
    ptxas's performance advisory C7515 (rerun on the PTX with -v): every wgmma then waits for the
    previous one, so MMAs no longer overlap each other or the softmax math."""
    if F.INTERPRETED:
        raise RuntimeError("kernel_resources compiles real kernels: unset TRITON_INTERPRET (the "
                           "interpreter replaced them when sattn_triton was imported)")
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {sorted(KERNELS)}, got {kernel!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {sorted(MODES)}, got {mode!r}")
    if len(tiles) != 4:
        raise ValueError(f"tiles: expected (BLOCK_M, BLOCK_N, warps, stages), got {tiles!r}")
    fn = KERNELS[kernel]
    params = list(inspect.signature(fn.fn).parameters)
    const = constexprs_for(kernel, tiles, mode, causal, even, head_dim, block)
    const.update({k: v for k, v in _ONE_VALUED.items() if k in params})
    sig = _signature(fn, const, dtype)
    div16 = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(params)
             if isinstance(sig[name], str) and (sig[name].startswith("*") or sig[name] == "i32")}
    div16.update({(i, j): [["tt.divisibility", 16]] for i, name in enumerate(params)
                  if isinstance(sig[name], tuple) for j in range(len(sig[name]))})
    src = ASTSource(fn=fn, signature=sig, constexprs={(params.index(k),): v for k, v in const.items()},
                    attrs=div16)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=tiles[2], num_stages=tiles[3], maxnreg=maxnreg))
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "kernel.cubin")
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", cubin], capture_output=True,
                               text=True, check=True).stdout
        sass = cubin_sass(cubin)
        ptx = os.path.join(tmp, "kernel.ptx")
        with open(ptx, "w") as f:
            f.write(compiled.asm["ptx"])
        ptxas = subprocess.run([_ptxas(arch), "-v", f"-arch=sm_{arch}a" if arch >= 90 else f"-arch=sm_{arch}",
                                ptx, "-o", os.path.join(tmp, "check.cubin")]
                               + ([f"--maxrregcount={maxnreg}"] if maxnreg else []),
                               capture_output=True, text=True)
    if sass_path:
        with open(sass_path, "w") as f:
            f.write(sass)
    reg = re.search(r"REG:(\d+)", usage)
    stack = re.search(r"STACK:(\d+)", usage)
    if reg is None or stack is None:
        raise RuntimeError(f"cuobjdump: no resource line in {usage!r}")
    return dict(registers=int(reg.group(1)), stack_bytes=int(stack.group(1)),
                local_loads=len(re.findall(r"\bLDL\b", sass)), local_stores=len(re.findall(r"\bSTL\b", sass)),
                shared_bytes=int(compiled.metadata.shared), loops=sass_loops(sass),
                wgmma_serialized=("C7515" in ptxas.stdout + ptxas.stderr) if ptxas.returncode == 0 else None,
                load_waits=sorted(set(re.findall(r"DEPBAR\.LE SB0, (0x[0-9a-f]+)", sass))))


def default_launches(head_dim: int = 128):
    """(kernel, tiles, mode, causal, register cap) of the default launches at this head dim:
    static plan, the causal sliding window and dense, as `fwd_tiles` / `bwd_tiles` and
    `dq_register_cap` choose them on a GPU."""
    out = []
    for mode, causal in (("plan", False), ("sliding", True), ("dense", False)):
        md = MODES[mode]
        fwd = F.fwd_tiles(head_dim, 128 if md == MODE_PLAN else 1 << 30, 4096, md)
        dq, kv = B.bwd_tiles(head_dim, 128 if md == MODE_PLAN else 1 << 30, md)
        for kernel, tiles in (("fwd", fwd), ("dq", dq), ("dkdv", kv)):
            cap = B.dq_register_cap(md, tiles[2]) if kernel == "dq" else None
            out.append((kernel, tuple(tiles), mode, causal, cap))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", choices=sorted(KERNELS), help="which kernel to compile")
    ap.add_argument("--tiles", help="BLOCK_M,BLOCK_N,warps,stages (dq: queries,keys; dkdv: queries,keys)")
    ap.add_argument("--mode", choices=sorted(MODES), default="plan", help="plan walk or planless path")
    ap.add_argument("--causal", action="store_true", help="causal token rule")
    ap.add_argument("--ragged", action="store_true", help="compile the masked (not EVEN) variant")
    ap.add_argument("--head_dim", type=int, default=128)
    ap.add_argument("--block", type=int, default=128, help="plan block (mode plan)")
    ap.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    ap.add_argument("--arch", type=int, default=90, help="SM version, e.g. 90 for H100")
    ap.add_argument("--defaults", action="store_true", help="every kernel at its default tiles")
    ap.add_argument("--sass", help="write the SASS of the (single) kernel to this file")
    ap.add_argument("--maxnreg", type=int, help="register cap per thread (Triton's maxnreg option)")
    ap.add_argument("--loops", action="store_true", help="also print each tensor-core loop's instruction "
                    "mix and its MMA / wait sequence")
    ap.add_argument("--cubin", help="only print the loops of this cubin (e.g. FlexAttention's, from a "
                    "Triton cache dump) and exit")
    args = ap.parse_args(argv)
    if args.cubin:
        print_loops(sass_loops(cubin_sass(args.cubin)))
        return 0
    if args.defaults:
        jobs = default_launches(args.head_dim)
    elif args.kernel and args.tiles:
        jobs = [(args.kernel, tuple(int(x) for x in args.tiles.split(",")), args.mode, args.causal,
                 args.maxnreg)]
    else:
        ap.error("give --kernel and --tiles, or --defaults")
    print(f"# Triton {triton.__version__}, sm_{args.arch}, D={args.head_dim}, {args.dtype}, "
          f"{'masked (ragged)' if args.ragged else 'EVEN'} variant", flush=True)
    print(f"{'kernel':6} {'mode':8} {'tiles':14} {'regs':>5} {'stack B':>8} {'LDL':>5} {'STL':>5} {'smem B':>7}"
          "  wgmma   load waits")
    for kernel, tiles, mode, causal, cap in jobs:
        r = resources(kernel, tiles, mode=mode, causal=causal, even=not args.ragged,
                      head_dim=args.head_dim, block=args.block, dtype=args.dtype, arch=args.arch,
                      sass_path=args.sass if len(jobs) == 1 else None, maxnreg=cap)
        print(f"{kernel:6} {mode:8} {'x'.join(map(str, tiles)):14} {r['registers']:5d} {r['stack_bytes']:8d} "
              f"{r['local_loads']:5d} {r['local_stores']:5d} {r['shared_bytes']:7d}  "
              f"{_WGMMA[r['wgmma_serialized']]:6}  {','.join(r['load_waits']) or '-'}", flush=True)
        if args.loops:
            print_loops(r["loops"])
    return 0


_WGMMA = {True: "serial", False: "async", None: "?"}   # None: ptxas could not re-assemble the PTX


def print_loops(loops) -> None:
    for lp in loops:
        ops = ", ".join(f"{k} {v}" for k, v in lp["top_ops"])
        print(f"  loop 0x{lp['start']:x}-0x{lp['end']:x}: {lp['instructions']} instructions ({ops})")
        print(f"    {lp['sequence']}")


if __name__ == "__main__":
    sys.exit(main())
