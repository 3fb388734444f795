#!/usr/bin/env bash
# Builds the release artifacts that can be made on a Linux x86_64 box, without touching the dev build:
#   - the three Linux addons, cross-built with cargo-zigbuild (zig from PyPI):
#       linux-x64-gnu    against glibc 2.17, so it loads on old distros (a native build here needs 2.34)
#       linux-x64-musl
#       linux-arm64-gnu  against glibc 2.17
#     into $DIST_DIR (default ./dist), then copied into npm/<platform>/ for `napi prepublish`; the
#     arm64 one is then smoke-tested under qemu-aarch64 (scripts/smoke-arm64.sh);
#   - the three static musl stubs (x86_64, aarch64, armv7) into stub/dist/, with SHA256SUMS (shipped in
#     the root package, see package.json `files`).
# macOS and Windows addons are built on real runners: .github/workflows/release.yml.
#
# Installs what it needs: a venv with cargo-zigbuild + ziglang under $BUILD_CACHE (default
# ~/.cache/opencode-remote-build), and the rustup targets. Safe to run again.
# The repository's index.js / index.d.ts and the dev .node are left alone (checked at the end).
#
# Env: DIST_DIR, BUILD_CACHE, DIST_TARGET_DIR (cargo target dir, default target/dist),
#      DIST_ADDONS=0 / DIST_STUBS=0 to skip a half, DIST_SMOKE=0 to skip the arm64 addon's smoke test
#      (it needs root), DIST_STUBS=cargo to build the x86_64 and aarch64 stubs without stub/build.sh
#      (no armv7: prepack then refuses to pack), CARGO_ZIGBUILD_VERSION, ZIGLANG_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DIST_DIR=$(realpath -m "${DIST_DIR:-$root/dist}")
BUILD_CACHE=${BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opencode-remote-build}
VENV=$BUILD_CACHE/venv
# A target dir of its own: release/cross builds never wait on (or invalidate) the dev build's target/.
export CARGO_TARGET_DIR=$(realpath -m "${DIST_TARGET_DIR:-$root/target/dist}")
CARGO_ZIGBUILD_VERSION=${CARGO_ZIGBUILD_VERSION:-0.24.0}
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.17.1}

ADDON_TARGETS=(x86_64-unknown-linux-gnu.2.17 x86_64-unknown-linux-musl aarch64-unknown-linux-gnu.2.17)
# napi's platform names, which the helper beside each addon carries too.
declare -A HELPER_PLATFORMS=(
  [x86_64-unknown-linux-gnu]=linux-x64-gnu
  [x86_64-unknown-linux-musl]=linux-x64-musl
  [aarch64-unknown-linux-gnu]=linux-arm64-gnu
)
STUB_ARCHES=(x86_64 aarch64)

log() { printf '\n== build-dist: %s\n' "$*"; }
now() { date +%s; }
t0=$(now)

# --- tools -------------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/cargo-zigbuild" ] || ! "$VENV/bin/python" -c 'import ziglang' 2> /dev/null; then
  log "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION + ziglang $ZIGLANG_VERSION into $VENV"
  mkdir -p "$BUILD_CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
# cargo-zigbuild finds zig through `python3 -m ziglang`; the venv's python comes first on PATH.
export PATH="$VENV/bin:$PATH"
echo "cargo-zigbuild: $(cargo-zigbuild --version 2> /dev/null || echo '?'), zig $(python3 -m ziglang version)"

want_targets=(x86_64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-gnu aarch64-unknown-linux-musl)
installed=$(rustup target list --installed)
missing=()
for t in "${want_targets[@]}"; do grep -qx "$t" <<< "$installed" || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "rustup target add ${missing[*]}"
  rustup target add "${missing[@]}"
fi

if [ ! -x node_modules/.bin/napi ]; then
  log "installing npm packages"
  npm install --no-save --no-audit --no-fund --loglevel=error
fi

# The dev build and the generated bindings must come out of this untouched.
guard_files=(index.js index.d.ts)
for f in opencode-remote.*.node; do [ -e "$f" ] && guard_files+=("$f"); done
guard_before=$(sha256sum "${guard_files[@]}")

