# lit configuration for the sattn dialect tests. //mlir/test:lit_test runs it under Bazel with
# SATTN_OPT, FILECHECK and NOT pointing at the built sattn-opt and LLVM's FileCheck/not.
import os

import lit.formats

config.name = "sattn"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.excludes = ["lit.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.environ.get("SATTN_LIT_EXEC_ROOT", config.test_source_root)


def _tool(env, name):
    path = os.environ.get(env)
    if not path or not os.path.exists(path):
        lit_config.fatal(f"{env}: expected the path of {name}, got {path!r}")
    return os.path.abspath(path)


config.substitutions.append(("sattn-opt", _tool("SATTN_OPT", "sattn-opt")))
config.substitutions.append(("FileCheck", _tool("FILECHECK", "FileCheck")))
config.substitutions.append(("%not", _tool("NOT", "not")))
config.environment["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
