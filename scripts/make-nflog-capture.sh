#!/usr/bin/env bash
# Remakes sample-captures/nflog.pcap: Linux netfilter's log (link type NFLOG, 239) recorded by
# tcpdump from `tcpdump -i nflog:5`, in a network namespace of its own whose nftables output
# hook logs to group 5:
#   - three UDP datagrams from one IPv4 socket to 127.0.0.1:9999 ("hello 0".."hello 2");
#   - one UDP datagram from an IPv6 socket to [::1]:9999 ("v6");
#   - a TCP connection to a python3 server on 127.0.0.1:8080 that reads "ping" and answers
#     "pong", then both close (the output hook sees both directions on loopback).
# Run as root: `sudo scripts/make-nflog-capture.sh [OUTDIR]` (default: sample-captures/).
# The expected values are in sample-captures/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../sample-captures}")
NS=nflog-cap
PY=/usr/bin/python3

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }
missing=()
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v nft >/dev/null || missing+=(nftables)
command -v ip >/dev/null || missing+=(iproute2)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cleanup() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns nft -f - <<'EOF'
table inet log_for_capture {
    chain out {
        type filter hook output priority 0;
        udp dport 9999 log group 5
        tcp dport 8080 log group 5
        tcp sport 8080 log group 5
    }
}
EOF

mkdir -p "$OUT"
in_ns tcpdump -i nflog:5 -U -w "$OUT/nflog.pcap" 2>/dev/null &
# tcpdump binds the log group a moment after it starts.
sleep 2
in_ns "$PY" - <<'EOF'
import socket, threading

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 8080))
server.listen(1)

def serve():
    conn, _ = server.accept()
    if conn.recv(16) == b"ping":
        conn.sendall(b"pong")
    conn.close()

t = threading.Thread(target=serve)
t.start()

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3):
    udp.sendto(b"hello %d" % i, ("127.0.0.1", 9999))
udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp6.sendto(b"v6", ("::1", 9999))

client = socket.create_connection(("127.0.0.1", 8080))
client.sendall(b"ping")
assert client.recv(16) == b"pong"
client.close()
t.join()
EOF
sleep 2
kill %1
wait 2>/dev/null || true
tcpdump -r "$OUT/nflog.pcap" -n 2>/dev/null
