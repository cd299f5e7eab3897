"""Writes sattn's release archive: a deterministic .tar.gz of the given source files.

  release_tar.py --out sattn.tar.gz --sha256_out sattn.tar.gz.sha256 --prefix sattn-0.1.0 FILE...

Members are sorted, owned by 0:0, dated 0 and mode 0644 (0755 when executable), and the gzip
header has no name or time, so the same sources give the same bytes (and sha256) on any machine.
"""
import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--sha256_out", required=True)
    p.add_argument("--prefix", required=True, help="top directory inside the archive")
    p.add_argument("files", nargs="+")
    a = p.parse_args(argv)
    names = sorted({os.path.normpath(f) for f in a.files})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            if name.startswith(("/", "..")) or "/../" in name:
                print(f"release_tar: {name}: not a path inside the workspace", file=sys.stderr)
                return 2
            with open(name, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(f"{a.prefix}/{name}")
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if os.access(name, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    with open(a.out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(buf.getvalue())
    with open(a.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(a.sha256_out, "w") as f:
        f.write(f"{digest}  {os.path.basename(a.out)}\n")
    print(f"{a.out}: {len(names)} files, sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
