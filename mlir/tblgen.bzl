"""mlir-tblgen as Bazel genrules (the Bazel counterpart of CMake's mlir_tablegen)."""

def sattn_tblgen(name, td, outs_and_flags, td_srcs = []):
    """Runs mlir-tblgen-19 once per (output, flags) pair on `td`.

    Args:
      name: a filegroup of all outputs.
      td: the top-level .td file (path inside this package).
      outs_and_flags: dict output path -> mlir-tblgen flags producing it.
      td_srcs: other .td files `td` includes.
    """
    outs = []
    for out, flags in outs_and_flags.items():
        native.genrule(
            name = name + "_" + out.replace("/", "_").replace(".", "_"),
            srcs = [td] + [s for s in td_srcs if s != td] + ["@sattn_llvm//:td_files"],
            outs = [out],
            # -I include: our .td files; the second -I: MLIR's (mlir/IR/OpBase.td, ...), located
            # from a file known to be in @sattn_llvm so nothing about the host is written here.
            cmd = ("$(location @sattn_llvm//:mlir-tblgen) %s -I $$(dirname $(location %s))/.. " +
                   "-I $$(dirname $(location @sattn_llvm//:mlir_op_base_td))/../.. " +
                   "$(location %s) -o $@") % (flags, td, td),
            tools = ["@sattn_llvm//:mlir-tblgen", "@sattn_llvm//:mlir_op_base_td"],
        )
        outs.append(out)
    native.filegroup(name = name, srcs = outs)
