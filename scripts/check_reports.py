#!/usr/bin/env python3
"""Checks sessionscope's exports and HTML report as other tools see them.

    check_reports.py exports DIR              DuckDB reads DIR/sessions.{csv,jsonl,parquet}:
                                              same rows, byte sums, content and initiator
                                              counts, real Parquet types; and
                                              DIR/hidden.{csv,jsonl,parquet}: same rows
    check_reports.py page DIR [--screenshot PNG] [--expect-hidden available|unavailable]
                          [--expect-plots N]  headless Chromium opens DIR/report.html: no
                                              script errors, the timeline and tables render
                                              with the counts sessions.csv implies, every
                                              periodic pattern of hidden.csv has its interval
                                              plot, at least N of them on the first page
    check_reports.py big DIR --max-bytes N --max-seconds S
                                              the same page check on a big capture, plus its
                                              size and opening time against the stated limits
Exits non-zero on the first failed check.
"""
import json
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SAMPLE_ROWS = 2000  # src/report/data.rs SAMPLE_ROWS
SUMS = ["orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes", "missed_bytes"]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def csv_totals(con, d):
    q = "SELECT count(*), " + ", ".join(f"sum({c})" for c in SUMS) + ", count(DISTINCT uid)"
    return con.execute(q + f" FROM read_csv('{d}/sessions.csv', header=true, all_varchar=false)").fetchone()


def exports(d):
    import duckdb

    con = duckdb.connect()
    want = csv_totals(con, d)
    q = "SELECT count(*), " + ", ".join(f"sum({c})" for c in SUMS) + ", count(DISTINCT uid)"
    got_pq = con.execute(q + f" FROM read_parquet('{d}/sessions.parquet')").fetchone()
    # Zeek's JSON names: the uid and counters keep their names, the 5-tuple is id.*.
    got_js = con.execute(q + f" FROM read_json('{d}/sessions.jsonl', format='newline_delimited')").fetchone()
    print(f"csv     rows and sums: {want}")
    print(f"parquet rows and sums: {got_pq}")
    print(f"jsonl   rows and sums: {got_js}")
    if tuple(got_pq) != tuple(want):
        fail("Parquet rows or byte sums differ from sessions.csv")
    if tuple(got_js) != tuple(want):
        fail("JSON lines rows or byte sums differ from sessions.csv")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{d}/sessions.parquet'))").fetchall())
    for col, t in [("ts", "TIMESTAMP WITH TIME ZONE"), ("orig_p", "INTEGER"), ("resp_p", "INTEGER"),
                   ("orig_bytes", "BIGINT"), ("orig_h", "VARCHAR"), ("duration", "DOUBLE")]:
        if types.get(col) != t:
            fail(f"Parquet column {col} is {types.get(col)}, expected {t}")
    # The same sessions in the same order, with the same start times and endpoints.
    diff = con.execute(f"""
        WITH c AS (SELECT row_number() OVER () AS n, uid, replace(ts, '.', '')::BIGINT AS us, orig_h, orig_p, resp_h, resp_p
                   FROM read_csv('{d}/sessions.csv', header=true, types={{'ts': 'VARCHAR'}})),
             p AS (SELECT row_number() OVER () AS n, uid, epoch_us(ts) AS us, orig_h, orig_p, resp_h, resp_p
                   FROM read_parquet('{d}/sessions.parquet')),
             j AS (SELECT row_number() OVER () AS n, uid, "ts" AS ts, "id.orig_h" AS orig_h, "id.orig_p" AS orig_p,
                          "id.resp_h" AS resp_h, "id.resp_p" AS resp_p
                   FROM read_json('{d}/sessions.jsonl', format='newline_delimited'))
        SELECT count(*) FROM c JOIN p USING (n) JOIN j USING (n)
        WHERE c.uid <> p.uid OR c.uid <> j.uid OR c.us <> p.us OR c.us <> round(j.ts * 1e6)::BIGINT
           OR c.orig_h <> p.orig_h OR c.orig_h <> j.orig_h OR c.orig_p <> p.orig_p OR c.resp_p <> j.resp_p
    """).fetchone()[0]
    if diff:
        fail(f"{diff} rows differ between the formats (order, uid, ts or endpoints)")
    content(con, d)
    hidden_exports(con, d)
    print(f"exports OK: {want[0]} sessions in csv, parquet and jsonl agree")
    return want[0]


JSONL = "read_json('{}', format='newline_delimited', sample_size=-1)"


