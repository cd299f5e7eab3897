"""bzlmod (Bazel >= 6) module extension exposing @sattn_python; Bazel 4.2.3 never loads this file."""

load("//third_party/python:python_configure.bzl", "sattn_python_configure")

def _sattn_python_impl(module_ctx):
    sattn_python_configure(name = "sattn_python")

sattn_python = module_extension(implementation = _sattn_python_impl)
