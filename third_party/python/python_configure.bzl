"""Repository rule that finds the project virtualenv and exposes it to Bazel.

Creates @sattn_python with:
  //:toolchain          a Python toolchain whose py_runtime is the venv interpreter, so every
                        py_binary/py_test runs with the pinned packages of tools/requirements.txt;
  //:python_headers     cc_library of the interpreter's C headers (for pybind11 extensions);
  //:pybind11_headers   cc_library of the venv's pybind11 headers;
  //:defs.bzl           PYTHON_BIN and the venv's site-packages, for rules that run Python;
                        the wheel's tags and version (pyproject.toml) and EXTRA_ABIS;
  //:pybind11_headers_cpXY  the same headers against another CPython found here (EXTRA_ABIS).

The interpreter is found, in order, from: $SATTN_PYTHON; <main workspace>/.venv/bin/python3;
<sattn's root>/.venv/bin/python3 (tools/setup.sh makes it); attribute `interpreter`. Nothing is hard-coded in BUILD files.
"""

def _run_python(rctx, python, code):
    res = rctx.execute([python, "-c", code])
    if res.return_code != 0:
        fail("sattn_python_configure: %s failed: %s" % (python, res.stderr))
    return res.stdout.strip()

def _find_python(rctx):
    env = rctx.os.environ.get("SATTN_PYTHON", "")
    if env:
        return env
    # The consumer's own venv first, then sattn's (Label("//:WORKSPACE") is sattn's root even when
    # this file is loaded from a downstream workspace that vendors sattn).
    for root in [Label("@//:WORKSPACE"), Label("//:WORKSPACE")]:
        venv = rctx.path(root).dirname.get_child(".venv").get_child("bin").get_child("python3")
        if venv.exists:
            return str(venv)
    if rctx.attr.interpreter:
        return rctx.attr.interpreter
    fail("sattn: no project virtualenv found. Run tools/setup.sh first (it creates .venv), " +
         "or set SATTN_PYTHON to a Python 3.11 interpreter with tools/requirements.txt installed.")

_PLATFORM_TAG = "import sysconfig; print(sysconfig.get_platform().replace('-', '_').replace('.', '_'))"

# Other CPython versions to build extensions for, besides the toolchain's: $SATTN_EXTRA_PYTHONS
# (colon-separated interpreters) or else pyenv's installed 3.10-3.13 ($PYENV_ROOT or ~/.pyenv).
_FIND_EXTRA = """
import glob, os, sys
env = os.environ.get('SATTN_EXTRA_PYTHONS')
if env is not None:
    cands = [p for p in env.split(':') if p]
else:
    root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    cands = []
    for minor in (10, 11, 12, 13):
        found = sorted(glob.glob(os.path.join(root, 'versions', '3.%d.*' % minor, 'bin', 'python3.%d' % minor)))
        cands += found[-1:]
for c in cands:
    print(c)
"""

def _extra_pythons(rctx, python, version):
    out = []
    for cand in _run_python(rctx, python, _FIND_EXTRA).splitlines():
        res = rctx.execute([cand, "-c", "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); " +
                                        "print(sysconfig.get_paths()['include'])"])
        if res.return_code != 0:
            continue
        got = res.stdout.strip().splitlines()[0]
        abi = "cp" + got.replace(".", "")
        if got != version and abi not in [a for a, _ in out]:
            out.append((abi, cand))
    return out

def _pyproject_version(rctx):
    """[project] version from pyproject.toml (Starlark has no TOML reader: a line scan)."""
    section = ""
    for line in rctx.read(rctx.path(Label("//:pyproject.toml"))).splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[project]" and line.startswith("version") and "=" in line:
            return line.split("=", 1)[1].strip().strip('"')
    fail("sattn_python_configure: pyproject.toml has no [project] version")

_EXTRA_BUILD = """
cc_library(
    name = "python_headers_{abi}",
    hdrs = glob(["python_include_{abi}/**/*.h"]),
    includes = ["python_include_{abi}"],
)

cc_library(
    name = "pybind11_headers_{abi}",
    hdrs = glob(["pybind11_include/**/*.h"]),
    includes = ["pybind11_include"],
    deps = [":python_headers_{abi}"],
)
"""

def _impl(rctx):
    python = _find_python(rctx)
    include = _run_python(rctx, python, "import sysconfig; print(sysconfig.get_paths()['include'])")
    pybind = _run_python(rctx, python, "import pybind11; print(pybind11.get_include())")
    purelib = _run_python(rctx, python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    version = _run_python(rctx, python, "import sys; print('%d.%d' % sys.version_info[:2])")
    platform = _run_python(rctx, python, _PLATFORM_TAG)
    rctx.symlink(include, "python_include")
    rctx.symlink(pybind, "pybind11_include")
    extra_abis, extra_builds = [], []
    for abi, ext_python in _extra_pythons(rctx, python, version):
        rctx.symlink(_run_python(rctx, ext_python, "import sysconfig; print(sysconfig.get_paths()['include'])"),
                     "python_include_" + abi)
        extra_abis.append(abi)
        extra_builds.append(_EXTRA_BUILD.format(abi = abi))
    rctx.file("defs.bzl", "\n".join([
        "PYTHON_BIN = %r" % python,
        "PYTHON_VERSION = %r" % version,
        "SITE_PACKAGES = %r" % purelib,
        "# The wheel's tags: cpXY of the toolchain interpreter, the platform of its sysconfig.",
        "PYTHON_TAG = %r" % ("cp" + version.replace(".", "")),
        "PLATFORM_TAG = %r" % platform,
        "# Other CPython versions found (their headers only): extensions and wheels per ABI.",
        "EXTRA_ABIS = %r" % extra_abis,
        "# pyproject.toml's [project] version (pyproject.toml is the one source).",
        "SATTN_VERSION = %r" % _pyproject_version(rctx),
        "",
    ]))
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD", """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

exports_files(["defs.bzl"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

cc_library(
    name = "python_headers",
    hdrs = glob(["python_include/**/*.h"]),
    includes = ["python_include"],
)

cc_library(
    name = "pybind11_headers",
    hdrs = glob(["pybind11_include/**/*.h"]),
    includes = ["pybind11_include"],
    deps = [":python_headers"],
)
""".format(python = python) + "".join(extra_builds))

sattn_python_configure = repository_rule(
    implementation = _impl,
    attrs = {"interpreter": attr.string(doc = "Fallback interpreter path when no venv is found.")},
    environ = ["SATTN_PYTHON", "SATTN_EXTRA_PYTHONS", "PYENV_ROOT"],
    local = True,
)
