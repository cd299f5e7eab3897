"""cc_toolchain_config for clang-19 + lld-19 targeting riscv64-linux-gnu (RVV 1.0 capable).

The sysroot is Debian's riscv64 cross packages (libc6-dev-riscv64-cross, libgcc-12-dev-riscv64-cross,
libstdc++-12-dev-riscv64-cross, installed by tools/setup.sh). Every include directory is given
explicitly with -nostdlibinc, so the host's /usr/include and /usr/local/include can never leak
into a RISC-V object; binaries are linked static so the same file runs under qemu-riscv64 and on
a board. Flags that would make two clean builds differ (build ids, timestamps, absolute paths)
are pinned here: tools/check_rvv_reproducible.sh checks the result.
"""

load(
    "@bazel_tools//tools/cpp:cc_toolchain_config_lib.bzl",
    "feature",
    "flag_group",
    "flag_set",
    "tool_path",
)
load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "ACTION_NAMES")

_COMPILE_ACTIONS = [
    ACTION_NAMES.c_compile,
    ACTION_NAMES.cpp_compile,
    ACTION_NAMES.assemble,
    ACTION_NAMES.preprocess_assemble,
    ACTION_NAMES.cpp_header_parsing,
    ACTION_NAMES.cpp_module_compile,
]

_CXX_ACTIONS = [
    ACTION_NAMES.cpp_compile,
    ACTION_NAMES.cpp_header_parsing,
    ACTION_NAMES.cpp_module_compile,
]

_LINK_ACTIONS = [
    ACTION_NAMES.cpp_link_executable,
    ACTION_NAMES.cpp_link_dynamic_library,
    ACTION_NAMES.cpp_link_nodeps_dynamic_library,
]

