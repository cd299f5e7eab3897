"""Build macros for sattn's Python layer: pybind11 extensions and pytest-driven tests."""

load("@rules_cc//cc:defs.bzl", "cc_binary")
load("@rules_python//python:defs.bzl", "py_test")
load("//tools/bazel:cc.bzl", "SATTN_CXXOPTS")

def pybind11_headers(abi = ""):
    """pybind11 + Python headers of the toolchain interpreter, or of CPython `abi` (e.g. "cp312",
    one of @sattn_python//:defs.bzl's EXTRA_ABIS)."""
    return "@sattn_python//:pybind11_headers" + ("_" + abi if abi else "")

def pybind_extension(name, srcs = [], deps = [], copts = [], abi = "", **kwargs):
    """A pybind11 extension module `<name>.so`, importable as the last component of `name`.

    `name` may contain a package path (e.g. "sattn/_cc") so the module lands inside the Python
    package directory of the BUILD file. Depend on the `.so` from a py_library's `data`.
    `abi` builds it against another CPython's headers (see pybind11_headers).
    """
    cc_binary(
        name = name + ".so",
        srcs = srcs,
        deps = deps + [pybind11_headers(abi)],
        copts = SATTN_CXXOPTS + copts + ["-fvisibility=hidden", "-fno-strict-aliasing"],
        linkshared = True,
        linkstatic = True,
        **kwargs
    )

def sattn_py_test(name, srcs, deps = [], data = [], args = [], size = "small", **kwargs):
    """A py_test that runs its test file under pytest (quiet, fail-fast reporting)."""
    py_test(
        name = name,
        srcs = srcs + ["//tools/bazel:pytest_main.py"],
        main = "//tools/bazel:pytest_main.py",
        args = ["$(location %s)" % srcs[0]] + args,
        deps = deps,
        data = data,
        size = size,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