def content(con, d):
    """The content and label columns agree between the formats (Zeek's names in JSON lines)."""
    csv_src = f"read_csv('{d}/sessions.csv', header=true, all_varchar=true)"
    pq_src = f"read_parquet('{d}/sessions.parquet')"
    js_src = JSONL.format(f"{d}/sessions.jsonl")
    js_cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {js_src}").fetchall()}

    def js(name):
        # A key no line has is no column at all: count it as none.
        return f'"{name}"' if name in js_cols else "NULL"

    # Non-empty server_name; answers in dns_answers (space-separated in the CSV, lists
    # elsewhere); http_status summed; sessions per initiator.
    q_csv = (f"SELECT count(server_name), coalesce(sum(len(string_split(dns_answers, ' '))), 0), "
             f"coalesce(sum(http_status::BIGINT), 0) FROM {csv_src}")
    q_pq = (f"SELECT count(server_name), coalesce(sum(len(dns_answers)), 0), "
            f"coalesce(sum(http_status), 0) FROM {pq_src}")
    q_js = (f"SELECT count({js('server_name')}), coalesce(sum(len({js('dns.answers')})), 0), "
            f"coalesce(sum({js('http.status_code')}), 0) FROM {js_src}")
    want, got_pq, got_js = (tuple(con.execute(q).fetchone()) for q in (q_csv, q_pq, q_js))
    print(f"server_name, dns answers, http_status sum: csv {want}, parquet {got_pq}, jsonl {got_js}")
    if got_pq != want or got_js != want:
        fail("content columns differ between sessions.csv, sessions.parquet and sessions.jsonl")
    labels = "SELECT coalesce(initiator, '') AS i, count(*) FROM {} GROUP BY ALL ORDER BY i"
    want = con.execute(labels.format(csv_src)).fetchall()
    got_pq = con.execute(labels.format(pq_src)).fetchall()
    got_js = con.execute(labels.format(js_src) if "initiator" in js_cols else
                         f"SELECT '' AS i, count(*) FROM {js_src}").fetchall()
    print(f"initiator counts: csv {want}, parquet {got_pq}, jsonl {got_js}")
    if got_pq != want or got_js != want:
        fail("initiator counts differ between sessions.csv, sessions.parquet and sessions.jsonl")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {pq_src})").fetchall())
    for col, t in [("http_status", "INTEGER"), ("ntp_version", "INTEGER"), ("dns_answers", "VARCHAR[]"),
                   ("tls_alpn", "VARCHAR[]"), ("server_name", "VARCHAR"), ("initiator", "VARCHAR")]:
        if types.get(col) != t:
            fail(f"Parquet column {col} is {types.get(col)}, expected {t}")
    if len(types) != 51:
        fail(f"sessions.parquet has {len(types)} columns, sessions.csv 51")


def hidden_exports(con, d):
    """hidden.parquet and hidden.jsonl, when written, hold hidden.csv's rows."""
    path = os.path.join(d, "hidden.csv")
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    sessions = con.execute(f"SELECT coalesce(sum(sessions), 0) FROM read_csv('{path}', header=true)").fetchone()[0]
    for name, src in [("hidden.parquet", f"read_parquet('{d}/hidden.parquet')"),
                      ("hidden.jsonl", JSONL.format(f"{d}/hidden.jsonl"))]:
        if not os.path.exists(os.path.join(d, name)):
            fail(f"{name} missing beside hidden.csv")
        if name.endswith(".jsonl") and os.path.getsize(os.path.join(d, name)) == 0:
            got = (0, 0)  # no patterns: no lines (DuckDB cannot guess columns from nothing)
        else:
            got = tuple(con.execute(f"SELECT count(*), coalesce(sum(sessions), 0) FROM {src}").fetchone())
        print(f"{name}: {got[0]} patterns, {got[1]} sessions (hidden.csv: {rows}, {sessions})")
        if got != (rows, sessions):
            fail(f"{name} has {got[0]} rows and {got[1]} sessions, hidden.csv {rows} and {sessions}")
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{d}/hidden.parquet'))").fetchall())
    for col, t in [("first_ts", "TIMESTAMP WITH TIME ZONE"), ("dest_p", "INTEGER"), ("sessions", "BIGINT"),
                   ("period_s", "DOUBLE"), ("allowed", "BOOLEAN")]:
        if types.get(col) != t:
            fail(f"hidden.parquet column {col} is {types.get(col)}, expected {t}")


def chromium():
    for name in ["chromium", "chromium-browser", "google-chrome"]:
        path = shutil.which(name)
        if path:
            return path
    fail("no chromium found (apt-get install chromium)")


def browser(args, timeout=300):
    profile = tempfile.mkdtemp(prefix="sessionscope-chromium-")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"] + args
    try:
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return proc, time.monotonic() - start
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_page(d):
    url = "file://" + os.path.abspath(os.path.join(d, "report.html"))
    proc, seconds = browser(["--virtual-time-budget=5000", "--dump-dom", url])
    m = re.search(r'<output id="selfcheck"[^>]*>(.*?)</output>', proc.stdout, re.S)
    if not m:
        print(proc.stderr[-3000:], file=sys.stderr)
        fail("report.html: the page's self-check never ran (a script failed before it)")
    import html

    check = json.loads(html.unescape(m.group(1)))
    console = [l for l in proc.stderr.splitlines() if "CONSOLE" in l and ("Uncaught" in l or "error" in l.lower())]
    return check, console, seconds


