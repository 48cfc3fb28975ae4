//! nDPI agreement measured through the full analysis (`pipeline::analyze`: decoding, session
//! tracking, TCP reassembly, content classification, then the port fallback), per flow, on the
//! corpus captures that come with nDPI's expected output (`expected/*.ndpi.out`).
//!
//! A flow is matched by protocol and direction-independent 5-tuple; where nDPI names a protocol
//! sessionscope supports, the session's `service` column must name the same one (mapping below).
//! Prints the figures and every disagreement (also written to
//! `target/ndpi-agreement.txt`); the explained ones are in docs/zeek-differences.md. Without the
//! corpus the test passes with a notice, unless `CI` or `SESSIONSCOPE_REQUIRE_CORPUS` is set or
//! an explicit `SESSIONSCOPE_CORPUS` does not exist.

use sessionscope::config::TrackerConfig;
use sessionscope::pipeline::{AnalyzeOptions, analyze};
use sessionscope::session::{Proto, ServiceEvidence};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The threshold, in percent of the flows where nDPI names a protocol we support.
const MIN_AGREEMENT: f64 = 90.0;

type Key = (u8, IpAddr, u16, IpAddr, u16);

fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

fn corpus_dir() -> Option<PathBuf> {
    let explicit = std::env::var_os("SESSIONSCOPE_CORPUS");
    let dir = match &explicit {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    };
    if dir.join("captures").is_dir() && dir.join("expected").is_dir() {
        return Some(dir);
    }
    if explicit.is_some() || env_is_set("CI") || env_is_set("SESSIONSCOPE_REQUIRE_CORPUS") {
        panic!("corpus required but not found at {}", dir.display());
    }
    eprintln!(
        "corpus not found at {}; set SESSIONSCOPE_CORPUS: skipping",
        dir.display()
    );
    None
}

fn normalise(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b {
        (proto, a.0, a.1, b.0, b.1)
    } else {
        (proto, b.0, b.1, a.0, a.1)
    }
}

/// Our service for an nDPI protocol (its master protocol, before any `.`), when we support it.
/// `netbios` stands for our NetBIOS family (see [`agrees`]).
fn from_ndpi(name: &str) -> Option<&'static str> {
    let master = name.split('.').next().unwrap_or(name);
    Some(match master {
        "TLS" | "IMAPS" | "POP3S" | "SMTPS" | "FTPS" | "DoH_DoT" => "ssl",
        "HTTP" => "http",
        // Zeek's DNS analyser reads mDNS and LLMNR and names them `dns`; so do we.
        "DNS" | "MDNS" | "LLMNR" => "dns",
        "SSH" => "ssh",
        "QUIC" => "quic",
        "NTP" => "ntp",
        "DHCP" => "dhcp",
        "SSDP" => "ssdp",
        "NetBIOS" => "netbios",
        "SMTP" => "smtp",
        "IMAP" => "imap",
        "POP3" => "pop3",
        "FTP_CONTROL" => "ftp",
        _ => return None,
    })
}

/// One of our service names (`imap,ssl` counts for `imap` and for `ssl`) against nDPI's.
fn agrees(ours: &str, theirs: &str) -> bool {
    ours.split(',').any(|part| match theirs {
        // nDPI's NetBIOS covers the name service (which we, like Zeek, call `dns`), datagrams,
        // sessions and SMB inside them.
        "netbios" => matches!(part, "dns" | "netbios-dgm" | "netbios-ssn" | "smb"),
        _ => part == theirs,
    })
}

fn endpoint(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.rsplit_once(':')?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    Some((addr.parse().ok()?, port.parse().ok()?))
}

/// What our sessions with one 5-tuple said: the service column, and whether content named it.
#[derive(Default)]
struct Ours {
    services: Vec<(String, bool)>,
}

