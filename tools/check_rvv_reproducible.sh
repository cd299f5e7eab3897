#!/usr/bin/env bash
# Checks that the RISC-V binaries are bit-reproducible: builds them twice from clean, in two
# different source directories with two different Bazel output bases, and compares SHA-256s.
#
# Usage: tools/check_rvv_reproducible.sh [--help] [--keep] [TARGET...]
#   TARGET  riscv64 cc_binary labels (default: the three runners //rvv:runner{,_scalar,_autovec})
#   --keep  keep the scratch directories (printed) instead of deleting them
# Exit status: 0 identical, 1 a binary differs, 2 usage or build failure.
# Takes a few minutes on 2 cores (two clean builds of the planner, file I/O, driver and kernels).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
KEEP=0
TARGETS=()
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --keep) KEEP=1 ;;
    -*) echo "check_rvv_reproducible: unknown option '$a'" >&2; usage >&2; exit 2 ;;
    *) TARGETS+=("$a") ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(//rvv:runner //rvv:runner_scalar //rvv:runner_autovec)

SCRATCH="$(mktemp -d /tmp/sattn-rvv-repro.XXXXXX)"
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "kept $SCRATCH" >&2; return; fi
  for ob in "$SCRATCH"/ob1 "$SCRATCH"/ob2; do
    [ -d "$ob" ] && bazel --output_base="$ob" shutdown >/dev/null 2>&1 || true
  done
  chmod -R u+w "$SCRATCH" 2>/dev/null || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

# Second source tree: the working tree's files (tracked and untracked, not ignored) at another
# path, so absolute source paths cannot hide in the binaries. The venv is shared (a symlink):
# it is an input of no RISC-V action.
mkdir -p "$SCRATCH/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) \
  | tar -xf - -C "$SCRATCH/src"
[ -e "$ROOT/.venv" ] && ln -s "$ROOT/.venv" "$SCRATCH/src/.venv"

build() {  # src_dir output_base -> prints "sha  target" lines
  local src="$1" ob="$2"
  (cd "$src" && bazel --output_base="$ob" build --config=rvv --disk_cache= --remote_cache= "${TARGETS[@]}" >"$ob.log" 2>&1) || {
    echo "check_rvv_reproducible: build in $src failed; log:" >&2; tail -30 "$ob.log" >&2; exit 2; }
  local bin
  bin="$(cd "$src" && bazel --output_base="$ob" info --config=rvv bazel-bin 2>/dev/null)"
  for t in "${TARGETS[@]}"; do
    local rel="${t#//}"; rel="${rel/://}"
    printf '%s  %s\n' "$(sha256sum "$bin/$rel" | cut -d' ' -f1)" "$t"
  done
}

echo "[repro] build 1: $ROOT (output base $SCRATCH/ob1)" >&2
build "$ROOT" "$SCRATCH/ob1" > "$SCRATCH/sums1"
echo "[repro] build 2: $SCRATCH/src (output base $SCRATCH/ob2)" >&2
build "$SCRATCH/src" "$SCRATCH/ob2" > "$SCRATCH/sums2"
cat "$SCRATCH/sums1"
if diff -u "$SCRATCH/sums1" "$SCRATCH/sums2" >&2; then
  echo "[repro] identical: ${#TARGETS[@]} riscv64 binaries, two clean builds" >&2
  exit 0
fi
echo "[repro] DIFFERENT: the builds above are not bit-identical" >&2
exit 1
