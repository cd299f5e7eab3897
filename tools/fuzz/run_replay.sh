#!/usr/bin/env bash
# A *_fuzz test in the default (gcc) build: replays the corpus plus deterministic mutations
# through tools/fuzz/replay_main.cc. Seconds, not minutes; `--config=asan` fuzzes for real.
# Usage (from tools/bazel/fuzz.bzl): run_replay.sh BINARY MAX_TOTAL_TIME MUTATIONS CORPUS_FILE...
set -euo pipefail
bin="$1"
mutations="$3"
shift 3
exec "$bin" -mutations="$mutations" "$@"
