"""The wheel installs into a fresh virtualenv and sattn imports and computes there."""
import glob
import os
import subprocess
import sys
import zipfile

import pytest


def find_wheel():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = glob.glob(os.path.join(here, "sattn-*.whl"))
    assert len(wheels) == 1, f"expected one wheel beside the test, found {wheels}"
    return wheels[0]


def test_wheel_carries_extension_and_metadata():
    names = zipfile.ZipFile(find_wheel()).namelist()
    assert "sattn/_cc.so" in names
    assert "sattn/__init__.py" in names and "sattn/backends/cpu.py" in names
    assert any(n.endswith(".dist-info/RECORD") for n in names)


def test_installs_and_imports_in_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", find_wheel()], check=True, env=env)
    # sattn's runtime dependencies (numpy, torch) come from the project venv; sattn itself from the wheel.
    import numpy
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()
    with open(os.path.join(site, "zz_project_deps.pth"), "w") as f:
        f.write(os.path.dirname(os.path.dirname(numpy.__file__)) + "\n")
    code = (
        "import numpy as np, sattn, os\n"
        "assert sattn.__file__.startswith(os.environ['VENV']), sattn.__file__\n"
        "rng = np.random.default_rng(0)\n"
        "q, k, v = (rng.standard_normal((1, 2, 40, 16)).astype(np.float32) for _ in range(3))\n"
        "spec = sattn.BlockTopK(block=8, keep=0.5, causal=True)\n"
        "out = sattn.sparse_attention(q, k, v, spec, backend='cpu')\n"
        "ref = sattn.reference.attention(q, k, v, spec)\n"
        "err = float(np.abs(out - ref).max())\n"
        "assert err < 1e-4, err\n"
        "print('ok', sattn.__version__, sattn.backends(), err)\n"
    )
    res = subprocess.run([py, "-c", code], capture_output=True, text=True, env={**env, "VENV": str(venv)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok 0.1.0")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
