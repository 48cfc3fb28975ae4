//! Fuzz targets: one function per stage that takes arbitrary bytes, runs the code under test
//! and checks what must hold for any input (no panic is checked by the caller).
//!
//! Shared by the fuzzer (`examples/fuzz/main.rs`) and the regression tests
//! (`tests/fuzz_regressions.rs`), which replay `tests/regressions/<target>/*` through the same
//! functions. A new parser plugs in by adding one [`Target`] to [`TARGETS`] (with its input
//! kind, which chooses the seeds and the mutations) and, if it reads a session's payload, by
//! being called from the `session` target as well.

use sessionscope::capture::{CaptureReader, LinkType, PacketSource};
use sessionscope::classify;
use sessionscope::config::{ServerPorts, TrackerConfig};
use sessionscope::decode::{self, Transport};
use sessionscope::pipeline::Analysis;
use sessionscope::report::community_id::CommunityIdHasher;
use sessionscope::report::terminal::{TerminalOptions, render};
use sessionscope::session::{
    ConnState, DirectionStats, EndReason, Endpoint, History, Proto, ServiceEvidence, SessionRecord,
    Uid,
};
use std::io::{Cursor, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// What kind of bytes a target reads: decides its seeds and how they are mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole capture file.
    Capture,
    /// `[link type: u16 big-endian][frame]`.
    Frame,
    /// Free-form bytes (a payload, text).
    Bytes,
}

pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub kind: Kind,
    pub run: fn(&[u8]),
    /// Share of the fuzzing time, in parts of the total.
    pub weight: u32,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "capture",
        about: "CaptureReader over any bytes, read whole and in small pieces (same packets)",
        kind: Kind::Capture,
        run: capture,
        weight: 4,
    },
    Target {
        name: "decode",
        about: "decode::decode over any link type and frame; every view inside the frame",
        kind: Kind::Frame,
        run: decode_frame,
        weight: 4,
    },
    Target {
        name: "session",
        about: "a capture through Analysis (small timeouts, --max-sessions 8), summary rendered",
        kind: Kind::Capture,
        run: session,
        weight: 5,
    },
    Target {
        name: "icmp-quote",
        about: "decode::parse_quoted over any ICMP error payload",
        kind: Kind::Bytes,
        run: icmp_quote,
        weight: 1,
    },
    Target {
        name: "classify",
        about: "classify::classify over any session ports, ServerPorts::parse over any text",
        kind: Kind::Bytes,
        run: classify_session,
        weight: 1,
    },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// ---------------------------------------------------------------------------------------------
// capture

/// A reader that hands out the input a few bytes at a time, as a pipe might.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        // Vary the piece size so block boundaries fall everywhere.
        self.step = 1 + (self.step * 7 + 3) % 61;
        Ok(n)
    }
}

/// What a reader produced: one line per packet, and how it ended.
fn read_all(reader: Result<CaptureReader, sessionscope::capture::CaptureError>) -> Vec<String> {
    let mut out = Vec::new();
    let mut reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            out.push(format!("open error: {e}"));
            return out;
        }
    };
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                assert!(
                    p.data.len() <= sessionscope::capture::MAX_BLOCK_BYTES,
                    "packet larger than the block cap"
                );
                out.push(format!(
                    "{} {} {} {} {:016x}",
                    p.number,
                    p.ts.0,
                    p.link.0,
                    p.wire_len,
                    fnv(p.data)
                ));
            }
            Ok(None) => break,
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with("fuzz-input: "), "error without file name");
                out.push(format!("error: {text}"));
                // After an error the reader is finished.
                assert!(matches!(reader.next_packet(), Ok(None)));
                break;
            }
        }
    }
    out
}

fn capture(data: &[u8]) {
    let whole = read_all(CaptureReader::from_reader(
        "fuzz-input".to_string(),
        Box::new(Cursor::new(data.to_vec())),
    ));
    let trickled = read_all(CaptureReader::from_reader(
        "fuzz-input".to_string(),
        Box::new(Trickle {
            data: data.to_vec(),
            at: 0,
            step: 1 + data.len() % 13,
        }),
    ));
    assert_eq!(
        whole, trickled,
        "reading in small pieces gave different packets"
    );
}

