"""WORKSPACE, deps.bzl and MODULE.bazel declare the same repositories (docs/build.md, "bzlmod").

Bazel 4.2.3 cannot read MODULE.bazel, so this is the check that keeps it in step: every
repository WORKSPACE or sattn_dependencies() declares is a bazel_dep or a use_repo in
MODULE.bazel, or one of the names bzlmod provides itself.
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Needed only by Bazel 4's WORKSPACE suffix; under bzlmod Bazel brings its own.
BZLMOD_BUILTIN = {"rules_java", "remote_coverage_tools"}


def read(name):
    for base in (os.environ.get("TEST_SRCDIR", "") + "/sattn", ROOT):
        path = os.path.join(base, name)
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
    raise FileNotFoundError(name)


def workspace_repos():
    text = read("WORKSPACE")
    calls = re.findall(r'^\s*(\w+)\(\s*name\s*=\s*"(\w+)"', text, re.M)
    return {name for rule, name in calls if rule != "workspace"}


def deps_bzl_repos():
    text = read("deps.bzl")
    shims = set(re.findall(r'^\s*"(\w+)":\s*"third_party/', text, re.M))
    configured = set(re.findall(r'_configure\(name = "(\w+)"\)', text))
    return shims | configured


def module_repos():
    text = read("MODULE.bazel")
    deps = set(re.findall(r'bazel_dep\(name = "(\w+)"', text))
    used = set()
    for args in re.findall(r"use_repo\(([^)]*)\)", text):
        used |= set(re.findall(r'"(\w+)"', args))
    return deps | used


def test_deps_bzl_declares_what_workspace_declares():
    assert workspace_repos() == deps_bzl_repos()


def test_module_bazel_accounts_for_every_repository():
    missing = workspace_repos() - module_repos() - BZLMOD_BUILTIN
    assert not missing, f"MODULE.bazel lacks {sorted(missing)}"
    assert {"sattn_python", "sattn_llvm", "rules_cc", "rules_python"} <= module_repos()
