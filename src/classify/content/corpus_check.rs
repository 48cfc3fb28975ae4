//! Corpus agreement check for content classification (test only): feeds each corpus capture's
//! UDP payloads and naively ordered TCP payloads per 5-tuple to [`ContentClassifier`] and
//! compares the services found with Zeek's conn.log and nDPI's expected output.
//!
//! The TCP ordering here is a stand-in for real reassembly: per direction, bytes at or after
//! the next expected sequence number are fed as they arrive (retransmitted bytes skipped).
//! Runs when the corpus is present (`SESSIONSCOPE_CORPUS`, default `../shared/corpus`); writes
//! every disagreement to `target/content-corpus.txt`.

use super::{ContentClassifier, ContentInfo};
use crate::capture::CaptureReader;
use crate::classify::service_for_port;
use crate::decode::{Transport, decode};
use crate::session::Proto;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub(super) type Key = (u8, IpAddr, u16, IpAddr, u16);

struct Flow {
    /// Originator as first seen (or the SYN's sender).
    orig: (IpAddr, u16),
    classifier: ContentClassifier,
    next_seq: [Option<u32>; 2],
    by_port: Option<&'static str>,
}

/// What a flow got: from content, and what the port classifier would say without it.
pub(super) struct Found {
    pub info: Option<ContentInfo>,
    pub by_port: Option<&'static str>,
}

impl Found {
    fn content(&self) -> Option<&'static str> {
        self.info.as_ref().map(|info| info.service)
    }

    /// The service sessions.csv will show once content classification is wired in.
    fn combined(&self) -> Option<&'static str> {
        self.content().or(self.by_port)
    }
}

fn normalise(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b {
        (proto, a.0, a.1, b.0, b.1)
    } else {
        (proto, b.0, b.1, a.0, a.1)
    }
}

/// Services found per flow, keyed by the direction-independent 5-tuple.
pub(super) fn classify_capture(path: &Path) -> HashMap<Key, Found> {
    let mut flows: HashMap<Key, Flow> = HashMap::new();
    let Ok(mut reader) = CaptureReader::open(path) else {
        return HashMap::new();
    };
    while let Ok(Some(packet)) = reader.next_packet() {
        let _ = decode(packet.link, packet.data, &mut |ip| {
            if ip.fragment.is_some_and(|f| f.offset != 0) {
                return;
            }
            let (proto, sport, dport) = match ip.transport {
                Transport::Tcp {
                    src_port, dst_port, ..
                } => (Proto::Tcp, src_port, dst_port),
                Transport::Udp {
                    src_port, dst_port, ..
                } => (Proto::Udp, src_port, dst_port),
                _ => return,
            };
            let src = (ip.src, sport);
            let dst = (ip.dst, dport);
            let key = normalise(ip.protocol, src, dst);
            let flow = flows.entry(key).or_insert_with(|| {
                let orig = match ip.transport {
                    Transport::Tcp { flags, .. } if flags.syn() && flags.ack() => dst,
                    _ => src,
                };
                let (op, rp) = if orig == src {
                    (sport, dport)
                } else {
                    (dport, sport)
                };
                let by_port = service_for_port(proto, rp)
                    .or_else(|| (op < 1024).then(|| service_for_port(proto, op)).flatten());
                Flow {
                    orig,
                    classifier: ContentClassifier::new(proto, op, rp),
                    next_seq: [None, None],
                    by_port,
                }
            });
            let from_orig = src == flow.orig;
            if !flow.classifier.wants_more() {
                return;
            }
            match ip.transport {
                Transport::Udp { payload, .. } => flow.classifier.on_datagram(from_orig, payload),
                Transport::Tcp {
                    seq,
                    flags,
                    payload,
                    ..
                } => {
                    let side = usize::from(!from_orig);
                    let data_seq = seq.wrapping_add(u32::from(flags.syn()));
                    if payload.is_empty() {
                        if flags.syn() {
                            flow.next_seq[side] = Some(data_seq);
                        }
                        return;
                    }
                    let expected = *flow.next_seq[side].get_or_insert(data_seq);
                    let behind = expected.wrapping_sub(data_seq);
                    let fresh = if behind == 0 || behind > (1 << 30) {
                        payload
                    } else {
                        payload.get(behind as usize..).unwrap_or_default()
                    };
                    if fresh.is_empty() {
                        return;
                    }
                    let end = data_seq.wrapping_add(payload.len() as u32);
                    flow.next_seq[side] = Some(end);
                    flow.classifier.on_stream(from_orig, fresh);
                }
                _ => {}
            }
        });
    }
    flows
        .into_iter()
        .map(|(key, flow)| {
            let found = Found {
                info: flow.classifier.finish().map(super::Findings::into_info),
                by_port: flow.by_port,
            };
            (key, found)
        })
        .collect()
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SESSIONSCOPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    dir.join("captures").is_dir().then_some(dir)
}

