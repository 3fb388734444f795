#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (fuzz/fuzz_targets/*.rs: session exports and back-files,
# hosts files, plugin options in opencode.json, ~/.ssh/config), each for a bounded time, on the stable
# toolchain: libfuzzer-sys targets built by plain cargo with LLVM's SanitizerCoverage passes switched on
# through stable codegen flags (what `cargo fuzz` does, minus its nightly-only sanitizers). Safe Rust
# needs no ASan to find what matters here: panics, stack overflows, hangs and runaway memory.
#
#   FUZZ_SECONDS=25 (per target)   FUZZ_TARGETS="session_export ssh_config" (default: all)
#
# Prints runs, coverage and crashes per target; exits 1 if any target crashed, hung or ran out of
# memory (the input is kept in fuzz/artifacts/<target>/; replay it with fuzz/target/…/<target> <file>).
# With $OCR_SUMMARY_FILE set, appends one line per target for scripts/summary.mjs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-25}
host=$(rustc -vV | sed -n 's/^host: //p')
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^opencode-remote-fuzz$')}

# Coverage instrumentation comes from scripts/fuzz-rustc.sh, for our crates and the parsers only.
echo "== fuzz: building $(echo $targets | wc -w) targets"
build_start=$SECONDS
RUSTC_WRAPPER="$PWD/../scripts/fuzz-rustc.sh" CARGO_TARGET_DIR="$PWD/target" \
  cargo build --quiet --release --bins --target "$host"
echo "built in $((SECONDS - build_start)) s"

failed=0
summary=()
for target in $targets; do
  corpus=corpus/$target
  artifacts=artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  log=$(mktemp)
  # The first directory collects new inputs; seeds/ holds the committed starting points. 2 GiB and
  # 10 s per input are far above what any of these parsers needs, so hitting either is a finding.
  set +e
  "target/$host/release/$target" "$corpus" "seeds/$target" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 > "$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  start_cov=$(grep -m 1 -o 'INITED cov: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
  end_cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  crashes=$(find "$artifacts" -type f | wc -l)
  ok=true
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    ok=false
    failed=1
    echo "--- $target failed (exit $status); libFuzzer said:"
    grep -v '^#' "$log" | tail -n 40
  fi
  printf '%-16s runs %-9s coverage %s -> %s edges  crashes %s  %s\n' \
    "$target" "${runs:-0}" "${start_cov:-?}" "${end_cov:-?}" "$crashes" "$([ $ok = true ] && echo ok || echo FAILED)"
  summary+=("{\"kind\":\"fuzz\",\"name\":\"$target\",\"ok\":$ok,\"inputs\":${runs:-0}}")
  rm -f "$log"
done

if [ -n "${OCR_SUMMARY_FILE:-}" ]; then
  printf '%s\n' "${summary[@]}" >> "$OCR_SUMMARY_FILE"
fi
exit $failed
