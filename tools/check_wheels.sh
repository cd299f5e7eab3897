#!/usr/bin/env bash
# Builds the wheel for every CPython Bazel found (the toolchain's and @sattn_python's EXTRA_ABIS),
# checks it holds only the sattn package and its dist-info, installs each into a fresh venv of that
# interpreter (numpy from the package index), and runs `import sattn` outside the clone, the
# cpu/rvv/rocc backends on numpy arrays and `sattn doctor`.
# Needs the package index (numpy for each version), so it is a script, not a Bazel test.
#
# Usage: tools/check_wheels.sh [PYTHON...]   (default: pyenv's newest 3.10, 3.11, 3.12, 3.13)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  for m in 10 11 12 13; do
    p="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.$m.*/bin/python3.$m 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$p" ] && pythons+=("$p")
  done
fi
[ ${#pythons[@]} -gt 0 ] || { echo "check_wheels: no interpreters found" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
for py in "${pythons[@]}"; do
  tag="cp$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
  target="//python:sattn_wheel_$tag"
  bazel query "$target" >/dev/null 2>&1 || target="//python:sattn_wheel"
  bazel build "$target" 2>&1 | tail -n 1
  whl="$(ls "$(bazel info bazel-bin 2>/dev/null)"/python/sattn-*-"$tag"-"$tag"-*.whl)"
  "$py" -m venv "$tmp/$tag"
  # The wheel installs the sattn package and its dist-info, nothing beside them.
  if "$py" -c '
import sys, zipfile
tops = {n.split("/")[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()}
extra = sorted(t for t in tops if t != "sattn" and not t.endswith(".dist-info"))
assert not extra, f"installs beside sattn: {extra}"' "$whl" && \
     "$tmp/$tag/bin/pip" install -q "$whl" && (cd "$tmp" && "$tmp/$tag/bin/python" -c '
import numpy as np, sattn, sys
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 2, 64, 16)).astype(np.float32) for _ in range(3))
s = sattn.BlockTopK(block=16, keep=0.5, causal=True)
ref = sattn.reference.attention(q, k, v, s)
errs = {b: float(np.abs(sattn.sparse_attention(q, k, v, s, backend=b) - ref).max()) for b in ("cpu", "rvv", "rocc")}
assert errs["cpu"] < 1e-4 and errs["rvv"] < 1e-4 and errs["rocc"] < 0.1, errs
print(sys.version.split()[0], sattn.backends(), errs)' && "$tmp/$tag/bin/sattn" doctor >/dev/null); then
    echo "$(basename "$whl") PASSED"; pass=$((pass + 1))
  else
    echo "$(basename "$whl") FAILED"; fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