def page(d, screenshot=None, expect_hidden="available", expect_plots=0):
    import duckdb

    rows = csv_totals(duckdb.connect(), d)[0]
    check, console, seconds = open_page(d)
    print(f"page self-check: {check}  (opened in {seconds:.2f} s)")
    if check.get("errors"):
        fail(f"script errors in report.html: {check['errors']}")
    if console:
        fail(f"console errors in report.html: {console}")
    if check.get("timeline_sessions") != rows:
        fail(f"timeline shows {check.get('timeline_sessions')} sessions, sessions.csv has {rows}")
    if rows and not check.get("timeline_bars"):
        fail("timeline has no bars")
    if check.get("sample_rows") != min(rows, SAMPLE_ROWS):
        fail(f"session table has {check.get('sample_rows')} rows, expected {min(rows, SAMPLE_ROWS)}")
    if check.get("sample_rows_shown") != min(rows, 50):
        fail(f"session table shows {check.get('sample_rows_shown')} rows on its first page")
    if check.get("hidden") != expect_hidden:
        fail(f"hidden-sessions section is {check.get('hidden')}, expected {expect_hidden}")
    if expect_hidden == "available":
        with open(os.path.join(d, "hidden.csv"), newline="") as f:
            hidden_rows = sum(1 for _ in csv.reader(f)) - 1
        # The page keeps the first MAX_HIDDEN_GROUPS (src/report/html.rs) of hidden.csv's rows.
        expected = min(hidden_rows, 1000)
        if check.get("hidden_rows") != expected:
            fail(f"hidden-sessions table has {check.get('hidden_rows')} rows, expected {expected} (hidden.csv has {hidden_rows})")
        print(f"hidden-sessions table: {expected} patterns of hidden.csv's {hidden_rows}")
        with open(os.path.join(d, "hidden.csv"), newline="") as f:
            periodic = sum(1 for r in csv.DictReader(f) if r["period_s"])
        # Each periodic pattern on the page has its plot, up to MAX_PLOTTED_PATTERNS
        # (src/report/data.rs); when hidden.csv has more rows than the page, only a bound holds.
        plots = check.get("hidden_plots")
        if hidden_rows <= 1000 and plots != min(periodic, 200):
            fail(f"{plots} interval plots, expected one per periodic pattern ({periodic}, at most 200)")
        if plots is None or plots > min(periodic, 200):
            fail(f"{plots} interval plots for {periodic} periodic patterns")
        if check.get("hidden_plots_shown", 0) < expect_plots:
            fail(f"{check.get('hidden_plots_shown')} interval plots (<svg> in a pattern's row) on the "
                 f"hidden table's first page, expected at least {expect_plots}")
        print(f"interval plots: {plots} ({check.get('hidden_plots_shown')} on the first page) "
              f"for {periodic} periodic patterns")
    if screenshot:
        os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
        url = "file://" + os.path.abspath(os.path.join(d, "report.html"))
        proc, _ = browser(["--hide-scrollbars", "--window-size=1280,1900", f"--screenshot={os.path.abspath(screenshot)}", url])
        if not os.path.exists(screenshot) or os.path.getsize(screenshot) < 10_000:
            print(proc.stderr[-2000:], file=sys.stderr)
            fail("no screenshot was saved")
        print(f"screenshot: {screenshot}")
    print(f"page OK: {rows} sessions on the timeline, {check.get('sample_rows')} in the table")
    return check, seconds


def big(d, max_bytes, max_seconds):
    size = os.path.getsize(os.path.join(d, "report.html"))
    # The browser's own start-up, measured in the same run on an empty page, for comparison.
    empty = tempfile.NamedTemporaryFile("w", suffix=".html", delete=False)
    empty.write("<!DOCTYPE html><title>x</title><p>x")
    empty.close()
    _, baseline = browser(["--dump-dom", "file://" + empty.name])
    os.unlink(empty.name)
    check, seconds = page(d, expect_hidden="available")
    print(f"big report: {size:,} bytes (limit {max_bytes:,}); opened and rendered in {seconds:.2f} s "
          f"(limit {max_seconds} s; an empty page takes {baseline:.2f} s; the page's own script {check.get('render_ms')} ms)")
    if size > max_bytes:
        fail(f"report.html is {size:,} bytes, over the {max_bytes:,} limit")
    if seconds > max_seconds:
        fail(f"report.html took {seconds:.2f} s to open, over the {max_seconds} s limit")


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    mode, d, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    opts = dict(zip(rest[::2], rest[1::2]))
    if mode == "exports":
        exports(d)
    elif mode == "page":
        page(d, opts.get("--screenshot"), opts.get("--expect-hidden", "available"),
             int(opts.get("--expect-plots", "0")))
    elif mode == "big":
        big(d, int(opts["--max-bytes"]), float(opts["--max-seconds"]))
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
