#!/usr/bin/env bash
# scripts/bench.sh [CAPTURE] [--peers a,b,...]
#
# Times the release binary of sessionscope (the full analysis with sessions.csv written, on one
# thread and on THREADS threads, default: the cores there are) on a benchmark capture beside
# tcpdump and rustfloor (and any other peers named) in the same run, with
# ../shared/bench/run-peers.sh, then prints wall time (min and median), MB/s, packets/s, max RSS
# and each tool's ratio to sessionscope on one thread. Makes the capture with ../shared/bench/make-capture.sh when it is missing (root).
# Compare ratios from one run, never absolute times from different runs or machines.
# Builds with FEATURES (default: jemalloc, which needs a C compiler and make; FEATURES= builds
# with the system allocator).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
KIT=${SESSIONSCOPE_BENCH_KIT:-$HERE/../shared/bench}
CAP=${1:-/tmp/bench/bench-1g.pcap}
PEERS=tcpdump,rustfloor
[ "${2:-}" = "--peers" ] && PEERS=${3:?}
[ -d "$KIT" ] || { echo "bench kit not found at $KIT" >&2; exit 2; }
if [ ! -f "$CAP" ]; then
  echo "[bench] making $CAP with make-capture.sh (needs root, takes a few minutes)"
  bash "$KIT/make-capture.sh" "$CAP"
fi
FEATURES=${FEATURES-jemalloc}
echo "[bench] building with features: ${FEATURES:-none}" >&2
cargo build --release ${FEATURES:+--features "$FEATURES"} --manifest-path "$HERE/Cargo.toml" >&2
BIN=$HERE/target/release/sessionscope
OUT=$(mktemp -d /tmp/sessionscope-bench.XXXXXX)
RES=$OUT/results
THREADS=${THREADS:-$(nproc)}
bash "$KIT/run-peers.sh" "$CAP" --only "$PEERS" --runs "${RUNS:-3}" --out "$RES" \
  --ours "$BIN analyze {} --threads 1 --no-progress --out $OUT/run > /dev/null"
# run-peers.sh knows one "ours": the threaded run is a second call with no other peer.
bash "$KIT/run-peers.sh" "$CAP" --only ours --runs "${RUNS:-3}" --out "$RES.threads" \
  --ours "$BIN analyze {} --threads $THREADS --no-progress --out $OUT/run > /dev/null"
# The runs' own output (~80 MB of sessions.csv and report) is not needed once timed.
rm -rf "$OUT/run"
sed 1d "$RES.threads/runs.tsv" | sed "s/^ours\t/ours-${THREADS}t\t/" >> "$RES/runs.tsv"
SIZE=$(stat -c %s "$CAP")
PKTS=$(capinfos -c -M "$CAP" | awk -F': *' '/Number of packets/ {gsub(/ /,"",$2); print $2}')
echo
echo "capture: $CAP  size: $SIZE bytes  packets: $PKTS"
# runs.tsv: one row per run; take each tool's minimum wall time and its max RSS.
python3 - "$RES/runs.tsv" "$SIZE" "$PKTS" <<'PY'
import csv, statistics, sys
path, size, pkts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(path), delimiter='\t'))
walls, rsss = {}, {}
for r in rows:
    name = r.get('peer') or r.get('tool') or r.get('name')
    if r.get('exit', r.get('rc', '0')) not in ('0', 0):
        continue
    walls.setdefault(name, []).append(float(r.get('wall_s') or r.get('wall') or 0))
    rsss[name] = max(rsss.get(name, 0), int(float(r.get('maxrss_kb') or r.get('max_rss_kb') or 0)))
ours = min(walls['ours']) if 'ours' in walls else None
print(f"{'tool':<12}{'min s':>8}{'median s':>10}{'MB/s':>8}{'Mpkt/s':>8}{'max RSS MB':>12}{'ours(1t)/tool':>15}")
for name in sorted(walls, key=lambda n: min(walls[n])):
    best, med = min(walls[name]), statistics.median(walls[name])
    ratio = f"{ours / best:.2f}" if ours else "-"
    print(f"{name:<12}{best:>8.2f}{med:>10.2f}{size / 1e6 / best:>8.1f}{pkts / 1e6 / best:>8.2f}"
          f"{rsss[name] / 1024:>12.0f}{ratio:>15}")
PY
echo "raw results: $RES"
