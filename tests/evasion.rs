//! Evasion cases (examples/gen_evasion.rs writes sample-captures/evasion-*.pcap): one test per
//! case, each checking through `sessionscope analyze --write-streams` that sessions.csv
//! (conn_state, history, sizes, the `anomalies` column) and the reassembled streams are what
//! the generator states from how it built the packets. Each capture is analysed once and shared.

#[path = "support/csv_rows.rs"]
mod csv_rows;
#[path = "../examples/gen_evasion.rs"]
#[allow(dead_code)]
mod gen_evasion;

use gen_evasion::{Case, Expect, FILES, SERVER_PORT, cases, pcap_bytes};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(name)
}

/// One analysed capture: sessions.csv rows, stream files by (uid, sender port), the summary.
struct Run {
    rows: Vec<HashMap<String, String>>,
    streams: HashMap<(String, u16), Vec<u8>>,
    summary: String,
}

fn analyze(file: &str) -> Run {
    let name = FILES.iter().find(|(f, _)| *f == file).unwrap().1;
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("evasion-{file}"));
    let _ = std::fs::remove_dir_all(&out);
    let streams_dir = out.join("streams");
    let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(capture(name))
        .arg("--out")
        .arg(&out)
        .arg("--write-streams")
        .arg(&streams_dir)
        .args(["--no-progress", "--color", "never"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let (headers, rows) = csv_rows::read(&out.join("sessions.csv"));
    // `anomalies`, then `sensor` (the last column).
    assert_eq!(
        headers.iter().rev().nth(1).map(String::as_str),
        Some("anomalies")
    );
    let mut streams = HashMap::new();
    for entry in std::fs::read_dir(&streams_dir).unwrap() {
        let entry = entry.unwrap();
        let file_name = entry.file_name().into_string().unwrap();
        // `<src>.<port>-<dst>.<port>-<uid>` (IPv6 addresses hold no '-').
        let parts: Vec<&str> = file_name.split('-').collect();
        assert_eq!(parts.len(), 3, "{file_name}");
        let port: u16 = parts[0].rsplit('.').next().unwrap().parse().unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        streams.insert((parts[2].to_string(), port), bytes);
    }
    Run {
        rows,
        streams,
        summary: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

fn run(file: &str) -> &'static Run {
    static TCP: OnceLock<Run> = OnceLock::new();
    static FRAG: OnceLock<Run> = OnceLock::new();
    let cell = if file == "tcp" { &TCP } else { &FRAG };
    cell.get_or_init(|| analyze(file))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_session(case: &Case, row: &HashMap<String, String>, e: &Expect, run: &Run) {
    let name = &case.name;
    let (orig_p, resp_p) = if e.client_is_orig {
        (case.port, SERVER_PORT)
    } else {
        (SERVER_PORT, case.port)
    };
    assert_eq!(row["orig_p"], orig_p.to_string(), "{name}: originator");
    assert_eq!(row["resp_p"], resp_p.to_string(), "{name}: responder");
    assert_eq!(row["proto"], "tcp", "{name}");
    assert_eq!(row["conn_state"], e.conn_state, "{name}: conn_state");
    assert_eq!(row["history"], e.history, "{name}: history");
    assert_eq!(
        row["orig_bytes"],
        e.orig_bytes.to_string(),
        "{name}: orig_bytes"
    );
    assert_eq!(
        row["resp_bytes"],
        e.resp_bytes.to_string(),
        "{name}: resp_bytes"
    );
    assert_eq!(row["anomalies"], e.anomalies, "{name}: anomalies");
    let uid = row["uid"].clone();
    let stream = |port: u16| {
        run.streams
            .get(&(uid.clone(), port))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        text(&stream(case.port)),
        text(&e.client_stream),
        "{name}: client stream"
    );
    assert_eq!(
        text(&stream(SERVER_PORT)),
        text(&e.server_stream),
        "{name}: server stream"
    );
}

fn check_case(name: &str) {
    let all = cases();
    let case = all.iter().find(|c| c.name == name).unwrap();
    let run = run(case.file);
    let port = case.port.to_string();
    let rows: Vec<&HashMap<String, String>> = run
        .rows
        .iter()
        .filter(|r| r["orig_p"] == port || r["resp_p"] == port)
        .collect();
    assert_eq!(rows.len(), case.expect.len(), "{name}: sessions {rows:?}");
    for (row, e) in rows.iter().zip(&case.expect) {
        check_session(case, row, e, run);
    }
}

macro_rules! case_test {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            check_case($name);
        }
    };
}

#[test]
fn committed_captures_are_what_the_generator_writes() {
    for (file, name) in FILES {
        assert!(
            std::fs::read(capture(name)).unwrap() == pcap_bytes(file),
            "sample-captures/{name} is stale: cargo run --example gen_evasion"
        );
    }
}

#[test]
fn every_session_is_a_case_and_the_summary_totals_the_anomalies() {
    for (file, _) in FILES {
        let run = run(file);
        let all: Vec<Case> = cases().into_iter().filter(|c| c.file == file).collect();
        let sessions: usize = all.iter().map(|c| c.expect.len()).sum();
        assert_eq!(run.rows.len(), sessions, "{file}");
        // Totals per anomaly name, from the stated columns.
        let mut totals: HashMap<String, u64> = HashMap::new();
        let mut with_any = 0;
        for e in all.iter().flat_map(|c| &c.expect) {
            with_any += usize::from(!e.anomalies.is_empty());
            for pair in e.anomalies.split(';').filter(|p| !p.is_empty()) {
                let (name, n) = pair.split_once(':').unwrap();
                *totals.entry(name.to_string()).or_default() += n.parse::<u64>().unwrap();
            }
        }
        assert!(
            run.summary
                .contains(&format!("Anomalies       {with_any} sessions")),
            "{}",
            run.summary
        );
        for (name, n) in totals {
            assert!(
                run.summary.contains(&format!("{name} {n}")),
                "{name} {n}: {}",
                run.summary
            );
        }
        let malformed: u64 = all.iter().map(|c| c.malformed_datagrams).sum();
        if file == "frag" {
            assert!(
                run.summary.contains(&format!("{malformed} malformed")),
                "{}",
                run.summary
            );
        }
    }
}

case_test!(
    tcp_overlap_inside_original_first,
    "tcp-overlap-inside-original-first"
);
case_test!(
    tcp_overlap_inside_conflicting_first,
    "tcp-overlap-inside-conflicting-first"
);
case_test!(
    tcp_overlap_inside_delivered_then_acked,
    "tcp-overlap-inside-delivered-then-acked"
);
case_test!(
    tcp_overlap_covering_original_first,
    "tcp-overlap-covering-original-first"
);
case_test!(
    tcp_overlap_covering_conflicting_first,
    "tcp-overlap-covering-conflicting-first"
);
case_test!(
    tcp_overlap_covering_delivered_then_acked,
    "tcp-overlap-covering-delivered-then-acked"
);
case_test!(
    tcp_overlap_head_original_first,
    "tcp-overlap-head-original-first"
);
case_test!(
    tcp_overlap_head_conflicting_first,
    "tcp-overlap-head-conflicting-first"
);
case_test!(
    tcp_overlap_head_delivered_then_acked,
    "tcp-overlap-head-delivered-then-acked"
);
case_test!(
    tcp_overlap_tail_original_first,
    "tcp-overlap-tail-original-first"
);
case_test!(
    tcp_overlap_tail_conflicting_first,
    "tcp-overlap-tail-conflicting-first"
);
case_test!(
    tcp_overlap_tail_delivered_then_acked,
    "tcp-overlap-tail-delivered-then-acked"
);
case_test!(
    tcp_overlap_exact_original_first,
    "tcp-overlap-exact-original-first"
);
case_test!(
    tcp_overlap_exact_conflicting_first,
    "tcp-overlap-exact-conflicting-first"
);
case_test!(
    tcp_overlap_exact_delivered_then_acked,
    "tcp-overlap-exact-delivered-then-acked"
);
case_test!(tcp_low_ttl_first, "tcp-low-ttl-first");
case_test!(frag_ipv4_low_ttl_first, "frag-ipv4-low-ttl-first");
case_test!(tcp_rst_in_window, "tcp-rst-in-window");
case_test!(tcp_rst_out_of_window, "tcp-rst-out-of-window");
case_test!(
    tcp_syn_and_syn_ack_with_data,
    "tcp-syn-and-syn-ack-with-data"
);
case_test!(tcp_simultaneous_open, "tcp-simultaneous-open");
case_test!(
    frag_ipv4_overlap_inside_first_fragment_first,
    "frag-ipv4-overlap-inside-first-fragment-first"
);
case_test!(
    frag_ipv4_overlap_inside_last_fragment_first,
    "frag-ipv4-overlap-inside-last-fragment-first"
);
case_test!(
    frag_ipv4_overlap_inside_middle_first_dup,
    "frag-ipv4-overlap-inside-middle-first-dup"
);
case_test!(
    frag_ipv4_overlap_covering_first_fragment_first,
    "frag-ipv4-overlap-covering-first-fragment-first"
);
case_test!(
    frag_ipv4_overlap_covering_last_fragment_first,
    "frag-ipv4-overlap-covering-last-fragment-first"
);
case_test!(
    frag_ipv4_overlap_covering_middle_first_dup,
    "frag-ipv4-overlap-covering-middle-first-dup"
);
case_test!(
    frag_ipv4_overlap_head_first_fragment_first,
    "frag-ipv4-overlap-head-first-fragment-first"
);
case_test!(
    frag_ipv4_overlap_head_last_fragment_first,
    "frag-ipv4-overlap-head-last-fragment-first"
);
case_test!(
    frag_ipv4_overlap_head_middle_first_dup,
    "frag-ipv4-overlap-head-middle-first-dup"
);
case_test!(
    frag_ipv4_overlap_tail_first_fragment_first,
    "frag-ipv4-overlap-tail-first-fragment-first"
);
case_test!(
    frag_ipv4_overlap_tail_last_fragment_first,
    "frag-ipv4-overlap-tail-last-fragment-first"
);
case_test!(
    frag_ipv4_overlap_tail_middle_first_dup,
    "frag-ipv4-overlap-tail-middle-first-dup"
);
case_test!(
    frag_ipv4_overlap_exact_first_fragment_first,
    "frag-ipv4-overlap-exact-first-fragment-first"
);
case_test!(
    frag_ipv4_overlap_exact_last_fragment_first,
    "frag-ipv4-overlap-exact-last-fragment-first"
);
case_test!(
    frag_ipv4_overlap_exact_middle_first_dup,
    "frag-ipv4-overlap-exact-middle-first-dup"
);
case_test!(
    frag_ipv6_overlap_inside_first_fragment_first,
    "frag-ipv6-overlap-inside-first-fragment-first"
);
case_test!(
    frag_ipv6_overlap_inside_last_fragment_first,
    "frag-ipv6-overlap-inside-last-fragment-first"
);
case_test!(
    frag_ipv6_overlap_inside_middle_first_dup,
    "frag-ipv6-overlap-inside-middle-first-dup"
);
case_test!(
    frag_ipv6_overlap_covering_first_fragment_first,
    "frag-ipv6-overlap-covering-first-fragment-first"
);
case_test!(
    frag_ipv6_overlap_covering_last_fragment_first,
    "frag-ipv6-overlap-covering-last-fragment-first"
);
case_test!(
    frag_ipv6_overlap_covering_middle_first_dup,
    "frag-ipv6-overlap-covering-middle-first-dup"
);
case_test!(
    frag_ipv6_overlap_head_first_fragment_first,
    "frag-ipv6-overlap-head-first-fragment-first"
);
case_test!(
    frag_ipv6_overlap_head_last_fragment_first,
    "frag-ipv6-overlap-head-last-fragment-first"
);
case_test!(
    frag_ipv6_overlap_head_middle_first_dup,
    "frag-ipv6-overlap-head-middle-first-dup"
);
case_test!(
    frag_ipv6_overlap_tail_first_fragment_first,
    "frag-ipv6-overlap-tail-first-fragment-first"
);
case_test!(
    frag_ipv6_overlap_tail_last_fragment_first,
    "frag-ipv6-overlap-tail-last-fragment-first"
);
case_test!(
    frag_ipv6_overlap_tail_middle_first_dup,
    "frag-ipv6-overlap-tail-middle-first-dup"
);
case_test!(
    frag_ipv6_overlap_exact_first_fragment_first,
    "frag-ipv6-overlap-exact-first-fragment-first"
);
case_test!(
    frag_ipv6_overlap_exact_last_fragment_first,
    "frag-ipv6-overlap-exact-last-fragment-first"
);
case_test!(
    frag_ipv6_overlap_exact_middle_first_dup,
    "frag-ipv6-overlap-exact-middle-first-dup"
);
case_test!(
    frag_ipv4_teardrop_whole_first,
    "frag-ipv4-teardrop-whole-first"
);
case_test!(
    frag_ipv4_teardrop_inner_first,
    "frag-ipv4-teardrop-inner-first"
);
case_test!(
    frag_ipv6_teardrop_whole_first,
    "frag-ipv6-teardrop-whole-first"
);
case_test!(
    frag_ipv6_teardrop_inner_first,
    "frag-ipv6-teardrop-inner-first"
);
case_test!(frag_ipv4_past_65535, "frag-ipv4-past-65535");
