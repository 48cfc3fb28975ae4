//! Writes the evasion captures, deterministically, and states what each case must give:
//! sample-captures/evasion-tcp.pcap (overlapping TCP segments with other bytes in every shape
//! and arrival order, a low-TTL segment, RST injection in and out of the window, SYN and
//! SYN-ACK with data, simultaneous open) and sample-captures/evasion-frag.pcap (overlapping
//! IPv4 and IPv6 fragments in every shape and order, duplicates, teardrop, a datagram past
//! 65,535 bytes, a low-TTL fragment).
//!
//! Every case is one TCP session from a client (192.0.2.1, or 2001:db8::1 for IPv6) port
//! `case.port` to the server (192.0.2.2 / 2001:db8::2) port 8080. Expectations come from how
//! the packets are built and the documented rules, not from running sessionscope: stream bytes
//! from a first-seen-wins byte map (a byte already received keeps its value); overlap counts
//! from the same map (TCP: a segment counts when bytes still held, not yet delivered, differ;
//! fragments: each fragment overlapping received bytes, with the same or other bytes); history
//! and conn_state from Zeek's rules as docs/hostile-input.md derives them for each case.
//!
//! `cargo run --example gen_evasion [DIR]` (default sample-captures); `--list` prints the cases.

use std::net::IpAddr;

pub const SERVER_PORT: u16 = 8080;
const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
/// TTL (hop limit) of every packet unless a case says otherwise.
pub const TTL: u8 = 64;
/// The TTL of a packet that would expire before the server (a "TTL trick").
pub const LOW_TTL: u8 = 3;

/// How a data segment travels: whole, or as IP fragments of the segment (TCP header + data).
#[derive(Clone)]
pub enum Carry {
    Whole,
    /// Fragments in arrival order: (offset in the IP payload, bytes, more-fragments, TTL).
    Fragments(Vec<(usize, Vec<u8>, bool, u8)>),
}

#[derive(Clone)]
pub struct Pkt {
    pub from_client: bool,
    pub flags: u8,
    /// Relative to the sender's ISN (0 = the SYN).
    pub rel_seq: u32,
    /// Relative to the peer's ISN; sets ACK.
    pub rel_ack: Option<u32>,
    pub data: Vec<u8>,
    pub ttl: u8,
    pub carry: Carry,
}

/// What sessions.csv and the streams must show for a case.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub client_stream: Vec<u8>,
    pub server_stream: Vec<u8>,
    pub conn_state: &'static str,
    pub history: String,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    /// The `anomalies` column.
    pub anomalies: String,
    /// The client is the originator (false: the server is, as in a simultaneous open).
    pub client_is_orig: bool,
}

pub struct Case {
    pub name: String,
    pub what: String,
    /// "tcp" or "frag": which capture holds it.
    pub file: &'static str,
    pub port: u16,
    pub v6: bool,
    pub packets: Vec<Pkt>,
    /// The sessions the case makes, in start order (a simultaneous open makes two).
    pub expect: Vec<Expect>,
    /// Datagrams given up as malformed (the past-65,535 case).
    pub malformed_datagrams: u64,
}

fn pkt(from_client: bool, flags: u8, rel_seq: u32, rel_ack: Option<u32>, data: &[u8]) -> Pkt {
    Pkt {
        from_client,
        flags,
        rel_seq,
        rel_ack,
        data: data.to_vec(),
        ttl: TTL,
        carry: Carry::Whole,
    }
}

fn c(flags: u8, rel_seq: u32, rel_ack: Option<u32>, data: &[u8]) -> Pkt {
    pkt(true, flags, rel_seq, rel_ack, data)
}

fn s(flags: u8, rel_seq: u32, rel_ack: Option<u32>, data: &[u8]) -> Pkt {
    pkt(false, flags, rel_seq, rel_ack, data)
}

fn handshake() -> Vec<Pkt> {
    vec![
        c(SYN, 0, None, b""),
        s(SYN | ACK, 0, Some(1), b""),
        c(ACK, 1, Some(1), b""),
    ]
}

/// The server sends "ok", then FIN both ways and a last ACK; `client_end` is the client's next
/// sequence number.
fn close(client_end: u32) -> Vec<Pkt> {
    vec![
        s(ACK | PSH, 1, Some(client_end), b"ok"),
        c(FIN | ACK, client_end, Some(3), b""),
        s(FIN | ACK, 3, Some(client_end + 1), b""),
        c(ACK, client_end + 1, Some(4), b""),
    ]
}

