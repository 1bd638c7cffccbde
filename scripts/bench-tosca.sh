#!/usr/bin/env bash
# Benchmark: `rosca validate` against OpenStack's tosca-parser on generated TOSCA 1.3 templates.
#
# Usage: scripts/bench-tosca.sh [SIZE...]          (default: 1000 10000 100000 node templates)
# Env:   RUNS=3        runs per size for rosca (the median is reported)
#        TP_RUNS=3     runs per size for tosca-parser (a timed-out run ends that size)
#        TP_TIMEOUT=600 seconds per tosca-parser run; a size after one that timed out is skipped
#        SKIP_TP=1     rosca only
#
# Templates come from scripts/gen-topology.py (into target/bench/); rosca is built in release
# mode; tosca-parser is installed from PyPI into target/bench-venv (idempotent). Wall time and
# peak RSS come from /usr/bin/time (%e %M), with the wall time also taken in ms around it.
# Prints a Markdown table (also written to target/bench/results.md). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1000 10000 100000)
RUNS=${RUNS:-3}
TP_RUNS=${TP_RUNS:-3}
TP_TIMEOUT=${TP_TIMEOUT:-600}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench
mkdir -p "$OUT"

if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time..." >&2
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

echo "building rosca (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked -p cli >&2
ROSCA=$TARGET_DIR/release/rosca

if [[ -z "${SKIP_TP:-}" ]]; then
  if [[ ! -x target/bench-venv/bin/python ]]; then
    python3 -m venv target/bench-venv
  fi
  if ! target/bench-venv/bin/python -c 'import toscaparser' 2>/dev/null; then
    echo "installing tosca-parser into target/bench-venv..." >&2
    target/bench-venv/bin/pip install -q tosca-parser >&2
  fi
  TP_VERSION=$(target/bench-venv/bin/python -c 'import importlib.metadata as m; print(m.version("tosca-parser"))')
fi

# measure OUTFILE CMD... : runs CMD once; echoes "EXIT MS RSS_KB" (EXIT 124 = timeout).
measure() {
  local log=$1; shift
  local tf; tf=$(mktemp)
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  # GNU time prefixes "Command exited with non-zero status N" / "Command terminated by signal".
  local rss; rss=$(tail -n 1 "$tf" | awk '{print $2}')
  rm -f "$tf"
  echo "$rc $(( (t1 - t0) / 1000000 )) ${rss:-0}"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fmt_ms() { awk -v ms="$1" 'BEGIN { if (ms < 1000) printf "%d ms", ms; else printf "%.2f s", ms/1000 }'; }
fmt_kb() { awk -v kb="$1" 'BEGIN { printf "%.0f MB", kb/1024 }'; }
fmt_bytes() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.0f kB", b/1024; else printf "%.1f MB", b/1048576 }'; }

TP_PY='import sys
from toscaparser.tosca_template import ToscaTemplate
t = ToscaTemplate(sys.argv[1])
print(len(t.nodetemplates), "node templates")'

ROWS=()
TP_GAVE_UP=""
for n in "${SIZES[@]}"; do
  f=$OUT/topology-$n.yaml
  if [[ ! -f $f || scripts/gen-topology.py -nt $f ]]; then
    python3 scripts/gen-topology.py "$n" "$f"
  fi
  size=$(stat -c %s "$f")
  # The default 16 MiB file limit stops the 100k template (~80 MB): raise it for the big ones.
  max_size=$(( size + 1048576 > 16777216 ? size + 1048576 : 16777216 ))

  times=(); rsss=()
  for _ in $(seq "$RUNS"); do
    read -r rc ms rss < <(measure "$OUT/rosca-$n.log" "$ROSCA" validate --offline --max-file-size "$max_size" "$f")
    if [[ $rc != 0 ]]; then
      echo "rosca validate $f exited $rc:" >&2
      head -c 20000 "$OUT/rosca-$n.log" >&2
      exit 1
    fi
    times+=("$ms"); rsss+=("$rss")
  done
  r_time=$(fmt_ms "$(median "${times[@]}")"); r_rss=$(fmt_kb "$(median "${rsss[@]}")")
  echo "$n nodes: rosca $r_time, $r_rss ($(tail -n 1 "$OUT/rosca-$n.log"))" >&2

  tp_time="not run"; tp_rss="not run"
  if [[ -z "${SKIP_TP:-}" ]]; then
    if [[ -n $TP_GAVE_UP ]]; then
      tp_time="skipped ($TP_GAVE_UP timed out)"; tp_rss="-"
    else
      times=(); rsss=(); failed=""
      for _ in $(seq "$TP_RUNS"); do
        read -r rc ms rss < <(measure "$OUT/tosca-parser-$n.log" timeout "$TP_TIMEOUT" target/bench-venv/bin/python -c "$TP_PY" "$f")
        if [[ $rc == 124 ]]; then failed=timeout; break; fi
        if [[ $rc != 0 ]]; then failed="error (exit $rc)"; tail -n 20 "$OUT/tosca-parser-$n.log" >&2; break; fi
        times+=("$ms"); rsss+=("$rss")
      done
      if [[ -n $failed && ${#times[@]} == 0 ]]; then
        tp_time="$failed (> ${TP_TIMEOUT} s)"; [[ $failed == timeout ]] || tp_time=$failed
        tp_rss="-"
        [[ $failed == timeout ]] && TP_GAVE_UP=$n
      else
        tp_time=$(fmt_ms "$(median "${times[@]}")"); tp_rss=$(fmt_kb "$(median "${rsss[@]}")")
        [[ ${#times[@]} -lt $TP_RUNS ]] && tp_time="$tp_time (${#times[@]} of $TP_RUNS runs; then $failed)"
      fi
      echo "$n nodes: tosca-parser $tp_time, $tp_rss" >&2
    fi
  fi
  ROWS+=("| $n | $(fmt_bytes "$size") | $r_time | $r_rss | $tp_time | $tp_rss |")
done

{
  echo "| nodes | file size | rosca time | rosca peak RSS | tosca-parser${TP_VERSION:+ $TP_VERSION} time | tosca-parser peak RSS |"
  echo "|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "rosca: median of $RUNS runs; tosca-parser: median of up to $TP_RUNS runs, ${TP_TIMEOUT} s timeout each."
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(date -u +%Y-%m-%d)."
} | tee "$OUT/results.md"