def _impl(ctx):
    target = "--target=" + ctx.attr.target_triple
    sysroot = ctx.attr.sysroot
    gcc_ver = ctx.attr.gcc_version
    isystem = [
        sysroot + "/include/c++/" + gcc_ver,
        sysroot + "/include/c++/" + gcc_ver + "/" + ctx.attr.target_triple,
        sysroot + "/include/c++/" + gcc_ver + "/backward",
        sysroot + "/include",
    ]
    isystem_flags = []
    for d in isystem:
        isystem_flags += ["-isystem", d]

    default_compile = feature(
        name = "sattn_riscv64_compile_flags",
        enabled = True,
        flag_sets = [
            flag_set(
                actions = _COMPILE_ACTIONS,
                flag_groups = [flag_group(flags = [
                    target,
                    # Baseline ISA for everything that does not ask for more: plain rv64gc, so the
                    # shared C++ (planner, file I/O) is identical in the RVV, scalar and
                    # auto-vectorised runners. Kernel targets add -march=rv64gcv in their copts
                    # (the last -march wins).
                    "-march=" + ctx.attr.march,
                    "-mabi=" + ctx.attr.mabi,
                    "-nostdlibinc",
                ] + isystem_flags + [
                    "-no-canonical-prefixes",
                    "-fno-ident",
                    "-Wall",
                    "-Wno-builtin-macro-redefined",
                    "-D__DATE__=\"redacted\"",
                    "-D__TIMESTAMP__=\"redacted\"",
                    "-D__TIME__=\"redacted\"",
                    "-ffunction-sections",
                    "-fdata-sections",
                    # No fused multiply-add unless a target asks (-ffp-contract=on in its copts):
                    # the planner's float64 block scores then round exactly as on x86, so every
                    # target selects the same BlockTopK blocks.
                    "-ffp-contract=off",
                ])],
            ),
            flag_set(
                actions = _CXX_ACTIONS,
                flag_groups = [flag_group(flags = ["-std=c++17"])],
            ),
        ],
    )

    opt = feature(
        name = "opt",
        flag_sets = [flag_set(
            actions = _COMPILE_ACTIONS,
            flag_groups = [flag_group(flags = ["-O2", "-DNDEBUG"])],
        )],
    )
    dbg = feature(
        name = "dbg",
        flag_sets = [flag_set(
            actions = _COMPILE_ACTIONS,
            flag_groups = [flag_group(flags = ["-g", "-O0"])],
        )],
    )

    default_link = feature(
        name = "sattn_riscv64_link_flags",
        enabled = True,
        flag_sets = [flag_set(
            actions = _LINK_ACTIONS,
            flag_groups = [flag_group(flags = [
                target,
                "-march=" + ctx.attr.march,
                "-mabi=" + ctx.attr.mabi,
                "-no-canonical-prefixes",
                # The versioned lld by absolute path: no unversioned ld.lld is on the action PATH.
                "-fuse-ld=lld",
                "--ld-path=" + ctx.attr.lld,
                # Static: the binary carries its libc, so qemu-riscv64 needs no -L and a board
                # needs nothing installed.
                "-static",
                # No build-id note: nothing in the binary depends on where or when it was built.
                "-Wl,--build-id=none",
                "-Wl,--gc-sections",
                "-lstdc++",
                "-lm",
            ])],
        )],
    )

    supports_pic = feature(name = "supports_pic", enabled = False)

    return cc_common.create_cc_toolchain_config_info(
        ctx = ctx,
        toolchain_identifier = "sattn-clang19-riscv64",
        host_system_name = "x86_64-unknown-linux-gnu",
        target_system_name = ctx.attr.target_triple,
        target_cpu = "riscv64",
        target_libc = "glibc",
        compiler = "clang",
        abi_version = "lp64d",
        abi_libc_version = "glibc",
        features = [default_compile, default_link, opt, dbg, supports_pic],
        # clang's own headers (riscv_vector.h, stddef.h): -no-canonical-prefixes makes the driver
        # name them through the /usr/lib/clang symlink, so both spellings are allowed.
        cxx_builtin_include_directories = isystem + [
            ctx.attr.clang_resource_dir + "/include",
            "/usr/lib/clang/" + ctx.attr.llvm_major + "/include",
        ],
        tool_paths = [
            tool_path(name = "gcc", path = ctx.attr.clang),
            tool_path(name = "ld", path = ctx.attr.lld),
            tool_path(name = "ar", path = ctx.attr.llvm_prefix + "ar-" + ctx.attr.llvm_major),
            tool_path(name = "cpp", path = "/bin/false"),
            tool_path(name = "gcov", path = "/bin/false"),
            tool_path(name = "nm", path = ctx.attr.llvm_prefix + "nm-" + ctx.attr.llvm_major),
            tool_path(name = "objcopy", path = ctx.attr.llvm_prefix + "objcopy-" + ctx.attr.llvm_major),
            tool_path(name = "objdump", path = ctx.attr.llvm_prefix + "objdump-" + ctx.attr.llvm_major),
            tool_path(name = "strip", path = ctx.attr.llvm_prefix + "strip-" + ctx.attr.llvm_major),
        ],
    )

riscv64_cc_toolchain_config = rule(
    implementation = _impl,
    attrs = {
        "target_triple": attr.string(default = "riscv64-linux-gnu"),
        "march": attr.string(default = "rv64gc"),
        "mabi": attr.string(default = "lp64d"),
        "sysroot": attr.string(default = "/usr/riscv64-linux-gnu"),
        "gcc_version": attr.string(default = "12"),
        "llvm_major": attr.string(default = "19"),
        "clang": attr.string(default = "/usr/bin/clang-19"),
        "lld": attr.string(default = "/usr/bin/ld.lld-19"),
        "llvm_prefix": attr.string(default = "/usr/bin/llvm-"),
        "clang_resource_dir": attr.string(default = "/usr/lib/llvm-19/lib/clang/19"),
    },
    provides = [CcToolchainConfigInfo],
)
