#!/usr/bin/env bash
# Builds the fuzzer (examples/fuzz) with coverage instrumentation on the stable toolchain and
# runs it. Arguments go to the fuzzer: `scripts/fuzz.sh --seconds 180` fuzzes every target for
# its share of three minutes; `scripts/fuzz.sh --target decode --replay FILE` replays an input.
# Exit status: 0 clean, 1 an input panicked or held too much memory, 2 an input hung.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# SanitizerCoverage's inline 8-bit counters: stable rustc flags. The explicit --target keeps
# them off build scripts and proc macros, which run on the host without the fuzzer's runtime.
export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=3 \
-C llvm-args=-sanitizer-coverage-inline-8bit-counters"
cargo build --quiet --profile fuzz --example fuzz --target "$host" --target-dir target/fuzz-build
exec "target/fuzz-build/$host/fuzz/examples/fuzz" "$@"