/// The original bytes of the overlap cases: 72 bytes, `a..z` repeating.
fn original(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The overlap shapes: the original piece O and the conflicting piece C (offsets in the
/// stream for TCP, in the IP payload for fragments; all multiples of 8, beyond the TCP header).
/// A byte range `[start, end)`.
type Range = (usize, usize);

pub const SHAPES: [(&str, Range, Range); 5] = [
    ("inside", (32, 56), (40, 48)),
    ("covering", (32, 56), (24, 64)),
    ("head", (32, 56), (24, 40)),
    ("tail", (32, 56), (48, 64)),
    ("exact", (32, 56), (32, 56)),
];
const SPAN: usize = 72;
const CONFLICT_BYTE: u8 = b'X';

/// First-seen-wins byte map with TCP's held/delivered distinction.
struct ByteMap {
    bytes: Vec<Option<u8>>,
}

impl ByteMap {
    fn new(len: usize) -> Self {
        ByteMap {
            bytes: vec![None; len],
        }
    }
    /// Bytes 0.. that are contiguous (TCP has delivered them).
    fn delivered(&self) -> usize {
        self.bytes.iter().take_while(|b| b.is_some()).count()
    }
    /// Adds `data` at `at`; returns (overlaps received bytes, differs from held bytes at or
    /// beyond `compare_from`).
    fn add(&mut self, at: usize, data: &[u8], compare_from: usize) -> (bool, bool) {
        let (mut overlap, mut differ) = (false, false);
        for (i, &b) in data.iter().enumerate() {
            let slot = &mut self.bytes[at + i];
            match *slot {
                Some(old) => {
                    overlap = true;
                    if at + i >= compare_from && old != b {
                        differ = true;
                    }
                }
                None => *slot = Some(b),
            }
        }
        (overlap, differ)
    }
    fn contents(&self) -> Vec<u8> {
        self.bytes.iter().map_while(|b| *b).collect()
    }
}

/// History letters of the client's data segments, by Zeek's rules: D once; T once, for the
/// first segment ending at or below the highest end seen.
fn data_history(segments: &[(usize, usize)]) -> String {
    let mut h = String::from("D");
    let mut max_end = 0;
    for &(start, end) in segments {
        if end <= max_end && !h.contains('T') {
            h.push('T');
        }
        max_end = max_end.max(end);
        let _ = start;
    }
    h
}

fn anomalies(pairs: &[(&str, u64)]) -> String {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}:{n}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn plain_expect(client_stream: Vec<u8>, history: String, anomalies: String) -> Expect {
    Expect {
        orig_bytes: client_stream.len() as u64,
        client_stream,
        server_stream: b"ok".to_vec(),
        conn_state: "SF",
        history,
        resp_bytes: 2,
        anomalies,
        client_is_orig: true,
    }
}

/// TCP overlaps: O and C ahead of a hole (held), in both orders, or O delivered in order and
/// acknowledged before C arrives; then the whole original range fills the hole.
fn tcp_overlap_cases(port: &mut u16) -> Vec<Case> {
    let orig = original(SPAN);
    let mut cases = Vec::new();
    for (shape, o, cf) in SHAPES {
        for order in [
            "original-first",
            "conflicting-first",
            "delivered-then-acked",
        ] {
            let conflict = vec![CONFLICT_BYTE; cf.1 - cf.0];
            // Segments in arrival order: (start, bytes), stream offsets.
            let mut segs: Vec<(usize, Vec<u8>)> = match order {
                "original-first" => vec![(o.0, orig[o.0..o.1].to_vec()), (cf.0, conflict)],
                "conflicting-first" => vec![(cf.0, conflict), (o.0, orig[o.0..o.1].to_vec())],
                _ => vec![
                    (0, orig[..o.0].to_vec()),
                    (o.0, orig[o.0..o.1].to_vec()),
                    (cf.0, conflict),
                ],
            };
            segs.push((0, orig.clone()));
            let mut map = ByteMap::new(SPAN);
            let mut conflicts = 0;
            for (at, bytes) in &segs {
                let delivered = map.delivered();
                conflicts += u64::from(map.add(*at, bytes, delivered).1);
            }
            let ranges: Vec<(usize, usize)> = segs.iter().map(|(a, b)| (*a, a + b.len())).collect();
            let mut packets = handshake();
            for (i, (at, bytes)) in segs.iter().enumerate() {
                packets.push(c(ACK | PSH, 1 + *at as u32, Some(1), bytes));
                if order == "delivered-then-acked" && i == 1 {
                    // The server acknowledges the original: it was delivered.
                    packets.push(s(ACK, 1, Some(1 + o.1 as u32), b""));
                }
            }
            packets.extend(close(1 + SPAN as u32));
            let mut history = format!("ShA{}", data_history(&ranges));
            if order == "delivered-then-acked" {
                // The server's pure ACK comes after the client's first data: 'a' then.
                history = history.replacen('D', "Da", 1);
            }
            history.push_str("dFf");
            cases.push(Case {
                name: format!("tcp-overlap-{shape}-{order}"),
                what: format!(
                    "original bytes {}..{} and other bytes {}..{}, {order}",
                    o.0, o.1, cf.0, cf.1
                ),
                file: "tcp",
                port: *port,
                v6: false,
                packets,
                expect: vec![plain_expect(
                    map.contents(),
                    history,
                    anomalies(&[("rexmit_inconsistency", conflicts)]),
                )],
                malformed_datagrams: 0,
            });
            *port += 1;
        }
    }
    cases
}

/// The client's one data segment, sent as IP fragments; the datagram's IP payload is the TCP
/// header (20 bytes) then `SPAN - 20` data bytes.
fn fragment_case(
    name: String,
    what: String,
    port: u16,
    v6: bool,
    fragments: Vec<(usize, Vec<u8>, bool, u8)>,
    expect_anomalies: String,
) -> Case {
    let data_len = (SPAN - 20) as u32;
    let mut packets = handshake();
    let mut segment = c(ACK | PSH, 1, Some(1), &original(SPAN)[20..]);
    segment.carry = Carry::Fragments(fragments.clone());
    packets.push(segment);
    packets.extend(close(1 + data_len));
    // The IP payload as reassembled: first seen wins; the TCP header is the generator's.
    let mut map = ByteMap::new(SPAN);
    let header = tcp_header_placeholder();
    for (at, bytes, _, _) in &fragments {
        let bytes: Vec<u8> = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| if at + i < 20 { header[at + i] } else { b })
            .collect();
        map.add(*at, &bytes, usize::MAX);
    }
    let payload = map.contents();
    Case {
        name,
        what,
        file: "frag",
        port,
        v6,
        packets,
        expect: vec![plain_expect(
            payload[20..].to_vec(),
            "ShADdFf".to_string(),
            expect_anomalies,
        )],
        malformed_datagrams: 0,
    }
}

/// Fragment bytes below offset 20 are the real TCP header, filled in when the frame is built;
/// the model only needs them to be the same in every fragment.
fn tcp_header_placeholder() -> [u8; 20] {
    [0; 20]
}

/// Overlapping fragments: B0 = [0, 32) (TCP header and the first data), O, C, B1 = [56, 72)
/// (the last), in three orders; each order ends with the fragment that completes the datagram.
fn fragment_overlap_cases(port: &mut u16) -> Vec<Case> {
    let orig = original(SPAN);
    let mut cases = Vec::new();
    for v6 in [false, true] {
        for (shape, o, cf) in SHAPES {
            let piece = |range: (usize, usize), bytes: &[u8], more: bool| {
                (range.0, bytes[range.0..range.1].to_vec(), more, TTL)
            };
            let conflict_bytes = vec![CONFLICT_BYTE; SPAN];
            let b0 = piece((0, 32), &orig, true);
            let b1 = piece((56, SPAN), &orig, false);
            let op = piece(o, &orig, true);
            let cp = piece(cf, &conflict_bytes, cf.1 < SPAN);
            for order in [
                "first-fragment-first",
                "last-fragment-first",
                "middle-first-dup",
            ] {
                let frags = match order {
                    "first-fragment-first" => vec![b0.clone(), op.clone(), cp.clone(), b1.clone()],
                    "last-fragment-first" => vec![b1.clone(), cp.clone(), op.clone(), b0.clone()],
                    _ => vec![op.clone(), cp.clone(), op.clone(), b1.clone(), b0.clone()],
                };
                // Overlap counts from the byte map (TCP header bytes agree in every fragment).
                let mut map = ByteMap::new(SPAN);
                let (mut same, mut different) = (0u64, 0u64);
                for (at, bytes, _, _) in &frags {
                    match map.add(*at, bytes, 0) {
                        (true, true) => different += 1,
                        (true, false) => same += 1,
                        _ => {}
                    }
                }
                let ip = if v6 { "ipv6" } else { "ipv4" };
                cases.push(fragment_case(
                    format!("frag-{ip}-overlap-{shape}-{order}"),
                    format!(
                        "{ip} fragments: original {}..{}, other bytes {}..{}, {order}",
                        o.0, o.1, cf.0, cf.1
                    ),
                    *port,
                    v6,
                    frags,
                    anomalies(&[
                        ("fragment_overlap", same),
                        ("fragment_inconsistency", different),
                    ]),
                ));
                *port += 1;
            }
        }
    }
    cases
}

/// Teardrop: the last fragment lies inside the first one and ends before it (its length
/// would come out negative in a naive reassembler). Kept: the longer length and the bytes of
/// whichever arrived first.
fn teardrop_cases(port: &mut u16) -> Vec<Case> {
    let orig = original(SPAN);
    let mut cases = Vec::new();
    for v6 in [false, true] {
        for first_is_whole in [true, false] {
            let whole = (0usize, orig.clone(), true, TTL);
            let inner = (32usize, vec![CONFLICT_BYTE; 8], false, TTL);
            let frags = if first_is_whole {
                vec![whole, inner]
            } else {
                vec![inner, whole]
            };
            let ip = if v6 { "ipv6" } else { "ipv4" };
            let order = if first_is_whole {
                "whole-first"
            } else {
                "inner-first"
            };
            cases.push(fragment_case(
                format!("frag-{ip}-teardrop-{order}"),
                format!(
                    "{ip}: a fragment 0..72 with more-fragments and a last fragment 32..40 \
                     inside it, {order}"
                ),
                *port,
                v6,
                frags,
                anomalies(&[
                    ("fragment_inconsistency", 1),
                    ("fragment_size_inconsistency", 1),
                ]),
            ));
            *port += 1;
        }
    }
    cases
}

/// A datagram whose last fragment reaches past 65,535 bytes: given up as malformed, so the
/// client's segment is never seen (the FIN's sequence number still counts its bytes).
fn past_limit_case(port: &mut u16) -> Case {
    let orig = original(SPAN);
    let data_len = (SPAN - 20) as u32;
    let mut packets = handshake();
    let mut segment = c(ACK | PSH, 1, Some(1), &orig[20..]);
    segment.carry = Carry::Fragments(vec![
        (0, orig[..24].to_vec(), true, TTL),
        (65528, vec![b'z'; 16], false, TTL),
    ]);
    packets.push(segment);
    packets.extend(close(1 + data_len));
    let case = Case {
        name: "frag-ipv4-past-65535".to_string(),
        what: "a first fragment, then a last fragment at offset 65528 with 16 bytes (ends at \
               65544): the datagram is malformed and given up"
            .to_string(),
        file: "frag",
        port: *port,
        v6: false,
        packets,
        expect: vec![Expect {
            client_stream: Vec::new(),
            server_stream: b"ok".to_vec(),
            conn_state: "SF",
            // The server's ACK of the unseen bytes comes with its data; the hole is given up
            // when acknowledged: G after d.
            history: "ShAdGFf".to_string(),
            orig_bytes: u64::from(data_len),
            resp_bytes: 2,
            anomalies: String::new(),
            client_is_orig: true,
        }],
        malformed_datagrams: 1,
    };
    *port += 1;
    case
}

/// TTL tricks: bytes with a low TTL (they expire before the server) arrive first and conflict
/// with the real ones. First seen wins: the low-TTL bytes are delivered; both the TTL change
/// and the conflict are counted.
fn ttl_cases(port: &mut u16) -> Vec<Case> {
    let orig = original(SPAN);
    let mut cases = Vec::new();
    // TCP: the low-TTL segment at 32..56 ahead of the hole, then the real one, then the rest.
    let mut packets = handshake();
    let mut fake = c(ACK | PSH, 33, Some(1), &[CONFLICT_BYTE; 24]);
    fake.ttl = LOW_TTL;
    packets.push(fake);
    packets.push(c(ACK | PSH, 33, Some(1), &orig[32..56]));
    packets.push(c(ACK | PSH, 1, Some(1), &orig));
    packets.extend(close(1 + SPAN as u32));
    let mut stream = orig.clone();
    stream[32..56].fill(CONFLICT_BYTE);
    cases.push(Case {
        name: "tcp-low-ttl-first".to_string(),
        what: "a TTL-3 segment with other bytes for 32..56 arrives before the real (TTL 64) one"
            .to_string(),
        file: "tcp",
        port: *port,
        v6: false,
        packets,
        expect: vec![plain_expect(
            stream,
            "ShADTdFf".to_string(),
            // The real segment and the filling one both differ from the held low-TTL bytes;
            // TTL changes: the low-TTL packet only (the later ones match the first, 64).
            anomalies(&[("rexmit_inconsistency", 2), ("ttl_change", 1)]),
        )],
        malformed_datagrams: 0,
    });
    *port += 1;
    // Fragments: a TTL-3 fragment with other bytes for 32..56 before the real one.
    let frags = vec![
        (0, orig[..24].to_vec(), true, TTL),
        (32, vec![CONFLICT_BYTE; 24], true, LOW_TTL),
        (24, orig[24..56].to_vec(), true, TTL),
        (56, orig[56..].to_vec(), false, TTL),
    ];
    cases.push(fragment_case(
        "frag-ipv4-low-ttl-first".to_string(),
        "a TTL-3 fragment with other bytes for 32..56 arrives before the real one".to_string(),
        *port,
        false,
        frags,
        anomalies(&[("fragment_inconsistency", 1), ("fragment_ttl_change", 1)]),
    ));
    if let Some(last) = cases.last_mut() {
        let mut stream = orig[20..].to_vec();
        stream[12..36].fill(CONFLICT_BYTE);
        last.expect[0].client_stream = stream;
    }
    *port += 1;
    cases
}

/// RST injection from the server mid-stream, in or out of the window the client advertised;
/// data goes on both ways after it.
fn rst_cases(port: &mut u16) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, rst_seq, out_of_window) in [
        ("tcp-rst-in-window", 6u32, false),
        ("tcp-rst-out-of-window", 6 + 2_000_000, true),
    ] {
        let mut packets = handshake();
        packets.extend([
            c(ACK | PSH, 1, Some(1), b"hello"),
            s(ACK | PSH, 1, Some(6), b"world"),
            s(RST | ACK, rst_seq, Some(6), b""),
            c(ACK | PSH, 6, Some(6), b"more"),
            s(ACK | PSH, 6, Some(10), b"after"),
        ]);
        cases.push(Case {
            name: name.to_string(),
            what: format!(
                "the server sends a RST at its sequence number +{} ({}), then both sides send \
                 data",
                rst_seq - 6,
                if out_of_window {
                    "beyond the client's 65,535-byte window"
                } else {
                    "exactly the next byte"
                }
            ),
            file: "tcp",
            port: *port,
            v6: false,
            packets,
            expect: vec![Expect {
                client_stream: b"hellomore".to_vec(),
                server_stream: b"worldafter".to_vec(),
                conn_state: "RSTR",
                history: "ShADdr".to_string(),
                orig_bytes: 9,
                // Sequence numbers after a RST are not trusted: the server's size stops there.
                resp_bytes: 5,
                anomalies: anomalies(&[
                    ("rst_out_of_window", u64::from(out_of_window)),
                    ("data_after_reset", 1),
                ]),
                client_is_orig: true,
            }],
            malformed_datagrams: 0,
        });
        *port += 1;
    }
    cases
}

