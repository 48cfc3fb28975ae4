#!/usr/bin/env bash
# Remakes the small test captures in sample-captures/ from real programs (curl, python3's
# http.server, python3 sockets, dig + dnsmasq, ping) talking between two network namespaces joined
# by a veth pair, recorded with tcpdump (and dumpcap for the pcapng file).
#
# Run as root: `sudo scripts/make-sample-captures.sh [OUTDIR]` (default: sample-captures/).
# Everything stays inside the two namespaces it creates (ss-cli, ss-srv) and removes at exit.
# Addresses are from the documentation ranges (192.0.2.0/24, 2001:db8::/64): client .1 / ::1,
# server .2 / ::2, fixed MACs, static neighbours (no ARP/NDP), offloads off (real segment sizes
# and checksums). Client ports are fixed so the expected sessions in sample-captures/README.md
# hold for a remade capture too; timestamps, ISNs and IP ids change from run to run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../sample-captures}")
CLI=ss-cli
SRV=ss-srv
CLI4=192.0.2.1
SRV4=192.0.2.2
CLI6=2001:db8::1
SRV6=2001:db8::2
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/sample-captures.XXXXXX)
# Capture filter: drops only the kernel's own IPv6 multicast chatter (MLD reports) that an
# interface sends when it comes up; none of the traffic we make is multicast.
FILTER='not ip6 multicast'

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }

install_tools() {
    local missing=()
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v dumpcap >/dev/null || missing+=(tshark)
    [[ -x $PY ]] || missing+=(python3)
    command -v curl >/dev/null || missing+=(curl)
    command -v dig >/dev/null || missing+=(dnsutils)
    command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v ethtool >/dev/null || missing+=(ethtool)
    command -v nft >/dev/null || missing+=(nftables)
    command -v ip >/dev/null || missing+=(iproute2)
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

cleanup() {
    # Background servers run inside the namespaces; deleting a namespace does not kill them.
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
}

in_cli() { ip netns exec "$CLI" "$@"; }
in_srv() { ip netns exec "$SRV" "$@"; }

setup_network() {
    ip netns add "$CLI"
    ip netns add "$SRV"
    local ns
    for ns in "$CLI" "$SRV"; do
        # No router solicitations, DAD or link-local addresses: the wire carries only our traffic.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 \
            net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.default.addr_gen_mode=1
        ip -n "$ns" link set lo up
    done
    ip link add name cli0 address 02:00:00:00:00:01 netns "$CLI" type veth \
        peer name srv0 address 02:00:00:00:00:02 netns "$SRV"
    ip -n "$CLI" addr add "$CLI4/24" dev cli0
    ip -n "$CLI" addr add "$CLI6/64" dev cli0 nodad
    ip -n "$SRV" addr add "$SRV4/24" dev srv0
    ip -n "$SRV" addr add "$SRV6/64" dev srv0 nodad
    ip -n "$CLI" neigh add "$SRV4" lladdr 02:00:00:00:00:02 dev cli0 nud permanent
    ip -n "$CLI" neigh add "$SRV6" lladdr 02:00:00:00:00:02 dev cli0 nud permanent
    ip -n "$SRV" neigh add "$CLI4" lladdr 02:00:00:00:00:01 dev srv0 nud permanent
    ip -n "$SRV" neigh add "$CLI6" lladdr 02:00:00:00:00:01 dev srv0 nud permanent
    in_cli ethtool -K cli0 tso off gso off gro off tx off rx off >/dev/null
    in_srv ethtool -K srv0 tso off gso off gro off tx off rx off >/dev/null
    ip -n "$CLI" link set cli0 up
    ip -n "$SRV" link set srv0 up
    # The half-open capture needs a port whose SYNs vanish: the server's firewall drops them.
    in_srv nft -f - <<'NFT'
table inet samples {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 8099 drop
    }
}
NFT
    # Let the interfaces' start-up MLD reports pass before any capture starts.
    sleep 3
}

