#!/usr/bin/env bash
# Installs what the demo, the tests and the benchmark need on a fresh Debian/Ubuntu machine:
# OpenSSH's server (the tests start their own sshd on loopback; the system one is never touched),
# ripgrep (OpenCode's grep/glob tools), iptables (packet loss in the fault tests' own network namespaces),
# zsh, fish and tcsh (login shells the quoting tests check against), the npm packages (including the
# pinned opencode-ai), and the native addon build. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen > /dev/null || missing+=(openssh-client)
command -v rg > /dev/null || missing+=(ripgrep)
command -v git > /dev/null || missing+=(git)
command -v tar > /dev/null || missing+=(tar)
# The TUI tests drive the real OpenCode TUI in a detached tmux.
command -v tmux > /dev/null || missing+=(tmux)
# The fault tests make a link lossy inside their own network namespaces (iptables -m statistic).
command -v iptables > /dev/null || missing+=(iptables)
# The quoting property tests (src/ssh/quote.rs) run command lines through every login shell a remote
# user may have.
for shell in zsh fish tcsh; do
  command -v $shell > /dev/null || missing+=($shell)
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
fi

if [ ! -x node_modules/.bin/opencode ] || [ ! -x node_modules/.bin/napi ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  # npm ci refuses this lock file (npm drops the other platforms' optional packages of @napi-rs/cli's
  # dependencies from it), so install from it without rewriting it.
  npm install --no-save --no-audit --no-fund --loglevel=error
fi

profile=${BUILD_PROFILE:-debug}
echo "setup: building the native addon ($profile)"
if [ "$profile" = release ]; then
  npx napi build --platform --release
  bash scripts/build-helper.sh --release
else
  npx napi build --platform
  bash scripts/build-helper.sh
fi
