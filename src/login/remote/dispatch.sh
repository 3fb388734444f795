# opencode-remote dispatch: runs in a fresh job directory holding the files the client sent.
# Every value (directory, agent, model, message, session id) is read from a file, never interpolated
# into this script, so nothing the model or a config supplies can become shell syntax.
set -u
job=$(pwd)

# read_value NAME: sets $value to the exact contents of file NAME (trailing newlines kept), or empty.
read_value() {
  if [ -f "$job/$1" ]; then value=$(cat "$job/$1"; printf x); value=${value%x}; else value=; fi
}

. "$job/find-opencode.sh"
read_value opencode
find_opencode "$value"
if [ -z "$oc" ] || [ ! -x "$oc" ]; then
  echo "no-opencode" >&2
  exit 90
fi
printf '%s' "$oc" > "$job/opencode.path"

read_value directory
dir=$value
case $dir in
  "") dir=$HOME ;;
  "~") dir=$HOME ;;
  "~/"*) dir=$HOME/${dir#"~/"} ;;
  /*) ;;
  *) dir=$HOME/$dir ;;
esac
# $dir is absolute here, so it can never be read as an option.
# Only the reason goes back ("Permission denied"): the full message spells out the remote home.
if ! mkdir -p "$dir" 2>"$job/dir.err" || ! cd "$dir" 2>>"$job/dir.err"; then
  tail -n 1 "$job/dir.err" | sed 's/.*: //' >&2
  exit 91
fi
printf '%s' "$dir" > "$job/workdir"

# The model the run uses: the host entry's, checked against what the remote offers; else the remote's
# own default (its config's `model`, else the first model it lists), never the local session's.
read_value model
model=$value
probe_model() {
  if [ -n "$model" ]; then
    "$oc" models > "$job/models.out" 2> /dev/null
  else
    "$oc" debug config > "$job/config.out" 2> /dev/null
  fi
}
# OpenCode creates its database on first use and two first uses at once fail in CREATE TABLE. So the
# probe (a second of OpenCode start-up) runs beside the import only once an import has succeeded here;
# on a fresh host it runs after it.
state=$job/../..
probe=
if [ -f "$state/imported" ]; then
  probe_model &
  probe=$!
fi

# import re-homes the session to the current directory, which is what we want.
# OpenCode creates and migrates its database on first use, and concurrent first uses race: 20 simultaneous
# dispatches to a fresh host failed some imports in `CREATE TABLE` (__test__/load.test.mjs). So until one
# import has succeeded here, imports take turns (flock, where there is one); after that they run side by side.
if [ ! -f "$state/imported" ] && command -v flock > /dev/null 2>&1; then
  exec 9> "$state/import.lock"
  flock 9
  # Another dispatch did the first import while this one waited: no need to hold the others up.
  if [ -f "$state/imported" ]; then exec 9>&-; fi
fi
# OpenCode waits 5 s for a busy database; a host busy with other runs (or a stopped run still shutting
# down) can hold it longer, and a write that meets a busy database in a read transaction fails at once.
# OpenCode then prints only the failed query, not the cause, so a failed query is tried again for about
# 20 s. The import is idempotent.
tries=0
until "$oc" import "$job/session.json" > "$job/import.log" 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 8 ] || ! grep -Eqi 'database is locked|SQLITE_BUSY|Failed query' "$job/import.log"; then
    tail -n 20 "$job/import.log" >&2
    exit 92
  fi
  sleep $((tries < 3 ? tries : 3))
done
: > "$state/imported"
exec 9>&-
if [ -n "$probe" ]; then wait "$probe"; else probe_model; fi

if [ -n "$model" ]; then
  # An empty list means the remote could not tell (an old or odd opencode): then the run reports it.
  if [ -s "$job/models.out" ] && ! grep -Fqx -- "$model" "$job/models.out"; then
    echo "model-missing" >&2
    exit 87
  fi
else
  # `debug config` prints the resolved config with two-space indentation: a top-level key has exactly two.
  model=$(sed -n 's/^  "model": "\(.*\)",\{0,1\}$/\1/p' "$job/config.out" 2> /dev/null | head -n 1)
  if [ -z "$model" ]; then
    model=$("$oc" models 2> /dev/null | head -n 1)
  fi
  if [ -n "$model" ]; then printf '%s' "$model" > "$job/model.default"; fi
fi
rm -f "$job/models.out" "$job/config.out"

# Cancelled while this script ran (or the job is already gone): start nothing.
if [ ! -f "$job/session_id" ] || [ -f "$job/cancelled" ]; then
  exit 88
fi

# Detach the run into its own session so it outlives this SSH channel; its pid is then its session id,
# which is how a cancel finds everything it started.
if command -v setsid > /dev/null 2>&1; then
  setsid sh "$job/run.sh" "$job" < /dev/null > /dev/null 2>&1 &
else
  nohup sh "$job/run.sh" "$job" < /dev/null > /dev/null 2>&1 &
fi
echo "pid=$!"
: > "$job/dispatched"

# Retention: finished jobs older than a week go (a collected round trip removes its own job at once).
# Each one holds a whole conversation.
jobs=$job/..
for old in $(find "$jobs" -mindepth 1 -maxdepth 1 -type d -mtime +7 2> /dev/null); do
  if [ -f "$old/done" ] || [ ! -f "$old/pid" ] || ! kill -0 "$(cat "$old/pid")" 2> /dev/null; then
    rm -rf "$old"
  fi
done
