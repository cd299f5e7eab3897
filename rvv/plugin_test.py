"""The counting plugin against a program with a known instruction mix (rvv/plugin/probe.cc)."""
import os
import subprocess

from sattn.backends import rvv


def run_probe(tmp_path, vlen):
    plugin, probe = rvv._find(rvv.PLUGIN), rvv._find("plugin_probe_riscv64")
    assert plugin and probe, "plugin or probe not in runfiles"
    out = tmp_path / f"counts{vlen}.txt"
    proc = subprocess.run([rvv._qemu(), "-cpu", f"rv64,v=true,vext_spec=v1.0,vlen={vlen},elen=64",
                           "-plugin", f"{plugin},out={out}", str(probe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "8"  # buf[1] = (2 + 2) * 2: the vector ops really ran
    return rvv.parse_counts(out.read_text())


def test_region_counts_are_exact(tmp_path):
    for vlen in (128, 256):
        c = run_probe(tmp_path, vlen)
        assert c["region.valid"] == 1
        region = {k[len("region."):]: v for k, v in c.items() if k.startswith("region.")}
        # li t4, 8 is an ALU op; the end marker (addi x0, x0, 0x7e2) counts as scalar ALU too.
        assert region["scalar_alu"] == 4 + 1 + 1, region
        assert region["scalar_mem"] == 2 and region["scalar_mem_bytes"] == 16, region
        assert region["branch"] == 1, region
        assert region["vec_cfg"] == 1, region
        assert region["vec_arith"] == 2 and region["vec_arith_reg_ops"] == 4, region
        assert region["vec_mem"] == 3 and region["vec_mem_nonunit"] == 1, region
        assert region["vec_mem_bytes"] == 96 and region["vec_mem_nonunit_bytes"] == 32, region
        assert region["insns"] == 6 + 2 + 1 + 1 + 2 + 3, region
        assert c["total.insns"] > region["insns"]


def test_bad_plugin_argument(tmp_path):
    plugin, probe = rvv._find(rvv.PLUGIN), rvv._find("plugin_probe_riscv64")
    proc = subprocess.run([rvv._qemu(), "-cpu", "rv64,v=true", "-plugin", f"{plugin},bogus=1", str(probe)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "bogus=1" in proc.stderr