fn syn_data_case(port: &mut u16) -> Case {
    let packets = vec![
        c(SYN, 0, None, b"hello"),
        s(SYN | ACK, 0, Some(6), b"srv"),
        c(ACK, 6, Some(4), b""),
        c(ACK | PSH, 6, Some(4), b" world"),
        s(ACK | PSH, 4, Some(12), b"ok"),
        c(FIN | ACK, 12, Some(6), b""),
        s(FIN | ACK, 6, Some(13), b""),
        c(ACK, 13, Some(7), b""),
    ];
    let case = Case {
        name: "tcp-syn-and-syn-ack-with-data".to_string(),
        what: "the SYN carries 'hello' and the SYN-ACK 'srv'".to_string(),
        file: "tcp",
        port: *port,
        v6: false,
        packets,
        expect: vec![Expect {
            client_stream: b"hello world".to_vec(),
            server_stream: b"srvok".to_vec(),
            conn_state: "SF",
            // Zeek sets a SYN's sender's last sequence number to the SYN's end before it
            // compares, so data on a SYN (and SYN-ACK) counts as a retransmission: T, t. The
            // SYN's data adds no D (a SYN's letter is all Zeek records for it).
            history: "SThtADdFf".to_string(),
            orig_bytes: 11,
            resp_bytes: 5,
            anomalies: anomalies(&[("SYN_with_data", 2)]),
            client_is_orig: true,
        }],
        malformed_datagrams: 0,
    };
    *port += 1;
    case
}

