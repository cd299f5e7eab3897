"""Runs the lit suite in this directory (every *.mlir) with the Bazel-built sattn-opt."""
import os
import subprocess
import sys
import tempfile


def _runfile(rel):
    root = os.path.join(os.environ["TEST_SRCDIR"], os.environ.get("TEST_WORKSPACE", "sattn"))
    path = os.path.normpath(os.path.join(root, rel))
    if not os.path.exists(path):
        sys.exit(f"lit_test: {rel} is not in the runfiles ({path})")
    return path


def main():
    here = os.path.dirname(_runfile("mlir/test/lit.cfg.py"))
    env = dict(os.environ)
    env["SATTN_OPT"] = _runfile("mlir/sattn-opt-host")
    env["FILECHECK"] = _runfile("../sattn_llvm/bin/FileCheck")
    env["NOT"] = _runfile("../sattn_llvm/bin/not")
    # lit writes its output next to the tests unless told otherwise; runfiles are read-only.
    env["SATTN_LIT_EXEC_ROOT"] = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cmd = [sys.executable, "-c", "import lit.main; lit.main.main()", "-v", here]
    sys.exit(subprocess.call(cmd, env=env))


if __name__ == "__main__":
    main()
