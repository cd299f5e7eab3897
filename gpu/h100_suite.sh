#!/usr/bin/env bash
# The whole GPU check in one go, for one call on a lent GPU machine (CI has no GPU): the GPU test
# suite (all test files as shards of pytest processes side by side), then the benchmark against
# FlexAttention / SDPA, then //tools:bench's triton row with its peers. Run from the repository root with the machine's own
# Python (torch + triton installed); results go to $1 (default ./h100_out).
#   bash gpu/h100_suite.sh [out_dir] [bench_gpu.py flags...]   (SATTN_SUITE_TESTS=0: bench only)
set -u
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,6p' "$0"; exit 0
fi
out="${1:-h100_out}"; shift || true
mkdir -p "$out"
py="${PYTHON:-python}"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/device.txt"

if [[ "${SATTN_SUITE_TESTS:-1}" == "1" ]]; then
echo "== GPU tests ($(date -u +%H:%M:%S))"
run_tests() {  # name, shard index, shard count, test file
  local name="$1"
  TEST_SHARD_INDEX="$2" TEST_TOTAL_SHARDS="$3" timeout "${SATTN_TEST_TIMEOUT:-240}" \
    "$py" tools/bazel/pytest_main.py "$4" > "$out/test_$name.txt" 2>&1
  echo "$name: $(tail -1 "$out/test_$name.txt")"
}
# All test processes side by side (the machine has 16 cores; on real kernels the tests mostly
# compile kernel variants, CPU work): gpu_test.py in 4 shards, op/plans tests, and
# kernels_test.py in the remaining shards, each shard run by Bazel's own test runner
# (tools/bazel/pytest_main.py: TEST_TOTAL_SHARDS / TEST_SHARD_INDEX, round robin as under Bazel).
cores=$(nproc)
kshards=$(( cores > 9 ? cores - 5 : 4 ))
for i in 0 1 2 3; do
  run_tests gpu_$i $i 4 gpu/tests/gpu_test.py &
done
run_tests op 0 1 gpu/tests/op_test.py &
run_tests plans 0 1 gpu/tests/plans_test.py &
for ((i = 0; i < kshards; i++)); do
  run_tests kernels_$i $i $kshards gpu/tests/kernels_test.py &
done
wait
# One log file (the device tool returns at most 8 files).
for f in "$out"/test_*.txt; do echo "### $(basename "$f")"; cat "$f"; done > "$out/tests.txt"
rm -f "$out"/test_*.txt
fi

echo "== bench_gpu.py ($(date -u +%H:%M:%S))"
"$py" gpu/bench_gpu.py --out "$out" "$@" 2>&1 | grep -v -e Warning -e _warn_once -e "bm = create_block_mask" \
  | cut -c1-400

echo "== tools/bench.py --backend triton --compare ($(date -u +%H:%M:%S))"
if "$py" -c "import absl" 2>/dev/null; then
  PYTHONPATH="python:gpu${PYTHONPATH:+:$PYTHONPATH}" "$py" tools/bench.py --backend triton --device cuda --dtype bfloat16 --spec block_topk --block 128 \
    --heads 16 --head_dim 128 --seq_len 8192 --repeat 10 --compare --out "$out/tools_bench.json" 2>&1 | tail -12
else
  echo "absl not installed on this machine: tools/bench.py skipped"
fi
echo "== done ($(date -u +%H:%M:%S))"
