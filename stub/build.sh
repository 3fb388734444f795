#!/usr/bin/env bash
# Builds the remote stub as static musl binaries for x86_64, aarch64 and 32-bit ARM (armv7, hard float)
# Linux, copies them to stub/dist/opencode-remote-stub-<version>-<arch>-linux with a SHA256SUMS file,
# and checks them: statically linked, at most 5 MiB, idle RSS of the x86_64 one at most 8 MiB, and
# (when qemu-user is installed) the aarch64 and armv7 ones answering health under emulation.
#
# Non-PIE (`relocation-model=static`): `file` says "statically linked" rather than
# "static-pie linked", and there is no self-relocation for old kernels to trip over.
# aarch64 and armv7 link with rust-lld (shipped with rustc); every dependency is pure Rust.
#
# armv7: rustup has no rust-std for armv7-unknown-linux-musleabihf, so its std is built from rust-src
# (`-Zbuild-std`, allowed on stable through RUSTC_BOOTSTRAP) and linked against Debian's armhf musl
# (musl-dev:armhf, multiarch) with the cross libgcc's unwinder (libgcc_eh.a) as libunwind: the same
# libc as the other stubs, and no NSS to break in a static glibc. Adds about 2.5 CPU-minutes.
# Missing pieces are installed when run as root (dpkg --add-architecture armhf, apt-get, rustup).
#
# `stub/build.sh --test` then runs the stub's integration tests against every release binary
# (aarch64 under qemu-aarch64, armv7 under qemu-arm).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_SIZE_BYTES=$((5 * 1024 * 1024))
MAX_RSS_KIB=$((8 * 1024))
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
armv7=armv7-unknown-linux-musleabihf
armv7_musl=/usr/lib/arm-linux-musleabihf
command -v file > /dev/null || { echo "build.sh needs file(1): apt-get install file" >&2; exit 1; }

installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
  grep -qx "$t" <<< "$installed" || rustup target add "$t"
done

# The armv7 build's libunwind: the cross gcc's libgcc_eh.a (ARM EHABI unwinder).
armv7_libgcc_eh() { ls /usr/lib/gcc-cross/arm-linux-gnueabihf/*/libgcc_eh.a 2> /dev/null | sort -V | tail -1; }
armv7_missing=()
[ -f "$armv7_musl/libc.a" ] || armv7_missing+=(musl-dev:armhf)
[ -n "$(armv7_libgcc_eh)" ] || armv7_missing+=(gcc-arm-linux-gnueabihf)
if [ ${#armv7_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: the armv7 stub needs ${armv7_missing[*]}; as root: dpkg --add-architecture armhf &&" \
      "apt-get update && apt-get install ${armv7_missing[*]}" >&2
    exit 1
  fi
  echo "build.sh: installing ${armv7_missing[*]} for the armv7 stub"
  dpkg --add-architecture armhf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${armv7_missing[@]}" > /dev/null
fi
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
armv7_link=$PWD/target/armv7-musl-link
mkdir -p "$armv7_link"
ln -sf "$(armv7_libgcc_eh)" "$armv7_link/libunwind.a"

export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
cargo build -p opencode-remote-stub --profile stub "${targets[@]/#/--target=}"

# No self-contained crt without rust-std: musl's own crt1.o/crti.o/crtn.o, in that order around
# the objects, and its libc.a.
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=rust-lld
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-C relocation-model=static \
  -C link-self-contained=no -C target-feature=+crt-static \
  -Z pre-link-args=$armv7_musl/crt1.o -Z pre-link-args=$armv7_musl/crti.o -C link-arg=$armv7_musl/crtn.o \
  -L native=$armv7_musl -L native=$armv7_link"
s=$(date +%s)
RUSTC_BOOTSTRAP=1 cargo build -p opencode-remote-stub --profile stub --target "$armv7" \
  -Zbuild-std=std,panic_abort
echo "armv7 build: $(($(date +%s) - s)) s"

x86=target/x86_64-unknown-linux-musl/stub/opencode-remote-stub
version=$("$x86" version)
dist=stub/dist
rm -rf "$dist"
mkdir -p "$dist"
# The file name's arch is what the addon maps `uname -m` to (src/workspace/bootstrap.rs).
cp "$x86" "$dist/opencode-remote-stub-$version-x86_64-linux"
cp target/aarch64-unknown-linux-musl/stub/opencode-remote-stub "$dist/opencode-remote-stub-$version-aarch64-linux"
cp "target/$armv7/stub/opencode-remote-stub" "$dist/opencode-remote-stub-$version-armv7-linux"
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

# The emulated stubs, each asked for health by itself (its `status` checks the running stub is the
# same binary, which under qemu-user it finds through the emulator's mapped files).
emulated=(aarch64:qemu-aarch64 armv7:qemu-arm)
for pair in "${emulated[@]}"; do
  arch=${pair%%:*} qemu=${pair#*:}
  bin=$dist/opencode-remote-stub-$version-$arch-linux
  if ! command -v "$qemu" > /dev/null; then
    echo "$arch: not run (no $qemu; apt-get install qemu-user)"
    continue
  fi
  start_stub "$qemu" "$bin"
  if "$qemu" "$bin" status --home "$home" > /dev/null; then
    echo "$arch: answers health under $qemu"
  else
    echo "FAIL: $arch stub does not answer health under $qemu" >&2
    fail=1
  fi
  stop_stub
done

cat "$dist/SHA256SUMS"

if [[ ${1:-} == --test ]]; then
  OPENCODE_REMOTE_STUB_BIN="$PWD/$dist/opencode-remote-stub-$version-x86_64-linux" \
    cargo test -p opencode-remote-stub --test api --test process || fail=1
  for pair in aarch64:qemu-aarch64:aarch64 armv7:qemu-arm:arm; do
    IFS=: read -r arch qemu reported <<< "$pair"
    command -v "$qemu" > /dev/null || continue
    OPENCODE_REMOTE_STUB_BIN="$PWD/$dist/opencode-remote-stub-$version-$arch-linux" \
      OPENCODE_REMOTE_STUB_RUNNER=$qemu OPENCODE_REMOTE_STUB_ARCH=$reported \
      cargo test -p opencode-remote-stub --test api --test process || fail=1
  done
fi
exit $fail
