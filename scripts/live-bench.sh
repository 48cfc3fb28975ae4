#!/usr/bin/env bash
# Packet rate `sessionscope live` sustains on loopback without kernel drops, and its memory.
# Replays CAPTURE with tcpreplay onto `lo` of a fresh network namespace at each rate (packets
# per second), captures it with the release binary, and prints packets analysed, kernel drops
# and peak RSS per rate. Needs root, tcpreplay, and `cargo build --release --features live`.
# Usage: scripts/live-bench.sh CAPTURE [PACKETS] [RATE...]   (default 200000 packets; RATE
# `top` replays as fast as tcpreplay can; LIVE_ARGS adds options, e.g. '--buffer-size 64MB')
set -euo pipefail
capture=${1:?usage: live-bench.sh CAPTURE [PACKETS] [RATE...]}
packets=${2:-200000}
shift $(( $# >= 2 ? 2 : $# ))
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(50000 100000 200000 400000)
bin="$(cd "$(dirname "$0")/.." && pwd)/target/release/sessionscope"
[ -x "$bin" ] || { echo "build first: cargo build --release --features live" >&2; exit 1; }
ns="sslive-bench-$$"
work=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

printf '%-10s %-12s %-8s %-10s %-12s %-8s %-8s %-6s\n' "pps asked" "pps sent" "failed" "analysed" "kernel drop" "RSS MB" "sessions" "CPU s"
for rate in "${rates[@]}"; do
  out="$work/out-$rate"
  ip netns exec "$ns" "$bin" live -i lo --out "$out" --status-interval 0 ${LIVE_ARGS:-} \
    >"$work/stdout" 2>"$work/stderr" &
  pid=$!
  for _ in $(seq 100); do grep -q "capturing on" "$work/stderr" 2>/dev/null && break; sleep 0.1; done
  speed=(--pps="$rate"); [ "$rate" = top ] && speed=(--topspeed)
  ip netns exec "$ns" tcpreplay -i lo "${speed[@]}" --limit="$packets" "$capture" >"$work/replay" 2>&1 || true
  sent=$(awk '/Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /pps/) print $(i-1)}' "$work/replay" | head -1)
  failed=$(awk '/Failed packets:/ {print $3}' "$work/replay")
  sleep 1
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
  kill -INT "$pid"
  wait "$pid" || true
  analysed=$(awk '/^  Read / {print $2}' "$work/stdout")
  drops=$(awk '/^Kernel:/ {print $5 "+" $10}' "$work/stdout")
  rows=$(awk '/^Sessions written:/ {print $3}' "$work/stdout")
  printf '%-10s %-12s %-8s %-10s %-12s %-8s %-8s %-6s\n' "$rate" "$sent" "$failed" "$analysed" "$drops" "$rss" "$rows" "$cpu"
done
