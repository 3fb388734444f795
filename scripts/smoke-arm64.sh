#!/usr/bin/env bash
# Smoke test of the linux-arm64-gnu addon on an x86_64 Debian machine, before it ships: cross-builds it
# (debug, aarch64-linux-gnu-gcc as linker and C compiler), unpacks Debian's arm64 `nodejs` and its
# libraries into a private root (`apt-get download` + `dpkg -x`: the machine's own node is not touched),
# and runs scripts/smoke-arm64.mjs: under `qemu-aarch64 -L <root>` the addon loads and answers
# configSchema, listHosts on a temp config, warmHost and `setup` against a test sshd on 127.0.0.1.
#
# Runs as root (the test sshd's remote user is created) and installs what it lacks: qemu-user,
# gcc-aarch64-linux-gnu, the arm64 dpkg architecture, the rustup target. `npm run smoke:arm64`, and
# scripts/build-dist.sh runs it on the release build; not part of `npm test` (README, "Platforms").
# Env: SMOKE_DIR (default target/smoke-arm64); SMOKE_ADDON=<path> tests that .node instead of building
# one (the release artifact: SMOKE_ADDON=npm/linux-arm64-gnu/opencode-remote.linux-arm64-gnu.node after
# `npm run build:dist`).
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE_DIR=$(realpath -m "${SMOKE_DIR:-target/smoke-arm64}")
now() { date +%s; }
t0=$(now)
if [ "$(id -u)" -ne 0 ]; then
  echo "smoke-arm64: needs root: the test sshd logs in as a throw-away user it creates" >&2
  exit 1
fi

missing=()
command -v qemu-aarch64 > /dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc > /dev/null || missing+=(gcc-aarch64-linux-gnu)
foreign=$(dpkg --print-foreign-architectures)
if [ ${#missing[@]} -gt 0 ] || ! grep -qx arm64 <<< "$foreign"; then
  echo "smoke-arm64: installing ${missing[*]:-} (and dpkg architecture arm64)"
  dpkg --add-architecture arm64
  apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
[ -x node_modules/.bin/napi ] || npm install --no-save --no-audit --no-fund --loglevel=error

if [ -n "${SMOKE_ADDON:-}" ]; then
  addon=$(realpath "$SMOKE_ADDON")
else
  echo "== smoke-arm64: addon (cross-built, debug)"
  s=$(now)
  # -o: the .node and the bindings go to $SMOKE_DIR/addon; the repo's index.js / index.d.ts are left alone.
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    npx napi build --platform --target aarch64-unknown-linux-gnu -o "$SMOKE_DIR/addon"
  addon=$SMOKE_DIR/addon/opencode-remote.linux-arm64-gnu.node
  echo "addon: $(($(now) - s)) s"
fi
echo "$addon: $(file -b "$addon")"

echo "== smoke-arm64: Debian's arm64 nodejs"
root=$SMOKE_DIR/node-root
if [ ! -x "$root/usr/bin/node" ]; then
  debs=$SMOKE_DIR/debs
  rm -rf "$debs" "$root"
  mkdir -p "$debs" "$root"
  # nodejs:arm64 and the arm64 libraries it needs, with the arch-independent JS modules Debian's node
  # loads from /usr/share/nodejs (acorn, cjs-module-lexer, undici).
  deps=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends nodejs:arm64 | grep -E '^([^ <>]+:arm64|node-[^ <>:]+)$' | sort -u)
  # shellcheck disable=SC2086 # one package per word
  (cd "$debs" && apt-get download -o APT::Sandbox::User="$(id -un)" $deps > /dev/null)
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
fi
echo "node $(qemu-aarch64 -L "$root" "$root/usr/bin/node" --version) (arm64, under qemu-aarch64)"

echo "== smoke-arm64: load, configSchema, listHosts, warmHost, setup against a test sshd"
node scripts/smoke-arm64.mjs "$addon" "$root"
echo "smoke-arm64: OK in $(($(now) - t0)) s"
