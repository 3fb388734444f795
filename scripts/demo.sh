#!/usr/bin/env bash
# Sets everything up on a fresh machine, then shows remote_login round-trip against the embedded default:
# a throwaway sshd on loopback, a fake LLM, and two HOME trees standing for "local" and "remote".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node scripts/demo.mjs
