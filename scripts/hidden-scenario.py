"""Roles of the hidden-sessions scenario (run by scripts/make-hidden-scenario.sh).

Each role is one process. Every session a role starts is recorded by the role itself in its labels
file (one CSV line per session: proto, orig_h, orig_p, resp_h, resp_p, start, label, process,
period_s), so the scenario's ground truth never comes from sessionscope.

Person-like roles (label `user`) wait human think-times drawn from a seeded RNG: a browser-like
client that loads pages and their assets, ssh-like typing, a download, chat messages.
Technology roles (label `technology`) run on timers: a beacon with jitter, an update check, an
NTP client, a keep-alive connection, mDNS and SSDP announcements, DHCP discovers. Name lookups go
to the caching resolver (dnsmasq) on 127.0.0.1, whose upstream queries the script records.

    hidden-scenario.py server
    hidden-scenario.py ROLE SRC_ADDR SEED DURATION_S LABELS_FILE
"""
import http.server
import random
import socket
import socketserver
import struct
import sys
import threading
import time

# Server addresses (on the server namespace's interface) and names the upstream resolver serves.
WEB = "192.0.2.80"
FILES = "192.0.2.81"
CHAT = "192.0.2.82"
C2 = "192.0.2.90"
UPDATE = "192.0.2.91"
NTP = "192.0.2.92"
PUSH = "192.0.2.93"
SSH = "192.0.2.94"

BEACON_PERIOD_S = 5.0
BEACON_JITTER = 0.2  # uniform +-20 %
UPDATE_PERIOD_S = 20.0
NTP_PERIOD_S = 8.0
KEEPALIVE_PERIOD_S = 10.0

PAGE_SIZE = 6000
ASSET_SIZE = 2500
DOWNLOAD_SIZE = 400_000


class Labels:
    """Appends one line per session this process starts."""

    def __init__(self, path, process, label, period=""):
        self.out = open(path, "a", buffering=1)
        self.process = process
        self.label = label
        self.period = period

    def tcp(self, sock, start):
        self.record("tcp", sock.getsockname(), sock.getpeername(), start)

    def record(self, proto, local, remote, start, label=None):
        self.out.write(
            f"{proto},{local[0]},{local[1]},{remote[0]},{remote[1]},{start:.6f},"
            f"{label or self.label},{self.process},{self.period}\n"
        )


def connect(src, dst, port, labels):
    start = time.time()
    sock = socket.create_connection((dst, port), timeout=10, source_address=(src, 0))
    labels.tcp(sock, start)
    return sock


def http_get(src, dst, port, path, labels, body=b""):
    """One request per connection (Connection: close); returns the response length."""
    sock = connect(src, dst, port, labels)
    method = "POST" if body else "GET"
    sock.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: {dst}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode() + body
    )
    total = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    sock.close()
    return total


def resolve(name):
    """An A lookup through the caching resolver on 127.0.0.1 (loopback: not on the wire)."""
    qid = random.getrandbits(16)
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(query, ("127.0.0.1", 53))
    reply, _ = s.recvfrom(2048)
    s.close()
    # The answer's last 4 bytes are the address of its (only) A record.
    return socket.inet_ntoa(reply[-4:])


def until(deadline):
    return time.time() < deadline


def sleep_until(deadline, seconds):
    time.sleep(max(0.0, min(seconds, deadline - time.time())))


# ---------------------------------------------------------------- person-like roles


def browser(src, rng, deadline, labels):
    pages = ["www.example.test", "news.example.test", "shop.example.test"]
    sleep_until(deadline, rng.uniform(2, 6))
    while until(deadline - 8):
        name = rng.choice(pages)
        addr = resolve(name)
        http_get(src, addr, 80, "/page", labels)
        # The page's assets: fetched right after the page, two at a time.
        assets = [f"/asset{i}" for i in range(rng.randint(3, 6))]
        cdn = resolve("cdn.example.test")
        threads = []
        for i, path in enumerate(assets):
            t = threading.Thread(target=http_get, args=(src, cdn, 80, path, labels))
            t.start()
            threads.append(t)
            if i % 2 == 1:
                for t in threads:
                    t.join()
                threads = []
        for t in threads:
            t.join()
        # Reading the page.
        sleep_until(deadline, rng.lognormvariate(2.6, 0.6))


def typing(src, rng, deadline, labels):
    """ssh-like: one long session, a keystroke at a time, echo from the server, think-times."""
    sleep_until(deadline, rng.uniform(5, 15))
    sock = connect(src, SSH, 22, labels)
    sock.settimeout(5)
    sock.sendall(b"SSH-2.0-scenario\r\n")
    sock.recv(64)
    while until(deadline - 10):
        for ch in rng.choice([b"ls -l\n", b"cat notes.txt\n", b"make test\n", b"cd src\n"]):
            sock.sendall(bytes([ch]))
            sock.recv(64)
            time.sleep(rng.uniform(0.08, 0.35))
        sleep_until(deadline, rng.lognormvariate(2.3, 0.7))
    sock.close()


def download(src, rng, deadline, labels):
    for _ in range(2):
        sleep_until(deadline, rng.uniform(20, 70))
        if not until(deadline - 5):
            break
        http_get(src, resolve("files.example.test"), 80, "/big", labels)


