#!/usr/bin/env bash
# s3.sh - makes sure an S3-compatible endpoint answers on 127.0.0.1:9000 and prints its URL on
# stdout, for the S3 state backend's tests:
#
#   url=$(scripts/services/s3.sh)            # http://127.0.0.1:9000
#   . "${ROSCA_S3_DIR:-/tmp/rosca-s3}/env"   # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID=test, ...
#
# What runs: moto's server (PyPI moto[server], pinned), a MOCK of S3, not a real object store:
# any access key/secret is accepted (signatures are not checked), path-style URLs, region
# us-east-1, and everything is kept in memory, so it is all gone when the server stops.
# It does honour conditional writes: PUT with "If-None-Match: *" -> 412 when the key exists,
# PUT with "If-Match: <etag>" -> 412 when the ETag moved (checked after every start, see below).
# Bodies need a binary Content-Type (application/octet-stream): with
# application/x-www-form-urlencoded, moto (werkzeug) stores them EMPTY.
#
# A server already answering S3 on 127.0.0.1:9000 is used as it is. Only when none answers:
# a venv ${ROSCA_S3_VENV:-/var/lib/rosca-s3-venv} is made with Debian's /usr/bin/python3 (else
# python3 on PATH) and moto[server] installed into it (once, 2-3 minutes; kept afterwards), and
# moto_server is started on 127.0.0.1:9000. It creates no bucket. Right after starting its own
# server it checks the conditional writes in a scratch bucket that it deletes again
# (ROSCA_S3_VERIFY=auto|1|0: auto = after a start, 1 = always, also on a reused server, 0 = never).
# Idempotent: a second run on a running server only checks that it answers (well under a second).
# State dir ${ROSCA_S3_DIR:-/tmp/rosca-s3}: moto.pid, moto.log, env. Stop with s3-down.sh (by PID
# file only). Messages go to stderr. See docs/state-testbed.md.
set -euo pipefail

DIR="${ROSCA_S3_DIR:-/tmp/rosca-s3}"
VENV="${ROSCA_S3_VENV:-/var/lib/rosca-s3-venv}"
VERIFY="${ROSCA_S3_VERIFY:-auto}"
MOTO_SPEC='moto[server]==5.2.5'     # the version docs/state-testbed.md was checked with
HOST=127.0.0.1
PORT=9000
URL="http://$HOST:$PORT"
PIDF="$DIR/moto.pid"
LOGF="$DIR/moto.log"
SIGV4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user test:test)

log() { echo "[s3.sh +${SECONDS}s] $*" >&2; }
die() { echo "[s3.sh] ERROR: $*" >&2; exit 1; }
alive() { [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
tcp_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }
# An S3 endpoint: a signed ListBuckets answers with S3 XML (a result, or an <Error> for
# credentials a real server does not know).
answers_s3() {
  tcp_open || return 1
  curl -s --max-time 3 "${SIGV4[@]}" "$URL/" 2>/dev/null | grep -qE 'ListAllMyBucketsResult|<Error>'
}
is_moto() { curl -sf --max-time 3 -o /dev/null "$URL/moto-api/" 2>/dev/null; }
case "$VERIFY" in auto|0|1) ;; *) die "ROSCA_S3_VERIFY must be auto, 1 or 0" ;; esac
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

write_env() {
  cat > "$DIR/env" <<EOF
# written by scripts/services/s3.sh (moto accepts any key; these are the documented ones)
export AWS_ENDPOINT_URL=$URL AWS_ENDPOINT_URL_S3=$URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
EOF
}

