#!/usr/bin/env bash
# bench-server.sh - `rosca serve` under load, and side by side with the Infrastructure Manager.
#
#   scripts/bench-server.sh              # full run (10k deployments, 20 s per wrk run, N = 1,10,100)
#   BENCH_QUICK=1 scripts/bench-server.sh   # a smoke run (1k deployments, 5 s, N = 1,10)
#
# Idempotent setup: wrk from Debian's packages when missing; a venv target/bench-im-venv with
# IM 2.0.0 from PyPI (its REST server, Dummy cloud connector, SQLite); `rosca` built --release.
# Then (scripts/bench_server.py): POST accept rate, 10k stored deployments, GET by id and list
# pages with wrk (-t2 -c50 --latency), and create + delete of N-node templates on both servers.
# Writes target/bench/server-results.md (and raw wrk output beside it). Without IM (BENCH_NO_IM=1,
# or its install failing) the Rosca half still runs and the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
work="$root/target/bench/server"
mkdir -p "$work"
log() { echo "[bench-server] $*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends wrk >&2
fi

im_python=""
if [ "${BENCH_NO_IM:-0}" != 1 ]; then
  venv="$root/target/bench-im-venv"
  if ! "$venv/bin/python" -c 'import IM, importlib.metadata as m; assert m.version("IM") == "2.0.0"' 2>/dev/null; then
    log "creating $venv with im==2.0.0"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    if ! "$venv/bin/pip" install -q 'im==2.0.0' >&2; then
      log "pip install im==2.0.0 failed: running without IM"
      venv=""
    fi
  fi
  [ -n "$venv" ] && im_python="$venv/bin/python"
fi

log "building rosca (release)"
cargo build --release -p cli --bin rosca >&2
rosca="$target/release/rosca"

args=(--rosca "$rosca" --work "$work" --out "$root/target/bench/server-results.md")
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  args+=(--deployments 1000 --duration 5 --sizes 1,10 --repeat 2)
fi
[ -n "$im_python" ] && args+=(--im-python "$im_python")
python3 scripts/bench_server.py "${args[@]}" "$@"
log "wrote target/bench/server-results.md ($(nproc) cores, commit $(git rev-parse --short HEAD))"