/// Zeek's name for our service, for comparison (Zeek's DNS analyser reads mDNS, LLMNR, NBNS).
fn as_zeek(service: &str) -> &str {
    match service {
        "mdns" | "llmnr" | "netbios-ns" => "dns",
        other => other,
    }
}

/// nDPI's `NetBIOS` covers the name (which we, like Zeek, call `dns`), datagram and session
/// services (and SMB inside them).
fn agrees_with_ndpi(ours: Option<&str>, theirs: &str) -> bool {
    match ours {
        Some("dns" | "netbios-dgm" | "netbios-ssn" | "smb") if theirs == "netbios" => true,
        Some(s) => s.split(',').any(|s| s == theirs),
        None => false,
    }
}

const SUPPORTED_ZEEK: &[&str] = &[
    "ssl", "http", "dns", "ssh", "smtp", "imap", "pop3", "ftp", "quic", "ntp", "dhcp",
];

/// Our service for an nDPI protocol name, when we support it.
fn from_ndpi(name: &str) -> Option<&'static str> {
    let master = name.split('.').next().unwrap_or(name);
    Some(match master {
        "TLS" | "IMAPS" | "POP3S" | "SMTPS" | "DoH_DoT" => "ssl",
        "HTTP" => "http",
        "DNS" => "dns",
        "SSH" => "ssh",
        "QUIC" => "quic",
        "NTP" => "ntp",
        "DHCP" => "dhcp",
        "MDNS" | "LLMNR" => "dns",
        "SSDP" => "ssdp",
        "NetBIOS" => "netbios",
        "SMTP" => "smtp",
        "IMAP" => "imap",
        "POP3" => "pop3",
        "FTP_CONTROL" => "ftp",
        _ => return None,
    })
}

fn endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.rsplit_once(':')?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    Some((addr.parse().ok()?, port.parse().ok()?))
}

#[derive(Default)]
struct Score {
    total: u32,
    agree: u32,
    found: u32,
}

impl Score {
    fn line(&self, name: &str) -> String {
        let pct = |n: u32| {
            if self.total == 0 {
                0.0
            } else {
                100.0 * f64::from(n) / f64::from(self.total)
            }
        };
        format!(
            "{name}: {} sessions, same service {} ({:.1}%), flow found {} ({:.1}%)\n",
            self.total,
            self.agree,
            pct(self.agree),
            self.found,
            pct(self.found)
        )
    }
}

