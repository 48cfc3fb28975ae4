#!/usr/bin/env bash
# scripts/stage-costs.sh [ROUNDS] [BIN [CAPTURE [THREADS]]]
#
# Where does the time go? Runs `BIN analyze CAPTURE` in three ways that the command line offers,
# each adding one stage to the one before, interleaved for ROUNDS rounds (default 5), after one
# unmeasured warm-up run of each:
#   tracking   --no-content, no --out: read, decode, sessions, TCP accounting, summary, hidden
#   +content   no --out: the same, plus reading the sessions' bytes to name their service
#   +output    --out DIR: the same, plus sessions.csv, hidden.csv and report.html
# and prints each way's median wall and CPU (user + sys) seconds and what each stage added.
# Defaults: the release binary, the 1 GiB benchmark capture, one thread. Compare with the floor
# (`../shared/bench/rustfloor`), which does about what the first way does without the sessions.
# The warm-up matters on a virtual machine: a run after a few idle seconds can spend ~0.3 s more
# in the kernel faulting in memory that the host took back (docs/performance.md, "tenth session").
set -euo pipefail
ROUNDS=${1:-5}
BIN=${2:-target/release/sessionscope}
CAP=${3:-/tmp/bench/bench-1g.pcap}
THREADS=${4:-1}
[ -x "$BIN" ] || { echo "stage-costs: no binary at $BIN (cargo build --release)" >&2; exit 2; }
[ -r "$CAP" ] || { echo "stage-costs: no capture at $CAP" >&2; exit 2; }
WORK=$(mktemp -d /tmp/stage-costs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
run() { # NAME ARGS...: one timed run, appended to the log
  local name=$1
  shift
  /usr/bin/time -f "$name %e %U %S" -o "$WORK/log" -a "$BIN" analyze "$CAP" \
    --threads "$THREADS" --no-progress "$@" > /dev/null
}
ways() {
  run tracking --no-content
  run content
  run output --out "$WORK/out"
}
ways
: > "$WORK/log"
for _ in $(seq "$ROUNDS"); do ways; done
awk -v threads="$THREADS" '
  { wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " ($3 + $4) }
  function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  END {
    printf "threads %s; medians of %d rounds\n", threads, split(wall["tracking"], x, " ")
    printf "%-10s %8s %8s %12s\n", "way", "wall s", "cpu s", "stage adds"
    split("tracking content output", order, " ")
    prev = 0
    for (i = 1; i <= 3; i++) {
      w = median(wall[order[i]]); c = median(cpu[order[i]])
      printf "%-10s %8.2f %8.2f %+11.2f s\n", order[i], w, c, (i == 1 ? w : w - prev)
      prev = w
    }
  }' "$WORK/log"
