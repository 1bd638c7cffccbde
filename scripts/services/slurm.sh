#!/usr/bin/env bash
# slurm.sh - makes sure a one-node Slurm cluster with slurmrestd (JWT auth) runs on 127.0.0.1 and
# prints on stdout the path of an env file for the HPC provider's tests:
#
#   env=$(scripts/services/slurm.sh)      # /tmp/rosca-slurm/env
#   . "$env"   # SLURMRESTD_URL, SLURM_USER_NAME=root, SLURM_JWT (4 h), ROSCA_TEST_SLURM_TOKEN_CMD
#
# What runs: Debian's Slurm 22.05 (munge slurmctld slurmd slurm-client slurmrestd
# slurm-wlm-jwt-plugin, installed when missing; needs root): munged, slurmctld (6817), slurmd
# (6818) for the node "localhost" with CPUs=$ROSCA_SLURM_CPUS (default 16, more than nproc on
# purpose so that 10+ one-CPU jobs run at once; SlurmdParameters=config_overrides lets slurmd
# register anyway), partition "debug" (default, no time limit), AuthAltTypes=auth/jwt, and
# slurmrestd on 127.0.0.1:${SLURMRESTD_PORT:-6820} serving openapi/v0.0.36, v0.0.37 and v0.0.38.
# Jobs run as the token's user (root) under proctrack/linuxproc: no cgroups, no limits.
# No systemd: daemons are started with start-stop-daemon and stopped by slurm-down.sh (PID files).
#
# Idempotent: when everything already answers (slurmrestd ping with a fresh token) it only
# rewrites the env file (well under a second). After a fresh start it checks that ten one-CPU jobs
# run at the same time and that a job's stdout lands where it was asked to
# (ROSCA_SLURM_VERIFY=auto|1|0: auto = after a start, 1 = always, 0 = never).
# State dir ${ROSCA_SLURM_DIR:-/tmp/rosca-slurm}: *.pid, *.log, env (mode 600: it holds a token),
# token.sh. Config: /etc/slurm/slurm.conf (refused if it exists and was not written by this
# script). Messages go to stderr. See docs/providers/hpc-testbed.md.
set -euo pipefail

DIR="${ROSCA_SLURM_DIR:-/tmp/rosca-slurm}"
PORT="${SLURMRESTD_PORT:-6820}"
URL="http://127.0.0.1:$PORT"
CPUS="${ROSCA_SLURM_CPUS:-16}"
VERIFY="${ROSCA_SLURM_VERIFY:-auto}"
TOKEN_USER=root              # jobs run as this user: slurmd runs as root and so may any job
LIFESPAN=14400               # seconds, for SLURM_JWT in the env file
CONF=/etc/slurm/slurm.conf
MARK="# written by rosca scripts/services/slurm.sh"
JWT_KEY=/var/lib/slurm/slurmctld/jwt_hs256.key
MUNGE_PIDF=/run/munge/munged.pid
PKGS=(munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin curl)

log() { echo "[slurm.sh +${SECONDS}s] $*" >&2; }
die() { echo "[slurm.sh] ERROR: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # wait_for SECONDS CMD... : true once CMD succeeds
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.2; done
}
# A caller that sourced the env file has SLURM_JWT set: Slurm's commands and daemons would then
# use auth/jwt instead of munge, and a slurmctld started so dies with "AuthType change requires
# restart of all Slurm daemons". Everything here uses munge; slurmrestd gets its own value below.
unset SLURM_JWT
case "$VERIFY" in auto|0|1) ;; *) die "ROSCA_SLURM_VERIFY must be auto, 1 or 0" ;; esac
case "$CPUS" in ''|*[!0-9]*) die "ROSCA_SLURM_CPUS must be a number" ;; esac
[ "$(id -u)" = 0 ] || die "run as root: it starts munged/slurmd as root and makes tokens for root"

token() { # token SECONDS -> the bare JWT (scontrol prints SLURM_JWT=...)
  scontrol token lifespan="$1" username="$TOKEN_USER" 2>/dev/null | sed -n 's/^SLURM_JWT=//p'
}
ping_ok() { # ping_ok TOKEN
  curl -sf --max-time 3 -H "X-SLURM-USER-NAME: $TOKEN_USER" -H "X-SLURM-USER-TOKEN: $1" \
    "$URL/slurm/v0.0.38/ping" 2>/dev/null | grep -q '"ping": *"UP"'
}
write_env() { # write_env TOKEN
  cat > "$DIR/token.sh" <<EOF
#!/bin/sh
# written by scripts/services/slurm.sh: prints SLURM_JWT=<token for $TOKEN_USER> valid \${1:-$LIFESPAN} s.
# SLURM_JWT is removed first: with an expired one in its environment scontrol fails to fetch a token.
exec env -u SLURM_JWT scontrol token lifespan="\${1:-$LIFESPAN}" username=$TOKEN_USER
EOF
  chmod 0755 "$DIR/token.sh"
  ( umask 077; cat > "$DIR/env.new" <<EOF
# written by scripts/services/slurm.sh (a token: keep it private). Source it.
export SLURMRESTD_URL=$URL
export SLURM_USER_NAME=$TOKEN_USER
export SLURM_JWT=$1
# A command that prints a fresh token as SLURM_JWT=<token> (lifespan $LIFESPAN s). It drops
# SLURM_JWT from scontrol's environment: with an expired token there, scontrol cannot fetch one.
export ROSCA_TEST_SLURM_TOKEN_CMD='env -u SLURM_JWT scontrol token lifespan=$LIFESPAN username=$TOKEN_USER'
# For a short-lived token (lifespan N seconds): "\$ROSCA_TEST_SLURM_TOKEN_SCRIPT N", i.e.
# env -u SLURM_JWT scontrol token lifespan=N username=$TOKEN_USER
export ROSCA_TEST_SLURM_TOKEN_SCRIPT=$DIR/token.sh
export ROSCA_TEST_SLURM_PARTITION=debug ROSCA_TEST_SLURM_CPUS=$CPUS
EOF
  mv "$DIR/env.new" "$DIR/env" )
}

