"""gpu/kernel_resources.py: kernels compile for sm_90 on a machine without a GPU, the resource
report is parsed, bad arguments are named, and the EVEN launch of the dk/dv kernel spills less
than the masked one (the reason EVEN exists; docs/backends/gpu.md, "EVEN launches")."""
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


def test_dkdv_even_spills_less_than_masked():
    even = KR.resources("dkdv", (64, 128, 8, 2), mode="plan", even=True)
    masked = KR.resources("dkdv", (64, 128, 8, 2), mode="plan", even=False)
    for r in (even, masked):
        assert 0 < r["registers"] <= 255
        assert r["shared_bytes"] > 0
        assert r["stack_bytes"] >= 0 and r["local_loads"] >= 0
    # The masked variant keeps the [128, D] store predicate live across the query loop.
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
