//! Hidden sessions on the labelled scenario (sample-captures/hidden-scenario*.pcap, made by
//! scripts/make-hidden-scenario.sh from real processes in network namespaces).
//!
//! The truth is the scenario's own record (`*.labels.csv`: every session each process started,
//! with its label and, for timers, the period it was programmed with); sessionscope's
//! `initiator` column and hidden.csv are checked against it: precision and recall of
//! `technology` at least 0.9 each, and every periodic process found with its period within 5 %.
//! The same holds with every role behind one client address.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIN_PRECISION: f64 = 0.9;
const MIN_RECALL: f64 = 0.9;
const MAX_PERIOD_ERROR: f64 = 0.05;

type Row = HashMap<String, String>;

fn read_csv(path: &Path) -> Vec<Row> {
    let mut rdr = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    rdr.records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

struct Truth {
    label: String,
    process: String,
}

/// The label of a session: the scenario's row with the same 5-tuple (the nearest in start time
/// if a tuple repeats), else its wildcard-port row.
fn truth_for<'a>(session: &Row, labels: &'a [Row]) -> Option<(usize, &'a Row)> {
    let same = |l: &Row, k: &str| l[k] == session[k];
    let ts: f64 = session["ts"].parse().unwrap();
    let mut best: Option<(usize, &Row, f64)> = None;
    for (i, l) in labels.iter().enumerate() {
        if l["proto"] == session["proto"]
            && same(l, "orig_h")
            && same(l, "resp_h")
            && same(l, "resp_p")
            && (l["orig_p"] == "*" || same(l, "orig_p"))
        {
            let distance = l["start"]
                .parse::<f64>()
                .map_or(f64::MAX / 2.0, |s| (s - ts).abs());
            if best.is_none_or(|(_, _, d)| distance < d) {
                best = Some((i, l, distance));
            }
        }
    }
    best.map(|(i, l, _)| (i, l))
}

struct Outcome {
    precision: f64,
    recall: f64,
    sessions: usize,
}

fn check(capture: &str) -> Outcome {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-captures");
    let labels = read_csv(&dir.join(format!("{capture}.labels.csv")));
    let out: PathBuf = std::env::temp_dir().join(format!(
        "sessionscope-hidden-{capture}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let result = Command::new(env!("CARGO_BIN_EXE_sessionscope"))
        .args([
            "analyze",
            "--no-progress",
            "--local-net",
            "192.0.2.0/24",
            "--out",
        ])
        .arg(&out)
        .arg(dir.join(format!("{capture}.pcap")))
        .output()
        .expect("run sessionscope");
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let summary = String::from_utf8_lossy(&result.stdout);
    assert!(summary.contains("Hidden sessions"), "{summary}");

    let sessions = read_csv(&out.join("sessions.csv"));
    let mut matched = vec![false; labels.len()];
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    let mut mistakes = Vec::new();
    for s in &sessions {
        let (i, truth) = truth_for(s, &labels).unwrap_or_else(|| {
            panic!("{capture}: session not started by any scenario process: {s:?}")
        });
        matched[i] = true;
        let truth = Truth {
            label: truth["label"].clone(),
            process: truth["process"].clone(),
        };
        let said = s["initiator"].as_str();
        assert!(said == "user" || said == "technology", "{s:?}");
        assert!(!s["initiator_reason"].is_empty(), "{s:?}");
        match (truth.label == "technology", said == "technology") {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
        if truth.label != said {
            mistakes.push(format!(
                "{} {}:{} -> {}:{} ({}): truth {} / said {} ({})",
                s["proto"],
                s["orig_h"],
                s["orig_p"],
                s["resp_h"],
                s["resp_p"],
                truth.process,
                truth.label,
                said,
                s["initiator_reason"]
            ));
        }
    }
    // Every session a process recorded is in the capture.
    let missing: Vec<&Row> = labels
        .iter()
        .zip(&matched)
        .filter(|(l, m)| !**m && l["orig_p"] != "*")
        .map(|(l, _)| l)
        .collect();
    assert!(
        missing.is_empty(),
        "{capture}: not found in sessions.csv: {missing:?}"
    );

    let precision = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let recall = f64::from(tp) / f64::from(tp + fn_).max(1.0);
    eprintln!(
        "{capture}: {} sessions, technology precision {precision:.3}, recall {recall:.3}",
        sessions.len()
    );
    for m in &mistakes {
        eprintln!("  {m}");
    }
    assert!(
        precision >= MIN_PRECISION,
        "{capture}: precision {precision:.3}"
    );
    assert!(recall >= MIN_RECALL, "{capture}: recall {recall:.3}");

    // Each periodic process is a hidden pattern with its programmed period.
    let hidden = read_csv(&out.join("hidden.csv"));
    let mut periodic: HashMap<&str, (&Row, f64)> = HashMap::new();
    for l in &labels {
        if let Ok(period) = l["period_s"].parse::<f64>() {
            periodic.entry(l["process"].as_str()).or_insert((l, period));
        }
    }
    assert!(
        periodic.len() >= 3,
        "{periodic:?}",
        periodic = periodic.keys()
    );
    for (process, (l, period)) in &periodic {
        let pattern = hidden
            .iter()
            .find(|h| {
                h["host"] == l["orig_h"] && h["dest_h"] == l["resp_h"] && h["dest_p"] == l["resp_p"]
            })
            .unwrap_or_else(|| panic!("{capture}: no hidden pattern for {process}: {hidden:?}"));
        let found: f64 = pattern["period_s"]
            .parse()
            .unwrap_or_else(|_| panic!("{capture}: {process} not found periodic: {pattern:?}"));
        let error = (found - period).abs() / period;
        eprintln!(
            "  {process}: period {found:.3} s (programmed {period} s), error {:.1}%",
            error * 100.0
        );
        assert!(
            error < MAX_PERIOD_ERROR,
            "{capture}: {process}: {found} s vs {period} s"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Outcome {
        precision,
        recall,
        sessions: sessions.len(),
    }
}

#[test]
fn one_address_per_role() {
    let o = check("hidden-scenario");
    assert!(o.sessions > 100 && o.precision > 0.0 && o.recall > 0.0);
}

#[test]
fn every_role_behind_one_address() {
    let o = check("hidden-scenario-one-host");
    assert!(o.sessions > 100 && o.precision > 0.0 && o.recall > 0.0);
}
