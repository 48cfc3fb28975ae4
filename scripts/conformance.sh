#!/bin/sh
# Runs the corpus conformance suite (tests/conformance.rs) in release mode with the corpus
# required, and prints its tables: robustness per capture, then Zeek conn.log agreement.
# The corpus is taken from SESSIONSCOPE_CORPUS, else <repo>/../shared/corpus.
# Per-connection Zeek mismatches are written to target/conformance/zeek-mismatches.txt.
# Extra arguments go to the test harness (e.g. a test name filter).
set -eu
cd "$(dirname "$0")/.."
SESSIONSCOPE_REQUIRE_CORPUS=1 exec cargo test --release --test conformance -- --nocapture --test-threads=1 "$@"
