//! The command line from a user's side: bad inputs give a clear error naming the file and
//! where, with the documented exit code, and what was read before the problem is still reported;
//! a pipe works like a file; several files are one capture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionscope"))
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionscope-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn csv_rows(dir: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(dir.join("sessions.csv")).unwrap();
    reader.records().map(Result::unwrap).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn missing_file_exits_1_and_names_it() {
    let out = temp_dir("missing");
    let output = bin()
        .args(["analyze", "/nonexistent/day1.pcap", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/nonexistent/day1.pcap"),
        "{}",
        stderr(&output)
    );
    // The output is still written: a header and no rows.
    assert!(csv_rows(&out).is_empty());
}

#[test]
fn a_file_that_is_not_a_capture_exits_1() {
    let out = temp_dir("garbage");
    let garbage = out.join("notes.txt");
    std::fs::write(&garbage, "this is not a packet capture\n").unwrap();
    let output = bin().arg("analyze").arg(&garbage).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("notes.txt") && err.contains("not a"), "{err}");
}

#[test]
fn a_file_cut_mid_packet_reports_what_came_before() {
    let out = temp_dir("cut");
    let whole = std::fs::read(sample("tcp-refused.pcap")).unwrap();
    // tcp-refused.pcap: a 24-byte header, then 4 packets (SYN, RST, SYN, RST; see its README).
    // Cut 10 bytes into the last packet's data.
    let mut offset = 24usize;
    let mut starts = Vec::new();
    while offset + 16 <= whole.len() {
        starts.push(offset);
        let caplen =
            u32::from_le_bytes(whole[offset + 8..offset + 12].try_into().unwrap()) as usize;
        offset += 16 + caplen;
    }
    assert_eq!(starts.len(), 4, "the sample has four packets");
    let cut_at = starts[3] + 16 + 10;
    let cut = out.join("cut.pcap");
    std::fs::write(&cut, &whole[..cut_at]).unwrap();

    let output = bin()
        .arg("analyze")
        .arg(&cut)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cut.pcap") && err.contains("packet 4"),
        "{err}"
    );
    assert!(
        err.contains(&starts[3].to_string()),
        "the byte offset where packet 4 starts: {err}"
    );
    // Packets 1-3 are still analysed: one refused session and one attempt.
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("Read") && summary.contains(" 3"),
        "{summary}"
    );
}

#[test]
fn standard_input_works_like_a_file() {
    let out = temp_dir("stdin");
    let mut child = bin()
        .args(["analyze", "-", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(sample("tcp-handshake-close.pcap")).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(csv_rows(&out).len(), 3, "three HTTP requests");
}

#[test]
fn several_files_are_one_capture() {
    let out = temp_dir("several");
    let output = bin()
        .arg("analyze")
        .arg(sample("tcp-refused.pcap"))
        .arg(sample("udp-dns.pcap"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // 2 refused connections + 3 UDP sessions + 1 ICMP error (see sample-captures/README.md).
    assert_eq!(csv_rows(&out).len(), 6);
}

#[test]
fn bad_option_values_are_usage_errors() {
    let output = bin()
        .arg("analyze")
        .arg(sample("udp-dns.pcap"))
        .args(["--server-ports", "sctp/1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--server-ports"));
}

#[test]
fn max_sessions_evicts_and_says_so() {
    let out = temp_dir("evict");
    let output = bin()
        .arg("analyze")
        .arg(sample("tcp-handshake-close.pcap"))
        .args(["--max-sessions", "1", "--color", "never", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("evicted"), "{summary}");
    // The three requests are sequential, so only a session lingering after its close is evicted.
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 3);
}

#[cfg(not(feature = "live"))]
#[test]
fn live_without_the_feature_says_how_to_build_it() {
    let output = bin().args(["live", "-i", "lo"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("libpcap-dev"), "{message}");
    assert!(message.contains("--features live"), "{message}");
}

#[test]
fn formats_and_report_are_written_and_agree() {
    let out = temp_dir("formats");
    let output = bin()
        .args([
            "analyze",
            "--no-progress",
            "--format",
            "jsonl",
            "--format",
            "csv,parquet",
        ])
        .arg(sample("udp-dns.pcap"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = csv_rows(&out);
    assert!(!rows.is_empty());
    let jsonl = std::fs::read_to_string(out.join("sessions.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), rows.len());
    // Same order: the uid column of each CSV row is the uid of the same JSON line.
    for (line, row) in jsonl.lines().zip(&rows) {
        assert!(line.contains(&format!("\"uid\":\"{}\"", &row[1])), "{line}");
        assert!(line.starts_with("{\"ts\":") && line.contains("\"id.orig_h\":"));
    }
    let parquet = std::fs::read(out.join("sessions.parquet")).unwrap();
    assert_eq!(&parquet[..4], b"PAR1");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The hidden-session analysis ran, so the report shows its section, not the notice.
    assert!(html.contains("id=\"hidden-section\""));
    assert!(!html.contains("Hidden-session analysis not available in this version"));
}

#[test]
fn only_the_asked_formats_and_a_bad_one_is_a_usage_error() {
    let out = temp_dir("jsonl-only");
    let output = bin()
        .args(["analyze", "--no-progress", "--format", "jsonl"])
        .arg(sample("udp-dns.pcap"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.join("sessions.jsonl").exists());
    assert!(out.join("report.html").exists());
    assert!(!out.join("sessions.csv").exists());
    let output = bin()
        .args(["analyze", "--format", "xml"])
        .arg(sample("udp-dns.pcap"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("xml"), "{}", stderr(&output));
}
