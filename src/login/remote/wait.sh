# opencode-remote waiter: blocks until the job is done, then prints its status line and back.json.
# Usage: sh wait.sh JOB_DIR DEADLINE_SECS. Run over the already-open SSH connection; a client that
# reconnects simply runs it again. A dot on stderr every few seconds doubles as a heartbeat and makes
# the waiter die of SIGPIPE when the client is gone. A line `@<event>` on stderr (at most once a second,
# when it changed) is the run's latest JSON event, cut to 2000 bytes: the client shows it as progress.
set -u
job=$1
deadline=$2
if [ ! -d "$job" ]; then
  echo "unknown-job" >&2
  exit 94
fi
ticks=0
start=$(date +%s)
seen=
while [ ! -f "$job/done" ]; do
  sleep 0.05 2> /dev/null || sleep 1
  ticks=$((ticks + 1))
  if [ $((ticks % 20)) -eq 0 ] && [ -s "$job/events.jsonl" ]; then
    size=$(wc -c < "$job/events.jsonl")
    if [ "$size" != "$seen" ]; then
      seen=$size
      printf '\n@%s\n' "$(tail -n 1 "$job/events.jsonl" | head -c 2000)" >&2 || exit 96
    fi
  fi
  if [ $((ticks % 60)) -eq 0 ]; then
    printf . >&2 || exit 96
    if [ $(($(date +%s) - start)) -ge "$deadline" ]; then
      exit 95
    fi
  fi
done
status=$(cat "$job/status" 2> /dev/null)
# No status (it could not be written): 98.
case $status in "" | *[!0-9]*) status=98 ;; esac
echo "status=$status finished=$(cat "$job/done" 2> /dev/null) started=$(cat "$job/started" 2> /dev/null)"
if [ "$status" -ne 0 ]; then
  tail -n 20 "$job/run.log" >&2 2> /dev/null
  grep '"type":"error"' "$job/events.jsonl" 2> /dev/null | tail -n 3 | head -c 4000 >&2
  if [ -s "$job/export.log" ]; then tail -n 5 "$job/export.log" >&2; fi
  exit 93
fi
cat "$job/back.json"
