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

/// Cuts a little-endian pcap into files of `per_file` packets (the file header copied into each),
/// as `tcpdump -C` or `editcap -c` would; returns how many files were written.
fn cut_pcap(capture: &Path, per_file: usize, dir: &Path) -> usize {
    let bytes = std::fs::read(capture).unwrap();
    assert_eq!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian pcap expected"
    );
    let (header, mut rest) = bytes.split_at(24);
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut in_piece = per_file;
    while !rest.is_empty() {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (record, tail) = rest.split_at(16 + caplen);
        if in_piece == per_file {
            pieces.push(header.to_vec());
            in_piece = 0;
        }
        pieces.last_mut().unwrap().extend_from_slice(record);
        in_piece += 1;
        rest = tail;
    }
    for (i, piece) in pieces.iter().enumerate() {
        std::fs::write(dir.join(format!("piece-{i:02}.pcap")), piece).unwrap();
    }
    pieces.len()
}

#[test]
fn the_same_capture_cut_into_files_replaces_its_own_rows() {
    let out = temp_dir("resplit");
    let pieces = temp_dir("resplit-pieces");
    let args = ["--format", "parquet", "--partition", "--sensor", "tap-1"];
    assert!(analyze("tcp-port-reuse.pcap", &out, &args).status.success());
    let root = out.join("sessions");
    let whole = files(&root);
    assert_eq!(whole.len(), 1, "{whole:?}");
    // The same packets as three rotated files, analysed as a directory into the same dataset.
    assert!(cut_pcap(&sample("tcp-port-reuse.pcap"), 5, &pieces) >= 3);
    let status = bin()
        .args(["analyze", "--no-progress", "--out"])
        .arg(&out)
        .arg(&pieces)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        files(&root),
        whole,
        "a re-cut capture must not add a second copy"
    );
    std::fs::remove_dir_all(out).unwrap();
    std::fs::remove_dir_all(pieces).unwrap();
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
