#!/usr/bin/env bash
# Fuzzes the TOSCA front-end: arbitrary bytes (as lossy UTF-8) through tosca::compile, offline.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60). Not part of CI.
#
# Installs cargo-fuzz if missing. Uses a nightly toolchain when rustup has one; otherwise the
# stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Zsanitizer; nothing is downloaded).
# Crashes land in fuzz/artifacts/load/; the corpus grows in fuzz/corpus/load/ (seeded from
# fuzz/seeds/). Reproduce one with: scripts/fuzz.sh run-one fuzz/artifacts/load/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/fuzz}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz..." >&2
  cargo install cargo-fuzz --locked
fi

TOOLCHAIN=()
if command -v rustup >/dev/null && rustup run nightly rustc --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

cd fuzz
if [[ "${1:-}" == "run-one" ]]; then
  exec cargo "${TOOLCHAIN[@]}" fuzz run load "$2"
fi
SECONDS_TO_RUN="${1:-60}"
mkdir -p corpus/load
cp -n seeds/* corpus/load/ 2>/dev/null || true
# -rss_limit_mb: the 16 MiB file limit and YAML budgets keep real use far below this.
# -max_len: larger inputs only slow the fuzzer down; size limits are tested in tosca/tests/no_panic.rs.
exec cargo "${TOOLCHAIN[@]}" fuzz run load corpus/load -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=16384 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
