# opencode-remote runner: continues the imported session, then (round trip) exports it for the client.
# Usage: sh run.sh JOB_DIR. Writes pid, started, events.jsonl, run.log, status, back.json (atomically)
# and finally done.
set -u
job=$1
read_value() {
  if [ -f "$job/$1" ]; then value=$(cat "$job/$1"; printf x); value=${value%x}; else value=; fi
}
read_value opencode.path; oc=$value
read_value workdir; dir=$value
read_value session_id; session=$value
read_value agent; agent=$value
read_value model; model=$value
if [ -z "$model" ]; then read_value model.default; model=$value; fi
read_value mode; mode=$value
echo $$ > "$job/pid"
if [ -f "$job/cancelled" ]; then exit 0; fi
cd "$dir" || exit 1

# now_ns: nanoseconds since the epoch (whole seconds where date lacks %N).
now_ns() {
  t=$(date +%s%N 2>/dev/null)
  case $t in *N*|"") t=$(date +%s)000000000 ;; esac
  echo "$t"
}
# Messages of this run are created after this instant; the client tells them from what an earlier job
# left in the remote's copy of the session by it.
now_ns > "$job/started"

# JSON events on stdout (the waiter reports the latest step from them); the server's own error log on
# stderr names the real cause of a failure, which the run's output reduces to "Unexpected server error".
set -- run --session "$session"
if [ -n "$agent" ]; then set -- "$@" --agent "$agent"; fi
if [ -n "$model" ]; then set -- "$@" --model "$model"; fi
set -- "$@" --format json --print-logs --log-level ERROR
"$oc" "$@" < "$job/message.txt" > "$job/events.jsonl" 2> "$job/run.log"
status=$?

if [ "$mode" = "round-trip" ]; then
  "$oc" export "$session" > "$job/back.json.tmp" 2> "$job/export.log"
  exported=$?
  # OpenCode can exit 0 when its output hit a full disk, leaving half a back-file; a disk without a byte
  # left afterwards means the export did not fit. Then even its error message could not be written: say
  # so, after the half-written back-file has given its space back for the status below.
  avail=$(df -Pk "$job" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ "$exported" -eq 0 ] && [ "$avail" != 0 ]; then
    mv -f "$job/back.json.tmp" "$job/back.json"
  else
    rm -f "$job/back.json.tmp"
    if [ "$avail" = 0 ]; then echo "export: No space left on device" >> "$job/export.log"; fi
    [ "$status" -eq 0 ] && status=97
  fi
fi
echo "$status" > "$job/status.tmp" && mv -f "$job/status.tmp" "$job/status"
# `done` must appear whatever happens, or the waiter waits for its deadline: on a full disk an empty file
# (an inode, no data) still fits.
now_ns > "$job/done.tmp" && mv -f "$job/done.tmp" "$job/done" || { rm -f "$job/done.tmp"; : > "$job/done"; }
