#!/usr/bin/env bash
# Compares what two builds of the `validate` example (tosca/examples/validate.rs) print with
# --topology (diagnostics, then the redacted topology as JSON) on every fixture template and the
# generated benchmark templates: a performance change must not change either.
# The example also runs tosca::check (what `rosca validate` uses) and prints its diagnostics
# when they are not compile's, so that shows as a difference too.
# Usage: tosca/benches/compare-output.sh OLD_BINARY NEW_BINARY [FILE...]
set -uo pipefail
old=$1 new=$2; shift 2
cd "$(dirname "$0")/../.."
files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
  mapfile -t files < <(find fixtures/tosca -name '*.yaml' | sort; ls target/bench/topology-*.yaml 2>/dev/null)
fi
differ=0
for f in "${files[@]}"; do
  if ! cmp -s <("$old" --topology "$f" 2>&1) <("$new" --topology "$f" 2>&1); then
    echo "DIFFERS: $f"; differ=$((differ + 1))
  fi
done
echo "${#files[@]} files compared, $differ differ"
[[ $differ -eq 0 ]]
