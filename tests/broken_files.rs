//! Broken files: every capture of the shared corpus that is cut off or malformed, and every
//! corpus capture cut off at the end or in its middle on purpose, gives its answer within two
//! seconds: a cut file exits 1 with an error naming the file, and the sessions read before the
//! cut are still written. (The conformance suite checks exit codes and hangs with a generous
//! limit; this adds the user's clock.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a broken file may take, debug build included.
const LIMIT: Duration = Duration::from_secs(2);

fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn corpus_dir() -> Option<PathBuf> {
    let explicit = std::env::var_os("SESSIONSCOPE_CORPUS");
    let dir = explicit.as_ref().map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    if dir.join("captures").is_dir() {
        return Some(dir);
    }
    if explicit.is_some() || env_is_set("CI") || env_is_set("SESSIONSCOPE_REQUIRE_CORPUS") {
        panic!(
            "corpus not found at {} and it is required here",
            dir.display()
        );
    }
    eprintln!(
        "NOTICE: corpus not found at {}; skipping the broken-file tests",
        dir.display()
    );
    None
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    csv_rows: Option<usize>,
}

fn analyze(capture: &Path, out: &Path) -> Outcome {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .arg("analyze")
        .arg(capture)
        .arg("--out")
        .arg(out)
        .args(["--color", "never", "--no-progress"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let csv_rows = csv::Reader::from_path(out.join("sessions.csv"))
        .ok()
        .map(|mut r| r.records().count());
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
        csv_rows,
    }
}

/// Runs `jobs` on two threads; returns the failures.
fn run_all(jobs: Vec<Box<dyn Fn() -> Result<(), String> + Send + Sync>>) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = job() {
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

fn corpus_captures(corpus: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus.join("captures"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Captures the corpus marks as broken: tcpdump stopped early on them, or their manifest
/// notes call them truncated or malformed.
fn broken_in_corpus(corpus: &Path) -> Vec<(PathBuf, bool)> {
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap_or_default();
    let mut broken = Vec::new();
    for capture in corpus_captures(corpus) {
        let name = capture.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let tcpdump = std::fs::read_to_string(
            corpus
                .join("expected")
                .join(format!("{stem}.tcpdump-count.tsv")),
        )
        .unwrap_or_default();
        let cut = tcpdump.lines().any(|l| {
            l.strip_prefix("error")
                .is_some_and(|e| !e.trim().is_empty())
        });
        let noted = manifest.lines().any(|l| {
            l.starts_with(&format!("{name}\t")) && {
                let lower = l.to_lowercase();
                lower.contains("truncat") || lower.contains("malform")
            }
        }) || name.contains("truncat")
            || name.contains("malform");
        if cut || noted {
            broken.push((capture, cut));
        }
    }
    broken
}

#[test]
fn corpus_captures_marked_broken_answer_within_two_seconds() {
    let Some(corpus) = corpus_dir() else { return };
    let broken = broken_in_corpus(&corpus);
    assert!(!broken.is_empty(), "the corpus marks no capture as broken");
    let out_root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-corpus");
    let jobs = broken
        .into_iter()
        .map(|(capture, cut)| {
            let out = out_root.join(capture.file_name().unwrap());
            Box::new(move || {
                let o = analyze(&capture, &out);
                let name = capture.display().to_string();
                if o.elapsed > LIMIT {
                    return Err(format!("{name}: took {:?}", o.elapsed));
                }
                let expected = if cut { 1 } else { 0 };
                if o.code != Some(expected) {
                    return Err(format!("{name}: exit {:?}, expected {expected}", o.code));
                }
                if cut && !o.stderr.contains(&name) {
                    return Err(format!(
                        "{name}: error does not name the file: {}",
                        o.stderr
                    ));
                }
                if o.csv_rows.is_none() {
                    return Err(format!("{name}: no sessions.csv"));
                }
                Ok(())
            }) as Box<dyn Fn() -> Result<(), String> + Send + Sync>
        })
        .collect();
    let failures = run_all(jobs);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_corpus_capture_cut_short_names_the_file_and_keeps_what_came_before() {
    let Some(corpus) = corpus_dir() else { return };
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-cut");
    std::fs::create_dir_all(&work).unwrap();
    let mut jobs: Vec<Box<dyn Fn() -> Result<(), String> + Send + Sync>> = Vec::new();
    for capture in corpus_captures(&corpus) {
        let bytes = std::fs::read(&capture).unwrap();
        let name = capture.file_name().unwrap().to_string_lossy().into_owned();
        // One byte short (the last packet is cut: everything before it is whole), and in the
        // middle of the file.
        for (tag, len) in [("end", bytes.len() - 1), ("middle", bytes.len() / 2)] {
            if len < 64 {
                continue;
            }
            let cut_path = work.join(format!("{tag}-{name}"));
            std::fs::write(&cut_path, &bytes[..len]).unwrap();
            let out = work.join(format!("{tag}-{name}.out"));
            jobs.push(Box::new(move || {
                let o = analyze(&cut_path, &out);
                let shown = cut_path.display().to_string();
                if o.elapsed > LIMIT {
                    return Err(format!("{shown}: took {:?}", o.elapsed));
                }
                if o.code != Some(1) {
                    return Err(format!("{shown}: exit {:?}, expected 1", o.code));
                }
                if !o.stderr.contains(&shown) || !o.stderr.contains("cut off") {
                    return Err(format!("{shown}: unclear error: {}", o.stderr));
                }
                if o.csv_rows.is_none() {
                    return Err(format!("{shown}: no sessions.csv"));
                }
                Ok(())
            }));
        }
    }
    let failures = run_all(jobs);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_cut_sample_capture_still_reports_its_earlier_sessions() {
    // udp-dns.pcap (sample-captures/README.md): two DNS exchanges, then a datagram to a closed
    // port and the ICMP port-unreachable it drew, last. Cutting the last byte cuts the ICMP
    // packet: the three sessions of the first five packets must still be written.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures/udp-dns.pcap");
    let bytes = std::fs::read(&sample).unwrap();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broken-sample");
    std::fs::create_dir_all(&work).unwrap();
    let cut = work.join("udp-dns-cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
    let o = analyze(&cut, &work.join("out"));
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.elapsed < LIMIT);
    assert!(o.stderr.contains("udp-dns-cut.pcap"), "{}", o.stderr);
    assert_eq!(o.csv_rows, Some(3), "{}", o.stderr);
}
