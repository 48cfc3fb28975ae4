#!/usr/bin/env bash
# scripts/ab-rounds.sh ROUNDS THREADS CAPTURE BIN_A BIN_B [BIN...]
#
# Times two (or more) builds of sessionscope side by side: in each round every binary analyses
# CAPTURE once (`analyze CAPTURE --threads THREADS --out DIR`), in turn, so all of them meet the
# same spells of a noisy machine. Prints each binary's wall and CPU (user + sys) seconds per
# round, in round order. Compare the binaries round by round and by their medians; this is how
# docs/performance.md's "A -> B" figures are measured. Outputs go to /tmp/ab-rounds-NAME (the
# binary's file name), so they can be compared with cmp afterwards.
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,9p "$0" >&2; exit 2; }
ROUNDS=$1; THREADS=$2; CAPTURE=$3; shift 3
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    name=$(basename "$bin")
    /usr/bin/time -f "$name %e %U %S" -o "$LOG" -a "$bin" analyze "$CAPTURE" \
      --threads "$THREADS" --no-progress --out "/tmp/ab-rounds-$name" > /dev/null
  done
done
awk '{wall[$1] = wall[$1] " " $2; cpu[$1] = cpu[$1] " " ($3 + $4)}
     END {for (b in wall) print b, "wall:" wall[b], " cpu:" cpu[b]}' "$LOG"
