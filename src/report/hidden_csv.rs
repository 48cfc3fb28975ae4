//! hidden.csv: one row per hidden pattern (who talks behind the user's back, to whom, how often).
//!
//! Owns the column set (see docs/initiators.md) and writing [`HiddenReport::shown`] patterns in
//! the report's order (beacons first, then by score and sessions), with the `csv` crate so names
//! and reasons are quoted safely. Allow-listed patterns are written too, marked `allowed=true`.

use crate::analysis::hidden::{HiddenPattern, HiddenReport};
use std::path::{Path, PathBuf};

/// File name inside the output directory.
pub const HIDDEN_FILE_NAME: &str = "hidden.csv";

/// The header, in column order.
pub const HIDDEN_CSV_COLUMNS: [&str; 18] = [
    "host",
    "dest_h",
    "dest_addresses",
    "dest_name",
    "proto",
    "dest_p",
    "service",
    "kind",
    "sessions",
    "first_ts",
    "last_ts",
    "period_s",
    "jitter",
    "orig_bytes",
    "resp_bytes",
    "score",
    "allowed",
    "reason",
];

/// Writes `dir/hidden.csv`; returns its path and the rows written.
pub fn write(dir: &Path, report: &HiddenReport) -> Result<(PathBuf, u64), csv::Error> {
    let path = dir.join(HIDDEN_FILE_NAME);
    let mut w = csv::Writer::from_path(&path)?;
    w.write_record(HIDDEN_CSV_COLUMNS)?;
    let mut rows = 0u64;
    for p in report.shown() {
        w.write_record(row(p))?;
        rows += 1;
    }
    w.flush()?;
    Ok((path, rows))
}

pub(crate) fn proto_name(ip_proto: u8) -> String {
    match ip_proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 | 58 => "icmp".into(),
        n => format!("ip{n}"),
    }
}

fn row(p: &HiddenPattern) -> Vec<String> {
    vec![
        p.host.to_string(),
        p.dest.to_string(),
        p.dest_addresses.to_string(),
        p.name.clone().unwrap_or_default(),
        proto_name(p.ip_proto),
        p.port.to_string(),
        p.service.clone(),
        p.kind.as_str().to_string(),
        p.sessions.to_string(),
        p.first.to_string(),
        p.last.to_string(),
        p.period_s.map_or(String::new(), |s| format!("{s:.3}")),
        p.jitter.map_or(String::new(), |j| format!("{j:.3}")),
        p.orig_bytes.to_string(),
        p.resp_bytes.to_string(),
        format!("{:.2}", p.score),
        p.allowed.to_string(),
        p.reason.clone(),
    ]
}
