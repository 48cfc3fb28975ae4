//! `--sensor` and `--format parquet --partition` from a user's side: the sensor column, the
//! Hive layout, re-runs replacing their own files, other inputs adding theirs, bad names refused.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionscope"))
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-captures")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionscope-ds-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn analyze(capture: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["analyze", "--no-progress", "--out"])
        .arg(out)
        .arg(sample(capture))
        .args(extra)
        .output()
        .unwrap()
}

/// Every file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn partitioned_dataset_appends_and_replaces() {
    let out = temp_dir("append");
    let args = [
        "--format",
        "csv,parquet",
        "--partition",
        "--sensor",
        "tap-1",
    ];
    assert!(
        analyze("tcp-handshake-close.pcap", &out, &args)
            .status
            .success()
    );
    let root = out.join("sessions");
    let first = files(&root);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].starts_with("sensor=tap-1/date=") && first[0].ends_with(".parquet"),
        "{first:?}"
    );
    let part = first[0].rsplit('/').next().unwrap().to_string();
    assert!(part.starts_with("part-") && part.len() == "part-".len() + 16 + ".parquet".len());
    // The sensor is sessions.csv's last column.
    let mut reader = csv::Reader::from_path(out.join("sessions.csv")).unwrap();
    assert_eq!(reader.headers().unwrap().iter().next_back(), Some("sensor"));
    for row in reader.records() {
        assert_eq!(row.unwrap().iter().next_back(), Some("tap-1"));
    }
    // The same input again: the same file, no second copy.
    assert!(
        analyze("tcp-handshake-close.pcap", &out, &args)
            .status
            .success()
    );
    assert_eq!(files(&root), first);
    // Another input adds its own file.
    assert!(analyze("tcp-reset.pcap", &out, &args).status.success());
    let after = files(&root);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|f| f.starts_with("sensor=tap-1/date=")));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn default_sensor_is_the_directory_name() {
    let out = temp_dir("default");
    assert!(analyze("tcp-reset.pcap", &out, &[]).status.success());
    let mut reader = csv::Reader::from_path(out.join("sessions.csv")).unwrap();
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(row.iter().next_back(), Some("sample-captures"));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_sensor_and_partition_without_parquet_are_usage_errors() {
    let out = temp_dir("bad");
    let bad = analyze("tcp-reset.pcap", &out, &["--sensor", "../evil"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sensor"));
    let no_parquet = analyze("tcp-reset.pcap", &out, &["--partition"]);
    assert_eq!(no_parquet.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_parquet.stderr).contains("--partition"));
    std::fs::remove_dir_all(out).unwrap();
}