fn analyse(capture: &Path) -> HashMap<Key, Ours> {
    let options = AnalyzeOptions {
        inputs: vec![capture.to_path_buf()],
        tracker: TrackerConfig::default(),
        progress: false,
        streams: None,
        threads: 1,
    };
    let mut flows: HashMap<Key, Ours> = HashMap::new();
    let _ = analyze(&options, &mut |record| {
        let proto = match record.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            _ => return,
        };
        let key = normalise(
            proto,
            (record.orig.addr, record.orig.port),
            (record.resp.addr, record.resp.port),
        );
        let service = record.service.unwrap_or_default().to_string();
        let by_content = record.service_evidence == ServiceEvidence::Content;
        flows
            .entry(key)
            .or_default()
            .services
            .push((service, by_content));
    });
    flows
}

#[derive(Default)]
struct Tally {
    flows: u32,
    found: u32,
    agree: u32,
    agree_by_content: u32,
}

fn pct(n: u32, of: u32) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * f64::from(n) / f64::from(of)
    }
}

#[test]
fn ndpi_agreement_through_the_full_analysis() {
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let mut captures: Vec<PathBuf> = std::fs::read_dir(corpus.join("captures"))
        .expect("captures/")
        .flatten()
        .map(|e| e.path())
        .collect();
    captures.sort();
    let mut tally = Tally::default();
    let mut report = String::new();
    for capture in captures {
        let stem = capture
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let Ok(expected) =
            std::fs::read_to_string(corpus.join("expected").join(format!("{stem}.ndpi.out")))
        else {
            continue;
        };
        let ours = analyse(&capture);
        for line in expected.lines() {
            let Some(at) = line.find("[proto: ") else {
                continue;
            };
            let head: Vec<&str> = line[..at].split_whitespace().collect();
            let (proto, a, b) = match head.as_slice() {
                [_, "TCP", a, _, b, ..] => (6u8, *a, *b),
                [_, "UDP", a, _, b, ..] => (17u8, *a, *b),
                _ => continue,
            };
            let name = line[at + 8..]
                .split(']')
                .next()
                .and_then(|p| p.split('/').nth(1))
                .unwrap_or_default();
            let (Some(theirs), Some(a), Some(b)) = (from_ndpi(name), endpoint(a), endpoint(b))
            else {
                continue;
            };
            tally.flows += 1;
            let found = ours.get(&normalise(proto, a, b));
            tally.found += u32::from(found.is_some());
            let services = found.map(|o| o.services.as_slice()).unwrap_or_default();
            let agree = services.iter().any(|(s, _)| agrees(s, theirs));
            let by_content = services.iter().any(|(s, c)| *c && agrees(s, theirs));
            tally.agree += u32::from(agree);
            tally.agree_by_content += u32::from(by_content);
            if !agree {
                let shown: Vec<&str> = services.iter().map(|(s, _)| s.as_str()).collect();
                let _ = writeln!(
                    report,
                    "{stem}: {} {a:?} <-> {b:?} nDPI={name} ours={}",
                    if proto == 6 { "tcp" } else { "udp" },
                    if found.is_none() {
                        "(no session)".to_string()
                    } else {
                        format!("{shown:?}")
                    }
                );
            }
        }
    }
    let summary = format!(
        "nDPI names a protocol we support for {} flows; a session found for {} ({:.1}%); \
         same service {} ({:.1}%, target >= {MIN_AGREEMENT}%), of which named from content {} \
         ({:.1}%)",
        tally.flows,
        tally.found,
        pct(tally.found, tally.flows),
        tally.agree,
        pct(tally.agree, tally.flows),
        tally.agree_by_content,
        pct(tally.agree_by_content, tally.flows),
    );
    eprintln!("{summary}\ndisagreements:\n{report}");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ndpi-agreement.txt");
    let _ = std::fs::write(&out, format!("{summary}\n{report}"));
    assert!(tally.flows > 0, "no nDPI flows with a supported protocol");
    assert!(
        pct(tally.agree, tally.flows) >= MIN_AGREEMENT,
        "nDPI agreement below {MIN_AGREEMENT}%: {summary}\n{report}"
    );
}
