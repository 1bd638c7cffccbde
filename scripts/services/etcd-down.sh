#!/usr/bin/env bash
# etcd-down.sh - stops the etcd that scripts/services/etcd.sh started, by its PID file only
# (${ROSCA_ETCD_DIR:-/tmp/rosca-etcd}/etcd.pid). An etcd it did not start is left alone.
# The data dir and the packages stay, so the next etcd.sh starts in about a second.
# Messages go to stderr.
set -uo pipefail
DIR="${ROSCA_ETCD_DIR:-/tmp/rosca-etcd}"
F="$DIR/etcd.pid"
log() { echo "[etcd-down.sh] $*" >&2; }

if [ -s "$F" ]; then
  pid=$(cat "$F")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; log "killed -9 $pid"; fi
    log "stopped etcd ($pid)"
  else
    log "etcd ($pid) was not running"
  fi
fi
rm -f "$F"
log "done"
