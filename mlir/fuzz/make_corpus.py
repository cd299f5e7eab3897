#!/usr/bin/env python3
"""Writes the seed corpus of //mlir:sattn_opt_fuzz from the lit and end-to-end inputs.

Usage: python3 mlir/fuzz/make_corpus.py   (from the repository root)

Every `// -----` split of every mlir/test/*.mlir file and every mlir/e2e/*.mlir file becomes one
seed, without its comment lines (RUN/CHECK lines are noise to the fuzzer). Seeds are named
seed_<source>_<n>.mlir; crashers found later are added next to them as crash-<sha1> files and
are never regenerated.
"""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "mlir", "fuzz", "corpus")


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "seed_*")):
        os.remove(old)
    sources = sorted(glob.glob(os.path.join(ROOT, "mlir", "test", "*.mlir")))
    sources += sorted(glob.glob(os.path.join(ROOT, "mlir", "e2e", "*.mlir")))
    n = 0
    for src in sources:
        stem = os.path.splitext(os.path.basename(src))[0].replace("-", "_")
        with open(src) as f:
            parts = re.split(r"^// -----\s*$", f.read(), flags=re.M)
        for i, part in enumerate(parts):
            lines = [l for l in part.splitlines() if not l.lstrip().startswith("//")]
            text = "\n".join(lines).strip() + "\n"
            if not text.strip():
                continue
            with open(os.path.join(OUT, "seed_%s_%d.mlir" % (stem, i)), "w") as f:
                f.write(text)
            n += 1
    print("wrote %d seeds to %s" % (n, OUT))


if __name__ == "__main__":
    main()
