"""Builds sattn's wheel from files and pyproject.toml's metadata (used by tools/bazel/wheel.bzl).

Each source path is mapped into the wheel by the longest matching `--map SRC_PREFIX=ARC_PREFIX`
after Bazel's `bazel-out/<config>/bin/` prefix is dropped, e.g. `python/=` puts
python/sattn/api.py at sattn/api.py and `rvv/=sattn/_rvv/` puts the RISC-V runners beside the
package. Deterministic: entries sorted, fixed timestamps (1980-01-01) and permissions, so two
builds of the same inputs give the same bytes.
"""
import argparse
import base64
import hashlib
import os
import re
import stat
import sys
import zipfile

import pyproject_meta

EPOCH = (1980, 1, 1, 0, 0, 0)
_BAZEL_OUT = re.compile(r"^(.*/)?bazel-out/[^/]+/bin/")
# Paths of the build machine that must not end up inside the wheel's files.
_MACHINE_MARKERS = (b"/execroot/", b"/_bazel_", b"/.cache/bazel/")


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def arcname(src: str, maps: list) -> str:
    norm = _BAZEL_OUT.sub("", src.replace(os.sep, "/"))
    norm = re.sub(r"^external/[^/]+/", "", norm)
    best = None
    for prefix, arc_prefix in maps:
        if norm.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, arc_prefix)
    if best is None:
        sys.exit(f"build_wheel: {src} matches no --map prefix ({', '.join(p for p, _ in maps)})")
    return best[1] + norm[len(best[0]):]


def executable(arc: str, data: bytes) -> bool:
    return arc.endswith(".so") or data[:4] == b"\x7fELF"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output .whl path: <name>-<version>-<tag>.whl")
    ap.add_argument("--pyproject", required=True, help="pyproject.toml ([project] is the metadata)")
    ap.add_argument("--readme", help="long description (markdown)")
    ap.add_argument("--python_tag", required=True, help="e.g. cp311: the CPython the extensions were built for")
    ap.add_argument("--map", action="append", default=[], metavar="SRC_PREFIX=ARC_PREFIX")
    ap.add_argument("--exclude", action="append", default=[], help="arc-name suffixes to leave out")
    ap.add_argument("srcs", nargs="+", help="package files (.py, .so, data, executables)")
    args = ap.parse_args()

    project = pyproject_meta.load(args.pyproject)
    name, version = project["name"], project["version"]
    maps = [tuple(m.split("=", 1)) for m in args.map]
    files = {}
    for src in args.srcs:
        arc = arcname(src, maps)
        if any(arc.endswith(x) for x in args.exclude):
            continue
        with open(src, "rb") as f:
            data = f.read()
        if arc in files and files[arc] != data:
            sys.exit(f"build_wheel: two different files map to {arc}")
        for marker in _MACHINE_MARKERS:
            if marker in data:
                sys.exit(f"build_wheel: {src} contains a build-machine path ({marker.decode()})")
        files[arc] = data
    if f"{name}/__init__.py" not in files:
        sys.exit(f"build_wheel: {name}/__init__.py missing from srcs")

    out_name = os.path.basename(args.out)
    expected = f"{name}-{version}-{args.python_tag}-{args.python_tag}-"
    if not (out_name.startswith(expected) and out_name.endswith(".whl")):
        sys.exit(f"build_wheel: --out {out_name} must be {expected}<platform>.whl (pyproject's version)")
    tag = out_name[len(f"{name}-{version}-"):-len(".whl")]
    dist = f"{name}-{version}.dist-info"
    readme = None
    if args.readme:
        with open(args.readme, encoding="utf-8") as f:
            readme = f.read()
    files[f"{dist}/METADATA"] = pyproject_meta.metadata(project, readme).encode()
    files[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: sattn build_wheel\nRoot-Is-Purelib: false\n"
                              f"Tag: {tag}\n").encode()
    eps = pyproject_meta.entry_points(project)
    if eps:
        files[f"{dist}/entry_points.txt"] = eps.encode()
    record = "".join(f"{arc},{record_hash(data)},{len(data)}\n" for arc, data in sorted(files.items()))
    record += f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    with zipfile.ZipFile(args.out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for arc in sorted(files):
            info = zipfile.ZipInfo(arc, date_time=EPOCH)
            # Regular-file type bits too: pip keeps the executable bit only for S_IFREG entries.
            info.external_attr = (stat.S_IFREG | (0o755 if executable(arc, files[arc]) else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[arc])


if __name__ == "__main__":
    main()
