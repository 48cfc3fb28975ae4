//! Flood captures, generated deterministically and written as pcap directly.
//!
//! A flood is a SYN flood from spoofed sources (every SYN from its own address and port), then
//! many parallel TCP streams that each leave a hole in their data (handshake, a segment, a
//! missing segment, a later segment, never closed), with a few complete, ordinary sessions
//! interleaved through the end of the flood. The ordinary sessions send a packet often enough
//! that, under a `--max-sessions` cap above [`FloodSpec::real_every`] plus their number, they are
//! never the longest idle session, so they must come out exactly as [`RealSession`] describes.
//! Packets are one microsecond apart, so no timer expires during the flood: the cap alone holds.
//! Used by `tests/floods.rs` (small floods) and `examples/make_flood.rs` (big ones).

use std::io::{self, Write};
use std::net::Ipv4Addr;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct FloodSpec {
    /// SYNs, each from a different spoofed source.
    pub syn_flood: u32,
    /// Parallel TCP streams with a hole in their data.
    pub streams_with_holes: u32,
    /// Complete ordinary sessions interleaved with the flood.
    pub real_sessions: u16,
    /// Flood packets between two steps of the ordinary sessions (each step sends one packet
    /// of every ordinary session).
    pub real_every: u32,
    /// First IP fragments (UDP, more-fragments set, random ids) never completed, sent before
    /// the SYN flood.
    pub incomplete_fragments: u32,
}

/// Payload bytes of each incomplete fragment (a multiple of 8).
pub const FRAGMENT_PAYLOAD_BYTES: usize = 1200;

/// An ordinary session as it must appear in sessions.csv (values from how it was made).
#[derive(Debug, Clone)]
pub struct RealSession {
    pub orig_h: Ipv4Addr,
    pub orig_p: u16,
    pub resp_h: Ipv4Addr,
    pub resp_p: u16,
    pub orig_pkts: u64,
    pub resp_pkts: u64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub orig_ip_bytes: u64,
    pub resp_ip_bytes: u64,
    pub history: &'static str,
    pub conn_state: &'static str,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct FloodFacts {
    pub packets: u64,
    /// Sessions a tracker with no cap would start: one per spoofed SYN, one per stream, one per
    /// ordinary session.
    pub sessions: u64,
    pub real: Vec<RealSession>,
}

const FIRST_SECOND: u32 = 1_700_000_000;
/// The attacked server.
const VICTIM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
/// The server of the ordinary sessions.
const REAL_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// Payload sizes of an ordinary session's request and response.
const REQUEST_BYTES: u32 = 100;
const RESPONSE_BYTES: u32 = 200;

struct Writer<W: Write> {
    out: W,
    packets: u64,
    frame: Vec<u8>,
}

impl<W: Write> Writer<W> {
    fn header(&mut self) -> io::Result<()> {
        self.out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        self.out.write_all(&2u16.to_le_bytes())?;
        self.out.write_all(&4u16.to_le_bytes())?;
        self.out.write_all(&[0; 8])?;
        self.out.write_all(&65535u32.to_le_bytes())?;
        // LINKTYPE_ETHERNET
        self.out.write_all(&1u32.to_le_bytes())
    }

    /// One Ethernet/IPv4/TCP frame (no options), timestamped one microsecond after the last.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        src: Ipv4Addr,
        sport: u16,
        dst: Ipv4Addr,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload_len: u32,
    ) -> io::Result<()> {
        let frame = &mut self.frame;
        frame.clear();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = 40 + payload_len as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let sum = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let mut tcp = Vec::with_capacity(20 + payload_len as usize);
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
        tcp.extend((0..payload_len).map(|i| b'a' + (i % 26) as u8));
        let pseudo = {
            let mut p = [0u8; 12];
            p[0..4].copy_from_slice(&src.octets());
            p[4..8].copy_from_slice(&dst.octets());
            p[9] = 6;
            p[10..12].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
            p
        };
        let sum = checksum(&tcp, sum_words(&pseudo));
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&tcp);
        self.record()
    }
}

