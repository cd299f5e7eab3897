"""Repository rule that finds the project virtualenv and exposes it to Bazel.

Creates @sattn_python with:
  //:toolchain          a Python toolchain whose py_runtime is the venv interpreter, so every
                        py_binary/py_test runs with the pinned packages of tools/requirements.txt;
  //:python_headers     cc_library of the interpreter's C headers (for pybind11 extensions);
  //:pybind11_headers   cc_library of the venv's pybind11 headers;
  //:defs.bzl           PYTHON_BIN and the venv's site-packages, for rules that run Python.

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

def _impl(rctx):
    python = _find_python(rctx)
    include = _run_python(rctx, python, "import sysconfig; print(sysconfig.get_paths()['include'])")
    pybind = _run_python(rctx, python, "import pybind11; print(pybind11.get_include())")
    purelib = _run_python(rctx, python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    version = _run_python(rctx, python, "import sys; print('%d.%d' % sys.version_info[:2])")
    rctx.symlink(include, "python_include")
    rctx.symlink(pybind, "pybind11_include")
    rctx.file("defs.bzl", "PYTHON_BIN = %r\nPYTHON_VERSION = %r\nSITE_PACKAGES = %r\n" % (python, version, purelib))
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
""".format(python = python))

sattn_python_configure = repository_rule(
    implementation = _impl,
    attrs = {"interpreter": attr.string(doc = "Fallback interpreter path when no venv is found.")},
    environ = ["SATTN_PYTHON"],
    local = True,
)
