#!/usr/bin/env bash
# Checks what scripts/build-dist.sh produced: the three Linux addons in npm/<platform>/ and the three
# static stubs in stub/dist/, by `file`, ELF headers and symbol versions, and that `npm pack` ships the
# stubs. Prints the `file` line and size of each. Exits non-zero on the first kind of mismatch it finds
# (after printing everything).
#   linux-x64-gnu    ELF x86-64 shared object, needs libc.so.6, highest GLIBC_ symbol <= 2.17
#   linux-x64-musl   ELF x86-64 shared object, no glibc symbol versions, no glibc libraries needed
#   linux-arm64-gnu  ELF aarch64 shared object, highest GLIBC_ symbol <= 2.17
#   stub x86_64      ELF x86-64 executable, statically linked (static-pie accepted), no interpreter
#   stub aarch64     ELF aarch64 executable, statically linked, no interpreter
#   stub armv7       ELF 32-bit ARM EABI5 executable, statically linked, no interpreter
# Env: MAX_GLIBC (default 2.17).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_GLIBC=${MAX_GLIBC:-2.17}
for tool in file objdump readelf sha256sum; do
  command -v "$tool" > /dev/null || {
    echo "check-dist: needs $tool (apt-get install file binutils coreutils)" >&2
    exit 1
  }
done

fail=0
bad() {
  echo "  FAIL: $*" >&2
  fail=1
}
size_of() { awk -v s="$(stat -c %s "$1")" 'BEGIN { printf "%d bytes (%.2f MiB)", s, s / 1048576 }'; }
max_glibc() { { objdump -T "$1" 2> /dev/null || true; } | { grep -o 'GLIBC_[0-9][0-9.]*' || true; } |
  sed 's/GLIBC_//' | sort -Vu | tail -n1; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# check <label> <path> <file(1) must contain...>
check() {
  local label=$1 f=$2
  shift 2
  echo "$label: $f"
  if [ ! -f "$f" ]; then
    bad "missing (run scripts/build-dist.sh)"
    return 1
  fi
  local kind
  kind=$(file -b "$f")
  echo "  file: $kind"
  echo "  size: $(size_of "$f")"
  for want in "$@"; do
    [[ $kind == *"$want"* ]] || bad "file(1) does not say \"$want\""
  done
}

check_gnu_addon() {
  local label=$1 f=$2 arch=$3
  check "$label" "$f" "ELF 64-bit LSB shared object" "$arch" "dynamically linked" || return 0
  local max libs
  max=$(max_glibc "$f")
  libs=$(needed "$f")
  echo "  needs: $libs"
  echo "  highest glibc symbol version: GLIBC_${max:-none}"
  [[ " $libs " == *" libc.so.6 "* ]] || bad "does not need libc.so.6 (not a glibc build?)"
  if [ -z "$max" ]; then
    bad "no GLIBC_ symbol versions found"
  elif ! version_le "$max" "$MAX_GLIBC"; then
    bad "needs GLIBC_$max, more than GLIBC_$MAX_GLIBC"
  fi
}

check_musl_addon() {
  local label=$1 f=$2 arch=$3
  check "$label" "$f" "ELF 64-bit LSB shared object" "$arch" "dynamically linked" || return 0
  local max libs
  max=$(max_glibc "$f")
  libs=$(needed "$f")
  echo "  needs: $libs"
  [ -z "$max" ] || bad "has glibc symbol versions (GLIBC_$max): not a musl build"
  [[ " $libs " != *" libc.so.6 "* ]] || bad "needs glibc's libc.so.6"
}

check_static_stub() {
  local label=$1 f=$2 arch=$3 bits=${4:-64}
  # "statically linked" (non-PIE) or "static-pie linked"
  check "$label" "$f" "ELF $bits-bit LSB" "$arch" "static" || return 0
  local kind
  kind=$(file -b "$f")
  [[ $kind == *"statically linked"* || $kind == *"static-pie linked"* ]] || bad "not statically linked"
  [[ $kind != *"interpreter"* ]] || bad "has a program interpreter"
  [ -z "$(needed "$f")" ] || bad "needs shared libraries: $(needed "$f")"
  [ -x "$f" ] || bad "not executable"
}

echo "== addons"
check_gnu_addon linux-x64-gnu npm/linux-x64-gnu/opencode-remote.linux-x64-gnu.node x86-64
check_musl_addon linux-x64-musl npm/linux-x64-musl/opencode-remote.linux-x64-musl.node x86-64
check_gnu_addon linux-arm64-gnu npm/linux-arm64-gnu/opencode-remote.linux-arm64-gnu.node "ARM aarch64"

echo "== connection-sharing helpers (beside each addon, named after it)"
for plat in linux-x64-gnu linux-x64-musl linux-arm64-gnu; do
  f=npm/$plat/opencode-remote-mux.$plat
  [ -x "$f" ] || bad "$f missing or not executable"
done

echo "== stubs"
shopt -s nullglob
x86_stubs=(stub/dist/opencode-remote-stub-*-x86_64-linux)
arm_stubs=(stub/dist/opencode-remote-stub-*-aarch64-linux)
armv7_stubs=(stub/dist/opencode-remote-stub-*-armv7-linux)
shopt -u nullglob
[ ${#x86_stubs[@]} -le 1 ] || bad "more than one x86_64 stub in stub/dist: ${x86_stubs[*]}"
[ ${#arm_stubs[@]} -le 1 ] || bad "more than one aarch64 stub in stub/dist: ${arm_stubs[*]}"
[ ${#armv7_stubs[@]} -le 1 ] || bad "more than one armv7 stub in stub/dist: ${armv7_stubs[*]}"
check_static_stub "stub x86_64" "${x86_stubs[0]:-stub/dist/opencode-remote-stub-<version>-x86_64-linux}" x86-64
check_static_stub "stub aarch64" "${arm_stubs[0]:-stub/dist/opencode-remote-stub-<version>-aarch64-linux}" "ARM aarch64"
check_static_stub "stub armv7" "${armv7_stubs[0]:-stub/dist/opencode-remote-stub-<version>-armv7-linux}" "ARM, EABI5" 32
if [ -f stub/dist/SHA256SUMS ]; then
  (cd stub/dist && sha256sum --quiet -c SHA256SUMS) && echo "stub/dist/SHA256SUMS: OK" ||
    bad "stub/dist/SHA256SUMS does not match"
else
  bad "stub/dist/SHA256SUMS missing"
fi

echo "== the x64-gnu addon loads in node here"
if node -e '
  const m = { exports: {} }
  process.dlopen(m, require("path").resolve(process.argv[1]))
  const n = Object.keys(m.exports).length
  if (!n) throw new Error("no exports")
  console.log(`  loaded: ${n} exports`)
' npm/linux-x64-gnu/opencode-remote.linux-x64-gnu.node; then :; else bad "linux-x64-gnu addon does not load"; fi

echo "== npm pack ships the stubs"
packed=$(npm pack --dry-run --json --loglevel=error 2> /dev/null | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
    console.log(JSON.parse(s)[0].files.map((f) => f.path).join("\n")))')
for f in "${x86_stubs[@]}" "${arm_stubs[@]}" "${armv7_stubs[@]}" stub/dist/SHA256SUMS; do
  if grep -qx "$f" <<< "$packed"; then echo "  packed: $f"; else bad "npm pack does not include $f"; fi
done

if [ $fail -ne 0 ]; then
  echo "check-dist: FAILED" >&2
  exit 1
fi
echo "check-dist: OK"
