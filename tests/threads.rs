//! `--threads N` writes the same sessions as one thread: every field of every session, on the
//! sample captures and on every third-party corpus capture (malformed ones included).
//!
//! The corpus is located by `SESSIONSCOPE_CORPUS` or `<CARGO_MANIFEST_DIR>/../shared/corpus`;
//! without it the corpus part prints a notice and passes, unless `CI` or
//! `SESSIONSCOPE_REQUIRE_CORPUS` is set.

use sessionscope::config::TrackerConfig;
use sessionscope::pipeline::{AnalyzeOptions, analyze};
use std::path::{Path, PathBuf};

/// Every session as text (its Debug form holds every field), sorted, and the summary counters
/// that do not depend on how sessions were spread over workers.
fn sessions(input: &Path, threads: usize) -> (Vec<String>, Vec<u64>) {
    let options = AnalyzeOptions {
        inputs: vec![input.to_path_buf()],
        tracker: TrackerConfig::default(),
        progress: false,
        streams: None,
        threads,
    };
    let mut rows = Vec::new();
    let outcome = analyze(&options, &mut |record| rows.push(format!("{record:?}")));
    rows.sort();
    let s = &outcome.summary;
    let counters = vec![
        s.packets_read,
        s.packets_decoded,
        s.skipped_total(),
        s.sessions.sessions,
        s.sessions.pkts,
        s.sessions.ip_bytes,
        s.tracker.sessions_started,
        s.tracker.unattributed_packets,
    ];
    (rows, counters)
}

fn assert_same_for_threads(files: &[PathBuf]) -> usize {
    let mut compared = 0;
    for file in files {
        let (one, one_counts) = sessions(file, 1);
        for threads in [2, 3] {
            let (many, many_counts) = sessions(file, threads);
            assert_eq!(
                one.len(),
                many.len(),
                "{}: {} sessions with 1 thread, {} with {threads}",
                file.display(),
                one.len(),
                many.len()
            );
            if let Some((a, b)) = one.iter().zip(&many).find(|(a, b)| a != b) {
                panic!(
                    "{}: sessions differ with {threads} threads:\n  1: {a}\n  {threads}: {b}",
                    file.display()
                );
            }
            assert_eq!(
                one_counts,
                many_counts,
                "{}: summary counters differ with {threads} threads",
                file.display()
            );
        }
        compared += one.len();
    }
    compared
}

fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn sample_captures_give_the_same_sessions_with_two_and_three_threads() {
    let files = captures_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures"));
    assert!(files.len() >= 10, "sample captures missing");
    let sessions = assert_same_for_threads(&files);
    assert!(sessions > 100, "only {sessions} sessions compared");
}

fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

#[test]
fn corpus_captures_give_the_same_sessions_with_two_and_three_threads() {
    let explicit = std::env::var_os("SESSIONSCOPE_CORPUS");
    let dir = explicit.as_ref().map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    let captures = dir.join("captures");
    if !captures.is_dir() {
        if explicit.is_some() || env_is_set("CI") || env_is_set("SESSIONSCOPE_REQUIRE_CORPUS") {
            panic!("{}: corpus captures missing", captures.display());
        }
        eprintln!("NOTICE: no corpus at {}; skipped", captures.display());
        return;
    }
    let files = captures_in(&captures);
    assert!(files.len() >= 100, "{} corpus captures only", files.len());
    let sessions = assert_same_for_threads(&files);
    eprintln!(
        "threads: {} corpus captures, {sessions} sessions, identical with 1, 2 and 3 threads",
        files.len()
    );
}

/// The files a user gets (sessions.csv with its labels, JSON lines, hidden.csv) are the same
/// bytes whatever `--threads` says: with threads to spare the end of the run sorts, decides and
/// writes on two threads, with one it does it all in turn.
#[test]
fn output_files_are_the_same_bytes_with_one_and_two_threads() {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures");
    for capture in [
        "hidden-scenario.pcap",
        "content-dns.pcap",
        "tcp-port-reuse.pcap",
    ] {
        let mut outputs = Vec::new();
        for threads in ["1", "2"] {
            let out = std::env::temp_dir().join(format!(
                "sessionscope-threads-{}-{capture}-{threads}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&out);
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_sessionscope"))
                .args([
                    "analyze",
                    "--no-progress",
                    "--format",
                    "csv,jsonl",
                    "--threads",
                ])
                .arg(threads)
                .arg("--out")
                .arg(&out)
                .arg(captures.join(capture))
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{capture} with {threads} threads");
            let read = |name: &str| std::fs::read(out.join(name)).unwrap();
            outputs.push((
                read("sessions.csv"),
                read("sessions.jsonl"),
                read("hidden.csv"),
            ));
            std::fs::remove_dir_all(&out).unwrap();
        }
        let (one, two) = (&outputs[0], &outputs[1]);
        // A header and at least one labelled session.
        let text = String::from_utf8(one.0.clone()).unwrap();
        assert!(text.lines().count() >= 2, "{capture}: no sessions");
        assert!(
            text.lines()
                .skip(1)
                .all(|l| l.contains(",user,") || l.contains(",technology,")),
            "{capture}: unlabelled rows"
        );
        assert!(one.0 == two.0, "{capture}: sessions.csv differs");
        assert!(one.1 == two.1, "{capture}: sessions.jsonl differs");
        assert!(one.2 == two.2, "{capture}: hidden.csv differs");
    }
}
