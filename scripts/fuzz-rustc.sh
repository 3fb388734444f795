#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/fuzz.sh: switches on LLVM's SanitizerCoverage (stable codegen flags) only for
# the crates whose code the fuzzer should explore, our own and the parsers they use. Everything else
# compiles as usual, which keeps the fuzz build short and the coverage signal about our code.
rustc=$1
shift
case " $* " in
  *" --crate-name opencode_remote "* | *" --crate-name opencode_remote_protocol "* | \
    *" --crate-name serde_json "* | *" --crate-name jsonc_parser "* | \
    *" --crate-name session_export "* | *" --crate-name hosts_file "* | *" --crate-name opencode_json "* | \
    *" --crate-name ssh_config "*)
    exec "$rustc" "$@" -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares \
      --cfg fuzzing
    ;;
esac
exec "$rustc" "$@"