fn sum_words(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

fn checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = initial + sum_words(bytes);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl<W: Write> Writer<W> {
    /// The first fragment of a UDP datagram from `src` to the victim, id `id`, never completed.
    fn first_fragment(&mut self, src: Ipv4Addr, id: u16) -> io::Result<()> {
        let frame = &mut self.frame;
        frame.clear();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + FRAGMENT_PAYLOAD_BYTES) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6] = 0x20; // more fragments, offset 0
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&VICTIM.octets());
        let sum = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        // UDP header claiming a datagram twice this long, then filler.
        frame.extend_from_slice(&[0x13, 0x88, 0x00, 0x35]);
        frame.extend_from_slice(&((2 * FRAGMENT_PAYLOAD_BYTES) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.resize(frame.len() + FRAGMENT_PAYLOAD_BYTES - 8, 0x5a);
        self.record()
    }

    fn record(&mut self) -> io::Result<()> {
        let micros = self.packets;
        self.packets += 1;
        let secs = FIRST_SECOND + (micros / 1_000_000) as u32;
        let sub = (micros % 1_000_000) as u32;
        self.out.write_all(&secs.to_le_bytes())?;
        self.out.write_all(&sub.to_le_bytes())?;
        let len = (self.frame.len() as u32).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&len)?;
        self.out.write_all(&self.frame)
    }
}

/// The i-th spoofed source, distinct for every i below 2^28: the address from the high bits
/// (10.0.0.0/8), the port from the low four bits.
fn spoofed(i: u32) -> (Ipv4Addr, u16) {
    let addr = Ipv4Addr::from(0x0a00_0000u32 | (i >> 4));
    let port = 1024 + (i & 0xf) as u16 * 4000 + (i >> 20) as u16 % 4000;
    (addr, port)
}

/// The i-th stream's client.
fn stream_client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(0xac10_0000u32 | (i >> 3)),
        20000 + (i & 7) as u16,
    )
}

/// Packet `step` (0..9) of ordinary session `j`, or none past its end.
fn real_packet<W: Write>(w: &mut Writer<W>, j: u16, step: u32) -> io::Result<()> {
    let client = Ipv4Addr::new(203, 0, 113, 1 + (j % 250) as u8);
    let cport = 40000 + j;
    let (isn_c, isn_s) = (1000 + u32::from(j), 5000 + u32::from(j));
    let (c, s) = ((client, cport), (REAL_SERVER, 80u16));
    let req_end = isn_c + 1 + REQUEST_BYTES;
    let resp_end = isn_s + 1 + RESPONSE_BYTES;
    let send =
        |w: &mut Writer<W>, from: (Ipv4Addr, u16), to: (Ipv4Addr, u16), seq, ack, flags, len| {
            w.tcp(from.0, from.1, to.0, to.1, seq, ack, flags, len)
        };
    match step {
        0 => send(w, c, s, isn_c, 0, SYN, 0),
        1 => send(w, s, c, isn_s, isn_c + 1, SYN | ACK, 0),
        2 => send(w, c, s, isn_c + 1, isn_s + 1, ACK, 0),
        3 => send(w, c, s, isn_c + 1, isn_s + 1, PSH | ACK, REQUEST_BYTES),
        4 => send(w, s, c, isn_s + 1, req_end, PSH | ACK, RESPONSE_BYTES),
        5 => send(w, c, s, req_end, resp_end, ACK, 0),
        6 => send(w, c, s, req_end, resp_end, FIN | ACK, 0),
        7 => send(w, s, c, resp_end, req_end + 1, FIN | ACK, 0),
        8 => send(w, c, s, req_end + 1, resp_end + 1, ACK, 0),
        _ => Ok(()),
    }
}

const REAL_STEPS: u32 = 9;

fn real_session(j: u16) -> RealSession {
    RealSession {
        orig_h: Ipv4Addr::new(203, 0, 113, 1 + (j % 250) as u8),
        orig_p: 40000 + j,
        resp_h: REAL_SERVER,
        resp_p: 80,
        // Client: SYN, ACK, request, ACK, FIN, last ACK. Server: SYN-ACK, response, FIN.
        orig_pkts: 6,
        resp_pkts: 3,
        orig_bytes: u64::from(REQUEST_BYTES),
        resp_bytes: u64::from(RESPONSE_BYTES),
        orig_ip_bytes: 6 * 40 + u64::from(REQUEST_BYTES),
        resp_ip_bytes: 3 * 40 + u64::from(RESPONSE_BYTES),
        // Zeek's letters: S syn, h syn-ack, A pure ack, D/d data, F/f fin (first of each kind
        // per direction); the server never sends a pure ACK, so no 'a'.
        history: "ShADdFf",
        conn_state: "SF",
    }
}

