//! Floods: a SYN flood from spoofed sources and many parallel streams with holes, with a few
//! ordinary sessions inside. Under `--max-sessions` the table holds its cap, the evictions are
//! counted in the summary and in sessions.csv alike, and the ordinary sessions (never the
//! longest idle) come out exactly as they were made. The big floods and their memory figures
//! are in docs/hostile-input.md; this is the same generator, small enough for every CI run.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::flood::{FRAGMENT_PAYLOAD_BYTES, FloodFacts, FloodSpec, write_flood};

const SPEC: FloodSpec = FloodSpec {
    syn_flood: 60_000,
    streams_with_holes: 10_000,
    real_sessions: 6,
    real_every: 1_000,
    incomplete_fragments: 0,
};
const CAP: usize = 4_000;

fn work_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("floods-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_flood(dir: &Path) -> (PathBuf, FloodFacts) {
    make_flood_of(dir, SPEC)
}

fn make_flood_of(dir: &Path, spec: FloodSpec) -> (PathBuf, FloodFacts) {
    let path = dir.join("flood.pcap");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let facts = write_flood(spec, file).unwrap();
    (path, facts)
}

struct Run {
    summary: String,
    rows: Vec<HashMap<String, String>>,
    max_rss_kib: Option<u64>,
}

fn analyze(capture: &Path, out: &Path, max_sessions: usize) -> Run {
    analyze_with(
        capture,
        out,
        &["--max-sessions".to_string(), max_sessions.to_string()],
    )
}

fn analyze_with(capture: &Path, out: &Path, options: &[String]) -> Run {
    // GNU time reports the child's peak memory; without it the run is the same, unmeasured.
    let gnu_time = Path::new("/usr/bin/time");
    let rss_file = out.with_extension("rss");
    let mut command = if gnu_time.exists() {
        let mut c = Command::new(gnu_time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file);
        c.arg(env!("CARGO_BIN_EXE_sessionscope"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_sessionscope"))
    };
    let output = command
        .arg("analyze")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .args(["--color", "never", "--no-progress"])
        .args(options)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, rows) = support::csv_rows::read(&out.join("sessions.csv"));
    let max_rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Run {
        summary,
        rows,
        max_rss_kib,
    }
}

/// The number on a `  Label   1,234` line of the Session table section.
fn summary_number(summary: &str, label: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' line in the summary:\n{summary}"));
    line.trim_start()[label.len()..]
        .trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("'{line}': {e}"))
}

fn check_real_sessions(run: &Run, facts: &FloodFacts) {
    for real in &facts.real {
        let found: Vec<_> = run
            .rows
            .iter()
            .filter(|r| {
                r["orig_h"] == real.orig_h.to_string()
                    && r["orig_p"] == real.orig_p.to_string()
                    && r["resp_h"] == real.resp_h.to_string()
                    && r["resp_p"] == real.resp_p.to_string()
            })
            .collect();
        assert_eq!(found.len(), 1, "{real:?}: {found:?}");
        let row = found[0];
        let expect = [
            ("proto", "tcp".to_string()),
            ("conn_state", real.conn_state.to_string()),
            ("history", real.history.to_string()),
            ("orig_pkts", real.orig_pkts.to_string()),
            ("resp_pkts", real.resp_pkts.to_string()),
            ("orig_bytes", real.orig_bytes.to_string()),
            ("resp_bytes", real.resp_bytes.to_string()),
            ("orig_ip_bytes", real.orig_ip_bytes.to_string()),
            ("resp_ip_bytes", real.resp_ip_bytes.to_string()),
            ("missed_bytes", "0".to_string()),
        ];
        for (column, value) in expect {
            assert_eq!(row[column], value, "{column} of {real:?}");
        }
        assert_ne!(row["end_reason"], "evicted", "{real:?}");
    }
}

#[test]
fn a_capped_table_evicts_counts_and_keeps_the_live_sessions_right() {
    let dir = work_dir("capped");
    let (capture, facts) = make_flood(&dir);
    let run = analyze(&capture, &dir.join("out"), CAP);

    let started = summary_number(&run.summary, "Started");
    let peak = summary_number(&run.summary, "Peak live");
    let evicted = summary_number(&run.summary, "Evicted");
    assert!(peak <= CAP as u64, "peak live {peak} over the cap {CAP}");
    assert!(run.summary.contains("WARNING"), "{}", run.summary);
    // Packets are a microsecond apart: no timer runs out, so all but the last CAP sessions
    // (and the closed ordinary ones) must have been evicted.
    assert!(
        evicted >= facts.sessions - CAP as u64 - facts.real.len() as u64,
        "evicted {evicted} of {} sessions with a cap of {CAP}",
        facts.sessions
    );
    // Every session is a row, and the rows say which were evicted, as the summary does.
    assert_eq!(run.rows.len() as u64, started);
    let evicted_rows = run
        .rows
        .iter()
        .filter(|r| r["end_reason"] == "evicted")
        .count() as u64;
    assert_eq!(evicted_rows, evicted);
    check_real_sessions(&run, &facts);
    if let Some(rss) = run.max_rss_kib {
        println!(
            "capped flood ({} packets): max RSS {rss} KiB",
            facts.packets
        );
    }
}