def chat(src, rng, deadline, labels):
    sleep_until(deadline, rng.uniform(3, 20))
    while until(deadline - 5):
        message = ("hi! " * rng.randint(1, 20)).encode()
        http_get(src, resolve("chat.example.test"), 80, "/send", labels, body=message)
        sleep_until(deadline, rng.expovariate(1 / 18.0))


# ---------------------------------------------------------------- technology roles


def beacon(src, rng, deadline, labels):
    time.sleep(rng.uniform(0, BEACON_PERIOD_S))
    while until(deadline):
        http_get(src, C2, 8443, "/b", labels, body=b"id=7f3a")
        time.sleep(BEACON_PERIOD_S * rng.uniform(1 - BEACON_JITTER, 1 + BEACON_JITTER))


def update_check(src, rng, deadline, labels):
    time.sleep(rng.uniform(0, 5))
    while until(deadline):
        next_check = time.time() + UPDATE_PERIOD_S
        http_get(src, resolve("update.example.test"), 80, "/check", labels)
        time.sleep(max(0.0, next_check - time.time()))


def ntp_client(src, rng, deadline, labels):
    """A request from a fresh source port each poll, as chrony does."""
    time.sleep(rng.uniform(0, 3))
    while until(deadline):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.settimeout(2)
        labels.record("udp", s.getsockname(), (NTP, 123), time.time())
        s.sendto(b"\x23" + b"\x00" * 47, (NTP, 123))
        try:
            s.recv(64)
        except socket.timeout:
            pass
        s.close()
        time.sleep(NTP_PERIOD_S * rng.uniform(0.99, 1.01))


def keepalive(src, rng, deadline, labels):
    """One connection for the whole run, kept up by a small message every 10 s."""
    sock = connect(src, PUSH, 7070, labels)
    while until(deadline - 2):
        sock.sendall(b"PING\n")
        sock.recv(16)
        time.sleep(KEEPALIVE_PERIOD_S)
    sock.close()


def announce(src, rng, deadline, labels):
    """mDNS and SSDP announcements from fixed ports, DHCP discovers, SSDP searches."""
    mdns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mdns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    mdns.bind((src, 5353))
    mdns.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    ssdp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ssdp.bind((src, 1900))
    ssdp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    dhcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dhcp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    dhcp.bind((src, 68))
    now = time.time()
    labels.record("udp", mdns.getsockname(), ("224.0.0.251", 5353), now)
    labels.record("udp", ssdp.getsockname(), ("239.255.255.250", 1900), now)
    labels.record("udp", dhcp.getsockname(), ("255.255.255.255", 67), now)
    discover = b"\x01\x01\x06\x00" + struct.pack(">I", rng.getrandbits(32)) + b"\x00" * 228
    discover += b"\x63\x82\x53\x63\x35\x01\x01\xff"
    for backoff in (0, 4, 8):
        time.sleep(backoff)
        dhcp.sendto(discover, ("255.255.255.255", 67))
    while until(deadline):
        mdns.sendto(b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00", ("224.0.0.251", 5353))
        ssdp.sendto(
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNTS: ssdp:alive\r\n\r\n",
            ("239.255.255.250", 1900),
        )
        if rng.random() < 0.3:
            search = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            search.bind((src, 0))
            labels.record("udp", search.getsockname(), ("239.255.255.250", 1900), time.time())
            search.sendto(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n", ("239.255.255.250", 1900))
            search.close()
        time.sleep(rng.uniform(15, 40))


# ---------------------------------------------------------------- servers


class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        size = {"/page": PAGE_SIZE, "/big": DOWNLOAD_SIZE, "/b": 64, "/check": 300}.get(
            self.path, ASSET_SIZE if self.path.startswith("/asset") else 20
        )
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"x" * size)

    do_GET = reply
    do_POST = reply

    def log_message(self, *args):
        pass


class ThreadingWeb(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve_stream(port, handler):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def echo_lines(conn):
    try:
        while True:
            data = conn.recv(64)
            if not data:
                break
            conn.sendall(b"PONG\n" if data == b"PING\n" else data)
    finally:
        conn.close()


def server():
    for port in (80, 8443):
        web = ThreadingWeb(("0.0.0.0", port), Web)
        threading.Thread(target=web.serve_forever, daemon=True).start()
    threading.Thread(target=serve_stream, args=(22, echo_lines), daemon=True).start()
    threading.Thread(target=serve_stream, args=(7070, echo_lines), daemon=True).start()
    ntp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ntp.bind((NTP, 123))  # replies then come from the address the client asked
    while True:
        request, peer = ntp.recvfrom(64)
        ntp.sendto(b"\x24\x02" + b"\x00" * 46, peer)


ROLES = {
    "browser": (browser, "user", ""),
    "typing": (typing, "user", ""),
    "download": (download, "user", ""),
    "chat": (chat, "user", ""),
    "beacon": (beacon, "technology", BEACON_PERIOD_S),
    "update": (update_check, "technology", UPDATE_PERIOD_S),
    "ntp": (ntp_client, "technology", NTP_PERIOD_S),
    "keepalive": (keepalive, "technology", ""),
    "announce": (announce, "technology", ""),
}

if __name__ == "__main__":
    if sys.argv[1] == "server":
        server()
    else:
        role, src, seed, duration, path = sys.argv[1:6]
        run, label, period = ROLES[role]
        random.seed(int(seed) * 7919)
        run(src, random.Random(int(seed)), time.time() + float(duration), Labels(path, role, label, period))
