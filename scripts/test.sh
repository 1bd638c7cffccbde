#!/usr/bin/env bash
# The whole test suite. Idempotent: installs only what is missing (cargo is required; PostgreSQL
# is installed and started only when none answers on 127.0.0.1:5432); the tests start their own
# servers, e.g. an HTTP server on 127.0.0.1 for URL imports, `rosca serve` processes). The
# compatibility tests (cli/tests/serve_compat.rs) build a Python venv with `requests` and
# `schemathesis` from PyPI under target/py-venv once (scripts/python-venv.sh; python3 needed);
# ROSCA_SKIP_PYTHON_TESTS=1 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 2
fi
# The etcd client generates its gRPC code at build time: it needs protoc and the standard
# .proto files (Debian's protobuf-compiler and libprotobuf-dev).
if ! command -v protoc >/dev/null || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
  echo "installing protobuf-compiler and libprotobuf-dev (needed to build the etcd client)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev >&2 \
    || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev >&2; } \
    || { echo "cannot install protobuf-compiler (run as root, or install it yourself)" >&2; exit 2; }
fi
# Real services for the shared state backends (state/tests/conformance_*.rs): etcd and an
# S3-compatible server (moto) through scripts/services/; ROSCA_SKIP_ETCD=1 / ROSCA_SKIP_S3=1 skip.
if [ "${ROSCA_SKIP_ETCD:-0}" != 1 ] && [ -z "${ROSCA_TEST_ETCD_ENDPOINTS:-}" ]; then
  ROSCA_TEST_ETCD_ENDPOINTS=$(scripts/services/etcd.sh) || { echo "etcd could not be started (ROSCA_SKIP_ETCD=1 skips its tests)" >&2; exit 2; }
  export ROSCA_TEST_ETCD_ENDPOINTS
fi
if [ "${ROSCA_SKIP_S3:-0}" != 1 ] && [ -z "${ROSCA_TEST_S3_ENDPOINT:-}" ]; then
  ROSCA_TEST_S3_ENDPOINT=$(scripts/services/s3.sh) || { echo "the S3 server could not be started (ROSCA_SKIP_S3=1 skips its tests)" >&2; exit 2; }
  export ROSCA_TEST_S3_ENDPOINT
  # moto takes any key; real credentials never come from the project.
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_REGION="${AWS_REGION:-us-east-1}"
fi
# PostgreSQL for the scale-out test (cli/tests/scale_out.rs): a server that already answers, else
# Debian's, installed and started by scripts/services/postgres.sh. ROSCA_SKIP_PG=1 skips both.
if [ "${ROSCA_SKIP_PG:-0}" != 1 ] && [ -z "${ROSCA_TEST_PG_URL:-}" ]; then
  if ! ROSCA_TEST_PG_URL=$(scripts/services/postgres.sh); then
    echo "PostgreSQL is not available (set ROSCA_SKIP_PG=1 to skip the tests that need it)" >&2
    exit 2
  fi
  export ROSCA_TEST_PG_URL
fi
# Incremental artifacts only pay off when rebuilding; a one-shot run (CI) would just store them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# OpenStack for the provider's end-to-end tests (cli/tests/openstack.rs): Keystone, Nova (fake
# compute driver), Glance, Neutron and Cinder from Debian's packages, installed and started by
# scripts/services/openstack.sh (root needed). ROSCA_SKIP_OPENSTACK=1 skips them.
if [ "${ROSCA_SKIP_OPENSTACK:-0}" != 1 ] && [ -z "${ROSCA_TEST_OPENSTACK_CLOUDS:-}" ]; then
  if ! os_env=$(scripts/services/openstack.sh); then
    echo "OpenStack could not be started (see the lines above; set ROSCA_SKIP_OPENSTACK=1 to skip its tests)" >&2
    exit 2
  fi
  ROSCA_TEST_OPENSTACK_CLOUDS="$(dirname "$os_env")/clouds.yaml"
  export ROSCA_TEST_OPENSTACK_CLOUDS
fi
# Slurm for the HPC provider's end-to-end tests: a one-node cluster with slurmrestd (JWT) from
# Debian's packages, installed and started by scripts/services/slurm.sh (root needed); the tests
# source the env file it prints (SLURMRESTD_URL, SLURM_USER_NAME, SLURM_JWT, token command).
# Give ROSCA_TEST_SLURM_ENV (such an env file) to use another cluster; ROSCA_SKIP_SLURM=1 skips them.
if [ "${ROSCA_SKIP_SLURM:-0}" != 1 ] && [ -z "${ROSCA_TEST_SLURM_ENV:-}" ]; then
  ROSCA_TEST_SLURM_ENV=$(scripts/services/slurm.sh) || { echo "Slurm could not be started (see the lines above; set ROSCA_SKIP_SLURM=1 to skip its tests)" >&2; exit 2; }
  export ROSCA_TEST_SLURM_ENV
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
