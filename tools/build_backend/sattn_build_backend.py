"""sattn's in-tree PEP 517 build backend: `pip install .` builds the wheel with Bazel.

pyproject.toml names this module (backend-path = tools/build_backend). build_wheel runs
`bazel build //python:sattn_wheel_cpXY` for the interpreter pip runs the build with (one of the
CPython versions Bazel found, @sattn_python//:defs.bzl's EXTRA_ABIS) or `//python:sattn_wheel`
when that interpreter is the project toolchain's, and copies the wheel out. The Bazel workspace
must be set up (tools/setup.sh); the wheel's metadata is pyproject.toml's.

Config settings (pip install . --config-settings KEY=VALUE):
  bazel       the Bazel binary (default: `bazel` on PATH)
  bazel-args  extra arguments for `bazel build`, space-separated (e.g. "--jobs=2")
"""
import gzip
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BuildError(RuntimeError):
    """Bazel could not build the wheel this interpreter needs."""


def _bazel(config_settings):
    cs = config_settings or {}
    bazel = cs.get("bazel") or shutil.which("bazel")
    if not bazel:
        raise BuildError("bazel not found on PATH: run tools/setup.sh (or pass --config-settings bazel=PATH)")
    return [bazel], shlex.split(cs.get("bazel-args", ""))


def _run(cmd, **kw):
    # Bazel's progress goes to stderr, which pip shows with -v and on failure.
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, **kw)


def _tag():
    return "cp%d%d" % sys.version_info[:2]


def _wheel_target(bazel):
    """//python:sattn_wheel_cpXY when Bazel knows that ABI, else //python:sattn_wheel."""
    target = f"//python:sattn_wheel_{_tag()}"
    res = _run(bazel + ["query", target], stderr=subprocess.DEVNULL)
    return target if res.returncode == 0 else "//python:sattn_wheel"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    bazel, extra = _bazel(config_settings)
    target = _wheel_target(bazel)
    res = _run(bazel + ["build"] + extra + [target])
    if res.returncode != 0:
        raise BuildError(f"bazel build {target} failed (exit {res.returncode}); see the output above")
    bin_dir = _run(bazel + ["info"] + extra + ["bazel-bin"], check=True).stdout.strip()
    out_dir = os.path.join(bin_dir, "python")
    tag = _tag()
    wheels = sorted(f for f in os.listdir(out_dir) if f.startswith("sattn-") and f"-{tag}-{tag}-" in f
                    and f.endswith(".whl"))
    if len(wheels) != 1:
        raise BuildError(f"{target} built no single {tag} wheel in {out_dir} (found {wheels}); "
                         f"this interpreter's CPython is not one Bazel builds for "
                         f"(install it with pyenv, or set SATTN_EXTRA_PYTHONS)")
    os.makedirs(wheel_directory, exist_ok=True)
    dest = os.path.join(wheel_directory, wheels[0])
    shutil.copyfile(os.path.join(out_dir, wheels[0]), dest)
    os.chmod(dest, 0o644)
    return wheels[0]


def _project():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import pyproject_meta
    except ImportError as e:  # Python 3.10 has no tomllib: get_requires_for_build_sdist asks for tomli
        raise BuildError(f"building an sdist on Python {sys.version.split()[0]} needs tomli "
                         f"(pip install tomli): {e}") from e
    return pyproject_meta, pyproject_meta.load(os.path.join(ROOT, "pyproject.toml"))


def build_sdist(sdist_directory, config_settings=None):
    """The tracked files of the clone (git ls-files) plus PKG-INFO, as <name>-<version>.tar.gz."""
    meta, project = _project()
    base = f"{project['name']}-{project['version']}"
    files = _run(["git", "ls-files", "-z"], check=True).stdout.split("\0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(f for f in files if f and os.path.isfile(os.path.join(ROOT, f))):
            info = tar.gettarinfo(os.path.join(ROOT, rel), arcname=f"{base}/{rel}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(os.path.join(ROOT, rel), "rb") as f:
                tar.addfile(info, f)
        pkg = meta.metadata(project).encode()
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size, info.mode = len(pkg), 0o644
        tar.addfile(info, io.BytesIO(pkg))
    name = base + ".tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    with open(os.path.join(sdist_directory, name), "wb") as f:
        f.write(gzip.compress(buf.getvalue(), mtime=0))
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    # The metadata is read with tomllib, which Python 3.10 lacks; tomli is the same parser.
    return ["tomli>=1.1; python_version < '3.11'"]
