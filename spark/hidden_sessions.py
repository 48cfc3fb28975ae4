#!/usr/bin/env python3
"""The fleet-wide hidden-session analysis on Apache Spark.

    spark-submit spark/hidden_sessions.py DATASET OUT_DIR [--since DATE] [--until DATE]

DATASET is what `sessionscope analyze --format parquet --partition --out DIR` writes under
DIR/sessions (sensor=NAME/date=YYYY-MM-DD/part-*.parquet), for any number of sensors and days.
OUT_DIR/hidden.csv gets sessionscope's hidden.csv columns plus `sensors` (how many sensors show
the pattern), and, first, one fleet row per destination contacted periodically by several hosts
(kind `fleet <kind>`, the hosts named in `host`, space-separated).

The rules are the Rust analysis's: the values come from data/hidden-rules.tsv (the file the Rust
build embeds; `--rules` names another copy, e.g. one shipped with `--files` on a cluster) and the
steps are those of src/analysis/hidden/{mod,periodicity}.rs, documented in docs/initiators.md.
Periodicity is computed per (host, destination address, port, protocol) and per (host, server
name, port, protocol) over the whole time range selected, so a beacon every few hours shows over
days. The work runs in Spark (one shuffle per series kind; each series' samples scored on the
executors); only the candidate patterns come back to the driver, to be written in order.
"""

import argparse
import csv
import math
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

HIDDEN_COLUMNS = [
    "host", "dest_h", "dest_addresses", "dest_name", "proto", "dest_p", "service", "kind",
    "sessions", "first_ts", "last_ts", "period_s", "jitter", "orig_bytes", "resp_bytes",
    "score", "allowed", "reason", "sensors",
]

DEFAULT_RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                             "hidden-rules.tsv")


# ---------------------------------------------------------------------------------------------
# The shared rules file.

def read_rules(path):
    """Parses data/hidden-rules.tsv (format in its header) into a dict."""
    rules = {"settings": {}, "ports": [], "ip_protocols": [], "names": [],
             "interactive_ports": [], "web_ports": []}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            record, rest = fields[0], fields[1:]
            if record == "setting" and len(rest) == 2:
                rules["settings"][rest[0]] = float(rest[1])
            elif record == "port" and len(rest) == 5:
                rules["ports"].append((int(rest[0]), int(rest[1]), rest[2], rest[3], rest[4]))
            elif record == "ip_proto" and len(rest) == 4:
                rules["ip_protocols"].append((int(rest[0]), rest[1], rest[2], rest[3]))
            elif record == "name" and len(rest) == 4:
                rules["names"].append((rest[0].lower(), rest[1], rest[2], rest[3]))
            elif record in ("interactive_port", "web_port") and len(rest) == 2:
                rules[record + "s"].append((int(rest[0]), int(rest[1])))
            else:
                raise ValueError(f"{path}:{number}: unknown record {line!r}")
    return rules


# ---------------------------------------------------------------------------------------------
# The catalogue (src/analysis/hidden/catalogue.rs), on the driver: patterns are few.

def by_port(rules, ip_proto, port):
    for proto, kind, service, reason in rules["ip_protocols"]:
        if proto == ip_proto:
            return kind, service, reason
    for proto, p, kind, service, reason in rules["ports"]:
        if proto == ip_proto and p == port:
            return kind, service, reason
    return None


def by_name(rules, name):
    """Whole-label match: the entry itself or a subdomain, case-insensitive, trailing dot off."""
    if not name:
        return None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    for entry, kind, service, reason in rules["names"]:
        if name == entry or name.endswith("." + entry):
            return kind, service, reason
    return None


def group_destination(addr):
    """'multicast group' (224.0.0.0/4, ff00::/8), 'broadcast' (255.255.255.255) or None."""
    if ":" in addr:
        return "multicast group" if addr.lower().startswith("ff") else None
    if addr == "255.255.255.255":
        return "broadcast"
    first = addr.split(".", 1)[0]
    if first.isdigit() and 224 <= int(first) <= 239:
        return "multicast group"
    return None


def address_key(addr):
    """Sorts addresses as Rust's IpAddr does: IPv4 numerically, then IPv6."""
    import ipaddress
    try:
        ip = ipaddress.ip_address(addr)
        return (ip.version, int(ip))
    except ValueError:
        return (9, 0)