# verify: the conditional-write behaviours the S3 state backend relies on, in a scratch bucket
verify() {
  local b="rosca-verify-$$-$RANDOM" o k got etag fails=()
  o="$URL/$b/lock"
  put() { # put BODY [HEADER] -> http code; headers in $DIR/.verify-h
    curl -s -o /dev/null -D "$DIR/.verify-h" -w '%{http_code}' "${SIGV4[@]}" -X PUT \
      -H 'Content-Type: application/octet-stream' ${2:+-H "$2"} --data-binary "$1" "$o"
  }
  expect() { [ "$2" = "$3" ] || fails+=("$1: got $2, want $3"); }
  k=$(curl -s -o /dev/null -w '%{http_code}' "${SIGV4[@]}" -X PUT "$URL/$b")
  [ "$k" = 200 ] || die "verify: create bucket $b: HTTP $k"
  expect "PUT If-None-Match:* (new key)" "$(put one 'If-None-Match: *')" 200
  etag=$(awk 'tolower($1)=="etag:"{print $2}' "$DIR/.verify-h" | tr -d '\r')
  expect "PUT If-None-Match:* (key exists)" "$(put two 'If-None-Match: *')" 412
  got=$(curl -s "${SIGV4[@]}" "$o"); expect "body after the refused PUT" "$got" one
  expect "PUT If-Match:<current etag>" "$(put three "If-Match: $etag")" 200
  expect "PUT If-Match:<stale etag>" "$(put four "If-Match: $etag")" 412
  got=$(curl -s "${SIGV4[@]}" "$o"); expect "body after the stale If-Match" "$got" three
  expect "DELETE object" "$(curl -s -o /dev/null -w '%{http_code}' "${SIGV4[@]}" -X DELETE "$o")" 204
  expect "GET deleted object" "$(curl -s -o /dev/null -w '%{http_code}' "${SIGV4[@]}" "$o")" 404
  expect "DELETE bucket" "$(curl -s -o /dev/null -w '%{http_code}' "${SIGV4[@]}" -X DELETE "$URL/$b")" 204
  rm -f "$DIR/.verify-h"
  if [ ${#fails[@]} -gt 0 ]; then
    printf '[s3.sh]   %s\n' "${fails[@]}" >&2
    die "the S3 server at $URL does not behave as the state backend needs (above)"
  fi
  log "verified: If-None-Match:* 200 then 412, If-Match current 200 / stale 412, DELETE 204"
}

mkdir -p "$DIR"
exec 8>"$DIR/.lock"
flock -w 900 8 || die "another s3.sh holds $DIR/.lock"

# ---- fast path: an S3 endpoint answers already (ours or not) --------------------------------------
if answers_s3; then
  if alive; then log "moto already running (pid $(cat "$PIDF"))"
  elif is_moto; then log "a moto server not started by this script answers on $URL: using it"
  else log "an S3 server not started by this script answers on $URL: using it (credentials: yours, not test/test)"; fi
  [ "$VERIFY" = 1 ] && verify
  write_env
  echo "$URL"
  exit 0
fi

# ---- the venv (made once; a marker records the installed spec) --------------------------------------
if [ "$(cat "$VENV/.rosca-moto-spec" 2>/dev/null)" != "$MOTO_SPEC" ] || [ ! -x "$VENV/bin/moto_server" ] \
   || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  PY=""
  for c in /usr/bin/python3 "$(command -v python3 || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null \
      && { PY=$c; break; }
  done
  [ -n "$PY" ] || die "no CPython >= 3.9 found (/usr/bin/python3 or python3 on PATH)"
  if [ -e "$VENV" ]; then   # a broken or older venv of ours; anything else is not ours to remove
    [ -f "$VENV/pyvenv.cfg" ] || [ -z "$(ls -A "$VENV")" ] || die "$VENV exists and is not a venv: set ROSCA_S3_VENV"
    rm -rf "$VENV"
  fi
  mkdir -p "$(dirname "$VENV")" 2>/dev/null && [ -w "$(dirname "$VENV")" ] \
    || die "cannot write $(dirname "$VENV"): run as root or set ROSCA_S3_VENV"
  if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then   # Debian's python3 needs python3-venv
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || die "$PY has no venv module: apt-get install python3-venv"
    log "installing python3-venv"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends python3-venv >"$DIR/apt.log" 2>&1 || { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install python3-venv failed"; }
  fi
  log "creating venv $VENV ($PY, $("$PY" -V 2>&1)) and installing $MOTO_SPEC (40 s here, minutes on a slow network)"
  "$PY" -m venv "$VENV" || die "$PY -m venv $VENV failed"
  timeout 1200 "$VENV/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC" >"$DIR/pip.log" 2>&1 \
    || { tail -n 20 "$DIR/pip.log" >&2; die "pip install $MOTO_SPEC failed, see $DIR/pip.log"; }
  echo "$MOTO_SPEC" > "$VENV/.rosca-moto-spec"
fi

# ---- start (unless ours is already starting) ---------------------------------------------------------
if alive; then
  log "moto (pid $(cat "$PIDF")) is running but does not answer yet: waiting"
else
  tcp_open && die "$HOST:$PORT is taken by a process that is not ours and does not answer S3: stop it first"
  rm -f "$PIDF"
  log "starting moto_server $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("moto"))') on $URL"
  start-stop-daemon --start --background --make-pidfile --pidfile "$PIDF" --output "$LOGF" \
    --chdir "$DIR" --exec "$VENV/bin/moto_server" -- -H "$HOST" -p "$PORT"
  STARTED=1
fi
end=$(( $(date +%s) + 60 ))
until is_moto; do
  alive || { tail -n 20 "$LOGF" >&2; die "moto_server exited (log: $LOGF)"; }
  [ "$(date +%s)" -lt "$end" ] || { tail -n 20 "$LOGF" >&2; die "moto_server does not answer after 60 s (log: $LOGF)"; }
  sleep 0.1
done
if [ "$VERIFY" = 1 ] || { [ "$VERIFY" = auto ] && [ "${STARTED:-0}" = 1 ]; }; then verify; fi
write_env
log "moto up on $URL (pid $(cat "$PIDF"); log $LOGF)"
echo "$URL"
