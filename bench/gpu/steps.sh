# shellcheck shell=bash
# Step bookkeeping for bench/gpu/run (sourced). Each step appends one JSON line to $WORK/steps.jsonl:
# {"name", "status": ok|failed|timeout|skipped, "rc", "seconds", "limit", "reason"?, "log_tail"?}.

# record NAME STATUS RC SECONDS LIMIT [REASON]
record() {
  "$PY" - "$@" >> "$WORK/steps.jsonl" <<'PY'
import json, os, sys
name, status, rc, secs, limit = sys.argv[1:6]
r = {"name": name, "status": status, "rc": int(rc), "seconds": round(float(secs), 2), "limit": int(limit)}
if len(sys.argv) > 6 and sys.argv[6]:
    r["reason"] = sys.argv[6]
log = os.path.join(os.environ["WORK"], "logs", name + ".log")
if status in ("failed", "timeout") and os.path.exists(log):
    r["log_tail"] = open(log, errors="replace").read().splitlines()[-15:]
print(json.dumps(r))
PY
  local note=${6:-}
  echo "[$(date -u +%H:%M:%S)] $1: $2 (${4}s${note:+; $note})" >&2
}

# step NAME LIMIT CMD...: runs CMD under min(LIMIT, time left before $DEADLINE), logging to
# $WORK/logs/NAME.log; a name listed in $SKIP (",a,b,") is recorded as skipped. Returns CMD's status.
step() {
  local name=$1 limit=$2 left t0 rc status
  shift 2
  case "$SKIP" in *",$name,"*) record "$name" skipped 0 0 "$limit" "--skip"; return 0 ;; esac
  left=$((DEADLINE - $(date +%s) - 5))
  if [ "$left" -lt 3 ]; then
    record "$name" skipped 0 0 "$limit" "out of the time budget"
    return 1
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "[$(date -u +%H:%M:%S)] $name (limit ${limit}s) ..." >&2
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
  record "$name" "$status" "$rc" "$("$PY" -c "import time; print(round(time.time() - $t0, 2))")" "$limit"
  return $rc
}
