"""The wheel installs into a fresh virtualenv without torch; sattn imports, computes on numpy arrays
with every host backend the wheel carries, and its `sattn` script runs there."""
import email.parser
import glob
import json
import os
import subprocess
import sys
import time
import zipfile

import pytest

BACKENDS_IN_WHEEL = ("reference", "cpu", "rvv", "rocc")


def find_wheel():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = glob.glob(os.path.join(here, "sattn-*.whl"))
    assert len(wheels) == 1, f"expected one wheel beside the test, found {wheels}"
    return wheels[0]


def test_wheel_carries_every_backend_and_pyproject_metadata():
    z = zipfile.ZipFile(find_wheel())
    names = set(z.namelist())
    for need in ("sattn/_cc.so", "sattn/__init__.py", "sattn/_version.py", "sattn/backends/cpu.py",
                 "sattn/cli/__init__.py", "sattn/cli/profile.schema.json", "sattn/profiles/bigbird-base-4k.json",
                 "sattn/_bench.py", "sattn/_triton/ops.py", "sattn/_rocc/sattn_rocc_sim.so",
                 "sattn/_rocc/sattn_rocc_consts.py",
                 "sattn/_rvv/runner_riscv64", "sattn/_rvv/librvv_insn_count.so",
                 "sattn/imc/__init__.py", "sattn/imc/designs/isaac-reram-32nm.json"):
        assert need in names, need
    dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    # Nothing beside the package: a wheel that installs only `sattn` (and its dist-info).
    assert {n.split("/")[0] for n in names} == {"sattn", dist}, sorted({n.split("/")[0] for n in names})
    meta = email.parser.Parser().parsestr(z.read(f"{dist}/METADATA").decode())
    import tomllib
    root = os.environ.get("TEST_SRCDIR", "")
    with open(os.path.join(root, "sattn", "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert meta["Name"] == project["name"] and meta["Version"] == project["version"]
    assert meta["Requires-Python"] == project["requires-python"]
    requires = meta.get_all("Requires-Dist")
    assert [r for r in requires if "extra ==" not in r] == project["dependencies"]  # torch is no requirement
    assert set(meta.get_all("Provides-Extra")) == set(project["optional-dependencies"])
    assert 'torch>=2.4; extra == "gpu"' in requires
    assert "sattn = sattn.cli:main" in z.read(f"{dist}/entry_points.txt").decode()
    tag = z.read(f"{dist}/WHEEL").decode()
    assert f"Tag: cp{sys.version_info[0]}{sys.version_info[1]}-cp{sys.version_info[0]}{sys.version_info[1]}-" in tag
    for info in z.infolist():  # executables keep their bit through pip (S_IFREG | 0755)
        if info.filename.startswith("sattn/_rvv/runner"):
            assert (info.external_attr >> 16) & 0o170111 == 0o100111, info.filename


def test_installs_and_runs_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "RUNFILES_DIR",
                                                            "TEST_SRCDIR", "RUNFILES_MANIFEST_FILE")}
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", find_wheel()], check=True, env=env)
    # numpy (the one requirement) from the project venv, and nothing else of it: no torch here.
    import numpy
    deps = tmp_path / "deps"
    deps.mkdir()
    src = os.path.dirname(os.path.dirname(numpy.__file__))
    for name in ("numpy", "numpy.libs"):
        if os.path.exists(os.path.join(src, name)):
            os.symlink(os.path.join(src, name), deps / name)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()
    with open(os.path.join(site, "zz_numpy_only.pth"), "w") as f:
        f.write(str(deps) + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = (
        "import importlib.util, os, time\n"
        "t0 = time.perf_counter()\n"
        "import numpy as np, sattn\n"
        "t_import = time.perf_counter() - t0\n"
        "assert importlib.util.find_spec('torch') is None\n"
        "assert sattn.__file__.startswith(os.environ['VENV']), sattn.__file__\n"
        "rng = np.random.default_rng(0)\n"
        "q, k, v = (rng.standard_normal((1, 2, 40, 16)).astype(np.float32) for _ in range(3))\n"
        "spec = sattn.BlockTopK(block=8, keep=0.5, causal=True)\n"
        "ref = sattn.reference.attention(q, k, v, spec)\n"
        "errs = {b: float(np.abs(sattn.sparse_attention(q, k, v, spec, backend=b) - ref).max())\n"
        "        for b in ('cpu', 'rvv', 'rocc')}\n"
        "assert errs['cpu'] < 1e-4 and errs['rvv'] < 1e-4 and errs['rocc'] < 0.1, errs\n"
        "import json; print(json.dumps({'version': sattn.__version__, 'backends': sattn.backends(),\n"
        "                               'errs': errs, 'import_s': t_import}))\n"
    )
    res = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=outside,
                         env={**env, "VENV": str(venv)})
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert set(BACKENDS_IN_WHEEL) <= set(got["backends"]), got
    print("import sattn in the fresh venv:", got["import_s"], "s")

    res = subprocess.run([str(venv / "bin" / "sattn"), "doctor", "--json"], capture_output=True, text=True,
                         cwd=outside, env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["location"].startswith(str(venv))
    assert all(doc["backends"][b]["usable"] for b in BACKENDS_IN_WHEEL), doc["backends"]
    assert "torch" in doc["backends"]["triton"]["why_not"]  # says why: no torch here
    assert doc["packages"]["torch"] is None

    res = subprocess.run([py, "-m", "sattn", "plan", "--profile", "bigbird-base-4k", "--quick", "--json"],
                         capture_output=True, text=True, cwd=outside, env=env)
    assert res.returncode == 0, res.stderr
    assert 0 < json.loads(res.stdout)["density"] < 1
    res = subprocess.run([py, "-m", "sattn", "bench", "--profile", "bigbird-base-4k"], capture_output=True,
                         text=True, cwd=outside, env=env)
    assert res.returncode == 1 and "sattn[bench]" in res.stderr and "Traceback" not in res.stderr


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
