"""//:release_archive: complete enough to build from, and its sha256 file matches it."""
import hashlib
import os
import re
import tarfile

ROOT = os.path.join(os.environ["TEST_SRCDIR"], "sattn")
ARCHIVE = os.path.join(ROOT, "sattn-src.tar.gz")


def members():
    with tarfile.open(ARCHIVE) as tar:
        infos = tar.getmembers()
        prefix = infos[0].name.split("/", 1)[0]
        files = {i.name.split("/", 1)[1]: i for i in infos}
        builds = {n: tar.extractfile(i).read().decode() for n, i in files.items()
                  if os.path.basename(n) in ("BUILD", "BUILD.bazel")}
    return prefix, files, builds


def test_sha256_file_matches_archive():
    with open(ARCHIVE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(ARCHIVE + ".sha256") as f:
        assert f.read().split() == [digest, "sattn-src.tar.gz"]


def test_every_referenced_package_is_in_the_archive():
    prefix, files, builds = members()
    assert re.fullmatch(r"sattn-\d+\.\d+\.\d+\S*", prefix), prefix
    packages = {os.path.dirname(n) for n in builds}
    referenced = set()
    for text in builds.values():
        referenced |= set(re.findall(r'"//([a-z0-9_/]+)[:"]', text))
    missing = sorted(p for p in referenced - {"visibility"} if p not in packages)
    assert not missing, f"packages named in BUILD files but not packed: {missing}"


def test_entry_points_shims_and_no_caches():
    _, files, _ = members()
    for must in ("WORKSPACE", "deps.bzl", "MODULE.bazel", ".bazelrc", "pyproject.toml",
                 "third_party/rules_cc/cc/defs.bzl", "examples/downstream/WORKSPACE",
                 "cc/include/sattn/plan.h", "python/sattn/__init__.py"):
        assert must in files, must
    assert not [n for n in files if "__pycache__" in n or n.startswith((".git/", "bazel-", ".venv/"))]
    info = files["WORKSPACE"]
    assert (info.mtime, info.uid, info.gid) == (0, 0, 0)