# --- addons ------------------------------------------------------------------------------------------
if [ "${DIST_ADDONS:-1}" != 0 ]; then
  mkdir -p "$DIST_DIR"
  rm -f "$DIST_DIR"/opencode-remote.*.node
  for t in "${ADDON_TARGETS[@]}"; do
    log "addon $t"
    s=$(now)
    # -o: the .node, index.js and index.d.ts go to $DIST_DIR, not the repo root.
    npx napi build --platform --release -x --target "$t" -o "$DIST_DIR"
    # The connection-sharing helper, named after the addon it goes beside.
    cargo zigbuild --release --bin opencode-remote-mux --target "$t"
    triple=${t%.2.17}
    install -m 0755 "$CARGO_TARGET_DIR/$triple/release/opencode-remote-mux" \
      "$DIST_DIR/opencode-remote-mux.${HELPER_PLATFORMS[$triple]}"
    echo "addon $t: $(($(now) - s)) s"
  done

  log "npm/<platform>/ packages"
  version=$(node -p 'require("./package.json").version')
  for plat in linux-x64-gnu linux-x64-musl linux-arm64-gnu; do
    src=$DIST_DIR/opencode-remote.$plat.node
    [ -f "$src" ] || { echo "build-dist: missing $src" >&2; exit 1; }
    pv=$(node -p "require('./npm/$plat/package.json').version")
    if [ "$pv" != "$version" ]; then
      echo "build-dist: npm/$plat/package.json version $pv != package.json $version" >&2
      exit 1
    fi
    cp "$src" "npm/$plat/"
    cp "$DIST_DIR/opencode-remote-mux.$plat" "npm/$plat/"
    echo "npm/$plat/opencode-remote.$plat.node npm/$plat/opencode-remote-mux.$plat"
  done
  # The arm64 addon runs before it ships: loaded by Debian's arm64 node under qemu-aarch64, against a
  # test sshd (scripts/smoke-arm64.sh; DIST_SMOKE=0 skips it).
  if [ "${DIST_SMOKE:-1}" != 0 ]; then
    log "smoke test of linux-arm64-gnu under qemu-aarch64"
    s=$(now)
    env -u CARGO_TARGET_DIR SMOKE_ADDON=npm/linux-arm64-gnu/opencode-remote.linux-arm64-gnu.node \
      bash scripts/smoke-arm64.sh
    echo "smoke: $(($(now) - s)) s"
  fi
  if ! diff -q "$DIST_DIR/index.d.ts" index.d.ts > /dev/null; then
    echo "build-dist: warning: the release build's index.d.ts differs from the committed one" \
      "(run \`npm run build\` and commit the bindings)" >&2
  fi
fi

# --- stubs -------------------------------------------------------------------------------------------
# stub/build.sh (the stub's own build and checks) when it exists; otherwise, or with DIST_STUBS=cargo,
# plain cargo builds named the same way.
if [ "${DIST_STUBS:-1}" != 0 ]; then
  s=$(now)
  if [ -f stub/build.sh ] && [ "${DIST_STUBS:-1}" != cargo ]; then
    log "stubs: stub/build.sh"
    # build.sh reads its outputs from the default target/ dir.
    env -u CARGO_TARGET_DIR bash stub/build.sh
  else
    log "stubs: cargo build -p opencode-remote-stub --profile stub"
    stub_version=$(cargo metadata --no-deps --format-version 1 |
      node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
        console.log(JSON.parse(s).packages.find((p) => p.name === "opencode-remote-stub").version))')
    rm -rf stub/dist
    mkdir -p stub/dist
    for arch in "${STUB_ARCHES[@]}"; do
      triple=$arch-unknown-linux-musl
      # Non-PIE static binaries. Every stub dependency is pure Rust, so rust-lld (shipped with rustc)
      # links aarch64 with the self-contained crt from rust-std; x86_64 musl links with the host cc.
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static" \
        cargo build -p opencode-remote-stub --profile stub --target "$triple"
      out=stub/dist/opencode-remote-stub-$stub_version-$arch-linux
      cp "$CARGO_TARGET_DIR/$triple/stub/opencode-remote-stub" "$out"
      chmod 755 "$out"
      echo "$out"
    done
    (cd stub/dist && sha256sum opencode-remote-stub-*-linux > SHA256SUMS)
  fi
  echo "stubs: $(($(now) - s)) s"
  if [ "${DIST_STUBS:-1}" = cargo ]; then
    for arch in "${STUB_ARCHES[@]}"; do ls "stub/dist/opencode-remote-stub-$stub_version-$arch-linux"; done
  else
    node scripts/check-stubs.mjs
  fi
fi

# --- nothing in the work tree moved ------------------------------------------------------------------
if [ "$(sha256sum "${guard_files[@]}")" != "$guard_before" ]; then
  echo "build-dist: ERROR: the build changed ${guard_files[*]}" >&2
  exit 1
fi
log "done in $(($(now) - t0)) s (artifacts: $DIST_DIR, npm/*/, stub/dist/); check with scripts/check-dist.sh"