# verify: the scheduler really runs ten one-CPU jobs at once, and stdout lands where asked
verify() {
  local out="$DIR/verify" ids=() id n=0 end
  mkdir -p "$out"; rm -f "$out"/*
  for _ in $(seq 10); do
    id=$(sbatch --parsable -p debug -n 1 -c 1 -J rosca-verify -D "$out" -o "$out/sleep-%j.out" \
      --wrap 'sleep 30') || die "verify: sbatch failed"
    ids+=("$id")
  done
  end=$(( $(date +%s) + 20 ))
  while :; do
    n=$(squeue -h -t RUNNING -n rosca-verify -o %i | wc -l)
    [ "$n" -ge 10 ] && break
    [ "$(date +%s)" -lt "$end" ] || { scancel "${ids[@]}"; die "verify: only $n of 10 one-CPU jobs run at once after 20 s (CPUs=$CPUS; see $DIR/slurmctld.log)"; }
    sleep 0.2
  done
  scancel "${ids[@]}"
  id=$(sbatch --parsable -p debug -J rosca-verify -D / -o "$out/echo-%j.txt" --wrap 'echo rosca-ok') \
    || die "verify: sbatch failed"
  wait_for 20 grep -q rosca-ok "$out/echo-$id.txt" || die "verify: job $id wrote no $out/echo-$id.txt"
  wait_for 10 sh -c "[ -z \"\$(squeue -h -n rosca-verify -o %i)\" ]" || log "verify: cancelled jobs still listed"
  rm -rf "$out"
  log "verified: 10 one-CPU jobs ran at once; stdout landed at the absolute standard_output path"
}

mkdir -p "$DIR"
exec 8>"$DIR/.lock"
flock -w 900 8 || die "another slurm.sh holds $DIR/.lock"

# The config this script wants; the fast path is taken only when /etc/slurm/slurm.conf equals it.
render_conf() {
  local MEM
  MEM=$(awk '/^MemTotal:/ {print int($2 / 1024 / 2)}' /proc/meminfo)   # half of RAM, in MiB
  cat > "$DIR/slurm.conf.new" <<EOF
$MARK
# One node "localhost" on 127.0.0.1; no cgroups, no accounting. CPUs is declared larger than
# nproc so that many small test jobs run at once; config_overrides lets slurmd register anyway.
ClusterName=rosca
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# ---- fast path: our cluster answers already ---------------------------------------------------------
render_conf
if [ -x /usr/bin/scontrol ] && cmp -s "$DIR/slurm.conf.new" "$CONF" && alive "$DIR/slurmrestd.pid"; then
  JWT=$(token "$LIFESPAN" || true)
  if [ -n "$JWT" ] && ping_ok "$JWT"; then
    rm -f "$DIR/slurm.conf.new"
    log "slurm already running (slurmrestd pid $(cat "$DIR/slurmrestd.pid"), $URL)"
    [ "$VERIFY" = 1 ] && verify
    write_env "$JWT"
    echo "$DIR/env"
    exit 0
  fi
fi

# ---- packages ------------------------------------------------------------------------------------------
APT_LOG="$DIR/apt.log"
. "$(dirname "$0")/apt.sh"
apt_install "${PKGS[@]}"

# ---- users, dirs, keys, config ----------------------------------------------------------------------
id slurmrestd >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin --user-group slurmrestd
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/munge /var/log/munge /var/lib/munge /etc/munge
chown slurm:slurm "$DIR" /var/lib/slurm/slurmctld
chmod 0755 "$DIR"
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
[ -s "$JWT_KEY" ] || dd if=/dev/urandom bs=32 count=1 of="$JWT_KEY" 2>/dev/null
chown slurm:slurm "$JWT_KEY" && chmod 0600 "$JWT_KEY"

if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  die "$CONF exists and was not written by this script: this machine has its own Slurm. Point the tests at it (SLURMRESTD_URL, SLURM_JWT) or move $CONF away"
fi
render_conf
RESTART=0
if ! cmp -s "$DIR/slurm.conf.new" "$CONF"; then
  [ -e "$CONF" ] && { log "slurm.conf changed: restarting our daemons"; RESTART=1; }
  mv "$DIR/slurm.conf.new" "$CONF"
else
  rm -f "$DIR/slurm.conf.new"
fi
chmod 0644 "$CONF"

stop_pidfile() { # stop_pidfile FILE SIGNAL
  local pid
  alive "$1" || return 0
  pid=$(cat "$1"); kill -"$2" "$pid" 2>/dev/null || true
  wait_for 10 sh -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
}
if [ $RESTART = 1 ]; then
  stop_pidfile "$DIR/slurmrestd.pid" INT; stop_pidfile "$DIR/slurmd.pid" TERM; stop_pidfile "$DIR/slurmctld.pid" TERM
fi

# The daemons below are started with 8>&-: one that inherited the lock fd would hold the lock
# for its whole life and make every later run wait.

# ---- munged (a running one is reused: it must only share the key) -------------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_ok; then
  log "munged answers"
else
  log "starting munged"
  start-stop-daemon --start --quiet --chuid munge --pidfile "$MUNGE_PIDF" --exec /usr/sbin/munged -- \
    --pid-file="$MUNGE_PIDF" 8>&- || die "munged did not start (see /var/log/munge/munged.log)"
  echo "$MUNGE_PIDF" > "$DIR/munged.pidfile"   # marker: slurm-down.sh stops only a munged we started
  wait_for 15 munge_ok || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# ---- slurmctld, slurmd (both daemonize and write their PID files themselves) ------------------------
STARTED=0
for p in 6817 6818 "$PORT"; do
  n=$([ $p = 6817 ] && echo slurmctld || { [ $p = 6818 ] && echo slurmd || echo slurmrestd; })
  alive "$DIR/$n.pid" || ! tcp_open "$p" || die "127.0.0.1:$p is taken by a process that is not our $n: stop it first"
done
if alive "$DIR/slurmctld.pid"; then log "slurmctld already running"; else
  log "starting slurmctld ($(slurmctld -V))"
  start-stop-daemon --start --quiet --pidfile "$DIR/slurmctld.pid" --exec /usr/sbin/slurmctld 8>&- \
    || { tail -n 20 "$DIR/slurmctld.log" >&2; die "slurmctld did not start (log: $DIR/slurmctld.log)"; }
  STARTED=1
fi
wait_for 30 scontrol ping || { tail -n 20 "$DIR/slurmctld.log" >&2; die "slurmctld does not answer (log: $DIR/slurmctld.log)"; }
if alive "$DIR/slurmd.pid"; then log "slurmd already running"; else
  log "starting slurmd (node localhost, CPUs=$CPUS)"
  start-stop-daemon --start --quiet --pidfile "$DIR/slurmd.pid" --exec /usr/sbin/slurmd -- -N localhost 8>&- \
    || { tail -n 20 "$DIR/slurmd.log" >&2; die "slurmd did not start (log: $DIR/slurmd.log)"; }
  STARTED=1
fi
node_up() { sinfo -h -n localhost -o %T | grep -qE '^(idle|mixed|allocated|completing)$'; }
if ! wait_for 60 node_up; then
  tail -n 20 "$DIR/slurmd.log" "$DIR/slurmctld.log" >&2
  die "node localhost is $(sinfo -h -n localhost -o %T 2>/dev/null || echo unknown), not idle, after 60 s (logs above)"
fi

# ---- slurmrestd (JWT over TCP on loopback; refuses to run as root, so it drops to slurmrestd) ---------
JWT=$(token "$LIFESPAN")
[ -n "$JWT" ] || die "scontrol token failed: is AuthAltTypes=auth/jwt active? (log: $DIR/slurmctld.log)"
if alive "$DIR/slurmrestd.pid"; then log "slurmrestd already running"; else
  log "starting slurmrestd on $URL"
  rm -f "$DIR/slurmrestd.pid"
  # SLURM_JWT=daemon: slurmrestd authenticates each request with the caller's token, not its own.
  SLURM_JWT=daemon start-stop-daemon --start --background --make-pidfile --pidfile "$DIR/slurmrestd.pid" \
    --output "$DIR/slurmrestd.log" --exec /usr/sbin/slurmrestd -- \
    -a rest_auth/jwt -s openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38 \
    -u slurmrestd -g slurmrestd "127.0.0.1:$PORT" 8>&-
  STARTED=1
fi
if ! wait_for 30 ping_ok "$JWT"; then
  tail -n 20 "$DIR/slurmrestd.log" >&2; die "slurmrestd does not answer $URL/slurm/v0.0.38/ping (log: $DIR/slurmrestd.log)"
fi
if [ "$VERIFY" = 1 ] || { [ "$VERIFY" = auto ] && [ $STARTED = 1 ]; }; then verify; fi
write_env "$JWT"
log "slurm up: $URL (v0.0.36-v0.0.38), node localhost CPUs=$CPUS, logs $DIR/*.log"
echo "$DIR/env"
