"""bzlmod (Bazel >= 6) module extension exposing @sattn_llvm; Bazel 4.2.3 never loads this file."""

load("//third_party/llvm:llvm_configure.bzl", "sattn_llvm_configure")

def _sattn_llvm_impl(module_ctx):
    sattn_llvm_configure(name = "sattn_llvm")

sattn_llvm = module_extension(implementation = _sattn_llvm_impl)
