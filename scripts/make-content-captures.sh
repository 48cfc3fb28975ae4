#!/usr/bin/env bash
# Remakes the content-classification captures in sample-captures/ (content-*.pcap) from real
# clients and servers talking between two network namespaces joined by a veth pair, recorded
# with tcpdump: openssl s_client -> s_server (TLS on 8443), curl -> python3 http.server (HTTP),
# ssh -> sshd on port 443 (SSH on a TLS port), dig -> dnsmasq (DNS over UDP and TCP),
# smtplib -> python3's smtpd (SMTP), curl -> pyftpdlib (FTP on 2121), aioquic client -> aioquic
# server (QUIC v1 with SNI).
#
# Run as root: `sudo scripts/make-content-captures.sh [OUTDIR]` (default: sample-captures/).
# Network layout as in make-sample-captures.sh: client 192.0.2.1, server 192.0.2.2, fixed MACs,
# static neighbours, offloads off. The expected values are in sample-captures/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../sample-captures}")
CLI=cc-cli
SRV=cc-srv
CLI4=192.0.2.1
SRV4=192.0.2.2
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/content-captures.XXXXXX)
PYLIB=$WORK/pylib

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }

install_tools() {
    local missing=()
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v dig >/dev/null || missing+=(dnsutils)
    command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
    command -v ethtool >/dev/null || missing+=(ethtool)
    command -v ip >/dev/null || missing+=(iproute2)
    [[ -x $PY ]] || missing+=(python3)
    $PY -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Servers and clients from PyPI, kept in the work directory only.
    $PY -m pip install -q --break-system-packages --target "$PYLIB" pyftpdlib==2.2.0 \
        aioquic==1.7.2 2>/dev/null ||
        $PY -m pip install -q --target "$PYLIB" pyftpdlib==2.2.0 aioquic==1.7.2
}

cleanup() {
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
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add name cli0 address 02:00:00:00:00:01 netns "$CLI" type veth \
        peer name srv0 address 02:00:00:00:00:02 netns "$SRV"
    ip -n "$CLI" addr add "$CLI4/24" dev cli0
    ip -n "$SRV" addr add "$SRV4/24" dev srv0
    ip -n "$CLI" neigh add "$SRV4" lladdr 02:00:00:00:00:02 dev cli0 nud permanent
    ip -n "$SRV" neigh add "$CLI4" lladdr 02:00:00:00:00:01 dev srv0 nud permanent
    in_cli ethtool -K cli0 tso off gso off gro off tx off rx off >/dev/null
    in_srv ethtool -K srv0 tso off gso off gro off tx off rx off >/dev/null
    ip -n "$CLI" link set cli0 up
    ip -n "$SRV" link set srv0 up
    sleep 1
}

start_capture() { # start_capture FILE
    ip netns exec "$CLI" tcpdump -s 0 -U --immediate-mode -i cli0 -w "$OUT/$1" ip \
        2>"$WORK/capture.log" &
    CAPTURE_PID=$!
    for _ in $(seq 50); do
        grep -q "listening" "$WORK/capture.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
}

stop_capture() {
    sleep 1
    kill -TERM "$CAPTURE_PID"
    wait "$CAPTURE_PID" || true
    chmod 644 "$OUT/$1"
    echo "  $1: $(wc -c <"$OUT/$1") bytes"
}

wait_listening() { # wait_listening PORT [udp]
    local flag=-ltn
    [[ ${2:-} == udp ]] && flag=-lun
    for _ in $(seq 100); do
        in_srv ss "$flag" | grep -q ":$1 " && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

stop_bg() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=example.test \
        -addext subjectAltName=DNS:example.test 2>/dev/null
}

capture_tls() {
    echo "content-tls.pcap: openssl s_client -servername example.test -alpn h2,http/1.1 -> s_server :8443"
    in_srv openssl s_server -accept 8443 -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
        -alpn h2 -www -quiet >/dev/null 2>&1 &
    local server=$!
    wait_listening 8443
    start_capture content-tls.pcap
    printf 'GET / HTTP/1.0\r\n\r\n' | in_cli timeout 5 openssl s_client -connect "$SRV4:8443" \
        -servername example.test -alpn h2,http/1.1 -quiet >/dev/null 2>&1 || true
    stop_capture content-tls.pcap
    stop_bg "$server"
}

capture_http() {
    echo "content-http.pcap: curl -A 'sessionscope-test/1.0' http://www.example.test:8080/a.txt -> python3 http.server"
    mkdir -p "$WORK/www"
    head -c 100 /dev/zero | tr '\0' 'a' >"$WORK/www/a.txt"
    (cd "$WORK/www" && exec ip netns exec "$SRV" "$PY" -m http.server 8080 --bind "$SRV4") \
        >/dev/null 2>&1 &
    local server=$!
    wait_listening 8080
    start_capture content-http.pcap
    in_cli curl -s -o /dev/null -A 'sessionscope-test/1.0' \
        --resolve "www.example.test:8080:$SRV4" http://www.example.test:8080/a.txt
    stop_capture content-http.pcap
    stop_bg "$server"
}

