#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (real sshd on loopback), then the JS tests that
# drive the real opencode CLI through the packed plugin. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo test"
cargo test --workspace --all-targets

echo "== generated bindings are up to date"
git diff --exit-code -- index.js index.d.ts

echo "== node --test"
node --test --test-concurrency=2 --test-timeout=600000 __test__/
