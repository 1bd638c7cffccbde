#!/usr/bin/env bash
# s3-down.sh - stops the moto_server that scripts/services/s3.sh started, by its PID file only
# (${ROSCA_S3_DIR:-/tmp/rosca-s3}/moto.pid). A server it did not start is left alone.
# moto keeps everything in memory: the buckets and objects are gone. The venv stays, so the next
# s3.sh starts in a few seconds. Messages go to stderr.
set -uo pipefail
DIR="${ROSCA_S3_DIR:-/tmp/rosca-s3}"
F="$DIR/moto.pid"
log() { echo "[s3-down.sh] $*" >&2; }

if [ -s "$F" ]; then
  pid=$(cat "$F")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; log "killed -9 $pid"; fi
    log "stopped moto_server ($pid)"
  else
    log "moto_server ($pid) was not running"
  fi
fi
rm -f "$F"
log "done"