def seconds_text(s):
    return f"{s:.0f}" if s >= 100.0 else f"{s:.1f}"


def periodic_text(sessions, period_s, jitter, addresses, name):
    text = (f"periodic: {sessions} sessions every {seconds_text(period_s)} s, "
            f"jitter {jitter * 100.0:.0f}%")
    if addresses > 1 and name:
        text += f", to {name} at {addresses} addresses"
    return text


# ---------------------------------------------------------------------------------------------
# Periodicity (src/analysis/hidden/periodicity.rs): the same steps, line for line, run on the
# executors once per series over its samples (start in microseconds, bytes both ways).

def quantile(sorted_values, q):
    """Linear-interpolated quantile of sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    pos = min(max(q, 0.0), 1.0) * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = sorted_values[lo], sorted_values[hi]
    return a + (b - a) * (pos - lo)


def mad(values, median):
    return quantile(sorted(abs(v - median) for v in values), 0.5)


def bowley(sorted_values):
    q1, q2, q3 = (quantile(sorted_values, q) for q in (0.25, 0.5, 0.75))
    spread = q3 - q1
    if spread <= sys.float_info.epsilon * max(abs(q2), 1.0):
        return 0.0
    return min(max((q3 + q1 - 2.0 * q2) / spread, -1.0), 1.0)


def analyse(samples, st):
    """Scores a series: `samples` are (start_us, bytes) pairs, any order. None when there are
    too few sessions or the median interval is shorter than min_period_s."""
    if len(samples) < st["min_sessions"]:
        return None
    samples = sorted(samples)
    intervals = sorted((b[0] - a[0]) / 1e6 for a, b in zip(samples, samples[1:]))
    median = quantile(intervals, 0.5)
    if median != median or median < st["min_period_s"]:
        return None
    beat = [i for i in intervals if abs(i - median) <= st["on_beat"] * median]
    on_beat = len(beat) / len(intervals)
    period = sum(beat) / len(beat) if beat else median
    jitter = mad(intervals, period) / period
    skew = bowley(intervals)
    sizes = sorted(float(s[1]) for s in samples)
    size_median = quantile(sizes, 0.5)
    size_mad = mad(sizes, size_median)
    if size_median > 0.0:
        size_jitter = size_mad / size_median
    elif size_mad > 0.0:
        size_jitter = 1.0
    else:
        size_jitter = 0.0

    def clamp01(x):
        return min(max(x, 0.0), 1.0)

    regularity = clamp01(1.0 - jitter / st["jitter_scale"])
    interval_score = (2.0 * regularity + (1.0 - abs(skew))) / 3.0
    size_score = clamp01(1.0 - size_jitter / st["jitter_scale"])
    count_score = min(len(intervals) / st["full_count_intervals"], 1.0)
    score = (st["weight_interval"] * interval_score + st["weight_on_beat"] * on_beat
             + st["weight_count"] * count_score + st["weight_size"] * size_score)
    return (len(samples), period, jitter, clamp01(score))


PERIODICITY_TYPE = ("struct<p_sessions:int,period_s:double,jitter:double,score:double>")


def periodicity(samples, keys, rules, max_samples):
    """One row per series (`keys`) with p_sessions, period_s, jitter and score (all null when
    `analyse` says None). One shuffle: each series' first max_samples samples are gathered,
    sorted and cut in one array, then scored by `analyse` (Rust keeps 4096 per group)."""
    st = dict(rules["settings"])
    st["min_sessions"] = int(st["min_sessions"])
    score = F.udf(lambda s: analyse([(x[0], x[1]) for x in s], st), PERIODICITY_TYPE)
    series = samples.groupBy(*keys).agg(F.slice(
        F.array_sort(F.collect_list(F.struct("start_us", "bytes"))), 1, max_samples).alias("s"))
    series = series.where(F.size("s") >= st["min_sessions"])
    return series.select(*keys, score("s").alias("p")).select(*keys, "p.*")


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="the dataset directory (DIR/sessions)")
    p.add_argument("out_dir", help="where hidden.csv goes (created if missing)")
    p.add_argument("--since", help="first day (YYYY-MM-DD, UTC) to read")
    p.add_argument("--until", help="last day (YYYY-MM-DD, UTC) to read")
    p.add_argument("--rules", default=DEFAULT_RULES, help="the shared rules file")
    p.add_argument("--max-samples", type=int, default=100_000,
                   help="session starts kept per series, the earliest (default 100000)")
    p.add_argument("--min-score", type=float, default=0.0)
    p.add_argument("--min-count", type=int, default=1)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    rules = read_rules(args.rules)
    st = rules["settings"]
    spark = (SparkSession.builder.appName("sessionscope-hidden-sessions")
             # Partition values stay text: a sensor named "1234" is not a number.
             .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    df = spark.read.option("basePath", args.dataset).parquet(args.dataset)
    if args.since:
        df = df.where(F.col("date") >= args.since)
    if args.until:
        df = df.where(F.col("date") <= args.until)
    has = set(df.columns)

    interactive = [F.lit(False)] + [(F.col("ip_proto") == pr) & (F.col("resp_p") == po)
                                    for pr, po in rules["interactive_ports"]]
    is_interactive = interactive[0]
    for c in interactive[1:]:
        is_interactive = is_interactive | c
    pkts = F.greatest(F.col("orig_pkts") + F.col("resp_pkts"), F.lit(1))
    payload = F.col("orig_bytes") + F.col("resp_bytes")
    keepalive = (~is_interactive & (pkts >= st["keepalive_min_pkts"])
                 & (F.col("duration") >= st["keepalive_min_duration_s"])
                 & (payload / pkts <= st["keepalive_max_bytes_per_pkt"])
                 & (F.col("duration") / pkts >= st["keepalive_min_gap_s"]))
    # The name a session was made for, from content (a DNS session's own name is its query).
    if "server_name" in has:
        content_name = F.when(F.col("dns_query").isNull() if "dns_query" in has else F.lit(True),
                              F.col("server_name"))
    else:
        content_name = F.lit(None).cast("string")
    sessions = df.select(
        F.col("orig_h").alias("host"), F.col("resp_h").alias("dest"),
        F.col("resp_p").alias("port"), "ip_proto", "service", "sensor",
        F.unix_micros("ts").alias("start_us"), payload.alias("bytes"),
        F.col("orig_bytes"), F.col("resp_bytes"),
        keepalive.cast("int").alias("keepalive"),
        F.when(content_name != "", content_name).alias("content_name"))
    sessions = sessions.cache()
    group_keys = ["host", "dest", "port", "ip_proto"]

    groups = sessions.groupBy(*group_keys).agg(
        F.count(F.lit(1)).alias("sessions"),
        F.min("start_us").alias("first_us"), F.max("start_us").alias("last_us"),
        F.sum("orig_bytes").alias("orig_bytes"), F.sum("resp_bytes").alias("resp_bytes"),
        F.sum("keepalive").alias("keepalives"),
        F.min_by("service", F.when(F.col("service").isNotNull(), F.col("start_us")))
        .alias("service"),
        F.min_by("content_name", F.when(F.col("content_name").isNotNull(), F.col("start_us")))
        .alias("content_name"),
        F.collect_set("sensor").alias("sensor_set"))
    # DNS causality: the latest name each client was given for the address.
    if "dns_query" in has and "dns_answers" in has:
        # A list in sessionscope's Parquet; space-separated text in a dataset made from CSV.
        answers_type = df.schema["dns_answers"].dataType
        answers = (F.col("dns_answers") if isinstance(answers_type, T.ArrayType)
                   else F.split("dns_answers", " "))
        dns = (df.where(F.col("dns_query").isNotNull() & F.col("dns_answers").isNotNull())
               .select(F.col("orig_h").alias("host"), F.col("dns_query").alias("qname"),
                       F.col("ts"),
                       F.explode(answers).alias("dest"))
               .groupBy("host", "dest").agg(F.max_by("qname", "ts").alias("dns_name")))
        groups = groups.join(dns, ["host", "dest"], "left")
        groups = groups.withColumn("name", F.coalesce("content_name", "dns_name"))
    else:
        groups = groups.withColumn("name", F.col("content_name"))
    groups = groups.cache()

    # Periodicity per group, and per (host, name, port, protocol) over several addresses.
    own = periodicity(sessions.select(*group_keys, "start_us", "bytes"), group_keys, rules,
                      args.max_samples)
    name_keys = ["host", "name", "port", "ip_proto"]
    multi = (groups.where(F.col("name").isNotNull()).groupBy(*name_keys)
             .agg(F.count(F.lit(1)).alias("addresses")).where(F.col("addresses") > 1))
    named = (sessions.join(groups.select(*group_keys, "name").where(F.col("name").isNotNull()),
                           group_keys)
             .join(multi, name_keys))
    name_series = periodicity(named.select(*name_keys, "start_us", "bytes"), name_keys, rules,
                          args.max_samples).join(multi, name_keys)
    g = (groups.join(own, group_keys, "left")
         .join(name_series.select(*name_keys, F.col("p_sessions").alias("n_p_sessions"),
                              F.col("period_s").alias("n_period_s"),
                              F.col("jitter").alias("n_jitter"),
                              F.col("score").alias("n_score"), "addresses"),
               name_keys, "left"))

    # Only groups that can make a pattern come back to the driver.
    port_hit = F.lit(False)
    for pr, po, _, _, _ in rules["ports"]:
        port_hit = port_hit | ((F.col("ip_proto") == pr) & (F.col("port") == po))
    for pr, _, _, _ in rules["ip_protocols"]:
        port_hit = port_hit | (F.col("ip_proto") == pr)
    candidate = (port_hit | F.col("name").isNotNull()
                 | F.col("dest").rlike(r"^(22[4-9]|23[0-9])\.|^[fF][fF]|^255\.255\.255\.255$")
                 | (F.col("score") >= st["periodic_score"])
                 | (F.col("n_score") >= st["periodic_score"])
                 | (F.col("keepalives") / F.col("sessions") >= st["keepalive_min_share"]))
    g = g.where(candidate)

    patterns = []
    for row in g.collect():
        r = row.asDict()
        # Choose between the group's own series and its name's series, as Rust does.
        own_p = (r["p_sessions"], r["period_s"], r["jitter"], r["score"]) \
            if r["period_s"] is not None else None
        name_p = (r["n_p_sessions"], r["n_period_s"], r["n_jitter"], r["n_score"]) \
            if r["n_period_s"] is not None else None
        if own_p and name_p and name_p[3] > own_p[3]:
            chosen, addresses = name_p, r["addresses"]
        elif own_p is None and name_p:
            chosen, addresses = name_p, r["addresses"]
        else:
            chosen, addresses = own_p, 1
        periodic = chosen if chosen and chosen[3] >= st["periodic_score"] else None
        gdest = group_destination(r["dest"])
        hit = by_port(rules, r["ip_proto"], r["port"]) or by_name(rules, r["name"])
        share = r["keepalives"] / max(r["sessions"], 1)
        if hit:
            kind = hit[0]
        elif gdest:
            kind = "discovery"
        elif periodic:
            kind = "beacon"
        elif share >= st["keepalive_min_share"]:
            kind = "keep-alive"
        else:
            continue
        if hit and gdest:
            reason = f"{hit[2]} to {gdest} {r['dest']}"
        elif hit:
            reason = hit[2]
        elif gdest:
            reason = f"{gdest} traffic to {r['dest']}"
        elif kind == "keep-alive":
            what = ("a long-lived connection" if r["sessions"] == 1
                    else f"{r['sessions']} long-lived connections")
            reason = f"{what} kept up by small spaced-out messages"
        else:
            reason = ""
        if periodic:
            text = periodic_text(periodic[0], periodic[1], periodic[2], addresses, r["name"])
            reason = text if not reason else f"{reason}; {text}"
        if periodic:
            score = periodic[3]
        elif kind == "keep-alive":
            score = st["keepalive_score"]
        else:
            score = st["catalogue_score"]
        patterns.append({
            "host": r["host"], "dest": r["dest"], "dest_addresses": 1, "name": r["name"],
            "ip_proto": r["ip_proto"], "port": r["port"],
            "service": hit[1] if hit else (r["service"] or ""), "kind": kind,
            "sessions": r["sessions"], "first_us": r["first_us"], "last_us": r["last_us"],
            "period_s": periodic[1] if periodic else None,
            "jitter": periodic[2] if periodic else None,
            "orig_bytes": r["orig_bytes"], "resp_bytes": r["resp_bytes"], "score": score,
            "reason": reason, "sensor_set": set(r["sensor_set"]),
            "merge": (r["host"], r["name"], r["port"], r["ip_proto"])
            if addresses > 1 and r["name"] else None,
        })
    patterns = merge_name_series(patterns)
    patterns = [p for p in patterns
                if p["score"] >= args.min_score and p["sessions"] >= args.min_count]
    patterns.sort(key=lambda p: (p["kind"] != "beacon", -p["score"], -p["sessions"],
                                 address_key(p["host"]), address_key(p["dest"]), p["port"]))
    fleet = fleet_rows(patterns, int(st["fleet_min_hosts"]))
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "hidden.csv")
    decimals = int(st["period_decimals"])
    with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HIDDEN_COLUMNS)
        for p in fleet + patterns:
            w.writerow(csv_row(p, decimals))
    os.replace(path + ".tmp", path)
    print(f"{path}: {len(fleet)} fleet rows, {len(patterns)} patterns")
    spark.stop()


def merge_name_series(patterns):
    """A series found by name over several addresses is one pattern (Rust's merge_into): the
    first member in (host, dest, port, protocol) order gives the verdict."""
    patterns.sort(key=lambda p: (address_key(p["host"]), address_key(p["dest"]), p["port"],
                                 p["ip_proto"]))
    out, merged = [], {}
    for p in patterns:
        key = p["merge"]
        if key is not None and key in merged:
            m = merged[key]
            m["dest_addresses"] += 1
            m["sessions"] += p["sessions"]
            m["first_us"] = min(m["first_us"], p["first_us"])
            m["last_us"] = max(m["last_us"], p["last_us"])
            m["orig_bytes"] += p["orig_bytes"]
            m["resp_bytes"] += p["resp_bytes"]
            m["sensor_set"] |= p["sensor_set"]
            continue
        if key is not None:
            merged[key] = p
        out.append(p)
    return out


def fleet_rows(patterns, min_hosts):
    """One row per destination (name, else address; port; protocol) that at least `min_hosts`
    hosts contact periodically."""
    by_dest = {}
    for p in patterns:
        if p["period_s"] is None:
            continue
        key = (p["name"] or p["dest"], p["ip_proto"], p["port"])
        by_dest.setdefault(key, []).append(p)
    rows = []
    for (dest_key, ip_proto, port), members in by_dest.items():
        hosts = sorted({m["host"] for m in members}, key=address_key)
        if len(hosts) < min_hosts:
            continue
        sensors = set().union(*(m["sensor_set"] for m in members))
        periods = sorted(m["period_s"] for m in members)
        jitters = sorted(m["jitter"] for m in members)
        scores = sorted(m["score"] for m in members)
        dests = sorted({m["dest"] for m in members}, key=address_key)
        period = periods[len(periods) // 2]
        first = members[0]
        rows.append({
            "host": " ".join(hosts), "dest": dests[0], "dest_addresses": len(dests),
            "name": first["name"], "ip_proto": ip_proto, "port": port,
            "service": first["service"], "kind": "fleet " + first["kind"],
            "sessions": sum(m["sessions"] for m in members),
            "first_us": min(m["first_us"] for m in members),
            "last_us": max(m["last_us"] for m in members),
            "period_s": period, "jitter": jitters[len(jitters) // 2],
            "orig_bytes": sum(m["orig_bytes"] for m in members),
            "resp_bytes": sum(m["resp_bytes"] for m in members),
            "score": scores[len(scores) // 2],
            "reason": (f"fleet: {len(hosts)} hosts on {len(sensors)} sensors contact {dest_key} "
                       f"periodically (median every {seconds_text(period)} s): "
                       + " ".join(hosts)),
            "sensor_set": sensors,
        })
    rows.sort(key=lambda r: (-len(r["host"].split()), -r["sessions"], r["dest"]))
    return rows


def timestamp_text(micros):
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    return f"{sign}{micros // 1_000_000}.{micros % 1_000_000:06d}"


def proto_name(ip_proto):
    return {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}.get(ip_proto, f"ip{ip_proto}")


def csv_row(p, decimals):
    return [
        p["host"], p["dest"], p["dest_addresses"], p["name"] or "", proto_name(p["ip_proto"]),
        p["port"], p["service"], p["kind"], p["sessions"], timestamp_text(p["first_us"]),
        timestamp_text(p["last_us"]),
        "" if p["period_s"] is None else f"{p['period_s']:.{decimals}f}",
        "" if p["jitter"] is None else f"{p['jitter']:.{decimals}f}",
        p["orig_bytes"], p["resp_bytes"], f"{p['score']:.2f}", "false", p["reason"],
        len(p["sensor_set"]),
    ]


if __name__ == "__main__":
    main(sys.argv[1:])
