#!/usr/bin/env bash
# The fleet-wide Spark job (spark/hidden_sessions.py) against the Rust analysis: builds a
# partitioned dataset of several sensors and days from the sample captures (timestamps shifted
# with editcap), runs the job with `spark-submit --master local[2]` and checks its hidden.csv
# (scripts/check_spark.py says what). Fails, never skips, when a tool is missing: it needs java
# (17+), spark-submit and python3 with pyspark and duckdb (`pip install pyspark duckdb`), and
# editcap (wireshark-common). SESSIONSCOPE_BIN names the binary (default: a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in java spark-submit editcap python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
python3 -c 'import pyspark, duckdb' 2>/dev/null || missing+=("python modules pyspark, duckdb")
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-spark: missing: ${missing[*]}" >&2
  exit 1
fi
if [ -z "${SESSIONSCOPE_BIN:-}" ]; then
  cargo build --quiet
fi
exec python3 scripts/check_spark.py
