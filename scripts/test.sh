#!/usr/bin/env bash
# The whole test suite. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 2
fi
# tosca-parser is only for the side-by-side benchmark (scripts/bench-tosca.sh), not for tests.
cargo test --workspace --all-targets --locked