// ---------------------------------------------------------------------------------------------
// decode

fn within(frame: &[u8], part: &[u8]) -> bool {
    let (start, end) = (
        frame.as_ptr() as usize,
        frame.as_ptr() as usize + frame.len(),
    );
    let p = part.as_ptr() as usize;
    part.is_empty() || (p >= start && p + part.len() <= end)
}

fn decode_frame(data: &[u8]) {
    let Some((link, frame)) = data.split_first_chunk::<2>() else {
        return;
    };
    let link = LinkType(u32::from(u16::from_be_bytes(*link)));
    let mut layers = 0u32;
    let _ = decode::decode(link, frame, &mut |ip| {
        layers += 1;
        assert!(within(frame, ip.l4), "l4 outside the frame");
        assert!(within(frame, ip.ip_header), "ip header outside the frame");
        assert!(ip.depth < 64, "absurd tunnel depth");
        let payload = match ip.transport {
            Transport::Tcp { payload, .. }
            | Transport::Udp { payload, .. }
            | Transport::Icmp { payload, .. } => payload,
            Transport::Other { .. } => &[],
        };
        assert!(within(frame, payload), "payload outside the frame");
        let _ = decode::verify_checksums(ip);
        let _ = ip.transport.icmp_error_quote();
    });
    assert!(layers <= 64, "too many layers in one frame");
}

// ---------------------------------------------------------------------------------------------
// session

