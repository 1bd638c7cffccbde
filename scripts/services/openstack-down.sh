#!/usr/bin/env bash
# openstack-down.sh - stops what scripts/services/openstack.sh started, by PID file only
# (${ROSCA_OPENSTACK_DIR:-/tmp/rosca-openstack}/run/*.pid). A PostgreSQL or RabbitMQ that was
# already answering when openstack.sh ran is left alone; the ones openstack.sh started itself
# (only on a machine that had none) are stopped too. Databases, configs and packages stay, so
# the next openstack.sh starts in about a minute. Messages go to stderr.
set -uo pipefail
STATE="${ROSCA_OPENSTACK_DIR:-/tmp/rosca-openstack}"
RUN="$STATE/run"
log() { echo "[openstack-down.sh] $*" >&2; }

stop_pidfile() { # stop_pidfile FILE: TERM, wait up to 15 s, then KILL
  local f=$1 pid
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; log "killed -9 $pid ($(basename "$f" .pid))"; fi
    log "stopped $(basename "$f" .pid) ($pid)"
  fi
  rm -f "$f"
}

# the OpenStack services stop in parallel (each takes a few seconds on SIGTERM)
for s in nova-compute nova-scheduler nova-conductor nova-api cinder-volume cinder-scheduler cinder-api \
         neutron-server glance-api placement-api; do
  stop_pidfile "$RUN/$s.pid" &
done
wait
stop_pidfile "$RUN/keystone.pid"
rm -f "$STATE/.stamp"
if [ -f "$STATE/started-rabbitmq" ]; then
  # beam.smp of our own node (its pid file, else the wrapper shell's child); the wrapper exits with it
  if [ ! -s "$STATE/rabbitmq/beam.pid" ] && [ -s "$RUN/rabbitmq-wrapper.pid" ]; then
    ps -o pid= --ppid "$(cat "$RUN/rabbitmq-wrapper.pid")" | head -1 | tr -d ' ' > "$STATE/rabbitmq/beam.pid"
  fi
  stop_pidfile "$STATE/rabbitmq/beam.pid"
  stop_pidfile "$RUN/rabbitmq-wrapper.pid"
  stop_pidfile "$RUN/epmd.pid"
  rm -f "$STATE/started-rabbitmq"
fi
if [ -f "$STATE/started-postgres" ]; then   # a private cluster that postgres.sh started for us
  d=$(cat "$STATE/started-postgres")
  if [ -s "$d/data/postmaster.pid" ]; then
    pid=$(head -1 "$d/data/postmaster.pid")
    kill -INT "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "stopped PostgreSQL ($pid, $d)"
  fi
  rm -f "$STATE/started-postgres"
fi
log "done"
