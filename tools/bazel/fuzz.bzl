"""libFuzzer harnesses as Bazel tests: sattn_cc_fuzz_test.

Usage:

    load("//tools/bazel:fuzz.bzl", "sattn_cc_fuzz_test")

    sattn_cc_fuzz_test(
        name = "x_fuzz",                 # must end in _fuzz
        srcs = ["x_fuzz.cc"],            # defines extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t)
        deps = ["//cc:plan_io"],
        corpus = glob(["corpus/x/*"]),   # seed inputs, checked in; crashers found later go here too
    )

Declares `x_fuzz_bin` (the harness binary) and the test `x_fuzz`:
  * default build (gcc): the harness linked with tools/fuzz/replay_main.cc, which runs every corpus
    file plus `replay_mutations` deterministic mutations of each: seconds, a regression test for
    the corpus (and every crasher added to it).
  * `--config=asan` (clang-19, ASan + UBSan): a real libFuzzer binary (-fsanitize=fuzzer) fuzzing
    for `max_total_time` seconds over a writable copy of the corpus; a crash, leak, hang or
    oversized allocation fails the test and prints where the reproducer is.
Longer runs by hand, adding a crash to the corpus: docs/build.md, "Sanitizers and fuzzing".
"""

load("@rules_cc//cc:defs.bzl", "cc_binary")

# Strings resolved against this repository, so the macro also works from a downstream workspace.
_ASAN = str(Label("//tools/fuzz:asan"))

def sattn_cc_fuzz_test(
        name,
        srcs,
        deps = [],
        corpus = [],
        max_total_time = 60,
        replay_mutations = 2000,
        copts = [],
        tags = [],
        **kwargs):
    """A fuzz harness and the test that runs it (see the module docstring).

    Args:
      name: test name; must end in "_fuzz".
      srcs: harness sources; one defines LLVMFuzzerTestOneInput (LLVMFuzzerInitialize optional).
      deps: libraries under test.
      corpus: seed files (at least one), e.g. glob(["corpus/x/*"]).
      max_total_time: seconds libFuzzer runs under --config=asan (the CI-sized run); at most 140
        so the test stays under half of its 300 s timeout.
      replay_mutations: mutations per corpus file in the default build's replay.
      copts: extra compile options for the harness.
      tags: test tags ("fuzz" is always added).
      **kwargs: passed to the test (e.g. size, shard_count is not supported).
    """
    if not name.endswith("_fuzz"):
        fail("sattn_cc_fuzz_test: name '%s' must end in '_fuzz'" % name)
    if not corpus:
        fail("sattn_cc_fuzz_test(%s): corpus must list at least one seed file" % name)
    if max_total_time < 1 or max_total_time > 140:
        fail("sattn_cc_fuzz_test(%s): max_total_time must be in 1..140 s, got %d" % (name, max_total_time))
    binary = name + "_bin"
    cc_binary(
        name = binary,
        testonly = True,
        srcs = srcs,
        copts = copts,
        deps = deps + select({
            _ASAN: [],
            "//conditions:default": [str(Label("//tools/fuzz:replay_main"))],
        }),
        linkopts = select({
            _ASAN: ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = tags,
    )
    native.sh_test(
        name = name,
        srcs = select({
            _ASAN: [str(Label("//tools/fuzz:run_libfuzzer.sh"))],
            "//conditions:default": [str(Label("//tools/fuzz:run_replay.sh"))],
        }),
        args = [
            "$(rootpath :%s)" % binary,
            str(max_total_time),
            str(replay_mutations),
        ] + ["$(rootpath %s)" % c for c in corpus],
        data = [":" + binary] + corpus,
        timeout = "moderate",
        tags = tags + ["fuzz"],
        **kwargs
    )
