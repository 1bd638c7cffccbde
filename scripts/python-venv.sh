#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv the server's compatibility tests use: `requests`
# for scripts/test-orchent.py and `schemathesis` for the OpenAPI conformance run.
#   scripts/python-venv.sh [DIR]     (default: <repo>/target/py-venv)
# Prints the venv directory on stdout; everything else goes to stderr.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$repo/target/py-venv}"
packages=(requests "schemathesis>=4.3,<5")
lock="$venv.lock"
mkdir -p "$(dirname "$venv")"
# Several test binaries may run this at once: one creates, the others wait.
exec 9>"$lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import requests, schemathesis, sys; sys.exit(int(schemathesis.__version__.split(".")[0]) != 4)' >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${packages[@]}" >&2
fi
"$venv/bin/python" -c 'import requests, schemathesis' >&2
echo "$venv"
