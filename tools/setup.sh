#!/usr/bin/env bash
# sattn one-time setup: Debian packages + the project virtualenv (.venv), pinned.
#
# Idempotent: packages already installed and a venv whose requirements stamp matches are left
# alone, so a second run takes seconds. Ends by checking every tool's version and fails naming
# whatever is missing.
#
# Usage: tools/setup.sh [--help] [--check]     (--check: only verify, install nothing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SATTN_VENV:-$ROOT/.venv}"
REQS="$ROOT/tools/requirements.txt"

# Debian 12 (bookworm) package pins live here and only here.
LLVM_MAJOR=19
DEB_PACKAGES=(
  bazel-bootstrap                     # Bazel 4.2.3, WORKSPACE mode
  "clang-$LLVM_MAJOR" "lld-$LLVM_MAJOR" "llvm-$LLVM_MAJOR" "llvm-$LLVM_MAJOR-dev" "llvm-$LLVM_MAJOR-tools"
  "libmlir-$LLVM_MAJOR-dev" "mlir-$LLVM_MAJOR-tools"
  "libclang-rt-$LLVM_MAJOR-dev"       # ASan/UBSan/libFuzzer runtimes: bazel test --config=asan
  libc6-dev-riscv64-cross libgcc-12-dev-riscv64-cross   # riscv64 sysroot for clang --target
  libstdc++-12-dev-riscv64-cross      # riscv64 C++ headers/libstdc++.a: the planner (C++17) runs on target
  qemu-user                           # qemu-riscv64 7.2 (RVV 1.0, TCG plugins)
  verilator                           # 5.006
  python3-dev zip unzip
  chromium-headless-shell             # //python:cli_test renders `sattn report` pages (100 MB download, 300 MB installed)
)

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

CHECK_ONLY=0
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0 ;;
    --check) CHECK_ONLY=1 ;;
    *) die "unknown argument '$a' (expected --help or --check)" ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root (or sudo) to run: $*"; fi; }

install_debian_packages() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: all present"; return; fi
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

base_python() {
  # The interpreter the venv is made from: 3.11 (the torch wheel on disk is for cp311).
  for c in "${SATTN_BASE_PYTHON:-}" python3.11 python3; do
    [ -n "$c" ] && command -v "$c" >/dev/null && "$c" -c 'import sys; assert sys.version_info[:2]==(3,11)' 2>/dev/null && { echo "$c"; return; }
  done
  die "no Python 3.11 interpreter found (set SATTN_BASE_PYTHON)"
}

make_venv() {
  local stamp="$VENV/.sattn-requirements.sha256" want
  want="$(sha256sum "$REQS" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python3" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "venv $VENV: up to date"; return
  fi
  [ -x "$VENV/bin/python3" ] || { log "creating venv $VENV"; "$(base_python)" -m venv "$VENV"; }
  log "installing pinned requirements into $VENV (first time: a few minutes)"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check -r "$REQS" 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
  echo "$want" > "$stamp"
}

check_tools() {
  local fail=()
  chk() { # name, command..., expected substring
    local name="$1" want="$2"; shift 2
    local got; got="$("$@" 2>&1 | head -n 3 | tr '\n' ' ')" || true
    if [[ "$got" == *"$want"* ]]; then log "ok   $name: $(echo "$got" | cut -c1-70)"; else fail+=("$name (wanted '$want', got '${got:0:80}')"); fi
  }
  # bazel-bootstrap's binary reports "no_version"; the package version is the truth.
  chk bazel "4.2.3" bash -c 'command -v bazel >/dev/null && dpkg-query -W -f="\${Version}" bazel-bootstrap' 
  chk clang "version $LLVM_MAJOR." "clang-$LLVM_MAJOR" --version
  chk lld "LLD $LLVM_MAJOR." "ld.lld-$LLVM_MAJOR" --version
  chk riscv64-libc "ok" bash -c 'test -f /usr/riscv64-linux-gnu/lib/libc.a && test -f /usr/riscv64-linux-gnu/include/stdio.h && echo ok' 
  chk riscv64-libgcc "ok" bash -c 'ls /usr/lib/gcc-cross/riscv64-linux-gnu/12/libgcc.a >/dev/null && echo ok'
  chk riscv64-libstdc++ "ok" bash -c 'ls /usr/lib/gcc-cross/riscv64-linux-gnu/12/libstdc++.a /usr/riscv64-linux-gnu/include/c++/12/vector >/dev/null && echo ok'
  chk qemu-riscv64 "version 7.2" qemu-riscv64 --version
  chk verilator "Verilator 5.006" verilator --version
  chk chromium-headless-shell "Chromium" chromium-headless-shell --version
  chk mlir-tblgen "version $LLVM_MAJOR." "mlir-tblgen-$LLVM_MAJOR" --version
  chk mlir-opt "version $LLVM_MAJOR." "mlir-opt-$LLVM_MAJOR" --version
  chk mlir-translate "version $LLVM_MAJOR." "mlir-translate-$LLVM_MAJOR" --version
  chk FileCheck "version $LLVM_MAJOR." "/usr/lib/llvm-$LLVM_MAJOR/bin/FileCheck" --version
  chk clang-rt "ok" bash -c "ls /usr/lib/llvm-$LLVM_MAJOR/lib/clang/$LLVM_MAJOR/lib/linux/libclang_rt.asan-x86_64.so /usr/lib/llvm-$LLVM_MAJOR/lib/clang/$LLVM_MAJOR/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null && echo ok"
  chk libMLIR "ok" bash -c "ls /usr/lib/llvm-$LLVM_MAJOR/lib/libMLIR.so >/dev/null && echo ok"
  chk venv-python "Python 3.11" "$VENV/bin/python3" --version
  chk venv-packages "ok" "$VENV/bin/python3" -c '
import importlib.metadata as m, re, sys
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line: continue
    name, want = line.split("==")
    try: got = m.version(name)
    except m.PackageNotFoundError: got = "missing"
    if got.split("+")[0] != want: bad.append(f"{name}=={want} (have {got})")
print("ok" if not bad else "mismatch: " + ", ".join(bad))' "$REQS"
  if [ ${#fail[@]} -gt 0 ]; then
    for f in "${fail[@]}"; do printf '[setup] MISSING: %s\n' "$f" >&2; done
    die "${#fail[@]} tool(s) missing or at the wrong version; rerun tools/setup.sh"
  fi
  log "all tools present"
}

if [ "$CHECK_ONLY" = 0 ]; then
  install_debian_packages
  make_venv
fi
check_tools
