"""gpu/kernel_resources.py: kernels compile for sm_90 on a machine without a GPU, the compile
mirrors a real launch's specialisation, the report is parsed, bad arguments are named, and the EVEN
forward spills less than the masked one (docs/backends/gpu.md, "EVEN launches")."""
import os
import sys

import pytest

if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("compiles real kernels: run without TRITON_INTERPRET=1", allow_module_level=True)

# Bazel's sandbox: Triton's compile cache goes to the test's own temporary directory.
if os.environ.get("TEST_TMPDIR"):
    os.environ["TRITON_CACHE_DIR"] = os.path.join(os.environ["TEST_TMPDIR"], "triton_cache")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kernel_resources as KR  # noqa: E402


def test_forward_even_spills_less_than_masked():
    even = KR.resources("fwd", (128, 64, 4, 3), mode="plan", even=True)
    masked = KR.resources("fwd", (128, 64, 4, 3), mode="plan", even=False)
    for r in (even, masked):
        assert 0 < r["registers"] <= 255
        assert r["stack_bytes"] >= 0 and r["local_loads"] >= 0
    # The masked variant keeps the [128, D] store predicate live across the key loop.
    assert even["stack_bytes"] < masked["stack_bytes"], (even, masked)


def test_specialisation_matches_the_h100_launch(monkeypatch):
    # Run 16 on the H100 (ncu and the cubin's resource usage): the static-plan dk/dv launch used
    # 255 registers and 131,584 B of dynamic shared memory, the dq launch 128 registers (delta
    # then had its own launch). Without the launch's divisibility hints the offline compile
    # differed (98,816 B, spills).
    monkeypatch.setenv("SATTN_BWD_DELTA", "separate")
    dkdv = KR.resources("dkdv", (64, 128, 8, 2), mode="plan")
    dq = KR.resources("dq", (128, 32, 8, 4), mode="plan")
    assert dkdv["shared_bytes"] == 131584, dkdv
    assert dq["registers"] == 128 and dq["stack_bytes"] == 0, dq


def test_cli_prints_one_row(capsys):
    assert KR.main(["--kernel", "dq", "--tiles", "64,32,4,4", "--mode", "sliding", "--causal"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].split()[:3] == ["dq", "sliding", "64x32x4x4"]
    assert int(lines[-1].split()[3]) > 0          # registers


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel="attn", tiles=(64, 64, 4, 3)), "kernel: expected one of"),
    (dict(kernel="fwd", tiles=(64, 64, 4)), "tiles: expected"),
    (dict(kernel="fwd", tiles=(64, 64, 4, 3), mode="window"), "mode: expected one of"),
])
def test_bad_arguments_are_named(kwargs, match):
    kernel, tiles = kwargs.pop("kernel"), kwargs.pop("tiles")
    with pytest.raises(ValueError, match=match):
        KR.resources(kernel, tiles, **kwargs)


def test_sass_loops_reads_mma_loops_and_waits():
    sass = """
        /*0100*/                   MOV R1, c[0x0][0x28] ;
        /*0110*/                   DEPBAR.LE SB0, 0x2 ;
        /*0120*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0130*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], RZ, !UPT ;
        /*0140*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR4], R24, gsb0 ;
        /*0150*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*0160*/                   MUFU.EX2 R2, R2 ;
        /*0170*/                   @!P0 LDGSTS.E.BYPASS.128 [R3], desc[UR6][R4.64] ;
        /*0180*/               @P1 BRA 0x110 ;
        /*0190*/                   BRA 0x190;
    """
    (loop,) = KR.sass_loops(sass)
    assert (loop["start"], loop["end"], loop["instructions"]) == (0x110, 0x180, 8)
    assert loop["sequence"] == "LOADWAIT 0x2 BAR MMA 64x64x16 x2 WAIT gsb0 0x0 EX2 LDGSTS"
    assert dict(loop["top_ops"])["HGMMA"] == 2


def test_default_dkdv_plan_walk_is_not_pipelined_but_prefetch_is():
    # The finding behind SATTN_PLAN_PREFETCH (docs/backends/gpu.md): with the entry read inside
    # the iteration, 3 stages still wait for every load at the loop top; read ahead, they don't.
    plain = KR.resources("dkdv", (64, 128, 8, 3), mode="plan")
    ahead = KR.resources("dkdv", (64, 128, 8, 3), mode="plan", prefetch=True)
    assert plain["load_waits"] == ["0x0"], plain["load_waits"]
    assert any(w != "0x0" for w in ahead["load_waits"]), ahead["load_waits"]
    assert ahead["shared_bytes"] > plain["shared_bytes"]


def test_three_loop_sliding_dkdv_serializes_wgmma_and_two_loops_do_not(monkeypatch):
    # ptxas's advisory C7515 (docs/backends/gpu.md, "Planless walk loops"): the three-loop sliding
    # dk/dv compiled with every wgmma waiting for the previous one; the two-loop default does not.
    # The SASS agrees: one MMA wait per 64x64x16 MMA against one per batch.
    monkeypatch.setenv("SATTN_WALK_LOOPS", "3")
    three = KR.resources("dkdv", (64, 128, 8, 3), mode="sliding", causal=True)
    monkeypatch.setenv("SATTN_WALK_LOOPS", "2")
    two = KR.resources("dkdv", (64, 128, 8, 3), mode="sliding", causal=True)
    assert three["wgmma_serialized"] is True and two["wgmma_serialized"] is False
    waits = [lp["sequence"].count("WAIT gsb0") for lp in two["loops"]]
    assert waits and max(waits) <= 4, two["loops"]
    assert max(lp["sequence"].count("WAIT gsb0") for lp in three["loops"]) >= 8
