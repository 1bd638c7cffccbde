#!/usr/bin/env bash
# slurm-down.sh - stops what scripts/services/slurm.sh started, by its PID files only
# (${ROSCA_SLURM_DIR:-/tmp/rosca-slurm}/{slurmrestd,slurmd,slurmctld}.pid, and munged only when
# slurm.sh started it). Queued and running jobs are cancelled first, so that no slurmstepd
# outlives slurmd. Packages, /etc/slurm/slurm.conf and the keys stay, so the next slurm.sh starts
# in a few seconds. Messages go to stderr.
set -uo pipefail
DIR="${ROSCA_SLURM_DIR:-/tmp/rosca-slurm}"
log() { echo "[slurm-down.sh] $*" >&2; }

stop_pidfile() { # stop_pidfile FILE SIGNAL NAME
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$2" "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; log "killed -9 $3 ($pid)"; fi
    log "stopped $3 ($pid)"
  else
    log "$3 ($pid) was not running"
  fi
  rm -f "$f"
}

if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086 # one argument per job id
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop_pidfile "$DIR/slurmrestd.pid" INT slurmrestd   # INT: its clean shutdown (as backends.md does)
stop_pidfile "$DIR/slurmd.pid" TERM slurmd
stop_pidfile "$DIR/slurmctld.pid" TERM slurmctld
if [ -s "$DIR/munged.pidfile" ]; then
  stop_pidfile "$(cat "$DIR/munged.pidfile")" TERM munged
  rm -f "$DIR/munged.pidfile"
fi
rm -f "$DIR/env"
log "done"
