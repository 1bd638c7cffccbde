#!/usr/bin/env bash
# State backends side by side: lock+read+write+unlock latency (p50/p99), and a 1000-instance
# `rosca apply` (no-op resources) on each backend. Starts the services like scripts/test.sh.
# Usage: scripts/bench-backends.sh [ITERATIONS] [RESOURCES]
set -euo pipefail
cd "$(dirname "$0")/.."
export ROSCA_TEST_PG_URL="${ROSCA_TEST_PG_URL:-$(scripts/services/postgres.sh)}"
export ROSCA_TEST_ETCD_ENDPOINTS="${ROSCA_TEST_ETCD_ENDPOINTS:-$(scripts/services/etcd.sh)}"
export ROSCA_TEST_S3_ENDPOINT="${ROSCA_TEST_S3_ENDPOINT:-$(scripts/services/s3.sh)}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_REGION="${AWS_REGION:-us-east-1}"
cargo build --release -q -p state --example bench_backends
cargo build --release -q -p cli
release="${CARGO_TARGET_DIR:-target}/release"
rosca="$(cd "$release" && pwd)/rosca"
# The HTTP backend against a `rosca serve` of this build (no auth, its own data dir), stopped
# at the end by its PID.
serve_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$rosca" serve --no-auth --listen "127.0.0.1:$port" --data-dir "$serve_dir/data" >"$serve_dir/serve.log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; rm -rf "$serve_dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
export ROSCA_BENCH_HTTP="http://127.0.0.1:$port"
"$release/examples/bench_backends" "${1:-200}" "${2:-100}"

echo
echo "| backend | rosca apply, 1000 no-op instances (s) | re-plan, no changes (s) |"
echo "|---|---:|---:|"
# A node type with nothing to run: the local provider records it without any IO (a no-op).
tmpl="tosca_definitions_version: tosca_simple_yaml_1_3
node_types:
  bench.Noop:
    derived_from: tosca.nodes.Root
    capabilities:
      scalable: { type: tosca.capabilities.Scalable }
topology_template:
  node_templates:
    app:
      type: bench.Noop
      capabilities:
        scalable: { properties: { default_instances: 1000, max_instances: 1000 } }"
for kind in local postgres etcd s3 http; do
  dir=$(mktemp -d)
  name="bench-$$-$kind"
  case $kind in
    local) table='kind = "local"' ;;
    postgres) table="kind = \"postgres\"
url = \"$ROSCA_TEST_PG_URL\"
name = \"$name\"" ;;
    etcd) table="kind = \"etcd\"
endpoints = [\"$ROSCA_TEST_ETCD_ENDPOINTS\"]
name = \"$name\"" ;;
    s3) curl -s -o /dev/null -X PUT "$ROSCA_TEST_S3_ENDPOINT/rosca-bench"
        table="kind = \"s3\"
bucket = \"rosca-bench\"
endpoint = \"$ROSCA_TEST_S3_ENDPOINT\"
region = \"us-east-1\"
name = \"$name\"" ;;
    http) table="kind = \"http\"
url = \"$ROSCA_BENCH_HTTP/state/$name\"" ;;
  esac
  printf '[backend]\n%s\n' "$table" > "$dir/rosca.toml"
  printf '%s\n' "$tmpl" > "$dir/app.yaml"
  t0=$(date +%s.%N)
  (cd "$dir" && "$rosca" apply app.yaml --auto-approve >/dev/null)
  t1=$(date +%s.%N)
  (cd "$dir" && "$rosca" plan app.yaml --detailed-exitcode >/dev/null)
  t2=$(date +%s.%N)
  (cd "$dir" && "$rosca" destroy app.yaml --auto-approve >/dev/null)
  awk -v k="$kind" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "| %s | %.2f | %.2f |\n", k, b - a, c - b }'
  rm -rf "$dir"
done