#[test]
fn without_a_cap_every_flood_session_is_its_own_row() {
    let dir = work_dir("uncapped");
    let (capture, facts) = make_flood(&dir);
    let run = analyze(&capture, &dir.join("out"), 10_000_000);
    assert_eq!(summary_number(&run.summary, "Evicted"), 0);
    assert_eq!(summary_number(&run.summary, "Started"), facts.sessions);
    assert_eq!(run.rows.len() as u64, facts.sessions);
    // One S0 row per spoofed SYN, all to the victim's port 80.
    let syn_rows = run
        .rows
        .iter()
        .filter(|r| r["resp_p"] == "80" && r["history"] == "S" && r["conn_state"] == "S0")
        .count() as u64;
    assert_eq!(syn_rows, u64::from(SPEC.syn_flood));
    // The streams: established, never closed, 300 bytes by their sequence numbers (the hole
    // counts: bytes come from sequence numbers, not from what was captured).
    let hole_rows = run
        .rows
        .iter()
        .filter(|r| r["resp_p"] == "443" && r["orig_bytes"] == "300" && r["conn_state"] == "S1")
        .count() as u64;
    assert_eq!(hole_rows, u64::from(SPEC.streams_with_holes));
    check_real_sessions(&run, &facts);
    if let Some(rss) = run.max_rss_kib {
        println!(
            "uncapped flood ({} packets): max RSS {rss} KiB",
            facts.packets
        );
    }
}

/// The fragment flood: incomplete first fragments with random ids, never completed, before
/// the SYN flood and the streams; the ordinary sessions step often enough for a small table.
const FRAGMENT_SPEC: FloodSpec = FloodSpec {
    syn_flood: 20_000,
    streams_with_holes: 2_000,
    real_sessions: 6,
    real_every: 200,
    incomplete_fragments: 30_000,
};

/// The numbers on the `incomplete` line of the summary's IP fragments section and the detail
/// line after it: (datagrams, fragments, timed out, evicted, malformed, pending).
fn fragment_numbers(summary: &str) -> [u64; 6] {
    let numbers = |line: &str| -> Vec<u64> {
        line.split(|c: char| !c.is_ascii_digit() && c != ',')
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
            .map(|w| w.replace(',', "").parse().unwrap())
            .collect()
    };
    let mut lines = summary.lines().skip_while(|l| !l.contains("incomplete"));
    let first = numbers(lines.next().expect("an incomplete line"));
    let detail = numbers(lines.next().unwrap());
    [
        first[0], first[1], detail[0], detail[1], detail[2], detail[3],
    ]
}

#[test]
fn a_fragment_flood_stays_within_frag_memory_and_is_counted() {
    let dir = work_dir("fragments");
    let (capture, facts) = make_flood_of(&dir, FRAGMENT_SPEC);
    let frag_mib = 1usize;
    let run = analyze_with(
        &capture,
        &dir.join("out"),
        &["--frag-memory".to_string(), frag_mib.to_string()],
    );
    let [datagrams, fragments, timed_out, evicted, malformed, pending] =
        fragment_numbers(&run.summary);
    let sent = u64::from(FRAGMENT_SPEC.incomplete_fragments);
    // Every fragment is its own datagram and none completes: all are lost, each counted once.
    assert_eq!((datagrams, fragments), (sent, sent), "{}", run.summary);
    assert_eq!((timed_out, malformed), (0, 0));
    assert_eq!(evicted + pending, sent);
    // What is still held fits in the limit: each holds at least its payload.
    let held_at_least = pending * FRAGMENT_PAYLOAD_BYTES as u64;
    assert!(
        held_at_least <= (frag_mib << 20) as u64,
        "{pending} datagrams pending"
    );
    assert!(evicted > 0);
    // No session comes from the fragments; the others are all there and right.
    assert_eq!(run.rows.len() as u64, facts.sessions);
    check_real_sessions(&run, &facts);
    if let Some(rss) = run.max_rss_kib {
        println!(
            "fragment flood ({} packets): max RSS {rss} KiB",
            facts.packets
        );
    }
}

#[test]
fn one_memory_budget_sets_the_session_cap_and_explicit_options_win() {
    let dir = work_dir("memory");
    let (capture, facts) = make_flood_of(&dir, FRAGMENT_SPEC);
    // --memory 8: 3/4 of 8 MiB for sessions charged 1 KiB + 2 x 3 KiB each
    // (docs/hostile-input.md), 1/8 for fragments.
    let budget_sessions = (8u64 << 20) * 3 / 4 / (7 * 1024);
    let run = analyze_with(
        &capture,
        &dir.join("out"),
        &["--memory".to_string(), "8".to_string()],
    );
    assert_eq!(summary_number(&run.summary, "Peak live"), budget_sessions);
    let [_, _, _, evicted, _, pending] = fragment_numbers(&run.summary);
    assert!(evicted > 0);
    assert!(pending * FRAGMENT_PAYLOAD_BYTES as u64 <= (8 << 20) / 8);
    check_real_sessions(&run, &facts);
    // An explicit --max-sessions wins over the budget's share.
    let run = analyze_with(
        &capture,
        &dir.join("out2"),
        &[
            "--memory".to_string(),
            "8".to_string(),
            "--max-sessions".to_string(),
            "3000".to_string(),
        ],
    );
    assert_eq!(summary_number(&run.summary, "Peak live"), 3000);
    check_real_sessions(&run, &facts);
}
