//! Link types beyond Ethernet, read end to end by the binary.
//!
//! - `sample-captures/nflog.pcap`: a real NFLOG capture (`scripts/make-nflog-capture.sh`):
//!   expected sessions from what its programs sent.
//! - Third-party captures in `../shared/corpus` with link types IP over InfiniBand, Apple PKTAP,
//!   SLIP and RFC 1483 ATM: every TCP and UDP conversation tshark lists must be found, with
//!   tshark's frame count, and its byte count once the link headers (sizes from each format's
//!   specification) are taken off. Without `../shared` these pass with a notice unless `CI` or
//!   `SESSIONSCOPE_REQUIRE_CORPUS` is set.

#[path = "support/csv_rows.rs"]
mod csv_rows;

use csv_rows::Row;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `sessionscope analyze CAPTURE --out DIR` and returns sessions.csv's rows and stdout.
fn analyze(capture: &Path, name: &str) -> (Vec<Row>, String) {
    let out = std::env::temp_dir().join(format!(
        "sessionscope-link-types-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let result = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(capture)
        .args(["--no-progress", "--color", "never", "--out"])
        .arg(&out)
        .output()
        .expect("run sessionscope");
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}: {stdout}\n{}",
        capture.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let (_, rows) = csv_rows::read(&out.join("sessions.csv"));
    let _ = std::fs::remove_dir_all(&out);
    (rows, stdout)
}

fn num(row: &Row, column: &str) -> u64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column}: {row:?}"))
}

#[test]
fn nflog_sample_capture_gives_the_sessions_its_programs_made() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures/nflog.pcap");
    let (rows, stdout) = analyze(&capture, "nflog");
    // 14 logged packets (3 + 1 datagrams, 10 TCP segments), every one decoded.
    assert!(stdout.contains("nflog"), "{stdout}");
    assert!(stdout.contains("Decoded (IP)    14  (100.0%)"), "{stdout}");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let find = |proto: &str, resp_p: &str, orig_h: &str| {
        rows.iter()
            .find(|r| r["proto"] == proto && r["resp_p"] == resp_p && r["orig_h"] == orig_h)
            .unwrap_or_else(|| panic!("no {proto} session to {resp_p} from {orig_h}: {rows:?}"))
    };
    // Three "hello N" datagrams (7 bytes) from one socket: 20 + 8 + 7 IP bytes each.
    let v4 = find("udp", "9999", "127.0.0.1");
    assert_eq!(
        (
            num(v4, "orig_pkts"),
            num(v4, "orig_bytes"),
            num(v4, "orig_ip_bytes")
        ),
        (3, 21, 105)
    );
    assert_eq!((v4["conn_state"].as_str(), num(v4, "resp_pkts")), ("S0", 0));
    // One "v6" datagram: 40 + 8 + 2 IP bytes.
    let v6 = find("udp", "9999", "::1");
    assert_eq!(
        (
            num(v6, "orig_pkts"),
            num(v6, "orig_bytes"),
            num(v6, "orig_ip_bytes")
        ),
        (1, 2, 50)
    );
    // "ping" and "pong" over a connection both sides close: five segments each way (SYN of 60
    // IP bytes with its options, then 52-byte headers with timestamps, 56 with the 4 bytes).
    let tcp = find("tcp", "8080", "127.0.0.1");
    assert_eq!(tcp["conn_state"], "SF");
    assert_eq!(tcp["history"], "ShADadfF");
    for side in ["orig", "resp"] {
        assert_eq!(
            (
                num(tcp, &format!("{side}_pkts")),
                num(tcp, &format!("{side}_bytes")),
                num(tcp, &format!("{side}_ip_bytes"))
            ),
            (5, 4, 60 + 52 + 56 + 52 + 52),
            "{side}: {tcp:?}"
        );
    }
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SESSIONSCOPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("captures").is_dir() {
        return Some(dir);
    }
    let required = std::env::var_os("CI").is_some()
        || std::env::var_os("SESSIONSCOPE_REQUIRE_CORPUS").is_some();
    assert!(!required, "the corpus is missing at {}", dir.display());
    eprintln!(
        "notice: no corpus at {}: link-type checks skipped",
        dir.display()
    );
    None
}

/// A conversation of `tshark -z conv,tcp -z conv,udp`: protocol, both ends, frames, bytes.
#[derive(Debug)]
struct Conversation {
    proto: &'static str,
    ends: [String; 2],
    frames: u64,
    bytes: u64,
}

fn tshark_conversations(text: &str) -> Vec<Conversation> {
    let mut proto = "";
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("TCP Conversations") {
            proto = "tcp";
        } else if line.starts_with("UDP Conversations") {
            proto = "udp";
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A <-> B  frames bytes "bytes"  frames bytes "bytes"  frames bytes "bytes" start duration
        if fields.get(1) == Some(&"<->") && fields.len() >= 12 {
            found.push(Conversation {
                proto,
                ends: [fields[0].to_string(), fields[2].to_string()],
                frames: fields[9].parse().expect("frames"),
                bytes: fields[10].parse().expect("bytes"),
            });
        }
    }
    found
}

#[test]
fn corpus_link_types_agree_with_tshark() {
    let Some(corpus) = corpus_dir() else { return };
    // Capture, and the link-layer bytes in front of each IP packet: IPoIB's two 20-byte
    // addresses, type and reserved field; PKTAP's 108-byte header (its own length field) and
    // the Ethernet header inside. SLIP and ATM: one packet each that is not IP (tshark lists
    // no conversation).
    for (capture, link_bytes, conversations) in [
        ("tcpdump-ipoib.pcap", 44, 6),
        ("tcpdump-LINKTYPE_PKTAP.pcap", 108 + 14, 1),
        ("tcpdump-slip-bad-direction.pcap", 16, 0),
        ("tcpdump-llc-xid-heapoverflow.pcap", 8, 0),
    ] {
        let stem = capture.trim_end_matches(".pcap");
        let tshark = std::fs::read_to_string(
            corpus
                .join("expected")
                .join(format!("{stem}.tshark-conv.txt")),
        )
        .expect("tshark's conversations");
        let expected = tshark_conversations(&tshark);
        assert_eq!(expected.len(), conversations, "{capture}: {expected:?}");
        let (rows, _) = analyze(&corpus.join("captures").join(capture), stem);
        for conv in &expected {
            // Sessions of either direction between the two ends (a long gap can make several).
            let mine: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    let orig = format!("{}:{}", r["orig_h"], r["orig_p"]);
                    let resp = format!("{}:{}", r["resp_h"], r["resp_p"]);
                    r["proto"] == conv.proto
                        && (conv.ends == [orig.clone(), resp.clone()] || conv.ends == [resp, orig])
                })
                .collect();
            let packets: u64 = mine
                .iter()
                .map(|r| num(r, "orig_pkts") + num(r, "resp_pkts"))
                .sum();
            let ip_bytes: u64 = mine
                .iter()
                .map(|r| num(r, "orig_ip_bytes") + num(r, "resp_ip_bytes"))
                .sum();
            assert_eq!(packets, conv.frames, "{capture}: {conv:?} ours {mine:?}");
            assert_eq!(
                ip_bytes + packets * link_bytes,
                conv.bytes,
                "{capture}: {conv:?} ours {mine:?}"
            );
        }
        if conversations == 0 {
            assert!(rows.is_empty(), "{capture}: {rows:?}");
        }
    }
}