fn session(data: &[u8]) {
    let flags = data.last().copied().unwrap_or(0);
    let config = TrackerConfig {
        tcp_inactivity: Duration::from_secs(3),
        udp_inactivity: Duration::from_secs(2),
        icmp_inactivity: Duration::from_secs(2),
        other_inactivity: Duration::from_secs(2),
        tcp_close_delay: Duration::from_millis(500),
        tcp_reset_delay: Duration::from_millis(500),
        dns_session_timeout: Duration::from_secs(1),
        max_sessions: 8,
        server_ports: if flags & 1 == 0 {
            ServerPorts::zeek_default()
        } else {
            ServerPorts::none()
        },
        verify_checksums: flags & 2 != 0,
        classify_content: flags & 4 == 0,
        // Small limits so the fuzzer reaches fragment timeouts and evictions.
        fragments: sessionscope::config::FragmentConfig {
            timeout: Duration::from_secs(2),
            max_datagrams: 4,
            max_bytes: 1 << 16,
        },
        // Small, so that held out-of-order bytes reach the reorder limit.
        content_reorder_bytes: 256,
    };
    let mut analysis = Analysis::new(config);
    let hasher = CommunityIdHasher::new(0);
    let mut sessions = 0u64;
    let mut check = |record: &SessionRecord| {
        sessions += 1;
        let _ = hasher.session(record);
        assert!(record.history.as_str().len() <= 64, "history unbounded");
        let _ = record.duration_nanos();
    };
    let mut reader = match CaptureReader::from_reader(
        "fuzz-input".to_string(),
        Box::new(Cursor::new(data.to_vec())),
    ) {
        Ok(reader) => reader,
        Err(e) => {
            analysis.input_failed("fuzz-input", e.to_string());
            let _ = analysis.finish(&mut check);
            return;
        }
    };
    let _ = analysis.feed(&mut reader, &mut check, &mut |_| true);
    assert!(
        analysis.live_sessions() <= 8,
        "more live sessions than the cap"
    );
    let _ = reader.bytes_read();
    let summary = analysis.finish(&mut check);
    for color in [false, true] {
        let text = render(&summary, &TerminalOptions { width: 80, color });
        if !color {
            assert!(!text.contains('\x1b'), "escape in a colourless summary");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// small parsers

fn icmp_quote(data: &[u8]) {
    if let Some(flow) = decode::parse_quoted(data) {
        let same_family = matches!(
            (flow.src, flow.dst),
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_))
        );
        assert!(same_family, "quoted flow mixes address families");
    }
}

fn classify_session(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let proto = match byte(0) % 4 {
        0 => Proto::Tcp,
        1 => Proto::Udp,
        2 => Proto::Icmp,
        _ => Proto::Other(byte(1)),
    };
    let endpoint = |addr: IpAddr, port| Endpoint { addr, port };
    let mut record = SessionRecord {
        uid: Uid::default(),
        start: Default::default(),
        last: Default::default(),
        orig: endpoint(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            u16::from_be_bytes([byte(2), byte(3)]),
        ),
        resp: endpoint(
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            u16::from_be_bytes([byte(4), byte(5)]),
        ),
        proto,
        ip_proto: byte(1),
        orig_stats: DirectionStats::default(),
        resp_stats: DirectionStats::default(),
        conn_state: ConnState::OTH,
        history: History::default(),
        missed_bytes: 0,
        service: None,
        service_evidence: ServiceEvidence::None,
        end_reason: EndReason::CaptureEnd,
        tunnel_depth: 0,
        related_uid: None,
        content: None,
        anomalies: Default::default(),
    };
    classify::classify(&mut record);
    assert_eq!(
        record.service.is_some(),
        record.service_evidence == ServiceEvidence::Port,
        "service and evidence disagree"
    );
    if !matches!(proto, Proto::Tcp | Proto::Udp) {
        assert!(
            record.service.is_none(),
            "a service for a portless protocol"
        );
    }
    let text = String::from_utf8_lossy(data.get(6..).unwrap_or_default());
    if let Ok(ports) = ServerPorts::parse(&text) {
        let _ = ports.contains(6, u16::from_be_bytes([byte(2), byte(3)]));
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Seed inputs for a target, built from capture files: the raw files (cut to the size limit)
/// for capture targets, each distinct frame for the decode target, and ICMP error payloads and
/// port pairs for the small parsers.
pub fn seeds_from_captures(
    kind: Kind,
    files: &[std::path::PathBuf],
    max_len: usize,
) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |seed: Vec<u8>, seeds: &mut Vec<Vec<u8>>| {
        if seen.insert(fnv(&seed)) {
            seeds.push(seed);
        }
    };
    for file in files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        match kind {
            Kind::Capture => {
                let mut seed = bytes.clone();
                seed.truncate(max_len);
                add(seed, &mut seeds);
            }
            Kind::Frame | Kind::Bytes => {
                let Ok(mut reader) = CaptureReader::from_reader(
                    file.display().to_string(),
                    Box::new(Cursor::new(bytes)),
                ) else {
                    continue;
                };
                let mut taken = 0;
                while let Ok(Some(packet)) = PacketSource::next_packet(&mut reader) {
                    if taken >= 64 {
                        break;
                    }
                    taken += 1;
                    let Ok(link) = u16::try_from(packet.link.0) else {
                        continue;
                    };
                    if kind == Kind::Frame {
                        let mut seed = link.to_be_bytes().to_vec();
                        seed.extend_from_slice(packet.data);
                        seed.truncate(max_len);
                        add(seed, &mut seeds);
                        continue;
                    }
                    let mut payloads = Vec::new();
                    let _ =
                        decode::decode(packet.link, packet.data, &mut |ip| match ip.transport {
                            Transport::Icmp { payload, .. } => payloads.push(payload.to_vec()),
                            Transport::Tcp {
                                src_port, dst_port, ..
                            }
                            | Transport::Udp {
                                src_port, dst_port, ..
                            } => {
                                let mut seed = vec![u8::from(ip.protocol == 17), ip.protocol];
                                seed.extend_from_slice(&src_port.to_be_bytes());
                                seed.extend_from_slice(&dst_port.to_be_bytes());
                                seed.extend_from_slice(b"zeek,tcp/8443");
                                payloads.push(seed);
                            }
                            Transport::Other { .. } => {}
                        });
                    for payload in payloads {
                        add(payload, &mut seeds);
                    }
                }
            }
        }
    }
    seeds
}
