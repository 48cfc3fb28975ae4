#!/usr/bin/env bash
# Makes the labelled hidden-sessions scenario: person-like and technology activity from real
# processes in a client network namespace, talking to servers in a second namespace over a veth
# pair, recorded with tcpdump. The roles are in scripts/hidden-scenario.py; each records every
# session it starts, which gives the labels (never sessionscope).
#
# Run as root: `sudo scripts/make-hidden-scenario.sh [OUTDIR] [DURATION_S]` (default
# sample-captures/, 180 s per variant). Two variants are recorded one after the other:
#   hidden-scenario.pcap          every role from its own client address (192.0.2.11...)
#   hidden-scenario-one-host.pcap every role behind one client address (192.0.2.1)
# each with its .labels.csv (proto,orig_h,orig_p,resp_h,resp_p,start,label,process,period_s;
# orig_p `*` stands for any port: the resolver's upstream queries, whose source ports dnsmasq
# picks at random).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../sample-captures}")
DURATION=${2:-180}
CLI=hs-cli
SRV=hs-srv
PY=/usr/bin/python3
SCENARIO=$HERE/hidden-scenario.py
WORK=$(mktemp -d /tmp/hidden-scenario.XXXXXX)
SERVER_ADDRS=(192.0.2.2 192.0.2.80 192.0.2.81 192.0.2.82 192.0.2.90 192.0.2.91 192.0.2.92
    192.0.2.93 192.0.2.94)
ROLES=(browser typing download chat beacon update ntp keepalive announce)

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }

install_tools() {
    local missing=()
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    [[ -x $PY ]] || missing+=(python3)
    command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
    command -v ethtool >/dev/null || missing+=(ethtool)
    command -v ip >/dev/null || missing+=(iproute2)
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

cleanup() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
}

setup_network() { # setup_network CLIENT-ADDRESS...
    ip netns add "$CLI"
    ip netns add "$SRV"
    local ns addr
    for ns in "$CLI" "$SRV"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add name cli0 address 02:00:00:00:00:01 netns "$CLI" type veth \
        peer name srv0 address 02:00:00:00:00:02 netns "$SRV"
    for addr in "$@"; do
        ip -n "$CLI" addr add "$addr/24" dev cli0
        ip -n "$SRV" neigh add "$addr" lladdr 02:00:00:00:00:01 dev srv0 nud permanent
    done
    for addr in "${SERVER_ADDRS[@]}"; do
        ip -n "$SRV" addr add "$addr/24" dev srv0
        ip -n "$CLI" neigh add "$addr" lladdr 02:00:00:00:00:02 dev cli0 nud permanent
    done
    ip netns exec "$CLI" ethtool -K cli0 tso off gso off gro off tx off rx off >/dev/null
    ip netns exec "$SRV" ethtool -K srv0 tso off gso off gro off tx off rx off >/dev/null
    ip -n "$CLI" link set cli0 up
    ip -n "$SRV" link set srv0 up
    # Multicast and broadcast leave through cli0.
    ip -n "$CLI" route add 224.0.0.0/4 dev cli0
    ip -n "$CLI" route add default via 192.0.2.2 dev cli0
    sleep 1
}

start_resolvers() { # start_resolvers RESOLVER-SOURCE-ADDRESS
    # Upstream: answers every name of the scenario with a 4 s TTL, so caches expire often.
    ip netns exec "$SRV" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
        --listen-address=192.0.2.2 --port=53 --user=root --pid-file="$WORK/up.pid" \
        --local-ttl=4 --address=/www.example.test/192.0.2.80 \
        --address=/news.example.test/192.0.2.80 --address=/shop.example.test/192.0.2.80 \
        --address=/cdn.example.test/192.0.2.80 --address=/files.example.test/192.0.2.81 \
        --address=/chat.example.test/192.0.2.82 --address=/update.example.test/192.0.2.91 \
        >/dev/null 2>&1 &
    # The client's caching resolver on 127.0.0.1, forwarding from RESOLVER-SOURCE-ADDRESS.
    ip netns exec "$CLI" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
        --listen-address=127.0.0.1 --port=53 --user=root --pid-file="$WORK/cache.pid" \
        --cache-size=100 --server="192.0.2.2@$1" >/dev/null 2>&1 &
    sleep 1
}

record() { # record NAME ONE-HOST(0|1)
    local name=$1 one_host=$2 labels="$WORK/$1.labels" i role src resolver_src
    local addrs=(192.0.2.1)
    if ((one_host == 0)); then
        for i in "${!ROLES[@]}"; do addrs+=("192.0.2.$((11 + i))"); done
    fi
    echo "$name: ${#ROLES[@]} roles for ${DURATION}s ($([[ $one_host == 1 ]] && echo one client address || echo one address per role))"
    setup_network "${addrs[@]}"
    resolver_src=192.0.2.1
    start_resolvers "$resolver_src"
    ip netns exec "$SRV" "$PY" "$SCENARIO" server &
    local server_pid=$!
    sleep 1
    ip netns exec "$CLI" tcpdump -s 200 -U --immediate-mode -i cli0 -w "$OUT/$name.pcap" \
        2>"$WORK/tcpdump.log" &
    local capture_pid=$!
    sleep 2
    : >"$labels"
    local pids=()
    for i in "${!ROLES[@]}"; do
        role=${ROLES[$i]}
        src=192.0.2.1
        ((one_host == 0)) && src="192.0.2.$((11 + i))"
        ip netns exec "$CLI" "$PY" "$SCENARIO" "$role" "$src" "$((i + 1))" "$DURATION" \
            "$labels" &
        pids+=($!)
    done
    wait "${pids[@]}"
    sleep 2
    kill -TERM "$capture_pid"
    wait "$capture_pid" || true
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    kill "$(cat "$WORK/up.pid")" "$(cat "$WORK/cache.pid")" 2>/dev/null || true
    sleep 1
    {
        echo "proto,orig_h,orig_p,resp_h,resp_p,start,label,process,period_s"
        echo "udp,$resolver_src,*,192.0.2.2,53,,technology,resolver,"
        sort -t, -k6,6 "$labels"
    } >"$OUT/$name.labels.csv"
    ip netns del "$CLI"
    ip netns del "$SRV"
    chmod 644 "$OUT/$name.pcap" "$OUT/$name.labels.csv"
    echo "  $name.pcap: $(wc -c <"$OUT/$name.pcap") bytes, $(($(wc -l <"$OUT/$name.labels.csv") - 1)) labels"
}

main() {
    install_tools
    trap cleanup EXIT
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    mkdir -p "$OUT"
    record hidden-scenario 0
    record hidden-scenario-one-host 1
}

main
