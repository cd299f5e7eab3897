"""End-to-end builds of .mlir programs: sattn-opt -> mlir-translate -> clang (riscv64) -> binary."""

load("@rules_cc//cc:defs.bzl", "cc_binary")
load("//third_party/toolchains/riscv64:defs.bzl", "RISCV64_ONLY", "riscv64_binary")

def sattn_mlir_runner(name, mlir, spec_cases = [], plan_cases = [], grad_cases = [], grad_plan_cases = [],
                      pipeline = "--sattn-rvv-pipeline",
                      march = "rv64gcv", host = False, deps = [], tags = []):
    """A riscv64 `mlir_runner` over the functions of `mlir`, as host-visible `<name>_riscv64`.

    Args:
      name: base name; also `<name>.ll` (the LLVM IR) and `<name>.o` are produced.
      mlir: a .mlir file whose functions carry `llvm.emit_c_interface`.
      spec_cases: functions taking (q, k, v, out).
      plan_cases: functions taking (q, k, v, row_ptr, col_idx, mask_idx, bitmaps, out).
      grad_cases: backward functions taking (q, k, v, out, lse, dout, dq, dk, dv).
      grad_plan_cases: backward functions taking (q, k, v, out, lse, dout, row_ptr, col_idx,
        mask_idx, bitmaps, dq, dk, dv).
      pipeline: the sattn-opt pass pipeline flags.
      march: clang's -march for the generated code (rv64gcv_zvl256b lets LLVM map a 64-lane f32
        vector onto one LMUL=8 register group, i.e. assumes VLEN >= 256).
    """
    clang = "--target=riscv64-linux-gnu -march=%s" % march if not host else ""
    native.genrule(
        name = name + "_compile",
        srcs = [mlir],
        outs = [name + ".llvm.mlir", name + ".ll", name + ".o"],
        # -O2 over LLVM IR that already has the vector ops; rv64gcv at any VLEN.
        cmd = ("$(location //mlir:sattn-opt) $(location %s) %s -o $(location %s.llvm.mlir) && " +
               "$(location @sattn_llvm//:mlir-translate) --mlir-to-llvmir $(location %s.llvm.mlir) -o $(location %s.ll) && " +
               "$(location @sattn_llvm//:clang) %s -O2 -Wno-override-module " +
               "-c $(location %s.ll) -o $(location %s.o)") % (mlir, pipeline, name, name, name, clang, name, name),
        tools = ["//mlir:sattn-opt", "@sattn_llvm//:mlir-translate", "@sattn_llvm//:clang"],
        tags = ["manual"],
    )
    lines = (["SPEC_CASE(%s)" % c for c in spec_cases] + ["PLAN_CASE(%s)" % c for c in plan_cases] +
             ["GRAD_CASE(%s)" % c for c in grad_cases] + ["GRAD_PLAN_CASE(%s)" % c for c in grad_plan_cases])
    native.genrule(
        name = name + "_cases",
        outs = [name + "_cases.inc"],
        cmd = "printf '%s\\n' > $@" % "\\n".join(lines),
        tags = ["manual"],
    )
    cc_binary(
        name = name,
        srcs = ["//mlir/e2e:mlir_runner.cc", name + ".o", name + "_cases.inc"],
        copts = ["-DSATTN_CASES_INC='\"%s/%s_cases.inc\"'" % (native.package_name(), name)],
        target_compatible_with = [] if host else RISCV64_ONLY,
        tags = tags if host else ["manual"],
        deps = [
            "//cc:plan_io",
            "//mlir:runtime",
        ] + deps,
    )
    if not host:
        riscv64_binary(name = name + "_riscv64", binary = ":" + name, tags = tags)
