#!/usr/bin/env bash
# postgres.sh - makes sure a PostgreSQL server answers and prints a connection URL on stdout.
#
#   url=$(scripts/services/postgres.sh)            # postgres://...@127.0.0.1:5432/postgres
#   url=$(scripts/services/postgres.sh --new-db)   # a fresh database rosca_test_<random> in it
#
# Idempotent. A server already answering on $PG_HOST:$PG_PORT (default 127.0.0.1:5432) is used
# as it is (many machines and CI run one, with trust auth for postgres). Only when none answers:
# Debian's postgresql package is installed if missing, and a private cluster is initialised in
# ${ROSCA_PG_DIR:-/tmp/rosca-postgres} (trust auth on loopback, fsync off: disposable test data)
# and started on that port. Stop that private cluster with `postgres.sh --stop`.
# Messages go to stderr; exit 1 when no server can be had (the reason is printed).
set -euo pipefail

HOST="${PG_HOST:-127.0.0.1}"
PORT="${PG_PORT:-5432}"
DIR="${ROSCA_PG_DIR:-/tmp/rosca-postgres}"
DATA="$DIR/data"
log() { echo "[postgres.sh] $*" >&2; }
die() { echo "[postgres.sh] ERROR: $*" >&2; exit 1; }

new_db=0
case "${1:-}" in
  --new-db) new_db=1 ;;
  --stop)
    if [ -s "$DATA/postmaster.pid" ]; then
      pid=$(head -1 "$DATA/postmaster.pid")
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      log "stopped the private cluster (pid $pid)"
    fi
    exit 0 ;;
  "") ;;
  *) die "usage: postgres.sh [--new-db|--stop]" ;;
esac

# The server's own user when we started it; otherwise postgres (trust) or $PGUSER.
USER_NAME="${PGUSER:-postgres}"

answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
  fi
}

pg_bin() {
  local v
  v=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$v" ] && echo "$v"
}

install_postgres() {
  [ -n "$(pg_bin)" ] && command -v psql >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and this is not root: install Debian's postgresql (apt-get install postgresql) or set PG_HOST/PG_PORT/PGUSER to a running server"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get here"
  APT_LOG="$DIR/apt.log"
  mkdir -p "$DIR"
  . "$(dirname "$0")/apt.sh"
  apt_install postgresql postgresql-client
}

start_private() {
  local bin; bin=$(pg_bin) || true
  [ -n "$bin" ] || die "no PostgreSQL binaries under /usr/lib/postgresql after installing"
  local as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing"
    as=(runuser -u postgres --)
  fi
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb $DATA"
    "${as[@]}" "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  log "starting a private cluster on $HOST:$PORT ($DATA)"
  "${as[@]}" "$bin/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=$HOST -c port=$PORT -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { tail -n 20 "$DIR/postgres.log" >&2; die "pg_ctl start failed"; }
  USER_NAME=postgres
}

if answers; then
  :
else
  # A cluster of ours that stopped (machine restart) or none at all.
  install_postgres
  start_private
  for _ in $(seq 50); do answers && break; sleep 0.2; done
  answers || die "PostgreSQL does not answer on $HOST:$PORT"
fi

command -v psql >/dev/null || install_postgres
q() { psql -h "$HOST" -p "$PORT" -U "$USER_NAME" -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
q 'select 1' >/dev/null || die "cannot connect to $HOST:$PORT as $USER_NAME (set PGUSER/PGPASSWORD)"

pass=""
[ -n "${PGPASSWORD:-}" ] && pass=":$PGPASSWORD"
db=postgres
if [ $new_db = 1 ]; then
  db="rosca_test_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  q "create database \"$db\"" || die "cannot create database $db"
  log "created database $db (drop it with: psql -h $HOST -p $PORT -U $USER_NAME -c 'drop database $db')"
fi
echo "postgres://$USER_NAME$pass@$HOST:$PORT/$db"
