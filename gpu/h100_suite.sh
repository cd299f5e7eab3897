#!/usr/bin/env bash
# The whole GPU check in one go, for one call on a lent H100 (CI has no GPU): the GPU test suite
# (four pytest processes side by side, then the kernel tests in four shards), then the benchmark against FlexAttention / SDPA, then
# //tools:bench's triton row with its peers. Run from the repository root with the machine's own
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
run_tests() {  # name, pytest args...
  local name="$1"; shift
  timeout "${SATTN_TEST_TIMEOUT:-240}" "$py" -m pytest -q -p no:cacheprovider "$@" > "$out/test_$name.txt" 2>&1
  echo "$name: $(tail -1 "$out/test_$name.txt")"
}
run_tests gpu_bf16 gpu/tests/gpu_test.py -k "specs_at_1k and bfloat16" &
run_tests gpu_other_dtypes gpu/tests/gpu_test.py -k "specs_at_1k and not bfloat16" &
run_tests gpu_rest gpu/tests/gpu_test.py -k "not specs_at_1k" &
run_tests op_plans gpu/tests/op_test.py gpu/tests/plans_test.py &
wait
# The small-shape kernel tests compile hundreds of kernel variants (270 s were not enough for one
# process in run 11): four shards side by side, after the others.
kt=gpu/tests/kernels_test.py
run_tests kernels_fp32 $kt -k "fp32_every_spec" &
run_tests kernels_half $kt -k "half_precision" &
run_tests kernels_decode $kt -k "gqa or fused or split or decode" &
run_tests kernels_rest $kt -k "not (fp32_every_spec or half_precision or gqa or fused or split or decode)" &
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
