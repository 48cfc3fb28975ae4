#!/usr/bin/env python3
"""The Spark job against the Rust analysis, on a dataset of several sensors and days.

Called by scripts/check-spark.sh (which checks the tools first). Builds, in a temporary directory:

  sensor lab-a: sample-captures/hidden-scenario.pcap as recorded (day D), analysed twice (the
                second run must replace the first run's files, not add rows);
  sensor lab-b: sample-captures/hidden-scenario-one-host.pcap shifted by +1 and +2 days
                (editcap -t), and by -1 day (left out of the job with --since D).

Then runs `spark-submit --master local[2] spark/hidden_sessions.py DATASET OUT --since D` and
asserts:
  - DuckDB reads the dataset as one table: the rows per sensor and day are the rows of each
    run's sessions.csv;
  - for the hosts only lab-a has, the job's patterns are the Rust hidden.csv's for the
    unshifted capture: same keys, kinds, services and session counts, periods within 1 %;
  - every pattern equals the Rust hidden.csv of the same captures (lab-a's and the two lab-b
    days kept) read as one capture, periods within 1 %, and `sensors` counts the sensors whose
    own run shows the pattern;
  - every process the scenario programmed with a period is found within 5 % of that period
    (the truth is sample-captures/hidden-scenario.labels.csv, not our program);
  - one fleet row per destination both sensors show as periodic, naming both hosts, sensors=2.
"""

import csv
import datetime
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print(f"FAIL: {message}")


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def key(row):
    return (row["host"], row["dest_h"], row["proto"], row["dest_p"])


def close(a, b, tolerance):
    return abs(float(a) - float(b)) <= tolerance * float(b)


def analyse(binary, capture, sensor, out):
    run([binary, "analyze", capture, "--sensor", sensor, "--format", "csv,parquet",
         "--partition", "--out", out, "--no-progress"], stdout=subprocess.DEVNULL)
    rows = sum(1 for _ in open(os.path.join(out, "sessions.csv"), encoding="utf-8")) - 1
    return read_csv(os.path.join(out, "hidden.csv")), rows


