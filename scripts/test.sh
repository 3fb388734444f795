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

export OCR_SUMMARY_FILE="${OCR_SUMMARY_FILE:-$PWD/target/robustness-summary.jsonl}"
rm -f "$OCR_SUMMARY_FILE"

echo "== fuzz (bounded)"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz.sh

echo "== node --test"
status=0
# The second reporter adds a failure row to the summary for every failed test.
node --test --test-concurrency=2 --test-timeout=600000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./scripts/summary-reporter.mjs --test-reporter-destination=/dev/null \
  __test__/ || status=$?
# The robustness table (faults, hostile inputs, secrets, load, fuzz), also after a failure.
node scripts/summary.mjs "$OCR_SUMMARY_FILE" || status=1
exit "$status"
