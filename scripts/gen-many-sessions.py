#!/usr/bin/env python3
"""Writes a pcap with N short sessions (default 1,000,000) spread over 24 hours.

Each session has its own 5-tuple: 90% are UDP exchanges (a 20-byte query to port 53 and a
60-byte answer), 10% TCP attempts to port 443 answered by a RST (SYN, RST-ACK). So the
capture holds exactly N sessions, N UDP or TCP ones by the rule above. Used to measure the
HTML report's size and opening time with a million sessions (scripts/check-reports.sh).
"""
import struct
import sys

ETH_IP4 = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
ETH_IP4_BACK = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"


def ipv4(src, dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0, src, dst)
    return header + payload


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    base = 1_700_000_000
    step_us = 86_400_000_000 // n
    server_udp = bytes([192, 0, 2, 53])
    server_tcp = bytes([198, 51, 100, 7])
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk = []
        for i in range(n):
            client = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
            sport = 1024 + (i % 60000)
            t = base * 1_000_000 + i * step_us
            if i % 10 == 9:
                syn = struct.pack("!HHIIBBHHH", sport, 443, 1000, 0, 0x50, 0x02, 64240, 0, 0)
                rst = struct.pack("!HHIIBBHHH", 443, sport, 0, 1001, 0x50, 0x14, 0, 0, 0)
                frames = [(t, ETH_IP4 + ipv4(client, server_tcp, 6, syn)),
                          (t + 300, ETH_IP4_BACK + ipv4(server_tcp, client, 6, rst))]
            else:
                q = b"q" * 20
                a = b"a" * 60
                frames = [(t, ETH_IP4 + ipv4(client, server_udp, 17, struct.pack("!HHHH", sport, 53, 8 + len(q), 0) + q)),
                          (t + 900, ETH_IP4_BACK + ipv4(server_udp, client, 17, struct.pack("!HHHH", 53, sport, 8 + len(a), 0) + a))]
            for ts, frame in frames:
                chunk.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
                chunk.append(frame)
            if len(chunk) > 40_000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


if __name__ == "__main__":
    main()
