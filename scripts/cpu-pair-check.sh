#!/usr/bin/env bash
# scripts/cpu-pair-check.sh [ROUNDS] [BIN [CAPTURE]]
#
# Does this machine give two busy threads the speed it gives one? Times a loop of integer
# arithmetic (no memory traffic, nothing shared) alone on CPU 0, then two copies at once on
# CPUs 0 and 1, and prints how much slower the pair ran. On a virtual machine whose two vCPUs
# share a core, or a host busy with other guests, the pair runs slower, and so does every
# program on two threads, whatever it does. With BIN, each round then also times
# `BIN analyze CAPTURE` (default: the 1 GiB benchmark capture) with 1 and 2 threads, and prints
# the wall-time ratio and how much more CPU time the two threads took than the one, and
# times two one-thread analyses at once (each pinned to a CPU, separate outputs) against one
# alone (pinned): the pair shares only the machine (memory, caches, disk, the host), so
# 2 x alone / pair is the most any two-thread design could gain over one thread there.
# Needs a C compiler (cc) and taskset; compare rounds side by side, never across machines.
set -euo pipefail
ROUNDS=${1:-5}
BIN=${2:-}
CAP=${3:-/tmp/bench/bench-1g.pcap}
WORK=$(mktemp -d /tmp/cpu-pair.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/spin.c" <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include <time.h>
int main(void) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  uint64_t x0 = 1, x1 = 2, x2 = 3, x3 = 4, x4 = 5, x5 = 6, x6 = 7, x7 = 8;
  for (uint64_t i = 0; i < 1000000000ULL; i++) {
    x0 += x1 ^ i; x1 += x2 ^ x0; x2 += x3 ^ i; x3 += x4 ^ x2;
    x4 += x5 ^ i; x5 += x6 ^ x4; x6 += x7 ^ i; x7 += x0 ^ x6;
    __asm__ volatile("" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x5), "+r"(x6), "+r"(x7));
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.3f %llu\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
         (unsigned long long)(x0 ^ x7));
  return 0;
}
EOF
cc -O2 -o "$WORK/spin" "$WORK/spin.c"
# One one-thread analysis pinned to CPU $1, its files in $2, its wall time in $3.
one_run() {
  /usr/bin/time -o "$3" -f "%e" taskset -c "$1" "$BIN" analyze "$CAP" --threads 1 \
    --no-progress --out "$2" > /dev/null 2>&1
}
for round in $(seq "$ROUNDS"); do
  alone=$(taskset -c 0 "$WORK/spin" | cut -d' ' -f1)
  pair=$( (taskset -c 0 "$WORK/spin" & taskset -c 1 "$WORK/spin"; wait) | cut -d' ' -f1 | sort -n | tail -1)
  line=$(awk -v a="$alone" -v p="$pair" 'BEGIN { printf "loop alone %.2f s, pair %.2f s (%.2fx)", a, p, p / a }')
  if [ -n "$BIN" ]; then
    # Untimed: on a VM the first run after seconds without touching memory pays the host for
    # the memory it took back (~0.1-0.3 s), and the loops above touch none.
    "$BIN" analyze "$CAP" --threads 1 --no-progress --no-content > /dev/null 2>&1
    for t in 1 2; do
      /usr/bin/time -o "$WORK/time$t" -f "%e %U %S" "$BIN" analyze "$CAP" --threads $t \
        --no-progress --out "$WORK/out$t" > /dev/null 2>&1
    done
    read -r w1 u1 s1 < "$WORK/time1"
    read -r w2 u2 s2 < "$WORK/time2"
    echo "$w1" >> "$WORK/all1"
    echo "$w2" >> "$WORK/all2"
    line="$line | $(awk -v w1="$w1" -v c1="$(echo "$u1 + $s1" | bc)" -v w2="$w2" \
      -v c2="$(echo "$u2 + $s2" | bc)" 'BEGIN { printf "1 thread %.2f s, 2 threads %.2f s: %.2fx; CPU %.2f / %.2f s (%.2fx)", w1, w2, w1 / w2, c1, c2, c2 / c1 }')"
    one_run 0 "$WORK/outa" "$WORK/alone"
    (one_run 0 "$WORK/outa" "$WORK/pa" & one_run 1 "$WORK/outb" "$WORK/pb"; wait)
    cat "$WORK/alone" >> "$WORK/all-alone"
    sort -n "$WORK/pa" "$WORK/pb" | tail -1 >> "$WORK/all-pair"
    line="$line | $(cat "$WORK/alone" "$WORK/pa" "$WORK/pb" | awk 'NR == 1 { a = $1 }
      NR > 1 && $1 > p { p = $1 }
      END { printf "1-thread runs: alone %.2f s, two at once %.2f s: ceiling %.2fx", a, p, 2 * a / p }')"
  fi
  echo "round $round: $line"
done
if [ -n "$BIN" ]; then
  # One round's figures swing with the machine's spells; medians over the rounds do less.
  median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }'; }
  awk -v w1="$(median "$WORK/all1")" -v w2="$(median "$WORK/all2")" \
    -v a="$(median "$WORK/all-alone")" -v p="$(median "$WORK/all-pair")" \
    'BEGIN { printf "medians: 1 thread %.2f s, 2 threads %.2f s: %.2fx; one-thread runs alone %.2f s, two at once %.2f s: ceiling %.2fx\n", w1, w2, w1 / w2, a, p, 2 * a / p }'
fi
