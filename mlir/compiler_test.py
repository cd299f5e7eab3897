"""sattn.compile: spec + shape -> lowered IR and a riscv64 object, for every target."""
import struct

import pytest

import sattn
from sattn import compiler
from sattn import specs as S

EM_RISCV = 243


def _elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", "not an ELF file"
    return struct.unpack_from("<H", head, 18)[0]


@pytest.mark.parametrize("target", sorted(compiler.TARGETS))
def test_block_topk_every_target(target, tmp_path):
    res = sattn.compile(S.BlockTopK(block=32, keep=0.25, causal=True), (1, 2, 1, 128, 128, 64), target=target,
                        out_dir=str(tmp_path))
    assert res.shape == (1, 2, 1, 128, 128, 64)
    assert "sattn.attention" in res.mlir and "#sattn.block_topk<block = 32" in res.mlir
    assert "llvm.func @sattn_attention" in res.lowered and "sattn." not in res.lowered.replace("sattn_", "")
    assert "define void @_mlir_ciface_sattn_attention" in res.llvm_ir
    assert _elf_machine(res.object_path) == EM_RISCV
    # The data-dependent plan is the shared planner's, called at run time.
    assert "@sattn_rt_plan_build" in res.llvm_ir
    if target == "rocc":
        assert "@sattn_rocc_attention_f32" in res.llvm_ir
    else:
        assert "@sattn_rocc_attention_f32" not in res.llvm_ir
    assert res.chosen_spec is None
    assert len(res.commands) == 3


def test_constant_plan_and_scale(tmp_path):
    res = sattn.compile(S.SlidingWindow(window=8, causal=True, dilation=2), (1, 1, 40, 16), scale=0.5,
                        out_dir=str(tmp_path))
    assert "scale = 5.000000e-01" in res.lowered or "5.000000e-01" in res.lowered
    assert "__sattn_plan0_row_ptr" in res.llvm_ir       # folded at compile time
    assert "sattn_rt_plan_build" not in res.llvm_ir


def test_select_spec_reports_its_choice(tmp_path):
    res = sattn.compile(None, (1, 1, 1, 2048, 2048, 64), density=0.125, out_dir=str(tmp_path))
    assert res.chosen_spec == "#sattn.block_topk<block = 128>"
    short = sattn.compile(None, (1, 1, 64, 64), density=0.125, causal=True, out_dir=str(tmp_path / "s"))
    assert short.chosen_spec == "#sattn.dense<causal = true>"


def test_unfused(tmp_path):
    res = sattn.compile(S.Dense(causal=True), (1, 1, 64, 8), fuse=False, out_dir=str(tmp_path))
    assert _elf_machine(res.object_path) == EM_RISCV


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(spec="dense", shape=(1, 1, 8, 8)), TypeError, "spec: expected a sattn spec"),
    (dict(spec=S.Dense(), shape=(1, 8, 8)), ValueError, "shape: expected (B, H, L, D)"),
    (dict(spec=S.Dense(), shape=(1, 1, 0, 8)), ValueError, "shape[2]: expected an integer >= 1"),
    (dict(spec=S.Dense(), shape=(1, 3, 2, 8, 8, 8)), ValueError, "Hq=3 must be a multiple of Hkv=2"),
    (dict(spec=S.Dense(), shape=(1, 1, 1, 9, 8, 8)), ValueError, "Lq=9 must be <= Lk=8"),
    (dict(spec=S.Dense(), shape=(1, 1, 8, 8), target="gpu"), ValueError, "target: expected one of"),
    (dict(spec=None, shape=(1, 1, 8, 8)), ValueError, "density: spec=None needs"),
    (dict(spec=None, shape=(1, 1, 8, 8), density=1.5), ValueError, "density: expected a value in (0, 1]"),
    (dict(spec=S.Dense(), shape=(1, 1, 8, 8), density=0.5), ValueError, "density: only used when spec=None"),
    (dict(spec=S.Dense(), shape=(1, 1, 8, 8), scale=-1.0), ValueError, "scale: expected a number > 0"),
    (dict(spec=S.Dense(), shape=(1, 1, 8, 8), function="9x"), ValueError, "function: expected a C identifier"),
    (dict(spec=S.Dense(), shape=(1, 1, 8, 8), target="rocc", fuse=False), ValueError, "fuse: the rocc target"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, words):
    spec, shape = kwargs.pop("spec"), kwargs.pop("shape")
    with pytest.raises(exc) as e:
        sattn.compile(spec, shape, **kwargs)
    assert words in str(e.value)


def test_rocc_rejects_what_the_accelerator_cannot_run():
    with pytest.raises(compiler.CompileError) as e:
        sattn.compile(S.BlockTopK(block=128), (1, 1, 256, 64), target="rocc")
    assert "does not fit the RoCC accelerator" in str(e.value)
