#!/usr/bin/env bash
# Measures spark/hidden_sessions.py in local mode on N days of the benchmark traffic (default
# 1, 7 and 30): the benchmark capture is analysed once into the partitioned dataset (sensor
# "bench"), then its rows are replayed on N consecutive days by shifting their timestamps with
# DuckDB (the same sessions, a day apart), and the job is timed on each. Prints rows, Parquet
# bytes per session, wall time and rows per second (docs/scale-out.md).
# Needs a release build (SESSIONSCOPE_BIN, default target/release/sessionscope), java 17,
# pyspark and duckdb. CAPTURE defaults to /tmp/bench/bench-1g.pcap (made by
# ../shared/bench/make-capture.sh when missing); MASTER defaults to local[2].
set -euo pipefail
cd "$(dirname "$0")/.."
capture=${CAPTURE:-/tmp/bench/bench-1g.pcap}
bin=${SESSIONSCOPE_BIN:-target/release/sessionscope}
work=${WORK:-/tmp/sessionscope-spark-bench}
master=${MASTER:-local[2]}
days_list=("${@:-1 7 30}")
[ -f "$capture" ] || ../shared/bench/make-capture.sh
rm -rf "$work"
mkdir -p "$work"
/usr/bin/time -f "analyze: wall %e s, max RSS %M KB" "$bin" analyze "$capture" --sensor bench \
  --format parquet --partition --out "$work/day0" --no-progress >/dev/null
python3 - "$work" ${days_list[*]} <<'PY'
import duckdb, os, sys
work, days = sys.argv[1], [int(d) for d in sys.argv[2:]]
duckdb.sql("set TimeZone = 'UTC'")
src = f"read_parquet('{work}/day0/sessions/**/*.parquet', hive_partitioning=true)"
rows = duckdb.sql(f"select count(*) from {src}").fetchall()[0][0]
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{work}/day0/sessions")
           for f in fs)
print(f"day0: {rows} sessions, {size} Parquet bytes, {size / rows:.1f} bytes per session")
for n in days:
    out = f"{work}/days-{n}/sessions"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    duckdb.sql(f"""copy (select * exclude (date, d) replace (ts + to_days(d::int) as ts),
                         strftime(ts + to_days(d::int), '%Y-%m-%d') as date
                  from {src}, range({n}) t(d))
                 to '{out}' (format parquet, compression snappy, partition_by (sensor, date))""")
PY
for n in ${days_list[*]}; do
  rows=$(python3 -c "import duckdb; print(duckdb.sql(\"select count(*) from read_parquet('$work/days-$n/sessions/**/*.parquet')\").fetchall()[0][0])")
  start=$(date +%s.%N)
  rm -rf "$work/events-$n" && mkdir -p "$work/events-$n"
  spark-submit --master "$master" --conf spark.ui.enabled=false \
    --conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false \
    --conf spark.eventLog.dir="file://$work/events-$n" \
    --driver-memory "${DRIVER_MEMORY:-4g}" spark/hidden_sessions.py "$work/days-$n/sessions" \
    "$work/out-$n" >"$work/spark-$n.log" 2>&1
  end=$(date +%s.%N)
  python3 -c "w=$end-$start; print(f'$n days: {$rows} rows, wall {w:.1f} s, {$rows/w:,.0f} rows/s')"
  grep -h "fleet rows" "$work/spark-$n.log" || true
  python3 - "$work/events-$n" <<'PY'
import json, os, sys
written = read = 0
logs = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
        if not f.startswith(".")]
for path in logs:
    for line in open(path, encoding="utf-8"):
        event = json.loads(line)
        if event.get("Event") != "SparkListenerTaskEnd":
            continue
        metrics = event.get("Task Metrics") or {}
        written += metrics.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
        r = metrics.get("Shuffle Read Metrics", {})
        read += r.get("Remote Bytes Read", 0) + r.get("Local Bytes Read", 0)
print(f"  shuffle written {written} bytes, read {read} bytes")
PY
done
