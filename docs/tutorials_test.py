"""docs/tutorials/*.md: their code is real.

Each page's ```python blocks run in order in one namespace (tiny shapes, so the page stays a
quick read and this test a quick run); the bench commands in ```sh blocks use flags the bench
defines; the vendoring page's Starlark is the workspace examples/downstream builds in CI.
"""
import os
import re
import shlex

import pytest

SRC = os.path.join(os.environ.get("TEST_SRCDIR", ""), "sattn")
PAGES = ("train_cpu.md", "riscv_qemu.md", "rocc_sim.md", "vendor_bazel.md", "deploy_quantized.md")


def read(rel):
    with open(os.path.join(SRC, rel)) as f:
        return f.read()


def blocks(text, lang):
    return re.findall(r"^```" + lang + r"\n(.*?)^```$", text, re.S | re.M)


@pytest.mark.parametrize("page", ["train_cpu.md", "riscv_qemu.md", "rocc_sim.md", "deploy_quantized.md"])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pages may write files (deploy_quantized.md: scales.json)
    code = blocks(read("docs/tutorials/" + page), "python")
    assert code, f"{page} has no python block"
    namespace = {"__name__": "__tutorial__"}
    for i, block in enumerate(code):
        exec(compile(block, f"docs/tutorials/{page}#block{i}", "exec"), namespace)


def test_bench_commands_use_real_flags():
    from absl import flags
    import bench  # noqa: F401  (defines the bench's flags)
    known = set(flags.FLAGS)
    seen = 0
    for page in PAGES:
        for block in blocks(read("docs/tutorials/" + page), "sh"):
            for line in block.splitlines():
                if not (line.startswith("bazel run //tools:bench -- ") or line.startswith("bazel run -c opt //tools:bench -- ")):
                    continue
                seen += 1
                for arg in shlex.split(line.split(" -- ", 1)[1]):
                    if arg.startswith("--"):
                        name = arg[2:].split("=", 1)[0]
                        assert name in known or (name.startswith("no") and name[2:] in known), (page, arg)
    assert seen >= 2


def starlark_lines(text):
    return [ln.split("#", 1)[0].rstrip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def test_vendoring_page_is_the_downstream_example():
    page = blocks(read("docs/tutorials/vendor_bazel.md"), "starlark")
    assert len(page) == 2
    workspace = starlark_lines(read("examples/downstream/WORKSPACE"))
    build = starlark_lines(read("examples/downstream/BUILD"))
    want_ws = [ln.replace('"third_party/sattn"', '"../.."') for ln in starlark_lines(page[0])]
    assert want_ws == [ln for ln in workspace if not ln.startswith("workspace(")]
    loads = {}
    for ln in build:
        if ln.startswith("load("):
            label, *names = re.findall(r'"([^"]+)"', ln)
            loads[label] = set(names)
    for ln in starlark_lines(page[1]):
        if ln.startswith("load("):
            label, *names = re.findall(r'"([^"]+)"', ln)
            assert set(names) <= loads.get(label, set()), ln
        else:
            assert ln in build, ln
