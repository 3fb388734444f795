#!/usr/bin/env bash
# Build the connection-sharing helper (src/bin/opencode-remote-mux.rs) and put it beside each addon in DIR
# (default: the repo root), named after it: opencode-remote.<platform>.node -> opencode-remote-mux.<platform>.
# The addon looks for it there.
#   bash scripts/build-helper.sh [--release] [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
flags=()
if [ "${1:-}" = --release ]; then
  profile=release
  flags=(--release)
  shift
fi
dir=${1:-.}
cargo build -q "${flags[@]}" --bin opencode-remote-mux
shopt -s nullglob
placed=0
for addon in "$dir"/opencode-remote.*.node; do
  platform=${addon##*/opencode-remote.}
  platform=${platform%.node}
  install -s -m 0755 "${CARGO_TARGET_DIR:-target}/$profile/opencode-remote-mux" "$dir/opencode-remote-mux.$platform"
  placed=1
done
[ "$placed" = 1 ] || { echo "build-helper: no opencode-remote.*.node in $dir" >&2; exit 1; }
