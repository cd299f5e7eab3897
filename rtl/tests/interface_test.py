"""The generated interface agrees with rtl/spec/commands.json everywhere it lands: the SV package,
the C header, the Python constants, and the machine code of the riscv64 driver."""
import json
import os
import re
import subprocess

import sattn_rocc_consts as C

HERE = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "sattn"), "rtl")


def _path(rel):
    return os.path.join(HERE, rel)


def _table():
    with open(_path("spec/commands.json")) as f:
        return json.load(f)


def test_python_constants_match_table():
    t = _table()
    assert C.FUNCT == {c["name"]: c["funct7"] for c in t["commands"]}
    assert C.ERRORS == {e["code"]: e["name"] for e in t["errors"]}
    assert C.DESCRIPTOR == [d["name"] for d in t["descriptor"]]
    assert C.COPY_DESCRIPTOR == [d["name"] for d in t["copy_descriptor"]]
    assert C.BWD_DESCRIPTOR == [d["name"] for d in t["bwd_descriptor"]]
    assert len(C.DESCRIPTOR) == C.DESC_WORDS and len(C.BWD_DESCRIPTOR) == C.BDESC_WORDS
    assert len(C.EXP_LUT) == 256 and C.EXP_LUT[0] == 65535 and C.EXP_LUT[255] < 33000


def test_sv_and_c_match_table():
    t = _table()
    sv = open(_path("gen/sattn_rocc_pkg.sv")).read()
    ch = open(_path("gen/sattn_rocc_cmds.h")).read()
    for c in t["commands"]:
        assert re.search(rf"FUNCT_{c['name']} = 7'd{c['funct7']};", sv)
        assert re.search(rf"#define SATTN_ROCC_FUNCT_{c['name']} {c['funct7']}\b", ch)
    for i, d in enumerate(t["descriptor"]):
        assert f"DESC_{d['name'].upper()} = {i};" in sv
    # The C structs list the fields in table order.
    fields = re.findall(r"^  uint64_t (\w+);", ch, re.M)
    assert fields == ([d["name"] for d in t["descriptor"]] + [d["name"] for d in t["copy_descriptor"]] +
                      [d["name"] for d in t["bwd_descriptor"]])
    for i, d in enumerate(t["copy_descriptor"]):
        assert f"CDESC_{d['name'].upper()} = {i};" in sv
    for i, d in enumerate(t["bwd_descriptor"]):
        assert f"BDESC_{d['name'].upper()} = {i};" in sv
    for e in t["errors"]:
        assert f"ERR_{e['name']} = 8'd{e['code']};" in sv
        assert f"SATTN_ROCC_ERR_{e['name']} = {e['code']}," in ch


def test_riscv_driver_encodes_every_command():
    """Decode the custom-0 words in the cross-compiled driver: opcode 0x0b, funct3 = 7 (xd, xs1,
    xs2), and exactly the table's funct7 values."""
    obj = _path("driver_rv64.o")
    dis = subprocess.run(["llvm-objdump-19", "-d", obj], check=True, capture_output=True, text=True).stdout
    words = [int(w, 16) for w in re.findall(r"^\s+[0-9a-f]+:\s+([0-9a-f]{8})\s", dis, re.M)]
    custom = [w for w in words if w & 0x7F == C.OPCODE]
    assert custom, "no custom-0 instruction in the riscv64 driver"
    assert all((w >> 12) & 7 == 7 for w in custom)
    assert sorted({w >> 25 for w in custom}) == sorted(C.FUNCT.values())