capture_ssh() {
    echo "content-ssh.pcap: ssh -> sshd listening on port 443"
    mkdir -p /run/sshd "$WORK/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/user_key"
    cp "$WORK/ssh/user_key.pub" "$WORK/ssh/authorized_keys"
    chmod 700 "$WORK/ssh"
    in_srv /usr/sbin/sshd -D -e -p 443 -h "$WORK/ssh/host_key" \
        -o "AuthorizedKeysFile=$WORK/ssh/authorized_keys" -o StrictModes=no \
        -o PidFile=none -o UsePAM=no -o PermitRootLogin=prohibit-password >/dev/null 2>&1 &
    local server=$!
    wait_listening 443
    start_capture content-ssh.pcap
    in_cli ssh -q -p 443 -i "$WORK/ssh/user_key" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes "root@$SRV4" true || true
    stop_capture content-ssh.pcap
    stop_bg "$server"
}

capture_dns() {
    echo "content-dns.pcap: dig www.example.test A over UDP, then AAAA over TCP -> dnsmasq"
    in_srv dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
        --listen-address="$SRV4" --port=53 --user=root --pid-file="$WORK/dnsmasq.pid" \
        --address=/www.example.test/192.0.2.80 --address=/www.example.test/2001:db8::80 \
        >/dev/null 2>&1 &
    local server=$!
    wait_listening 53 udp
    start_capture content-dns.pcap
    in_cli dig +short -b "$CLI4#53101" @"$SRV4" www.example.test A >/dev/null
    in_cli dig +short +tcp -b "$CLI4#53102" @"$SRV4" www.example.test AAAA >/dev/null
    stop_capture content-dns.pcap
    stop_bg "$server"
}

capture_smtp() {
    echo "content-smtp.pcap: python3 smtplib -> python3 smtpd (SMTP on 25)"
    in_srv "$PY" -W ignore -m smtpd -n -c DebuggingServer "$SRV4:25" >/dev/null 2>&1 &
    local server=$!
    wait_listening 25
    start_capture content-smtp.pcap
    in_cli "$PY" - "$SRV4" <<'PY'
import smtplib, sys
with smtplib.SMTP(sys.argv[1], 25, local_hostname="client.example.test") as s:
    s.sendmail("a@example.test", ["b@example.test"], "Subject: test\r\n\r\nhello\r\n")
PY
    stop_capture content-smtp.pcap
    stop_bg "$server"
}

capture_ftp() {
    echo "content-ftp.pcap: curl ftp://user@192.0.2.2:2121/ -> pyftpdlib"
    mkdir -p "$WORK/ftp"
    in_srv env PYTHONPATH="$PYLIB" "$PY" - "$SRV4" "$WORK/ftp" >/dev/null 2>&1 <<'PY' &
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
auth = DummyAuthorizer()
auth.add_user("user", "secret", sys.argv[2], perm="elr")
FTPHandler.authorizer = auth
FTPHandler.banner = "pyftpdlib ready."
FTPHandler.passive_ports = range(30000, 30010)
FTPServer((sys.argv[1], 2121), FTPHandler).serve_forever()
PY
    local server=$!
    wait_listening 2121
    start_capture content-ftp.pcap
    in_cli curl -s -o /dev/null --user user:secret "ftp://$SRV4:2121/"
    stop_capture content-ftp.pcap
    stop_bg "$server"
}

capture_quic() {
    echo "content-quic.pcap: aioquic client (SNI example.test, ALPN h3) -> aioquic server :4433"
    cat >"$WORK/quic.py" <<'PY'
import asyncio, ssl, sys
from aioquic.asyncio import connect, serve
from aioquic.quic.configuration import QuicConfiguration

async def server(host, cert, key):
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    config.load_cert_chain(cert, key)
    await serve(host, 4433, configuration=config)
    await asyncio.Future()

async def client(host):
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                               server_name="example.test", verify_mode=ssl.CERT_NONE)
    async with connect(host, 4433, configuration=config, local_port=53201) as conn:
        await conn.ping()

if sys.argv[1] == "server":
    asyncio.run(server(sys.argv[2], sys.argv[3], sys.argv[4]))
else:
    asyncio.run(client(sys.argv[2]))
PY
    in_srv env PYTHONPATH="$PYLIB" "$PY" "$WORK/quic.py" server "$SRV4" "$WORK/cert.pem" \
        "$WORK/key.pem" >/dev/null 2>&1 &
    local server=$!
    wait_listening 4433 udp
    start_capture content-quic.pcap
    in_cli env PYTHONPATH="$PYLIB" timeout 10 "$PY" "$WORK/quic.py" client "$SRV4"
    stop_capture content-quic.pcap
    stop_bg "$server"
}

main() {
    install_tools
    trap cleanup EXIT
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    mkdir -p "$OUT"
    setup_network
    make_cert
    capture_tls
    capture_http
    capture_ssh
    capture_dns
    capture_smtp
    capture_ftp
    capture_quic
}

main
