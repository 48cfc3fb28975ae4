//! Hostile TCP captures, written as pcap bytes directly and deterministically, with the stream
//! contents and counters each one must give under sessionscope's documented reassembly policy
//! (src/session/reassembly.rs: first seen bytes win; holes are given up when acknowledged;
//! bytes beyond the memory limit are skipped and the stream says it was truncated).
//!
//! Used by `examples/gen_tcp_evasion.rs` (which writes sample-captures/tcp-evasion.pcap) and by
//! tests/reassembly.rs. Every scenario is one TCP session from 192.0.2.1:<client_port> to
//! 192.0.2.2:8080, with a handshake and a FIN exchange unless it says otherwise.

#![allow(dead_code)]

/// The memory limit per direction the expectations assume (`--stream-memory 64`).
pub const STREAM_LIMIT_BYTES: usize = 64;
pub const CLIENT: [u8; 4] = [192, 0, 2, 1];
pub const SERVER: [u8; 4] = [192, 0, 2, 2];
pub const SERVER_PORT: u16 = 8080;

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// One packet: who sends it, flags, sequence number relative to the sender's ISN (0 = the SYN,
/// 1 = the first byte after it), acknowledgement relative to the peer's ISN, payload.
#[derive(Clone)]
pub struct Pkt {
    pub from_client: bool,
    pub flags: u8,
    pub rel_seq: u32,
    pub rel_ack: Option<u32>,
    pub data: Vec<u8>,
}

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub client_port: u16,
    pub client_isn: u32,
    pub server_isn: u32,
    pub packets: Vec<Pkt>,
    /// What each direction's stream must contain (holes are not filled: bytes after a hole
    /// follow directly).
    pub client_stream: Vec<u8>,
    pub server_stream: Vec<u8>,
    /// Client-direction counters: segments whose overlapping bytes differed from held ones,
    /// bytes in holes given up, bytes skipped for the memory limit, and whether truncated.
    pub conflicts: u64,
    pub hole_bytes: u64,
    pub dropped_bytes: u64,
    pub truncated: bool,
    /// conn.log's missed_bytes for the session.
    pub missed_bytes: u64,
}

fn c(flags: u8, rel_seq: u32, rel_ack: Option<u32>, data: &[u8]) -> Pkt {
    Pkt {
        from_client: true,
        flags,
        rel_seq,
        rel_ack,
        data: data.to_vec(),
    }
}

fn s(flags: u8, rel_seq: u32, rel_ack: Option<u32>, data: &[u8]) -> Pkt {
    Pkt {
        from_client: false,
        flags,
        rel_seq,
        rel_ack,
        data: data.to_vec(),
    }
}

/// SYN, SYN-ACK, ACK.
fn handshake() -> Vec<Pkt> {
    vec![
        c(SYN, 0, None, b""),
        s(SYN | ACK, 0, Some(1), b""),
        c(ACK, 1, Some(1), b""),
    ]
}

/// The client's data is `client_end - 1` sequence numbers long, the server's `server_end - 1`:
/// the server sends its bytes, then FIN both ways, each acknowledging everything.
fn close(client_end: u32, server_data: &[u8]) -> Vec<Pkt> {
    let server_end = 1 + server_data.len() as u32;
    let mut p = Vec::new();
    if !server_data.is_empty() {
        p.push(s(ACK | PSH, 1, Some(client_end), server_data));
    }
    p.push(c(FIN | ACK, client_end, Some(server_end), b""));
    p.push(s(FIN | ACK, server_end, Some(client_end + 1), b""));
    p.push(c(ACK, client_end + 1, Some(server_end + 1), b""));
    p
}

fn data(rel_seq: u32, bytes: &[u8]) -> Pkt {
    c(ACK | PSH, rel_seq, Some(1), bytes)
}

fn session(mut first: Vec<Pkt>, middle: Vec<Pkt>, last: Vec<Pkt>) -> Vec<Pkt> {
    first.extend(middle);
    first.extend(last);
    first
}

