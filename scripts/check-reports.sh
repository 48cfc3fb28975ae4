#!/usr/bin/env bash
# Checks the HTML report and the exports as other tools see them (run by .ci/run):
#  - DuckDB (its Python package) reads sessions.parquet and sessions.jsonl: the same rows, byte
#    sums, order and start times as sessions.csv, the same content values (server_name, DNS
#    answers, HTTP status) and initiator counts, and Parquet's real types; hidden.parquet and
#    hidden.jsonl hold hidden.csv's rows;
#  - headless Chromium (Debian's package) opens report.html: no script errors, the timeline and
#    the tables render with the counts sessions.csv implies, each periodic pattern of hidden.csv
#    has its interval plot (an <svg> in its row; the sample captures have some); a screenshot
#    is saved;
#  - a generated capture of 1,000,000 sessions gives a report.html under REPORT_MAX_BYTES that
#    opens within REPORT_MAX_SECONDS, measured in this run.
# Installs chromium and duckdb when missing (as root, like CI). Set BIG=0 to skip the big one.
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT_MAX_BYTES=${REPORT_MAX_BYTES:-1000000}
REPORT_MAX_SECONDS=${REPORT_MAX_SECONDS:-20}
work=target/report-check
mkdir -p "$work"

if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb

cargo build --quiet
bin=target/debug/sessionscope

echo "== sample captures: exports and report"
rm -rf "$work/samples"
"$bin" analyze sample-captures/*.pcap sample-captures/*.pcapng --out "$work/samples" \
  --format csv,jsonl,parquet --no-progress >/dev/null
python3 scripts/check_reports.py exports "$work/samples"
python3 scripts/check_reports.py page "$work/samples" --screenshot "$work/report-screenshot.png" --expect-hidden available \
  --expect-plots 1

echo "== one sample capture alone"
rm -rf "$work/one"
"$bin" analyze sample-captures/udp-dns.pcap --out "$work/one" --format parquet --format jsonl \
  --format csv --no-progress >/dev/null
python3 scripts/check_reports.py exports "$work/one"
python3 scripts/check_reports.py page "$work/one" --expect-hidden available

echo "== 20,000 generated sessions: exports"
rm -rf "$work/medium"
python3 scripts/gen-many-sessions.py "$work/medium.pcap" 20000
"$bin" analyze "$work/medium.pcap" --out "$work/medium" --format csv,jsonl,parquet --no-progress >/dev/null
python3 scripts/check_reports.py exports "$work/medium"
python3 scripts/check_reports.py page "$work/medium" --expect-hidden available
rm -rf "$work/medium" "$work/medium.pcap"

if [ "${BIG:-1}" != 0 ]; then
  echo "== 1,000,000 sessions: report size and opening time"
  [ -s "$work/many.pcap" ] || python3 scripts/gen-many-sessions.py "$work/many.pcap" 1000000
  rm -rf "$work/many"
  # CSV only: the debug build's Parquet encoder would take minutes over a million rows.
  "$bin" analyze "$work/many.pcap" --out "$work/many" --no-progress >/dev/null
  python3 scripts/check_reports.py big "$work/many" --max-bytes "$REPORT_MAX_BYTES" \
    --max-seconds "$REPORT_MAX_SECONDS"
  rm -rf "$work/many" "$work/many.pcap"
fi
echo "report checks: all passed"
