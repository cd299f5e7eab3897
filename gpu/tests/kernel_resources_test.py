"""gpu/kernel_resources.py: kernels compile for sm_90 on a machine without a GPU, the report is
parsed, bad arguments are named, the EVEN forward spills less than the masked one
(docs/backends/gpu.md, "EVEN launches"), and the pipelining findings behind the kernels' plan and
planless walks hold."""
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


def test_plan_walks_pipeline_only_where_entries_are_read_ahead():
    # common.walk_entry: the backward's plan walks read each entry one tile ahead, so at 3 stages
    # the dk/dv loop keeps loads in flight; the forward reads its entry inside the iteration and
    # waits for every load at the loop top.
    dkdv = KR.resources("dkdv", (64, 128, 8, 3), mode="plan")
    fwd = KR.resources("fwd", (128, 64, 4, 3), mode="plan")
    assert any(w != "0x0" for w in dkdv["load_waits"]), dkdv["load_waits"]
    assert fwd["load_waits"] == ["0x0"], fwd["load_waits"]


def test_sliding_dkdv_keeps_wgmma_asynchronous():
    # ptxas's advisory C7515 (sattn_triton/common.py, "planless full/partial split"): the two-loop sliding dk/dv
    # compiles without every wgmma waiting for the previous one; the SASS agrees (a few MMA waits
    # per loop, not one per 64x64x16 MMA).
    two = KR.resources("dkdv", (64, 128, 8, 3), mode="sliding", causal=True)
    assert two["wgmma_serialized"] is False
    waits = [lp["sequence"].count("WAIT gsb0") for lp in two["loops"]]
    assert waits and max(waits) <= 4, two["loops"]
