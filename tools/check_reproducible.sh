#!/usr/bin/env bash
# Builds the given targets twice, each time in a fresh Bazel output base (a clean build with an
# empty cache), and compares every output file byte for byte.
#
# Usage: tools/check_reproducible.sh [--help] [TARGET ...]
#   default targets: //python:sattn_wheel //python:sattn/_cc.so
# Exit 0 when all outputs are identical; 1 with the differing files listed otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${1:-}" in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(//python:sattn_wheel //python:sattn/_cc.so)

query="$(printf ' + %s' "${targets[@]}")"; query="${query# + }"
work="$(mktemp -d)"
trap 'for b in "$work"/base*; do bazel --output_base="$b" shutdown >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
for run in 1 2; do
  echo "[repro] clean build $run of ${targets[*]}" >&2
  bazel --output_base="$work/base$run" build "${targets[@]}" >"$work/log$run" 2>&1 || { cat "$work/log$run"; exit 1; }
  mkdir -p "$work/out$run"
  bin="$(bazel --output_base="$work/base$run" info bazel-bin 2>/dev/null)"
  bazel --output_base="$work/base$run" cquery "$query" --output=starlark \
      --starlark:expr="'\\n'.join([f.path for f in target.files.to_list()])" 2>/dev/null | while read -r f; do
    rel="${f#bazel-out/*/bin/}"
    mkdir -p "$work/out$run/$(dirname "$rel")"
    cp "$bin/$rel" "$work/out$run/$rel"
  done
done
if diff -r "$work/out1" "$work/out2" >/dev/null; then
  (cd "$work/out1" && find . -type f -exec sha256sum {} +) | sed 's/^/[repro] identical: /'
  exit 0
fi
echo "[repro] DIFFERENT outputs:" >&2
diff -rq "$work/out1" "$work/out2" >&2 || true
exit 1
