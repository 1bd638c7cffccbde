#!/usr/bin/env bash
# capture.sh - records the real slurmrestd (22.05, openapi/v0.0.38) responses in this directory,
# from the cluster of scripts/services/slurm.sh. Run as root (it makes tokens with scontrol):
#
#   providers/tests/data/slurm/capture.sh      # about 2 minutes (the TIMEOUT job needs 1-2)
#
# Every file is the response body as served (pretty-printed by slurmrestd itself); the HTTP status
# of each goes to statuses.txt. Tokens never reach a file: only the variable name is written.
set -euo pipefail
cd "$(dirname "$0")"
ENV=$(../../../../scripts/services/slurm.sh)
. "$ENV"
U="$SLURMRESTD_URL/slurm/v0.0.38"
H=(-H "X-SLURM-USER-NAME: $SLURM_USER_NAME" -H "X-SLURM-USER-TOKEN: $SLURM_JWT")
J=(-H 'Content-Type: application/json')
W=/tmp/rosca-slurm-capture            # working directory of the captured jobs
rm -rf "$W"; mkdir -p "$W"
# keep only the lines of the captures recorded by hand (README.md says how), then add ours
sed -i '/^v0.0.38-\(job-purged\|slurmctld-down-\)/!d' statuses.txt 2>/dev/null || : > statuses.txt

log() { echo "[capture] $*" >&2; }
scrub() { sed -e "s/$SLURM_JWT/<token>/g" "$1" > "$1.tmp" && mv "$1.tmp" "$1"; }
cap() { # cap FILE CURL-ARGS... : body to FILE, "FILE STATUS" to statuses.txt
  local f=$1 code; shift
  code=$(curl -s -o "$f" -w '%{http_code}' "$@")
  scrub "$f"
  echo "$f $code" >> statuses.txt
  log "$f: HTTP $code"
}
submit() { # submit FILE NAME SCRIPT [EXTRA-JOB-JSON] -> job id on stdout
  local body
  body=$(printf '{"script":"#!/bin/bash\\n%s\\n","job":{"name":"%s","partition":"debug","cpus_per_task":1,"time_limit":5,"current_working_directory":"%s","standard_output":"%s/%%j.out","standard_error":"%s/%%j.err","environment":{"PATH":"/usr/bin:/bin"}%s}}' \
    "$3" "$2" "$W" "$W" "$W" "${4:-}")
  echo "$body" > "${1%.json}.request.json"
  cap "$1" "${H[@]}" "${J[@]}" -X POST "$U/job/submit" -d "$body"
  sed -n 's/^ *"job_id": \([0-9]*\),*$/\1/p' "$1"
}
state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
wait_state() { # wait_state ID STATE SECONDS
  local end=$(( $(date +%s) + $3 ))
  until [ "$(state "$1")" = "$2" ]; do
    [ "$(date +%s)" -lt "$end" ] || { log "job $1 is $(state "$1"), not $2, after $3 s"; return 1; }
    sleep 0.5
  done
}

cap v0.0.38-ping.json "${H[@]}" "$U/ping"

# TIMEOUT first: time_limit is in minutes (1 is the least), and slurmctld enforces it on its
# periodic check, so it takes 60-90 s; the rest is captured meanwhile.
tmo=$(submit v0.0.38-job-submit-timeout.json rosca-timeout 'sleep 600' ',"time_limit":1')
run=$(submit v0.0.38-job-submit.json rosca-running 'echo hello; sleep 30')
wait_state "$run" RUNNING 20
pend=$(submit v0.0.38-job-submit-dependency.json rosca-pending 'echo after' ",\"dependency\":\"afterok:$run\"")
cap v0.0.38-job-running.json "${H[@]}" "$U/job/$run"
cap v0.0.38-job-pending.json "${H[@]}" "$U/job/$pend"
cap v0.0.38-job-submit-error-partition.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"script":"#!/bin/bash\necho x\n","job":{"name":"bad","partition":"nosuchpartition","current_working_directory":"/tmp","environment":{"PATH":"/usr/bin:/bin"}}}'
cap v0.0.38-job-submit-error-no-environment.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"script":"#!/bin/bash\necho x\n","job":{"name":"noenv","partition":"debug","current_working_directory":"/tmp"}}'
cap v0.0.38-job-submit-error-no-script.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"job":{"name":"noscript","partition":"debug","current_working_directory":"/tmp","environment":{"PATH":"/usr/bin:/bin"}}}'
cap v0.0.38-job-submit-error-memory.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"script":"#!/bin/bash\ntrue\n","job":{"name":"mem","memory_per_node":999999,"current_working_directory":"/tmp","standard_output":"/dev/null","environment":{"PATH":"/bin"}}}'
cap v0.0.38-job-submit-error-unknown-field.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"script":"#!/bin/bash\ntrue\n","job":{"name":"unknownfield","bogus":1,"current_working_directory":"/tmp","standard_output":"/dev/null","environment":{"PATH":"/bin"}}}'
cap v0.0.38-job-submit-error-environment-list.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d '{"script":"#!/bin/bash\ntrue\n","job":{"name":"envlist","current_working_directory":"/tmp","standard_output":"/dev/null","environment":["PATH=/bin"]}}'
cap v0.0.38-job-submit-error-bad-json.json "${H[@]}" "${J[@]}" -X POST "$U/job/submit" -d '{"script": '