pub fn scenarios() -> Vec<Scenario> {
    let plain =
        |name, what, port, middle: Vec<Pkt>, client_end, stream: &[u8], conflicts| Scenario {
            name,
            what,
            client_port: port,
            client_isn: 1_000_000 * u32::from(port - 40000),
            server_isn: 7_000_000 + u32::from(port),
            packets: session(handshake(), middle, close(client_end, b"ok")),
            client_stream: stream.to_vec(),
            server_stream: b"ok".to_vec(),
            conflicts,
            hole_bytes: 0,
            dropped_bytes: 0,
            truncated: false,
            missed_bytes: 0,
        };
    let mut all = vec![
        plain(
            "out-of-order",
            "three segments sent 2nd, 3rd, 1st",
            40001,
            vec![data(5, b"EFGH"), data(9, b"IJKL"), data(1, b"ABCD")],
            13,
            b"ABCDEFGHIJKL",
            0,
        ),
        plain(
            "retransmissions",
            "a segment twice, then one overlapping it by three bytes, then the rest",
            40002,
            vec![
                data(1, b"abcdef"),
                data(1, b"abcdef"),
                data(4, b"defghi"),
                data(7, b"ghi"),
                data(10, b"jk"),
            ],
            12,
            b"abcdefghijk",
            0,
        ),
        plain(
            "overlap-same-bytes",
            "overlapping out-of-order segments that agree, then an in-order one over them",
            40003,
            vec![
                data(7, b"ghij"),
                data(5, b"efgh"),
                data(9, b"ijklm"),
                data(1, b"abcdefg"),
            ],
            14,
            b"abcdefghijklm",
            0,
        ),
        plain(
            "overlap-held-then-in-order",
            "XXXX held at 5..9, then an in-order segment with other bytes there: first wins",
            40004,
            vec![data(5, b"XXXX"), data(1, b"abcdefghijkl")],
            13,
            b"abcdXXXXijkl",
            1,
        ),
        plain(
            "overlap-held-then-ahead",
            "YYYY held at 9..13, then a segment 5..17 (still ahead of the hole) with other \
             bytes there: first wins, its other bytes fill around the held ones",
            40005,
            vec![data(9, b"YYYY"), data(5, b"efghijklmnop"), data(1, b"abcd")],
            17,
            b"abcdefghYYYYmnop",
            1,
        ),
        plain(
            "overlap-inside-held",
            "efghijkl held at 5..13, then ZZ inside it (differs) and ij inside it (agrees)",
            40006,
            vec![
                data(5, b"efghijkl"),
                data(7, b"ZZ"),
                data(9, b"ij"),
                data(1, b"abcd"),
            ],
            13,
            b"abcdefghijkl",
            1,
        ),
        plain(
            "overlap-after-delivery",
            "bytes already delivered are not kept: a later segment with other bytes for them \
             is ignored (not compared), its new tail is delivered",
            40007,
            vec![data(1, b"abcdef"), data(3, b"QQQQ"), data(5, b"QQgh")],
            9,
            b"abcdefgh",
            0,
        ),
    ];
    // Holes: 5..9 never sent; the server's FIN acknowledges past it.
    all.push(Scenario {
        hole_bytes: 4,
        missed_bytes: 4,
        ..plain(
            "hole",
            "bytes 5..9 never sent; acknowledged by the server's FIN-ACK, so given up",
            40008,
            vec![data(1, b"abcd"), data(9, b"ijkl")],
            13,
            b"abcdijkl",
            0,
        )
    });
    // Sequence wrap-around: ISN 2^32 - 8, the second segment (sent first) wraps to 1.
    all.push(Scenario {
        client_isn: u32::MAX - 7,
        ..plain(
            "wrap-around",
            "client ISN 2^32-8: the segment at 9..17 has wrapped sequence numbers and arrives \
             before the one at 1..9",
            40009,
            vec![data(9, b"89abcdef"), data(1, b"01234567")],
            17,
            b"0123456789abcdef",
            0,
        )
    });
    // A capture that starts mid-stream: no handshake; the first byte seen is byte 1.
    all.push(Scenario {
        packets: vec![
            data(1, b"middle-"),
            s(ACK | PSH, 1, Some(8), b"re"),
            data(13, b"ream"),
            data(8, b"of-st"),
            s(ACK | PSH, 3, Some(17), b"ply"),
            c(FIN | ACK, 17, Some(6), b""),
            s(FIN | ACK, 6, Some(18), b""),
            c(ACK, 18, Some(7), b""),
        ],
        server_stream: b"reply".to_vec(),
        ..plain(
            "mid-stream",
            "no SYN seen: the first segment's first byte is byte 1; then one out of order",
            40010,
            vec![],
            17,
            b"middle-of-stream",
            0,
        )
    });
    // Data on the SYN (as TCP Fast Open sends it).
    all.push(Scenario {
        packets: session(
            vec![
                c(SYN, 0, None, b"hello"),
                s(SYN | ACK, 0, Some(6), b""),
                c(ACK, 6, Some(1), b""),
            ],
            vec![data(6, b" world")],
            close(12, b"ok"),
        ),
        ..plain(
            "syn-with-data",
            "the SYN carries the first 5 bytes",
            40011,
            vec![],
            12,
            b"hello world",
            0,
        )
    });
    // Memory limit: 80 bytes ahead of a hole do not fit in 64: seen, skipped, truncated.
    let big = vec![b'z'; 80];
    all.push(Scenario {
        dropped_bytes: 80,
        truncated: true,
        ..plain(
            "memory-limit",
            "80 bytes arrive ahead of a hole, more than the 64-byte limit: they are skipped \
             (the stream is truncated, not missing: conn.log counts no gap), the rest is kept",
            40012,
            vec![
                data(1, b"abcd"),
                data(9, &big),
                data(89, b"tail"),
                data(5, b"efgh"),
            ],
            93,
            b"abcdefghtail",
            0,
        )
    });
    // The server's direction out of order.
    all.push(Scenario {
        packets: session(
            handshake(),
            vec![
                data(1, b"get"),
                s(ACK | PSH, 5, Some(4), b"5678"),
                s(ACK | PSH, 1, Some(4), b"1234"),
            ],
            vec![
                c(FIN | ACK, 4, Some(9), b""),
                s(FIN | ACK, 9, Some(5), b""),
                c(ACK, 5, Some(10), b""),
            ],
        ),
        server_stream: b"12345678".to_vec(),
        ..plain(
            "server-out-of-order",
            "the responder's two segments arrive in reverse order",
            40013,
            vec![],
            4,
            b"get",
            0,
        )
    });
    all
}