#[test]
fn corpus_agreement_with_zeek_and_ndpi() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("corpus not found; skipping");
        return;
    };
    let mut zeek = Score::default();
    let mut zeek_combined = Score::default();
    let mut ndpi = Score::default();
    let mut ndpi_dpi = Score::default();
    let mut ndpi_combined = Score::default();
    let mut report = String::new();
    let Ok(entries) = std::fs::read_dir(corpus.join("captures")) else {
        return;
    };
    let mut captures: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    captures.sort();
    for capture in captures {
        let stem = capture
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let expected = corpus.join("expected");
        let conn = std::fs::read_to_string(expected.join(format!("{stem}.zeek-conn.log")));
        let ndpi_out = std::fs::read_to_string(expected.join(format!("{stem}.ndpi.out")));
        if conn.is_err() && ndpi_out.is_err() {
            continue;
        }
        let ours = classify_capture(&capture);
        if let Ok(conn) = conn {
            let mut fields: Vec<&str> = Vec::new();
            for line in conn.lines() {
                if let Some(f) = line.strip_prefix("#fields\t") {
                    fields = f.split('\t').collect();
                    continue;
                }
                if line.starts_with('#') {
                    continue;
                }
                let row: HashMap<&str, &str> =
                    fields.iter().copied().zip(line.split('\t')).collect();
                let get = |k: &str| row.get(k).copied().unwrap_or("-");
                let services: Vec<&str> = get("service").split(',').collect();
                if !services.iter().any(|s| SUPPORTED_ZEEK.contains(s)) {
                    continue;
                }
                let proto = match get("proto") {
                    "tcp" => 6,
                    "udp" => 17,
                    _ => continue,
                };
                let (Ok(oh), Ok(op), Ok(rh), Ok(rp)) = (
                    get("id.orig_h").parse::<IpAddr>(),
                    get("id.orig_p").parse::<u16>(),
                    get("id.resp_h").parse::<IpAddr>(),
                    get("id.resp_p").parse::<u16>(),
                ) else {
                    continue;
                };
                let key = normalise(proto, (oh, op), (rh, rp));
                let found = ours.get(&key);
                // Ours can list several too (`imap,ssl` after STARTTLS).
                let agree = |s: Option<&str>| {
                    s.is_some_and(|s| s.split(',').all(|s| services.contains(&as_zeek(s))))
                };
                let service = found.and_then(Found::content);
                for (score, service) in [
                    (&mut zeek, service),
                    (&mut zeek_combined, found.and_then(Found::combined)),
                ] {
                    score.total += 1;
                    score.found += u32::from(found.is_some());
                    score.agree += u32::from(agree(service));
                }
                if !agree(service) {
                    let _ = writeln!(
                        report,
                        "zeek {stem}: {} {oh}:{op} -> {rh}:{rp} zeek={} ours={:?}",
                        get("proto"),
                        get("service"),
                        service
                    );
                }
            }
        }
        if let Ok(out) = ndpi_out {
            for line in out.lines() {
                let Some(proto_at) = line.find("[proto: ") else {
                    continue;
                };
                let head: Vec<&str> = line[..proto_at].split_whitespace().collect();
                let (proto, a, b) = match head.as_slice() {
                    [_, "TCP", a, _, b, ..] => (6, a, b),
                    [_, "UDP", a, _, b, ..] => (17, a, b),
                    _ => continue,
                };
                let rest = &line[proto_at + 8..];
                let name = rest
                    .split(']')
                    .next()
                    .and_then(|p| p.split('/').nth(1))
                    .unwrap_or("");
                let (Some(a), Some(b)) = (endpoint(a), endpoint(b)) else {
                    continue;
                };
                let Some(theirs) = from_ndpi(name) else {
                    // A protocol we do not name: anything we found is a possible false positive.
                    let key = normalise(proto, a, b);
                    if let Some(ours) = ours.get(&key).and_then(Found::content) {
                        let _ = writeln!(
                            report,
                            "extra {stem}: {a:?} <-> {b:?} ndpi={name} ours={ours}"
                        );
                    }
                    continue;
                };
                let by_port = line.contains("[Confidence: Match by port]");
                let key = normalise(proto, a, b);
                let found = ours.get(&key);
                let service = found.and_then(Found::content);
                let agree = agrees_with_ndpi(service, theirs);
                let combined = agrees_with_ndpi(found.and_then(Found::combined), theirs);
                for (score, agree) in [
                    (Some(&mut ndpi), agree),
                    ((!by_port).then_some(&mut ndpi_dpi), agree),
                    (Some(&mut ndpi_combined), combined),
                ] {
                    let Some(score) = score else { continue };
                    score.total += 1;
                    score.found += u32::from(found.is_some());
                    score.agree += u32::from(agree);
                }
                if !agree {
                    let _ = writeln!(
                        report,
                        "ndpi {stem}: {} {a:?} <-> {b:?} ndpi={name}{} ours={service:?}",
                        if proto == 6 { "tcp" } else { "udp" },
                        if by_port { " (by port)" } else { "" },
                    );
                }
            }
        }
    }
    let summary = format!(
        "{}{}{}{}{}",
        zeek.line("Zeek conn.log (supported services), content only"),
        zeek_combined.line("Zeek conn.log, content then port"),
        ndpi.line("nDPI (supported protocols), content only"),
        ndpi_dpi.line("nDPI DPI-confirmed flows, content only"),
        ndpi_combined.line("nDPI, content then port"),
    );
    eprintln!("{summary}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/content-corpus.txt");
    let _ = std::fs::write(&out, format!("{summary}\n{report}"));
    // The thresholds, on content evidence alone (see target/content-corpus.txt).
    assert!(
        zeek.total > 0 && ndpi.total > 0,
        "no comparable sessions in the corpus"
    );
    assert!(
        f64::from(zeek.agree) >= 0.95 * f64::from(zeek.total),
        "Zeek agreement below 95%:\n{summary}"
    );
    assert!(
        f64::from(ndpi.agree) >= 0.90 * f64::from(ndpi.total),
        "nDPI agreement below 90%:\n{summary}"
    );
}

#[test]
fn every_corpus_capture_is_read_without_panic() {
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(corpus.join("captures")) else {
        return;
    };
    for entry in entries.flatten() {
        let _ = classify_capture(&entry.path());
    }
}