ok=$(submit v0.0.38-job-submit-completed.json rosca-completed 'echo out; echo err >&2')
fail=$(submit v0.0.38-job-submit-failed.json rosca-failed 'echo failing; exit 3')
# no standard_output: where does a REST-submitted job's stdout go?
nostd=$(curl -s "${H[@]}" "${J[@]}" -X POST "$U/job/submit" \
  -d "{\"script\":\"#!/bin/bash\\necho nostdout\\n\",\"job\":{\"name\":\"rosca-nostdout\",\"partition\":\"debug\",\"current_working_directory\":\"$W\",\"environment\":{\"PATH\":\"/usr/bin:/bin\"}}}" \
  | sed -n 's/^ *"job_id": \([0-9]*\),*$/\1/p')
wait_state "$ok" COMPLETED 30
wait_state "$fail" FAILED 30
wait_state "$nostd" COMPLETED 30
cap v0.0.38-job-completed.json "${H[@]}" "$U/job/$ok"
cap v0.0.38-job-failed.json "${H[@]}" "$U/job/$fail"
cap v0.0.38-job-no-standard-output.json "${H[@]}" "$U/job/$nostd"
ls -l "$W" > files-written-by-jobs.txt

# a dependency that can never be satisfied (afterok on the failed job)
never=$(submit v0.0.38-job-submit-dependency-never.json rosca-never 'echo never' ",\"dependency\":\"afterok:$fail\"")
sleep 3
cap v0.0.38-job-dependency-never-satisfied.json "${H[@]}" "$U/job/$never"

cap v0.0.38-job-delete.json "${H[@]}" -X DELETE "$U/job/$run"
wait_state "$run" CANCELLED 20
cap v0.0.38-job-cancelled.json "${H[@]}" "$U/job/$run"
cap v0.0.38-job-delete-again.json "${H[@]}" -X DELETE "$U/job/$run"
cap v0.0.38-job-pending-after-cancel.json "${H[@]}" "$U/job/$pend"
cap v0.0.38-job-delete-pending.json "${H[@]}" -X DELETE "$U/job/$pend"
cap v0.0.38-job-delete-pending-cancelled.json "${H[@]}" "$U/job/$pend"
scancel "$never" || true
cap v0.0.38-job-unknown.json "${H[@]}" "$U/job/999999"
cap v0.0.38-job-delete-unknown.json "${H[@]}" -X DELETE "$U/job/999999"
cap v0.0.38-job-bad-id.json "${H[@]}" "$U/job/notanumber"

# auth: bad token, no headers, expired token (lifespan 2 s)
cap v0.0.38-auth-bad-token.json -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: not.a.token" "$U/ping"
cap v0.0.38-auth-no-headers.json "$U/ping"
short=$(env -u SLURM_JWT scontrol token lifespan=2 username=root | sed -n 's/^SLURM_JWT=//p')
sleep 4
cap v0.0.38-auth-expired-token.json -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $short" "$U/job/$ok"
sed -i "s/$short/<token>/g" v0.0.38-auth-expired-token.json
# root's token acts for any user named in X-SLURM-USER-NAME (the job then runs as that user)
cap v0.0.38-auth-other-user.json -H "X-SLURM-USER-NAME: nobody" -H "X-SLURM-USER-TOKEN: $SLURM_JWT" "$U/ping"

# version probing: what this server says for versions it does not serve
cap v0.0.41-ping-on-22.05.json "${H[@]}" "$SLURMRESTD_URL/slurm/v0.0.41/ping"
cap v0.0.40-job-submit-on-22.05.json "${H[@]}" "${J[@]}" -X POST "$SLURMRESTD_URL/slurm/v0.0.40/job/submit" -d '{}'
cap openapi-22.05.json "${H[@]}" "$SLURMRESTD_URL/openapi/v3"
cap openapi-22.05-no-auth.json "$SLURMRESTD_URL/openapi/v3"

wait_state "$tmo" TIMEOUT 150
cap v0.0.38-job-timeout.json "${H[@]}" "$U/job/$tmo"
log "done: $(wc -l < statuses.txt) captures"