fn checksum(sum: u32, bytes: &[u8]) -> u32 {
    let mut sum = sum;
    for pair in bytes.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + TCP frame with correct checksums.
fn frame(sc: &Scenario, p: &Pkt, ip_id: u16) -> Vec<u8> {
    let (src, dst, sport, dport, isn, peer_isn) = if p.from_client {
        (
            CLIENT,
            SERVER,
            sc.client_port,
            SERVER_PORT,
            sc.client_isn,
            sc.server_isn,
        )
    } else {
        (
            SERVER,
            CLIENT,
            SERVER_PORT,
            sc.client_port,
            sc.server_isn,
            sc.client_isn,
        )
    };
    let seq = isn.wrapping_add(p.rel_seq);
    let (ack, flags) = match p.rel_ack {
        Some(a) => (peer_isn.wrapping_add(a), p.flags | ACK),
        None => (0, p.flags),
    };
    let mut tcp = Vec::with_capacity(20 + p.data.len());
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(&p.data);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    let sum = fold(checksum(checksum(0, &pseudo), &tcp));
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let total = 20 + tcp.len() as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&ip_id.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = fold(checksum(0, &ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::new();
    let mac = |last: u8| [0x02, 0, 0, 0, 0, last];
    let (smac, dmac) = if p.from_client {
        (mac(1), mac(2))
    } else {
        (mac(2), mac(1))
    };
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// The whole capture: classic pcap, microsecond timestamps, Ethernet. Scenario i starts at
/// 1700000000 + i seconds; its packets are 1 ms apart.
pub fn pcap_bytes(all: &[Scenario]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut ip_id = 1u16;
    for (i, sc) in all.iter().enumerate() {
        for (j, p) in sc.packets.iter().enumerate() {
            let f = frame(sc, p, ip_id);
            ip_id = ip_id.wrapping_add(1);
            out.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
            out.extend_from_slice(&(1000 * j as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&f);
        }
    }
    out
}
