"""Builds sattn's wheel from the package sources and compiled extensions (used by //python:sattn_wheel).

Deterministic: entries sorted, fixed timestamps (1980-01-01) and permissions, so two builds of the
same inputs give the same bytes. The version comes from sattn/__init__.py (its one source).
"""
import argparse
import base64
import hashlib
import io
import os
import re
import sys
import sysconfig
import zipfile

EPOCH = (1980, 1, 1, 0, 0, 0)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output .whl path (its name must follow the wheel spec)")
    ap.add_argument("--strip_prefix", default="python/", help="path prefix removed from each source")
    ap.add_argument("--requires", action="append", default=[], help="Requires-Dist entries")
    ap.add_argument("srcs", nargs="+", help="package files (.py, .so)")
    args = ap.parse_args()

    files = {}
    for src in args.srcs:
        norm = src.replace(os.sep, "/")
        idx = norm.find(args.strip_prefix)
        if idx < 0:
            sys.exit(f"build_wheel: {src} is not under {args.strip_prefix}")
        arc = norm[idx + len(args.strip_prefix):]
        with open(src, "rb") as f:
            files[arc] = f.read()
    init = files.get("sattn/__init__.py")
    if init is None:
        sys.exit("build_wheel: sattn/__init__.py missing from srcs")
    version = re.search(rb'__version__ = "([^"]+)"', init).group(1).decode()
    name = os.path.basename(args.out)
    expected_prefix = f"sattn-{version}-"
    if not name.startswith(expected_prefix):
        sys.exit(f"build_wheel: --out {name} must start with {expected_prefix} (version from sattn/__init__.py)")
    tag = name[len(expected_prefix):-len(".whl")]
    dist = f"sattn-{version}.dist-info"
    meta = [f"Metadata-Version: 2.1", "Name: sattn", f"Version: {version}",
            "Summary: One sparse-attention contract on CPU, GPU, RISC-V vector, RoCC and MLIR",
            "Requires-Python: ==3.11.*"] + [f"Requires-Dist: {r}" for r in args.requires]
    files[f"{dist}/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{dist}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: sattn build_wheel\nRoot-Is-Purelib: false\n"
                              f"Tag: {tag}\n").encode()
    record = "".join(f"{arc},{record_hash(data)},{len(data)}\n" for arc, data in sorted(files.items()))
    record += f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    with zipfile.ZipFile(args.out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for arc in sorted(files):
            info = zipfile.ZipInfo(arc, date_time=EPOCH)
            info.external_attr = (0o755 if arc.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[arc])


if __name__ == "__main__":
    main()
