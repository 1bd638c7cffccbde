#!/usr/bin/env bash
# etcd.sh - makes sure an etcd (v3 API) answers on 127.0.0.1:2379 and prints its client URL on
# stdout, for the etcd state backend's tests:
#
#   url=$(scripts/services/etcd.sh)          # http://127.0.0.1:2379
#   . "${ROSCA_ETCD_DIR:-/tmp/rosca-etcd}/env"   # ETCDCTL_API=3, ETCDCTL_ENDPOINTS, ROSCA_ETCD_URL
#
# An etcd already answering on 127.0.0.1:2379 is used as it is. Only when none answers:
# Debian's etcd-server/etcd-client (3.4) are installed if missing (needs root), and a
# single-member etcd is started with client URL 127.0.0.1:2379, peer URL 127.0.0.1:2380, no TLS
# and no auth, data dir $ROSCA_ETCD_DIR/data (kept between runs; ROSCA_ETCD_FRESH=1 wipes it
# before starting). Ready = `ETCDCTL_API=3 etcdctl endpoint health` passes.
# Idempotent: a second run on a healthy etcd only checks its health (well under a second).
# State dir ${ROSCA_ETCD_DIR:-/tmp/rosca-etcd}: etcd.pid, etcd.log, data/, env.
# Stop with etcd-down.sh (by PID file only). Messages go to stderr. See docs/state-testbed.md.
set -euo pipefail

DIR="${ROSCA_ETCD_DIR:-/tmp/rosca-etcd}"
HOSTPORT=127.0.0.1:2379
PEER=http://127.0.0.1:2380
URL="http://$HOSTPORT"
PIDF="$DIR/etcd.pid"
LOGF="$DIR/etcd.log"
ETCD=/usr/bin/etcd
ETCDCTL=/usr/bin/etcdctl

log() { echo "[etcd.sh +${SECONDS}s] $*" >&2; }
die() { echo "[etcd.sh] ERROR: $*" >&2; exit 1; }
alive() { [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
tcp_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
healthy() { # etcdctl when installed, else the HTTP /health of the client port
  tcp_open "$HOSTPORT" || return 1
  if [ -x "$ETCDCTL" ]; then
    ETCDCTL_API=3 "$ETCDCTL" --endpoints="$HOSTPORT" --dial-timeout=1s --command-timeout=2s \
      endpoint health >/dev/null 2>&1
  else
    curl -sf --max-time 2 "$URL/health" 2>/dev/null | grep -q '"health":"true"'
  fi
}
write_env() {
  cat > "$DIR/env" <<EOF
# written by scripts/services/etcd.sh
export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$HOSTPORT ROSCA_ETCD_URL=$URL
EOF
}

mkdir -p "$DIR"
exec 8>"$DIR/.lock"
flock -w 300 8 || die "another etcd.sh holds $DIR/.lock"

# ---- fast path: something healthy answers already (ours or not) ----------------------------------
if healthy; then
  if alive; then log "etcd already running (pid $(cat "$PIDF"))"
  else log "an etcd not started by this script answers on $HOSTPORT: using it"; fi
  write_env
  echo "$URL"
  exit 0
fi

# ---- packages --------------------------------------------------------------------------------------
APT_LOG="$DIR/apt.log"
. "$(dirname "$0")/apt.sh"
apt_install etcd-server etcd-client curl

# ---- start (unless ours is already starting) ---------------------------------------------------------
if alive; then
  log "etcd (pid $(cat "$PIDF")) is running but not healthy yet: waiting"
else
  for hp in "$HOSTPORT" "${PEER#http://}"; do
    tcp_open "$hp" && die "$hp is taken by a process that is not ours (and is not a healthy etcd): stop it first"
  done
  [ "${ROSCA_ETCD_FRESH:-0}" = 1 ] && { log "ROSCA_ETCD_FRESH=1: wiping $DIR/data"; rm -rf "$DIR/data"; }
  rm -f "$PIDF"
  log "starting etcd $("$ETCD" --version | sed -n 's/^etcd Version: //p') on $URL (data $DIR/data)"
  start-stop-daemon --start --background --make-pidfile --pidfile "$PIDF" --output "$LOGF" \
    --exec "$ETCD" -- --name rosca --data-dir "$DIR/data" \
    --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "$PEER" --initial-advertise-peer-urls "$PEER" \
    --initial-cluster "rosca=$PEER" --initial-cluster-state new
fi

end=$(( $(date +%s) + 30 ))
until healthy; do
  alive || { tail -n 20 "$LOGF" >&2; die "etcd exited (log: $LOGF)"; }
  [ "$(date +%s)" -lt "$end" ] || { tail -n 20 "$LOGF" >&2; die "etcd not healthy after 30 s (log: $LOGF)"; }
  sleep 0.1
done
write_env
log "etcd up on $URL (pid $(cat "$PIDF"); log $LOGF)"
echo "$URL"
