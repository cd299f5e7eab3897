"""Verilator as a Bazel build step.

Bazel cannot glob the C++ files Verilator generates, so the genrule runs Verilator and the C++
compiler together (rtl/sim/verilate.sh) and declares a fixed output set: one static archive with
the model and the Verilator runtime, the model's top header and the runtime headers it includes.
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

# The Verilator runtime headers the model's top header pulls in, copied beside it so the build
# needs no include path outside the execution root.
VERILATOR_HEADERS = [
    "verilated.h",
    "verilatedos.h",
    "verilated_config.h",
    "verilated_types.h",
    "verilated_funcs.h",
]

def verilated_cc_library(name, top, srcs, verilator_flags = [], **kwargs):
    """cc_library `name` exposing V<top>.h for the SystemVerilog design `top` built from `srcs`.

    Files are passed to Verilator in the given order (packages first). Protocol assertions are
    compiled in (--assert). `verilator_flags` are extra Verilator options (e.g. top-level
    parameter overrides "-GR=8").
    """
    prefix = "V" + top
    outdir = name + "_verilated"
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = [outdir + "/lib" + prefix + ".a", outdir + "/" + prefix + ".h"] +
               [outdir + "/" + h for h in VERILATOR_HEADERS],
        cmd = "$(location //rtl:sim/verilate.sh) %s %s $(RULEDIR)/%s '%s' $(SRCS)" % (
            prefix,
            top,
            outdir,
            " ".join(verilator_flags),
        ),
        tools = ["//rtl:sim/verilate.sh"],
        message = "Verilating " + top,
    )
    cc_library(
        name = name,
        srcs = [outdir + "/lib" + prefix + ".a"],
        hdrs = [outdir + "/" + prefix + ".h"] + [outdir + "/" + h for h in VERILATOR_HEADERS],
        includes = [outdir],
        linkopts = ["-pthread"],
        **kwargs
    )