def main():
    binary = os.environ.get("SESSIONSCOPE_BIN", os.path.join(ROOT, "target/debug/sessionscope"))
    work = tempfile.mkdtemp(prefix="sessionscope-spark-")
    try:
        scenario = os.path.join(ROOT, "sample-captures/hidden-scenario.pcap")
        one_host = os.path.join(ROOT, "sample-captures/hidden-scenario-one-host.pcap")
        shifted = {}
        for days in (1, 2, -1):
            path = os.path.join(work, f"one-host{days:+d}d.pcap")
            run(["editcap", "-t", str(days * DAY), one_host, path])
            shifted[days] = path
        out = os.path.join(work, "out")
        rust_a, rows_a = analyse(binary, scenario, "lab-a", out)
        files_before = sorted(os.listdir(os.path.join(out, "sessions", "sensor=lab-a")))
        rust_b, rows_b = analyse(binary, shifted[1], "lab-b", out)
        _, rows_b2 = analyse(binary, shifted[2], "lab-b", out)
        _, rows_bm = analyse(binary, shifted[-1], "lab-b", out)
        # Re-running lab-a's input replaces its file.
        _, again = analyse(binary, scenario, "lab-a", out)
        check(again == rows_a, "the re-run of lab-a read the same sessions")
        day0 = datetime.datetime.fromtimestamp(
            float(min(r["first_ts"] for r in rust_a)), datetime.timezone.utc).date()
        days = {d: (day0 + datetime.timedelta(days=d)).isoformat() for d in (-1, 0, 1, 2)}

        # DuckDB reads the dataset as one table.
        import duckdb
        dataset = os.path.join(out, "sessions")
        table = f"read_parquet('{dataset}/**/*.parquet', hive_partitioning=true)"
        counts = {(s, str(d)): n for s, d, n in duckdb.sql(
            f"select sensor, date, count(*) from {table} group by all").fetchall()}
        expected = {("lab-a", days[0]): rows_a, ("lab-b", days[1]): rows_b,
                    ("lab-b", days[2]): rows_b2, ("lab-b", days[-1]): rows_bm}
        check(counts == expected, f"rows per sensor and day {counts} == {expected}")
        check(sorted(os.listdir(os.path.join(dataset, "sensor=lab-a"))) == files_before,
              "lab-a's re-run left the same files")
        columns = {r[0] for r in duckdb.sql(f"describe select * from {table}").fetchall()}
        has_names = "server_name" in columns

        spark_out = os.path.join(work, "spark")
        run(["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
             "--conf", "spark.sql.shuffle.partitions=4",
             os.path.join(ROOT, "spark/hidden_sessions.py"), dataset, spark_out,
             "--since", days[0]], stderr=subprocess.DEVNULL)
        spark = read_csv(os.path.join(spark_out, "hidden.csv"))
        with open(os.path.join(spark_out, "hidden.csv"), encoding="utf-8") as f:
            header = f.readline().strip().split(",")
        with open(os.path.join(out, "hidden.csv"), encoding="utf-8") as f:
            rust_header = f.readline().strip().split(",")
        check(header == rust_header + ["sensors"], f"columns {header}")
        patterns = {key(r): r for r in spark if not r["kind"].startswith("fleet ")}
        fleet = [r for r in spark if r["kind"].startswith("fleet ")]

        def same(r, s, sessions, sensors):
            k = key(r)
            check(s["kind"] == r["kind"], f"{k}: kind {s['kind']} == {r['kind']}")
            check(s["service"] == r["service"], f"{k}: service {s['service']} == {r['service']}")
            check(int(s["sessions"]) == sessions, f"{k}: sessions {s['sessions']} == {sessions}")
            check(int(s["sensors"]) == sensors, f"{k}: sensors {s['sensors']} == {sensors}")
            check((s["period_s"] == "") == (r["period_s"] == ""), f"{k}: periodic in both")
            if s["period_s"] and r["period_s"]:
                check(close(s["period_s"], r["period_s"], 0.01),
                      f"{k}: period {s['period_s']} within 1 % of {r['period_s']}")
            if has_names:
                check(s["dest_name"] == r["dest_name"], f"{k}: name {s['dest_name']}")

        shared_host = "192.0.2.1"
        rust_a_keys = {key(r): r for r in rust_a}
        for r in rust_a:
            if r["host"] == shared_host:
                continue
            s = patterns.get(key(r))
            check(s is not None, f"Rust pattern {key(r)} found by Spark")
            if s:
                same(r, s, int(r["sessions"]), 1)
        # Everything the job read, against Rust on the same captures read as one capture.
        ref = os.path.join(work, "ref")
        run([binary, "analyze", scenario, shifted[1], shifted[2], "--out", ref,
             "--no-progress"], stdout=subprocess.DEVNULL)
        rust_all = read_csv(os.path.join(ref, "hidden.csv"))
        rust_b_keys = {key(r) for r in rust_b}
        for r in rust_all:
            s = patterns.get(key(r))
            check(s is not None, f"Rust pattern {key(r)} (all days) found by Spark")
            if s:
                same(r, s, int(r["sessions"]),
                     (key(r) in rust_a_keys) + (key(r) in rust_b_keys))
        check(len(patterns) == len(rust_all),
              f"as many patterns as Rust: {len(patterns)} == {len(rust_all)}")

        # Programmed periods (the scenario's own record).
        labels = read_csv(os.path.join(ROOT, "sample-captures/hidden-scenario.labels.csv"))
        programmed = {(r["orig_h"], r["resp_h"], r["proto"], r["resp_p"]): float(r["period_s"])
                      for r in labels if r["period_s"]}
        check(len(programmed) >= 3, "the scenario programs periodic processes")
        for k, period in programmed.items():
            s = patterns.get(k)
            check(s is not None and s["period_s"] != "" and close(s["period_s"], period, 0.05),
                  f"{k}: programmed period {period} s found within 5 %: "
                  f"{s and s['period_s']}")

        # Fleet rows: a destination periodic from a lab-a host and from lab-b's host.
        periodic_a = {(r["dest_h"], r["proto"], r["dest_p"]): r["host"] for r in rust_a
                      if r["period_s"] and r["host"] != shared_host}
        periodic_b = {(r["dest_h"], r["proto"], r["dest_p"]) for r in rust_b if r["period_s"]}
        wanted = {d: sorted([periodic_a[d], shared_host]) for d in periodic_a
                  if d in periodic_b}
        check(len(wanted) >= 3, f"the scenario has fleet destinations: {wanted}")
        for dest, hosts in wanted.items():
            rows = [r for r in fleet if (r["dest_h"], r["proto"], r["dest_p"]) == dest]
            check(len(rows) == 1, f"one fleet row for {dest}: {len(rows)}")
            for r in rows:
                check(sorted(r["host"].split()) == hosts, f"fleet {dest} names {hosts}: {r['host']}")
                check(r["sensors"] == "2", f"fleet {dest}: sensors {r['sensors']}")
                for h in hosts:
                    check(h in r["reason"], f"fleet {dest}: reason names {h}")
        check(len(fleet) == len(wanted), f"fleet rows {len(fleet)} == {len(wanted)}")
        print(f"spark: {len(patterns)} patterns and {len(fleet)} fleet rows checked "
              f"(names compared: {has_names})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"check-spark: {len(FAILURES)} failures", file=sys.stderr)
        sys.exit(1)
    print("check-spark: OK")


if __name__ == "__main__":
    main()
