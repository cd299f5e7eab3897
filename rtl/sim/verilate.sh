#!/bin/bash
# Verilates a design into a static archive with a fixed set of outputs (Bazel cannot glob the
# files Verilator generates): lib<prefix>.a (model + Verilator runtime), <prefix>.h and the five
# runtime headers it includes.
# Usage: verilate.sh PREFIX TOP OUTDIR "EXTRA VERILATOR FLAGS" FILE.sv...
set -euo pipefail
prefix=$1; top=$2; out=$3; extra=$4; shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inc=/usr/share/verilator/include
# The host C++ compiler (Bazel's autodetected toolchain is gcc here; clang-19 is always installed).
cxx=$(command -v g++ || command -v clang++-19)
# Sources by their execroot-relative paths, and the scratch directory mapped out of __FILE__, so
# the archive does not depend on where the checkout or the output base lives.
files=("$@")
if ! verilator --cc --assert -Wno-fatal -Wno-WIDTH -Wno-UNUSED -Wno-DECLFILENAME \
    --prefix "$prefix" --top-module "$top" --Mdir "$work" $extra "${files[@]}" >"$work/verilator.log" 2>&1; then
  cat "$work/verilator.log" >&2
  exit 1
fi
flags=(-fPIC -O1 -I"$inc" -I"$inc/vltstd" -DVM_COVERAGE=0 -DVM_SC=0 -DVM_TRACE=0 -DVM_TRACE_FST=0
       -DVM_TRACE_VCD=0 -faligned-new -w -ffile-prefix-map="$work"=verilated)
# The model's translation units (two at a time), then the Verilator runtime, in one archive.
objs=()
pids=()
for src in "$work"/*.cpp; do
  obj="${src%.cpp}.o"
  objs+=("$obj")
  "$cxx" "${flags[@]}" -I"$work" -c "$src" -o "$obj" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
"$cxx" "${flags[@]}" -c "$inc/verilated.cpp" -o "$work/verilated.o"
"$cxx" "${flags[@]}" -c "$inc/verilated_threads.cpp" -o "$work/verilated_threads.o"
mkdir -p "$out"
rm -f "$out/lib$prefix.a"
ar rcs "$out/lib$prefix.a" "${objs[@]}" "$work/verilated.o" "$work/verilated_threads.o"
cp "$work/$prefix.h" "$out/$prefix.h"
for h in verilated.h verilatedos.h verilated_config.h verilated_types.h verilated_funcs.h; do
  cp "$inc/$h" "$out/$h"
done
