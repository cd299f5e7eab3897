"""What a workspace needs to build @sattn//... targets: one call, after sattn itself is declared.

Downstream WORKSPACE (Bazel 4.2.3, WORKSPACE mode; docs/build.md, "Vendoring"):

    local_repository(name = "sattn", path = "third_party/sattn")  # or http_archive of the release
    load("@sattn//:deps.bzl", "sattn_dependencies")
    sattn_dependencies()

It declares, each only if the workspace has not declared that name itself:
  rules_cc, rules_java, rules_python, remote_coverage_tools
      sattn's offline shims (third_party/), which forward to Bazel's native rules. A monorepo that
      declares the real rules first keeps them: sattn's BUILD files load only from
      @rules_cc//cc:defs.bzl and @rules_python//python:defs.bzl, which both provide.
  sattn_python   the Python toolchain and headers (third_party/python/python_configure.bzl); the
                 interpreter is $SATTN_PYTHON, the workspace's .venv, or sattn's .venv.
  sattn_llvm     Debian's LLVM/MLIR 19 (third_party/llvm/llvm_configure.bzl); only fetched when a
                 target under @sattn//mlir is built, so a machine without LLVM builds everything else.
and registers @sattn_python//:toolchain unless register_python_toolchain = False.
"""

load("//third_party/llvm:llvm_configure.bzl", "sattn_llvm_configure")
load("//third_party/python:python_configure.bzl", "sattn_python_configure")

# name -> folder under sattn's root holding that repository (with its own WORKSPACE file).
_SHIMS = {
    "rules_cc": "third_party/rules_cc",
    "rules_java": "third_party/rules_java",
    "rules_python": "third_party/rules_python",
    "remote_coverage_tools": "third_party/remote_coverage_tools",
}

def _shim_repository_impl(rctx):
    # Label("//:WORKSPACE") is sattn's root whichever workspace loads this file; the shim's files
    # are linked, not copied, so editing a shim in sattn takes effect downstream.
    src = rctx.path(Label("//:WORKSPACE")).dirname
    for part in rctx.attr.path.split("/"):
        src = src.get_child(part)
    if not src.exists:
        fail("sattn_dependencies: %s is missing from sattn's tree" % src)
    for child in src.readdir():
        rctx.symlink(child, child.basename)

_shim_repository = repository_rule(
    implementation = _shim_repository_impl,
    attrs = {"path": attr.string(mandatory = True, doc = "Folder under sattn's root.")},
    doc = "One of sattn's offline rule shims (third_party/) as an external repository.",
)

def sattn_dependencies(register_python_toolchain = True):
    """Declares the repositories @sattn//... needs; names already declared are left as they are."""
    for name, path in _SHIMS.items():
        if not native.existing_rule(name):
            _shim_repository(name = name, path = path)
    if not native.existing_rule("sattn_python"):
        sattn_python_configure(name = "sattn_python")
    if not native.existing_rule("sattn_llvm"):
        sattn_llvm_configure(name = "sattn_llvm")
    if register_python_toolchain:
        native.register_toolchains("@sattn_python//:toolchain")
