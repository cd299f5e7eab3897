"""Repository rule that exposes Debian's LLVM/MLIR 19 installation to Bazel.

Creates @<name> (the project calls it @sattn_llvm) with:
  //:mlir               cc_library: MLIR + LLVM headers, linked against the shared libMLIR.so and
                        libLLVM.so (dynamic linking: a sattn-opt link takes seconds instead of the
                        minutes the ~500 static archives need; see docs/mlir.md for the measurement);
  //:mlir-tblgen, //:FileCheck, //:mlir-translate, //:mlir-opt, //:clang, //:ld.lld, //:qemu-riscv64
                        the tools, as executable files (symlinks) usable in genrules and as test data;
  //:defs.bzl           LLVM_PREFIX, LLVM_VERSION and RISCV_SYSROOT for rules that need the paths.

The installation is found, in order, from: $SATTN_LLVM_PREFIX; `llvm-config-<version> --prefix`;
/usr/lib/llvm-<version>. Nothing about the host is written in BUILD files.
"""

_TOOLS = ["mlir-tblgen", "FileCheck", "not", "mlir-translate", "mlir-opt", "clang", "ld.lld", "llvm-objdump"]

def _find_prefix(rctx, version):
    env = rctx.os.environ.get("SATTN_LLVM_PREFIX", "")
    if env:
        return env
    cfg = rctx.which("llvm-config-%s" % version)
    if cfg:
        res = rctx.execute([cfg, "--prefix"])
        if res.return_code == 0 and res.stdout.strip():
            return res.stdout.strip()
    fallback = "/usr/lib/llvm-%s" % version
    if rctx.path(fallback).exists:
        return fallback
    fail("sattn_llvm_configure: no LLVM %s found. Run tools/setup.sh (it installs libmlir-%s-dev, " % (version, version) +
         "mlir-%s-tools and llvm-%s-tools) or set SATTN_LLVM_PREFIX." % (version, version))

def _impl(rctx):
    version = rctx.attr.version
    prefix = _find_prefix(rctx, version)
    lib = prefix + "/lib"
    for must in ["include/mlir/IR/Dialect.h", "include/llvm/ADT/StringRef.h", "lib/libMLIR.so", "lib/libLLVM.so"]:
        if not rctx.path(prefix + "/" + must).exists:
            fail("sattn_llvm_configure: %s/%s is missing (install libmlir-%s-dev and llvm-%s-dev)" % (prefix, must, version, version))

    # Headers are symlinked into the repository so Bazel can track them as declared inputs.
    for d in ["mlir", "llvm", "llvm-c", "mlir-c"]:
        rctx.symlink(prefix + "/include/" + d, "include/" + d)

    tools = []
    for t in _TOOLS:
        p = rctx.path(prefix + "/bin/" + t)
        if p.exists:
            rctx.symlink(p, "bin/" + t)
            tools.append(t)
    qemu = rctx.which("qemu-riscv64")
    if qemu:
        rctx.symlink(qemu, "bin/qemu-riscv64")
        tools.append("qemu-riscv64")

    sysroot = ""
    for cand in ["/usr/riscv64-linux-gnu"]:
        if rctx.path(cand + "/lib/crt1.o").exists:
            sysroot = cand

    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("defs.bzl", "LLVM_PREFIX = %r\nLLVM_VERSION = %r\nRISCV_SYSROOT = %r\nTOOLS = %r\n" % (prefix, version, sysroot, tools))
    build = ["""\
package(default_visibility = ["//visibility:public"])

exports_files(["defs.bzl"])

# Headers of MLIR and LLVM. LLVM is built without RTTI, so everything that subclasses its
# classes (passes, dialects) must be compiled with -fno-rtti too.
cc_library(
    name = "mlir",
    hdrs = glob(["include/**/*.h", "include/**/*.inc", "include/**/*.def", "include/**/*.td"]),
    includes = ["include"],
    copts = ["-fno-rtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
    # Shared libraries from the installation; the rpath lets bazel-bin binaries run in place.
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-lMLIR", "-lLLVM"],
)

# TableGen include roots for genrules (mlir/IR/OpBase.td, ...).
filegroup(
    name = "td_files",
    srcs = glob(["include/mlir/**/*.td"]),
)

# One known .td file: rules find the include root from its location.
alias(name = "mlir_op_base_td", actual = "include/mlir/IR/OpBase.td")
""".format(lib = lib)]
    for t in tools:
        build.append("exports_files([\"bin/%s\"])\nalias(name = \"%s\", actual = \"bin/%s\")\n" % (t, t, t))
    rctx.file("BUILD", "\n".join(build))

sattn_llvm_configure = repository_rule(
    implementation = _impl,
    attrs = {"version": attr.string(default = "19")},
    environ = ["SATTN_LLVM_PREFIX"],
    local = True,
)
