"""spec/schema.json against everything that restates it: generated files, docs tables, the MLIR
attributes, the Python classes, the C++ checks (through sattn._cc) and the tolerance constants."""
import dataclasses
import importlib.util
import os
import shutil

import numpy as np
import pytest

import sattn
from sattn import _schema, specs as S

ROOT = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", "sattn"))
if not os.path.exists(os.path.join(ROOT, "spec", "schema.json")):  # run by hand from the repo
    ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _generator():
    spec = importlib.util.spec_from_file_location("spec_schema", os.path.join(ROOT, "tools", "spec_schema.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()
SCHEMA = GEN.load(ROOT)


def test_nothing_has_drifted():
    assert GEN.drift(ROOT) == []


def _copy_tree(tmp_path):
    files = [GEN.SCHEMA, GEN.PY_OUT, GEN.H_OUT, GEN.INC_OUT, GEN.MLIR_TD, GEN.ROCC_PY, *GEN.DOCS]
    for rel in files:
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), dst)
        dst.chmod(0o644)
    return tmp_path


@pytest.mark.parametrize("rel,old,new", [
    (GEN.H_OUT, "int32_t window = 256;", "int32_t window = 0;"),              # the drift of issue 19
    (GEN.INC_OUT, "s.block > 4096", "s.block > 8192"),
    (GEN.PY_OUT, "'default': 0.125", "'default': 0.25"),
    ("docs/contract.md", "| `keep` | float | `0.125`", "| `keep` | float | `0.25`"),
    (GEN.MLIR_TD, 'Sattn_I64Param<"256">:$window', 'Sattn_I64Param<"0">:$window'),
    (GEN.MLIR_TD, 'Sattn_F64Param<"0.125">:$keep', 'Sattn_F64Param<"0.5">:$keep'),
    (GEN.ROCC_PY, "OUT_ATOL_REL = 0.03", "OUT_ATOL_REL = 0.05"),
])
def test_a_hand_edit_is_caught(tmp_path, rel, old, new):
    root = _copy_tree(tmp_path)
    path = root / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))
    problems = GEN.drift(str(root))
    assert len(problems) == 1 and problems[0].startswith(rel), problems


def test_a_new_field_reaches_every_generated_file(tmp_path):
    import json
    root = _copy_tree(tmp_path)
    schema = json.loads((root / GEN.SCHEMA).read_text())
    schema["specs"][1]["fields"].append({"name": "sinks", "type": "int32", "default": 0, "min": 0,
                                         "doc": "Attention sinks."})
    schema["cc_order"].append("sinks")
    (root / GEN.SCHEMA).write_text(json.dumps(schema))
    stale = {p.split(":")[0] for p in GEN.drift(str(root))}
    assert {GEN.PY_OUT, GEN.H_OUT, GEN.INC_OUT, "docs/contract.md", "docs/specs.md", GEN.MLIR_TD} <= stale
    GEN.main(["--write", "--root", str(root)])
    assert "int32_t sinks = 0;" in (root / GEN.H_OUT).read_text()
    assert 'Bad("sinks", "an integer >= 0"' in (root / GEN.INC_OUT).read_text()
    assert [p.split(":")[0] for p in GEN.drift(str(root))] == [GEN.MLIR_TD]  # the .td is edited by hand


def test_python_classes_are_the_schema():
    for cls in S.CONTRACT_SPECS:
        sp = _schema.SPECS[cls.__name__]
        got = [(f.name, f.default) for f in dataclasses.fields(cls)]
        assert got == [(f["name"], f["default"]) for f in sp["fields"]]
        assert cls().to_fields()["kind"] == sp["kind_id"]
    assert S.SlidingWindow().window == 256


def test_trace_key_is_the_json_of_kind_and_params():
    # gpu/sattn_triton/ops.py decodes trace_key with json.loads; specs.py builds it without json.
    import json
    for cls in S.CONTRACT_SPECS:
        for spec in (cls(), cls(causal=True)):
            assert json.loads(spec.trace_key) == [spec.kind, spec.params()]
    assert json.loads(S.BlockTopK(keep=0.3, score="max").trace_key)[1]["keep"] == 0.3


def test_tolerances_are_the_schema():
    ref = _schema.TOLERANCES["reference"]["dtypes"]
    assert sattn.reference.TOLERANCES == {dt: (t["out"], t["lse"]) for dt, t in ref.items()}


def _cc_plan(fields, L=8):
    from sattn import _cc
    q = np.zeros((1, 1, L, 1), np.float32)
    return _cc.build_plan(fields, (1, 1, 1, L, L, 1), q, q, tile=4)


def _bad_values(f):
    """Values just outside the field's range (and outside its C++ type where the range is the type's)."""
    lo, hi = GEN.bounds(SCHEMA, f)
    if f["type"] == "float64":
        return [lo if f.get("min_open") else lo - 0.5, hi + 0.5, float("nan")]
    bad = [hi + 1]
    if f["type"] == "uint64" or lo > -2**31:
        bad.append(lo - 1)
    return bad


FIELDS = [(sp["name"], f) for sp in SCHEMA["specs"] for f in sp["fields"] if f["type"] in ("int32", "float64", "uint64")]


@pytest.mark.parametrize("spec,f", FIELDS, ids=[f"{s}.{f['name']}" for s, f in FIELDS])
def test_python_and_cpp_refuse_the_same_values(spec, f):
    cls = getattr(S, spec)
    for bad in _bad_values(f):
        with pytest.raises(ValueError, match=rf"^{f['name']}: expected"):
            cls(**{f["name"]: bad})
        fields = cls().to_fields()
        fields[f.get("cc", f["name"])] = bad
        with pytest.raises((ValueError, TypeError), match=rf"^(spec\.)?({f['name']}|{f.get('cc', f['name'])}): "):
            _cc_plan(fields)
    lo, _ = GEN.bounds(SCHEMA, f)
    edge = cls(**{f["name"]: lo if not f.get("min_open") else 1e-9})  # the lowest valid value
    fields = edge.to_fields()
    if "block" in fields:
        fields["block"] = min(fields["block"], 8)
    _cc_plan(fields)


@pytest.mark.parametrize("spec", [sp["name"] for sp in SCHEMA["specs"]])
def test_cpp_defaults_are_pythons(spec):
    """A C++ spec given only its kind plans exactly what the Python defaults plan."""
    cls = getattr(S, spec)
    L = 160  # more than BlockTopK's and BigBird's default block of 64, less than a default window
    from sattn import _cc
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, L, 4)).astype(np.float32)
    k = rng.standard_normal((1, 1, L, 4)).astype(np.float32)
    shape = (1, 1, 1, L, L, 4)
    a = _cc.build_plan({"kind": _schema.SPECS[spec]["kind_id"]}, shape, q, k, tile=16)
    b = _cc.build_plan(cls().to_fields(), shape, q, k, tile=16)
    for key in ("row_ptr", "col_idx", "mask_idx", "bitmaps"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{spec}.{key}")
    # The default is what the dense mask of the Python spec says, so the C++ side used 256.
    if spec == "SlidingWindow":
        plan = sattn.plan(cls(), q, k, tile=16)
        m = plan.to_dense_mask()[0, 0]
        assert m[L - 1].all() and m[0].all()
