# opencode-remote runner: continues the imported session, then (round trip) exports it for the client.
# Usage: sh run.sh JOB_DIR. Writes status, back.json (atomically) and finally done.
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
read_value mode; mode=$value
echo $$ > "$job/pid"
cd "$dir" || exit 1

set -- run --session "$session"
if [ -n "$agent" ]; then set -- "$@" --agent "$agent"; fi
if [ -n "$model" ]; then set -- "$@" --model "$model"; fi
"$oc" "$@" < "$job/message.txt" > "$job/run.log" 2>&1
status=$?

if [ "$mode" = "round-trip" ]; then
  if "$oc" export "$session" > "$job/back.json.tmp" 2> "$job/export.log"; then
    mv -f "$job/back.json.tmp" "$job/back.json"
  else
    [ "$status" -eq 0 ] && status=97
  fi
fi
echo "$status" > "$job/status.tmp" && mv -f "$job/status.tmp" "$job/status"
finished=$(date +%s%N 2>/dev/null)
case $finished in *N*|"") finished=$(date +%s)000000000 ;; esac
echo "$finished" > "$job/done.tmp" && mv -f "$job/done.tmp" "$job/done"