# The socket peers: small enough to read, every byte they send is fixed.
write_peer() {
    cat >"$WORK/peer.py" <<'PY'
"""Socket peers for the sample captures: every byte sent and every close is deliberate."""
import socket
import struct
import sys
import time

PAUSE = 0.2  # lets each step's ACKs reach the wire before the next step


def linger_zero(sock):
    """close() will then abort with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def drain(sock):
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


def server(port, mode, count):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(8)
    for _ in range(count):
        conn, _ = listener.accept()
        recv_exact(conn, 5)  # b"ping\n"
        time.sleep(PAUSE)
        if mode == "reply-then-drain":  # answer, then wait for the client to end it
            conn.sendall(b"pong\n")
            drain(conn)
        elif mode == "reset":  # abort without answering
            linger_zero(conn)
        elif mode == "reply-then-close":  # answer, then close first
            conn.sendall(b"pong\n")
            time.sleep(PAUSE)
            conn.shutdown(socket.SHUT_WR)
            drain(conn)
        conn.close()


def client(dst, port, sport, mode):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", sport))
    if mode == "refused":
        try:
            sock.connect((dst, port))
            sys.exit("expected a refusal")
        except ConnectionRefusedError:
            return
    if mode == "unanswered":
        # Gives up after 2.5 s: the kernel's SYN retransmissions come 1 s apart on Linux >= 6.5
        # (tcp_syn_linear_timeouts), so SYNs at 0, 1 and 2 s; older kernels back off (0, 1, 3 s).
        sock.settimeout(2.5)
        try:
            sock.connect((dst, port))
            sys.exit("expected no answer")
        except (socket.timeout, TimeoutError):
            sock.close()
            return
    sock.connect((dst, port))
    time.sleep(PAUSE)
    sock.sendall(b"ping\n")
    if mode == "abort":  # read the answer, then abort with a RST
        recv_exact(sock, 5)
        time.sleep(PAUSE)
        linger_zero(sock)
        sock.close()
    elif mode == "until-reset":  # the server resets
        drain(sock)
        sock.close()
    elif mode == "until-close":  # read the answer and the server's FIN, then close
        recv_exact(sock, 5)
        drain(sock)
        time.sleep(PAUSE)
        sock.close()


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "server":
        server(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
PY
}


# start_capture FILE TOOL-ARGS...: records cli0 in the client namespace into $OUT/FILE.
start_capture() {
    local file=$1
    shift
    # Started with ip netns exec directly (no function, no subshell) so that $! is the capture
    # tool itself: ip execs it, and a TERM reaches it (background jobs ignore INT).
    ip netns exec "$CLI" "$@" -i cli0 -w "$OUT/$file" "$FILTER" 2>"$WORK/capture.log" &
    CAPTURE_PID=$!
    # Wait until the capture tool is listening.
    for _ in $(seq 50); do
        grep -q -i "listening\|capturing" "$WORK/capture.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
}

stop_capture() {
    sleep 1
    kill -TERM "$CAPTURE_PID"
    wait "$CAPTURE_PID" || true
    echo "  $(basename "$1"): $(wc -c <"$OUT/$1") bytes"
}

# --immediate-mode: packets reach the file as they come, so none is left in the ring at stop.
tcpdump_capture() { start_capture "$1" tcpdump -s 0 -U --immediate-mode; }

wait_listening() { # wait_listening PORT [udp]
    local flag=-ltn
    [[ ${2:-} == udp ]] && flag=-lun
    for _ in $(seq 50); do
        in_srv ss "$flag" | grep -q ":$1 " && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

make_web_root() {
    mkdir -p "$WORK/www"
    # Bodies of fixed sizes, so response sizes follow from the files served.
    head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/a.txt"
    head -c 1000 /dev/zero | tr '\0' 'b' >"$WORK/www/b.txt"
    head -c 4000 /dev/zero | tr '\0' 'c' >"$WORK/www/c.txt"
}

start_web_server() {
    (cd "$WORK/www" && exec ip netns exec "$SRV" "$PY" -m http.server 8080 --bind "$SRV4" \
        --protocol HTTP/1.1) \
        >/dev/null 2>&1 &
    WEB_PID=$!
    wait_listening 8080
}

stop_bg() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

capture_http() {
    echo "tcp-handshake-close.pcap: three HTTP/1.1 GETs, one per connection (curl -> python3 http.server)"
    tcpdump_capture tcp-handshake-close.pcap
    local port path port_path
    for port_path in 41001:/a.txt 41002:/b.txt 41003:/c.txt; do
        port=${port_path%%:*}
        path=${port_path#*:}
        in_cli curl -sS -o /dev/null --local-port "$port" "http://$SRV4:8080$path"
        sleep 0.5
    done
    stop_capture tcp-handshake-close.pcap
}

capture_refused() {
    echo "tcp-refused.pcap: two connects to a closed port"
    tcpdump_capture tcp-refused.pcap
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8090 41301 refused
    sleep 0.5
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8090 41302 refused
    stop_capture tcp-refused.pcap
}

capture_reset() {
    echo "tcp-reset.pcap: a client that aborts (RST) and a server that aborts (RST)"
    ip netns exec "$SRV" "$PY" "$WORK/peer.py" server 8081 reply-then-drain 1 &
    local server1=$!
    ip netns exec "$SRV" "$PY" "$WORK/peer.py" server 8082 reset 1 &
    local server2=$!
    wait_listening 8081
    wait_listening 8082
    tcpdump_capture tcp-reset.pcap
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8081 41101 abort
    sleep 0.5
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8082 41102 until-reset
    stop_capture tcp-reset.pcap
    stop_bg "$server1"
    stop_bg "$server2"
}

capture_half_open() {
    echo "tcp-half-open.pcap: SYNs the server's firewall drops"
    tcpdump_capture tcp-half-open.pcap
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8099 41401 unanswered
    stop_capture tcp-half-open.pcap
}

capture_port_reuse() {
    echo "tcp-port-reuse.pcap: the same client port, twice, to the same server port"
    ip netns exec "$SRV" "$PY" "$WORK/peer.py" server 8083 reply-then-close 2 &
    local server=$!
    wait_listening 8083
    tcpdump_capture tcp-port-reuse.pcap
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8083 41201 until-close
    sleep 1
    in_cli "$PY" "$WORK/peer.py" client "$SRV4" 8083 41201 until-close
    stop_capture tcp-port-reuse.pcap
    stop_bg "$server"
}

start_dns_server() {
    ip netns exec "$SRV" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
        --listen-address="$SRV4" --port=53 --user=root --pid-file="$WORK/dnsmasq.pid" \
        --address=/example.test/192.0.2.80 --address=/example.test/2001:db8::80 \
        >/dev/null 2>&1 &
    DNS_PID=$!
    wait_listening 53 udp
}

dig_query() { # dig_query SOURCE-PORT TYPE
    in_cli dig "@$SRV4" -b "$CLI4#$1" +noedns +nocookie +tries=1 +time=2 +short \
        www.example.test "$2" >/dev/null
}

capture_dns() {
    echo "udp-dns.pcap: two DNS queries (dig -> dnsmasq) and a datagram to a closed port"
    start_dns_server
    tcpdump_capture udp-dns.pcap
    dig_query 53001 A
    sleep 0.5
    dig_query 53002 AAAA
    sleep 0.5
    # 6 bytes to a port nobody listens on: the server answers ICMP port unreachable.
    in_cli "$PY" -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
s.bind(('$CLI4', 53003)); s.sendto(b'hello\n', ('$SRV4', 9999))"
    stop_capture udp-dns.pcap
    stop_bg "$DNS_PID"
}

capture_ping() {
    echo "icmp-ping.pcap: ping -c 3, IPv4 then IPv6"
    tcpdump_capture icmp-ping.pcap
    in_cli ping -n -q -c 3 -i 0.2 "$SRV4" >/dev/null
    sleep 0.5
    in_cli ping -n -q -6 -c 3 -i 0.2 "$SRV6" >/dev/null
    stop_capture icmp-ping.pcap
}

capture_snaplen_nano() {
    echo "http-snaplen96-nano.pcap: one GET of 4000 bytes, 96-byte snaplen, nanosecond pcap"
    start_capture http-snaplen96-nano.pcap tcpdump -s 96 -U --immediate-mode \
        --time-stamp-precision=nano
    in_cli curl -sS -o /dev/null --local-port 41501 "http://$SRV4:8080/c.txt"
    stop_capture http-snaplen96-nano.pcap
}

capture_mixed_pcapng() {
    echo "mixed-snaplen.pcapng: GET, DNS query and ping, 96-byte snaplen, pcapng (dumpcap)"
    start_dns_server
    start_capture mixed-snaplen.pcapng dumpcap -q -s 96
    in_cli curl -sS -o /dev/null --local-port 41601 "http://$SRV4:8080/b.txt"
    sleep 0.5
    dig_query 53601 A
    sleep 0.5
    in_cli ping -n -q -c 2 -i 0.2 "$SRV4" >/dev/null
    stop_capture mixed-snaplen.pcapng
    stop_bg "$DNS_PID"
}

main() {
    install_tools
    trap cleanup EXIT
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    mkdir -p "$OUT"
    setup_network
    write_peer
    make_web_root
    start_web_server
    capture_http
    capture_refused
    capture_reset
    capture_half_open
    capture_port_reuse
    capture_dns
    capture_ping
    capture_snaplen_nano
    capture_mixed_pcapng
    stop_bg "$WEB_PID"
    chmod 644 "$OUT"/*.pcap "$OUT"/*.pcapng
}

main