/// Both sides send a SYN, then their SYN-ACKs cross. Zeek's rule: a SYN from the responder
/// with another sequence number while the originator's SYN is unanswered starts a new
/// connection (SYN_seq_jump), so the first session is the client's lone SYN and the second is
/// the server's, with the client answering.
fn simultaneous_open_case(port: &mut u16) -> Case {
    let packets = vec![
        c(SYN, 0, None, b""),
        s(SYN, 0, None, b""),
        c(SYN | ACK, 0, Some(1), b""),
        s(SYN | ACK, 0, Some(1), b""),
        c(ACK | PSH, 1, Some(1), b"hi"),
        s(ACK | PSH, 1, Some(3), b"yo"),
        c(FIN | ACK, 3, Some(3), b""),
        s(FIN | ACK, 3, Some(4), b""),
        c(ACK, 4, Some(4), b""),
    ];
    let case = Case {
        name: "tcp-simultaneous-open".to_string(),
        what: "SYN both ways, then crossing SYN-ACKs, data and FIN both ways".to_string(),
        file: "tcp",
        port: *port,
        v6: false,
        packets,
        expect: vec![
            Expect {
                client_stream: Vec::new(),
                server_stream: Vec::new(),
                conn_state: "S0",
                history: "S".to_string(),
                orig_bytes: 0,
                resp_bytes: 0,
                anomalies: anomalies(&[("simultaneous_open", 1)]),
                client_is_orig: true,
            },
            Expect {
                // Streams named from the second session's originator (the server).
                client_stream: b"hi".to_vec(),
                server_stream: b"yo".to_vec(),
                conn_state: "SF",
                // Server SYN (S), client SYN-ACK (h), the server's SYN-ACK repeats its SYN
                // (no letter), client data (d), server data (D), FINs, client's last ACK (a).
                history: "ShdDfFa".to_string(),
                orig_bytes: 2,
                resp_bytes: 2,
                anomalies: String::new(),
                client_is_orig: false,
            },
        ],
        malformed_datagrams: 0,
    };
    *port += 1;
    case
}

