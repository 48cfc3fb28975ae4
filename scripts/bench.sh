#!/usr/bin/env bash
# scripts/bench.sh [CAPTURE] [--peers a,b,...]
#
# Times the release binary of sessionscope on a benchmark capture beside tcpdump (and any other
# peers named) in the same run, with ../shared/bench/run-peers.sh, then prints MB/s, packets/s
# and max RSS. Makes the capture with ../shared/bench/make-capture.sh when it is missing (root).
# Compare ratios from one run, never absolute times from different runs or machines.
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
cargo build --release --manifest-path "$HERE/Cargo.toml" >&2
BIN=$HERE/target/release/sessionscope
OUT=$(mktemp -d /tmp/sessionscope-bench.XXXXXX)
RES=$OUT/results
bash "$KIT/run-peers.sh" "$CAP" --only "$PEERS" --runs "${RUNS:-3}" --out "$RES" \
  --ours "$BIN analyze {} --no-progress --out $OUT/run > /dev/null"
SIZE=$(stat -c %s "$CAP")
PKTS=$(capinfos -c -M "$CAP" | awk -F': *' '/Number of packets/ {gsub(/ /,"",$2); print $2}')
echo
echo "capture: $CAP  size: $SIZE bytes  packets: $PKTS"
# runs.tsv: one row per run; take each tool's minimum wall time and its max RSS.
python3 - "$RES/runs.tsv" "$SIZE" "$PKTS" <<'PY'
import csv, sys
path, size, pkts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(path), delimiter='\t'))
best = {}
for r in rows:
    name = r.get('peer') or r.get('tool') or r.get('name')
    wall = float(r.get('wall_s') or r.get('wall') or 0)
    rss = int(float(r.get('maxrss_kb') or r.get('max_rss_kb') or 0))
    if r.get('exit', r.get('rc', '0')) not in ('0', 0):
        continue
    b = best.setdefault(name, [wall, rss])
    b[0] = min(b[0], wall); b[1] = max(b[1], rss)
ours = best.get('ours')
print(f"{'tool':<12}{'wall s':>9}{'MB/s':>9}{'Mpkt/s':>9}{'max RSS MB':>12}{'vs ours':>9}")
for name, (wall, rss) in sorted(best.items(), key=lambda kv: kv[1][0]):
    ratio = f"{wall / ours[0]:.2f}x" if ours and ours[0] else "-"
    print(f"{name:<12}{wall:>9.2f}{size / 1e6 / wall:>9.1f}{pkts / 1e6 / wall:>9.2f}{rss / 1024:>12.0f}{ratio:>9}")
PY
echo "raw results: $RES"
