#!/usr/bin/env bash
# Builds the remote stub as static musl binaries for x86_64 and aarch64 Linux, copies them to
# stub/dist/opencode-remote-stub-<version>-<arch>-linux with a SHA256SUMS file, and checks them:
# statically linked, at most 5 MiB, idle RSS of the x86_64 one at most 8 MiB, and (when
# qemu-aarch64 is installed) the aarch64 one answering health under emulation.
#
# Non-PIE (`relocation-model=static`): `file` says "statically linked" rather than
# "static-pie linked", and there is no self-relocation for old kernels to trip over.
# aarch64 links with rust-lld (shipped with rustc); every dependency is pure Rust.
#
# `stub/build.sh --test` then runs the stub's integration tests against both release binaries
# (aarch64 under qemu-aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_SIZE_BYTES=$((5 * 1024 * 1024))
MAX_RSS_KIB=$((8 * 1024))
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
command -v file > /dev/null || { echo "build.sh needs file(1): apt-get install file" >&2; exit 1; }

installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
  grep -qx "$t" <<< "$installed" || rustup target add "$t"
done

export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
cargo build -p opencode-remote-stub --profile stub "${targets[@]/#/--target=}"

x86=target/x86_64-unknown-linux-musl/stub/opencode-remote-stub
arm=target/aarch64-unknown-linux-musl/stub/opencode-remote-stub
version=$("$x86" version)
dist=stub/dist
rm -rf "$dist"
mkdir -p "$dist"
cp "$x86" "$dist/opencode-remote-stub-$version-x86_64-linux"
cp "$arm" "$dist/opencode-remote-stub-$version-aarch64-linux"
(cd "$dist" && sha256sum opencode-remote-stub-* > SHA256SUMS)

fail=0
for f in "$dist"/opencode-remote-stub-*; do
  size=$(stat -c %s "$f")
  kind=$(file -b "$f")
  mib=$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')
  echo "$(basename "$f"): $size bytes ($mib MiB): $kind"
  if [[ $kind != *"statically linked"* ]]; then
    echo "FAIL: $f is not statically linked" >&2
    fail=1
  fi
  if ((size > MAX_SIZE_BYTES)); then
    echo "FAIL: $f is larger than $MAX_SIZE_BYTES bytes" >&2
    fail=1
  fi
done

# Starts a stub (command in "$@") on a temp home and waits for run/stub.json; sets $home, $pid.
start_stub() {
  home=$(mktemp -d)
  mkdir -p "$home/run"
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$home/run/stub.token"
  chmod 600 "$home/run/stub.token"
  "$@" serve --home "$home" > /dev/null 2> "$home/stderr" &
  pid=$!
  for _ in $(seq 1 200); do
    [ -s "$home/run/stub.json" ] && return 0
    sleep 0.05
  done
  echo "FAIL: stub did not start: $(cat "$home/stderr")" >&2
  return 1
}

stop_stub() {
  kill "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  rm -rf "$home"
}

start_stub "$x86"
"$x86" status --home "$home" > /dev/null
sleep 0.5
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
stop_stub
echo "x86_64 idle VmRSS after one health request: $rss KiB"
if ((rss > MAX_RSS_KIB)); then
  echo "FAIL: idle RSS $rss KiB is more than $MAX_RSS_KIB KiB" >&2
  fail=1
fi

if command -v qemu-aarch64 > /dev/null; then
  start_stub qemu-aarch64 "$arm"
  if "$x86" status --home "$home" > /dev/null; then
    echo "aarch64: answers health under qemu-aarch64"
  else
    echo "FAIL: aarch64 stub does not answer health under qemu" >&2
    fail=1
  fi
  stop_stub
else
  echo "aarch64: not run (no qemu-aarch64; apt-get install qemu-user)"
fi

cat "$dist/SHA256SUMS"

if [[ ${1:-} == --test ]]; then
  OPENCODE_REMOTE_STUB_BIN="$PWD/$dist/opencode-remote-stub-$version-x86_64-linux" \
    cargo test -p opencode-remote-stub --test api --test process || fail=1
  if command -v qemu-aarch64 > /dev/null; then
    OPENCODE_REMOTE_STUB_BIN="$PWD/$dist/opencode-remote-stub-$version-aarch64-linux" \
      OPENCODE_REMOTE_STUB_RUNNER=qemu-aarch64 OPENCODE_REMOTE_STUB_ARCH=aarch64 \
      cargo test -p opencode-remote-stub --test api --test process || fail=1
  fi
fi
exit $fail