pub fn cases() -> Vec<Case> {
    let mut port = 41000;
    let mut all = tcp_overlap_cases(&mut port);
    all.extend(ttl_cases(&mut port));
    all.extend(rst_cases(&mut port));
    all.push(syn_data_case(&mut port));
    all.push(simultaneous_open_case(&mut port));
    all.extend(fragment_overlap_cases(&mut port));
    all.extend(teardrop_cases(&mut port));
    all.push(past_limit_case(&mut port));
    all
}

pub fn client_addr(v6: bool) -> IpAddr {
    if v6 {
        "2001:db8::1".parse().unwrap()
    } else {
        "192.0.2.1".parse().unwrap()
    }
}

pub fn server_addr(v6: bool) -> IpAddr {
    if v6 {
        "2001:db8::2".parse().unwrap()
    } else {
        "192.0.2.2".parse().unwrap()
    }
}

fn ip_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

const CLIENT_ISN: u32 = 0x1000_0000;
const SERVER_ISN: u32 = 0x7000_0000;

/// The TCP segment (header + data) with a correct checksum.
fn tcp_segment(case: &Case, p: &Pkt) -> Vec<u8> {
    let (src, dst) = addrs(case, p);
    let (sport, dport) = if p.from_client {
        (case.port, SERVER_PORT)
    } else {
        (SERVER_PORT, case.port)
    };
    let (isn, peer_isn) = if p.from_client {
        (CLIENT_ISN, SERVER_ISN)
    } else {
        (SERVER_ISN, CLIENT_ISN)
    };
    let (ack, flags) = match p.rel_ack {
        Some(a) => (peer_isn.wrapping_add(a), p.flags | ACK),
        None => (0, p.flags),
    };
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&isn.wrapping_add(p.rel_seq).to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(&p.data);
    let mut pseudo = ip_bytes(src);
    pseudo.extend(ip_bytes(dst));
    pseudo.extend_from_slice(&(t.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    let c = fold(sum(0, &pseudo) + sum(0, &t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn addrs(case: &Case, p: &Pkt) -> (IpAddr, IpAddr) {
    let (client, server) = (client_addr(case.v6), server_addr(case.v6));
    if p.from_client {
        (client, server)
    } else {
        (server, client)
    }
}

/// An IP packet: `payload` at fragment `offset` (bytes; None = not a fragment).
fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    id: u32,
    fragment: Option<(usize, bool)>,
    payload: &[u8],
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let flags_offset: u16 = match fragment {
                Some((offset, more)) => (offset / 8) as u16 | if more { 0x2000 } else { 0 },
                None => 0x4000,
            };
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            h.extend_from_slice(&(id as u16).to_be_bytes());
            h.extend_from_slice(&flags_offset.to_be_bytes());
            h.extend_from_slice(&[ttl, 6, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = fold(sum(0, &h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(payload);
            h
        }
        _ => {
            let ext = if fragment.is_some() { 8 } else { 0 };
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&((ext + payload.len()) as u16).to_be_bytes());
            h.push(if fragment.is_some() { 44 } else { 6 });
            h.push(ttl);
            h.extend(ip_bytes(src));
            h.extend(ip_bytes(dst));
            if let Some((offset, more)) = fragment {
                h.extend_from_slice(&[6, 0]);
                h.extend_from_slice(&(((offset / 8) as u16 * 8) | u16::from(more)).to_be_bytes());
                h.extend_from_slice(&id.to_be_bytes());
            }
            h.extend_from_slice(payload);
            h
        }
    }
}

/// The frames of one packet (several when it travels as fragments), raw IP.
fn frames(case: &Case, p: &Pkt, id: u32) -> Vec<Vec<u8>> {
    let (src, dst) = addrs(case, p);
    let segment = tcp_segment(case, p);
    match &p.carry {
        Carry::Whole => vec![ip_packet(src, dst, p.ttl, id, None, &segment)],
        Carry::Fragments(list) => list
            .iter()
            .map(|(offset, bytes, more, ttl)| {
                // Bytes inside the TCP header are the real header's.
                let bytes: Vec<u8> = bytes
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| {
                        if offset + i < 20 {
                            segment[offset + i]
                        } else {
                            b
                        }
                    })
                    .collect();
                ip_packet(src, dst, *ttl, id, Some((*offset, *more)), &bytes)
            })
            .collect(),
    }
}

/// A classic pcap (microseconds, LINKTYPE_RAW) of the cases of `file`: case i starts at
/// 1700000000 + 10 i seconds, its frames 1 ms apart.
pub fn pcap_bytes(file: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    let mut id = 1u32;
    for (i, case) in cases().iter().filter(|c| c.file == file).enumerate() {
        let mut j = 0u32;
        for p in &case.packets {
            for frame in frames(case, p, id) {
                out.extend_from_slice(&(1_700_000_000 + 10 * i as u32).to_le_bytes());
                out.extend_from_slice(&(1000 * j).to_le_bytes());
                out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
                out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
                out.extend_from_slice(&frame);
                j += 1;
            }
            id += 1;
        }
    }
    out
}

pub const FILES: [(&str, &str); 2] = [("tcp", "evasion-tcp.pcap"), ("frag", "evasion-frag.pcap")];

#[allow(dead_code)] // Also compiled into tests/evasion.rs, which has its own tests.
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for case in cases() {
            println!("{} (port {}): {}", case.name, case.port, case.what);
            for e in &case.expect {
                println!(
                    "  {} {} orig/resp bytes {}/{} anomalies [{}] client stream {:?} server \
                     stream {:?}",
                    e.conn_state,
                    e.history,
                    e.orig_bytes,
                    e.resp_bytes,
                    e.anomalies,
                    String::from_utf8_lossy(&e.client_stream),
                    String::from_utf8_lossy(&e.server_stream)
                );
            }
        }
        return Ok(());
    }
    let dir = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sample-captures".to_string());
    for (file, name) in FILES {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, pcap_bytes(file))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
