#!/usr/bin/env bash
# A *_fuzz test under `--config=asan`: the harness is a libFuzzer binary (ASan + UBSan); it fuzzes
# for MAX_TOTAL_TIME seconds over a writable copy of the checked-in corpus. A crash fails the test
# and prints where the reproducer is and how to add it to the corpus.
# Usage (from tools/bazel/fuzz.bzl): run_libfuzzer.sh BINARY MAX_TOTAL_TIME MUTATIONS CORPUS_FILE...
set -euo pipefail
bin="$1"
max_total_time="$2"
shift 3
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
work="$tmp/corpus"
mkdir -p "$work"
# Content-addressed names: seeds from different directories cannot clash.
for f in "$@"; do cp "$f" "$work/$(sha1sum "$f" | cut -c1-40)"; done
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$tmp}/"
mkdir -p "$artifacts"
set +e
# -timeout: one input running this long is a hang (a finding); -rss_limit_mb: so is a huge
# allocation, the "checksum-valid file with huge dims" class of bug.
"$bin" -max_total_time="$max_total_time" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$artifacts" "$work"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  target="${TEST_TARGET:-//<package>:<target>}"
  logdir="$(printf '%s' "${target#//}" | tr ':' '/')"
  for a in "$artifacts"crash-* "$artifacts"leak-* "$artifacts"timeout-* "$artifacts"oom-* \
           "$artifacts"slow-unit-*; do
    [ -e "$a" ] || continue
    name="$(basename "$a")"
    echo "[fuzz] FINDING: $name"
    echo "[fuzz]   reproducer: bazel-testlogs/$logdir/test.outputs/outputs.zip (unzip it: $name)"
    echo "[fuzz]   replay it:  bazel run --config=asan $target""_bin -- \$PWD/$name"
    echo "[fuzz]   keep it:    copy it into the target's corpus directory (docs/build.md)"
  done
  exit "$rc"
fi