/// Packet `round` (0..5) of stream `i`: SYN, SYN-ACK, ACK, bytes 1..=100, bytes 201..=300.
fn stream_packet<W: Write>(w: &mut Writer<W>, i: u32, round: u32) -> io::Result<()> {
    let (client, cport) = stream_client(i);
    let (isn_c, isn_s) = (i.wrapping_mul(2_654_435_761), 77);
    match round {
        0 => w.tcp(client, cport, VICTIM, 443, isn_c, 0, SYN, 0),
        1 => w.tcp(
            VICTIM,
            443,
            client,
            cport,
            isn_s,
            isn_c.wrapping_add(1),
            SYN | ACK,
            0,
        ),
        2 => w.tcp(
            client,
            cport,
            VICTIM,
            443,
            isn_c.wrapping_add(1),
            isn_s + 1,
            ACK,
            0,
        ),
        3 => w.tcp(
            client,
            cport,
            VICTIM,
            443,
            isn_c.wrapping_add(1),
            isn_s + 1,
            PSH | ACK,
            100,
        ),
        _ => w.tcp(
            client,
            cport,
            VICTIM,
            443,
            isn_c.wrapping_add(201),
            isn_s + 1,
            PSH | ACK,
            100,
        ),
    }
}

const STREAM_ROUNDS: u32 = 5;

/// Writes the flood as a pcap file to `out`.
pub fn write_flood<W: Write>(spec: FloodSpec, out: W) -> io::Result<FloodFacts> {
    let mut w = Writer {
        out,
        packets: 0,
        frame: Vec::with_capacity(128),
    };
    w.header()?;
    let fragments = u64::from(spec.incomplete_fragments);
    let flood_packets = fragments
        + u64::from(spec.syn_flood)
        + u64::from(spec.streams_with_holes) * u64::from(STREAM_ROUNDS);
    let every = u64::from(spec.real_every.max(1));
    // The ordinary sessions run through the end of the flood, when the table is fullest, and
    // finish just before the capture ends.
    let real_start = flood_packets.saturating_sub(u64::from(REAL_STEPS) * every);
    let mut real_step = 0u32;
    let mut flood_index = 0u64;
    let emit_flood = |w: &mut Writer<W>, index: u64| -> io::Result<()> {
        if index < fragments {
            // Ids from a multiplicative hash: random-looking, never repeated by one source.
            let (src, _) = spoofed(index as u32);
            return w.first_fragment(src, (index as u32).wrapping_mul(40_503) as u16);
        }
        let index = index - fragments;
        if index < u64::from(spec.syn_flood) {
            let (src, sport) = spoofed(index as u32);
            return w.tcp(
                src,
                sport,
                VICTIM,
                80,
                (index as u32).wrapping_mul(7919),
                0,
                SYN,
                0,
            );
        }
        let rest = index - u64::from(spec.syn_flood);
        let n = u64::from(spec.streams_with_holes.max(1));
        stream_packet(w, (rest % n) as u32, (rest / n) as u32)
    };
    while flood_index < flood_packets || real_step < REAL_STEPS {
        if flood_index >= real_start
            && (flood_index - real_start).is_multiple_of(every)
            && real_step < REAL_STEPS
            && spec.real_sessions > 0
        {
            for j in 0..spec.real_sessions {
                real_packet(&mut w, j, real_step)?;
            }
            real_step += 1;
        }
        if flood_index < flood_packets {
            emit_flood(&mut w, flood_index)?;
        }
        flood_index += 1;
    }
    w.out.flush()?;
    Ok(FloodFacts {
        packets: w.packets,
        sessions: u64::from(spec.syn_flood)
            + u64::from(spec.streams_with_holes)
            + u64::from(spec.real_sessions),
        real: (0..spec.real_sessions).map(real_session).collect(),
    })
}
